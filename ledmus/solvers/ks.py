"""Kuramoto–Sivashinsky by ETDRK4 (Kassam & Trefethen 2005), periodic, pseudo-spectral.

PDE (Vlachas et al. eq 42, nu = 1) on ``[0, length)`` with ``n_nodes`` periodic nodes
``x_j = j*length/n_nodes``::

    u_t = -u_xxxx - u_xx - u u_x

In Fourier space ``v_k = FFT(u)``: ``v_t = (k^2 - k^4) v - (i k / 2) FFT(u^2)`` with
``k = 2 pi m / length``.  The linear part is integrated exactly; the ETDRK4 coefficients
``Q, f1, f2, f3`` are evaluated by the contour-integral average over ``n_contour``
points on a unit circle around each ``h*L_k`` (Kassam & Trefethen's remedy for the
cancellation error of the naive formulas).  The mean (k = 0) is conserved exactly; the
Nyquist mode gets no derivative (odd derivative of a real field on an even grid).

Internal state: rfft coefficients ``(B, N/2+1)`` complex.  Observable: ``(B, 1, N)``.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from .base import Solver, Validated, check_int, check_positive


def etdrk4_coefficients(
    lin: np.ndarray, h: float, n_contour: int = 64
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """ETDRK4 coefficients for the diagonal linear operator ``lin`` and step ``h``.

    Returns ``(E, E2, Q, f1, f2, f3)``: ``E = exp(h L)``, ``E2 = exp(h L/2)`` and the
    phi-function combinations of Cox & Matthews, averaged over a contour of radius 1.
    """
    r = np.exp(1j * np.pi * (np.arange(1, n_contour + 1) - 0.5) / n_contour)
    lr = h * lin[:, None] + r[None, :]
    e_lr = np.exp(lr)
    q = h * np.real(np.mean((np.exp(lr / 2) - 1) / lr, axis=1))
    f1 = h * np.real(np.mean((-4 - lr + e_lr * (4 - 3 * lr + lr**2)) / lr**3, axis=1))
    f2 = h * np.real(np.mean((2 + lr + e_lr * (-2 + lr)) / lr**3, axis=1))
    f3 = h * np.real(np.mean((-4 - 3 * lr - lr**2 + e_lr * (4 - lr)) / lr**3, axis=1))
    return np.exp(h * lin), np.exp(h * lin / 2), q, f1, f2, f3


class KuramotoSivashinsky(Solver):
    """ETDRK4 pseudo-spectral KS solver; paper defaults L = 22, 64 nodes, dt = 0.025."""

    name = "ks"
    # ETDRK4 integrates the stiff linear part exactly and stays stable at every step tried
    # (dt up to 0.25 on the L = 22 attractor, measured), so nothing is refused; validated
    # is what tests/test_ks.py checks against independent integrators: the Kassam-Trefethen
    # case (L = 32 pi, N = 128: dx 0.785) at h <= 1/4 (max error 1.6e-5) and the paper's
    # grid (L = 22, N = 64: dx 0.344) at dt 0.025.  On the L = 22 attractor dt 0.25 is still
    # 3e-3 from dt 0.025 after t = 5 (measured), chaos amplifies any step error alike.
    validated: ClassVar[dict[str, Validated]] = {
        "dt": Validated(0.0, 0.25, "ETDRK4 accuracy, tests/test_ks.py"),
        "dx": Validated(
            0.0, 0.8, "spectral resolution, tests/test_ks.py", ("dx", "length", "n_nodes")
        ),
    }

    def __init__(
        self,
        *,
        length: float = 22.0,
        n_nodes: int = 64,
        dt: float = 0.025,
        dt_coarse: float = 0.25,
        n_contour: int = 64,
    ) -> None:
        super().__init__(dt=dt, dt_coarse=dt_coarse)
        self.length = check_positive("length", length)
        self.n_nodes = check_int("n_nodes", n_nodes, minimum=4)
        if self.n_nodes % 2:
            raise ValueError(f"n_nodes must be even (real FFT grid), got {self.n_nodes}")
        self.n_contour = check_int("n_contour", n_contour, minimum=8)
        self.k = 2 * np.pi / self.length * np.arange(self.n_nodes // 2 + 1)
        self.lin = self.k**2 - self.k**4
        self.E, self.E2, self.Q, f1, f2, f3 = etdrk4_coefficients(self.lin, self.dt, self.n_contour)
        g = -0.5j * self.k
        g[-1] = 0.0  # Nyquist
        # Fold the nonlinear prefactor g into the coefficients: N(v) = g * FFT(u^2).
        self._gQ, self._gf1, self._gf2, self._gf3 = g * self.Q, g * f1, 2 * g * f2, g * f3

    @property
    def state_shape(self) -> tuple[int, ...]:
        return (1, self.n_nodes)

    @property
    def dx(self) -> float:
        """Grid spacing ``length / n_nodes``."""
        return self.length / self.n_nodes

    @property
    def x(self) -> np.ndarray:
        """Node coordinates ``j*L/N``, shape ``(N,)``."""
        return self.length / self.n_nodes * np.arange(self.n_nodes)

    def params(self) -> dict[str, Any]:
        return dict(
            length=self.length,
            n_nodes=self.n_nodes,
            dt=self.dt,
            dt_coarse=self.dt_coarse,
            n_contour=self.n_contour,
        )

    def _named_ic(self, name: str, batch: int, rng: np.random.Generator) -> np.ndarray:
        """Random zero-mean field: the first 8 Fourier modes with N(0,1) amplitudes,
        scaled to unit RMS (the transient forgets the details)."""
        x = self.x
        m = np.arange(1, 9)
        a, b = rng.standard_normal((2, batch, m.size))
        phase = 2 * np.pi * m[None, :, None] * x[None, None, :] / self.length
        u = (a[..., None] * np.cos(phase) + b[..., None] * np.sin(phase)).sum(axis=1)
        u /= np.sqrt(np.mean(u**2, axis=1, keepdims=True))
        return u[:, None, :]

    def _lift(self, obs: np.ndarray, rng: np.random.Generator | None) -> np.ndarray:
        return np.fft.rfft(obs[:, 0, :], axis=-1)

    def _observe(self, v: np.ndarray) -> np.ndarray:
        return np.fft.irfft(v, n=self.n_nodes, axis=-1)[:, None, :]

    def _nonlinear(self, v: np.ndarray) -> np.ndarray:
        u = np.fft.irfft(v, n=self.n_nodes, axis=-1)
        return np.fft.rfft(u * u, axis=-1)

    def _step(self, v: np.ndarray, t: float, rng: np.random.Generator | None) -> np.ndarray:
        nv = self._nonlinear(v)
        e2v = self.E2 * v
        a = e2v + self._gQ * nv
        na = self._nonlinear(a)
        b = e2v + self._gQ * na
        nb = self._nonlinear(b)
        c = self.E2 * a + self._gQ * (2 * nb - nv)
        nc = self._nonlinear(c)
        return self.E * v + self._gf1 * nv + self._gf2 * (na + nb) + self._gf3 * nc
