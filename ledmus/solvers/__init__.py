"""Micro solvers: pure numerics (numpy/scipy), no libmuscle, no MPI.  The one exception
to numpy-only: the ``boltzmann`` and ``boltzmann3d`` solvers (:mod:`ledmus.solvers.boltzmann`,
:mod:`ledmus.solvers.boltzmann3d`) use torch for their batched FFTs (CPU or CUDA); torch is
imported in those modules and their helpers only, and their public API is numpy in, numpy
out like every other solver.

Use :func:`make` to build one by name::

    solver = ledmus.solvers.make("fhn")            # paper parameters
    solver = ledmus.solvers.make("ad3d", n_particles=400)

Every solver is batched over a leading ensemble axis and exposes ``lift``, ``observe``,
``advance`` and ``rollout`` (see :class:`~ledmus.solvers.base.Solver`).
"""

from __future__ import annotations

import inspect
from typing import Any

from .ad import AdvectionDiffusionParticles
from .base import Solver
from .bgk import BGK
from .boltzmann import Boltzmann
from .boltzmann3d import Boltzmann3D
from .fhn import FitzHughNagumoLB, load_fhn_ic
from .ks import KuramotoSivashinsky
from .rw import LatticeRandomWalk

#: name -> (class, preset keyword arguments: the paper's values for that benchmark)
REGISTRY: dict[str, tuple[type[Solver], dict[str, Any]]] = {
    "fhn": (FitzHughNagumoLB, {}),
    "ks": (KuramotoSivashinsky, {}),
    "ad1d": (AdvectionDiffusionParticles, dict(dim=1, amplitude=1.0, frequency=0.1)),
    "ad3d": (
        AdvectionDiffusionParticles,
        dict(dim=3, amplitude=[1.0, 1.5, 0.0], frequency=[0.2, 1.0, 0.5]),
    ),
    "rw": (LatticeRandomWalk, {}),
    "bgk": (BGK, {}),
    "boltzmann": (Boltzmann, {}),
    "boltzmann3d": (Boltzmann3D, {}),
}


def names() -> tuple[str, ...]:
    """Registered system names."""
    return tuple(REGISTRY)


def make(name: str, **params: Any) -> Solver:
    """Build the solver ``name`` with the paper's parameters, overridden by ``params``.

    Raises ``ValueError`` for an unknown name (listing the valid ones), an unknown
    parameter (listing the solver's parameters) or an invalid value.
    """
    if name not in REGISTRY:
        raise ValueError(f"unknown system {name!r}; allowed: {', '.join(REGISTRY)}")
    cls, preset = REGISTRY[name]
    return construct(cls, preset, name, params)


def constructor_parameters(cls: type) -> list[str]:
    """Keyword parameters of ``cls.__init__`` (the solver's physical parameters)."""
    return [p for p in inspect.signature(cls.__init__).parameters if p != "self"]


def construct(cls: type, preset: dict[str, Any], name: str, params: dict[str, Any]) -> Solver:
    """``cls(**preset, **params)`` named ``name``; ``ValueError`` for a parameter the
    solver does not take (listing those it does) or an invalid value.  The one place a
    solver is built (:func:`make`, :meth:`ledmus.systems.SystemSpec.make`)."""
    allowed = constructor_parameters(cls)
    unknown = sorted(set(params) - set(allowed))
    if unknown:
        raise ValueError(
            f"unknown parameter(s) {', '.join(unknown)} for system {name!r}; "
            f"allowed: {', '.join(allowed)}"
        )
    solver = cls(**{**preset, **params})
    solver.system = name
    return solver


__all__ = [
    "BGK",
    "REGISTRY",
    "AdvectionDiffusionParticles",
    "Boltzmann",
    "Boltzmann3D",
    "FitzHughNagumoLB",
    "KuramotoSivashinsky",
    "LatticeRandomWalk",
    "Solver",
    "construct",
    "constructor_parameters",
    "load_fhn_ic",
    "make",
    "names",
]
