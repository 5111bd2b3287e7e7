"""ledmus.metrics on cases with known answers."""

import numpy as np
import pytest

from ledmus import metrics


def test_nad_and_mnad_of_a_constant_offset():
    x = np.linspace(0, 1, 50)
    ref = np.stack([np.sin(2 * np.pi * x) * (1 + 0.1 * k) for k in range(10)])  # (T, N)
    rng = ref.max() - ref.min()
    nad = metrics.nad(ref, ref + 0.05)
    np.testing.assert_allclose(nad, 0.05 / rng)  # eq 22: |diff| averaged / field range
    assert metrics.mnad(ref, ref + 0.05) == pytest.approx(0.05 / rng)
    # the range is that of the reference over all space and time, per leading index
    batch = np.stack([ref, 2 * ref])
    np.testing.assert_allclose(metrics.mnad(batch, batch + 0.1), [0.1 / rng, 0.1 / (2 * rng)])
    with pytest.raises(ValueError, match="must match"):
        metrics.nad(ref, ref[:-1])


def test_wasserstein_of_a_shift_and_of_marginals(rng):
    a = rng.standard_normal(20_000)
    assert metrics.wasserstein(a, a + 0.3) == pytest.approx(0.3, abs=1e-12)
    two = np.stack([a, 2 * a], axis=1)
    shifted = two + np.array([0.2, -0.4])
    assert metrics.wasserstein(two, shifted) == pytest.approx(0.3, abs=1e-12)  # mean of 0.2, 0.4
    # two independent samples of one law: W1 ~ n^(-1/2)
    assert metrics.wasserstein(a, rng.standard_normal(20_000)) < 0.03


def test_l1_histogram_identical_disjoint_and_rice_bins(rng):
    assert metrics.rice_bins(1000) == 20  # ceil(2 * 10)
    assert metrics.rice_bins(1001) == 21
    a = rng.uniform(0, 1, 1000)
    assert metrics.l1_histogram(a, a) == 0.0
    assert metrics.l1_histogram(a, a + 5.0) == pytest.approx(2.0)
    half = metrics.l1_histogram(a, np.concatenate([a[:500], a[:500] + 5.0]))
    assert half == pytest.approx(1.0)  # half the mass moved out of the shared support


def test_power_spectrum_of_a_single_mode():
    n = 64
    x = np.arange(n) / n
    u = np.stack([np.cos(2 * np.pi * 3 * x + phase) for phase in (0.0, 1.0, 2.0)])
    p = metrics.power_spectrum(u)
    assert p.argmax() == 3 and p[3] == pytest.approx(0.25)  # |N/2|^2 / N^2
    assert (
        metrics.power_spectrum_error(
            u + 1e-3 * np.cos(2 * np.pi * 5 * x), u + 1e-3 * np.cos(2 * np.pi * 5 * x)
        )
        == 0
    )


def test_valid_prediction_time_and_speedup():
    nad = np.array([[0.01, 0.05, 0.09, 0.2, 0.05], [0.0, 0.0, 0.0, 0.0, 0.0]])
    np.testing.assert_allclose(metrics.valid_prediction_time(nad, 0.25), [0.75, 1.25])
    np.testing.assert_allclose(
        metrics.valid_prediction_time(nad, 0.25, lyapunov_exponent=0.048), [0.036, 0.06]
    )
    assert metrics.speedup(120.0, 1.0) == 120.0
    with pytest.raises(ValueError):
        metrics.speedup(1.0, 0.0)
