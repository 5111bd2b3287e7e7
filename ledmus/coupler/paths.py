"""Finding the files that settings name (model checkpoints, training configs, ICs), and
reading the settings of a yMMSL file."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any


def resolve_file(value: str, setting: str, search: list[Path]) -> Path:
    """An existing file for ``value``: as given when absolute, else the first of
    ``search`` (then the ``LEDMUS_BASE_DIR`` environment variable, then the source
    checkout holding the ``ledmus`` package) that holds it; else ``ValueError``."""
    path = Path(os.path.expanduser(value))
    if path.is_absolute():
        if path.is_file():
            return path
        raise ValueError(f"setting {setting}: file {value!r} does not exist")
    roots: list[Path] = []
    for root in [*search, os.environ.get("LEDMUS_BASE_DIR"), Path(__file__).resolve().parents[2]]:
        if root and Path(root).resolve() not in roots:
            roots.append(Path(root).resolve())
    for root in roots:
        if (root / path).is_file():
            return (root / path).resolve()
    looked = ", ".join(str(r) for r in roots)
    raise ValueError(f"setting {setting}: file {value!r} not found (looked in: {looked})")


def read_ymmsl_settings(path: str | os.PathLike) -> dict[str, Any]:
    """The ``settings`` section of a yMMSL file as a plain dict (instance-specific
    names such as ``micro.seed`` are folded onto the global name)."""
    import ymmsl

    path = Path(path)
    if not path.is_file():
        raise ValueError(f"yMMSL file {str(path)!r} does not exist")
    try:
        config = ymmsl.load(path)
    except Exception as exc:  # ymmsl raises yatiml's RecognitionError and friends
        raise ValueError(f"{path}: not a valid yMMSL file: {exc}") from None
    out: dict[str, Any] = {}
    for key, value in (config.settings or {}).items():
        name = str(key).split(".")[-1]
        out[name] = list(value) if isinstance(value, list) else value
    return out
