"""Discrete (conservative) Maxwellian on a 1-D velocity grid (Mieussens 2000).

On the grid ``v_j`` with weight ``dv`` the *discrete entropic Maxwellian* of the moments
``U = (rho, rho u, E)`` is ``M_j = exp(a . phi(v_j))``, ``phi(v) = (1, v, v^2/2)``, with
the three coefficients ``a`` chosen so that ``sum_j phi(v_j) M_j dv = U`` holds on the
grid (not only in the continuum).  Collisions then conserve mass, momentum and energy to
rounding.  ``a`` is the minimiser of the strictly convex dual function
``sum_j exp(a . phi_j) dv - a . U``; Newton's method from the continuous Maxwellian's
coefficients ``(log(rho/sqrt(2 pi T)) - u^2/(2T), u/T, -1/T)`` converges in zero to two
steps on a well resolved grid (the continuous Maxwellian's moment error is then the
quadrature error, ``exp(-2 pi^2 T/dv^2)`` plus the tail beyond ``v_max``) and, with the
backtracking on the scaled residual, from anywhere inside the realisable set
``rho > 0, T > 0``.
"""

from __future__ import annotations

import numpy as np

#: Newton stops at this scaled residual (``|r_k| / scale_k``, scales ``rho``,
#: ``sqrt(2 rho E)``, ``E``): a few units of rounding of the nv-term moment sums
TOL = 1e-14
#: a residual this small is rounding: a full Newton step that does not reduce it ends
#: the iteration for that cell instead of backtracking
FLOOR = 1e-12
#: after ``MAX_ITER`` iterations a residual above ``FAIL`` is an error
MAX_ITER = 60
FAIL = 1e-9


def _evaluate(
    a: np.ndarray,
    basis: np.ndarray,
    w5: np.ndarray,
    target: np.ndarray,
    shape: np.ndarray | None = None,
):
    """``M = exp(a @ basis + shape)`` ``(K, nv)``, its raw moments ``(K, 5)`` and the
    residual ``target - (m0, m1, m2/2)`` ``(K, 3)``."""
    with np.errstate(over="ignore", under="ignore"):
        m = np.exp(a @ basis if shape is None else a @ basis + shape)
    mom = m @ w5
    res = target - mom[:, :3] * (1.0, 1.0, 0.5)
    return m, mom, res


class DiscreteMaxwellian:
    """The Maxwellian of given moments on the velocity grid ``v`` ``(nv,)`` with weight
    ``dv``: ``DiscreteMaxwellian(v, dv)(U)`` with ``U`` ``(K, 3)`` (rows ``rho, rho u,
    E``) returns ``(K, nv)``."""

    def __init__(self, v: np.ndarray, dv: float) -> None:
        self.v = np.asarray(v, dtype=np.float64)
        self.dv = float(dv)
        self.basis = np.stack([np.ones_like(self.v), self.v, 0.5 * self.v**2])  # (3, nv)
        self.w5 = self.dv * self.v[:, None] ** np.arange(5)[None, :]  # (nv, 5): dv v^k

    def __call__(
        self, U: np.ndarray, *, discrete: bool = True, shape: np.ndarray | None = None
    ) -> np.ndarray:
        """``discrete=True``: the discrete entropic Maxwellian, whose grid moments equal
        ``U`` to rounding.  ``shape`` ``(K, nv)``: the distribution ``exp(a . phi(v_j) +
        shape_j)`` with those moments instead (the minimum relative entropy to the prior
        ``exp(shape)``; positive, and conservative to rounding; a lift's decoder).
        ``discrete=False``: the continuous Maxwellian sampled on the grid (moments off by
        the quadrature and truncation errors; for comparisons).
        Raises ``FloatingPointError`` for moments outside the realisable set (``rho <=
        0``, ``T <= 0``, non-finite, or not realisable on this grid)."""
        U = np.asarray(U, dtype=np.float64)
        rho, mom, E = U[:, 0], U[:, 1], U[:, 2]
        with np.errstate(divide="ignore", invalid="ignore"):
            u = mom / rho
            T = 2.0 * E / rho - u * u
        bad = ~(np.isfinite(U).all(axis=1) & (rho > 0) & (T > 0))
        if bad.any():
            k = int(np.flatnonzero(bad)[0])
            raise FloatingPointError(
                f"{int(bad.sum())} cell(s) have moments outside the realisable set rho > 0, "
                f"T > 0 (first: rho={rho[k]:.6g}, rho u={mom[k]:.6g}, E={E[k]:.6g})"
            )
        a = np.stack([np.log(rho / np.sqrt(2 * np.pi * T)) - u * u / (2 * T), u / T, -1 / T], 1)
        if shape is not None:
            shape = np.asarray(shape, dtype=np.float64)
            if shape.shape != (U.shape[0], self.v.size) or not np.isfinite(shape).all():
                raise ValueError(f"shape must be finite with shape {(U.shape[0], self.v.size)}")
        m, mom5, res = _evaluate(a, self.basis, self.w5, U, shape)
        if not discrete:
            return m
        scale = np.stack([rho, np.sqrt(2.0 * rho * E), E], 1)
        err = np.abs(res / scale).max(axis=1)
        active = np.flatnonzero(err > TOL)
        if active.size:
            with np.errstate(all="ignore"):  # a non-realisable cell fails below
                _newton(a, m, mom5, res, err, active, scale, self.basis, self.w5, U, shape)
            bad = np.flatnonzero(~(err <= FAIL))
            if bad.size:
                raise FloatingPointError(
                    f"discrete Maxwellian: Newton did not converge in {bad.size} cell(s) "
                    f"(scaled residual {np.nanmax(err[bad]):.3g}); the moments are not "
                    "realisable on this velocity grid (T below about dv^2/4, or |u| + "
                    "3 sqrt(T) beyond v_max)"
                )
        return m


