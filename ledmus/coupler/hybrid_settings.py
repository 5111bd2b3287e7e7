"""Settings of the cell-local hybrid (:mod:`ledmus.coupler.hybrid`): the criteria, their
thresholds, buffer and hysteresis, validated by the shared :mod:`ledmus.validation`
layer; and the cost model ``S ≈ 1/(f_k + (1 - f_k)/S_c)``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..validation import Field, as_bool, as_choice, as_int, as_number, parse_fields
from .hybrid_cells import CRITERIA, get_criterion

#: default thresholds θ of the criteria (settings ``threshold_<name>``)
THRESHOLDS = {
    "deviation": 0.1,
    "realisability": 1.0,
    "kn_gll": 0.05,
    "jump": 0.1,
    "noneq": 0.05,
}


def _as_criteria(label: str, value: Any) -> tuple[str, ...]:
    items = [v.strip() for v in value.split(",")] if isinstance(value, str) else value
    if (
        not isinstance(items, (list, tuple))
        or not items
        or not all(isinstance(v, str) for v in items)
    ):
        raise ValueError(
            f"{label} must be a list of criteria (or names joined by commas); allowed: "
            f"{', '.join(CRITERIA)}"
        )
    for name in items:
        try:
            get_criterion(name)
        except ValueError as exc:
            raise ValueError(f"{label}: {exc}") from None
    return tuple(items)


def _hysteresis(label: str, value: Any) -> float:
    value = as_number(0.0, strict=True)(label, value)
    if value > 1:
        raise ValueError(f"{label} must be in (0, 1] (exit threshold / entry), got {value!r}")
    return float(value)


FIELDS = (
    Field("criteria", _as_criteria, ("deviation", "realisability", "kn_gll"), "criteria"),
    Field("buffer", as_int(0), 2, "buffer cells at each side (at least the wave reach)"),
    Field("hysteresis", _hysteresis, 0.5, "a core cell leaves below hysteresis x threshold"),
    *(
        Field(f"threshold_{name}", as_number(0.0, strict=True), value, f"θ of {name}")
        for name, value in THRESHOLDS.items()
    ),
    Field("lift_ghosts", as_choice(("decoder", "maxwellian")), "decoder", "ghost-cell lift"),
    Field("record", as_bool, True, "keep the per-step masks and fields"),
)


@dataclass(frozen=True)
class HybridSettings:
    """The hybrid's own settings (:data:`FIELDS`; unknown names are refused)."""

    criteria: tuple[str, ...] = ("deviation", "realisability", "kn_gll")
    buffer: int = 2
    hysteresis: float = 0.5
    thresholds: Mapping[str, float] = field(default_factory=lambda: dict(THRESHOLDS))
    lift_ghosts: str = "decoder"
    record: bool = True

    @classmethod
    def parse(cls, raw: Mapping[str, Any], *, unknown: str = "error") -> HybridSettings:
        """From settings ``raw`` (the names of :data:`FIELDS`); ``ValueError`` naming the
        field and what is allowed."""
        v = parse_fields(FIELDS, raw, what="hybrid setting", unknown=unknown)
        return cls(
            criteria=v["criteria"],
            buffer=v["buffer"],
            hysteresis=v["hysteresis"],
            thresholds={name: float(v[f"threshold_{name}"]) for name in THRESHOLDS},
            lift_ghosts=v["lift_ghosts"],
            record=v["record"],
        )


def cost_model(kinetic_fraction: float, closure_speedup: float) -> float:
    """``S ≈ 1/(f_k + (1 - f_k)/S_c)``: the speed-up over the kinetic solver of a hybrid
    whose kinetic cells cost what the kinetic solver's do and whose closure cells cost
    ``1/S_c`` of it."""
    return 1.0 / (kinetic_fraction + (1.0 - kinetic_fraction) / closure_speedup)
