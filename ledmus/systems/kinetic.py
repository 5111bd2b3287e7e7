"""Constraint monitors and symmetries of the kinetic (BGK) system: states are
distributions ``f`` ``(B, nv, nx)`` on a symmetric cell-centred velocity grid."""

from __future__ import annotations

import numpy as np

#: the state axes of a batch ``(..., nv, nx)``
STATE_AXES = (-2, -1)

# BGK: the scheme keeps f > 0 in every run of the named initial conditions (min f/max f
# from 1e-58 to 3e-26 over kn = 1e-4..10, t <= 0.1), but positivity is not a theorem of
# its ETD relaxation; -1e-12 max f leaves room for rounding and flags real undershoots.
BGK_POSITIVE_RTOL = 1e-12


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


def kinetic_errors(spec, reference: np.ndarray, prediction: np.ndarray, dt: float) -> dict:
    """Coupled-run errors of BGK states ``(B, T, nv, nx)``: relative L2 over the cells of
    ``rho``, ``u``, ``T`` (``||pred - ref||_2 / ||ref||_2``) per member and time;
    ``rel_l2_<m>`` is their mean, ``rel_l2_<m>_max`` the largest, ``rel_l2_<m>_final``
    the mean at the last time, ``rel_l2_t`` {m: mean over members per time}; ``mnad_f``
    the NAD of ``f`` itself (mean over members and times, range of the reference)."""
    from .. import metrics

    ref, pred = np.asarray(reference), np.asarray(prediction)
    if ref.shape != pred.shape or ref.ndim != 4:
        raise ValueError(f"reference {ref.shape} and prediction {pred.shape} must match, "
                         "(B, T, nv, nx)")  # fmt: skip
    out: dict = {}
    series = {}
    fields = zip(("rho", "u", "T"), primitive_fields(ref), primitive_fields(pred), strict=True)
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
