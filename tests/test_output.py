"""Errors of a coupled run: the on-the-fly grid MNAD (accumulated spatial mean absolute
errors) against hand-computed values, and its agreement with the system's suite."""

from __future__ import annotations

import numpy as np

from ledmus import systems
from ledmus.coupler.output import grid_errors
from ledmus.coupler.recorder import Recorder


def test_grid_mnad_is_normalised_by_the_reference_range_per_member_and_channel():
    t = np.linspace(0.0, 1.0, 6)
    ref = np.zeros((2, 6, 2, 3))
    # ranges over the compared indices 1..5 (t = 0.2 … 1), not the warm-up index 0
    ref[0, :, 0] = 4.0 * t[:, None]  # member 0, u: range 3.2
    ref[0, :, 1] = 0.5 * t[:, None]  # member 0, v: range 0.4
    ref[1, :, 0] = 2.0 * t[:, None]  # member 1, u: range 1.6
    ref[1, :, 1] = 1.0  # member 1, v: constant (range 0 -> divide by 1)
    pred = ref + np.array([0.2, 0.1])[None, None, :, None]  # |error| 0.2 on u, 0.1 on v
    pred[:, :, 0, 0] += 10.0  # huge error on one node: the prediction's range grows a lot
    rec = Recorder(2, 6, (2, 3), 1, grid_reference=ref)
    rec.add(0, pred, np.zeros((2, 6, 1)), "micro")
    g = grid_errors(ref, rec.abs_err, start=1)
    err_u = 0.2 + 10.0 / 3  # spatial mean over 3 nodes
    expected_u = (err_u / 3.2 + err_u / 1.6) / 2
    expected_v = (0.1 / 0.4 + 0.1 / 1.0) / 2
    np.testing.assert_allclose(g["mnad"], [expected_u, expected_v], rtol=1e-12)  # float64 sums
    assert g["nad_t"].shape == (2, 5, 2)
    # the same numbers as the FHN suite computed from the kept states
    suite = systems.get("fhn").errors(ref[:, 1:], pred[:, 1:], 1.0)
    np.testing.assert_allclose([suite["mnad_u"], suite["mnad_v"]], g["mnad"], rtol=1e-12)
