"""Brownian particles: mean-square displacement, drift, walls, exact relaxation."""

import numpy as np
import pytest
from scipy import stats

from ledmus.solvers import make


def test_free_diffusion_msd_is_D_t_per_axis(rng):
    n = 20_000
    solver = make("ad3d", n_particles=n, amplitude=0.0, boundary="free")
    t, states = solver.rollout(np.zeros((n, 3)), 1.0, rng)
    msd = (states[0] ** 2).mean(axis=1)  # (T, 3)
    # sample MSD of n Gaussians has relative standard error sqrt(2/n) = 1 %; allow 4.5 SE
    expected = np.broadcast_to(solver.diffusion * t[1:, None], msd[1:].shape)
    np.testing.assert_allclose(msd[1:], expected, rtol=4.5 * np.sqrt(2 / n))
    # and the wrong convention dx = sqrt(2D) dW would give twice this: far outside


def test_free_drift_mean_follows_A_sin(rng):
    n = 20_000
    solver = make("ad3d", n_particles=n, boundary="free")
    t, states = solver.rollout(np.zeros((n, 3)), 3.0, rng)
    mean = states[0].mean(axis=1)  # (T, 3)
    a, w = solver.amplitude, solver.frequency
    expected = a * np.sin(w * t[:, None]) / w
    # standard error of the mean sqrt(D t / n) <= 0.0055; Euler's O(dt |A|) bias is 1e-3
    se = np.sqrt(solver.diffusion * t[:, None] / n)
    assert np.all(np.abs(mean - expected) <= 4.5 * se + 1e-3)


def test_walls_keep_every_particle_inside(rng):
    # strong drift pushes the cloud against the walls for most of the run
    solver = make("ad3d", amplitude=[40.0, -30.0, 20.0], frequency=[0.2, 1.0, 0.5])
    x = solver.lift(solver.initial_condition("random", 2, rng))
    hits = 0
    for j in range(40):
        x = solver.advance(x, j * 0.05, 0.05, rng)
        assert np.all(np.abs(x) <= solver.box / 2)
        hits += np.sum(np.abs(x) > 0.49)
    assert hits > 0  # the walls were actually reached


def test_reflected_cosine_mode_relaxes_exactly(rng):
    """cos(pi (x + 1/2)) is the slowest Neumann eigenfunction of (D/2) d2/dx2 on [-1/2, 1/2];
    its particle average decays exactly as exp(-D pi^2 t / 2) (Euler + mirror is the exact
    reflected-Brownian transition, so this holds at any dt)."""
    n = 40_000
    solver = make("ad1d", n_particles=n, amplitude=0.0, dt=4e-3)
    x0 = -0.3
    t, states = solver.rollout(np.full((n, 1), x0), 3.0, rng)
    mode = np.cos(np.pi * (states[0, :, :, 0] + 0.5)).mean(axis=1)
    expected = np.cos(np.pi * (x0 + 0.5)) * np.exp(-solver.diffusion * np.pi**2 * t / 2)
    # standard error of a mean of cosines <= sqrt(1/(2n)) = 0.0035; allow 4.5 SE
    np.testing.assert_allclose(mode, expected, atol=4.5 * np.sqrt(1 / (2 * n)))


def test_long_time_density_is_uniform(rng):
    n = 40_000
    solver = make("ad1d", n_particles=n, amplitude=0.0, dt=4e-3)
    _, states = solver.rollout(np.full((n, 1), 0.45), 8.0, rng)
    # slowest mode has decayed by exp(-D pi^2 8/2) = 4e-4: invisible at this n
    result = stats.kstest(states[0, -1, :, 0], stats.uniform(loc=-0.5, scale=1.0).cdf)
    assert result.pvalue > 1e-4  # a false alarm once in 10^4 seeds; the seed is fixed anyway
    early = stats.kstest(states[0, 2, :, 0], stats.uniform(loc=-0.5, scale=1.0).cdf)
    assert early.pvalue < 1e-10  # the test sees non-uniformity when it is there


def test_reproducible_and_batched(rng):
    solver = make("ad3d", n_particles=50)
    ic = solver.initial_condition("random", 3, np.random.default_rng(1))
    a = solver.rollout(ic, 1.0, np.random.default_rng(7))[1]
    b = solver.rollout(ic, 1.0, np.random.default_rng(7))[1]
    np.testing.assert_array_equal(a, b)
    assert a.shape == (3, 3, 50, 3)
    with pytest.raises(ValueError, match="rng"):
        solver.rollout(ic, 1.0, None)


@pytest.mark.parametrize(
    ("params", "field"),
    [({"diffusion": -0.2}, "diffusion"), ({"amplitude": [1, 2]}, "amplitude"),
     ({"dt": 0.1}, "dt"), ({"boundary": "periodic"}, "boundary"), ({"n_particles": 0}, "n_particles")],
)  # fmt: skip
def test_invalid_parameters_name_the_field(params, field):
    with pytest.raises(ValueError, match=field):
        make("ad3d", **params)


def test_state_outside_box_is_refused():
    solver = make("ad1d", n_particles=3)
    with pytest.raises(ValueError, match="outside the box"):
        solver.lift(np.array([[0.1], [0.7], [0.0]]))
