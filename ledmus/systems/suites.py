"""Metric suites by the layout of a state (numpy, :mod:`ledmus.metrics`), parametrised by the
system's declaration (channel names, Lyapunov exponent, evaluation spans).

Two suites per layout:

* ``errors``: a coupled run against the micro-only reference (``SystemSpec.errors``);
* ``evaluate``: the latent-forecast protocol on test windows (``SystemSpec.evaluate``).

Both take ``reference`` and ``prediction`` shaped ``(B, T, *state_shape)`` (after the
warm-up) and the sampling interval ``dt``, and return JSON-ready dicts.

Grid (and kinetic moment fields) ``(B, T, C, N)``:
  errors   ``mnad_<ch>``, ``nad_t`` {ch: NAD(t)}, ``wasserstein`` of all values and, with a
           Lyapunov exponent, ``valid_time_lyapunov`` (NAD of the first channel < 0.1)
           and ``l1_histogram``.
  evaluate several channels: ``mnad_<ch>`` and ``mnad_<ch>_<span>`` per span, ``nad_t``
           {ch: NAD(t)}; one channel: ``mnad`` (``mnad_<span>``), ``nad_t`` a list.  With a
           Lyapunov exponent (a chaotic system, compared statistically): also
           ``valid_time_lyapunov`` (+ ``_per_ic``), ``wasserstein``, ``l1_histogram``,
           ``power_spectrum_error``.
Kinetic ``(B, T, nv, nx)`` (BGK ``f``): errors ``rel_l2_<m>`` (``_max``, ``_final``) of
  the moments ``rho``, ``u``, ``T``, ``rel_l2_t`` {m: (T,)}, ``mnad_f``
  (:func:`~.kinetic.kinetic_errors`); evaluate as grids.
Particles ``(B, T, N_particles, d)``:
  errors   ``wasserstein_all``, ``wasserstein_last``, ``wasserstein_t`` (about 50 times),
           ``m1_mae``, ``m2_mae`` (mean and variance over particles per axis).
  evaluate ``wasserstein_last``, ``wasserstein_all``, ``l1_histogram_all``,
           ``m1_wasserstein``, ``m2_wasserstein``, ``m1_mae``, ``m2_mae``.
Histogram ``(B, T, C, n_bins)`` (fractions, each channel sums to one):
  errors = evaluate: ``l1_<ch>`` (mean over members and time of ``sum_b |p_b - q_b|``),
           ``mnad_<ch>`` (NAD over the bins, range of the reference), ``mass_error``
           (``max |sum_b q_b - 1|`` of the prediction), ``nad_t`` {ch: NAD(t)}.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import metrics
from .kinetic import kinetic_errors

#: valid prediction time threshold on NAD (Vlachas et al. §7)
VALID_TIME_THRESHOLD = 0.1


def _check(reference: np.ndarray, prediction: np.ndarray, ndim: int, what: str):
    ref, pred = np.asarray(reference), np.asarray(prediction)
    if ref.shape != pred.shape or ref.ndim != ndim:
        raise ValueError(f"reference {ref.shape} and prediction {pred.shape} must match, {what}")
    return ref, pred


def _channels(spec, n: int) -> tuple[str, ...]:
    if not spec.channels:
        return tuple(f"c{c}" for c in range(n))
    if len(spec.channels) != n:
        raise ValueError(
            f"system {spec.name!r} declares channels {', '.join(spec.channels)} but the "
            f"states have {n}"
        )
    return spec.channels


# ----------------------------------------------------------------------------- grids
#: reference steps searched either side for the phase lag (time units: times dt)
PHASE_WINDOW = 20


def final_lag(lag_t: np.ndarray) -> float:
    """The lag ``PHASE_WINDOW`` steps before the end (the first step when shorter): at the
    last steps the search cannot look ahead of the reference's end, so a forecast ahead
    of it would read as a lag near 0 there."""
    return float(lag_t[max(0, len(lag_t) - 1 - PHASE_WINDOW)])


def member_phases(
    reference: np.ndarray, prediction: np.ndarray, dt: float
) -> tuple[np.ndarray, np.ndarray]:
    """Lag and shape NAD ``(B, T)`` of each member's channel-0 fields ``(B, T, N)``
    against its reference (:func:`ledmus.metrics.phase_shape`, ±``PHASE_WINDOW`` steps)."""
    pairs = [
        metrics.phase_shape(r, p, dt, PHASE_WINDOW)
        for r, p in zip(reference, prediction, strict=True)
    ]
    return np.stack([lag for lag, _ in pairs]), np.stack([shape for _, shape in pairs])


def phase_errors(reference: np.ndarray, prediction: np.ndarray, dt: float) -> dict[str, Any]:
    """Phase lag and shape error of channel-0 fields ``(B, T, N)`` against the reference
    (:func:`member_phases`): ``lag_final`` (member mean at the last step whose search
    window lies inside the reference, :func:`final_lag`; time units, negative: behind),
    ``lag_mean`` (mean over members and steps), ``lag_t`` (member mean per step) and
    ``shape_mnad`` (NAD after the shift, mean over members and steps)."""
    lags, shapes = member_phases(reference, prediction, dt)
    lag_t = lags.mean(axis=0)
    return {
        "lag_final": final_lag(lag_t),
        "lag_mean": float(lag_t.mean()),
        "shape_mnad": float(shapes.mean()),
        "lag_t": lag_t.tolist(),
    }


def grid_errors(spec, reference: np.ndarray, prediction: np.ndarray, dt: float) -> dict[str, Any]:
    ref, pred = _check(reference, prediction, 4, "(B, T, C, N)")
    names = _channels(spec, ref.shape[2])
    out: dict[str, Any] = {}
    nad_t = metrics.nad(ref.transpose(0, 2, 1, 3), pred.transpose(0, 2, 1, 3))  # (B, C, T)
    for c, name in enumerate(names):
        out[f"mnad_{name}"] = float(nad_t[:, c].mean())
    out["nad_t"] = {n: nad_t[:, c].mean(axis=0).tolist() for c, n in enumerate(names)}
    out["wasserstein"] = metrics.wasserstein(ref.ravel(), pred.ravel())
    if spec.travelling_wave:
        out.update(phase_errors(ref[:, :, 0], pred[:, :, 0], dt))
    if spec.lyapunov is not None:
        vpt = metrics.valid_prediction_time(nad_t[:, 0], dt, VALID_TIME_THRESHOLD, spec.lyapunov)
        out["valid_time_lyapunov"] = float(vpt.mean())
        out["l1_histogram"] = metrics.l1_histogram(ref.ravel(), pred.ravel())
    return out


def grid_evaluate(spec, reference: np.ndarray, prediction: np.ndarray, dt: float) -> dict[str, Any]:
    ev = GridEvaluator(spec, dt)
    ev.add(reference, prediction)
    return ev.result()


class GridEvaluator:
    """:func:`grid_evaluate` over windows given in chunks (``add``), so the test windows
    never have to be in memory together: it keeps the per-window NAD ``(W, C, T)`` and,
    for chaotic systems, the first channel's values (distances of the value
    distributions) and the summed power spectra.  The result equals one call on all
    windows up to the order of floating-point sums."""

    def __init__(self, spec, dt: float) -> None:
        self.spec, self.dt = spec, dt
        self.nad: list[np.ndarray] = []
        self.values: tuple[list[np.ndarray], list[np.ndarray]] = ([], [])
        self.spectra: np.ndarray | None = None  # (2, C, K): sums of reference, prediction
        self.n_fields = 0
        self.lags: list[np.ndarray] = []  # travelling waves: (W, T) per chunk
        self.shapes: list[np.ndarray] = []

    def add(self, reference: np.ndarray, prediction: np.ndarray) -> None:
        ref, pred = _check(reference, prediction, 4, "(W, T, C, N)")
        self.names = _channels(self.spec, ref.shape[2])
        self.nad.append(metrics.nad(ref.transpose(0, 2, 1, 3), pred.transpose(0, 2, 1, 3)))
        if self.spec.travelling_wave:
            lags, shapes = member_phases(ref[:, :, 0], pred[:, :, 0], self.dt)
            self.lags.append(lags)
            self.shapes.append(shapes)
        if self.spec.lyapunov is not None:
            self.values[0].append(ref.ravel())
            self.values[1].append(pred.ravel())
            n = ref.shape[0] * ref.shape[1]  # fields per channel in this chunk
            spectra = np.stack(
                [
                    [metrics.power_spectrum(a[:, :, c]) * n for c in range(ref.shape[2])]
                    for a in (ref, pred)
                ]
            )
            self.spectra = spectra if self.spectra is None else self.spectra + spectra
            self.n_fields += n

    def result(self) -> dict[str, Any]:
        if not self.nad:
            raise ValueError("no windows were added")
        nad_ct = np.concatenate(self.nad)  # (W, C, T)
        names, spans = self.names, self.spec.evaluation.spans
        out: dict[str, Any] = {}
        if len(names) > 1:
            for c, name in enumerate(names):
                out[f"mnad_{name}"] = float(nad_ct[:, c].mean())
                for span in spans:
                    out[f"mnad_{name}_{span}"] = float(nad_ct[:, c, :span].mean())
            nad_summary: Any = {n: nad_ct[:, c].mean(axis=0).tolist() for c, n in enumerate(names)}
        else:
            out["mnad"] = float(nad_ct[:, 0].mean())
            for span in spans:
                out[f"mnad_{span}"] = float(nad_ct[:, 0, :span].mean())
            nad_summary = nad_ct[:, 0].mean(axis=0).tolist()
        if self.lags:
            lag_t = np.concatenate(self.lags).mean(axis=0)
            out.update(
                lag_final=final_lag(lag_t),
                lag_mean=float(lag_t.mean()),
                shape_mnad=float(np.concatenate(self.shapes).mean()),
            )
        if self.spec.lyapunov is not None:
            nad_t = nad_ct[:, 0]
            vpt = metrics.valid_prediction_time(
                nad_t, self.dt, VALID_TIME_THRESHOLD, self.spec.lyapunov
            )
            ref, pred = (np.concatenate(v) for v in self.values)
            p, q = self.spectra / self.n_fields
            tiny = 1e-300  # as metrics.power_spectrum_error
            pse = np.abs(np.log10(q + tiny) - np.log10(p + tiny)).mean(axis=-1)  # (C,)
            out.update(
                valid_time_lyapunov=float(vpt.mean()),
                valid_time_lyapunov_per_ic=vpt.tolist(),
                wasserstein=metrics.wasserstein(ref, pred),
                l1_histogram=metrics.l1_histogram(ref, pred),
                power_spectrum_error=float(pse[0]) if len(pse) == 1 else float(np.mean(pse)),
            )
        out["nad_t"] = nad_summary
        return out


class CollectingEvaluator:
    """Any evaluation suite over windows given in chunks: keeps the chunks and calls the
    suite once on all of them (for suites whose statistics need every value)."""

    def __init__(self, spec, dt: float) -> None:
        self.spec, self.dt = spec, dt
        self.parts: tuple[list[np.ndarray], list[np.ndarray]] = ([], [])

    def add(self, reference: np.ndarray, prediction: np.ndarray) -> None:
        self.parts[0].append(np.asarray(reference))
        self.parts[1].append(np.asarray(prediction))

    def result(self) -> dict[str, Any]:
        if not self.parts[0]:
            raise ValueError("no windows were added")
        ref, pred = (np.concatenate(p) for p in self.parts)
        return SUITES[self.spec.layout][1](self.spec, ref, pred, self.dt)


# ------------------------------------------------------------------------- particles
def particle_errors(
    spec, reference: np.ndarray, prediction: np.ndarray, dt: float
) -> dict[str, Any]:
    ref, pred = _check(reference, prediction, 4, "(B, T, N_particles, d)")
    d = ref.shape[-1]
    out: dict[str, Any] = {}
    out["wasserstein_all"] = metrics.wasserstein(ref.reshape(-1, d), pred.reshape(-1, d))
    out["wasserstein_last"] = metrics.wasserstein(
        ref[:, -1].reshape(-1, d), pred[:, -1].reshape(-1, d)
    )
    out["wasserstein_t"] = [
        metrics.wasserstein(ref[:, j].reshape(-1, d), pred[:, j].reshape(-1, d))
        for j in range(0, ref.shape[1], max(1, ref.shape[1] // 50))
    ]
    out["m1_mae"] = float(np.abs(ref.mean(axis=2) - pred.mean(axis=2)).mean())
    out["m2_mae"] = float(np.abs(ref.var(axis=2) - pred.var(axis=2)).mean())
    return out


def particle_evaluate(
    spec, reference: np.ndarray, prediction: np.ndarray, dt: float
) -> dict[str, Any]:
    ref, pred = _check(reference, prediction, 4, "(W, T, N_particles, d)")
    d = ref.shape[-1]
    m1_ref, m1_pred = ref.mean(axis=2), pred.mean(axis=2)  # (W, T, d)
    m2_ref, m2_pred = ref.var(axis=2), pred.var(axis=2)
    return dict(
        wasserstein_last=metrics.wasserstein(ref[:, -1].reshape(-1, d), pred[:, -1].reshape(-1, d)),
        wasserstein_all=metrics.wasserstein(ref.reshape(-1, d), pred.reshape(-1, d)),
        l1_histogram_all=metrics.l1_histogram(ref.reshape(-1, d), pred.reshape(-1, d)),
        m1_wasserstein=metrics.wasserstein(m1_ref.reshape(-1, d), m1_pred.reshape(-1, d)),
        m2_wasserstein=metrics.wasserstein(m2_ref.reshape(-1, d), m2_pred.reshape(-1, d)),
        m1_mae=float(np.abs(m1_ref - m1_pred).mean()),
        m2_mae=float(np.abs(m2_ref - m2_pred).mean()),
    )


# ------------------------------------------------------------------------ histograms
def histogram_errors(
    spec, reference: np.ndarray, prediction: np.ndarray, dt: float
) -> dict[str, Any]:
    ref, pred = _check(reference, prediction, 4, "(B, T, C, n_bins)")
    names = _channels(spec, ref.shape[2])
    out: dict[str, Any] = {}
    nad_t = {}
    for c, name in enumerate(names):
        p, q = ref[:, :, c], pred[:, :, c]  # (B, T, n_bins)
        out[f"l1_{name}"] = float(np.abs(p - q).sum(axis=-1).mean())
        nad = metrics.nad(p, q)  # (B, T), range over the reference's bins and times
        out[f"mnad_{name}"] = float(nad.mean())
        nad_t[name] = nad.mean(axis=0).tolist()
    out["mass_error"] = float(np.abs(pred.sum(axis=-1) - 1.0).max())
    out["nad_t"] = nad_t
    return out


def cloud_error(macro: np.ndarray, micro: np.ndarray) -> np.ndarray:
    """``|d mean| + |d std|`` of particle clouds ``(b, n, N, d)`` per step and axis."""
    dm = np.abs(macro.mean(axis=2) - micro.mean(axis=2))
    ds = np.abs(macro.std(axis=2) - micro.std(axis=2))
    return dm + ds


def comparison_error(
    spec, macro: np.ndarray, micro: np.ndarray, span: np.ndarray | None
) -> np.ndarray:
    """The adaptive schedule's comparison error per member of a block ``(b, n, ...)``:
    grids (and histograms, kinetic cells) ``max_c mean_{t,x} |macro - micro| / span_c``
    with ``span`` ``(b, C)`` the member's micro range per channel; particles
    ``max_axis (|d mean| + |d std|)`` over the block (box units; ``span`` unused)."""
    if spec.layout == "particles":
        return cloud_error(macro, micro).max(axis=(1, 2))
    return (np.abs(macro - micro).mean(axis=(1, 3)) / span).max(axis=1)


def step_errors(spec, macro: np.ndarray, micro: np.ndarray, span: np.ndarray | None) -> np.ndarray:
    """The comparison error of each step of a block, ``(b, n)`` (as
    :func:`comparison_error`, without the mean over the block's steps)."""
    if spec.layout == "particles":
        return cloud_error(macro, micro).max(axis=2)
    return (np.abs(macro - micro).mean(axis=3) / span[:, None, :]).max(axis=2)


SUITES = {
    "grid": (grid_errors, grid_evaluate),
    "kinetic": (kinetic_errors, grid_evaluate),  # errors: rho, u, T of f
    "particles": (particle_errors, particle_evaluate),
    "histogram": (histogram_errors, histogram_errors),
}


def errors(spec, reference: np.ndarray, prediction: np.ndarray, dt: float) -> dict[str, Any]:
    """The coupled-run error suite of ``spec.layout``."""
    return SUITES[spec.layout][0](spec, reference, prediction, dt)


def evaluate(spec, reference: np.ndarray, prediction: np.ndarray, dt: float) -> dict[str, Any]:
    """The latent-forecast evaluation suite of ``spec.layout``."""
    return SUITES[spec.layout][1](spec, reference, prediction, dt)


def evaluator(spec, dt: float) -> GridEvaluator | CollectingEvaluator:
    """An accumulator (``add(reference, prediction)`` per chunk of windows, then
    ``result()``) equal to :func:`evaluate` on all windows; grids stream."""
    if SUITES[spec.layout][1] is grid_evaluate:
        return GridEvaluator(spec, dt)
    return CollectingEvaluator(spec, dt)
