"""The lifting tally a run reports (``metrics.json`` ``lifting``): one report as the
``lift_stats`` vector a micro window sends, and the sums, maxima and mean over a run's
windows, all by hand (issue 23: every reported diagnostic recomputed independently)."""

from __future__ import annotations

import numpy as np
import pytest

from ledmus.coupler.messages import LIFT_STATS, LiftTally, lift_stats
from ledmus.solvers.lifting import LiftReport


def test_a_report_is_one_lift_in_the_order_of_lift_stats():
    done = LiftReport("constrained_runs", 7, 8, 2.5e-11, True, 0.25)
    capped = LiftReport("constrained_runs", 200, 200, 3e-4, False, 1.5)
    assert LIFT_STATS == ("lifts", "iterations", "steps", "residual", "not_converged", "seconds")
    np.testing.assert_array_equal(lift_stats(done), [1.0, 7.0, 8.0, 2.5e-11, 0.0, 0.25])
    np.testing.assert_array_equal(lift_stats(capped), [1.0, 200.0, 200.0, 3e-4, 1.0, 1.5])


def test_the_tally_sums_counts_and_keeps_maxima_over_windows():
    tally = LiftTally()
    assert tally.summary() == {
        "lifts": 0,
        "iterations_mean": 0.0,
        "iterations_max": 0,
        "micro_steps": 0,
        "residual_max": 0.0,
        "not_converged": 0,
        "seconds": 0.0,
    }
    # three windows: 2 lifts (3 + 5 iterations), none, 1 lift that hit its cap
    tally.add(np.array([2.0, 8.0, 10.0, 1e-9, 0.0, 0.5]))
    tally.add(None)  # a window without a lift
    tally.add([1, 200, 201, 4, 1, 2])  # plain integers, as a snapshot may hold them
    summary = tally.summary()
    assert summary == {
        "lifts": 3,
        "iterations_mean": 208 / 3,
        "iterations_max": 200,
        "micro_steps": 211,
        "residual_max": 4.0,
        "not_converged": 1,
        "seconds": 2.5,
    }
    assert isinstance(summary["residual_max"], float) and isinstance(summary["lifts"], int)
    tally.add(np.array([1.0, 3.0, 3.0, 1e-3, 0.0, 0.25]))  # a smaller iteration count
    assert tally.summary()["iterations_max"] == 200 and tally.summary()["residual_max"] == 4.0
    # capped lifts add up over windows (a window that converged does not reset the count)
    tally.add(np.array([1.0, 200.0, 200.0, 5.0, 1.0, 0.1]))
    assert tally.summary()["not_converged"] == 2


def test_a_stats_vector_of_another_length_is_refused():
    with pytest.raises(ValueError):
        LiftTally().add(np.zeros(len(LIFT_STATS) - 1))


def test_a_tally_round_trips_through_its_snapshot():
    tally = LiftTally()
    tally.add(np.array([2.0, 8.0, 10.0, 1e-9, 1.0, 0.5]))
    again = LiftTally.from_dict(vars(tally))
    assert vars(again) == vars(tally)
    with pytest.raises(ValueError, match="lifting snapshot: unknown field 'typo'"):
        LiftTally.from_dict({"typo": 1})
