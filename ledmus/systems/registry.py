"""The system registry: name -> :class:`~ledmus.systems.spec.SystemSpec`."""

from __future__ import annotations

from .. import solvers
from .spec import LAYOUTS, SystemSpec

_SPECS: dict[str, SystemSpec] = {}


def register(spec: SystemSpec, *, replace: bool = False) -> SystemSpec:
    """Add ``spec`` (and its solver and preset to :data:`ledmus.solvers.REGISTRY`, so
    ``ledmus.solvers.make(spec.name)`` works); returns it.

    Raises ``ValueError`` for a layout outside :data:`LAYOUTS` or, unless ``replace``, a
    name that is already registered.
    """
    if not isinstance(spec, SystemSpec):
        raise ValueError(f"register() needs a SystemSpec, got {type(spec).__name__}")
    if spec.layout not in LAYOUTS:  # SystemSpec checks it too; a spec may be forged
        raise ValueError(f"layout={spec.layout!r} unknown; allowed: {', '.join(LAYOUTS)}")
    if spec.name in _SPECS and not replace:
        raise ValueError(
            f"system {spec.name!r} is already registered; pass replace=True to replace it"
        )
    _SPECS[spec.name] = spec
    solvers.REGISTRY[spec.name] = (spec.solver, dict(spec.preset))
    return spec


def unregister(name: str) -> None:
    """Remove system ``name`` (from :data:`ledmus.solvers.REGISTRY` too)."""
    get(name)
    del _SPECS[name]
    solvers.REGISTRY.pop(name, None)


def get(name: str) -> SystemSpec:
    """The spec of system ``name``; ``ValueError`` listing the registered names."""
    try:
        return _SPECS[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown system {name!r}; allowed: {', '.join(_SPECS)}") from None


def names() -> tuple[str, ...]:
    """Registered system names, in registration order."""
    return tuple(_SPECS)
