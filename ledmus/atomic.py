"""Atomic file writes: a temporary file beside the target, renamed into place on success,
so an interrupted run never leaves a half file that looks complete."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` on success.

    On an exception the temporary file is removed and ``path`` is left untouched.
    """
    path = Path(path)
    if not path.parent.is_dir():
        raise ValueError(f"output folder {str(path.parent)!r} does not exist")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the file the usual mode
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: str | os.PathLike, payload: Any) -> None:
    """Write ``payload`` as indented JSON, atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n")


def split_series(
    payload: dict[str, Any], max_len: int = 64
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Split a metrics dict into what ``metrics.json`` keeps (scalars, strings, small
    lists and tables) and the per-step series (lists longer than ``max_len``), the latter
    keyed by their path ``"errors/nad_t/u"``."""
    series: dict[str, Any] = {}

    def keep(value: Any, path: str) -> Any:
        if isinstance(value, dict):
            kept = {
                k: v
                for k, v in ((k, keep(v, f"{path}/{k}" if path else k)) for k, v in value.items())
                if v is not _MOVED
            }
            return _MOVED if value and not kept else kept  # a table of series only: gone
        if isinstance(value, (list, tuple)) and len(value) > max_len:
            series[path] = value
            return _MOVED
        return value

    kept = keep(payload, "")
    return ({} if kept is _MOVED else kept), series


_MOVED = object()


def write_series(path: str | os.PathLike, series: dict[str, Any]) -> None:
    """Write named series as HDF5 datasets (``"errors/nad_t/u"`` makes the groups),
    atomically; nothing is written for no series."""
    if not series:
        return
    import h5py
    import numpy as np

    with atomic_path(path) as tmp, h5py.File(tmp, "w") as h5:
        for name, values in series.items():
            h5.create_dataset(name, data=np.asarray(values))
