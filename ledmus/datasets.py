"""The paper's datasets: train/val/test splits of a system, by its registered protocol
(:attr:`ledmus.systems.SystemSpec.dataset`)."""

from __future__ import annotations

import json
import logging
import os
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from . import __version__, systems
from .atomic import write_json
from .trajectory import write_trajectory

log = logging.getLogger(__name__)

SCALES = ("paper", "small")
SPLIT_SEED_OFFSET = {"train": 0, "val": 1, "test": 2}


def with_dataset() -> tuple[str, ...]:
    """Names of the registered systems that have a dataset protocol."""
    return tuple(n for n in systems.names() if systems.get(n).dataset is not None)


def make_dataset(
    system: str,
    out: str | os.PathLike,
    *,
    scale: str = "paper",
    seed: int = 0,
    progress: bool = True,
    splits: tuple[str, ...] | None = None,
    runs: int | None = None,
) -> dict[str, Any]:
    """Generate the train/val/test splits of ``system`` into folder ``out``.

    Each split is ``out/<split>.h5``; its seed is ``seed + {train: 0, val: 1, test: 2}``
    (recorded in the file).  Test splits with evaluation windows also hold ``offsets``:
    random start indices such that ``offsets + window_length <= T``.  A ``manifest.json``
    lists the files, shapes and seeds.  ``splits``: generate only these (the others in
    an existing manifest are kept).  ``runs``: independent runs in each of the train and
    validation splits (each from its own random initial condition; None: the protocol's
    number); only for splits that start from random initial conditions.  Returns the
    manifest.
    """
    spec = systems.get(system)
    if spec.dataset is None:
        raise ValueError(
            f"no dataset protocol for {system!r}; allowed: {', '.join(with_dataset())}"
        )
    _check_count("seed", seed, 0)
    if scale not in SCALES:
        raise ValueError(f"scale={scale!r} unknown; allowed: {', '.join(SCALES)}")
    protocol = spec.dataset(scale)
    unknown = sorted(set(protocol.splits) - set(SPLIT_SEED_OFFSET))
    if unknown:
        raise ValueError(
            f"{system!r} dataset protocol has split(s) {', '.join(unknown)}; "
            f"allowed: {', '.join(SPLIT_SEED_OFFSET)}"
        )
    if splits is not None and set(splits) - set(protocol.splits):
        raise ValueError(
            f"splits {', '.join(sorted(set(splits) - set(protocol.splits)))} unknown for "
            f"{system!r}; allowed: {', '.join(protocol.splits)}"
        )
    if runs is not None:
        protocol = _with_runs(system, protocol, runs)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    solver = spec.make(**protocol.params)
    manifest: dict[str, Any] = {
        "system": system,
        "scale": scale,
        "seed": seed,
        "runs": {n: sp.batch for n, sp in protocol.splits.items()},
        "description": protocol.description,
        "params": solver.params(),
        "ledmus_version": __version__,
        "splits": {},
    }
    old = out / "manifest.json"
    if splits is not None and old.is_file():
        previous = json.loads(old.read_text())
        if (previous.get("seed"), previous.get("scale")) == (seed, scale):
            manifest["splits"].update(previous.get("splits", {}))
            kept = {n: v for n, v in previous.get("runs", {}).items() if n not in splits}
            manifest["runs"].update(kept)
    for name, split in protocol.splits.items():
        if splits is not None and name not in splits:
            continue
        split_seed = seed + SPLIT_SEED_OFFSET[name]
        rng = np.random.default_rng(split_seed)
        log.info("%s/%s: %d run(s) to t=%g", system, name, split.batch, split.discard + split.t_end)
        extra, attrs = {}, {"split": name, "ic": json.dumps(split.ic), "discard": split.discard}
        if split.per_run:
            t, states, drawn = _per_run_rollouts(spec, protocol.params, split, rng, progress)
            extra.update(drawn)
            attrs["per_run"] = json.dumps([list(p) for p in split.per_run])
        else:
            if isinstance(split.ic, tuple):
                ic = np.concatenate([solver.initial_condition(n, 1, rng) for n in split.ic])
            else:
                ic = solver.initial_condition(split.ic, split.batch, rng)
            t, states = solver.rollout(
                ic, split.t_end, rng, discard=split.discard, progress=progress
            )
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
            "file": path.name,
            "shape": list(states.shape),
            "seed": split_seed,
            "t0": float(t[0]),
            "t_end": float(t[-1]),
            **(
                {"windows": split.windows, "window_length": split.window_length}
                if split.windows
                else {}
            ),
        }
    write_json(out / "manifest.json", manifest)
    return manifest


