"""Comparison measures of the LED paper (Vlachas et al. §7), in numpy, exactly as defined there.

* NAD / MNAD (eqs 22–23): ``NAD(t_j) = 1/N_x sum_i |y_ij - y~_ij| / (max_ij y - min_ij y)``,
  the range taken over the whole reference field; ``MNAD = mean_j NAD(t_j)``.
* Wasserstein-1 (eq 24) between samples; for vectors, the mean over marginals.
* L1 histogram distance: ``sum_b |p_b - q_b|`` of the two normalised histograms on one
  grid of Rice-rule bins ``ceil(2 n^(1/3))`` (n: observations in the reference sample);
  0 for equal, 2 for disjoint distributions.
* Power spectrum: mean ``|FFT_x u|^2`` over samples; error = mean over wavenumbers of
  ``|log10 P~ - log10 P|``.
* Valid prediction time: the first time NAD exceeds a threshold (0.1), in Lyapunov
  times when the exponent is given.
* Speed-up ``S = T_micro / T_ledmus`` for the same simulated time.
* Phase and shape of travelling waves (:func:`phase_shape`): per predicted step the time
  shift ``τ`` for which the reference, linearly interpolated in time, best matches the
  prediction (least squares), and the NAD left after that shift.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats


def nad(reference: np.ndarray, prediction: np.ndarray) -> np.ndarray:
    """NAD per time step (eq 22) of fields ``(..., T, N_x)``; returns ``(..., T)``.

    The normalising range is ``max - min`` of ``reference`` over its last two axes
    (all space and time points of one run).
    """
    y, y_hat = np.asarray(reference, dtype=np.float64), np.asarray(prediction, dtype=np.float64)
    if y.shape != y_hat.shape or y.ndim < 2:
        raise ValueError(
            f"reference {y.shape} and prediction {y_hat.shape} must match, (..., T, N_x)"
        )
    rng = y.max(axis=(-2, -1)) - y.min(axis=(-2, -1))
    rng = np.where(rng > 0, rng, 1.0)
    return np.abs(y - y_hat).mean(axis=-1) / rng[..., None]


def mnad(reference: np.ndarray, prediction: np.ndarray) -> np.ndarray:
    """MNAD (eq 23): the time mean of :func:`nad`; returns ``(...)``."""
    return nad(reference, prediction).mean(axis=-1)


def _columns(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return x.reshape(-1, 1) if x.ndim == 1 else x.reshape(-1, x.shape[-1])


def wasserstein(reference: np.ndarray, prediction: np.ndarray) -> float:
    """Wasserstein-1 distance of samples (eq 24); ``(n,)`` or ``(n, d)`` (mean of the d
    marginal distances)."""
    a, b = _columns(reference), _columns(prediction)
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"samples have {a.shape[1]} and {b.shape[1]} variables")
    return float(np.mean([stats.wasserstein_distance(a[:, i], b[:, i]) for i in range(a.shape[1])]))


def rice_bins(n: int) -> int:
    """Rice rule: ``ceil(2 n^(1/3))`` bins for ``n`` observations."""
    return math.ceil(2 * n ** (1 / 3))


def l1_histogram(reference: np.ndarray, prediction: np.ndarray) -> float:
    """L1 distance of normalised histograms on a shared grid of Rice-rule bins (mean
    over marginals for ``(n, d)`` samples); in [0, 2]."""
    a, b = _columns(reference), _columns(prediction)
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"samples have {a.shape[1]} and {b.shape[1]} variables")
    out = []
    for i in range(a.shape[1]):
        lo, hi = min(a[:, i].min(), b[:, i].min()), max(a[:, i].max(), b[:, i].max())
        edges = np.linspace(lo, hi if hi > lo else lo + 1.0, rice_bins(a.shape[0]) + 1)
        p = np.histogram(a[:, i], edges)[0] / a.shape[0]
        q = np.histogram(b[:, i], edges)[0] / b.shape[0]
        out.append(np.abs(p - q).sum())
    return float(np.mean(out))


def power_spectrum(fields: np.ndarray) -> np.ndarray:
    """Mean power ``|rfft(u)|^2 / N^2`` over all leading axes of fields ``(..., N)``."""
    u = np.asarray(fields, dtype=np.float64)
    n = u.shape[-1]
    return (np.abs(np.fft.rfft(u, axis=-1)) ** 2 / n**2).reshape(-1, n // 2 + 1).mean(axis=0)


def power_spectrum_error(reference: np.ndarray, prediction: np.ndarray) -> float:
    """Mean over wavenumbers of ``|log10 P_pred - log10 P_ref|`` (decades)."""
    p, q = power_spectrum(reference), power_spectrum(prediction)
    tiny = 1e-300
    return float(np.mean(np.abs(np.log10(q + tiny) - np.log10(p + tiny))))


def valid_prediction_time(
    nad_t: np.ndarray, dt: float, threshold: float = 0.1, lyapunov_exponent: float | None = None
) -> np.ndarray:
    """Time until NAD first exceeds ``threshold`` for ``nad_t`` ``(..., T)`` sampled every
    ``dt`` (the whole horizon when it never does); in Lyapunov times ``t * lambda_1`` when
    ``lyapunov_exponent`` is given."""
    nad_t = np.asarray(nad_t)
    over = nad_t > threshold
    first = np.where(over.any(axis=-1), over.argmax(axis=-1), nad_t.shape[-1])
    t = first * dt
    return t * lyapunov_exponent if lyapunov_exponent is not None else t


def speedup(t_micro: float, t_ledmus: float) -> float:
    """``S = T_micro / T_ledmus`` (wall times for the same simulated span)."""
    if t_ledmus <= 0:
        raise ValueError("t_ledmus must be > 0")
    return t_micro / t_ledmus


def phase_shape(
    reference: np.ndarray,
    prediction: np.ndarray,
    dt: float = 1.0,
    window: int = 10,
    index: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Phase lag and shape error of a travelling-wave forecast.

    ``reference`` ``(T_ref, *field)`` is a trajectory sampled every ``dt``; ``prediction``
    ``(T, *field)`` holds the predicted states at reference indices ``index`` ``(T,)``
    (default ``0..T-1``).  For each predicted step ``j`` at reference index ``i_j`` the
    reference is searched over times ``t(i_j) + τ`` with ``|τ| <= window * dt``, between
    samples by linear interpolation ``r(k + a) = (1 - a) r_k + a r_{k+1}``,
    ``a* = clip(<p - r_k, r_{k+1} - r_k> / |r_{k+1} - r_k|², 0, 1)``, for the ``τ`` that
    minimises ``|p_j - r(i_j + τ/dt)|²``.

    Returns ``lag`` ``(T,)``: ``τ`` in time units, negative when the forecast lags behind
    the reference (it matches an earlier reference state); and ``shape`` ``(T,)``: the NAD
    (eq 22, the range of the whole reference) between ``p_j`` and the shifted reference.
    The shift is searched in the reference, never in the prediction.
    """
    ref = np.asarray(reference, dtype=np.float64)
    pred = np.asarray(prediction, dtype=np.float64)
    if ref.ndim < 2 or pred.shape[1:] != ref.shape[1:]:
        raise ValueError(
            f"reference {ref.shape} and prediction {pred.shape} must be (T, *field) "
            "with the same field shape"
        )
    if window < 1:
        raise ValueError(f"window must be an integer >= 1, got {window!r}")
    n_ref = ref.shape[0]
    r = ref.reshape(n_ref, -1)
    p = pred.reshape(pred.shape[0], r.shape[1])  # (0 steps: -1 could not be inferred)
    idx = np.arange(p.shape[0]) if index is None else np.asarray(index, dtype=np.int64)
    if idx.shape != (p.shape[0],) or idx.min(initial=0) < 0 or idx.max(initial=0) >= n_ref:
        raise ValueError(f"index must hold one reference index in [0, {n_ref}) per step")
    span = r.max() - r.min()
    span = span if span > 0 else 1.0
    if n_ref == 1:  # nothing to shift against
        return np.zeros(p.shape[0]), np.abs(p - r[0]).mean(axis=-1) / span
    lag, shape = np.empty(p.shape[0]), np.empty(p.shape[0])
    offsets = np.arange(-window, window)
    chunk = max(1, 200_000 // (2 * window * r.shape[1]))  # ~1.6 MB per temporary
    for c0 in range(0, p.shape[0], chunk):
        pj, i = p[c0 : c0 + chunk], idx[c0 : c0 + chunk]
        k = i[:, None] + offsets[None, :]  # (n, 2w) segments [k, k + 1]
        valid = (k >= 0) & (k + 1 <= n_ref - 1)
        k = np.clip(k, 0, n_ref - 2)
        d = r[k + 1] - r[k]  # (n, 2w, M)
        e = pj[:, None, :] - r[k]
        dd = np.einsum("nkm,nkm->nk", d, d)
        a = np.clip(np.einsum("nkm,nkm->nk", e, d) / np.where(dd > 0, dd, 1.0), 0.0, 1.0)
        resid = e - a[..., None] * d
        dist = np.where(valid, np.einsum("nkm,nkm->nk", resid, resid), np.inf)
        best = np.argmin(dist, axis=1)
        rows = np.arange(len(i))
        lag[c0 : c0 + chunk] = (k[rows, best] + a[rows, best] - i) * dt
        shape[c0 : c0 + chunk] = np.abs(resid[rows, best]).mean(axis=-1) / span
    return lag, shape
