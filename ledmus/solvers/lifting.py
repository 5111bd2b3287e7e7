"""Lifting strategies: observed fields -> a solver's internal state.

A lattice Boltzmann or kinetic solver carries more than it observes.  Its populations
``f`` hold the observed moments ``rho`` (the densities the macro model predicts) and an
unobserved part ``w`` (fluxes, the non-equilibrium part) that a running solver slaves to
``rho``: after a few collision times the state lies on the *slow manifold*
``w = W(rho)``.  Lifting ``rho`` with ``w = 0`` (the local equilibrium) starts off that
manifold, and the transient it sets off leaves a lasting error (a shifted pulse).  The
strategies here (registry :data:`STRATEGIES`; a solver lists those it supports in
``Solver.liftings``):

``equilibrium``
    ``f = f_eq(rho)`` (the solver's own ``lift``; every solver has it).
``chapman_enskog``
    ``f = f_eq(rho) + f^(1)(rho)``, the first-order Chapman–Enskog non-equilibrium part
    (analytic, no solver step; the solver's ``_lift_chapman_enskog``).
``constrained_runs``
    The constrained-runs scheme (Gear and Kevrekidis, 2005): with ``C(rho, w)`` the state
    of observed part ``rho`` and unobserved part ``w``, ``S`` one micro step and ``U`` the
    unobserved part of a state, iterate ``w_{k+1} = U(S(C(rho, w_k)))`` from ``w_0 = 0``
    until ``max |w_{k+1} - w_k| <= tol``: run the solver for one step, reset the observed
    moments, repeat.  For the BGK lattice Boltzmann model the iteration converges with
    factor ``|1 - omega|`` per step and its fixed point is correct to first order in the
    Chapman–Enskog expansion (Van Leemput, Vanroose and Roose, SIAM MMS 2008).
``newton_krylov``
    The same fixed point, ``F(w) = U(S(C(rho, w))) - w = 0``, solved by PETSc's SNES
    (Newton with matrix-free GMRES: every Jacobian-vector product is one finite-difference
    micro step), as Vandekerckhove, Kevrekidis and Roose (J. Sci. Comput. 2009) propose
    for ``omega`` near 0 or 2, where the functional iteration crawls.  Needs the ``petsc``
    extra (``petsc4py``).

The solver supplies ``_unobserved(internal) -> w`` shaped ``(B, C, ...)`` (``C`` the
observable's channels) and ``_with_unobserved(obs, w) -> internal``; the micro step is
its ``_step``.  Both iterative strategies need a deterministic solver.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

#: strategy name -> one-line description
STRATEGIES = {
    "equilibrium": "f = f_eq(rho): no non-equilibrium part (the paper's eqs 40-41)",
    "chapman_enskog": "f_eq + first-order Chapman-Enskog non-equilibrium part (analytic)",
    "constrained_runs": "functional iteration: one micro step, reset the observed moments, "
    "repeat (Gear and Kevrekidis 2005)",
    "newton_krylov": "the constrained-runs fixed point by PETSc SNES, matrix-free Newton-GMRES "
    "(needs petsc4py)",
}
ITERATIVE = ("constrained_runs", "newton_krylov")


def petsc_available() -> str | None:
    """``None`` when petsc4py imports, else the reason (for skips and error messages)."""
    try:
        import petsc4py  # noqa: F401
    except ImportError as exc:
        return (
            f"petsc4py is not installed ({exc}); install the petsc extra as "
            "docs/getting_started.md ('The petsc extra') says: "
            "PETSC_CONFIGURE_OPTIONS='--with-cuda=0 --with-x=0' pip install petsc && "
            "pip install 'cython>=3' setuptools wheel && "
            "pip install --no-build-isolation -e '.[petsc]'"
        )
    return None


@dataclass
class LiftReport:
    """What one lift cost and reached.  ``iterations``: fixed-point iterations (or Newton
    iterations); ``steps``: micro steps spent (function evaluations); ``residual``: for
    ``newton_krylov`` ``max |U(S(C(rho, w))) - w|`` of the returned state; for
    ``constrained_runs`` the last iteration's change ``max |w_k - w_(k-1)|`` (no extra
    micro step), which bounds the returned state's residual while the map contracts (it
    is the residual times about ``1 / |1 - omega|``; 2.2 times it for BGK in
    tests/test_diagnostics.py); 0 for the analytic strategies;
    ``history``: per iteration and channel the root mean square of that change,
    ``(iterations, C)`` (for the BGK iteration its ratio per step is ``|1 - omega|`` to a
    few per cent; PETSc's 2-norm of ``F`` per Newton step for ``newton_krylov``)."""

    strategy: str
    iterations: int = 0
    steps: int = 0
    residual: float = 0.0
    converged: bool = True
    seconds: float = 0.0
    history: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))


