"""ledmus.metrics on cases with known answers (hand-computed values, closed forms, scipy).

Tolerances: values built from a handful of float64 operations on exact inputs are
compared with ``rtol=1e-12`` (float64 rounding is ~1e-16 per operation, so 1e-12 leaves
room without hiding any real error, which would be O(1e-2) or more here).
"""

import numpy as np
import pytest
from scipy import stats

from ledmus import metrics

EXACT = 1e-12  # relative tolerance for a few float64 operations on exact inputs


# --- NAD / MNAD (seed 001 eqs 22-23) --------------------------------------------------


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


def test_nad_per_time_step_by_hand():
    # (B=2, T=3, N=4): distinct sizes, so a mean over the wrong axis changes the shape
    base = np.tile([0.0, 1.0, 2.0, 3.0], (3, 1))  # range 3
    ref = np.stack([base, 0.1 * base])  # ranges 3 and 0.3 (< 1: no clipping of the range)
    err = np.array(
        [[0.0] * 4, [0.3, 0.0, 0.0, 0.0], [0.3, 0.3, -0.3, 0.3]]
    )  # mean |.|: 0, .075, .3
    nad = metrics.nad(ref, ref + err)
    assert nad.shape == (2, 3)
    np.testing.assert_allclose(
        nad, [[0, 0.075 / 3, 0.3 / 3], [0, 0.075 / 0.3, 0.3 / 0.3]], rtol=EXACT
    )
    np.testing.assert_allclose(
        metrics.mnad(ref, ref + err), [0.375 / 3 / 3, 0.375 / 0.3 / 3], rtol=EXACT
    )


def test_nad_is_normalised_by_the_range_of_the_reference_not_the_prediction():
    ref = np.array([[0.0, 1.0, 2.0, 3.0]])  # range 3
    pred = 2 * ref  # range 6; |pred - ref| = [0, 1, 2, 3], mean 1.5
    np.testing.assert_allclose(metrics.nad(ref, pred), [1.5 / 3], rtol=EXACT)
    np.testing.assert_allclose(metrics.nad(pred, ref), [1.5 / 6], rtol=EXACT)  # not symmetric


def test_nad_of_a_constant_reference_is_the_mean_absolute_error():
    # zero range: no division by zero, the range is taken as 1
    ref = np.full((2, 3), 2.0)
    np.testing.assert_allclose(metrics.nad(ref, ref + [0.5, -0.5, 0.2]), [0.4, 0.4], rtol=EXACT)
    assert np.all(np.isfinite(metrics.mnad(ref, ref)))


def test_nad_converts_integer_fields_before_arithmetic():
    # an int8 range of 200 must not wrap around (int8 arithmetic gives 100 - (-100) = -56)
    ref = np.array([[-100, 100]], dtype=np.int8)
    pred = np.array([[100, 100]], dtype=np.int8)  # |diff| = [200, 0], mean 100
    np.testing.assert_allclose(metrics.nad(ref, pred), [0.5], rtol=EXACT)


def test_nad_shape_errors():
    with pytest.raises(ValueError, match="must match"):
        metrics.nad(np.zeros((3, 4)), np.zeros((4, 3)))
    with pytest.raises(ValueError, match=r"\(\.\.\., T, N_x\)"):
        metrics.nad(np.zeros(4), np.zeros(4))  # one axis only: no (T, N_x)


# --- Wasserstein-1 (eq 24) ------------------------------------------------------------


def test_wasserstein_of_a_shift_and_of_marginals(rng):
    a = rng.standard_normal(20_000)
    # a shift s moves the whole quantile function by s: W1 = |s| (float64 sums: 1e-12)
    assert metrics.wasserstein(a, a + 0.3) == pytest.approx(0.3, abs=1e-12)
    two = np.stack([a, 2 * a], axis=1)
    shifted = two + np.array([0.2, -0.4])
    assert metrics.wasserstein(two, shifted) == pytest.approx(0.3, abs=1e-12)  # mean of 0.2, 0.4
    # two independent samples of one law: W1 ~ n^(-1/2) ~ 0.007, so 0.03 is ~4 sigma
    assert metrics.wasserstein(a, rng.standard_normal(20_000)) < 0.03


