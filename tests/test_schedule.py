"""The schedule policy (pure): warm-up, alternation, limits, truncation at the end."""

from __future__ import annotations

import pytest

from ledmus.coupler import policies
from ledmus.coupler.policies import make_policy
from ledmus.coupler.schedule import (
    FROM_IC,
    FROM_LIFT,
    FROM_SELF,
    MACRO,
    MICRO,
    FixedSchedule,
    RunState,
    Step,
)


def unroll(policy, n_total: int) -> list[tuple[str, int, str]]:
    """Drive the policy as the coordinator does: each step advances by its states."""
    out, index, last = [], 0, None
    while (step := policy.next(RunState(index, n_total, last))) is not None:
        assert step.states > 0 and len(out) < n_total, "the run must advance"
        out.append((step.side, step.steps, step.start))
        index += step.states
        last = step.side
    return out


def test_fixed_alternates_warm_up_macro_and_lifted_micro_windows():
    # warm-up 10 steps (11 states), then 20 macro, 5 micro, 20 macro, 5 micro (cut at 61)
    assert unroll(FixedSchedule(10, 20, 5), 61) == [
        (MICRO, 10, FROM_IC), (MACRO, 20, FROM_SELF), (MICRO, 5, FROM_LIFT),
        (MACRO, 20, FROM_SELF), (MICRO, 5, FROM_LIFT),
    ]  # fmt: skip


def test_fixed_cuts_the_last_phase_at_the_end():
    steps = unroll(FixedSchedule(2, 4, 3), 3 + 4 + 3 + 2)
    assert steps[-1] == (MACRO, 2, FROM_SELF)
    steps = unroll(FixedSchedule(2, 4, 3), 3 + 4 + 2)
    assert steps[-1] == (MICRO, 2, FROM_LIFT)


def test_latent_limit_is_one_macro_phase_to_the_end():
    assert unroll(FixedSchedule(5, 7, 0), 100) == [(MICRO, 5, FROM_IC), (MACRO, 94, FROM_SELF)]


def test_micro_limit_continues_the_micro_solver_without_lifting():
    assert unroll(FixedSchedule(3, 0, 4), 12) == [
        (MICRO, 3, FROM_IC), (MICRO, 4, FROM_SELF), (MICRO, 4, FROM_SELF),
    ]  # fmt: skip


def test_done_and_step_bookkeeping():
    policy = FixedSchedule(1, 1, 1)
    assert policy.next(RunState(5, 5, MICRO)) is None
    assert policy.next(RunState(6, 5, MACRO)) is None
    warm = Step(MICRO, 4, FROM_IC)
    assert warm.include_initial and warm.states == 5
    assert not Step(MICRO, 4, FROM_LIFT).include_initial and Step(MICRO, 4, FROM_LIFT).states == 4
    assert not Step(MACRO, 4, FROM_IC).include_initial  # only micro windows return a state


def test_zero_warm_up_returns_only_the_initial_state():
    assert unroll(FixedSchedule(0, 2, 1), 4) == [
        (MICRO, 0, FROM_IC), (MACRO, 2, FROM_SELF), (MICRO, 1, FROM_LIFT),
    ]  # fmt: skip


def test_one_step_macro_phases_alternate_too():
    # n_macro = 1 is the smallest macro phase, still one per micro window
    assert unroll(FixedSchedule(2, 1, 2), 3 + 1 + 2 + 1 + 2) == [
        (MICRO, 2, FROM_IC), (MACRO, 1, FROM_SELF), (MICRO, 2, FROM_LIFT),
        (MACRO, 1, FROM_SELF), (MICRO, 2, FROM_LIFT),
    ]  # fmt: skip


NEGATIVE = "^n_warm, n_macro and n_micro must be >= 0$"
BOTH_ZERO = "^n_macro and n_micro are both 0; at least one must be > 0$"


@pytest.mark.parametrize(
    "counts, message",
    [((0, 0, 0), BOTH_ZERO), ((1, 0, 0), BOTH_ZERO), ((-1, 1, 1), NEGATIVE),
     ((1, -1, 1), NEGATIVE), ((1, 1, -1), NEGATIVE)],
)  # fmt: skip
def test_bad_counts_are_refused(counts, message):
    with pytest.raises(ValueError, match=message):
        FixedSchedule(*counts)


def test_registry_names_the_valid_policies(monkeypatch):
    policy = make_policy("fixed", n_warm=1, n_macro=2, n_micro=3)
    assert isinstance(policy, FixedSchedule)
    assert (policy.n_warm, policy.n_macro, policy.n_micro) == (1, 2, 3)
    with pytest.raises(ValueError, match=r"^schedule policy 'typo' unknown; allowed: fixed \("):
        make_policy("typo", n_warm=1, n_macro=1, n_micro=1)
    # adaptive is a value of the setting, not a policy: no pretence of one
    assert policies.schedules() == ("fixed", "adaptive")
    with pytest.raises(ValueError, match="adaptive is not a policy"):
        make_policy("adaptive", n_warm=1, n_macro=1, n_micro=1)
    # every registered name is listed, comma-separated
    monkeypatch.setitem(policies.POLICIES, "other", FixedSchedule)
    with pytest.raises(ValueError, match=r"allowed: fixed, other \("):
        make_policy("typo", n_warm=1, n_macro=1, n_micro=1)
