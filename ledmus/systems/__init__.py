"""The system registry: one declaration per system (docs/guide/coupled_run.md, *Extension points*).

::

    from ledmus import systems

    spec = systems.get("fhn")
    solver = spec.make(d_v=4.0)              # the solver, preset overridden
    spec.channels, spec.coordinates(solver)  # ("u", "v"), node positions
    spec.errors(reference, prediction, dt)   # coupled-run error suite of its layout
    systems.register(SystemSpec("mine", MySolver, "grid", channels=("u",)))

Registering a spec also puts its solver and preset into :data:`ledmus.solvers.REGISTRY`.
The built-in systems (:mod:`ledmus.systems.builtin`) are registered on import.
"""

from __future__ import annotations

from .builtin import builtin_specs
from .registry import get, names, register, unregister
from .spec import LAYOUTS, Evaluation, Monitor, Protocol, Split, Symmetry, SystemSpec

for _spec in builtin_specs():
    register(_spec, replace=True)
del _spec

__all__ = [
    "LAYOUTS",
    "Evaluation",
    "Monitor",
    "Protocol",
    "Split",
    "Symmetry",
    "SystemSpec",
    "get",
    "names",
    "register",
    "unregister",
]
