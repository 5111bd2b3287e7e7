"""Constraint monitors and symmetries of the kinetic systems: states are distributions
``f`` ``(B, nv, nx)`` on a symmetric cell-centred velocity grid (BGK, one velocity
dimension), ``(B, N*N, nx)`` on an ``N x N`` one (Boltzmann, two velocity dimensions,
channel ``i*N + j`` = ``(v_x[i], v_y[j])``) or ``(B, N^3, nx)`` on an ``N x N x N`` one
(``boltzmann3d``, channel ``(i*N + j)*N + k`` = ``(v_x[i], v_y[j], v_z[k])``)."""

from __future__ import annotations

from typing import Any

import numpy as np

#: the state axes of a batch ``(..., nv, nx)``
STATE_AXES = (-2, -1)

# BGK: the scheme keeps f > 0 in every run of the named initial conditions (min f/max f
# from 1e-58 to 3e-26 over kn = 1e-4..10, t <= 0.1), but positivity is not a theorem of
# its ETD relaxation; -1e-12 max f leaves room for rounding and flags real undershoots.
BGK_POSITIVE_RTOL = 1e-12
# Boltzmann: spectral collision operators are not positive.  Measured min f / max f: the
# named initial conditions at eps = 1e-4..10, N = 24..48 reach -1.2e-4 (Sod, eps = 1e-4,
# N = 24, at the shock); 1e-3 leaves room for rounding and flags real undershoots.
BOLTZMANN_POSITIVE_RTOL = 1e-3