def _check_count(label: str, value: Any, minimum: int) -> None:
    """``ValueError`` naming ``label`` unless ``value`` is an integer (Python or numpy, not
    a bool) ``>= minimum``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{label} must be an integer >= {minimum}, got {value!r}")


#: the splits whose number of runs ``runs`` sets
RUNS_SPLITS = ("train", "val")


def _with_runs(system: str, protocol: Any, runs: Any) -> Any:
    """``protocol`` with ``runs`` runs in its train and validation splits; ``ValueError``
    naming ``runs`` when it is not an integer >= 1 or a split does not start from random
    initial conditions."""
    _check_count("runs", runs, 1)
    new = dict(protocol.splits)
    for name in RUNS_SPLITS:
        split = new.get(name)
        if split is None:
            continue
        if not isinstance(split.ic, str) or split.per_run:
            raise ValueError(
                f"runs: the {name} split of {system!r} starts from named initial conditions "
                f"({', '.join(split.ic) if isinstance(split.ic, tuple) else split.ic}) or "
                f"draws parameters per run; runs applies to random initial conditions only"
            )
        new[name] = replace(split, batch=int(runs))
    return replace(protocol, splits=new)


def _per_run_rollouts(
    spec: Any, params: dict[str, Any], split: Any, rng: np.random.Generator, progress: bool
) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """The ``split.batch`` runs of a split with ``per_run`` parameters: run ``r`` draws
    each ``(name, low, high)`` log-uniformly, builds its own solver and starts from the
    initial condition ``ic[r % len(ic)]`` (or ``ic``).  Returns ``(t, states (B, T, ...),
    {name: values (B,)})``."""
    from .progress import progress_bar

    names = split.ic if isinstance(split.ic, tuple) else (split.ic,)
    drawn: dict[str, list[float]] = {p[0]: [] for p in split.per_run}
    runs, t = [], None
    for r in progress_bar(range(split.batch), enabled=progress, desc=spec.name, unit="run"):
        values = {
            p: float(10 ** rng.uniform(np.log10(lo), np.log10(hi))) for p, lo, hi in split.per_run
        }
        for p, v in values.items():
            drawn[p].append(v)
        solver = spec.make(**{**params, **values})
        ic = solver.initial_condition(names[r % len(names)], 1, rng)
        t, states = solver.rollout(ic, split.t_end, rng, discard=split.discard)
        runs.append(states)
    extra = {p: np.asarray(v) for p, v in drawn.items()}
    return t, np.concatenate(runs), extra


def ensure_test_split(data: Path, system: str) -> Path:
    """``data``, generating it first when it is the missing test split of the model's
    dataset folder (deterministic: the dataset's seed, as ``ledmus dataset`` would)."""
    if data.exists() or data.name != "test.h5":
        return data
    folder = data.parent
    seed, scale = 0, "paper"
    manifest = folder / "manifest.json"
    if manifest.is_file():
        info = json.loads(manifest.read_text())
        seed, scale = int(info.get("seed", 0)), info.get("scale", "paper")
    log.info(
        "test data %s is missing: generating the test split now, as `ledmus dataset %s "
        "--out %s --seed %d --scale %s` would (deterministic)",
        data,
        system,
        folder,
        seed,
        scale,
    )
    make_dataset(system, folder, scale=scale, seed=seed, splits=("test",))
    return data
