"""Latent forecasting evaluation on a test trajectory, per the system's protocol.

For each evaluation window (the test file's ``offsets`` for FHN/KS; every run for AD):
teacher-force the RNN with ``T_warm`` encoded reference states, propagate ``horizon``
steps in latent space ("Latent", T_mu = 0) and decode; compare with the reference.

``T_warm`` and ``horizon`` come from the system's :class:`~ledmus.systems.Evaluation`,
the metrics from the suite of its state layout (:mod:`ledmus.systems.suites`):

* FHN (Vlachas et al., LED paper, Figs. 34/35): MNAD on u and v over the horizon (keys ``mnad_u``,
  ``mnad_v``) and over the first 451 steps (the CSPDE protocol, ``mnad_u_451``, ...).
* KS (Fig. 42): NAD, valid prediction time (NAD < 0.1) in Lyapunov times
  (lambda_1 = 0.048), Wasserstein and L1-histogram distances of the state values,
  power-spectrum error.
* AD: Wasserstein / L1 of particle positions (last step, and over all steps) and of the
  M1/M2 statistics (particle mean and variance per axis) over time.
* RW: L1 distance, NAD and mass error of the bin fractions.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .. import systems
from ..atomic import split_series, write_json, write_series
from ..datasets import ensure_test_split
from ..device import resolve_device
from ..trajectory import read_trajectory
from .checkpoint import model_from_payload
from .family import EvaluateOptions

log = logging.getLogger(__name__)

__all__ = ["evaluate_forecast", "latent_forecast", "plot_evaluation"]


#: bytes of reference windows forecast together (the peak memory is a few times this)
CHUNK_BYTES = 16 * 2**20


def _windows(
    traj, t_warm: int, horizon: int | None, n_ics: int | None
) -> tuple[list[tuple[int, int]], int]:
    """The evaluation windows as ``(run, start)`` pairs and the horizon; each window is
    ``states[run, start : start + t_warm + horizon]``."""
    states = traj.states
    if "offsets" in traj.extra:
        offsets = traj.extra["offsets"]
        total = int(traj.attrs.get("window_length", states.shape[1] - offsets.max()))
        if horizon is None:
            horizon = total - t_warm
        need = t_warm + horizon
        if offsets.max() + need > states.shape[1]:
            raise ValueError(
                f"test run of {states.shape[1]} steps is too short for offsets up to "
                f"{offsets.max()} plus T_warm + horizon = {need}"
            )
        offsets = offsets[:n_ics] if n_ics else offsets
        return [(0, int(o)) for o in offsets], horizon
    if horizon is None:
        horizon = states.shape[1] - t_warm
    need = t_warm + horizon
    if need > states.shape[1]:
        raise ValueError(
            f"runs of {states.shape[1]} steps are shorter than T_warm + horizon = {need}"
        )
    runs = range(states.shape[0])[:n_ics] if n_ics else range(states.shape[0])
    return [(r, 0) for r in runs], horizon


def window_array(traj, windows: list[tuple[int, int]], start: int, stop: int) -> np.ndarray:
    """Steps ``start:stop`` of every window: ``(W, stop - start, *state_shape)``."""
    return np.stack([traj.states[r, o + start : o + stop] for r, o in windows])


def _chunk_size(traj, length: int) -> int:
    """Windows per chunk so that one chunk of states is about :data:`CHUNK_BYTES`."""
    per_window = length * int(np.prod(traj.states.shape[2:])) * traj.states.itemsize
    return max(1, CHUNK_BYTES // max(per_window, 1))


@torch.no_grad()
def latent_forecast(
    model, windows: np.ndarray, t_warm: int, horizon: int, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, float]:
    """Forecast every window; returns ``(predicted states, latents, wall seconds)``."""
    start = time.perf_counter()
    z = model.forecast_latent(windows[:, :t_warm], horizon)
    gen = torch.Generator(device=model.device).manual_seed(seed)
    pred = model.decode_sequence(z, generator=gen)
    return pred, z.cpu().numpy(), time.perf_counter() - start


def evaluate_forecast(
    payload: dict[str, Any], model_path: str | Path, data: Any, options: EvaluateOptions
) -> dict[str, Any]:
    """The system's latent-forecast protocol for the model of checkpoint ``payload``
    (read from ``model_path``; the LED and PCA families' ``evaluate``) on ``data`` (None:
    the config's ``data/test.h5``); returns the metrics dict, also written as
    ``metrics.json`` (scalars), ``series.h5`` and plots into ``options.out_dir``."""
    out_dir, plots, t_warm, horizon, n_ics = (
        options.out_dir,
        options.plots,
        options.t_warm,
        options.horizon,
        options.n_ics,
    )
    model = model_from_payload(payload, model_path, device=resolve_device(options.device))
    system = payload["system"]
    if data is None:
        data = ensure_test_split(Path(payload["config"]["data"]) / "test.h5", system)
    traj = read_trajectory(data)
    if traj.system != system:
        raise ValueError(
            f"test data {data} is for system {traj.system!r}, the model for {system!r}"
        )
    spec = systems.get(system)
    t_warm = spec.evaluation.t_warm if t_warm is None else t_warm
    horizon = spec.evaluation.horizon if horizon is None else horizon
    windows, horizon = _windows(traj, t_warm, horizon, n_ics)
    acc = spec.evaluator(traj.dt_coarse)
    # the latent forecast of all windows in one batch (its cost is per step, not per
    # window); decoding and metrics per chunk, so the decoded windows are never all in memory
    start = time.perf_counter()
    with torch.no_grad():
        z = model.forecast_latent(window_array(traj, windows, 0, t_warm), horizon)
    gen = torch.Generator(device=model.device).manual_seed(0)
    wall, first, size = time.perf_counter() - start, None, _chunk_size(traj, horizon)
    for i in range(0, len(windows), size):
        start = time.perf_counter()
        with torch.no_grad():
            pred = model.decode_sequence(z[i : i + size], generator=gen)
        wall += time.perf_counter() - start
        ref = window_array(traj, windows[i : i + size], t_warm, t_warm + horizon)
        acc.add(ref, pred)
        if first is None:  # the first window, for the plots
            first = (ref[:1], pred[:1], z[:1].cpu().numpy())
    result: dict[str, Any] = {
        "system": system,
        "model": str(model_path),
        "data": str(data),
        "t_warm": t_warm,
        "horizon": horizon,
        "n_ics": len(windows),
        "dt_coarse": traj.dt_coarse,
        "forecast_wall_s": wall,
    }
    result.update(acc.result())
    if out_dir is not None:
        scalars, series = split_series(result)
        write_series(out_dir / "series.h5", series)
        write_json(out_dir / "metrics.json", scalars)
        if plots:
            run, offset = windows[0]
            where = f"test run {run}, steps {offset + t_warm} … {offset + t_warm + horizon - 1}"
            plot_evaluation(
                spec,
                *first,
                result,
                out_dir,
                params=traj.params,
                window=f"window 1 of {len(windows)} ({where})",
            )
    return result


def plot_evaluation(
    spec: systems.SystemSpec,
    ref: np.ndarray,
    pred: np.ndarray,
    latents: np.ndarray,
    result: dict[str, Any],
    out_dir: Path,
    *,
    params: dict[str, Any] | None = None,
    window: str = "window 1",
) -> None:
    """Space-time contours (reference, prediction, error) of the first window against the
    physical coordinate, error versus time, and the latent trajectories (grids and
    histograms: ``contours.png``, ``error_vs_time.png``; particles: ``statistics.png``;
    all: ``latents.png``).  ``params``: the solver parameters of the data (coordinates);
    ``window``: which window the first-window panels show.  Time ``t`` counts from the
    end of the warm-up."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    dt = result["dt_coarse"]
    t = dt * np.arange(ref.shape[1])
    if spec.layout != "particles":
        n_c = ref.shape[2]
        channels = spec.channels if len(spec.channels) == n_c else tuple(map(str, range(n_c)))
        # chaotic systems: about 5 Lyapunov times (KS: 417 steps); else 1000 steps
        show = 1000 if spec.lyapunov is None else int(np.ceil(5 / (spec.lyapunov * dt)))
        span = min(ref.shape[1], show)
        coord, label = np.arange(ref.shape[-1], dtype=np.float64), "node"
        if spec.coordinates is not None:
            try:
                coord, label = (
                    np.asarray(spec.coordinates(spec.make(**(params or {})))),
                    spec.coordinate_name,
                )
            except ValueError as exc:  # data of other parameters: fall back to node indices
                log.warning("coordinates of %s: %s", spec.name, exc)
        step = coord[1] - coord[0] if coord.size > 1 else 1.0
        extent = (0, span * dt, coord[0] - step / 2, coord[-1] + step / 2)
        fig, axes = plt.subplots(n_c, 3, figsize=(13, 3.2 * n_c), squeeze=False)
        for c, name in enumerate(channels):
            r, p = ref[0, :span, c], pred[0, :span, c]
            lo, hi = r.min(), r.max()
            for ax, field, title in zip(
                axes[c], (r, p, np.abs(r - p)), ("reference", "LED latent", "|error|"), strict=True
            ):
                im = ax.imshow(
                    field.T,
                    aspect="auto",
                    origin="lower",
                    extent=extent,
                    vmin=None if title == "|error|" else lo,
                    vmax=None if title == "|error|" else hi,
                    cmap="magma" if title == "|error|" else "RdBu_r",
                )
                ax.set_title(f"{name}: {title}")
                ax.set_xlabel("t")
                ax.set_ylabel(label)
                fig.colorbar(im, ax=ax)
        fig.suptitle(
            f"{spec.name}, {window}: t = 0 … {(span - 1) * dt:g} after the warm-up "
            f"(T_warm = {result['t_warm']} steps)",
            fontsize=10,
        )
        fig.tight_layout()
        fig.savefig(out_dir / "contours.png", dpi=90)
        plt.close(fig)
        fig, ax = plt.subplots(figsize=(6, 3.5))
        nad_t = result["nad_t"]
        for name, values in nad_t.items() if isinstance(nad_t, dict) else [(channels[0], nad_t)]:
            ax.plot(t, values, label=f"NAD {name}")
        ax.set_xlabel("t")
        ax.set_ylabel(f"NAD (mean over {result['n_ics']} ICs)")
        ax.legend()
        fig.tight_layout()
        fig.savefig(out_dir / "error_vs_time.png", dpi=90)
        plt.close(fig)
    else:
        fig, axes = plt.subplots(1, 2, figsize=(11, 3.5))
        d = ref.shape[-1]
        axes_names = (
            spec.channels if len(spec.channels) == d else tuple(f"axis {k}" for k in range(d))
        )
        for k in range(d):
            axes[0].plot(
                t, ref[0, :, :, k].mean(axis=1), color=f"C{k}", label=f"M1 {axes_names[k]} ref"
            )
            axes[0].plot(t, pred[0, :, :, k].mean(axis=1), color=f"C{k}", ls="--", label="LED")
            axes[1].hist(
                ref[:, -1, :, k].ravel(), bins=40, histtype="step", color=f"C{k}", density=True
            )
            axes[1].hist(
                pred[:, -1, :, k].ravel(),
                bins=40,
                histtype="step",
                ls="--",
                color=f"C{k}",
                density=True,
            )
        axes[0].set_xlabel("t")
        axes[0].set_title("mean position (solid: reference, dashed: LED)")
        axes[1].set_title("positions at the last step")
        fig.tight_layout()
        fig.savefig(out_dir / "statistics.png", dpi=90)
        plt.close(fig)
    fig, ax = plt.subplots(figsize=(7, 3.8))
    span = min(latents.shape[1], 1000)
    for k in range(latents.shape[-1]):
        ax.plot(t[:span], latents[0, :span, k], lw=1, label=f"z{k + 1}")
    ax.axvline(0, color="k", lw=0.8, ls="--")
    ax.annotate(
        f"end of warm-up ({result['t_warm']} steps teacher-forced)",
        (0, 1),
        xycoords=("data", "axes fraction"),
        xytext=(4, -12),
        textcoords="offset points",
        fontsize=8,
    )
    ax.set_xlabel("t after the warm-up")
    ax.set_ylabel("latent state z (model units)")
    ax.set_title(f"latent forecast, {window}", fontsize=9)
    ax.legend(fontsize=7, ncol=2, loc="lower right")
    fig.tight_layout()
    fig.savefig(out_dir / "latents.png", dpi=90)
    plt.close(fig)
