"""The ``adaptive`` schedule: per-member macro/micro decisions from the macro model's
ensemble uncertainty, a comparison against the micro solver and physics monitors.

All members advance in lockstep by blocks of ``n_block`` coarse steps (``t_micro``).
Each member is in one of three modes:

* ``MICRO``: its micro solver continues its own state for the block; the macro model
  propagates the same block side by side from its assimilated state (the comparison
  window).  Accepted -> ``MACRO``.
* ``LIFT``: after a macro phase, the micro solver restarts from the lifted last macro
  state; the macro model continues its own trajectory side by side (comparison).
  Accepted -> ``MACRO`` again, else ``MICRO``.
* ``MACRO``: the macro model propagates the block; the decoded states go through the
  system's monitors and the uncertainty through ``max_uncertainty``.  A violation throws
  the block away for that member (never recorded), puts its model state back to the last
  accepted one and reruns the block on the micro solver (from the lifted last accepted
  macro state, or continuing the micro state when that was the last accepted one).  After
  ``cap`` blocks (drawn per member and phase from ``[n_macro_min, n_macro]`` in blocks, so
  members do not lock in phase) -> ``LIFT``; likewise before a block in which the micro
  parameters change (``param_schedule``): the model was accepted under the old ones.

Acceptance: the block's largest uncertainty ``<= max_uncertainty`` (when set) and the
comparison error ``<= max_error`` (when set): for grid states the NAD
``max_c mean |macro - micro| / range_c``, ``range_c`` the member's micro range of channel
``c`` seen so far from the end of the warm-up on (the run's errors are normalised by the
reference range after the warm-up; a warm-up transient does not count).

Drift estimate (``max_drift``): a comparison measures how far the model drifts from the
micro solver in one block from a shared state, not what the macro phase that follows
accumulates; a travelling pulse's phase is a neutral mode, so what a macro phase gets
wrong stays in the trajectory across restarts. Each member therefore keeps an estimate
of the NAD accumulated since its last micro window (a block continuing its own micro
state). It starts at the accepting comparison's first-step error (the level: what one
step from a shared state already differs) and every accepted macro block adds that
comparison's growth per block ``g`` (the rise of its error from the first to the last
step, extrapolated to the block), or ``g * sqrt(u / u_c)`` when the ensemble's spread
``u`` in the block exceeds ``u_c``, the spread of the comparison that opened the phase
(a spread that grows says the drift grows). Accepted comparisons after a restart
(``LIFT``) chain onto the estimate instead of starting it afresh. When one more block at
the phase's rate would take the estimate past ``max_drift``, the phase ends and the
member goes back to a micro window (cause ``drift``); ``drift_total`` (the largest level
of an accepted comparison plus every block's growth, never reset) is reported in ``metrics.json`` beside the true
error where a reference exists.

Micro members run batched in one window (member subsets of
:class:`~ledmus.coupler.messages.WindowRequest`); the model is re-synchronised on the
micro states of every member that ran micro (teacher forcing).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..systems.spec import SystemSpec
from .driver import Coordinator, Exchange
from .messages import WindowRequest
from .recorder import SOURCES
from .schedule import MACRO, MICRO
from .streams import RNG_RECORD, member_rng

MODE_MICRO, MODE_LIFT, MODE_MACRO = 0, 1, 2
RNG_CAP = 7  # purpose of the per-member streams that draw the macro caps
#: restart tests per member and stretch length before ``t_micro_min: auto`` trusts their
#: mean (fewer: that length is still tried)
RESTART_SAMPLES = 3


@dataclass
class AdaptiveSchedule:
    """The settings of the adaptive schedule, in coarse steps (see the module).  Not a
    :class:`~.schedule.SchedulePolicy`: its decisions are per member and need the run's
    comparisons, so :class:`AdaptiveCoordinator` makes them."""

    n_warm: int
    n_macro: int
    n_micro: int
    n_macro_min: int = 0
    max_uncertainty: float = 0.0
    max_error: float = 0.02
    error_budget: float = 0.0
    max_drift: float = 0.0
    monitors: bool = True
    seed: int = 0
    #: shortest micro stretch between macro phases, in blocks (0 or 1: one block)
    min_window: int = 1
    #: take ``min_window`` from the restart errors measured in the run instead
    min_window_auto: bool = False

    def __post_init__(self) -> None:
        if self.n_micro <= 0:
            raise ValueError("the adaptive schedule needs t_micro > 0 (its block length)")
        if self.n_macro < self.n_micro:
            raise ValueError("the adaptive schedule needs t_macro >= t_micro")
        self.n_macro_min = self.n_macro_min or self.n_macro
        self.min_window = max(1, self.min_window)

    @property
    def restart_bins(self) -> int:
        """Longest stretch (blocks) the restart errors are told apart by: ``t_warm``'s
        blocks (a longer warm-up is the initial one), at least one."""
        return max(1, self.n_warm // self.n_micro)

    def cap(self, member: int, window: int) -> int:
        """Blocks of the next macro phase of ``member`` (uniform in the cap range)."""
        lo, hi = self.n_macro_min // self.n_micro, self.n_macro // self.n_micro
        return int(member_rng(self.seed, member, window, RNG_CAP).integers(lo, hi + 1))


class AdaptiveCoordinator(Coordinator):
    """:class:`Coordinator` with per-member decisions (``schedule``: :class:`AdaptiveSchedule`).

    ``monitors``: the system's :class:`~ledmus.systems.spec.Monitor` list; ``members``:
    the global member indices (cap draws); ``system``: the system's spec (the layout of a
    state says how a comparison measures the error,
    :meth:`~ledmus.systems.spec.SystemSpec.comparison_error`)."""

    def __init__(
        self,
        model: Any,
        decoder: Any,
        schedule: AdaptiveSchedule,
        *,
        n_total: int,
        dt: float,
        recorder: Any,
        monitors: tuple = (),
        members: np.ndarray,
        system: SystemSpec,
        change_times: tuple[float, ...] = (),
        learning: Any = None,
    ) -> None:
        if not model.member_subsets:
            raise ValueError(
                f"schedule adaptive needs a macro model with member-subset "
                f"operations; {type(model).__name__} has none"
            )
        super().__init__(model, decoder, None, n_total=n_total, dt=dt, recorder=recorder)
        self.schedule = schedule
        b = recorder.n_members
        self.members = np.asarray(members, dtype=np.int64)
        self.monitors = tuple(monitors) if schedule.monitors else ()
        self.system = system
        self.change_times = np.asarray(change_times, dtype=np.float64)
        self.mode = np.zeros(b, dtype=np.int64)
        self.cap_left = np.zeros(b, dtype=np.int64)
        self.lo = np.full((b, recorder.state_shape[0]), np.inf)
        self.hi = np.full((b, recorder.state_shape[0]), -np.inf)
        self.interventions: dict[str, int] = {}
        self.comparisons = {"accepted": 0, "rejected": 0}
        #: per member: NAD estimate since the last micro window, and since the start
        self.drift = np.zeros(b)
        self.growth_total = np.zeros(b)  # every macro block's increment
        self.level_max = np.zeros(b)  # the largest first-step comparison error
        self.rate = np.zeros(b)  # growth per block of the comparison that opened the phase
        self.spread_c = np.full(b, np.nan)  # that comparison's largest spread
        self.back_to_micro = np.zeros(b, dtype=bool)  # next comparison ends in micro
        #: micro blocks each member has run since its last macro phase, and per member and
        #: stretch k (column k, 1..restart_bins): the summed restart errors and their count
        k = schedule.restart_bins
        self.stretch = np.full(b, k, dtype=np.int64)  # the warm-up counts as a full one
        self.restart_sum = np.zeros((b, k + 1))
        self.restart_n = np.zeros((b, k + 1), dtype=np.int64)
        #: online training (:class:`~.trainer.Learning`), or None
        self.learning = learning

    # ------------------------------------------------------------------ helpers
    def _count(self, cause: str, n: int = 1) -> None:
        if n:
            self.interventions[cause] = self.interventions.get(cause, 0) + int(n)

    def _track_range(self, rows: np.ndarray, states: np.ndarray) -> None:
        if not self.system.ranged:
            return
        self.lo[rows] = np.minimum(self.lo[rows], states.min(axis=(1, 3)))
        self.hi[rows] = np.maximum(self.hi[rows], states.max(axis=(1, 3)))

    def comparison_error(
        self, rows: np.ndarray, macro: np.ndarray, micro: np.ndarray
    ) -> np.ndarray:
        """Per member of ``rows``: grid NAD ``max_c mean|macro - micro| / range_c``;
        particles: ``max_axis (|d mean| + |d std|) / 1`` (box units)."""
        return self.system.comparison_error(macro, micro, self._range(rows))

    def step_errors(self, rows: np.ndarray, macro: np.ndarray, micro: np.ndarray) -> np.ndarray:
        """The comparison error of each step of the block, ``(len(rows), n)``: grid
        ``max_c mean_x |macro - micro| / range_c``; particles ``max_axis (|d mean| + |d std|)``."""
        return self.system.step_errors(macro, micro, self._range(rows))

    def _range(self, rows: np.ndarray) -> np.ndarray:
        """Each member's micro range per channel so far ``(len(rows), C)`` (0 read as 1)."""
        rng = self.hi[rows] - self.lo[rows]
        return np.where(rng > 0, rng, 1.0)

    @staticmethod
    def drift_rate(steps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(level, growth per block)`` of a comparison's step errors ``(b, n)``: the
        first step's error (what one step from a shared state already differs: encoding,
        decoding) and the rise from the first to the last step extrapolated to the whole
        block, ``(e_n - e_1) n / (n - 1)`` (``e_1`` for a block of one step), at least 0."""
        n = steps.shape[1]
        level = steps[:, 0]
        if n == 1:
            return level, level.copy()
        return level, np.maximum(steps[:, -1] - level, 0.0) * n / (n - 1)

    def _violations(self, states: np.ndarray, uncertainty: np.ndarray | None) -> list[str | None]:
        """The first violated safeguard of each member's block (None: none)."""
        b, n = states.shape[:2]
        causes: list[str | None] = [None] * b
        finite = np.isfinite(states.reshape(b, -1)).all(axis=1)
        for k in np.flatnonzero(~finite):
            causes[k] = "non_finite"
        flat = states.reshape(b * n, *states.shape[2:])
        for mon in self.monitors:
            ok = np.asarray(mon.check(flat), dtype=bool).reshape(b, n).all(axis=1)
            for k in np.flatnonzero(~ok):
                causes[k] = causes[k] or f"monitor:{mon.name}"
        limit = self.schedule.max_uncertainty
        if limit > 0 and uncertainty is not None:
            high = np.nan_to_num(uncertainty, nan=0.0).max(axis=1) > limit
            for k in np.flatnonzero(high):
                causes[k] = causes[k] or "uncertainty"
        return causes

    # ------------------------------------------------------------------ one block
    def step(self, exchange: Exchange) -> str | None:
        if self.done:
            return None
        if self.index == 0:
            self._warm_up(exchange)
            return MICRO
        i = self.index
        n = min(self.schedule.n_micro, self.n_total - i)
        self._end_macro_at_changes(i, n)
        compare = np.flatnonzero(self.mode != MODE_MACRO)
        lift = np.flatnonzero(self.mode == MODE_LIFT)  # before the macro block changes modes
        zc = uc = None
        if len(compare):  # side by side: propagate, then put the state back
            with self._timed("macro_s"):
                snap = self.model.snapshot()
                zc, uc = self.model.propagate_members(n, compare)
                self.model.restore(snap)
        rejected = self._macro_block(i, n)
        # a rejected member lifts its last accepted macro state, or continues its micro
        # state when the last accepted state was a micro one
        lift = np.union1d(lift, rejected[self.recorder.source[rejected, i - 1] == SOURCES[MACRO]])
        run = np.union1d(compare, rejected)
        states = self._micro_block(exchange, i, n, run, lift)
        if len(compare):
            self._decide(compare, run, states, zc, uc, i)
        self.mode[rejected] = MODE_MICRO
        went = self.mode[run] == MODE_MACRO
        self.stretch[run[went]] = 0
        self.stretch[run[~went]] += 1
        self.index += n
        self.last = MACRO if len(run) == 0 else MICRO
        if self.learning is not None and self.learning.incoming is not None:
            self._new_weights(n)
        return self.last

    def _new_weights(self, n: int) -> None:
        """Apply waiting weights once no member is in a macro phase (a phase runs on
        the weights its comparison accepted), or end the phases after ``n_macro`` steps."""
        learning, busy = self.learning, self.mode == MODE_MACRO
        learning.waited += n
        if busy.any() and learning.waited < self.schedule.n_macro:
            return
        with self._timed("macro_s"):
            if not learning.acceptable(self):
                return
            self._count("weights_update", int(busy.sum()))
            self.mode[busy] = MODE_LIFT
            learning.apply(self)

    def _end_macro_at_changes(self, i: int, n: int) -> None:
        """A block that crosses a ``param_schedule`` change starts with a comparison for
        every macro member: the model was accepted under the old parameters."""
        t0, t1 = (i - 1) * self.dt, (i - 1 + n) * self.dt
        eps = 1e-9 * max(1.0, t1)
        if not np.any((self.change_times > t0 - eps) & (self.change_times < t1 - eps)):
            return
        macro = self.mode == MODE_MACRO
        self._count("param_change", int(macro.sum()))
        self.mode[macro] = MODE_LIFT

    def _warm_up(self, exchange: Exchange) -> None:
        b = self.recorder.n_members
        request = WindowRequest(
            window=self.window, t0=0.0, steps=self.schedule.n_warm, include_initial=True
        )
        answer = self._exchange(exchange, request)
        with self._timed("macro_s"):
            self.model.assimilate_members(answer.m, np.arange(b))
        # the range starts at the warm-up's last state, as the run's errors count from
        # there: a transient of the warm-up (a bump that decays) must not widen the range
        # the comparisons are measured against
        self._track_range(np.arange(b), answer.states[:, -1:])
        if self.learning is not None:
            self.learning.queue(np.arange(b), 0, answer.states)
        self._record(answer.states, answer.m, MICRO)
        self.index += answer.states.shape[1]
        self.mode[:] = MODE_MICRO
        self.last = MICRO

    def _exchange(self, exchange: Exchange, request: WindowRequest) -> Any:
        if self.learning is not None:  # the trainer's exchange wraps the micro window's
            self.learning.post(self.window, self.model)
        answer = self._ask(exchange, request)
        if self.learning is not None:
            self.learning.collect(self.window)
        self.window += 1
        return answer

    def _macro_block(self, i: int, n: int) -> np.ndarray:
        """Propagate the macro members, check them, record the accepted ones; returns the
        rejected members."""
        rows = np.flatnonzero(self.mode == MODE_MACRO)
        if len(rows) == 0:
            return rows
        with self._timed("macro_s"):
            snap = self.model.snapshot()
            z, unc = self.model.propagate_members(n, rows)
            states = self.decoder.decode(z, i, RNG_RECORD, rows=rows)
            causes = self._violations(states, unc)
            bad = np.array([c is not None for c in causes])
            for c in causes:
                if c is not None:
                    self._count(c)
            if bad.any():
                self.model.revert_members(snap, rows[bad])
        good = ~bad
        if good.any():
            keep = states[good] if self.recorder.needs_states else None
            self._record(
                keep, z[good], MACRO, None if unc is None else unc[good], members=rows[good]
            )
            done = rows[good][self.cap_left[rows[good]] <= 1]
            self.cap_left[rows[good]] -= 1
            self.mode[done] = MODE_LIFT
            self._accumulate(rows[good], None if unc is None else unc[good])
        return rows[bad]

    def _accumulate(self, rows: np.ndarray, unc: np.ndarray | None) -> None:
        """Add one accepted macro block's drift to the estimates of ``rows``; a member
        whose estimate passes ``max_drift`` ends its phase and goes back to micro."""
        inc = self.rate[rows].copy()
        if unc is not None:
            u = np.nan_to_num(unc, nan=0.0).max(axis=1)
            uc = self.spread_c[rows]
            grown = np.isfinite(uc) & (uc > 0) & (u > uc)
            inc[grown] *= np.sqrt(u[grown] / uc[grown])
        self.drift[rows] += inc
        self.growth_total[rows] += inc
        limit = self.schedule.max_drift
        if limit > 0:  # the next block at this rate would pass the limit
            passing = rows[self.drift[rows] + self.rate[rows] > limit]
            self._count("drift", int((self.mode[passing] == MODE_MACRO).sum()))
            self.mode[passing] = MODE_LIFT
            self.back_to_micro[passing] = True

    def _micro_block(
        self, exchange: Exchange, i: int, n: int, run: np.ndarray, lift: np.ndarray
    ) -> np.ndarray | None:
        if len(run) == 0:
            return None
        request = WindowRequest(
            window=self.window,
            t0=(i - 1) * self.dt,
            steps=n,
            include_initial=False,
            m=self.recorder.latents[lift, i - 1] if len(lift) else None,
            members=run,
            lift=lift if len(lift) else None,
        )
        answer = self._exchange(exchange, request)
        with self._timed("macro_s"):
            self.model.assimilate_members(answer.m, run)
        self._track_range(run, answer.states)
        if self.learning is not None:
            self.learning.queue(run, i, answer.states)
        self._record(answer.states, answer.m, MICRO, members=run)
        return answer.states

    def _decide(
        self,
        compare: np.ndarray,
        run: np.ndarray,
        states: np.ndarray,
        zc: np.ndarray,
        uc: np.ndarray | None,
        i: int,
    ) -> None:
        """The acceptance test of the members compared in this block."""
        with self._timed("macro_s"):
            macro = self.decoder.decode(zc, i, RNG_RECORD, rows=compare)
            micro = states[np.searchsorted(run, compare)]
            err = self.comparison_error(compare, macro, micro)
            level, growth = self.drift_rate(self.step_errors(compare, macro, micro))
        pol = self.schedule
        ok = np.ones(len(compare), dtype=bool)
        if pol.max_error > 0:
            bad_err = ~(err <= pol.max_error)
            self._count("comparison_error", int(bad_err.sum()))
            ok &= ~bad_err
        if pol.max_uncertainty > 0 and uc is not None:
            bad_unc = np.nan_to_num(uc, nan=0.0).max(axis=1) > pol.max_uncertainty
            self._count("comparison_uncertainty", int((bad_unc & ok).sum()))
            ok &= ~bad_unc
        fresh = self.mode[compare] == MODE_MICRO  # from the member's own micro state
        self.drift[compare[fresh]] = 0.0
        self.drift[compare] = np.maximum(self.drift[compare], level)
        if pol.max_drift > 0:
            # the estimate after one more block, or a phase that already passed it
            forced = self.back_to_micro[compare] & ~fresh
            bad_drift = ok & ((self.drift[compare] + growth > pol.max_drift) | forced)
            self._count("drift", int(bad_drift.sum()))
            ok &= ~bad_drift
        self.back_to_micro[compare] = False
        self._record_restarts(compare, err)
        short = ok & (self.stretch[compare] + 1 < self.min_window(compare))
        self._count("min_window", int(short.sum()))
        ok &= ~short
        # a rejected comparison's error never enters the trajectory (the member stays micro)
        self.level_max[compare[ok]] = np.maximum(self.level_max[compare[ok]], level[ok])
        self.comparisons["accepted"] += int(ok.sum())
        self.comparisons["rejected"] += int((~ok).sum())
        for k, member in enumerate(compare):
            if ok[k]:
                self.mode[member] = MODE_MACRO
                cap = pol.cap(int(self.members[member]), self.window)
                if pol.error_budget > 0 and err[k] > 0:  # about err accumulates per block
                    cap = min(cap, max(1, int(pol.error_budget / err[k])))
                self.cap_left[member] = cap
                self.rate[member] = growth[k]
                self.spread_c[member] = (
                    np.nan if uc is None else np.nan_to_num(uc[k], nan=0.0).max()
                )
            else:
                self.mode[member] = MODE_MICRO

    def _record_restarts(self, rows: np.ndarray, err: np.ndarray) -> None:
        """File comparison errors by the member's stretch (column ``min(stretch,
        restart_bins)``): from a stretch k >= 1 a comparison is a restart test after k
        micro blocks; column 0 takes the comparisons right after a macro phase (drift
        from the lifted state, not a restart) and is never read.  A non-finite error
        counts as infinite: that stretch is then known bad."""
        k = np.minimum(self.stretch[rows], self.schedule.restart_bins)
        np.add.at(self.restart_sum, (rows, k), np.where(np.isfinite(err), err, np.inf))
        np.add.at(self.restart_n, (rows, k), 1)

    def min_window(self, rows: np.ndarray) -> np.ndarray:
        """Per member of ``rows``: the micro blocks it runs between two macro phases.
        ``t_micro_min: auto``: a stretch k is known bad when at least
        :data:`RESTART_SAMPLES` restart tests after k blocks average above ``max_error``,
        known good when they average at most that; the window is the smallest k not
        known bad (``restart_bins`` when all are), and two blocks while one block is not
        known good: the comparison after a macro phase does not test the restart that a
        phase opened from it makes, so that restart is tested first."""
        pol = self.schedule
        if not pol.min_window_auto:
            return np.full(len(rows), pol.min_window, dtype=np.int64)
        n, total = self.restart_n[rows, 1:], self.restart_sum[rows, 1:]
        mean = np.divide(total, n, out=np.zeros_like(total), where=n > 0)
        known = n >= RESTART_SAMPLES
        bad = known & (mean > pol.max_error)
        window = np.where((~bad).any(axis=1), (~bad).argmax(axis=1) + 1, pol.restart_bins)
        one_good = known[:, 0] & ~bad[:, 0]
        return np.where((window == 1) & ~one_good, 2, window)

    def restart_report(self) -> dict[str, Any]:
        """``restart_error``: per stretch k = 1..restart_bins the mean restart error and the
        number of tests over all members, and each member's minimum window (blocks) at
        the end of the run."""
        n, total = self.restart_n[:, 1:], self.restart_sum[:, 1:]
        count = n.sum(axis=0)
        mean = np.divide(total.sum(axis=0), count, out=np.zeros(len(count)), where=count > 0)
        return {
            "mean": [float(m) if c else None for m, c in zip(mean, count, strict=True)],
            "count": count.tolist(),
            "min_window": self.min_window(np.arange(len(n))).tolist(),
            "auto": self.schedule.min_window_auto,
        }

    @property
    def drift_total(self) -> np.ndarray:
        """Per member: the largest level plus every macro block's growth since the start."""
        return self.level_max + self.growth_total

    # ------------------------------------------------------------------ checkpoints
    def snapshot(self) -> dict[str, Any]:
        snap = super().snapshot()
        snap["adaptive"] = {
            "mode": self.mode.copy(),
            "cap_left": self.cap_left.copy(),
            "lo": self.lo.copy(),
            "hi": self.hi.copy(),
            "interventions": dict(self.interventions),
            "comparisons": dict(self.comparisons),
            "drift": np.stack(
                [self.drift, self.growth_total, self.level_max, self.rate, self.spread_c]
            ),
            "back_to_micro": self.back_to_micro.copy(),
            "stretch": self.stretch.copy(),
            "restart_sum": self.restart_sum.copy(),
            "restart_n": self.restart_n.copy(),
        }
        if self.learning is not None:
            snap["learning"] = self.learning.snapshot(self.model)
        return snap

    def restore(self, snap: dict[str, Any]) -> None:
        super().restore(snap)
        a = snap["adaptive"]
        self.mode, self.cap_left = np.array(a["mode"]), np.array(a["cap_left"])
        self.lo, self.hi = np.array(a["lo"]), np.array(a["hi"])
        self.interventions = {k: int(v) for k, v in a["interventions"].items()}
        self.comparisons = {k: int(v) for k, v in a["comparisons"].items()}
        if "drift" in a:  # snapshots written before the drift estimate start it at zero
            drift = np.array(a["drift"])
            self.drift, self.growth_total, self.level_max, self.rate, self.spread_c = drift
            self.back_to_micro = np.array(a["back_to_micro"], dtype=bool)
        if "stretch" in a:  # older snapshots: the counters as at the start of a run
            self.stretch = np.array(a["stretch"], dtype=np.int64)
            self.restart_sum = np.array(a["restart_sum"], dtype=np.float64)
            self.restart_n = np.array(a["restart_n"], dtype=np.int64)
        if self.learning is not None:
            self.learning.restore(snap["learning"], self.model)
