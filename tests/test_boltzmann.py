"""Boltzmann solver (2-D velocity, Maxwell molecules, fast spectral method) against
independent references: the BKW exact solution, conservation, the H-theorem, free
streaming and the exact gamma = 2 Riemann solution in the Euler limit.

Measured values quoted in the comments are from this file's runs (CPU, float64)."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest

from ledmus import solvers, systems
from ledmus.solvers.boltzmann import Boltzmann, transition_eps

sys.path.insert(0, str(Path(__file__).parent))
from riemann_exact import riemann, star_state  # noqa: E402


def bkw(v: np.ndarray, t: float) -> np.ndarray:
    """BKW solution, 2-D Maxwell molecules with b = 1/(2 pi) (Krook & Wu; Bobylev; the
    normalisation of Pareschi & Russo 2000 and Mouhot & Pareschi 2006): rho = 1, T = 1,
    K(t) = 1 - exp(-t/8)/2, f = exp(-|v|^2/(2K))/(2 pi K^2) (2K - 1 + (1 - K)|v|^2/(2K))."""
    K = 1.0 - math.exp(-t / 8.0) / 2.0
    vx, vy = np.meshgrid(v, v, indexing="ij")
    r2 = vx**2 + vy**2
    return np.exp(-r2 / (2 * K)) / (2 * np.pi * K**2) * (2 * K - 1 + (1 - K) * r2 / (2 * K))


def bkw_error(N: int, t: float, **kw) -> float:
    """Relative L-inf error at ``t`` of RK4 (dt = 0.05) from the BKW state at t = 0."""
    s = Boltzmann(N=N, nx=4, **kw)
    f = s.relax(bkw(s.v, 0.0), t, 0.05)
    ref = bkw(s.v, t)
    return float(np.abs(f - ref).max() / ref.max())


@pytest.fixture(scope="module")
def s32() -> Boltzmann:
    return Boltzmann(N=32, nx=4)


# ------------------------------------------------------------------------------ BKW
@pytest.mark.parametrize("t", [1.0, 5.0])
def test_bkw_n32(t):
    # measured 3.8e-5 (t = 1) and 2.2e-6 (t = 5) at the defaults (N = 32, v_support = 4,
    # v_box = 8.83, 4 directions); RK4 at dt = 0.05 adds < 1e-8.  The bound is the issue's.
    assert bkw_error(32, t) <= 1e-4


def test_bkw_spectral_convergence():
    # measured at t = 1: N = 16: 3.5e-2, 24: 1.2e-3, 32: 3.8e-5, 48: 3.9e-9 (spectral);
    # each step must gain at least a factor 10
    errs = [bkw_error(n, 1.0) for n in (16, 24, 32, 48)]
    assert all(b < a / 10 for a, b in zip(errs, errs[1:], strict=False)), errs


@pytest.mark.parametrize("method", ["ars222", "imex1"])
def test_penalised_schemes_order(method):
    # the penalised IMEX steps without transport (relax(method=...)) at N = 48, where the
    # spectral error (4e-9) is below the time error.  Measured at t = 1, dt = 0.2/0.1/0.05:
    # ars222 2.3e-4, 5.7e-5, 1.4e-5 (ratios 4.0: second order); imex1 4.4e-2, 2.3e-2,
    # 1.2e-2 (ratios 1.9: first order)
    s = Boltzmann(N=48, nx=4)
    ref = bkw(s.v, 1.0)
    e = [
        np.abs(s.relax(bkw(s.v, 0.0), 1.0, dt, method=method) - ref).max() / ref.max()
        for dt in (0.1, 0.05)
    ]
    order = math.log2(e[0] / e[1])
    assert (1.8 < order < 2.3) if method == "ars222" else (0.8 < order < 1.3), e


# ---------------------------------------------------------------------- conservation
@pytest.mark.parametrize("method", ["rk4", "ars222", "imex1"])
def test_collision_step_conserves(s32, method):
    # conservative=True projects Q onto zero moments: measured |dU| <= 1.1e-15 per step.
    # Without it (below) mass is exact and energy drifts 1.6e-8 per step of 0.1 (the
    # spectral error of Mouhot & Pareschi's operator; Pareschi & Russo report 1e-6..1e-10).
    f = bkw(s32.v, 0.0)
    u0 = s32.velocity_moments(f)
    u1 = s32.velocity_moments(s32.relax(f, 0.1, 0.1, method=method))
    assert np.abs(u1 - u0).max() <= 1e-12 * np.abs(u0).max()
    raw = Boltzmann(N=32, nx=4, conservative=False)
    u2 = raw.velocity_moments(raw.relax(f, 0.1, 0.1))
    assert abs(u2[0] - u0[0]) <= 1e-13 and 1e-10 < abs(u2[3] - u0[3]) < 1e-6


def test_full_step_conserves_periodic_and_specular():
    # transport in flux form + projected collisions: measured relative drift of the domain
    # totals 5.5e-16 (periodic: all four) and 4.4e-16 (walls: mass, u_y, energy) over 18
    # steps
    for bc, rows in (("periodic", [0, 1, 2, 3]), ("specular", [0, 2, 3])):
        s = Boltzmann(N=16, nx=16, bc=bc, eps=0.05, dt_coarse=0.01)
        f0 = s.initial_condition("waves", 2, np.random.default_rng(1))
        tot0 = s.moments(f0).sum(-1)
        f1 = s.observe(s.advance(s.lift(f0), 0.0, 0.01))
        tot1 = s.moments(f1).sum(-1)
        assert np.abs(tot1 - tot0)[:, rows].max() <= 1e-12 * np.abs(tot0).max(), bc


# --------------------------------------------------------------- entropy, equilibria
def test_entropy_decreases(s32):
    # H = h^2 sum f log f from BKW at t = 0 over 50 RK4 steps of 0.1: measured largest
    # increment -2.1e-4 (strictly decreasing), H from -2.7253 to -2.8344; the 1e-12 slack
    # is rounding
    f, h = bkw(s32.v, 0.0), []
    for _ in range(30):
        h.append(s32.entropy(f))
        f = s32.relax(f, 0.1, 0.1)
    assert np.all(np.diff(h) <= 1e-12)


def test_maxwellian_is_stationary(s32):
    # Q(M) is not exactly 0: the truncated kernel (R = 2 S = 8) and the spectral error give
    # measured max|Q(M)|/max M = 1.0e-7 and a change of 6.9e-8 after one collision time;
    # bound 1e-6.  Its moments are exact (projection): error <= 1e-15.
    m = s32.velocity_maxwellian(1.3, 0.3, -0.2, 0.9)
    assert np.abs(s32.collision(m)).max() <= 1e-6 * m.max()
    assert np.abs(s32.relax(m, 1.0, 0.05) - m).max() <= 1e-6 * m.max()
    expect = [1.3, 1.3 * 0.3, -1.3 * 0.2, 1.3 * (0.5 * (0.09 + 0.04) + 0.9)]
    np.testing.assert_allclose(s32.velocity_moments(m), expect, rtol=1e-14, atol=1e-15)


def test_eps_scales_time_in_the_solver_step():
    # spatially uniform BKW state, eps = 0.1, periodic: the full IMEX step must give BKW at
    # t/eps.  Measured error 8.5e-5 (dt/eps = 0.14, 7 steps; spectral part 3.8e-5); bound
    # 2e-4.  With eps multiplying instead of dividing Q the state hardly moves and fails.
    s = Boltzmann(N=32, nx=4, bc="periodic", eps=0.1, dt_coarse=0.1)
    f0 = np.repeat(bkw(s.v, 0.0).reshape(-1, 1), 4, axis=1)[None]
    f = s.observe(s.advance(s.lift(f0), 0.0, 0.1))[0, :, 0].reshape(32, 32)
    ref = bkw(s.v, 1.0)
    assert np.abs(f - ref).max() <= 2e-4 * ref.max()


def test_eps_per_cell():
    # the transition profile: eps(0) = 1e-3, eps(L) = 10, eps(L/2) = 0.1 exactly.  A uniform
    # periodic state has zero transport, so in a one-stage (imex1) step every cell must
    # follow the space-homogeneous step with its own eps (measured difference <= 1e-17;
    # eps from 1e-3 to 9.99; ars222's second stage is no longer uniform in x)
    x = np.array([0.0, 0.5, 1.0])
    np.testing.assert_allclose(transition_eps(x, 1.0), [1e-3, 0.1, 10.0], rtol=1e-12)
    s = Boltzmann(N=16, nx=8, bc="periodic", eps="transition", dt_coarse=0.01, scheme="imex1")
    assert np.all(np.diff(s.eps_cells) > 0)
    f0 = np.repeat(bkw(s.v, 0.0).reshape(-1, 1), 8, axis=1)[None]
    f = s.observe(s.advance(s.lift(f0), 0.0, s.dt))[0]
    for i, e in enumerate(s.eps_cells):
        g = s.relax(bkw(s.v, 0.0), s.dt, s.dt, eps=e, method="imex1")
        np.testing.assert_allclose(f[:, i], g.ravel(), rtol=0, atol=1e-13)


# ------------------------------------------------------------------- free streaming
def test_free_streaming():
    # collisions=False against the exact f0(x - v_x t, v) on a periodic box (nx = 100,
    # t = 0.05, shifts up to 0.43 L): measured max error 3.7e-4 of max f (MUSCL-MC,
    # second order), bound 1e-3; eps = 1e12 (ARS(2,2,2) explicit stages instead of Heun) is
    # as close to the exact solution and 1.3e-6 of max f from the collisionless run
    s = Boltzmann(N=16, nx=100, bc="periodic", collisions=False, dt_coarse=0.05)
    vx, vy = np.meshgrid(s.v, s.v, indexing="ij")

    def exact(t):
        xs = s.x[None, None, :] - vx[..., None] * t
        rho = 1.0 + 0.5 * np.sin(2 * np.pi * xs)
        g = np.exp(-(vx**2 + vy**2) / 2)[..., None] / (2 * np.pi)
        return (rho * g).reshape(1, -1, s.nx)

    f = s.observe(s.advance(s.lift(exact(0.0)), 0.0, 0.05))
    assert np.abs(f - exact(0.05)).max() <= 1e-3 * f.max()
    rare = Boltzmann(N=16, nx=100, bc="periodic", eps=1e12, dt_coarse=0.05)
    f2 = rare.observe(rare.advance(rare.lift(exact(0.0)), 0.0, 0.05))
    assert np.abs(f2 - exact(0.05)).max() <= 1e-3 * f.max()
    assert np.abs(f2 - f).max() <= 1e-5 * f.max()


# ---------------------------------------------------------------------- Euler limit
@pytest.mark.slow
def test_sod_euler_limit():
    # eps = 1e-4, 200 cells, N = 24 (v_support 3.5, 2 directions: at this eps the collision
    # accuracy hardly matters), t = 0.2, gamma = 2 exact star state p* = 0.28598,
    # u* = 0.76006.  Measured medians over the star region: p* 0.28486 (-0.39 %),
    # u* 0.76356 (+0.46 %); N = 32: 0.28596, 0.76096.  Bound: the 1 %.  ~20 s.
    s = Boltzmann(eps=1e-4, nx=200, N=24, v_support=3.5, n_directions=2, dt_coarse=0.2)
    f0 = s.initial_condition("sod", 1, np.random.default_rng(0))
    f = s.observe(s.advance(s.lift(f0), 0.0, 0.2))
    rho, ux, uy, T = s.primitives(f)[0]
    left, right = (1.0, 0.0, 1.0), (0.125, 0.0, 0.1)
    ps, us = star_state(left, right, gamma=2.0)
    assert abs(ps - 0.28598) < 1e-5 and abs(us - 0.76006) < 1e-5
    exact = riemann(left, right, (s.x - 0.5) / 0.2, gamma=2.0)
    star = np.abs(exact[2] - ps) < 1e-9
    lo, hi = s.x[star].min(), s.x[star].max()
    core = star & (s.x > lo + 0.03) & (s.x < hi - 0.03)
    assert abs(np.median(rho[core] * T[core]) / ps - 1) < 0.01
    assert abs(np.median(ux[core]) / us - 1) < 0.01
    assert np.abs(uy).max() < 1e-12 and f.min() > -1e-3 * f.max()


# ------------------------------------------------------------------ API, registration
@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"N": 7}, "N"),
        ({"N": 31}, "N"),
        ({"N": "x"}, "N"),
        ({"eps": -1.0}, "eps"),
        ({"eps": "nope"}, "eps"),
        ({"eps": [1.0, 2.0]}, "eps"),
        ({"bc": "wall"}, "bc"),
        ({"limiter": "vanleer"}, "limiter"),
        ({"scheme": "rk2"}, "scheme"),
        ({"dtype": "float16"}, "dtype"),
        ({"v_box": 1.0}, "v_box"),
        ({"dt": 1.0}, "dt"),
        ({"n_directions": 0}, "n_directions"),
        ({"device": "tpu"}, "device"),
    ],
)
def test_parameter_errors_name_the_field(params, field):
    with pytest.raises(ValueError, match=rf"\b{field}\b"):
        Boltzmann(nx=8, **params)


def test_eps_from_npy(tmp_path):
    path = tmp_path / "eps.npy"
    np.save(path, np.linspace(0.01, 1.0, 8))
    s = Boltzmann(nx=8, N=8, eps=str(path))
    np.testing.assert_allclose(s.eps_cells, np.linspace(0.01, 1.0, 8))
    np.save(path, np.ones(5))
    with pytest.raises(ValueError, match="eps must hold nx=8"):
        Boltzmann(nx=8, N=8, eps=str(path))


def test_registered_and_rollout_float32():
    assert "boltzmann" in solvers.names() and "boltzmann" in systems.names()
    spec = systems.get("boltzmann")
    # N = 24: at N = 16 (h = 1.1) the riemann states undershoot to -2.4e-3 max f (N = 24:
    # -9e-5, N = 32: -1.4e-5), beyond the positivity monitor's 1e-3
    s = spec.make(nx=16, N=24, dtype="float32", dt_coarse=0.01)
    assert s.state_shape == (576, 16)
    rng = np.random.default_rng(0)
    t, states = s.rollout(s.initial_condition("riemann", 2, rng), 0.02, rng)
    assert states.shape == (2, 3, 576, 16) and states.dtype == np.float64
    for m in spec.monitors:
        assert m.check(states[:, -1]).all(), m.name
    ref = Boltzmann(nx=16, N=24, dt_coarse=0.01)
    _, states64 = ref.rollout(states[:, 0], 0.02)
    # float32 against float64: measured 8e-7 of max f (rel. L2 of rho 1.7e-7)
    assert np.abs(states - states64).max() <= 1e-5 * states64.max()
    prim = s.primitives(states[:, -1])
    assert prim.shape == (2, 4, 16) and np.all(prim[:, 3] > 0)
    err = spec.errors(states64, states, 0.01)
    assert err["rel_l2_rho"] < 1e-5


def test_reflection_symmetry():
    # x -> L - x with v_x -> -v_x commutes with the solver (outflow bc, constant eps):
    # measured 2.5e-15 relative (the grids and the scheme are mirror-symmetric)
    spec = systems.get("boltzmann")
    s = spec.make(nx=16, N=16, dt_coarse=0.01)
    f0 = s.initial_condition("shocks", 1, np.random.default_rng(3))
    flip = spec.symmetries[0].apply
    a = flip(s.observe(s.advance(s.lift(f0), 0.0, 0.01)))
    b = s.observe(s.advance(s.lift(flip(f0)), 0.0, 0.01))
    assert np.abs(a - b).max() <= 1e-12 * np.abs(a).max()
