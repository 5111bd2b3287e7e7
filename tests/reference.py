"""Independent reference solutions used by the solver tests (numpy/scipy only)."""

from __future__ import annotations

import numpy as np
from scipy.fft import dct, idct


def fhn_cosine_spectral(
    u0,
    v0,
    wall_length: float,
    t_end: float,
    *,
    d_u=1.0,
    d_v=4.0,
    eps=0.006,
    a0=-0.03,
    a1=2.0,
    dt: float = 1e-3,
) -> tuple[np.ndarray, np.ndarray]:
    """FHN PDE with zero-flux walls at 0 and ``wall_length`` by a cosine (DCT-II) spectral
    method and integrating-factor RK4 (Lawson) in time.

    ``u0``, ``v0``: values at the M cell centres ``(i + 1/2) wall_length / M``.  The cosine
    basis satisfies the Neumann condition exactly; diffusion is integrated exactly and the
    (non-stiff) reaction by RK4, so the error is spectral in space and O(dt^4) in time.
    Returns the coefficient arrays (u_hat, v_hat) at ``t_end`` (orthonormal DCT-II).
    """
    m = len(u0)
    kappa = (np.pi * np.arange(m) / wall_length) ** 2
    lin = np.stack([-d_u * kappa, -d_v * kappa])
    y = dct(np.stack([u0, v0]), type=2, norm="ortho", axis=-1)
    n = int(round(t_end / dt))
    e_half, e_full = np.exp(lin * dt / 2), np.exp(lin * dt)

    def rhs(yh):
        u, v = idct(yh, type=2, norm="ortho", axis=-1)
        r = np.stack([u - u**3 - v, eps * (u - a1 * v - a0)])
        return dct(r, type=2, norm="ortho", axis=-1)

    for _ in range(n):
        k1 = rhs(y)
        k2 = rhs(e_half * (y + dt / 2 * k1))
        k3 = rhs(e_half * y + dt / 2 * k2)
        k4 = rhs(e_full * y + dt * e_half * k3)
        y = e_full * y + dt / 6 * (e_full * k1 + 2 * e_half * (k2 + k3) + k4)
    return y[0], y[1]


def cosine_series(coef: np.ndarray, wall_length: float, x: np.ndarray) -> np.ndarray:
    """Evaluate an orthonormal DCT-II coefficient vector (M cells) at arbitrary points x."""
    m = len(coef)
    w = np.full(m, np.sqrt(2.0 / m))
    w[0] = np.sqrt(1.0 / m)
    return (w * coef) @ np.cos(np.pi * np.outer(np.arange(m), x) / wall_length)


def fhn_node_spectral(
    u0,
    v0,
    length: float,
    t_end: float,
    *,
    refine: int = 4,
    dt: float = 1e-2,
    every: float = 1.0,
    d_u=1.0,
    d_v=4.0,
    eps=0.006,
    a0=-0.03,
    a1=2.0,
) -> np.ndarray:
    """FHN PDE with zero-flux walls at ``x = 0`` and ``x = length`` by a cosine (DCT-I)
    spectral method on nodes that include the walls, Lawson RK4 in time.

    ``u0``, ``v0``: values at the N nodes ``j length/(N-1)``.  They are interpolated by
    their cosine series (DCT-I, exact at the nodes, Neumann at both walls) onto
    ``(N-1) refine + 1`` nodes, integrated there (diffusion exactly, reaction by RK4:
    O(dt^4)) and sampled back at the original nodes every ``every`` time units.
    Returns ``(T, 2, N)`` for ``t = 0, every, …, t_end``.
    """
    n = len(u0)
    m = (n - 1) * refine + 1
    yh = np.zeros((2, m))
    yh[:, :n] = amplitudes(np.stack([u0, v0]))  # the same cosine series on the fine nodes
    kappa = (np.pi * np.arange(m) / length) ** 2
    lin = np.stack([-d_u * kappa, -d_v * kappa])
    steps, stride = int(round(t_end / dt)), int(round(every / dt))
    e_half, e_full = np.exp(lin * dt / 2), np.exp(lin * dt)

    def rhs(ah):
        u, v = values(ah)
        return amplitudes(np.stack([u - u**3 - v, eps * (u - a1 * v - a0)]))

    out = [values(yh)[:, ::refine]]
    for i in range(1, steps + 1):
        k1 = rhs(yh)
        k2 = rhs(e_half * (yh + dt / 2 * k1))
        k3 = rhs(e_half * yh + dt / 2 * k2)
        k4 = rhs(e_full * yh + dt * e_half * k3)
        yh = e_full * yh + dt / 6 * (e_full * k1 + 2 * e_half * (k2 + k3) + k4)
        if i % stride == 0:
            out.append(values(yh)[:, ::refine])
    return np.stack(out)


def amplitudes(x: np.ndarray) -> np.ndarray:
    """Cosine amplitudes ``a_k`` with ``x_j = sum_k a_k cos(pi k j/(M-1))`` of values on M
    nodes that include both ends (DCT-I)."""
    a = dct(x, type=1, axis=-1) / (x.shape[-1] - 1)
    a[..., 0] /= 2
    a[..., -1] /= 2
    return a


def values(a: np.ndarray) -> np.ndarray:
    """Inverse of :func:`amplitudes`: the cosine series at the M nodes."""
    b = a / 2
    b[..., 0] = a[..., 0]
    b[..., -1] = a[..., -1]
    return dct(b, type=1, axis=-1)


def ks_lawson_rk4(u0: np.ndarray, length: float, t_end: float, dt: float) -> np.ndarray:
    """KS ``u_t = -u_xxxx - u_xx - u u_x`` (periodic) by pseudo-spectral integrating-factor
    RK4 (Lawson): an integrator independent of ETDRK4, accurate to O(dt^4) for small dt.
    Returns u at ``t_end`` on the same grid as ``u0``."""
    n = len(u0)
    k = 2 * np.pi / length * np.arange(n // 2 + 1)
    lin = k**2 - k**4
    g = -0.5j * k
    g[-1] = 0.0
    e_half, e_full = np.exp(lin * dt / 2), np.exp(lin * dt)

    def rhs(v):
        u = np.fft.irfft(v, n=n)
        return g * np.fft.rfft(u * u)

    v = np.fft.rfft(u0)
    for _ in range(int(round(t_end / dt))):
        k1 = rhs(v)
        k2 = rhs(e_half * (v + dt / 2 * k1))
        k3 = rhs(e_half * v + dt / 2 * k2)
        k4 = rhs(e_full * v + dt * e_half * k3)
        v = e_full * v + dt / 6 * (e_full * k1 + 2 * e_half * (k2 + k3) + k4)
    return np.fft.irfft(v, n=n)
