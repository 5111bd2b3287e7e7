"""Trajectory files (HDF5) and the paper's datasets.

File contract (DESIGN.md): dataset ``states`` shaped ``(B, T, *state_shape)``, dataset
``t`` shaped ``(T,)``, root attributes ``system``, ``params`` (JSON), ``dt_coarse``,
``dt_micro``, ``seed``, ``ledmus_version``.  Every file is written to a temporary name
in the target folder and renamed into place, so an interrupted run never leaves a file
that looks complete.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from . import __version__
from .solvers import Solver, make

log = logging.getLogger(__name__)


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
    solver: Solver,
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
    if states.ndim < 2 or states.shape[1] != t.shape[0] or states.shape[2:] != solver.state_shape:
        raise ValueError(
            f"states {states.shape} and t {t.shape} do not match (B, T, *{solver.state_shape})"
        )
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


# --------------------------------------------------------------------------- datasets
@dataclass(frozen=True)
class Split:
    """One split of a dataset: ``batch`` runs from ``ic``, ``discard`` then ``t_end``."""

    ic: str | tuple[str, ...]
    batch: int
    t_end: float
    discard: float = 0.0
    #: test splits: number and length (coarse steps) of random evaluation windows
    windows: int = 0
    window_length: int = 0


@dataclass(frozen=True)
class Protocol:
    """A dataset recipe: solver parameters and the train/val/test splits."""

    system: str
    description: str
    splits: dict[str, Split]
    params: dict[str, Any] = field(default_factory=dict)


def _fhn(scale: str) -> Protocol:
    # Seed 001 §8.3: runs from y00–y05, first 2 time units dropped, 451 samples (Δt = 1);
    # the test run is long enough for 100 windows of T_warm (≤ 100) + 8000 steps.
    if scale == "paper":
        n, test_len, windows, win = 450, 10_000, 100, 8_100
    else:
        n, test_len, windows, win = 40, 150, 4, 100
    return Protocol(
        "fhn",
        "Seed 001 §8.3: y00-y02 train, y03-y04 validation, y05 test; transient of 2 dropped.",
        {
            "train": Split(("y00", "y01", "y02"), 3, n, discard=2.0),
            "val": Split(("y03", "y04"), 2, n, discard=2.0),
            "test": Split(("y05",), 1, test_len, discard=2.0, windows=windows, window_length=win),
        },
    )


def _ks(scale: str) -> Protocol:
    # Seed 001 §8.4: transient 1000 dropped; 5e3 train, 5e3 val, 1e5 test samples (Δt = 0.25),
    # each split from its own random initial condition.
    if scale == "paper":
        transient, n_train, n_test, windows, win = 1000.0, 5_000, 100_000, 100, 4_000
    else:
        transient, n_train, n_test, windows, win = 100.0, 200, 1_000, 4, 200
    dt = 0.25
    return Protocol(
        "ks",
        "Seed 001 §8.4: random initial conditions, transient dropped, Δt = 0.25.",
        {
            "train": Split("random", 1, (n_train - 1) * dt, discard=transient),
            "val": Split("random", 1, (n_train - 1) * dt, discard=transient),
            "test": Split(
                "random",
                1,
                (n_test - 1) * dt,
                discard=transient,
                windows=windows,
                window_length=win,
            ),
        },
    )


def _ad(system: str, scale: str) -> Protocol:
    # Seed 001 §8.1–8.2: 1e3 train, 1e3 validation, 1e4 test samples at Δt = 0.5, random
    # initial conditions (all particles of a run start at one random point).
    if scale == "paper":
        runs, params = (2, 500, 10, 1000), {}
    else:
        runs, params = (2, 10, 2, 20), {"n_particles": 200}
    b_tr, t_tr, b_te, t_te = runs
    return Protocol(
        system,
        "Seed 001 §8.1/8.2: point-source random initial conditions, Δt = 0.5.",
        {
            "train": Split("random", b_tr, (t_tr - 1) * 0.5),
            "val": Split("random", b_tr, (t_tr - 1) * 0.5),
            "test": Split("random", b_te, (t_te - 1) * 0.5),
        },
        params,
    )


def _rw(scale: str) -> Protocol:
    # Seed 003 §3.3: 64 sequences of T = 9 coarse steps (Δt = 4) for training, plus a long
    # test sequence (the paper predicts to 35 Δt; we record 40).
    if scale == "paper":
        b, t_train, t_test, params = 64, 9, 40, {}
    else:
        b, t_train, t_test, params = 4, 3, 5, {"n_particles": 20_000, "dt_coarse": 0.5}
    dt = params.get("dt_coarse", 4.0)
    return Protocol(
        "rw",
        "Seed 003 §3: random smooth initial densities, 25-bin fractions.",
        {"train": Split("random", b, t_train * dt), "test": Split("random", 1, t_test * dt)},
        params,
    )


PROTOCOLS: dict[str, Callable[[str], Protocol]] = {
    "fhn": _fhn,
    "ks": _ks,
    "ad1d": lambda scale: _ad("ad1d", scale),
    "ad3d": lambda scale: _ad("ad3d", scale),
    "rw": _rw,
}
SCALES = ("paper", "small")
SPLIT_SEED_OFFSET = {"train": 0, "val": 1, "test": 2}


def make_dataset(
    system: str,
    out: str | os.PathLike,
    *,
    scale: str = "paper",
    seed: int = 0,
    progress: bool = True,
) -> dict[str, Any]:
    """Generate the paper's train/val/test splits of ``system`` into folder ``out``.

    Each split is ``out/<split>.h5``; its seed is ``seed + {train: 0, val: 1, test: 2}``
    (recorded in the file).  Test splits with evaluation windows also hold ``offsets``:
    random start indices such that ``offsets + window_length <= T``.  A ``manifest.json``
    lists the files, shapes and seeds.  Returns the manifest.
    """
    if system not in PROTOCOLS:
        raise ValueError(f"no dataset protocol for {system!r}; allowed: {', '.join(PROTOCOLS)}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be an integer >= 0, got {seed!r}")
    if scale not in SCALES:
        raise ValueError(f"scale={scale!r} unknown; allowed: {', '.join(SCALES)}")
    protocol = PROTOCOLS[system](scale)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    solver = make(system, **protocol.params)
    manifest: dict[str, Any] = {
        "system": system, "scale": scale, "seed": seed, "description": protocol.description,
        "params": solver.params(), "ledmus_version": __version__, "splits": {},
    }  # fmt: skip
    for name, split in protocol.splits.items():
        split_seed = seed + SPLIT_SEED_OFFSET[name]
        rng = np.random.default_rng(split_seed)
        if isinstance(split.ic, tuple):
            ic = np.concatenate([solver.initial_condition(n, 1, rng) for n in split.ic])
        else:
            ic = solver.initial_condition(split.ic, split.batch, rng)
        log.info("%s/%s: %d run(s) to t=%g", system, name, split.batch, split.discard + split.t_end)
        t, states = solver.rollout(ic, split.t_end, rng, discard=split.discard, progress=progress)
        extra, attrs = {}, {"split": name, "ic": json.dumps(split.ic), "discard": split.discard}
        if split.windows:
            n_t = states.shape[1]
            if split.window_length > n_t:
                raise ValueError(f"window_length {split.window_length} exceeds the run ({n_t})")
            extra["offsets"] = np.sort(
                rng.integers(0, n_t - split.window_length + 1, split.windows)
            )
            attrs["window_length"] = split.window_length
        path = write_trajectory(
            out / f"{name}.h5", states, t, solver, split_seed, attrs=attrs, extra=extra
        )
        manifest["splits"][name] = {
            "file": path.name, "shape": list(states.shape), "seed": split_seed,
            "t0": float(t[0]), "t_end": float(t[-1]), **({"windows": split.windows,
            "window_length": split.window_length} if split.windows else {}),
        }  # fmt: skip
    write_json(out / "manifest.json", manifest)
    return manifest
