"""What a coupled run writes: errors against the micro reference (the system's metric
suite), ``trajectory.h5``, ``metrics.json`` and plots in the run directory."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from .. import systems
from ..atomic import split_series, write_json
from ..trajectory import write_trajectory
from .recorder import SOURCES, Recorder, source_runs
from .settings import RunSettings

log = logging.getLogger(__name__)


def grid_errors(reference: np.ndarray, abs_err: np.ndarray, start: int) -> dict[str, Any]:
    """MNAD per channel over indices ``start:`` from accumulated spatial mean absolute
    errors ``(B, N, C)`` (eqs 22–23: range over the reference's space-time field of each
    member and channel after the warm-up)."""
    ref = reference[:, start:]
    rng = ref.max(axis=(1, 3)) - ref.min(axis=(1, 3))  # (B, C)
    rng = np.where(rng > 0, rng, 1.0)
    nad_t = abs_err[:, start:] / rng[:, None, :]  # (B, T, C)
    return {"nad_t": nad_t, "mnad": nad_t.mean(axis=(0, 1))}


def run_errors(settings: RunSettings, rec: Recorder, reference: np.ndarray) -> dict[str, Any]:
    """The system's error suite of the coupled run against the micro-only reference,
    after the warm-up."""
    spec = systems.get(settings.micro.system)
    start = settings.schedule.n_warm + 1
    if rec.states is not None:
        return spec.errors(reference[:, start:], rec.states[:, start:], settings.schedule.dt)
    g = grid_errors(reference, rec.abs_err, start)
    return {f"mnad_{n}": float(g["mnad"][c]) for c, n in enumerate(spec.channels)}


def write_run(
    run_dir: Path,
    settings: RunSettings,
    recorder: Recorder,
    result: dict[str, Any],
    reference: np.ndarray | None,
) -> None:
    """``trajectory.h5`` (states, t, latents, source per index and per member, the macro
    model's uncertainty per member and index (NaN where none), and the
    per-step error series such as ``errors/nad_t/u``), ``metrics.json`` (scalars and small
    tables only), plots.  The metrics file is written last, so its presence marks a
    finished run."""
    solver = settings.micro.solver
    t = solver.dt_coarse * np.arange(recorder.n_total)
    attrs = {
        "coupling": "ledmus",
        "model": str(settings.macro.model),
        "record": settings.output.record,
        **{k: result["settings"][k] for k in ("t_warm", "t_macro", "t_micro")},
    }
    scalars, series = split_series(result)
    scalars["series"] = {"file": "trajectory.h5", "datasets": sorted(series)}
    write_trajectory(
        run_dir / "trajectory.h5",
        recorder.states,
        t,
        solver,
        settings.micro.seed,
        attrs=attrs,
        extra={
            "latents": recorder.latents,
            "source": recorder.common_source(),
            "source_members": recorder.source,
            "uncertainty": recorder.uncertainty,
            **{k: np.asarray(v, dtype=np.float64) for k, v in series.items()},
        },
    )
    if settings.output.plots:
        try:
            plot_run(run_dir, settings, recorder, result, reference)
        except Exception as exc:  # a plot must never lose the run
            log.warning("plots failed: %s", exc)
    write_json(run_dir / "metrics.json", scalars)


def _shade_micro(ax: Any, source: np.ndarray, dt: float, label: bool = True) -> None:
    for a, b, src in source_runs(source):
        if src == SOURCES["micro"]:
            ax.axvspan(
                a * dt,
                max(b - 1, a) * dt,
                color="tab:orange",
                alpha=0.15,
                lw=0,
                label="micro windows" if label else None,
            )
            label = False


def plot_run(
    run_dir: Path,
    settings: RunSettings,
    recorder: Recorder,
    result: dict[str, Any],
    reference: np.ndarray | None,
) -> None:
    """Space-time field (grids, against x) or mean positions (particles) of member 0
    with the micro windows shaded, and the error over time when a reference was run."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    solver, spec = settings.micro.solver, systems.get(settings.micro.system)
    dt, n = solver.dt_coarse, recorder.n_total
    span = min(n, 2000)
    t, source = dt * np.arange(n), recorder.source[0]
    panels = RUN_PANELS[spec.run_plot]  # declared by the system (SystemSpec.run_plot)
    fig, ax = panels(plt, run_dir, settings, spec, recorder, reference, span)
    fig.suptitle(
        f"{settings.micro.system}, member 0, t = 0 … {(span - 1) * dt:g}: orange lines mark "
        f"the starts of micro windows (T_warm {settings.schedule.t_warm:g}, T_m "
        f"{settings.schedule.t_macro:g}, T_mu {settings.schedule.t_micro:g})",
        fontsize=10,
    )
    ax.set_xlabel("t")
    fig.tight_layout()
    fig.savefig(run_dir / "field.png", dpi=90)
    plt.close(fig)
    err = result.get("errors", {})
    series = (
        err.get("nad_t")
        or err.get("rel_l2_t")
        or ({"W1": err["wasserstein_t"]} if "wasserstein_t" in err else None)
    )
    if reference is None or not series:
        return
    lag = err.get("lag_t")  # travelling waves: the phase lag per step, its own panel
    fig, axes = plt.subplots(
        2 if lag else 1, 1, figsize=(7, 5.5 if lag else 3.5), sharex=True, squeeze=False
    )
    ax = axes[0, 0]
    start = settings.schedule.n_warm + 1
    for name, values in series.items():
        stride = max(1, (n - start) // 50) if name == "W1" else 1  # as the suite samples
        ax.plot(t[start : start + len(values) * stride : stride], values, label=name)
    _shade_micro(ax, source, dt)
    if lag:
        lax = axes[1, 0]
        lax.plot(t[start : start + len(lag)], lag, color="k", lw=1)
        lax.axhline(0.0, color="0.6", lw=0.5)
        _shade_micro(lax, source, dt)
        lax.set_ylabel("phase lag (time; < 0: behind)")
        lax.set_xlabel("t")
    ax.set_xlabel("t")
    ax.set_ylabel(
        "W1 vs micro-only run"
        if "W1" in series
        else "rel. L2 vs micro-only run"
        if "rel_l2_t" in err
        else "NAD vs micro-only run"
    )
    ax.legend()
    fig.tight_layout()
    fig.savefig(run_dir / "error_vs_time.png", dpi=90)
    plt.close(fig)


def _micro_starts(ax: Any, source: np.ndarray, dt: float) -> None:
    """Orange lines at the starts of member 0's micro windows."""
    for a, _b, src in source_runs(source):
        if src == SOURCES["micro"]:
            ax.axvline(a * dt, color="tab:orange", lw=0.8, alpha=0.8)


def _field_panels(plt, run_dir, settings, spec, recorder, reference, span):  # noqa: ANN001, ANN202
    """Channel 0 of member 0 over the coordinate and time (coupled, reference, error)."""
    solver, dt = settings.micro.solver, settings.micro.solver.dt_coarse
    states, source = recorder.states, recorder.source[0]
    x = spec.coordinates(solver) if spec.coordinates else np.arange(states.shape[-1])
    field = states[0, :span, 0]
    panels = [(field, "coupled run (micro windows and decoded macro phases)")]
    if reference is not None:
        panels += [
            (reference[0, :span, 0], "micro-only reference"),
            (np.abs(field - reference[0, :span, 0]), "|coupled - reference|"),
        ]
    fig, axes = plt.subplots(
        len(panels), 1, figsize=(10, 2.6 * len(panels) + 0.8), sharex=True, squeeze=False
    )
    lo, hi = np.nanmin(panels[0][0]), np.nanmax(panels[0][0])
    if reference is not None:
        lo, hi = reference[0, :span, 0].min(), reference[0, :span, 0].max()
    channel = spec.channels[0] if spec.channels else "state"
    for ax, (values, title) in zip(axes[:, 0], panels, strict=True):
        error = title.startswith("|")
        im = ax.imshow(
            values.T,
            aspect="auto",
            origin="lower",
            cmap="magma" if error else "RdBu_r",
            vmin=None if error else lo,
            vmax=None if error else hi,
            extent=(0, span * dt, x[0], x[-1]),
        )
        fig.colorbar(im, ax=ax, label=f"|error| of {channel}" if error else channel)
        ax.set_ylabel(spec.coordinate_name)
        ax.set_title(title, fontsize=9, loc="left")
        _micro_starts(ax, source[:span], dt)
    return fig, axes[-1, 0]


def _profile_panels(plt, run_dir, settings, spec, recorder, reference, span):  # noqa: ANN001, ANN202
    """Kinetic states: the ρ, u, T profiles (``profiles.png``) and the share of members
    in a macro phase over time."""
    dt = settings.micro.solver.dt_coarse
    states, source = recorder.states, recorder.source[0]
    _kinetic_profiles(run_dir, settings, states, reference, source)
    t = dt * np.arange(recorder.n_total)
    fig, ax = plt.subplots(figsize=(10, 3.0))
    ax.step(t[:span], (recorder.source[:, :span] == SOURCES["macro"]).mean(axis=0), where="post")
    ax.set_ylabel("share of members macro")
    return fig, ax


def _mean_panels(plt, run_dir, settings, spec, recorder, reference, span):  # noqa: ANN001, ANN202
    """The mean over the last-but-one axis (particles: positions) of each channel or
    axis of member 0 over time, the reference dotted."""
    dt = settings.micro.solver.dt_coarse
    states, source = recorder.states, recorder.source[0]
    t = dt * np.arange(recorder.n_total)
    fig, ax = plt.subplots(figsize=(10, 4.2))
    axis_names = spec.channels or tuple(f"x{k}" for k in range(states.shape[-1]))
    for k in range(states.shape[-1]):
        label = axis_names[k] if k < len(axis_names) else f"x{k}"
        ax.plot(t[:span], states[0, :span, :, k].mean(axis=1), label=f"mean {label}")
        if reference is not None:
            ax.plot(
                t[:span],
                reference[0, :span, :, k].mean(axis=1),
                color=f"C{k}",
                ls=":",
                label=f"mean {label}, micro-only",
            )
    ax.set_ylabel("mean position" if spec.particles else "mean value")
    _micro_starts(ax, source[:span], dt)
    ax.legend(loc="upper right", fontsize=8)
    return fig, ax


#: SystemSpec.run_plot -> the painter of member 0's panels of ``field.png``
RUN_PANELS = {"field": _field_panels, "profiles": _profile_panels, "means": _mean_panels}


def _kinetic_profiles(
    run_dir: Path,
    settings: RunSettings,
    states: np.ndarray,
    reference: np.ndarray | None,
    source: np.ndarray,
) -> None:
    """``profiles.png``: ρ, u, T of member 0 against x at the first, middle and last
    recorded times (solid: coupled run, dotted: micro-only reference; the title says
    whether each state came from the macro model or the micro solver)."""
    from ..surrogates.closure.plots import pyplot, save_figure
    from ..systems.kinetic import primitive_fields

    solver, n = settings.micro.solver, states.shape[1]
    x, scale = solver.x, (solver.dv, solver.dv, solver.dv**2)
    idx = (0, n // 2, n - 1)
    fig, axes = pyplot().subplots(1, 3, figsize=(12, 3.4))
    for c, j in enumerate(idx):
        what = "macro" if source[j] == SOURCES["macro"] else "micro"
        ref = primitive_fields(reference[0, j]) if reference is not None else (None,) * 3
        for ax, name, a, r, k in zip(
            axes, ("ρ", "u", "T"), primitive_fields(states[0, j]), ref, scale, strict=True
        ):
            ax.plot(x, a * k, color=f"C{c}", label=f"t = {j * solver.dt_coarse:g} ({what})")
            if r is not None:
                ax.plot(x, r * k, color=f"C{c}", ls=":")
            ax.set(xlabel="x", title=name)
    axes[0].legend(fontsize=8)
    fig.suptitle("member 0: coupled run (solid), micro-only reference (dotted)", fontsize=10)
    fig.tight_layout()
    save_figure(fig, run_dir / "profiles.png", dpi=90)
