"""Schedule policies: what runs next, decided from the run's state alone.

A policy is a small pure object: :meth:`SchedulePolicy.next` maps a :class:`RunState`
(coarse index reached, side of the last step) to the next :class:`Step` for every member,
or None when the run is done.  It holds no run state itself, so a resumed run asks the
same policy and gets the same answer.  The ``adaptive`` schedule is not a policy: it
decides per member from the run's comparisons (:class:`~.adaptive.AdaptiveCoordinator`).

``fixed`` (Vlachas et al. Fig. 2): a warm-up of ``n_warm`` micro steps from the initial
condition (``n_warm + 1`` states), then macro phases of ``n_macro`` steps, each followed
by a micro window of ``n_micro`` steps started from the lifted last macro state.
``n_micro = 0`` is one macro phase to the end ("Latent"); ``n_macro = 0`` lets the
micro solver continue its own state ("micro only").
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

MICRO, MACRO = "micro", "macro"
#: where a micro window starts: the initial condition, a lifted macro state, its own state
FROM_IC, FROM_LIFT, FROM_SELF = "ic", "lift", "self"


@dataclass(frozen=True)
class RunState:
    """What a policy may look at: the next coarse index to produce, the total number of
    coarse states and the side of the last step, micro or macro (None before the first)."""

    index: int
    n_total: int
    last: str | None = None


@dataclass(frozen=True)
class Step:
    """Run ``steps`` coarse steps on the micro or the macro ``side`` for every member (micro: starting
    ``start``; the warm-up also returns the initial state)."""

    side: str
    steps: int
    start: str = FROM_SELF

    @property
    def include_initial(self) -> bool:
        return self.side == MICRO and self.start == FROM_IC

    @property
    def states(self) -> int:
        """Coarse states this step records."""
        return self.steps + int(self.include_initial)


class SchedulePolicy(ABC):
    """Decides the next step of a coupled run."""

    name: str = ""

    @abstractmethod
    def next(self, state: RunState) -> Step | None:
        """The next step, or None when ``state.index >= state.n_total``."""


class FixedSchedule(SchedulePolicy):
    """T_warm / T_m / T_mu alternation (counts of coarse steps)."""

    name = "fixed"

    def __init__(self, n_warm: int, n_macro: int, n_micro: int) -> None:
        if min(n_warm, n_macro, n_micro) < 0:
            raise ValueError("n_warm, n_macro and n_micro must be >= 0")
        if n_macro == 0 and n_micro == 0:
            raise ValueError("n_macro and n_micro are both 0; at least one must be > 0")
        self.n_warm, self.n_macro, self.n_micro = n_warm, n_macro, n_micro

    def next(self, state: RunState) -> Step | None:
        remaining = state.n_total - state.index
        if remaining <= 0:
            return None
        if state.index == 0:
            return Step(MICRO, self.n_warm, FROM_IC)
        if state.last == MACRO:
            return Step(MICRO, min(self.n_micro, remaining), FROM_LIFT)
        if self.n_macro > 0:
            return Step(MACRO, remaining if self.n_micro == 0 else min(self.n_macro, remaining))
        return Step(MICRO, min(self.n_micro, remaining), FROM_SELF)