def maxwellian_from_moments(
    U: np.ndarray, v: np.ndarray, dv: float, *, discrete: bool = True
) -> np.ndarray:
    """``DiscreteMaxwellian(v, dv)(U, discrete=discrete)``: ``(K, 3) -> (K, nv)``."""
    return DiscreteMaxwellian(v, dv)(U, discrete=discrete)


def _newton(a, m, mom5, res, err, active, scale, basis, w5, U, shape=None) -> None:
    """Damped Newton on the cells ``active``, updating ``a, m, mom5, res, err`` in place."""
    for _ in range(MAX_ITER):
        if active.size == 0:
            break
        r, q = res[active], mom5[active]
        # Hessian of the dual function: sum_j phi phi^T M_j dv, symmetric positive definite
        h = np.empty((active.size, 3, 3))
        h[:, 0, 0], h[:, 0, 1], h[:, 0, 2] = q[:, 0], q[:, 1], 0.5 * q[:, 2]
        h[:, 1, 1], h[:, 1, 2], h[:, 2, 2] = q[:, 2], 0.5 * q[:, 3], 0.25 * q[:, 4]
        h[:, 1, 0], h[:, 2, 0], h[:, 2, 1] = h[:, 0, 1], h[:, 0, 2], h[:, 1, 2]
        try:
            step = np.linalg.solve(h, r[:, :, None])[:, :, 0]
        except np.linalg.LinAlgError:  # a degenerate cell: its step fails the line search
            step = (np.linalg.pinv(h) @ r[:, :, None])[:, :, 0]
        sc = scale[active]
        norm0 = np.sqrt(((r / sc) ** 2).sum(axis=1))
        s = np.ones(active.size)
        stalled = np.zeros(active.size, dtype=bool)
        todo = np.arange(active.size)  # cells still backtracking
        for _halving in range(40):
            ai = a[active[todo]] + s[todo, None] * step[todo]
            sh = None if shape is None else shape[active[todo]]
            mi, qi, ri = _evaluate(ai, basis, w5, U[active[todo]], sh)
            norm1 = np.sqrt(((ri / sc[todo]) ** 2).sum(axis=1))
            better = np.isfinite(norm1) & (norm1 < norm0[todo])
            keep = active[todo[better]]
            a[keep], m[keep], mom5[keep], res[keep] = ai[better], mi[better], qi[better], ri[better]
            # no descent at the rounding floor: this cell is converged
            stalled[todo[~better & (norm0[todo] < FLOOR)]] = True
            todo = todo[~better & ~(norm0[todo] < FLOOR)]
            if todo.size == 0:
                break
            s[todo] *= 0.5
        err[active] = np.abs(res[active] / scale[active]).max(axis=1)
        active = active[(err[active] > TOL) & ~stalled]
