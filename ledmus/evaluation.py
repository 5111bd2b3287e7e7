"""Latent forecasting evaluation on a test trajectory, per the paper's protocol.

For each evaluation window (the test file's ``offsets`` for FHN/KS; every run for AD):
teacher-force the RNN with ``T_warm`` encoded reference states, propagate ``horizon``
steps in latent space ("Latent", T_mu = 0) and decode; compare with the reference.

* FHN (seed 001 Fig. 34/35): MNAD on u and v over the horizon (keys ``mnad_u``,
  ``mnad_v``) and over the first 451 steps (the CSPDE protocol, ``mnad_u_451``, ...).
* KS (Fig. 42): NAD, valid prediction time (NAD < 0.1) in Lyapunov times
  (lambda_1 = 0.048), Wasserstein and L1-histogram distances of the state values,
  power-spectrum error.
* AD: Wasserstein / L1 of particle positions (last step, and over all steps) and of the
  M1/M2 statistics (particle mean and variance per axis) over time.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from . import metrics
from .data import read_trajectory, write_json
from .surrogates.checkpoint import load_model
from .surrogates.training import resolve_device

log = logging.getLogger(__name__)

#: system -> (T_warm, horizon or None for "rest of the window")
PROTOCOL = {"fhn": (60, 8000), "ks": (60, None), "ad1d": (60, None), "ad3d": (60, None)}
KS_LYAPUNOV = 0.048  # seed 001 §8.4


def _windows(traj, t_warm: int, horizon: int | None, n_ics: int | None) -> tuple[np.ndarray, int]:
    """Reference windows ``(W, t_warm + horizon, *state_shape)``."""
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
        return np.stack([states[0, o : o + need] for o in offsets]), horizon
    if horizon is None:
        horizon = states.shape[1] - t_warm
    need = t_warm + horizon
    if need > states.shape[1]:
        raise ValueError(
            f"runs of {states.shape[1]} steps are shorter than T_warm + horizon = {need}"
        )
    runs = states[:n_ics] if n_ics else states
    return runs[:, :need], horizon


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


def evaluate(
    model_path: str | Path,
    data: str | Path | None = None,
    *,
    out_dir: str | Path | None = None,
    t_warm: int | None = None,
    horizon: int | None = None,
    n_ics: int | None = None,
    device: str = "cpu",
    plots: bool = True,
) -> dict[str, Any]:
    """Run the system's latent-forecast protocol; returns the metrics dict (also written
    as ``metrics.json`` with plots into ``out_dir`` when given)."""
    model, payload = load_model(model_path, device=resolve_device(device))
    system = payload["system"]
    if data is None:
        data = Path(payload["config"]["data"]) / "test.h5"
    traj = read_trajectory(data)
    if traj.system != system:
        raise ValueError(
            f"test data {data} is for system {traj.system!r}, the model for {system!r}"
        )
    default_warm, default_horizon = PROTOCOL.get(system, (60, None))
    t_warm = default_warm if t_warm is None else t_warm
    horizon = default_horizon if horizon is None else horizon
    windows, horizon = _windows(traj, t_warm, horizon, n_ics)
    ref = windows[:, t_warm:]
    pred, latents, wall = latent_forecast(model, windows, t_warm, horizon)
    result: dict[str, Any] = {
        "system": system, "model": str(model_path), "data": str(data), "t_warm": t_warm,
        "horizon": horizon, "n_ics": int(windows.shape[0]), "dt_coarse": traj.dt_coarse,
        "forecast_wall_s": wall,
    }  # fmt: skip
    if system == "fhn":
        nad_t = metrics.nad(ref.transpose(0, 2, 1, 3), pred.transpose(0, 2, 1, 3))  # (W, 2, T)
        for ch, name in enumerate("uv"):
            result[f"mnad_{name}"] = float(nad_t[:, ch].mean())
            result[f"mnad_{name}_451"] = float(nad_t[:, ch, :451].mean())
        result["nad_t"] = {n: nad_t[:, c].mean(axis=0).tolist() for c, n in enumerate("uv")}
    elif system == "ks":
        nad_t = metrics.nad(ref[:, :, 0], pred[:, :, 0])
        vpt = metrics.valid_prediction_time(nad_t, traj.dt_coarse, 0.1, KS_LYAPUNOV)
        result.update(
            mnad=float(nad_t.mean()),
            valid_time_lyapunov=float(vpt.mean()),
            valid_time_lyapunov_per_ic=vpt.tolist(),
            wasserstein=metrics.wasserstein(ref.ravel(), pred.ravel()),
            l1_histogram=metrics.l1_histogram(ref.ravel(), pred.ravel()),
            power_spectrum_error=metrics.power_spectrum_error(ref[:, :, 0], pred[:, :, 0]),
            nad_t=nad_t.mean(axis=0).tolist(),
        )
    else:  # particles
        m1_ref, m1_pred = ref.mean(axis=2), pred.mean(axis=2)  # (W, T, d)
        m2_ref, m2_pred = ref.var(axis=2), pred.var(axis=2)
        result.update(
            wasserstein_last=metrics.wasserstein(ref[:, -1].reshape(-1, ref.shape[-1]), pred[:, -1].reshape(-1, ref.shape[-1])),
            wasserstein_all=metrics.wasserstein(ref.reshape(-1, ref.shape[-1]), pred.reshape(-1, ref.shape[-1])),
            l1_histogram_all=metrics.l1_histogram(ref.reshape(-1, ref.shape[-1]), pred.reshape(-1, ref.shape[-1])),
            m1_wasserstein=metrics.wasserstein(m1_ref.reshape(-1, ref.shape[-1]), m1_pred.reshape(-1, ref.shape[-1])),
            m2_wasserstein=metrics.wasserstein(m2_ref.reshape(-1, ref.shape[-1]), m2_pred.reshape(-1, ref.shape[-1])),
            m1_mae=float(np.abs(m1_ref - m1_pred).mean()),
            m2_mae=float(np.abs(m2_ref - m2_pred).mean()),
        )  # fmt: skip
    if out_dir is not None:
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        write_json(out_dir / "metrics.json", result)
        if plots:
            plot_evaluation(system, ref, pred, latents, result, out_dir)
    return result


def plot_evaluation(system: str, ref: np.ndarray, pred: np.ndarray, latents: np.ndarray,
                    result: dict[str, Any], out_dir: Path) -> None:  # fmt: skip
    """Space-time contours (reference, prediction, error) of the first window, error
    versus time, and the latent trajectories."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    dt = result["dt_coarse"]
    t = dt * np.arange(ref.shape[1])
    if system in ("fhn", "ks"):
        channels = ("u", "v") if system == "fhn" else ("u",)
        span = min(ref.shape[1], 1000 if system == "fhn" else 400)
        fig, axes = plt.subplots(len(channels), 3, figsize=(13, 3.2 * len(channels)), squeeze=False)
        for c, name in enumerate(channels):
            r, p = ref[0, :span, c], pred[0, :span, c]
            lo, hi = r.min(), r.max()
            for ax, field, title in zip(axes[c], (r, p, np.abs(r - p)),
                                        ("reference", "LED latent", "|error|"), strict=True):  # fmt: skip
                im = ax.imshow(field.T, aspect="auto", origin="lower", extent=(0, span * dt, 0, field.shape[1]),
                               vmin=None if title == "|error|" else lo, vmax=None if title == "|error|" else hi,
                               cmap="magma" if title == "|error|" else "RdBu_r")  # fmt: skip
                ax.set_title(f"{name}: {title}")
                ax.set_xlabel("t")
                ax.set_ylabel("node")
                fig.colorbar(im, ax=ax)
        fig.tight_layout()
        fig.savefig(out_dir / "contours.png", dpi=90)
        plt.close(fig)
        fig, ax = plt.subplots(figsize=(6, 3.5))
        nad_t = result["nad_t"]
        for name, values in nad_t.items() if isinstance(nad_t, dict) else [("u", nad_t)]:
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
        for k in range(d):
            axes[0].plot(t, ref[0, :, :, k].mean(axis=1), color=f"C{k}", label=f"M1 axis {k} ref")
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
    fig, ax = plt.subplots(figsize=(6, 3.5))
    span = min(latents.shape[1], 1000)
    ax.plot(t[:span], latents[0, :span])
    ax.set_xlabel("t")
    ax.set_title("latent trajectory (first IC)")
    fig.tight_layout()
    fig.savefig(out_dir / "latents.png", dpi=90)
    plt.close(fig)
