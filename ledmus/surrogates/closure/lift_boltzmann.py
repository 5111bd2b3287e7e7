"""Restriction and lifting between the 2-D-velocity Boltzmann state and the moments of its
closure (:mod:`.boltzmann_ml`), on the solver's ``N × N`` velocity grid.

**Restrict** ``f -> Q = (ρ, ρu, E, ρW)``: the grid moments of ``f`` and ``W = (h²/ρ) Σ_v
w(ξ) (f - M)``, ``ξ = ((v_x - u)/√T, v_y/√T)``, ``M`` the solver's projected Maxwellian
of ``U`` (:meth:`~ledmus.solvers.boltzmann.Boltzmann.maxwellian_of_moments`), ``w`` the
closure's learned weight functions.  On states even in ``v_y`` this is the training
encoder (:func:`.train_boltzmann.cell_data` sums over the half grid ``v_y > 0`` twice).

**Lift** ``Q -> f``, the decoder of the encoder's own weight functions::

    f = M + Σ_k a_k φ_k,   φ_k = Π[M w_k(ξ)],   a = G⁻¹ W,   G_jk = (h²/ρ) Σ_v w_j(ξ) φ_k,

with ``Π`` the L2 projection that removes the four grid moments ``h²(1, v_x, v_y,
|v|²/2)`` (the one the solver's conservative collisions use).  So ``f`` has exactly
the moments ``U`` (hence the same ``M``) and, restricted again, exactly ``W``, to
rounding: exact moments, as the BGK closure's learned decoder has them by construction.
``f`` is not guaranteed positive where ``|W|`` is large (the spectral kinetic solver
does not need it to be).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from .boltzmann_ml import BoltzmannMomentNet


def _grid(solver: Any, U: np.ndarray) -> tuple[np.ndarray, ...]:
    """``(M, x, y, rho)``: the Maxwellian ``(B, nv, m)`` of ``U`` ``(B, 3, m)`` and the
    nodes ``ξ`` ``(B, m, nv)`` of every velocity, ``rho`` ``(B, m)``."""
    M = solver.maxwellian_of_moments(U)
    rho = U[:, 0]
    u = U[:, 1] / rho
    T = U[:, 2] / rho - 0.5 * u * u
    vx, vy = np.meshgrid(solver.v, solver.v, indexing="ij")
    sq = np.sqrt(T)[..., None]
    x = (vx.ravel() - u[..., None]) / sq
    y = vy.ravel() / sq
    return M, x, y, rho


def _weights(net: BoltzmannMomentNet, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``w(ξ)`` ``(..., M)`` in float64 at the nodes ``x``, ``y`` ``(...)``."""
    with torch.no_grad():
        w = net.weight_values(torch.from_numpy(x).to(net.dtype), torch.from_numpy(y).to(net.dtype))
    return w.double().numpy()


def restrict(net: BoltzmannMomentNet, f: np.ndarray, solver: Any) -> np.ndarray:
    """``Q`` ``(B, 3+M, m)`` of the Boltzmann cells ``f`` ``(B, nv, m)`` (see the module).
    ``w`` is even in ``ξ_y`` (a function of ``ξ_y²``) and the grid symmetric, so the sum
    runs over the half grid ``v_y > 0`` with ``f - M`` folded onto it (half the network
    evaluations; no assumption on ``f``)."""
    f = np.asarray(f, dtype=np.float64)
    U = solver.moments(f)[:, [0, 1, 3]]
    M, x, y, rho = _grid(solver, U)
    N = solver.N
    B, m = rho.shape
    half = slice(N // 2, None)
    g = np.moveaxis(f - M, 1, 2).reshape(B, m, N, N)
    g = g[..., half] + g[..., N // 2 - 1 :: -1]
    w = _weights(net, x.reshape(B, m, N, N)[..., half], y.reshape(B, m, N, N)[..., half])
    W = np.einsum("bmijk,bmij->bkm", w, g) * solver.h**2 / rho[:, None]
    return np.concatenate([U, rho[:, None] * W], axis=1)


def _project(solver: Any, phi: np.ndarray) -> np.ndarray:
    """``phi - Cᵀ(CCᵀ)⁻¹C phi`` over the velocity axis ``-2`` of ``phi`` ``(..., nv, K)``,
    ``C`` the ``4 × nv`` grid moments."""
    vx, vy = np.meshgrid(solver.v, solver.v, indexing="ij")
    C = solver.h**2 * np.stack(
        [np.ones(vx.size), vx.ravel(), vy.ravel(), 0.5 * (vx**2 + vy**2).ravel()]
    )
    return phi - C.T @ np.linalg.solve(C @ C.T, C @ phi)


def lift(net: BoltzmannMomentNet, Q: np.ndarray, solver: Any) -> np.ndarray:
    """``f`` ``(B, nv, m)`` of the moments ``Q`` ``(B, 3+M, m)`` (see the module)."""
    Q = np.asarray(Q, dtype=np.float64)
    M, x, y, rho = _grid(solver, Q[:, :3])
    W = Q[:, 3:] / rho[:, None]  # (B, K, m)
    N = solver.N
    B, m = rho.shape
    half = slice(N // 2, None)
    w = _weights(net, x.reshape(B, m, N, N)[..., half], y.reshape(B, m, N, N)[..., half])
    w = np.concatenate([w[..., ::-1, :], w], axis=-2).reshape(B, m, N * N, -1)  # even in ξ_y
    Mc = np.moveaxis(M, 1, 2)  # (B, m, nv)
    phi = _project(solver, Mc[..., None] * w)  # (B, m, nv, K)
    G = np.einsum("bmvj,bmvk->bmjk", w, phi) * solver.h**2 / rho[..., None, None]
    a = np.linalg.solve(G, np.moveaxis(W, 1, 2)[..., None])[..., 0]  # (B, m, K)
    return M + np.moveaxis(np.einsum("bmvk,bmk->bmv", phi, a), 2, 1)


__all__ = ["lift", "restrict"]