def kinetic_positive(states: np.ndarray, rtol: float) -> np.ndarray:
    """Every ``f`` finite and ``>= -rtol * max |f|`` of its state; ``(B, nv, nx) -> (B,)``."""
    x = np.asarray(states, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        floor = -rtol * np.abs(x).max(axis=STATE_AXES)
        return np.isfinite(x).all(axis=STATE_AXES) & (x.min(axis=STATE_AXES) >= floor)


def kinetic_realisable(states: np.ndarray) -> np.ndarray:
    """In every cell ``rho > 0`` and ``T > 0`` (``rho sum v^2 f > (sum v f)^2``);
    ``(B, nv, nx) -> (B,)``.

    On the symmetric cell-centred velocity grid ``v_j`` is proportional to
    ``j - (nv - 1)/2``, and both conditions are invariant under that scale, so the check
    needs neither ``v_max`` nor ``dv``."""
    x = np.asarray(states, dtype=np.float64)
    c = np.arange(x.shape[-2]) - (x.shape[-2] - 1) / 2.0
    m0 = x.sum(axis=-2)
    m1 = np.einsum("j,...jx->...x", c, x)
    m2 = np.einsum("j,...jx->...x", c * c, x)
    with np.errstate(invalid="ignore", over="ignore"):
        ok = np.isfinite(m0 * m2) & (m0 > 0) & (m0 * m2 - m1 * m1 > 0)
    return ok.all(axis=-1)


def _velocity_square(states: np.ndarray) -> np.ndarray:
    """``(..., N*N, nx) -> (..., N, N, nx)``; ``ValueError`` unless ``N*N`` is a square."""
    x = np.asarray(states, dtype=np.float64)
    n = int(round(np.sqrt(x.shape[-2])))
    if n * n != x.shape[-2]:
        raise ValueError(f"2-D velocity states need N*N channels, got {x.shape[-2]}")
    return x.reshape(*x.shape[:-2], n, n, x.shape[-1])


def primitive_fields_2v(states: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(rho, u_x, T)`` of ``f`` ``(..., N*N, nx)``, each ``(..., nx)``, in grid units (``h
    = 1``, ``v_i = i - (N - 1)/2`` on both axes); ``T`` per degree of freedom, ``E = rho
    |u|^2/2 + rho T``."""
    x = _velocity_square(states)
    c = np.arange(x.shape[-2]) - (x.shape[-2] - 1) / 2.0
    rho = x.sum(axis=(-3, -2))
    ux = np.einsum("i,...ijx->...x", c, x) / rho
    uy = np.einsum("j,...ijx->...x", c, x) / rho
    c2 = c[:, None] ** 2 + c[None, :] ** 2
    return rho, ux, 0.5 * (np.einsum("ij,...ijx->...x", c2, x) / rho - ux * ux - uy * uy)


def _realisable(primitive_fields: Any, states: np.ndarray) -> np.ndarray:
    """In every cell ``rho > 0`` and ``T > 0`` of ``primitive_fields(states)``: ``(B, nv,
    nx) -> (B,)``."""
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        rho, _, T = primitive_fields(states)
        ok = np.isfinite(rho * T) & (rho > 0) & (T > 0)
    return ok.all(axis=-1)


def kinetic_realisable_2v(states: np.ndarray) -> np.ndarray:
    """In every cell ``rho > 0`` and ``T > 0``, 2-D velocity states ``(B, N*N, nx) -> (B,)``
    (grid units, as :func:`kinetic_realisable`)."""
    return _realisable(primitive_fields_2v, states)


def flip_phase_space_2v(states: np.ndarray) -> np.ndarray:
    """``f(x, v_x, v_y) -> f(L - x, -v_x, v_y)`` on the cell-centred grids."""
    x = _velocity_square(states)
    return x[..., ::-1, :, ::-1].reshape(np.shape(states)).copy()


def reflect_vy(states: np.ndarray) -> np.ndarray:
    """``f(x, v_x, v_y) -> f(x, v_x, -v_y)`` (exact for every bc: ``v_y`` is not transported)."""
    x = _velocity_square(states)
    return x[..., :, ::-1, :].reshape(np.shape(states)).copy()


def _velocity_cube(states: np.ndarray) -> np.ndarray:
    """``(..., N^3, nx) -> (..., N, N, N, nx)``; ``ValueError`` unless ``N^3`` is a cube."""
    x = np.asarray(states, dtype=np.float64)
    n = int(round(x.shape[-2] ** (1.0 / 3.0)))
    if n**3 != x.shape[-2]:
        raise ValueError(f"3-D velocity states need N^3 channels, got {x.shape[-2]}")
    return x.reshape(*x.shape[:-2], n, n, n, x.shape[-1])


def primitive_fields_3v(states: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(rho, u_x, T)`` of ``f`` ``(..., N^3, nx)``, each ``(..., nx)``, in grid units (``h
    = 1``, ``v_i = i - (N - 1)/2`` on every axis); ``T`` per degree of freedom, ``E = rho
    |u|^2/2 + (3/2) rho T``."""
    x = _velocity_cube(states)
    c = np.arange(x.shape[-2]) - (x.shape[-2] - 1) / 2.0
    rho = x.sum(axis=(-4, -3, -2))
    ux = np.einsum("i,...ijkx->...x", c, x) / rho
    uy = np.einsum("j,...ijkx->...x", c, x) / rho
    uz = np.einsum("k,...ijkx->...x", c, x) / rho
    c2 = c[:, None, None] ** 2 + c[None, :, None] ** 2 + c[None, None, :] ** 2
    e2 = np.einsum("ijk,...ijkx->...x", c2, x) / rho  # int |v|^2 f / rho
    return rho, ux, (e2 - ux * ux - uy * uy - uz * uz) / 3.0


def kinetic_realisable_3v(states: np.ndarray) -> np.ndarray:
    """In every cell ``rho > 0`` and ``T > 0``, 3-D velocity states ``(B, N^3, nx) -> (B,)``
    (grid units, as :func:`kinetic_realisable`)."""
    return _realisable(primitive_fields_3v, states)


def flip_phase_space_3v(states: np.ndarray) -> np.ndarray:
    """``f(x, v_x, v_y, v_z) -> f(L - x, -v_x, v_y, v_z)`` on the cell-centred grids."""
    x = _velocity_cube(states)
    return x[..., ::-1, :, :, ::-1].reshape(np.shape(states)).copy()


def reflect_transverse_3v(states: np.ndarray, axis: int) -> np.ndarray:
    """``v_y -> -v_y`` (``axis=1``) or ``v_z -> -v_z`` (``axis=2``) of 3-D velocity states
    (exact for every bc: neither is transported)."""
    if axis not in (1, 2):
        raise ValueError(f"axis must be 1 (v_y) or 2 (v_z), got {axis!r}")
    x = _velocity_cube(states)
    index = [slice(None)] * 3
    index[axis] = slice(None, None, -1)
    return x[(..., *index, slice(None))].reshape(np.shape(states)).copy()


def flip_phase_space(states: np.ndarray) -> np.ndarray:
    """``f(x, v) -> f(L - x, -v)`` on the cell-centred grids: both last axes reversed."""
    return np.asarray(states)[..., ::-1, ::-1].copy()


def primitive_fields(states: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(rho, u, T)`` of ``f`` ``(..., nv, nx)``, each ``(..., nx)``, in units of the grid
    (``dv = 1``, ``v_j = j - (nv - 1)/2``): the physical fields are ``dv rho``, ``dv u``,
    ``dv² T`` (``v_max`` and ``dv`` are not part of the state), so relative errors are
    the physical ones."""
    x = np.asarray(states, dtype=np.float64)
    c = np.arange(x.shape[-2]) - (x.shape[-2] - 1) / 2.0
    rho = x.sum(axis=-2)
    u = np.einsum("j,...jx->...x", c, x) / rho
    return rho, u, np.einsum("j,...jx->...x", c * c, x) / rho - u * u


#: velocity dimensions of a kinetic solver (its ``velocity_dims``; BGK: 1) -> its
#: ``(rho, u_x, T)`` in grid units
PRIMITIVE_FIELDS = {1: primitive_fields, 2: primitive_fields_2v, 3: primitive_fields_3v}


def kinetic_errors(spec, reference: np.ndarray, prediction: np.ndarray, dt: float) -> dict:
    """Coupled-run errors of kinetic states ``(B, T, nv, nx)`` (Boltzmann: ``nv = N*N`` or
    ``N^3``, ``u`` is ``u_x``): relative L2 over the cells of
    ``rho``, ``u``, ``T`` (``||pred - ref||_2 / ||ref||_2``) per member and time;
    ``rel_l2_<m>`` is their mean, ``rel_l2_<m>_max`` the largest, ``rel_l2_<m>_final``
    the mean at the last time, ``rel_l2_t`` {m: mean over members per time}; ``mnad_f``
    the NAD of ``f`` itself (mean over members and times, range of the reference)."""
    from .. import metrics

    ref, pred = np.asarray(reference), np.asarray(prediction)
    if ref.shape != pred.shape or ref.ndim != 4:
        raise ValueError(
            f"reference {ref.shape} and prediction {pred.shape} must match, (B, T, nv, nx)"
        )
    out: dict = {}
    series = {}
    prim = PRIMITIVE_FIELDS[getattr(spec.solver, "velocity_dims", 1)]
    fields = zip(("rho", "u", "T"), prim(ref), prim(pred), strict=True)
    for name, r, p in fields:
        err = np.linalg.norm(p - r, axis=-1) / np.maximum(np.linalg.norm(r, axis=-1), 1e-300)
        out[f"rel_l2_{name}"] = float(err.mean())
        out[f"rel_l2_{name}_max"] = float(err.max())
        out[f"rel_l2_{name}_final"] = float(err[:, -1].mean())
        series[name] = err.mean(axis=0).tolist()
    B, T = ref.shape[:2]
    flat = (B, T, -1)
    out["mnad_f"] = float(metrics.nad(ref.reshape(flat), pred.reshape(flat)).mean())
    out["rel_l2_t"] = series
    return out
