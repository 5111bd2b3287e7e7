"""The micro side of a coupled run: initial conditions and the solver between windows.

:class:`Micro` holds the solver's internal state (LB populations, particles) between
windows, so ``T_m = 0`` continues the micro solver exactly; a window that brings a state
lifts it with the run's :class:`~ledmus.solvers.lifting.Lifting` (per-member random
streams for stochastic systems) and keeps the lift's report for the run summary.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np

from ..solvers import Solver
from ..solvers.lifting import Lifting, LiftReport
from .messages import MicroRequest, MicroResult, lift_stats
from .streams import RNG_IC, RNG_LIFT_SOLVER, RNG_MICRO, RNG_TRANSIENT, member_rng

log = logging.getLogger(__name__)


def check_finite(who: str, arr: np.ndarray, window: int) -> np.ndarray:
    """``arr`` unchanged, or ``FloatingPointError`` naming ``who`` and the window."""
    if not np.all(np.isfinite(arr)):
        raise FloatingPointError(f"{who}: non-finite values in window {window}")
    return arr


def initial_condition(
    solver: Solver, ic: str, seed: int, members: np.ndarray, transient: float = 0.0
) -> np.ndarray:
    """Observable initial conditions ``(len(members), *shape)``: a named IC of the solver
    (random ICs drawn per member), a ``.npy`` file with one state or one per member of the
    whole ensemble (indexed by global member number); then, when ``transient > 0``, the
    state reached by the micro solver after that time (per member, so MPI-split runs
    agree)."""
    obs = _initial_condition(solver, ic, seed, members)
    if transient <= 0:
        return obs
    out = []
    for b, m in enumerate(members):
        rng = member_rng(seed, int(m), 0, RNG_TRANSIENT) if solver.stochastic else None
        internal = solver.advance(solver.lift(obs[b : b + 1], rng), -transient, transient, rng)
        out.append(check_finite("micro (transient)", solver.observe(internal), 0))
    return np.concatenate(out)


def identical_members_warning(solver: Solver, ic: str, seed: int, ensemble: int) -> str | None:
    """A warning when every member of the ensemble would run the same trajectory: a
    deterministic solver started from one initial condition for all (a named IC such as
    ``y05``, or a ``.npy`` holding one state).  ``None`` otherwise."""
    if ensemble < 2 or solver.stochastic:
        return None
    first = _initial_condition(solver, ic, seed, np.arange(2))
    if not np.array_equal(first[0], first[1]):
        return None
    try:
        solver.initial_condition("random", 1, np.random.default_rng(0))
        fix = "ic: random or a .npy file with one state per member"
    except ValueError:  # no random initial condition for this system
        fix = "a .npy file with one state per member as ic"
    return (
        f"ensemble={ensemble} runs {ensemble} identical members: the {solver.system!r} "
        f"solver is deterministic and ic={ic!r} gives every member the same state; use {fix}"
    )


def _initial_condition(solver: Solver, ic: str, seed: int, members: np.ndarray) -> np.ndarray:
    if ic.endswith(".npy"):
        arr = np.load(ic, allow_pickle=False)
        arr = solver.check_observable(arr, name=f"ic file {ic}")
        if arr.shape[0] == 1:
            return np.repeat(arr, len(members), axis=0)
        if members.max(initial=-1) >= arr.shape[0]:
            raise ValueError(
                f"ic file {ic} holds {arr.shape[0]} states but the ensemble needs "
                f"{members.max() + 1} (one per member) or 1"
            )
        return arr[members]
    name = ic or None
    return np.concatenate(
        [solver.initial_condition(name, 1, member_rng(seed, int(m), 0, RNG_IC)) for m in members]
    )


class Micro:
    """The micro solver between windows.

    ``members``: global ensemble indices of the members this process runs; ``stream``: a
    distinct random stream (an MPI rank holding part of every member's particles);
    ``lifting``: how observed states become the solver's internal state.
    """

    def __init__(
        self,
        solver: Solver,
        ic: np.ndarray,
        seed: int,
        members: np.ndarray,
        stream: int | None = None,
        lifting: Lifting | None = None,
        schedule: ParamSchedule | None = None,
    ) -> None:
        self.solver = solver
        self.schedule = schedule
        self.lifting = (lifting or Lifting()).check(solver)
        self.last_lift: LiftReport | None = None
        self._warned = False
        self.stream = stream
        self.ic = solver.check_observable(ic, name="ic")
        self.seed = int(seed)
        self.members = np.asarray(members, dtype=np.int64)
        self.internal: Any = None
        self.t_member = np.full(len(self.members), np.nan)  # time of each member's state

    def solver_at(self, t: float) -> Solver:
        """The solver with the parameters in effect at ``t`` (``param_schedule``)."""
        return self.solver if self.schedule is None else self.schedule.solver_at(t)

    def _rng(self, member: int, window: int, purpose: int) -> np.random.Generator:
        return member_rng(self.seed, member, window, purpose, self.stream)

    def _lift(
        self, obs: np.ndarray, window: int, t: float, members: np.ndarray | None = None
    ) -> Any:
        solver = self.solver_at(t)
        if not solver.stochastic:
            internal, report = self.lifting.lift(solver, obs, None, t)
            self._report(report, window)
            return internal
        members = self.members if members is None else members
        lifted = [
            self.lifting.lift(solver, obs[b : b + 1], self._rng(int(m), window, RNG_LIFT_SOLVER), t)
            for b, m in enumerate(members)
        ]
        report = lifted[0][1]  # stochastic solvers lift by equilibrium only (no iterations)
        report.seconds = sum(r.seconds for _, r in lifted)
        self._report(report, window)
        return np.concatenate([internal for internal, _ in lifted])

    def _report(self, report: LiftReport, window: int) -> None:
        self.last_lift = report
        if report.iterations:
            log.debug(
                "window %d: %s lift, %d iterations, residual %.3g",
                window,
                report.strategy,
                report.iterations,
                report.residual,
            )
        if not report.converged and not self._warned:
            self._warned = True
            log.warning(
                "window %d: %s lifting stopped at lifting_max_iter=%d with residual %.3g > "
                "lifting_tol=%g (raise lifting_max_iter; further misses are counted in "
                "metrics.json)",
                window,
                report.strategy,
                self.lifting.max_iter,
                report.residual,
                self.lifting.tol,
            )

    def _start(self, request: MicroRequest) -> Any:
        """The internal state a window starts from."""
        self.last_lift = None
        if request.state is not None:
            state = np.array(request.state, dtype=np.float64)
            return self._lift(state, request.window, request.t0)
        if self.internal is None:
            return self._lift(self.ic, request.window, request.t0)
        self._check_time(np.arange(len(self.members)), request.t0)
        return self.internal

    def _check_time(self, rows: np.ndarray, t0: float) -> None:
        t = self.t_member[rows]
        if np.any(np.isnan(t)) or np.any(np.abs(t - t0) > 1e-9 * max(1.0, abs(t0))):
            at = ", ".join(sorted({f"{v:g}" for v in t.tolist()}))
            raise ValueError(
                f"micro: asked to continue at t={t0:g} but its state is at "
                f"t={at} (members {self.members[rows].tolist()})"
            )

    def _advance(self, internal: Any, t0: float, rngs: list | None) -> Any:
        solver = self.solver_at(t0)
        dt = solver.dt_coarse
        if rngs is None:
            return solver.advance(internal, t0, dt)
        # one stream per member, so an ensemble split over ranks equals the serial run
        return np.concatenate(
            [solver.advance(internal[b : b + 1], t0, dt, r) for b, r in enumerate(rngs)]
        )

    def handle(self, request: MicroRequest, out: np.ndarray | None = None) -> MicroResult:
        """Run one micro window; the observed coarse states ``(B, n, *shape)`` (written
        into ``out`` when given, e.g. a buffer already in memory)."""
        start = time.perf_counter()
        window, t0, dt = request.window, request.t0, self.solver.dt_coarse
        if request.steps < 0:
            raise ValueError(f"micro: steps={request.steps} in window {window}; allowed: >= 0")
        rows = None
        if request.members is not None:
            rows = self._rows(request.members)
            internal = self._start_members(request, rows)
        else:
            internal = self._start(request)
        members = self.members if rows is None else self.members[rows]
        rngs = None
        if self.solver.stochastic:
            rngs = [self._rng(int(m), window, RNG_MICRO) for m in members]
        n = request.steps + int(request.include_initial)
        shape = (len(members), n, *self.ic.shape[1:])
        if out is not None and out.shape != shape:
            raise ValueError(f"micro: out has shape {out.shape}, the window needs {shape}")
        states = np.empty(shape) if out is None else out
        j0 = 0
        if request.include_initial:
            states[:, 0] = self.solver.observe(internal)
            j0 = 1
        for j in range(request.steps):
            internal = self._advance(internal, t0 + j * dt, rngs)
            obs = self.solver.observe(internal)
            if not np.all(np.isfinite(obs)):
                raise FloatingPointError(
                    f"micro ({self.solver.system}): state became non-finite at "
                    f"t={t0 + (j + 1) * dt:g} (window {window})"
                )
            states[:, j0 + j] = obs
        if rows is None:
            self.internal = internal
            self.t_member[:] = t0 + request.steps * dt
        else:
            self.internal[rows] = internal
            self.t_member[rows] = t0 + request.steps * dt
        return MicroResult(
            window=window,
            states=states,
            micro_s=time.perf_counter() - start,
            lift_s=request.lift_s,
            lift_stats=None if self.last_lift is None else lift_stats(self.last_lift),
        )

    def _rows(self, members: np.ndarray) -> np.ndarray:
        rows = np.asarray(members, dtype=np.int64)
        if (
            rows.ndim != 1
            or np.any(rows < 0)
            or np.any(rows >= len(self.members))
            or len(np.unique(rows)) != len(rows)
        ):
            raise ValueError(
                f"micro: request members {rows.tolist()} are not distinct "
                f"positions in 0..{len(self.members) - 1}"
            )
        return rows

    def _start_members(self, request: MicroRequest, rows: np.ndarray) -> Any:
        """The internal states of the members at ``rows``: lifted (``request.lift``, rows
        of ``request.state`` in that order) or continued."""
        self.last_lift = None
        lift = np.zeros(0, dtype=np.int64) if request.lift is None else self._rows(request.lift)
        if not np.all(np.isin(lift, rows)):
            raise ValueError(
                f"micro: lift positions {lift.tolist()} are not among the "
                f"request's members {rows.tolist()}"
            )
        if self.internal is None:
            raise ValueError("micro: a member-subset request before the first window")
        own = rows[~np.isin(rows, lift)]
        self._check_time(own, request.t0)
        internal = self.internal[rows].copy()
        if len(lift):
            state = np.array(request.state, dtype=np.float64)
            lifted = self._lift(state, request.window, request.t0, self.members[lift])
            internal[[int(np.flatnonzero(rows == r)[0]) for r in lift]] = lifted
        return internal

    # checkpoint = the internal state (random streams are derived per window)
    def snapshot(self) -> dict[str, Any]:
        if self.internal is None:
            return {"started": False}
        if not isinstance(self.internal, np.ndarray):
            raise TypeError(f"micro: cannot snapshot a {type(self.internal).__name__} state")
        return {"started": True, "internal": self.internal, "t": self.t_member.copy()}

    def restore(self, snap: dict[str, Any]) -> None:
        if snap.get("started"):
            self.internal = np.array(snap["internal"])
            self.t_member = np.broadcast_to(
                np.array(snap["t"], dtype=np.float64), (len(self.members),)
            ).copy()


class ParamSchedule:
    """Micro-solver parameters that change at given times (``param_schedule``): a
    solver per entry, ``solver_at(t)`` the one of the last change at or before ``t``
    (a coarse step from ``t`` runs with the parameters in effect at ``t``).

    ``changes``: ``[(t_i, solver_i)]`` with increasing ``t_i``; before the first change
    the run's base solver holds."""

    def __init__(self, base: Solver, changes: list[tuple[float, Solver]]) -> None:
        self.base = base
        self.times = np.array([t for t, _ in changes], dtype=np.float64)
        self.solvers = [s for _, s in changes]

    def solver_at(self, t: float) -> Solver:
        k = int(np.searchsorted(self.times, t + 1e-9 * max(1.0, abs(t)), side="right"))
        return self.base if k == 0 else self.solvers[k - 1]
