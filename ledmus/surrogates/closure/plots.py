"""Plots of the moment-closure evaluation (matplotlib, Agg; written atomically).

- :func:`plot_errors`: relative L2 error (max over the held-out cases) against ``ε``,
  one panel per field, one line per model.
- :func:`plot_profiles`: ``ρ, u, T`` of one case at the given times for BGK and each
  model (``rows = times``, ``columns = fields``).
- :func:`plot_weights`: the learned weight functions ``w_k(ξ)`` of a
  :class:`.ml.MomentNet`, with the standard normal density for scale.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from .evaluate import FIELDS

STYLE = {
    "bgk": ("k", "-", "BGK"),
    "ml": ("C0", "--", "ML closure"),
    "euler": ("C1", ":", "Euler"),
    "ns": ("C2", "-.", "Navier-Stokes"),
}


def save_figure(fig: Any, path: str | Path, dpi: int = 110) -> Path:
    """Write ``fig`` to ``path`` atomically (a temporary file renamed) and close it."""
    import matplotlib.pyplot as plt

    path = Path(path)
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
    fig.savefig(tmp, dpi=dpi)
    plt.close(fig)
    os.replace(tmp, path)
    return path


def pyplot():
    """``matplotlib.pyplot`` on the Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_errors(result: dict[str, Any], path: str | Path) -> Path:
    """``result`` of :func:`.evaluate.evaluate_closure`; log-log error against ``ε``."""
    plt = pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.6), sharey=True)
    eps = np.array(result["eps"], dtype=float)
    for ax, field in zip(axes, FIELDS, strict=True):
        for m in result["models"]:
            c, ls, label = STYLE[m]
            y = [result["rel_l2"][m][f"{e:g}"][field] for e in eps]
            ax.loglog(eps, np.maximum(y, 1e-6), color=c, ls=ls, marker="o", label=label)
        ax.axhline(0.02, color="grey", lw=0.8, label="2 % target")
        ax.set(
            xlabel="ε (Knudsen number)", title=f"{field}: max rel. L2 at t = {result['t_end']:g}"
        )
    axes[0].set_ylabel("relative L2 error")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    return save_figure(fig, path)


def plot_profiles(
    x: np.ndarray,
    runs: dict[str, np.ndarray],
    times: tuple[float, ...],
    title: str,
    path: str | Path,
) -> Path:
    """``runs``: name -> primitives ``(len(times), 3, nx)`` of one case."""
    plt = pyplot()
    fig, axes = plt.subplots(
        len(times), 3, figsize=(12, 2.6 * len(times)), sharex=True, squeeze=False
    )
    for i, t in enumerate(times):
        for j, field in enumerate(FIELDS):
            ax = axes[i, j]
            for name, prim in runs.items():
                c, ls, label = STYLE[name]
                ax.plot(x, prim[i, j], color=c, ls=ls, label=label)
            ax.set_title(f"{field}, t = {t:g}", fontsize=9)
    axes[-1, 0].set_xlabel("x")
    axes[0, 0].legend(fontsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    return save_figure(fig, path)


def plot_weights(net: Any, path: str | Path, xi_max: float = 4.0) -> Path:
    """The normalised weight functions ``w_k(ξ)`` of ``net`` on ``[-xi_max, xi_max]``."""
    import torch

    plt = pyplot()
    xi = torch.linspace(-xi_max, xi_max, 401, dtype=net.dtype)
    with torch.no_grad():
        w = net.weights(xi)[0].double().numpy()  # (401, M)
    fig, ax = plt.subplots(figsize=(6, 3.6))
    for k in range(w.shape[1]):
        ax.plot(xi.double().numpy(), w[:, k], label=f"w{k + 1}")
    g = np.exp(-0.5 * xi.double().numpy() ** 2)
    ax.fill_between(xi.double().numpy(), 0, g, color="grey", alpha=0.2, label="exp(-ξ²/2)")
    ax.set(xlabel="ξ = (v - u)/√T", ylabel="w(ξ)", title="learned weight functions")
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    return save_figure(fig, path)


__all__ = ["plot_errors", "plot_profiles", "plot_weights", "pyplot", "save_figure"]
