"""Exact Riemann solver for the 1-D Euler equations of a polytropic gas (Toro ch. 4).

Equations: ``∂t(ρ, ρu, E) + ∂x(ρu, ρu² + p, (E + p)u) = 0`` with
``E = ρu²/2 + p/(γ-1)``.  For the 1V kinetic model of :mod:`ledmus.surrogates.closure`
``γ = 3`` and ``p = ρT``, so ``E = ρu²/2 + ρT/2``; the solver is valid for any
``γ > 1`` and is checked against Toro's γ = 1.4 tables in the tests.

Method (Toro §4.2–4.5): the star pressure ``p*`` is the root of ::

    f(p) = f_L(p) + f_R(p) + (u_R - u_L) = 0,
    f_K(p) = (p - p_K) √(A_K / (p + B_K)),                 p > p_K  (shock)
           = 2c_K/(γ-1) [(p/p_K)^((γ-1)/(2γ)) - 1],          p ≤ p_K  (rarefaction)

with ``A_K = 2/((γ+1)ρ_K)``, ``B_K = (γ-1)p_K/(γ+1)``, ``c_K = √(γ p_K/ρ_K)``; ``f`` is
increasing and concave, so Newton's iteration from the two-rarefaction guess converges
monotonically.  ``u* = (u_L + u_R)/2 + (f_R(p*) - f_L(p*))/2``.  The self-similar
solution is then sampled at ``ξ = (x - x0)/t``.  (For γ = 3 rarefaction fans are straight
lines in both Riemann invariants ``u ± c``; the general formulas reduce to that.)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class StarState:
    """Solution of the pressure equation: star pressure and velocity, star densities
    left and right of the contact, and the nature of each wave (``"shock"`` or
    ``"rarefaction"``)."""

    p: float
    u: float
    rho_left: float
    rho_right: float
    left_wave: str
    right_wave: str


def _check_side(name: str, state) -> tuple[float, float, float]:
    try:
        rho, u, p = (float(s) for s in state)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a (rho, u, p) triple, got {state!r}") from None
    if not (math.isfinite(rho) and rho > 0):
        raise ValueError(f"{name} density must be finite and > 0, got {rho!r}")
    if not (math.isfinite(p) and p > 0):
        raise ValueError(f"{name} pressure must be finite and > 0, got {p!r}")
    if not math.isfinite(u):
        raise ValueError(f"{name} velocity must be finite, got {u!r}")
    return rho, u, p


def _f(p: float, rho: float, pk: float, c: float, g: float) -> tuple[float, float]:
    """Toro's f_K(p) and its derivative (eqs. 4.6–4.7, 4.37)."""
    if p > pk:  # shock
        a, b = 2.0 / ((g + 1.0) * rho), (g - 1.0) / (g + 1.0) * pk
        s = math.sqrt(a / (p + b))
        return (p - pk) * s, s * (1.0 - 0.5 * (p - pk) / (p + b))
    r = (p / pk) ** ((g - 1.0) / (2.0 * g))  # rarefaction
    return 2.0 * c / (g - 1.0) * (r - 1.0), 1.0 / (rho * c) * (p / pk) ** (-(g + 1.0) / (2.0 * g))


