"""Trajectory files (HDF5).

File contract: dataset ``states`` shaped ``(B, T, *state_shape)``, dataset
``t`` shaped ``(T,)``, root attributes ``system``, ``params`` (JSON), ``dt_coarse``,
``dt_micro``, ``seed``, ``ledmus_version``.  Every file is written atomically
(:func:`ledmus.atomic.atomic_path`).

This module does not import the solvers: :func:`write_trajectory` takes any object with
the solver attributes it records (``state_shape``, ``system``, ``params()``, ``dt``,
``dt_coarse``), so the surrogates can read and write trajectories without them.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import h5py
import numpy as np

from . import __version__
from .atomic import atomic_path


class SolverLike(Protocol):
    """What :func:`write_trajectory` reads from a solver."""

    system: str
    dt: float
    dt_coarse: float

    @property
    def state_shape(self) -> tuple[int, ...]: ...

    def params(self) -> dict[str, Any]: ...


@dataclass
class Trajectory:
    """An in-memory trajectory file: states ``(B, T, *state_shape)``, times ``(T,)``."""

    states: np.ndarray
    t: np.ndarray
    system: str
    params: dict[str, Any]
    dt_coarse: float
    dt_micro: float
    seed: int | None
    attrs: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, np.ndarray] = field(default_factory=dict)


def write_trajectory(
    path: str | os.PathLike,
    states: np.ndarray,
    t: np.ndarray,
    solver: SolverLike,
    seed: int | None,
    *,
    attrs: dict[str, Any] | None = None,
    extra: dict[str, np.ndarray] | None = None,
) -> Path:
    """Write a trajectory file per the HDF5 contract, atomically.

    ``states``: ``(B, T, *solver.state_shape)``; ``t``: ``(T,)``; ``extra`` holds further
    named datasets (e.g. test-window offsets), ``attrs`` further root attributes.
    """
    states = np.asarray(states)
    t = np.asarray(t, dtype=np.float64)
    shape = tuple(solver.state_shape)
    if states.ndim < 2 or states.shape[1] != t.shape[0] or states.shape[2:] != shape:
        raise ValueError(f"states {states.shape} and t {t.shape} do not match (B, T, *{shape})")
    path = Path(path)
    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w") as h5:
            h5.create_dataset("states", data=states)
            h5.create_dataset("t", data=t)
            for name, arr in (extra or {}).items():
                h5.create_dataset(name, data=arr)
            h5.attrs["system"] = solver.system
            h5.attrs["params"] = json.dumps(solver.params(), sort_keys=True)
            h5.attrs["dt_coarse"] = solver.dt_coarse
            h5.attrs["dt_micro"] = solver.dt
            h5.attrs["seed"] = -1 if seed is None else int(seed)
            h5.attrs["ledmus_version"] = __version__
            for key, value in (attrs or {}).items():
                h5.attrs[key] = value
    return path


def read_trajectory(path: str | os.PathLike) -> Trajectory:
    """Read a trajectory file written by :func:`write_trajectory`."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"trajectory file {str(path)!r} does not exist")
    required = ("system", "params", "dt_coarse", "dt_micro", "seed", "ledmus_version")
    with h5py.File(path, "r") as h5:
        missing = [k for k in ("states", "t") if k not in h5] + [
            k for k in required if k not in h5.attrs
        ]
        if missing:
            raise ValueError(
                f"{path} is not a ledmus trajectory file: missing {', '.join(missing)}"
            )
        attrs = {k: v for k, v in h5.attrs.items() if k not in required}
        extra = {k: h5[k][()] for k in h5 if k not in ("states", "t")}
        seed = int(h5.attrs["seed"])
        return Trajectory(
            states=h5["states"][()],
            t=h5["t"][()],
            system=str(h5.attrs["system"]),
            params=json.loads(h5.attrs["params"]),
            dt_coarse=float(h5.attrs["dt_coarse"]),
            dt_micro=float(h5.attrs["dt_micro"]),
            seed=None if seed < 0 else seed,
            attrs=attrs,
            extra=extra,
        )


def fingerprint(*trajectories: Trajectory) -> str:
    """SHA-256 over the states, times and parameters of the given trajectories."""
    h = hashlib.sha256()
    for traj in trajectories:
        h.update(np.ascontiguousarray(traj.states).tobytes())
        h.update(np.ascontiguousarray(traj.t).tobytes())
        h.update(json.dumps(traj.params, sort_keys=True).encode())
    return h.hexdigest()
