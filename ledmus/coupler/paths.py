"""Finding the files that settings name (model checkpoints, training configs, ICs), and
reading the settings of a yMMSL file."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

#: the folders of a source checkout that hold what the shipped yMMSL files name
SHIPPED = ("configs", "models")


def source_checkout() -> Path | None:
    """The source checkout this ``ledmus`` package runs from (an editable install, or
    ``python -m ledmus`` in the clone): the folder holding ``ledmus/``, ``configs/`` and
    ``models/``.  ``None`` for a package installed from a wheel (``site-packages``)."""
    root = Path(__file__).resolve().parents[2]
    return root if all((root / d).is_dir() for d in ("ledmus", *SHIPPED)) else None


def shipped_hint() -> str:
    """Where the shipped models and configs are, for the end of a not-found line."""
    root = source_checkout()
    if root is not None:
        return f"the shipped models and configs are in {root / 'models'} and {root / 'configs'}"
    return (
        "the shipped models and configs are not installed with the package: they are in "
        "the ledmus source repository; clone it and run from its root (or set "
        "LEDMUS_BASE_DIR to the clone)"
    )


def missing_hint(paths: list[str] | list[Path]) -> str:
    """The end of a not-found line for ``paths``: the working directory when one of them is
    relative, then where the shipped models and configs are."""
    relative = any(not Path(p).is_absolute() for p in paths)
    where = f" (relative to the working directory {Path.cwd()})" if relative else ""
    return f"{where}; {shipped_hint()}"


def resolve_file(value: str, setting: str, search: list[Path]) -> Path:
    """An existing file for ``value``: as given when absolute, else the first of
    ``search`` (then the ``LEDMUS_BASE_DIR`` environment variable, then the source
    checkout holding the ``ledmus`` package, if any) that holds it; else ``ValueError``
    (one line; for a ``models/...`` or ``configs/...`` path of an installed package it
    says where the shipped files are)."""
    path = Path(os.path.expanduser(value))
    if path.is_absolute():
        if path.is_file():
            return path
        raise ValueError(f"setting {setting}: file {value!r} does not exist")
    roots: list[Path] = []
    for root in [*search, os.environ.get("LEDMUS_BASE_DIR"), source_checkout()]:
        if root and Path(root).resolve() not in roots:
            roots.append(Path(root).resolve())
    for root in roots:
        if (root / path).is_file():
            return (root / path).resolve()
    looked = ", ".join(str(r) for r in roots)
    hint = ""
    if source_checkout() is None and path.parts[0] in SHIPPED:
        hint = f"; {shipped_hint()}"
    raise ValueError(f"setting {setting}: file {value!r} not found (looked in: {looked}){hint}")


def read_ymmsl_settings(path: str | os.PathLike) -> dict[str, Any]:
    """The ``settings`` section of a yMMSL file as a plain dict (instance-specific
    names such as ``micro.seed`` are folded onto the global name)."""
    import ymmsl

    path = Path(path)
    if not path.is_file():
        raise ValueError(f"yMMSL file {str(path)!r} does not exist{missing_hint([path])}")
    try:
        config = ymmsl.load(path)
    except Exception as exc:  # ymmsl raises yatiml's RecognitionError and friends
        raise ValueError(f"{path}: not a valid yMMSL file: {exc}") from None
    out: dict[str, Any] = {}
    for key, value in (config.settings or {}).items():
        name = str(key).split(".")[-1]
        out[name] = list(value) if isinstance(value, list) else value
    return out
