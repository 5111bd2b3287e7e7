"""Lifting strategies (ledmus.solvers.lifting) on the FHN lattice Boltzmann solver.

Analytic tier: the constrained-runs iteration converges with factor |1 - omega| per
species (Van Leemput, Vanroose and Roose 2008), its fixed point's non-equilibrium part is
the first-order Chapman-Enskog one up to O(dx^2), a stationary LB state is a fixed point
of it; equivalence tier: Newton-Krylov (PETSc) reaches the functional iteration's state.
"""

from __future__ import annotations

import numpy as np
import pytest

from ledmus import solvers, systems
from ledmus.metrics import nad
from ledmus.solvers.lifting import Lifting, petsc_available


def smooth_fields(solver) -> np.ndarray:
    """A smooth (u, v), ``(1, 2, N)``, zero-flux at both walls."""
    k = np.pi * solver.x / solver.length
    return np.stack([0.6 * np.cos(k) + 0.2 * np.cos(3 * k), 0.1 + 0.05 * np.cos(2 * k)])[None]


def diffusive(n_nodes: int, **params) -> solvers.Solver:
    """The FHN solver on ``n_nodes`` with dt ~ dx^2 (the paper's omega at every dx)."""
    dx = 20.0 / (n_nodes - 1)
    dt = 0.005 * (dx / 0.2) ** 2
    return solvers.make("fhn", n_nodes=n_nodes, dt=dt, dt_coarse=dt, **params)


@pytest.mark.parametrize("params", [{}, {"d_u": 0.25, "d_v": 0.5}])
def test_functional_iteration_contracts_with_factor_one_minus_omega(params):
    solver = solvers.make("fhn", **params)
    _, report = Lifting("constrained_runs", tol=1e-13, max_iter=500).lift(
        solver, smooth_fields(solver)
    )
    assert report.converged
    expected = np.abs(1.0 - solver.omega)  # paper: 0.4545 (u), 0.2 (v)
    for c in range(2):
        h = report.history[:, c]
        h = h[: np.argmax(np.append(h, 0.0) < 1e-11)]  # above round-off (v gets there early)
        factor = np.exp(np.mean(np.log(h[1:] / h[:-1])))
        # measured (geometric mean over the iterations): u 0.4499 / 0.4545 and v 0.1987 /
        # 0.2 (paper values), u 0.8262 / 0.8286 and v 0.6764 / 0.6842; the ratio of single
        # steps wanders by about 2 % around |1 - omega| (the mirror walls duplicate a
        # population, so streaming is not norm-preserving), hence 1.5 %
        assert factor == pytest.approx(expected[c], rel=0.015), (c, factor, expected[c])


def test_non_equilibrium_part_is_first_order_chapman_enskog_to_second_order_in_dx():
    diffs, fluxes, neqs = [], [], []
    for n in (21, 41, 81):
        solver = diffusive(n)
        obs = smooth_fields(solver)
        cr, _ = Lifting("constrained_runs", tol=1e-14, max_iter=500).lift(solver, obs)
        w_cr = solver._unobserved(cr)
        w_ce = solver._unobserved(solver._lift_chapman_enskog(obs))
        diffs.append(np.abs(w_cr - w_ce).max())
        fluxes.append(np.abs(w_cr - w_ce)[:, :, 0].max())  # the flux j alone
        neqs.append(np.abs(w_cr).max())
    order = np.log2(np.array(diffs[:-1]) / diffs[1:])
    # measured orders 1.88, 1.97 (psi, the second-order part CE leaves at 0) and 3.0 for
    # the flux; the non-equilibrium part itself is O(dx) (order 1.07, 1.02).  A wrong
    # 1/omega in the CE flux would leave an O(dx) difference (order 1).
    assert np.all(order > 1.8), order
    assert np.all(np.log2(np.array(fluxes[:-1]) / fluxes[1:]) > 2.8)
    assert np.all(np.abs(np.log2(np.array(neqs[:-1]) / neqs[1:]) - 1.0) < 0.15)


def test_a_stationary_lb_state_is_returned_within_the_tolerance():
    # eps = 0, v = 0 and a kink odd about the centre: the LB run keeps the symmetry, so the
    # kink cannot drift and the populations become stationary (|S f - f| ~ 1e-16 after 50)
    solver = solvers.make("fhn", eps=0.0)
    u = np.tanh((solver.x - 0.5 * solver.length) / np.sqrt(2.0))
    f = solver.advance(solver.lift(np.stack([u, 0 * u])[None]), 0.0, 50.0)
    assert np.abs(solver._step(f, 0.0, None) - f).max() < 1e-14
    rho = solver.observe(f)
    tol = 1e-8
    lifted, report = Lifting("constrained_runs", tol=tol).lift(solver, rho)
    # the error after the last step is at most tol * q / (1 - q), q = 0.45: 0.83 tol
    # (measured 1.5e-9); the equilibrium lift misses the populations by 0.032
    assert np.abs(lifted - f).max() <= tol
    assert np.abs(solver.lift(rho) - f).max() > 0.03
    assert report.converged and report.residual <= tol


