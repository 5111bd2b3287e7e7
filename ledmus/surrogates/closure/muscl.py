"""MUSCL slopes of the finite-volume solver :class:`~.fv.FVSolver` (moved out of
:mod:`.fv` unchanged, so that the numpy and PETSc backends share one copy).

``V`` holds the primitive variables ``(ρ, u, p, W)`` of ``m + 4`` cells (two ghost
cells at each end), shape ``(B, n, m + 4)``; the slopes are those of cells ``1..m+2``
(every cell adjacent to one of the ``m + 1`` faces of the ``m`` inner cells), from the
backward and forward differences ``a_i = V_i - V_{i-1}``, ``b_i = V_{i+1} - V_i``.
"""

from __future__ import annotations

import numpy as np


def limit(a: np.ndarray, b: np.ndarray, limiter: str) -> np.ndarray:
    """Limited slope from the backward and forward differences ``a``, ``b``."""
    if limiter == "none":
        return 0.5 * (a + b)
    if limiter == "first":
        return np.zeros_like(a)
    same = a * b > 0
    if limiter == "minmod":
        s = np.sign(a) * np.minimum(np.abs(a), np.abs(b))
    elif limiter == "vanleer":
        s = 2.0 * a * b / np.where(same, a + b, 1.0)
    else:  # mc
        s = np.sign(a) * np.minimum(np.minimum(2 * np.abs(a), 2 * np.abs(b)), 0.5 * np.abs(a + b))
    return np.where(same, s, 0.0)


def slopes(V: np.ndarray, limiter: str, reconstruction: str, gamma: float) -> np.ndarray:
    """Limited slopes of ``V`` ``(B, n, m+4)`` for padded cells ``1..m+2``, shape
    ``(B, n, m+2)``: of each primitive variable, or (``reconstruction="characteristic"``)
    of the Euler block's characteristic variables mapped back (W rows primitive)."""
    a, b = V[:, :, 1:-1] - V[:, :, :-2], V[:, :, 2:] - V[:, :, 1:-1]
    if reconstruction == "primitive" or limiter in ("none", "first"):
        return limit(a, b, limiter)
    rho, p = V[:, 0, 1:-1], V[:, 2, 1:-1]
    rc = rho * np.sqrt(gamma * p / rho)  # ρc; c² = γp/ρ
    c2 = rc * rc / (rho * rho)

    def to_char(d):  # w = (dp - ρc du, dρ - dp/c², dp + ρc du)
        return np.stack([d[:, 2] - rc * d[:, 1], d[:, 0] - d[:, 2] / c2, d[:, 2] + rc * d[:, 1]], 1)

    w = limit(to_char(a[:, :3]), to_char(b[:, :3]), limiter)
    dp = 0.5 * (w[:, 0] + w[:, 2])
    s = limit(a, b, limiter)
    s[:, 0], s[:, 1], s[:, 2] = w[:, 1] + dp / c2, (w[:, 2] - w[:, 0]) / (2 * rc), dp
    return s