@dataclass(frozen=True)
class Lifting:
    """A lifting strategy with its tolerance (``tol``, in units of the observable) and
    iteration cap (``max_iter``) for the iterative ones.

    >>> internal, report = Lifting("constrained_runs").lift(solver, obs)
    """

    strategy: str = "equilibrium"
    tol: float = 1e-10
    max_iter: int = 200

    def __post_init__(self) -> None:
        if self.strategy not in STRATEGIES:
            raise ValueError(f"lifting={self.strategy!r} unknown; allowed: {', '.join(STRATEGIES)}")
        number = isinstance(self.tol, (int, float)) and not isinstance(self.tol, bool)
        tol = float(self.tol) if number else math.nan
        if not (math.isfinite(tol) and tol > 0):
            raise ValueError(f"lifting_tol must be a number > 0, got {self.tol!r}")
        if isinstance(self.max_iter, bool) or not isinstance(self.max_iter, int):
            raise ValueError(f"lifting_max_iter must be an integer >= 1, got {self.max_iter!r}")
        if self.max_iter < 1:
            raise ValueError(f"lifting_max_iter must be an integer >= 1, got {self.max_iter}")

    def check(self, solver: Any) -> Lifting:
        """``self``, or ``ValueError`` when ``solver`` does not implement the strategy
        (listing those it does) or petsc4py is missing for ``newton_krylov``."""
        allowed = getattr(solver, "liftings", ("equilibrium",))
        if self.strategy not in allowed:
            raise ValueError(
                f"lifting={self.strategy!r} is not available for the {solver.system!r} "
                f"solver; allowed: {', '.join(allowed)}"
            )
        if self.strategy in ITERATIVE and getattr(solver, "stochastic", False):
            raise ValueError(
                f"lifting={self.strategy!r} needs a deterministic solver; {solver.system!r} "
                "is stochastic"
            )
        if self.strategy == "newton_krylov" and (why := petsc_available()):
            raise ValueError(f"lifting=newton_krylov: {why}")
        return self

    def lift(
        self, solver: Any, obs: Any, rng: np.random.Generator | None = None, t: float = 0.0
    ) -> tuple[Any, LiftReport]:
        """The internal state for the observable ``obs`` ``(B, *state_shape)`` and the
        :class:`LiftReport`; ``t`` is the time the micro steps of the iteration run at."""
        self.check(solver)
        obs = solver.check_observable(obs)
        start = time.perf_counter()
        if self.strategy == "equilibrium":
            internal, report = solver._lift(obs, rng), LiftReport(self.strategy)
        elif self.strategy == "chapman_enskog":
            internal, report = solver._lift_chapman_enskog(obs), LiftReport(self.strategy)
        elif self.strategy == "constrained_runs":
            internal, report = constrained_runs(solver, obs, t, self.tol, self.max_iter)
        else:
            internal, report = newton_krylov(solver, obs, t, self.tol, self.max_iter)
        report.seconds = time.perf_counter() - start
        return internal, report


def _fixed_point_map(solver: Any, obs: np.ndarray, t: float):
    """``w -> U(S(C(obs, w)))``."""

    def g(w: np.ndarray) -> np.ndarray:
        return solver._unobserved(solver._step(solver._with_unobserved(obs, w), t, None))

    return g


