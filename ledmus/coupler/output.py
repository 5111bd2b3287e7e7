"""What a coupled run keeps and writes: the recorder, errors against the micro
reference, ``trajectory.h5``, ``metrics.json`` and plots in the run directory."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from .. import metrics
from ..data import write_json, write_trajectory
from ..solvers import Solver
from .settings import RunSettings

log = logging.getLogger(__name__)

SOURCES = {"micro": 0, "macro": 1}
#: channel names of the grid systems (errors are reported per channel)
CHANNELS = {"fhn": ("u", "v"), "ks": ("u",)}


class Recorder:
    """Coarse states ``(B, N, *shape)`` (when ``keep_states``), latents ``(B, N, d_z)``
    and the source of every index (0 micro, 1 macro).

    With a ``reference`` ``(B, N, *shape)`` on a grid system it also accumulates the
    spatial mean absolute error per member, index and channel, so errors need not keep
    the coupled states (the sweep benchmarks run 100 x 8060 FHN states this way).
    """

    def __init__(self, n_members: int, n_total: int, state_shape: tuple[int, ...],
                 latent_dim: int, *, keep_states: bool = True,
                 reference: np.ndarray | None = None) -> None:  # fmt: skip
        self.n_members, self.n_total = n_members, n_total
        self.state_shape = tuple(state_shape)
        self.keep = keep_states
        self.states = np.zeros((n_members, n_total, *state_shape)) if keep_states else None
        self.latents = np.zeros((n_members, n_total, latent_dim), dtype=np.float32)
        self.source = np.full(n_total, -1, dtype=np.int32)  # MUSCLE3 grids: no int8
        self.reference = reference
        self.abs_err = None
        if reference is not None and len(state_shape) == 2:
            self.abs_err = np.zeros((n_members, n_total, state_shape[0]))

    @property
    def keep_states(self) -> bool:
        """Whether the macro phases must decode their latents."""
        return self.keep or self.abs_err is not None

    def add(self, index: int, states: np.ndarray | None, latents: np.ndarray, source: str) -> None:
        n = latents.shape[1]
        stop = index + n
        if stop > self.n_total:
            raise ValueError(f"record of indices {index}..{stop - 1} beyond N = {self.n_total}")
        self.latents[:, index:stop] = latents
        self.source[index:stop] = SOURCES[source]
        if states is not None:
            if self.states is not None:
                self.states[:, index:stop] = states
            if self.abs_err is not None:
                self.abs_err[:, index:stop] = np.abs(states - self.reference[:, index:stop]).mean(
                    -1
                )

    def snapshot(self) -> dict[str, Any]:
        snap = {"latents": self.latents, "source": self.source}
        if self.states is not None:
            snap["states"] = self.states
        if self.abs_err is not None:
            snap["abs_err"] = self.abs_err
        return snap

    def restore(self, snap: dict[str, Any]) -> None:
        self.latents = np.array(snap["latents"])
        self.source = np.array(snap["source"])
        if "states" in snap:
            self.states = np.array(snap["states"])
        if "abs_err" in snap:
            self.abs_err = np.array(snap["abs_err"])


def grid_errors(reference: np.ndarray, abs_err: np.ndarray, start: int) -> dict[str, Any]:
    """MNAD per channel over indices ``start:`` (eq 22–23: range over the reference's
    space-time field of each member after the warm-up)."""
    ref = reference[:, start:]
    rng = ref.max(axis=(1, 3)) - ref.min(axis=(1, 3))  # (B, C)
    rng = np.where(rng > 0, rng, 1.0)
    nad_t = abs_err[:, start:] / rng[:, None, :]  # (B, T, C)
    return {"nad_t": nad_t, "mnad": nad_t.mean(axis=(0, 1))}


def errors(system: str, reference: np.ndarray, states: np.ndarray, start: int,
           dt: float) -> dict[str, Any]:  # fmt: skip
    """Errors of the coupled run against the micro-only reference after the warm-up."""
    ref, pred = reference[:, start:], states[:, start:]
    out: dict[str, Any] = {}
    if ref.ndim == 4 and system in CHANNELS:  # grids (B, T, C, N)
        nad_t = metrics.nad(ref.transpose(0, 2, 1, 3), pred.transpose(0, 2, 1, 3))  # (B, C, T)
        names = CHANNELS[system]
        for c, name in enumerate(names):
            out[f"mnad_{name}"] = float(nad_t[:, c].mean())
        out["nad_t"] = {n: nad_t[:, c].mean(axis=0).tolist() for c, n in enumerate(names)}
        out["wasserstein"] = metrics.wasserstein(ref.ravel(), pred.ravel())
        if system == "ks":
            from ..evaluation import KS_LYAPUNOV

            vpt = metrics.valid_prediction_time(nad_t[:, 0], dt, 0.1, KS_LYAPUNOV)
            out["valid_time_lyapunov"] = float(vpt.mean())
            out["l1_histogram"] = metrics.l1_histogram(ref.ravel(), pred.ravel())
    else:  # particles (B, T, N, d)
        d = ref.shape[-1]
        out["wasserstein_all"] = metrics.wasserstein(ref.reshape(-1, d), pred.reshape(-1, d))
        out["wasserstein_last"] = metrics.wasserstein(
            ref[:, -1].reshape(-1, d), pred[:, -1].reshape(-1, d)
        )
        w_t = [metrics.wasserstein(ref[:, j].reshape(-1, d), pred[:, j].reshape(-1, d))
               for j in range(0, ref.shape[1], max(1, ref.shape[1] // 50))]  # fmt: skip
        out["wasserstein_t"] = w_t
        out["m1_mae"] = float(np.abs(ref.mean(axis=2) - pred.mean(axis=2)).mean())
        out["m2_mae"] = float(np.abs(ref.var(axis=2) - pred.var(axis=2)).mean())
    return out


def write_run(run_dir: Path, settings: RunSettings, recorder: Recorder, result: dict[str, Any],
              reference: np.ndarray | None) -> None:  # fmt: skip
    """``trajectory.h5`` (states, t, latents, source), ``metrics.json``, plots.  The
    metrics file is written last, so its presence marks a finished run."""
    solver, seed, plots = settings.solver, settings.seed, settings.plots
    t = solver.dt_coarse * np.arange(recorder.n_total)
    write_trajectory(
        run_dir / "trajectory.h5", recorder.states, t, solver, seed,
        attrs={"coupling": "ledmus", "t_warm": result["settings"]["t_warm"],
               "t_macro": result["settings"]["t_macro"], "t_micro": result["settings"]["t_micro"]},
        extra={"latents": recorder.latents, "source": recorder.source},
    )  # fmt: skip
    if plots:
        try:
            plot_run(run_dir, solver, recorder, result, reference)
        except Exception as exc:  # a plot must never lose the run
            log.warning("plots failed: %s", exc)
    write_json(run_dir / "metrics.json", result)


def _windows(source: np.ndarray) -> list[tuple[int, int, int]]:
    """Runs of equal source: ``(start, stop, source)``."""
    edges = np.flatnonzero(np.diff(source)) + 1
    starts = np.r_[0, edges]
    stops = np.r_[edges, len(source)]
    return [(int(a), int(b), int(source[a])) for a, b in zip(starts, stops, strict=True)]


def plot_run(run_dir: Path, solver: Solver, recorder: Recorder, result: dict[str, Any],
             reference: np.ndarray | None) -> None:  # fmt: skip
    """Space-time field (grids) or particle statistics with the macro windows shaded,
    and the error over time when a reference was run."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    dt = solver.dt_coarse
    n = recorder.n_total
    t = dt * np.arange(n)
    span = min(n, 2000)
    states = recorder.states
    fig, (band, ax) = plt.subplots(2, 1, figsize=(10, 4.2), sharex=True,
                                   gridspec_kw={"height_ratios": [1, 9]})  # fmt: skip
    from matplotlib.colors import ListedColormap

    band.imshow(recorder.source[None, :span], aspect="auto", extent=(0, span * dt, 0, 1),
                cmap=ListedColormap(["tab:orange", "0.75"]), vmin=0, vmax=1,
                interpolation="nearest")  # fmt: skip
    band.set_yticks([])
    band.set_title(f"{solver.system}, member 0 — band: micro windows (orange), latent (grey)")
    if states.ndim == 4 and solver.system in CHANNELS:
        field = states[0, :span, 0]
        im = ax.imshow(field.T, aspect="auto", origin="lower", cmap="RdBu_r",
                       extent=(0, span * dt, 0, field.shape[1]))  # fmt: skip
        fig.colorbar(im, ax=[band, ax], label="u")
        ax.set_ylabel("node")
    else:
        for k in range(states.shape[-1]):
            ax.plot(t[:span], states[0, :span, :, k].mean(axis=1), label=f"mean x{k}")
        ax.legend(loc="upper right")
        ax.set_ylabel("mean position")
    for a, _b, src in _windows(recorder.source[:span]):
        if src == SOURCES["micro"]:
            ax.axvline(a * dt, color="tab:orange", lw=0.6, alpha=0.6)
    ax.set_xlabel("t")
    fig.savefig(run_dir / "field.png", dpi=90)
    plt.close(fig)
    err = result.get("errors", {})
    if reference is not None and "nad_t" in err:
        fig, ax = plt.subplots(figsize=(7, 3.5))
        start = recorder.n_total - len(next(iter(err["nad_t"].values())))
        for name, values in err["nad_t"].items():
            ax.plot(t[start:], values, label=f"NAD {name}")
        ax.set_xlabel("t")
        ax.set_ylabel("NAD vs micro-only run")
        ax.legend()
        fig.tight_layout()
        fig.savefig(run_dir / "error_vs_time.png", dpi=90)
        plt.close(fig)
    elif reference is not None and "wasserstein_t" in err:
        fig, ax = plt.subplots(figsize=(7, 3.5))
        w = err["wasserstein_t"]
        start = result["settings"]["t_warm"] / dt + 1
        ax.plot(start * dt + dt * np.arange(len(w)) * max(1, (n - start) // 50), w)
        ax.set_xlabel("t")
        ax.set_ylabel("W1 of positions vs micro-only")
        fig.tight_layout()
        fig.savefig(run_dir / "error_vs_time.png", dpi=90)
        plt.close(fig)