def test_a_relaxed_lb_state_is_close_to_its_constrained_runs_lift():
    solver = solvers.make("fhn")
    f = solver.advance(solver.lift(solver.initial_condition("y05", 1, None)), 0.0, 100.0)
    rho = solver.observe(f)
    err = {
        name: np.abs(solver.lift(rho, lifting=name) - f).max()
        for name in ("equilibrium", "chapman_enskog", "constrained_runs")
    }
    # measured at t = 200 (y05): 3.1e-2, 4.3e-4, 1.1e-5 -- CR is O(dx^2 * (psi part)) off
    assert err["constrained_runs"] < 3e-5 < err["chapman_enskog"] < 1e-3 < err["equilibrium"]


def relift_drift(lifting: str, every: int = 10, horizon: int = 100) -> float:
    """NAD u after ``horizon`` coarse steps of an LB run re-lifted from its own (u, v)
    every ``every`` steps, against the same run without re-lifting."""
    solver = solvers.make("fhn")
    f = solver.advance(solver.lift(solver.initial_condition("y05", 1, None)), 0.0, 100.0)
    ref, g = [solver.observe(f)], f
    for k in range(horizon):
        g = solver.advance(g, 100.0 + k, 1.0)
        ref.append(solver.observe(g))
    out, g = [solver.observe(f)], f
    for k in range(horizon):
        if k % every == 0:
            g = solver.lift(solver.observe(g), lifting=lifting, t=100.0 + k)
        g = solver.advance(g, 100.0 + k, 1.0)
        out.append(solver.observe(g))
    return float(nad(np.stack(ref, 1)[:, :, 0], np.stack(out, 1)[:, :, 0])[0, -1])


def test_relifting_on_the_slow_manifold_does_not_shift_the_pulse():
    eq = relift_drift("equilibrium")
    cr = relift_drift("constrained_runs")
    ce = relift_drift("chapman_enskog")
    # benchmark (t = 200 start): 1.7e-4 (equilibrium), 2.0e-6 (CE), 4.4e-7 (CR); the
    # issue's target is 10x smaller than equilibrium
    assert eq > 1e-4
    assert ce < eq / 10 and cr < eq / 50, (eq, ce, cr)


@pytest.mark.skipif(petsc_available() is not None, reason=str(petsc_available()))
@pytest.mark.parametrize("params", [{}, {"d_u": 0.05}])
def test_newton_krylov_reaches_the_functional_iteration_state(params):
    solver = solvers.make("fhn", **params)
    obs = smooth_fields(solver)
    tol = 1e-10
    fi, r_fi = Lifting("constrained_runs", tol=tol, max_iter=2000).lift(solver, obs)
    nk, r_nk = Lifting("newton_krylov", tol=tol).lift(solver, obs)
    assert r_fi.converged and r_nk.converged
    # both within tol * q/(1-q) of the fixed point; q = 0.96 for d_u = 0.05 (omega_u 1.96)
    assert np.abs(nk - fi).max() < 30 * tol
    if params:  # omega near 2: the functional iteration crawls, Newton-Krylov does not
        assert r_nk.steps < r_fi.steps / 2, (r_nk.steps, r_fi.steps)


def test_lifting_errors_name_the_field_and_the_allowed_values(monkeypatch):
    with pytest.raises(ValueError, match="lifting='bogus' unknown; allowed: equilibrium, "):
        Lifting("bogus")
    with pytest.raises(ValueError, match="lifting_tol must be a number > 0"):
        Lifting("constrained_runs", tol=0.0)
    with pytest.raises(ValueError, match="lifting_max_iter must be an integer >= 1"):
        Lifting("constrained_runs", max_iter=0)
    with pytest.raises(ValueError, match="not available for the 'ks' solver; allowed: equilib"):
        solvers.make("ks").lift(np.zeros((1, 1, 64)), lifting="constrained_runs")
    monkeypatch.setattr("ledmus.solvers.lifting.petsc_available", lambda: "petsc4py missing")
    with pytest.raises(ValueError, match="lifting=newton_krylov: petsc4py missing"):
        Lifting("newton_krylov").check(solvers.make("fhn"))


def test_an_iteration_cap_is_reported_not_hidden():
    solver = solvers.make("fhn")
    lifted, report = Lifting("constrained_runs", max_iter=3).lift(solver, smooth_fields(solver))
    assert not report.converged and report.iterations == 3 and report.residual > 1e-10
    assert np.allclose(solver.observe(lifted), smooth_fields(solver), atol=1e-15)


def test_every_system_declares_a_lifting_its_solver_implements():
    for name in systems.names():
        spec = systems.get(name)
        assert spec.lifting in spec.liftings
    assert systems.get("fhn").liftings == (
        "equilibrium", "chapman_enskog", "constrained_runs", "newton_krylov",
    )  # fmt: skip
    with pytest.raises(ValueError, match="lifting='constrained_runs' is not implemented"):
        systems.SystemSpec("x", solvers.KuramotoSivashinsky, "grid", lifting="constrained_runs")
