"""One validation layer for settings and configs: frozen field declarations and parsers
that raise ``ValueError`` naming the field and what is allowed."""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import yaml

REQUIRED: Any = object()

#: a number as people write it: ``1e-9``, ``1E-9``, ``.5``, ``5.``, ``-.5``, ``1e6``,
#: ``1_000``, ``.inf`` (YAML 1.1, and so PyYAML, reads ``1e-9`` and ``1e6`` as strings)
NUMBER_TEXT = re.compile(
    r"""^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)?$"""
    r"""|^[-+]?\.(?:inf|Inf|INF)$|^\.(?:nan|NaN|NAN)$"""
)
_INT_TEXT = re.compile(r"^[-+]?[0-9][0-9_]*$")
#: YAML floats: every spelling of :data:`NUMBER_TEXT` that is not an integer
_FLOAT_TEXT = re.compile(
    r"""^(?:[-+]?(?:[0-9][0-9_]*\.[0-9_]*|\.[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)?"""
    r"""|[-+]?[0-9][0-9_]*[eE][-+]?[0-9]+|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"""
)


class YamlLoader(yaml.SafeLoader):
    """PyYAML's safe loader reading numbers as YAML 1.2 (and yMMSL) do: ``1e-9``,
    ``1E-9`` and ``1e6`` are floats, not strings."""


YamlLoader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:float"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
YamlLoader.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT_TEXT, list("-+0123456789."))


def load_yaml(text: str) -> Any:
    """``yaml.safe_load`` with numbers read as users write them (:class:`YamlLoader`):
    the one YAML reader of settings given on the command line."""
    return yaml.load(text, Loader=YamlLoader)  # noqa: S506 - a SafeLoader subclass


def number_from_text(value: Any) -> Any:
    """``value``, or the number a string spells (``"1e-9"`` -> ``1e-09``, ``"5"`` -> ``5``,
    ``".5"`` -> ``0.5``): settings that reach a parser as text (PyYAML, quoted YAML)
    count as the numbers they spell."""
    if not isinstance(value, str) or not NUMBER_TEXT.match(value.strip()):
        return value
    text = value.strip()
    if _INT_TEXT.match(text):
        return int(text.replace("_", ""))
    return float(load_yaml(text))


def plain_numbers(value: Any) -> Any:
    """``value`` with every string that spells a number replaced by the number, in lists
    and mappings too (solver parameters, ``param_schedule`` entries)."""
    if isinstance(value, Mapping):
        return {k: plain_numbers(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(plain_numbers(v) for v in value)
    return number_from_text(value)


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
        value = number_from_text(value)
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
    value = number_from_text(value)
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
        value = number_from_text(value)
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
        if isinstance(value, (list, tuple)):
            value = type(value)(number_from_text(v) for v in value)
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


def as_choice_list(choices: Iterable[str]) -> Callable[[str, Any], list[str]]:
    """A non-empty list of names from ``choices``, returned as a list."""
    allowed = tuple(choices)

    def parse(label: str, value: Any) -> list[str]:
        ok = (
            isinstance(value, (list, tuple))
            and len(value) > 0
            and all(isinstance(v, str) and v in allowed for v in value)
        )
        if not ok:
            raise ValueError(
                f"{label} must be a non-empty list of {', '.join(allowed)}; got {value!r}"
            )
        return list(value)

    return parse


def as_mapping(label: str, value: Any) -> dict[str, Any]:
    """A mapping (its fields are checked by whoever reads it), returned as a dict."""
    if not isinstance(value, Mapping):
        raise ValueError(f"{label} must be a mapping, got {value!r}")
    return dict(value)


def parse_fields(
    fields: Iterable[Field],
    raw: Mapping[str, Any],
    *,
    what: str = "setting",
    unknown: str = "error",
    extra: str = "",
) -> dict[str, Any]:
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
