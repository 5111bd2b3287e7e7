"""Finding the files that settings name (model checkpoints, training configs, ICs)."""

from __future__ import annotations

import os
from pathlib import Path


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
