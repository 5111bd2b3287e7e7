"""The velocity space of the 2-D Maxwell-molecule gas: the ``N x N`` grid, the fast
spectral collision operator of Mouhot & Pareschi (Math. Comp. 75, 2006), the grid
moments, their L2 projection and the projected Maxwellian.  The equations, the kernel
normalisation and the accuracy are in :mod:`ledmus.solvers.boltzmann`, which transports
and time-steps what this class collides; everything here is local to one cell.

Shapes: a distribution is ``(..., N, N)`` (axis ``-2`` is ``v_x``, ``-1`` is ``v_y``);
moments are ``(..., 4)``: ``rho, rho u_x, rho u_y, E``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

#: bytes of the largest temporary of one batched direction chunk
CHUNK_BYTES = 64 * 2**20


class GridMoments:
    """The conserved moments of a distribution on an ``N^d`` velocity grid (``d`` =
    :attr:`dims`) and the least-L2 change of it that adds given moments; the collision
    operators of both Boltzmann gases supply ``N``, the moment matrix ``_C`` ``(N^d,
    d + 2)`` and the projector ``_P``."""

    #: velocity dimensions ``d``
    dims: int
    N: int
    _C: torch.Tensor
    _P: torch.Tensor

    def moments(self, f: torch.Tensor) -> torch.Tensor:
        """``(..., d + 2)``: ``rho``, ``rho u`` (``d`` components), ``E`` of ``f``
        ``(..., N, ..., N)``."""
        d = self.dims
        return f.reshape(*f.shape[:-d], self.N**d) @ self._C

    def project(self, f: torch.Tensor, dm: torch.Tensor) -> torch.Tensor:
        """``f + C^T (C C^T)^{-1} dm``: the least-L2 change of ``f`` adding moments ``dm``."""
        return f + (dm @ self._P.T).reshape(f.shape)


class SpectralCollisions(GridMoments):
    """Collisions on the grid ``v_j = -v_box + (j + 1/2) h``, ``h = 2 v_box/N``, with
    kernel truncation ``R = 2 v_support`` and ``n_directions`` quadrature angles; the
    spectral weights, moment matrix and projector are computed once.  ``tensor`` turns
    an array into a tensor of the solver's dtype and device."""

    dims = 2

    def __init__(
        self,
        N: int,
        v_box: float,
        v_support: float,
        n_directions: int,
        conservative: bool,
        tensor: Callable[[Any], torch.Tensor],
    ) -> None:
        self.N, self.n_directions, self.conservative = N, n_directions, conservative
        self.h = 2.0 * v_box / N
        self.v = -v_box + (np.arange(N) + 0.5) * self.h  # both axes
        M, V, R = n_directions, v_box, 2.0 * v_support
        kx = np.fft.fftfreq(N, 1.0 / N)[:, None]  # signed modes, (N, 1)
        ky = np.fft.rfftfreq(N, 1.0 / N)[None, :]  # (1, N/2 + 1)
        nyquist = (np.abs(kx) == N // 2) | (np.abs(ky) == N // 2)
        theta = 0.5 * np.pi * np.arange(M) / M  # the integrand has period pi/2
        c, s = np.cos(theta)[:, None, None], np.sin(theta)[:, None, None]
        alpha = 2.0 * R * np.sinc(R * (kx * c + ky * s) / V)  # phi(l . e_p)
        alpha_perp = 2.0 * R * np.sinc(R * (-kx * s + ky * c) / V)  # phi(l . e_p^perp)
        alpha[:, nyquist] = 0.0
        alpha_perp[:, nyquist] = 0.0
        self._alpha = tensor(alpha)
        self._alpha_perp = tensor(alpha_perp)
        self._loss = tensor((alpha * alpha_perp).sum(axis=0) / M)
        vx, vy = np.meshgrid(self.v, self.v, indexing="ij")
        C = self.h**2 * np.stack([np.ones_like(vx), vx, vy, 0.5 * (vx**2 + vy**2)])
        C = C.reshape(4, N * N)
        self._C = tensor(C.T)  # (N^2, 4): f_flat @ C -> moments
        self._P = tensor(C.T @ np.linalg.inv(C @ C.T))  # (N^2, 4)
        self._vx = tensor(vx)
        self._vy = tensor(vy)
        self._chunk = max(1, int(CHUNK_BYTES // (8 * N * (N // 2 + 1) * 2)))

    def collision(self, f: torch.Tensor) -> torch.Tensor:
        """``Q(f)`` of ``f`` ``(..., N, N)``; with ``conservative``, projected so that it
        changes none of the four moments."""
        N = self.N
        lead = f.shape[:-2]
        f2 = f.reshape(-1, N, N)
        fh = torch.fft.rfft2(f2)  # (n, N, N/2+1)
        loss = f2 * torch.fft.irfft2(self._loss * fh, s=(N, N))
        gain = torch.zeros_like(f2)
        step = max(1, self._chunk // max(1, f2.shape[0]))
        for p in range(0, self.n_directions, step):
            a = torch.fft.irfft2(self._alpha[p : p + step] * fh[:, None], s=(N, N))
            b = torch.fft.irfft2(self._alpha_perp[p : p + step] * fh[:, None], s=(N, N))
            gain += (a * b).sum(dim=1)
        q = gain / self.n_directions - loss
        if self.conservative:
            q = self.project(q, -self.moments(q))
        return q.reshape(*lead, N, N)

    def maxwellian(self, U: torch.Tensor) -> torch.Tensor:
        """``(..., N, N)`` Maxwellian with grid moments ``U`` ``(..., 4)`` (projected)."""
        rho = U[..., 0]
        ux, uy = U[..., 1] / rho, U[..., 2] / rho
        T = (U[..., 3] / rho - 0.5 * (ux * ux + uy * uy)).clamp_min(1e-300)
        e = lambda a: a[..., None, None]  # noqa: E731
        d2 = (self._vx - e(ux)) ** 2 + (self._vy - e(uy)) ** 2
        m = e(rho / (2 * math.pi * T)) * torch.exp(-d2 / (2 * e(T)))
        return self.project(m, U - self.moments(m))