def star_state(left, right, gamma: float = 3.0, *, tol: float = 1e-14) -> StarState:
    """Star region of the Riemann problem ``left = (ρ_L, u_L, p_L)``, ``right = (ρ_R, u_R, p_R)``.

    Raises ``ValueError`` for a non-physical state, ``gamma <= 1`` or initial data that
    create vacuum (``u_R - u_L >= 2(c_L + c_R)/(γ-1)``).
    """
    g = float(gamma)
    if not (math.isfinite(g) and g > 1.0):
        raise ValueError(f"gamma must be > 1, got {gamma!r}")
    rl, ul, pl = _check_side("left", left)
    rr, ur, pr = _check_side("right", right)
    cl, cr = math.sqrt(g * pl / rl), math.sqrt(g * pr / rr)
    du = ur - ul
    if du >= 2.0 * (cl + cr) / (g - 1.0):
        raise ValueError(f"left/right states generate vacuum (u_R - u_L = {du:g})")
    z = (g - 1.0) / (2.0 * g)
    p = ((cl + cr - 0.5 * (g - 1.0) * du) / (cl / pl**z + cr / pr**z)) ** (1.0 / z)
    for _ in range(100):
        fl, dl = _f(p, rl, pl, cl, g)
        fr, dr = _f(p, rr, pr, cr, g)
        p_new = max(p - (fl + fr + du) / (dl + dr), 1e-3 * p)
        done = abs(p_new - p) <= tol * 0.5 * (p_new + p)
        p = p_new
        if done:
            break
    else:  # pragma: no cover - f is monotone and concave
        raise RuntimeError("exact Riemann solver: Newton iteration did not converge")
    fl, _ = _f(p, rl, pl, cl, g)
    fr, _ = _f(p, rr, pr, cr, g)
    u = 0.5 * (ul + ur) + 0.5 * (fr - fl)
    gm = (g - 1.0) / (g + 1.0)

    def rho_star(rho: float, pk: float) -> float:
        if p > pk:  # Rankine–Hugoniot (Toro 4.50)
            return rho * (p / pk + gm) / (gm * p / pk + 1.0)
        return rho * (p / pk) ** (1.0 / g)  # isentrope (Toro 4.53)

    return StarState(
        p,
        u,
        rho_star(rl, pl),
        rho_star(rr, pr),
        "shock" if p > pl else "rarefaction",
        "shock" if p > pr else "rarefaction",
    )


def sample(left, right, xi, gamma: float = 3.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Primitive variables ``(ρ, u, p)`` of the exact solution at ``ξ = (x - x0)/t``.

    ``xi``: array of any shape; returns three arrays of that shape (Toro §4.5).
    """
    g = float(gamma)
    st = star_state(left, right, g)
    rl, ul, pl = _check_side("left", left)
    rr, ur, pr = _check_side("right", right)
    xi = np.asarray(xi, dtype=np.float64)
    out = [np.empty_like(xi) for _ in range(3)]
    for side, (rk, uk, pk, rs) in (
        ("L", (rl, ul, pl, st.rho_left)),
        ("R", (rr, ur, pr, st.rho_right)),
    ):
        # mirror the right side onto the left: x -> -x, u -> -u
        sgn = 1.0 if side == "L" else -1.0
        sel = (xi <= st.u) if side == "L" else (xi > st.u)
        x, u0, us = sgn * xi[sel], sgn * uk, sgn * st.u
        ck = math.sqrt(g * pk / rk)
        rho, u, p = np.full_like(x, rk), np.full_like(x, u0), np.full_like(x, pk)
        if st.p > pk:  # shock of speed S (Toro 4.52)
            s = u0 - ck * math.sqrt((g + 1.0) / (2.0 * g) * st.p / pk + (g - 1.0) / (2.0 * g))
            star = x >= s
            rho[star], u[star], p[star] = rs, us, st.p
        else:  # rarefaction: head u0 - ck, tail u* - c*
            cs = ck * (st.p / pk) ** ((g - 1.0) / (2.0 * g))
            star, fan = x >= us - cs, (x > u0 - ck) & (x < us - cs)
            rho[star], u[star], p[star] = rs, us, st.p
            w = 2.0 / (g + 1.0) + (g - 1.0) / ((g + 1.0) * ck) * (u0 - x[fan])
            rho[fan] = rk * w ** (2.0 / (g - 1.0))
            u[fan] = 2.0 / (g + 1.0) * (ck + 0.5 * (g - 1.0) * u0 + x[fan])
            p[fan] = pk * w ** (2.0 * g / (g - 1.0))
        out[0][sel], out[1][sel], out[2][sel] = rho, sgn * u, p
    return out[0], out[1], out[2]


def exact_solution(
    left, right, x: np.ndarray, t: float, *, x0: float = 0.5, gamma: float = 3.0
) -> np.ndarray:
    """Conserved variables ``(ρ, ρu, E)`` of the exact solution, shape ``(3, *x.shape)``.

    ``x``: positions; ``t > 0``: time; ``x0``: initial discontinuity.  ``t = 0`` returns
    the initial step (left state for ``x <= x0``).
    """
    x = np.asarray(x, dtype=np.float64)
    if t < 0 or not math.isfinite(t):
        raise ValueError(f"t must be finite and >= 0, got {t!r}")
    xi = (x - x0) / t if t > 0 else np.where(x <= x0, -np.inf, np.inf)
    rho, u, p = sample(left, right, xi, gamma)
    return np.stack([rho, rho * u, 0.5 * rho * u * u + p / (gamma - 1.0)])
