"""The coordinator of a coupled run: asks the schedule policy what runs next, propagates
the macro model, sends micro windows through an ``exchange`` (lift -> micro -> restrict,
in process or over MUSCLE3) and teacher-forces the model with the restricted states.

Scheme on coarse indices ``j`` (time ``j * dt``), Vlachas et al. Fig. 2 / SI §6.6: the warm-up
micro window returns indices ``0 … n_warm`` and teacher-forces the model; a macro phase
of ``T_m`` steps records indices ``i … i + T_m - 1``; the next micro window starts from
the lifted state of index ``i + T_m - 1`` (time ``t0 = (i + T_m - 1) dt``) and records
``i + T_m …``; the last macro state and the restricted micro states teacher-force the
model again (:meth:`MacroModel.assimilate`).  The coordinator knows only the
:class:`~ledmus.surrogates.macro.MacroModel` protocol.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

from ..surrogates.macro import MacroModel
from .mappers import Decoder
from .messages import LiftTally, Restricted, WindowRequest
from .recorder import Recorder
from .schedule import FROM_IC, FROM_LIFT, MACRO, MICRO, RunState, SchedulePolicy, Step
from .streams import RNG_RECORD

#: macro steps decoded and recorded at once in a macro phase of a stochastic decoder (each
#: chunk draws from streams keyed by its first index)
DECODE_CHUNK = 256
#: states per decoded chunk of a deterministic lift: about 4096 keeps the decoder's and
#: the error accumulation's temporaries in cache (0.60 s -> 0.36 s for 100 x 800 FHN
#: states, bitwise the same states)
DECODE_STATES = 4096


def decode_chunk(model: MacroModel, n_members: int) -> int:
    """Macro steps per decoded chunk (the same in the run and in ``ledmus decode``)."""
    return DECODE_CHUNK if model.stochastic_decode else max(1, DECODE_STATES // max(1, n_members))


Exchange = Callable[[WindowRequest], Restricted]
TIMINGS = ("macro_s", "micro_s", "lift_s", "restrict_s", "record_s")


class Coordinator:
    """Drive with :meth:`run`, or :meth:`cycle` repeatedly (one macro phase and one
    micro window per cycle; the warm-up is the first).  ``policy`` decides the steps
    (None for a subclass that overrides :meth:`step`, as the adaptive coordinator does)."""

    def __init__(
        self,
        model: MacroModel,
        decoder: Decoder,
        policy: SchedulePolicy | None,
        *,
        n_total: int,
        dt: float,
        recorder: Recorder,
    ) -> None:
        self.model, self.decoder, self.policy = model, decoder, policy
        self.n_total, self.dt = n_total, float(dt)
        self.recorder = recorder
        self.micro_ranks = 1  # MPI processes of the micro component (MUSCLE3)
        self.index = 0  # next coarse index to produce
        self.window = 0  # number of micro windows asked for
        self.last: str | None = None  # side of the last step (micro or macro)
        # record_s: storing states and accumulating errors (measurement, not simulation)
        self.timings = dict.fromkeys(TIMINGS, 0.0)
        self.lifting = LiftTally()  # the micro solver's lifts (iterations, residuals)

    @property
    def done(self) -> bool:
        return self.index >= self.n_total

    @property
    def time(self) -> float:
        return self.index * self.dt

    def next_step(self) -> Step | None:
        return self.policy.next(RunState(self.index, self.n_total, self.last))

    def _micro_window(self, exchange: Exchange, step: Step) -> None:
        # a window starts from the state at index - 1 (the lifted last macro state, or
        # the micro solver's own state); the warm-up from the initial condition at 0
        request = WindowRequest(
            window=self.window,
            t0=0.0 if step.start == FROM_IC else (self.index - 1) * self.dt,
            steps=step.steps,
            include_initial=step.include_initial,
            # the last macro state, as recorded at index - 1
            m=self.recorder.latents[:, self.index - 1] if step.start == FROM_LIFT else None,
        )
        answer = self._ask(exchange, request)
        start = time.perf_counter()
        self.model.assimilate(answer.m)
        self.timings["macro_s"] += time.perf_counter() - start
        self._record(answer.states, answer.m, MICRO)
        self.index += answer.states.shape[1]
        self.window += 1

    def _ask(self, exchange: Exchange, request: WindowRequest) -> Restricted:
        """Send a window, check its number and book its timings and lift report."""
        answer = exchange(request)
        if answer.window != self.window:
            raise RuntimeError(f"macro: expected window {self.window}, got {answer.window}")
        for key in ("micro_s", "lift_s", "restrict_s"):
            self.timings[key] += getattr(answer, key)
        self.micro_ranks = answer.micro_ranks
        self.lifting.add(answer.lift_stats)
        return answer

    def _record(
        self,
        states: np.ndarray | None,
        m: np.ndarray,
        source: str,
        uncertainty: np.ndarray | None = None,
        members: np.ndarray | None = None,
    ) -> None:
        """Record from ``self.index`` (``members``: indices of the rows given; None all)."""
        mask = None
        if members is not None:
            mask = np.zeros(self.recorder.n_members, dtype=bool)
            mask[members] = True
        with self._timed("record_s"):
            self.recorder.add(self.index, states, m, source, members=mask, uncertainty=uncertainty)

    @contextmanager
    def _timed(self, key: str) -> Iterator[None]:
        """Add the wall time of the ``with`` body to ``timings[key]``."""
        start = time.perf_counter()
        try:
            yield
        finally:
            self.timings[key] += time.perf_counter() - start

    def _macro_phase(self, steps: int) -> None:
        start = time.perf_counter()
        m, uncertainty = self.model.propagate(steps)
        self.timings["macro_s"] += time.perf_counter() - start
        size = decode_chunk(self.model, m.shape[0])
        for a in range(0, steps, size):
            start = time.perf_counter()
            chunk = m[:, a : a + size]
            states = None
            if self.recorder.needs_states:
                states = self.decoder.decode(chunk, self.index, RNG_RECORD)
            self.timings["macro_s"] += time.perf_counter() - start
            spread = None if uncertainty is None else uncertainty[:, a : a + size]
            self._record(states, chunk, MACRO, spread)
            self.index += chunk.shape[1]

    def step(self, exchange: Exchange) -> str | None:
        """Run the policy's next step; returns its side, micro or macro (None when done)."""
        step = self.next_step()
        if step is None:
            return None
        if step.side == MICRO:
            self._micro_window(exchange, step)
        else:
            self._macro_phase(step.steps)
        self.last = step.side
        return step.side

    def cycle(self, exchange: Exchange) -> None:
        """Steps up to and including the next micro window (or to the end)."""
        while self.step(exchange) not in (MICRO, None):
            pass

    def run(self, exchange: Exchange, progress: bool = False) -> None:
        from ..progress import progress_bar

        bar = progress_bar(total=self.n_total, enabled=progress, desc="ledmus run", unit="Δt")
        with bar:
            while not self.done:
                before = self.index
                self.cycle(exchange)
                bar.update(self.index - before)

    # checkpoint: position, model propagation state, timings and the recorder
    def snapshot(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "window": self.window,
            "last": self.last or "",
            "model": self.model.snapshot(),
            "timings": dict(self.timings),
            "lifting": dict(vars(self.lifting)),
            "recorder": self.recorder.snapshot(),
        }

    def restore(self, snap: dict[str, Any]) -> None:
        self.index, self.window = int(snap["index"]), int(snap["window"])
        self.last = snap["last"] or None
        self.model.restore(snap["model"])
        self.timings = {k: float(v) for k, v in snap["timings"].items()}
        self.lifting = LiftTally.from_dict(snap.get("lifting", {}))  # older snapshots: none
        self.recorder.restore(snap["recorder"])