def _channel_max(d: np.ndarray) -> np.ndarray:
    """``max |d|`` per channel (axis 1) over members and the rest, ``(C,)``."""
    return np.abs(np.moveaxis(d, 1, 0)).reshape(d.shape[1], -1).max(axis=1)


def _channel_rms(d: np.ndarray) -> np.ndarray:
    """Root mean square of ``d`` per channel (axis 1), ``(C,)``."""
    return np.sqrt(np.mean(np.moveaxis(d, 1, 0).reshape(d.shape[1], -1) ** 2, axis=1))


def constrained_runs(
    solver: Any, obs: np.ndarray, t: float, tol: float, max_iter: int
) -> tuple[Any, LiftReport]:
    """Functional iteration ``w_{k+1} = U(S(C(obs, w_k)))`` from the equilibrium (``w_0``
    its unobserved part) until ``max |w_{k+1} - w_k| <= tol`` or ``max_iter``."""
    g = _fixed_point_map(solver, obs, t)
    w = solver._unobserved(solver._lift(obs, None))
    history, residual = [], np.inf
    for _ in range(max_iter):
        w_new = g(w)
        history.append(_channel_rms(w_new - w))
        residual = float(_channel_max(w_new - w).max())
        w = w_new
        if residual <= tol:
            break
    hist = np.array(history)
    converged = residual <= tol
    report = LiftReport("constrained_runs", len(hist), len(hist), residual, converged, history=hist)
    return solver._with_unobserved(obs, w), report


def newton_krylov(
    solver: Any, obs: np.ndarray, t: float, tol: float, max_iter: int
) -> tuple[Any, LiftReport]:
    """``F(w) = U(S(C(obs, w))) - w = 0`` by PETSc SNES: Newton's method with a
    matrix-free Jacobian (``-snes_mf``) and unpreconditioned GMRES, from the equilibrium.
    Converged when ``||F||_2 <= tol`` (which bounds ``max |F|``); ``max_iter`` caps the
    Newton iterations and, times 10, the GMRES iterations per Newton step."""
    from petsc4py import PETSc

    g = _fixed_point_map(solver, obs, t)
    w0 = solver._unobserved(solver._lift(obs, None))
    shape = w0.shape
    calls = [0]
    history: list[np.ndarray] = []

    def function(snes: Any, x: Any, f: Any) -> None:
        w = x.getArray(readonly=True).reshape(shape)
        d = g(w) - w
        calls[0] += 1
        f.setArray(d.ravel())

    def monitor(snes: Any, its: int, norm: float) -> None:
        history.append(np.full(shape[1], norm))  # ||F||_2 over all channels

    x = PETSc.Vec().createSeq(w0.size, comm=PETSc.COMM_SELF)
    x.setArray(w0.ravel())
    r = x.duplicate()
    snes = PETSc.SNES().create(comm=PETSc.COMM_SELF)
    try:
        snes.setFunction(function, r)
        snes.setUseMF(True)
        snes.setTolerances(rtol=0.0, atol=tol, stol=0.0, max_it=max_iter)
        ksp = snes.getKSP()
        ksp.setType(PETSc.KSP.Type.GMRES)
        ksp.getPC().setType(PETSc.PC.Type.NONE)
        ksp.setTolerances(rtol=1e-3, atol=0.1 * tol, max_it=10 * max_iter)
        snes.setMonitor(monitor)
        snes.solve(None, x)
        newton_its = snes.getIterationNumber()
        w = x.getArray().reshape(shape).copy()
    finally:
        snes.destroy()
        x.destroy()
        r.destroy()
    residual = float(_channel_max(g(w) - w).max())  # one more step: the same measure as above
    report = LiftReport(
        "newton_krylov",
        newton_its,
        calls[0] + 1,
        residual,
        residual <= tol,
        history=np.array(history),
    )
    return solver._with_unobserved(obs, w), report