def test_wasserstein_of_small_samples_by_hand():
    # equal sizes: W1 = mean |sorted a - sorted b|; [0, 1, 3] vs [1, 2, 6] -> (1 + 1 + 3) / 3
    a, b = np.array([3.0, 0.0, 1.0]), np.array([6.0, 1.0, 2.0])
    assert metrics.wasserstein(a, b) == pytest.approx(5 / 3, rel=EXACT)
    assert metrics.wasserstein(a, b) == pytest.approx(stats.wasserstein_distance(a, b), rel=EXACT)
    # (n, d) with n = 3 odd: second variable [0, 0, 0] vs [0, 0, 1] -> 1/3; mean (5/3 + 1/3) / 2
    two_a = np.stack([a, [0.0, 0.0, 0.0]], axis=1)
    two_b = np.stack([b, [0.0, 1.0, 0.0]], axis=1)
    assert metrics.wasserstein(two_a, two_b) == pytest.approx(1.0, rel=EXACT)


def test_wasserstein_leading_axes_are_observations(rng):
    # (runs, T, d): every leading index is one observation of the d variables; shifts of
    # both signs, so columns that mixed the variables would not be pure shifts
    x = rng.standard_normal((4, 5, 3))
    shift = np.array([0.5, -0.2, 0.2])
    assert metrics.wasserstein(x, x + shift) == pytest.approx(0.3, rel=EXACT)  # mean |shift|


def test_wasserstein_needs_the_same_variables():
    with pytest.raises(ValueError, match="samples have 2 and 3 variables"):
        metrics.wasserstein(np.zeros((5, 2)), np.zeros((5, 3)))


# --- L1 histogram distance, Rice-rule bins --------------------------------------------


def test_rice_bins():
    assert metrics.rice_bins(1000) == 20  # ceil(2 * 10)
    assert metrics.rice_bins(1001) == 21
    assert metrics.rice_bins(9) == 5  # ceil(2 * 2.08)
    # perfect cubes m^3 -> exactly 2 m (no float overshoot of the cube root)
    assert [metrics.rice_bins(m**3) for m in range(1, 40)] == [2 * m for m in range(1, 40)]


def test_l1_histogram_identical_disjoint_and_rice_bins(rng):
    a = rng.uniform(0, 1, 1000)
    assert metrics.l1_histogram(a, a) == 0.0
    assert metrics.l1_histogram(a, a + 5.0) == pytest.approx(2.0)
    half = metrics.l1_histogram(a, np.concatenate([a[:500], a[:500] + 5.0]))
    assert half == pytest.approx(1.0)  # half the mass moved out of the shared support


def test_l1_histogram_by_hand():
    # reference 0..7: n = 8 -> rice_bins = ceil(2 * 2) = 4 bins on [0, 7]:
    # edges 0, 1.75, 3.5, 5.25, 7, so p = [2, 2, 2, 2] / 8
    ref = np.arange(8.0)
    # four 0s and four 7s: q = [4, 0, 0, 4] / 8 -> |.25-.5| + .25 + .25 + |.25-.5| = 1
    assert metrics.l1_histogram(ref, np.repeat([0.0, 7.0], 4)) == pytest.approx(1.0, rel=EXACT)
    # four 1s (bin 0) and four 2s (bin 1): q = [4, 4, 0, 0] / 8 -> 1
    assert metrics.l1_histogram(ref, np.repeat([1.0, 2.0], 4)) == pytest.approx(1.0, rel=EXACT)
    # the bin count comes from the reference's n: 40 predicted 1s and 2s still see 4 bins
    # (with rice_bins(40) = 7 bins of width 1 the answer would be 1.5)
    assert metrics.l1_histogram(ref, np.repeat([1.0, 2.0], 20)) == pytest.approx(1.0, rel=EXACT)
    # the grid spans both samples: prediction 7..14 -> 4 bins of width 3.5 on [0, 14]:
    # p = [4, 3, 1, 0] / 8 (0-3 | 4-6 | 7), q = [0, 0, 4, 4] / 8 -> (4 + 3 + 3 + 4) / 8
    assert metrics.l1_histogram(ref, ref + 7.0) == pytest.approx(1.75, rel=EXACT)


def test_l1_histogram_of_equal_constant_samples_is_zero():
    # zero spread: the grid is widened to [c, c + 1] instead of collapsing
    c = np.full(10, 3.0)
    assert metrics.l1_histogram(c, c) == 0.0


