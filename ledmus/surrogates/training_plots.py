"""The PNG of a training history: loss curves per stage (PCA: explained variance)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

#: the training stages a history may hold, in the order of the panels
STAGES = ("pca", "autoencoder", "rnn")


def plot_history(history: dict[str, Any], path: Path) -> None:
    """Loss curves of the trained stages (log scale) as a PNG; for PCA (no autoencoder)
    the first panel shows the explained-variance ratio of the kept components."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    stages = [s for s in STAGES if s in history]
    fig, axes = plt.subplots(1, len(stages), figsize=(5 * len(stages), 3.5), squeeze=False)
    for ax, stage in zip(axes[0], stages, strict=True):
        PANELS.get(stage, _losses)(ax, stage, history[stage])
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _explained_variance(ax: Any, stage: str, h: dict[str, Any]) -> None:
    ratio = np.asarray(h["explained_variance_ratio"])
    k = np.arange(1, len(ratio) + 1)
    ax.bar(k, ratio, label="per component")
    ax.plot(k, np.cumsum(ratio), "k.-", label="cumulative")
    ax.set_yscale("log")
    ax.set_xlabel("component")
    ax.set_title(f"{stage}: explained variance ratio")


def _losses(ax: Any, stage: str, h: dict[str, Any]) -> None:
    ax.plot(h["train"], label="train")
    ax.plot(h["val"], label="validation")
    ax.axvline(h["best_epoch"][0], color="k", ls=":", lw=1, label="best")
    ax.set_yscale("symlog" if min(h["train"] + h["val"]) < 0 else "log")
    ax.set_xlabel("epoch")
    ax.set_title(stage)


#: history stage -> its panel (default: train and validation losses per epoch)
PANELS = {"pca": _explained_variance}
