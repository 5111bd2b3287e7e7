"""Evaluation of a virtual-observable model (Kaltenbach & Koutsourelakis, Figs 1-4) on a
test sequence.

The test run's first ``T + 1`` states (``T`` as in training) are *inferred*: the
posterior ``q(X_{0:T})`` of that sequence with the model fixed.  From ``samples`` draws of
``q(X_T)`` the transition law runs to the end of the run (Algorithm 1), and every CG state
(inferred or predicted) is turned into a particle density by the multinomial of eq 17
(``d_f`` particles).  Reported (``metrics.json`` / ``--json``):

- ``rel_l2``: per predicted snapshot ``k`` (15, 20, 25, 35 Δt when the run reaches them),
  ``||mean - truth|| / ||truth||`` against the micro run and ``rel_l2_pde`` against the
  exact solution of the advection-diffusion PDE (eq 16) from the same initial density;
- ``coverage95``: the fraction of (predicted step, bin) pairs whose micro density lies in
  the central 95 % band (``coverage95_inferred`` on the inferred steps);
- ``mass_error_inferred``: mean over the inferred steps of ``|1 - sum_j E_q[X_tj]|``;
  ``mass_error_predicted``: the same for the predictive mean of ``X`` (before the
  multinomial), over the predicted steps.

Plots: ``spacetime.png``, ``snapshots.png`` (95 % bands), ``mass.png``.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .. import systems
from ..datasets import ensure_test_split
from ..trajectory import read_trajectory
from .config import DEFAULTS
from .vo_training import infer

SNAPSHOTS_INFERRED = (0, 5, 9)
SNAPSHOTS_PREDICTED = (15, 20, 25, 35)


def predict(
    model: Any, observed: np.ndarray, n_total: int, cfg: dict[str, Any], samples: int, seed: int
) -> dict[str, np.ndarray]:
    """Algorithm 1 for one test run: ``observed`` ``(1, T+1, 1, d)`` fractions; returns
    CG samples ``x`` ``(S, n_total, d)`` and fine-grained densities ``fine`` (same shape)."""
    post = infer(model, observed, cfg, seed=seed)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        inferred = post.sample(samples, gen)[:, 0]  # (S, T+1, d)
        paths = model.propagate(inferred[:, -1], n_total - inferred.shape[1], gen)
        x = torch.cat([inferred, paths], dim=1).numpy()
    fine = model.fine_grained(x, np.random.default_rng(seed))
    return {"x": x, "fine": fine, "q_mean": post.mean().detach().numpy()[0]}


def evaluate_vo(
    model: Any,
    payload: dict[str, Any],
    model_path: str | Path,
    data: str | Path | None,
    *,
    out_dir: Path | None = None,
    plots: bool = True,
    samples: int = 1000,
    seed: int = 0,
) -> dict[str, Any]:
    """Evaluate the model read from ``model_path`` (its checkpoint ``payload``) on the test
    run (default: the config's ``data/test.h5``); :func:`ledmus.evaluation.evaluate`
    dispatches here."""
    cfg = payload["config"]
    if data is None:  # the config's test split, generated first when missing
        data = ensure_test_split(Path(cfg["data"]) / "test.h5", model.system)
    data = Path(data)
    traj = read_trajectory(data)
    if traj.system != model.system:
        raise ValueError(
            f"test data {data} is for system {traj.system!r}, the model for {model.system!r}"
        )
    t_infer = int(model.spec["t_infer"])
    n_total = traj.states.shape[1]
    if n_total <= t_infer + 1:
        raise ValueError(
            f"test data {data} holds {n_total} states; the model infers "
            f"{t_infer + 1} and needs at least one more to predict"
        )
    train_cfg = {**DEFAULTS["train_vo"], **cfg.get("train_vo", {})}
    start = time.perf_counter()
    out = predict(model, traj.states[:1, : t_infer + 1], n_total, train_cfg, samples, seed)
    wall = time.perf_counter() - start
    truth = traj.states[0, :, 0]  # (n_total, d)
    solver = systems.get(model.system).make(**traj.params)
    pde = solver.pde_fractions(truth[0], traj.dt_coarse * np.arange(n_total))
    mean = out["fine"].mean(axis=0)
    lo, hi = np.quantile(out["fine"], [0.025, 0.975], axis=0)
    inside = (truth >= lo) & (truth <= hi)
    pred = slice(t_infer + 1, None)
    snaps = [k for k in SNAPSHOTS_PREDICTED if t_infer < k < n_total] or [n_total - 1]

    def rel(a: np.ndarray, b: np.ndarray) -> float:
        return float(np.linalg.norm(a - b) / np.linalg.norm(b))

    x_mean = out["x"].mean(axis=0)
    result: dict[str, Any] = {
        "system": model.system,
        "model": str(model_path),
        "data": str(data),
        "t_infer": t_infer,
        "n_states": n_total,
        "samples": samples,
        "dt_coarse": traj.dt_coarse,
        "rel_l2": {str(k): rel(mean[k], truth[k]) for k in snaps},
        "rel_l2_pde": {str(k): rel(mean[k], pde[k]) for k in snaps},
        "micro_vs_pde": {str(k): rel(truth[k], pde[k]) for k in snaps},
        "coverage95": float(inside[pred].mean()),
        "coverage95_inferred": float(inside[: t_infer + 1].mean()),
        "mass_error_inferred": float(np.abs(1 - out["q_mean"].sum(axis=-1)).mean()),
        "mass_error_predicted": float(np.abs(1 - x_mean[pred].sum(axis=-1)).mean()),
        "mass_error_inferred_train": payload["history"].get("mass_error_inferred_train"),
        "train_wall_s": payload["history"].get("wall_time_s", {}).get("vo"),
        "predict_wall_s": wall,
    }
    if out_dir is not None and plots:
        _plots(out_dir, truth, mean, lo, hi, out, t_infer, traj.dt_coarse, solver.bin_centres)
    return result


def _plots(out_dir: Path, truth, mean, lo, hi, out, t_infer, dt, x) -> None:  # noqa: ANN001
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = dt * np.arange(len(truth))
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6), sharey=True)
    for ax, field, title in zip(
        axes, (truth, mean), ("micro (truth)", "predictive mean"), strict=True
    ):
        im = ax.pcolormesh(x, t, field, shading="nearest")
        ax.axhline(t[t_infer], color="r", lw=1)
        ax.set_title(title)
        ax.set_xlabel("s")
        fig.colorbar(im, ax=ax)
    axes[0].set_ylabel("t (red: end of the inferred part)")
    fig.tight_layout()
    fig.savefig(out_dir / "spacetime.png", dpi=90)
    plt.close(fig)
    steps = [k for k in (*SNAPSHOTS_INFERRED, *SNAPSHOTS_PREDICTED) if k < len(truth)]
    fig, axes = plt.subplots(1, len(steps), figsize=(2.6 * len(steps), 2.6), sharey=True)
    for ax, k in zip(np.atleast_1d(axes), steps, strict=True):
        ax.fill_between(x, lo[k], hi[k], alpha=0.3, label="95 %")
        ax.plot(x, mean[k], label="mean")
        ax.plot(x, truth[k], "k.", ms=3, label="micro")
        ax.set_title(f"{'inferred' if k <= t_infer else 'predicted'} t = {k}Δt", fontsize=8)
    np.atleast_1d(axes)[0].legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(out_dir / "snapshots.png", dpi=90)
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(5, 3))
    mass = out["x"].sum(axis=-1)  # (S, n_total)
    ax.plot(t, mass.mean(axis=0), label="CG mass, mean")
    ax.fill_between(t, *np.quantile(mass, [0.025, 0.975], axis=0), alpha=0.3, label="95 %")
    ax.axvline(t[t_infer], color="r", lw=1)
    ax.set_xlabel("t")
    ax.set_ylabel("sum_j X_j")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out_dir / "mass.png", dpi=90)
    plt.close(fig)
