"""One validation layer for settings and configs: frozen field declarations and parsers
that raise ``ValueError`` naming the field and what is allowed."""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

REQUIRED: Any = object()


@dataclass(frozen=True)
class Field:
    """A named field: ``parse(label, value)`` checks and converts; ``doc`` says what is
    allowed (shown in errors and listings)."""

    name: str
    parse: Callable[[str, Any], Any]
    default: Any = REQUIRED
    doc: str = ""


def as_bool(label: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    raise ValueError(f"{label} must be true or false, got {value!r}")


def as_int(minimum: int) -> Callable[[str, Any], int]:
    def parse(label: str, value: Any) -> int:
        ok = (
            not isinstance(value, bool)
            and isinstance(value, (int, float))
            and float(value).is_integer()
            and int(value) >= minimum
        )
        if not ok:
            raise ValueError(f"{label} must be an integer >= {minimum}, got {value!r}")
        return int(value)

    return parse


def as_time(label: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{label} must be a number (a time), got {value!r}")
    value = float(value)
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{label} must be finite and >= 0, got {value!r}")
    return value


def as_number(minimum: float, *, strict: bool = False) -> Callable[[str, Any], float]:
    """A finite real number ``>= minimum`` (``> minimum`` when ``strict``), returned as
    given (int or float)."""
    relation = ">" if strict else ">="

    def parse(label: str, value: Any) -> float:
        ok = (
            not isinstance(value, bool)
            and isinstance(value, (int, float))
            and math.isfinite(value)
            and (value > minimum if strict else value >= minimum)
        )
        if not ok:
            raise ValueError(f"{label} must be a number {relation} {minimum:g}, got {value!r}")
        return value

    return parse


def as_int_list(minimum: int) -> Callable[[str, Any], list[int] | tuple[int, ...]]:
    """A non-empty list (or tuple) of integers ``>= minimum``, returned as given."""

    def parse(label: str, value: Any) -> list[int] | tuple[int, ...]:
        ok = (
            isinstance(value, (list, tuple))
            and len(value) > 0
            and all(not isinstance(v, bool) and isinstance(v, int) and v >= minimum for v in value)
        )
        if not ok:
            raise ValueError(
                f"{label} must be a non-empty list of integers >= {minimum}, got {value!r}"
            )
        return value

    return parse


def as_path(label: str, value: Any) -> str | os.PathLike:
    """A file or folder path (a string or a path object), returned as given."""
    if not isinstance(value, (str, os.PathLike)):
        raise ValueError(f"{label} must be a path (a string), got {value!r}")
    return value


def as_str(label: str, value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{label} must be a string, got {value!r}")
    return value


def as_choice(choices: Iterable[str]) -> Callable[[str, Any], str]:
    allowed = tuple(choices)

    def parse(label: str, value: Any) -> str:
        if value not in allowed:
            raise ValueError(f"{label}={value!r} unknown; allowed: {', '.join(allowed)}")
        return value

    return parse


def parse_fields(fields: Iterable[Field], raw: Mapping[str, Any], *, what: str = "setting",
                 unknown: str = "error", extra: str = "") -> dict[str, Any]:  # fmt: skip
    """Parse ``raw`` against ``fields``; returns every field's value (defaults filled).

    ``unknown``: ``"error"`` (name them and list the allowed fields, plus ``extra``) or
    ``"ignore"`` (settings meant for other components).
    """
    fields = list(fields)
    names = [f.name for f in fields]
    strange = sorted(set(raw) - set(names))
    if strange and unknown == "error":
        more = f" and {extra}" if extra else ""
        raise ValueError(
            f"unknown {what}(s) {', '.join(strange)}; allowed: {', '.join(names)}{more}"
        )
    missing = [f.name for f in fields if f.default is REQUIRED and f.name not in raw]
    if missing:
        raise ValueError(f"missing {what}(s): {', '.join(missing)}")
    return {
        f.name: f.parse(f"{what} {f.name}", raw[f.name]) if f.name in raw else f.default
        for f in fields
    }
