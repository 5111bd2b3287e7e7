"""Exact solutions of the 1-D Euler equations for the BGK tests (independent of the solver).

``riemann(left, right, xi, gamma)``: the exact Riemann solution (Toro, *Riemann Solvers and
Numerical Methods for Fluid Dynamics*, ch. 4: pressure function, Newton for ``p*``,
sampling at ``xi = (x - x0)/t``) for a polytropic gas; the 1V BGK gas is ``gamma = 3``
(``E = rho u^2/2 + p/2``, ``p = rho T``).

``isentropic_gamma3(rho0, u0, K, x, t, L)``: smooth isentropic flow ``p = K rho^3`` on a
periodic box before any characteristic crosses another.  For ``gamma = 3`` the Riemann
invariants ``w+- = u +- c`` (``c = sqrt(3 K) rho``, since ``2c/(gamma-1) = c``) are the
characteristic speeds themselves, so each obeys the inviscid Burgers equation
``w_t + w w_x = 0``: ``w(x, t) = w0(x - w t)``, solved here by Newton on the foot point.
"""

from __future__ import annotations

import numpy as np


def _pressure_function(p, rho, pk, c, gamma):
    """Toro's ``f_K(p)`` and its derivative for one side (shock if p > pk, else fan)."""
    a_k = 2.0 / ((gamma + 1.0) * rho)
    b_k = (gamma - 1.0) / (gamma + 1.0) * pk
    if p > pk:
        root = np.sqrt(a_k / (p + b_k))
        return (p - pk) * root, root * (1.0 - 0.5 * (p - pk) / (b_k + p))
    ratio = p / pk
    g = (gamma - 1.0) / (2.0 * gamma)
    return 2.0 * c / (gamma - 1.0) * (ratio**g - 1.0), ratio ** (-(gamma + 1.0) / (2 * gamma)) / (
        rho * c
    )


def star_state(left, right, gamma: float = 3.0) -> tuple[float, float]:
    """``(p*, u*)`` of the Riemann problem with primitive states ``(rho, u, p)``."""
    rl, ul, pl = map(float, left)
    rr, ur, pr = map(float, right)
    cl, cr = np.sqrt(gamma * pl / rl), np.sqrt(gamma * pr / rr)
    if 2.0 * (cl + cr) / (gamma - 1.0) <= ur - ul:
        raise ValueError("the Riemann problem creates vacuum")
    p = max(1e-8, 0.5 * (pl + pr))
    for _ in range(100):
        fl, dl = _pressure_function(p, rl, pl, cl, gamma)
        fr, dr = _pressure_function(p, rr, pr, cr, gamma)
        p_new = max(1e-12, p - (fl + fr + ur - ul) / (dl + dr))
        if abs(p_new - p) <= 1e-15 * (p_new + p):
            p = p_new
            break
        p = p_new
    fl, _ = _pressure_function(p, rl, pl, cl, gamma)
    fr, _ = _pressure_function(p, rr, pr, cr, gamma)
    return p, 0.5 * (ul + ur) + 0.5 * (fr - fl)


def riemann(left, right, xi: np.ndarray, gamma: float = 3.0) -> np.ndarray:
    """Exact primitive solution ``(3, len(xi))`` rows ``rho, u, p`` at ``xi = (x-x0)/t``."""
    rl, ul, pl = map(float, left)
    rr, ur, pr = map(float, right)
    ps, us = star_state(left, right, gamma)
    g1, g2 = (gamma - 1.0) / (gamma + 1.0), (gamma - 1.0) / (2.0 * gamma)
    out = np.empty((3, np.size(xi)))
    for k, s in enumerate(np.ravel(xi)):
        if s <= us:  # left of the contact
            rho, u, p, c, sign = rl, ul, pl, np.sqrt(gamma * pl / rl), 1.0
        else:  # mirror the right side onto the left-side formulas
            rho, u, p, c, sign = rr, -ur, pr, np.sqrt(gamma * pr / rr), -1.0
        q, ustar = sign * s, sign * us
        if ps > p:  # shock
            speed = u - c * np.sqrt((gamma + 1) / (2 * gamma) * ps / p + g2)
            state = (
                (rho, u, p) if q <= speed else (rho * (ps / p + g1) / (g1 * ps / p + 1), ustar, ps)
            )
        else:  # rarefaction fan
            c_star = c * (ps / p) ** g2
            if q <= u - c:
                state = (rho, u, p)
            elif q >= ustar - c_star:
                state = (rho * (ps / p) ** (1 / gamma), ustar, ps)
            else:
                uf = 2 / (gamma + 1) * (c + (gamma - 1) / 2 * u + q)
                cf = 2 / (gamma + 1) * (c + (gamma - 1) / 2 * (u - q))
                state = (
                    rho * (cf / c) ** (2 / (gamma - 1)),
                    uf,
                    p * (cf / c) ** (2 * gamma / (gamma - 1)),
                )
        out[:, k] = state[0], sign * state[1], state[2]
    return out


def riemann_cell_averages(left, right, edges: np.ndarray, x0: float, t: float, n_sub: int = 64,
                          gamma: float = 3.0) -> np.ndarray:  # fmt: skip
    """Cell averages ``(3, n_cells)`` of the conserved ``rho, rho u, E`` over the cells
    with ``edges``, by ``n_sub``-point midpoint sampling of the exact solution."""
    edges = np.asarray(edges, dtype=np.float64)
    n = edges.size - 1
    frac = (np.arange(n_sub) + 0.5) / n_sub
    xs = edges[:-1, None] + (edges[1:] - edges[:-1])[:, None] * frac[None, :]
    rho, u, p = riemann(left, right, (xs.ravel() - x0) / t, gamma)
    cons = np.stack([rho, rho * u, 0.5 * rho * u * u + p / (gamma - 1.0)])
    return cons.reshape(3, n, n_sub).mean(axis=-1)


def isentropic_gamma3(rho0, u0, K: float, x: np.ndarray, t: float, L: float) -> np.ndarray:
    """Primitive ``(rho, u, T)`` ``(3, len(x))`` of the smooth isentropic ``gamma = 3``
    flow from ``rho0(x), u0(x)`` (callables, ``L``-periodic), ``p = K rho^3``, at ``t``."""
    a = np.sqrt(3.0 * K)
    w = []
    for sign in (1.0, -1.0):

        def w0(y, sign=sign):
            return u0(y) + sign * a * rho0(y)

        def dw0(y, sign=sign, h=1e-6):
            return (w0(y + h) - w0(y - h)) / (2 * h)

        y = np.array(x, dtype=np.float64)  # foot of the characteristic: y + w0(y) t = x
        for _ in range(100):
            g = y + w0(y) * t - x
            y_new = y - g / (1.0 + dw0(y) * t)
            if np.max(np.abs(y_new - y)) < 1e-15 * max(1.0, L):
                y = y_new
                break
            y = y_new
        w.append(w0(y))
    rho = (w[0] - w[1]) / (2 * a)
    return np.stack([rho, 0.5 * (w[0] + w[1]), K * rho * rho])