def test_l1_histogram_is_in_0_2_and_averages_marginals(rng):
    for _ in range(5):
        a, b = rng.normal(0, 1, 200), rng.normal(rng.uniform(-3, 3), rng.uniform(0.2, 3), 300)
        assert 0.0 <= metrics.l1_histogram(a, b) <= 2.0
    a = rng.uniform(0, 1, 500)
    same_and_disjoint = (np.stack([a, a], axis=1), np.stack([a, a + 5.0], axis=1))
    assert metrics.l1_histogram(*same_and_disjoint) == pytest.approx(1.0, rel=EXACT)  # (0+2)/2
    with pytest.raises(ValueError, match="samples have 2 and 3 variables"):
        metrics.l1_histogram(np.zeros((5, 2)), np.zeros((5, 3)))
    with pytest.raises(ValueError, match="samples have 3 and 2 variables"):
        metrics.l1_histogram(np.zeros((5, 3)), np.zeros((5, 2)))


# --- power spectrum -------------------------------------------------------------------


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


def test_power_spectrum_of_one_field_satisfies_parseval(rng):
    # (N,) input; Parseval for rfft with P = |U_k|^2 / N^2 and N even:
    # mean(u^2) = P_0 + 2 sum_{0<k<N/2} P_k + P_{N/2}
    n = 48
    u = rng.standard_normal(n)
    p = metrics.power_spectrum(u)
    assert p.shape == (n // 2 + 1,)
    parseval = p[0] + 2 * p[1:-1].sum() + p[-1]
    assert parseval == pytest.approx(np.mean(u**2), rel=EXACT)


def test_power_spectrum_matches_the_direct_dft_in_float64(rng):
    # fields (2, 3, N) in float32 (as a surrogate outputs them): mean over the 6 fields of
    # |sum_j u_j exp(-2 pi i k j / N)|^2 / N^2, summed directly in float64
    n = 20
    u = rng.standard_normal((2, 3, n)).astype(np.float32)
    j, k = np.arange(n), np.arange(n // 2 + 1)
    dft = u.reshape(-1, n).astype(np.float64) @ np.exp(-2j * np.pi * np.outer(j, k) / n)
    direct = (np.abs(dft) ** 2 / n**2).mean(axis=0)
    # FFT and direct sum agree to ~1e-15 in float64; a float32 transform would be off
    # by ~1e-7 relative, so rtol 1e-10 tells the two apart
    np.testing.assert_allclose(metrics.power_spectrum(u), direct, rtol=1e-10)


def test_power_spectrum_error_in_decades(rng):
    u = rng.standard_normal((4, 32))
    # a field 10 times larger has 100 times the power at every wavenumber: 2 decades
    assert metrics.power_spectrum_error(u, 10 * u) == pytest.approx(2.0, rel=EXACT)
    assert metrics.power_spectrum_error(10 * u, u) == pytest.approx(2.0, rel=EXACT)
    # different spectra give a non-zero error: mode 3 vs mode 5 differ by ~30 decades at
    # both peaks (the other wavenumbers hold rounding noise only), so the mean is >> 1
    x = np.arange(32) / 32
    m3, m5 = np.cos(2 * np.pi * 3 * x)[None], np.cos(2 * np.pi * 5 * x)[None]
    assert metrics.power_spectrum_error(m3, m5) > 1.0
    # zero fields have zero power everywhere: equal spectra, error 0 (not nan)
    zeros = np.zeros((2, 16))
    assert metrics.power_spectrum_error(zeros, zeros) == 0.0
    # zero power against non-zero power stays finite
    assert np.isfinite(metrics.power_spectrum_error(zeros, rng.standard_normal((2, 16))))


# --- valid prediction time, speed-up --------------------------------------------------


def test_valid_prediction_time_and_speedup():
    nad = np.array([[0.01, 0.05, 0.09, 0.2, 0.05], [0.0, 0.0, 0.0, 0.0, 0.0]])
    np.testing.assert_allclose(metrics.valid_prediction_time(nad, 0.25), [0.75, 1.25])
    np.testing.assert_allclose(
        metrics.valid_prediction_time(nad, 0.25, lyapunov_exponent=0.048), [0.036, 0.06]
    )
    assert metrics.speedup(120.0, 1.0) == 120.0
    with pytest.raises(ValueError):
        metrics.speedup(1.0, 0.0)


def test_valid_prediction_time_of_one_series_and_strict_threshold():
    # (T,) input: first exceedance at index 2 -> 2 dt
    assert metrics.valid_prediction_time(np.array([0.0, 0.05, 0.2, 0.3]), 0.5) == 1.0
    # "exceeds" is strict: values equal to the threshold (exact in binary) are still valid
    nad = np.array([0.25, 0.25, 0.5, 0.0])
    assert metrics.valid_prediction_time(nad, 0.5, threshold=0.25) == 1.0
    # in Lyapunov times: t * lambda_1 (t = 1.0, lambda_1 = 0.5)
    assert metrics.valid_prediction_time(nad, 0.5, 0.25, lyapunov_exponent=0.5) == 0.5


def test_valid_prediction_time_is_per_series():
    # each row on its own: row 1 exceeds at index 0 although row 0 exceeds later
    nad = np.array([[0.0, 0.0, 0.2, 0.0], [0.2, 0.0, 0.0, 0.0]])
    np.testing.assert_array_equal(metrics.valid_prediction_time(nad, 1.0), [2.0, 0.0])
    # (2, 3, T=4): first exceedance per (i, j), T when never
    batch = np.zeros((2, 3, 4))
    batch[0, 1, 3] = batch[1, 2, 1] = batch[1, 2, 2] = 1.0
    np.testing.assert_array_equal(
        metrics.valid_prediction_time(batch, 1.0), [[4.0, 3.0, 4.0], [4.0, 4.0, 1.0]]
    )


def test_speedup_is_micro_time_over_ledmus_time():
    assert metrics.speedup(120.0, 4.0) == 30.0  # T_micro / T_ledmus
    assert metrics.speedup(1.0, 4.0) == 0.25  # slower than micro: S < 1, not inverted
    for bad in (0.0, -1.0):
        with pytest.raises(ValueError, match=r"^t_ledmus must be > 0$"):
            metrics.speedup(1.0, bad)


# ----------------------------------------------------------------------- phase_shape
def phase_shape_by_hand(ref, pred, dt=1.0, window=10, index=None):
    """The docstring of :func:`metrics.phase_shape` step by step, in plain Python loops:
    for each predicted state, every reference segment ``[k, k + 1]`` with
    ``i - window <= k < i + window`` inside the reference, the best point on it, and the
    segment whose point is nearest (the first one on a tie)."""
    r = [np.ravel(x).astype(np.float64) for x in ref]
    p = [np.ravel(x).astype(np.float64) for x in pred]
    index = range(len(p)) if index is None else index
    span = max(x.max() for x in r) - min(x.min() for x in r)
    span = span if span > 0 else 1.0
    lags, shapes = [], []
    for pj, i in zip(p, index, strict=True):
        if len(r) == 1:
            lags.append(0.0)
            shapes.append(float(np.mean(np.abs(pj - r[0]))) / span)
            continue
        best = None
        for k in range(i - window, i + window):
            if k < 0 or k + 1 > len(r) - 1:
                continue
            d, e = r[k + 1] - r[k], pj - r[k]
            dd = float(d @ d)
            a = min(max(float(e @ d) / (dd if dd > 0 else 1.0), 0.0), 1.0)
            resid = e - a * d
            dist = float(resid @ resid)
            if best is None or dist < best[0]:
                best = (dist, k, a, resid)
        _, k, a, resid = best
        lags.append((k + a - i) * dt)
        shapes.append(float(np.mean(np.abs(resid))) / span)
    return np.array(lags), np.array(shapes)


@pytest.mark.parametrize(
    ("n_ref", "field", "window", "dt", "index"),
    [
        (30, (2, 5), 3, 0.5, [0, 1, 14, 27, 29]),  # both ends of the reference
        (30, (7,), 1, 2.0, None),  # the default index 0..T-1, the smallest window
        (12, (2, 7000), 4, 1.0, [3, 0, 11, 6, 6]),  # chunks of one step (M = 14000)
        (30, (2, 5), 3, 0.5, np.array([2.0, 9.0, 28.0])),  # integral float indices
    ],
)
@pytest.mark.parametrize("scale", [1.0, 0.05])  # a reference range above and below 1
def test_phase_shape_equals_the_search_by_hand(n_ref, field, window, dt, index, scale):
    rng = np.random.default_rng(n_ref + window)
    ref = (rng.normal(size=(n_ref, *field)) + 3.0) * scale
    n = len(index) if index is not None else 20
    pred = (rng.normal(size=(n, *field)) * 0.5 + 3.0) * scale
    lag, shape = metrics.phase_shape(ref, pred, dt=dt, window=window, index=index)
    if index is not None:
        index = [int(i) for i in index]
    want_lag, want_shape = phase_shape_by_hand(ref, pred, dt, window, index)
    assert lag.shape == shape.shape == (n,)
    # the same sums in another order (einsum against dot): a few ulp
    np.testing.assert_allclose(lag, want_lag, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(shape, want_shape, rtol=1e-12)
    assert np.any(lag != 0) and np.all(np.abs(lag) <= window * dt)


def test_phase_shape_computes_in_float64_whatever_the_input_dtype():
    rng = np.random.default_rng(5)
    ref, pred = rng.normal(size=(20, 30)), rng.normal(size=(6, 30))
    ref32, pred32 = ref.astype(np.float32), pred.astype(np.float32)
    want = phase_shape_by_hand(ref32.astype(np.float64), pred32.astype(np.float64), 1.0, 3)
    got = metrics.phase_shape(ref32, pred32, window=3)
    # float64 sums in another order: a few ulp; float32 arithmetic would be ~1e-7 off
    np.testing.assert_allclose(got[0], want[0], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(got[1], want[1], rtol=1e-12)


def test_phase_shape_default_window_is_ten_steps():
    """A forecast 10.5 steps ahead of a reference moving at constant speed: the default
    window (10 steps) reaches 10 steps at most."""
    ref = np.arange(40.0)[:, None] * np.array([[1.0, -2.0, 0.5]])  # r_k = k v
    pred = (12 + 10.5) * np.array([[1.0, -2.0, 0.5]])
    lag, _ = metrics.phase_shape(ref, pred, index=[12])
    assert lag.tolist() == [10.0]
    lag, _ = metrics.phase_shape(ref, pred, window=11, index=[12])
    assert lag.tolist() == [10.5]


def test_phase_shape_does_not_extrapolate_beyond_the_reference():
    """The nearest point on a segment lies on it (0 <= a <= 1): before the first and
    after the last reference state the lag stops at the ends."""
    v = np.array([[1.0, -2.0, 0.5]])
    ref = np.arange(10.0)[:, None] * v
    lag, shape = metrics.phase_shape(ref, np.vstack([-0.5 * v, 9.5 * v]), window=3, index=[0, 9])
    assert lag.tolist() == [0.0, 0.0]
    # half a step of v from the end state; the span is 9 - (-18) = 27
    np.testing.assert_allclose(shape, 0.5 * np.abs(v).mean() / 27.0, rtol=1e-14)


def test_phase_shape_of_no_steps_is_empty():
    lag, shape = metrics.phase_shape(np.zeros((5, 4)), np.zeros((0, 4)), index=[])
    assert lag.shape == shape.shape == (0,)


def test_phase_shape_of_a_single_state_or_a_constant_reference():
    lag, shape = metrics.phase_shape(np.array([[0.0, 2.0, 4.0]]), np.array([[1.0, 1.0, 1.0]]))
    assert lag.tolist() == [0.0] and shape.tolist() == [(1.0 + 1.0 + 3.0) / 3 / 4.0]  # span 4
    pred = np.array([[1.0, 2.0, 4.0]])
    lag, shape = metrics.phase_shape(np.array([[1.0, 1.0, 1.0]]), pred)  # one reference state
    assert lag.tolist() == [0.0] and shape.tolist() == [4.0 / 3.0]  # span 0 counts as 1
    ref = np.array([[0.0, 1.0, 3.0], [2.0, 1.0, 3.0]])  # span 3
    lag, shape = metrics.phase_shape(ref, np.array([[1.0, 1.0, 3.0]]), window=1)
    assert lag.tolist() == [0.5] and shape.tolist() == [0.0]  # halfway along the segment
    flat = np.ones((4, 3))  # every segment has zero length: a = 0, first segment
    lag, shape = metrics.phase_shape(flat, pred, window=2, index=[2])
    assert lag.tolist() == [-2.0] and shape.tolist() == pytest.approx([(0 + 1 + 3) / 3])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"index": [0, 5]}, r"index must hold one reference index in \[0, 5\) per step"),
        ({"index": [-1, 0]}, r"index must hold one reference index in \[0, 5\) per step"),
        ({"index": [0]}, r"index must hold one reference index in \[0, 5\) per step"),
        ({"window": 0}, r"^window must be an integer >= 1, got 0$"),
    ],
)
def test_phase_shape_refuses_bad_indices_and_windows(kwargs, message):
    with pytest.raises(ValueError, match=message):
        metrics.phase_shape(np.zeros((5, 4)), np.zeros((2, 4)), **kwargs)


def test_phase_shape_refuses_a_reference_without_a_field_axis():
    message = (
        r"^reference \(5,\) and prediction \(2, 4\) must be \(T, \*field\) with the same "
        r"field shape$"
    )
    with pytest.raises(ValueError, match=message):
        metrics.phase_shape(np.zeros(5), np.zeros((2, 4)))
