"""The kinetic system of a cell-local hybrid (:mod:`ledmus.coupler.hybrid`): what the
hybrid needs to know about a kinetic solver and its closure ensemble, one class per system.

- :class:`BGKSide`: the 1-D-velocity BGK solver (``kn`` = ε) with a ``closure_hmm``
  ensemble (:class:`~ledmus.surrogates.closure.hmm.ClosureEnsemble`): explicit SSP-RK3
  closure steps, the learned decoder ``h(v; U, W)``, ``γ = 3``;
- :class:`BoltzmannSide`: the 2-D-velocity Boltzmann solver (Maxwell molecules, ``eps``
  = ε, one value or one per cell) with a ``closure_boltzmann_hmm`` ensemble
  (:class:`~ledmus.surrogates.closure.hmm_boltzmann.BoltzmannClosureEnsemble`): IMEX
  ARS(2,2,2) closure steps, restriction and lift by the encoder's weight functions
  (:mod:`~ledmus.surrogates.closure.lift_boltzmann`), ``γ = 2``.

Each gives: ``eps``; ``fv`` (the closure cells' finite-volume solver, member 0);
``deviation(Q, cells)`` ``(m,)``; ``restrict(f)`` ``(nv, m) -> (3+M, m)``, ``lift(Q)``,
``maxwellian(U)`` ``(3, m) -> (nv, m)``; ``conserved(f)`` ``(3, m)`` = ``(ρ, ρu, E)``;
``primitive(Q)`` ``(ρ, u, T)``; ``sound_speed(T)``; ``mean_free_path(ρ, T)``;
``noneq(f)`` ``‖f - M[f]‖₁/ρ`` ``(m,)``; ``labels()`` (what ``kinetic_cells.npz`` needs to
rebuild the solver).  :func:`kinetic_side` picks the class by the solver.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def _prim_gamma(Q: np.ndarray, gamma: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    with np.errstate(all="ignore"):
        rho = Q[0]
        u = Q[1] / rho
        return rho, u, (gamma - 1.0) * (Q[2] / rho - 0.5 * u * u)


class BGKSide:
    """BGK and a ``closure_hmm`` ensemble (see the module)."""

    gamma = 3.0

    def __init__(self, solver: Any, ensemble: Any) -> None:
        import torch

        from ..surrogates.closure.fv import FVSolver
        from ..surrogates.closure.hmm import ClosureEnsemble
        from ..surrogates.closure.ml import MLMomentClosure, eps_scale

        if not isinstance(ensemble, ClosureEnsemble):
            raise ValueError(
                f"the hybrid with the bgk solver needs a closure_hmm ensemble, got "
                f"{getattr(ensemble, 'kind', type(ensemble).__name__)!r}"
            )
        self.solver = solver
        self.members = list(ensemble.members)
        self.decoder = ensemble.decoder
        self.eps = float(solver.kn)
        closure = MLMomentClosure(self.members[0], self.eps, length=solver.L, bc=solver.bc)
        self.fv = FVSolver(closure, nx=solver.nx, length=solver.L, bc=solver.bc)
        self.closures = [MLMomentClosure(m, self.eps) for m in self.members]
        self.scale = float(
            eps_scale(torch.tensor([np.log10(self.eps)]), self.members[0].spec["eps_ref"])[0]
        )

    def deviation(self, Q: np.ndarray, cells: np.ndarray | None = None) -> np.ndarray:
        from ..surrogates.closure.learn import closures_deviation

        return closures_deviation(self.closures, Q[None], self.scale)[0]

    def restrict(self, f: np.ndarray) -> np.ndarray:
        from ..surrogates.closure.lift import restrict

        return restrict(self.members[0], f[None], self.solver)[0]

    def lift(self, Q: np.ndarray) -> np.ndarray:
        from ..surrogates.closure.lift import lift

        return lift(self.decoder, Q[None], self.solver, self.eps)[0]

    def maxwellian(self, U: np.ndarray) -> np.ndarray:
        return self.solver.maxwellian_of_moments(U[None])[0]

    def conserved(self, f: np.ndarray) -> np.ndarray:
        return self.solver.moments(f)

    def primitive(self, Q: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        with np.errstate(all="ignore"):
            rho = Q[0]
            u = Q[1] / rho
            return rho, u, 2.0 * Q[2] / rho - u * u

    def sound_speed(self, T: np.ndarray) -> np.ndarray:
        return np.sqrt(3.0 * T)

    def mean_free_path(self, rho: np.ndarray, T: np.ndarray) -> np.ndarray:
        """``ε √T`` (``τ = ε`` times the thermal speed)."""
        return self.eps * np.sqrt(T)

    def noneq(self, f: np.ndarray) -> np.ndarray:
        s = self.solver
        g = f[None]
        return (np.abs(g - s.equilibrium(g)).sum(axis=1) * s.dv / s.moments(g)[:, 0])[0]

    def labels(self) -> dict[str, np.ndarray]:
        return {
            "kn": np.float64(self.eps),
            "nv": np.int64(self.solver.nv),
            "v_max": np.float64(self.solver.v_max),
        }


class BoltzmannSide:
    """The Boltzmann solver and a ``closure_boltzmann_hmm`` ensemble (see the module)."""

    gamma = 2.0

    def __init__(self, solver: Any, ensemble: Any) -> None:
        from ..surrogates.closure.boltzmann_ml import BoltzmannMLClosure
        from ..surrogates.closure.evaluate_boltzmann import ML_CFL
        from ..surrogates.closure.fv import FVSolver
        from ..surrogates.closure.hmm_boltzmann import BoltzmannClosureEnsemble

        if not isinstance(ensemble, BoltzmannClosureEnsemble):
            raise ValueError(
                f"the hybrid with the boltzmann solver needs a closure_boltzmann_hmm ensemble, "
                f"got {getattr(ensemble, 'kind', type(ensemble).__name__)!r}"
            )
        eps = np.asarray(solver.eps_cells, dtype=np.float64)
        if solver.comm is not None:
            raise ValueError("the hybrid with the boltzmann solver runs in one process (no comm)")
        if solver.bc not in ("outflow", "periodic"):
            raise ValueError(
                f"param_bc must be outflow or periodic for the hybrid, got {solver.bc!r}"
            )
        self.solver = solver
        self.members = list(ensemble.members)
        #: ε: a number, or one per cell (nx,) (ε(x): the closures bind each point's cell)
        self.eps = float(eps[0]) if np.all(eps == eps[0]) else eps
        kn, nx = (self.eps, None) if np.ndim(self.eps) == 0 else (self.eps, solver.nx)
        closure = BoltzmannMLClosure(self.members[0], kn, nx=nx, length=solver.L, bc=solver.bc)
        self.fv = FVSolver(
            closure,
            nx=solver.nx,
            length=solver.L,
            bc=solver.bc,
            time_stepper="ars222",
            cfl=ML_CFL,
        )
        self.closures = [BoltzmannMLClosure(m, kn, nx=nx, bc=solver.bc) for m in self.members]

    def deviation(self, Q: np.ndarray, cells: np.ndarray | None = None) -> np.ndarray:
        """Per cell ``(m,)`` (``cells``: which cells ``Q``'s columns are; None: all):
        :func:`~ledmus.surrogates.closure.hmm_boltzmann.flux_deviation`, the ensemble std
        of ``σ/p`` and ``q/(p√T)``.  (Not over ``s(ε/ρ)`` as BGK's: at ``ε = 1e-3`` the
        closure terms are ``O(ε)`` and their relative spread at a shock is large, 0.7–5.9
        on Sod, while the fields they move stay within 1 % of the kinetic solution.)"""
        from ..surrogates.closure.hmm_boltzmann import flux_deviation

        return flux_deviation(self.closures, Q[None], cells)[0]

    def restrict(self, f: np.ndarray) -> np.ndarray:
        from ..surrogates.closure.lift_boltzmann import restrict

        return restrict(self.members[0], f[None], self.solver)[0]

    def lift(self, Q: np.ndarray) -> np.ndarray:
        from ..surrogates.closure.lift_boltzmann import lift

        return lift(self.members[0], Q[None], self.solver)[0]

    def maxwellian(self, U: np.ndarray) -> np.ndarray:
        return self.solver.maxwellian_of_moments(U[None])[0]

    def conserved(self, f: np.ndarray) -> np.ndarray:
        return self.solver.moments(f)[[0, 1, 3]]

    def primitive(self, Q: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return _prim_gamma(Q, self.gamma)

    def sound_speed(self, T: np.ndarray) -> np.ndarray:
        return np.sqrt(self.gamma * T)

    def mean_free_path(self, rho: np.ndarray, T: np.ndarray) -> np.ndarray:
        """``(ε/ρ) √T``: the collision frequency of Maxwell molecules is ``ρ/ε``."""
        return self.eps / rho * np.sqrt(T)

    def noneq(self, f: np.ndarray) -> np.ndarray:
        U = self.conserved(f)
        M = self.maxwellian(U)
        return np.abs(f - M).sum(axis=0) * self.solver.h**2 / U[0]

    def labels(self) -> dict[str, np.ndarray]:
        s = self.solver
        return {
            "eps": np.asarray(self.eps, dtype=np.float64),
            "nv": np.int64(s.nv),
            "N": np.int64(s.N),
            "v_box": np.float64(s.v_box),
            "v_support": np.float64(s.v_support),
        }


def kinetic_side(solver: Any, ensemble: Any) -> BGKSide | BoltzmannSide:
    """The side of ``solver`` (by its ``name``); ``ValueError`` listing the systems."""
    sides = {"bgk": BGKSide, "boltzmann": BoltzmannSide}
    name = getattr(solver, "name", None)
    if name not in sides:
        raise ValueError(
            f"the hybrid has no kinetic side for system {name!r}; allowed: {', '.join(sides)}"
        )
    return sides[name](solver, ensemble)


__all__ = ["BGKSide", "BoltzmannSide", "kinetic_side"]
