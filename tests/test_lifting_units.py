"""The lifting strategies' bookkeeping on a stub solver with a closed-form fixed point
(issue 23 item 4): the per-channel reductions, the stopping rule at the tolerance, the
time the micro steps run at, what is dispatched to the solver, the validation of the
strategy and its settings.  The physics (contraction factor |1 - omega|, Chapman-Enskog
agreement, Newton-Krylov = functional iteration) is in tests/test_lifting.py.

The stub's micro step maps the unobserved part ``w`` of a state with observed part
``rho`` to ``w' = w / 2 + rho + t``: the constrained-runs iteration from ``w_0 = 0``
reaches ``w* = 2 (rho + t)`` and its k-th change is ``(rho + t) / 2**(k-1)``, exact in
binary floating point, so the stopping iteration is known exactly."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from ledmus.solvers import lifting
from ledmus.solvers.lifting import Lifting, petsc_available

B, C, N = 2, 3, 5  # members, channels, nodes: all different, so a wrong axis shows


class StubSolver:
    system = "stub"
    liftings = ("equilibrium", "chapman_enskog", "constrained_runs")
    stochastic = False

    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def check_observable(self, obs):
        return np.asarray(obs, dtype=np.float64)

    def _lift(self, obs, rng):
        self.calls.append(("lift", rng))
        return np.concatenate([obs, np.zeros_like(obs)], axis=1)

    def _lift_chapman_enskog(self, obs):
        self.calls.append(("chapman_enskog",))
        return np.concatenate([obs, np.ones_like(obs)], axis=1)

    def _unobserved(self, internal):
        return internal[:, C:]

    def _with_unobserved(self, obs, w):
        return np.concatenate([obs, w], axis=1)

    def _step(self, internal, t, rng):
        rho, w = internal[:, :C], internal[:, C:]
        return np.concatenate([rho, w / 2 + rho + t], axis=1)


def observable(scale: float = 1.0) -> np.ndarray:
    """``(B, C, N)``: member b, channel c, node n holds ``scale * 2**c * (1 + n + N b)``
    (channel c's largest entry is ``scale * 2**c * B N``)."""
    base = 1.0 + np.arange(B * N, dtype=np.float64).reshape(B, 1, N)
    return scale * base * 2.0 ** np.arange(C).reshape(1, C, 1)


def test_channel_reductions_by_hand():
    d = np.random.default_rng(0).normal(size=(B, C, N, 2))
    for c in range(C):
        flat = [d[b, c, n, k] for b in range(B) for n in range(N) for k in range(2)]
        assert lifting._channel_max(d)[c] == max(abs(x) for x in flat)
        rms = (sum(x * x for x in flat) / len(flat)) ** 0.5
        assert lifting._channel_rms(d)[c] == pytest.approx(rms, rel=1e-14)  # summation order
    assert lifting._channel_max(d).shape == lifting._channel_rms(d).shape == (C,)


@pytest.mark.parametrize("t", [0.0, 3.0])
def test_constrained_runs_reach_the_fixed_point_at_the_given_time(t):
    solver = StubSolver()
    obs = observable()
    internal, report = Lifting("constrained_runs", tol=1e-12, max_iter=100).lift(solver, obs, t=t)
    np.testing.assert_allclose(internal[:, :C], obs, rtol=0, atol=0)
    np.testing.assert_allclose(internal[:, C:], 2 * (obs + t), rtol=1e-12)
    assert report.strategy == "constrained_runs" and report.converged
    assert report.steps == report.iterations == len(report.history)
    k = report.iterations  # its change: max(rho + t) / 2**(k-1) <= 1e-12
    top = obs.max() + t
    assert top / 2 ** (k - 1) <= 1e-12 < top / 2 ** (k - 2)
    for j, row in enumerate(report.history):  # per channel, the RMS of the j-th change
        np.testing.assert_allclose(row, lifting._channel_rms((obs + t) / 2**j), rtol=1e-12)


def test_constrained_runs_stop_when_the_change_equals_the_tolerance():
    """Changes are ``max(rho) / 2**(k-1)`` with ``max(rho) = 4 * B * N = 40``: a tolerance
    of exactly 40 / 2**5 stops after the sixth iteration, converged."""
    obs = observable()
    top = obs.max()
    assert top == 4 * B * N
    _, report = Lifting("constrained_runs", tol=top / 2**5, max_iter=50).lift(StubSolver(), obs)
    assert report.iterations == 6 and report.converged and report.residual == top / 2**5
    _, capped = Lifting("constrained_runs", tol=top / 2**5, max_iter=5).lift(StubSolver(), obs)
    assert capped.iterations == 5 and not capped.converged and capped.residual == top / 2**4


def test_the_analytic_strategies_dispatch_to_the_solver_and_report_themselves():
    solver, obs, rng = StubSolver(), observable(), np.random.default_rng(1)
    internal, report = Lifting("equilibrium").lift(solver, obs, rng)
    assert solver.calls == [("lift", rng)] and report.strategy == "equilibrium"
    assert (report.iterations, report.steps, report.residual, report.converged) == (0, 0, 0.0, True)
    assert 0.0 <= report.seconds < 1.0  # a concatenate: microseconds
    np.testing.assert_array_equal(internal[:, C:], 0.0)
    internal, report = Lifting("chapman_enskog").lift(solver, obs)
    assert solver.calls[-1] == ("chapman_enskog",) and report.strategy == "chapman_enskog"
    np.testing.assert_array_equal(internal[:, C:], 1.0)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"tol": "1e-9"}, "lifting_tol must be a number > 0, got '1e-9'"),
        ({"tol": True}, "lifting_tol must be a number > 0, got True"),
        ({"tol": 0.0}, "lifting_tol must be a number > 0, got 0.0"),
        ({"tol": float("inf")}, "lifting_tol must be a number > 0, got inf"),
        ({"max_iter": 0}, "lifting_max_iter must be an integer >= 1, got 0"),
        ({"max_iter": 2.0}, "lifting_max_iter must be an integer >= 1, got 2.0"),
        ({"max_iter": True}, "lifting_max_iter must be an integer >= 1, got True"),
        ({"strategy": "newton"}, "lifting='newton' unknown; allowed: equilibrium, chapman_enskog"),
    ],
)
def test_bad_settings_name_the_field_and_what_is_allowed(kwargs, message):
    with pytest.raises(ValueError) as err:
        Lifting(**{"strategy": "constrained_runs", **kwargs})
    assert message in str(err.value)


def test_the_smallest_settings_are_accepted():
    Lifting("constrained_runs", tol=1, max_iter=1)  # an integer tolerance, one iteration
    _, report = Lifting("constrained_runs", tol=1e-3, max_iter=1).lift(StubSolver(), observable())
    assert report.iterations == 1


def test_check_refuses_what_the_solver_cannot_do_and_names_the_allowed():
    class Plain:  # declares no liftings: only the equilibrium one
        system = "plain"

    assert Lifting("equilibrium").check(Plain()) is not None
    with pytest.raises(ValueError) as err:
        Lifting("chapman_enskog").check(Plain())
    assert str(err.value) == (
        "lifting='chapman_enskog' is not available for the 'plain' solver; allowed: equilibrium"
    )
    with pytest.raises(ValueError) as err:
        Lifting("newton_krylov").check(StubSolver())
    assert "allowed: equilibrium, chapman_enskog, constrained_runs" in str(err.value)
    noisy = StubSolver()
    noisy.stochastic = True
    assert Lifting("equilibrium").check(noisy) is not None  # analytic: fine when stochastic
    with pytest.raises(ValueError) as err:
        Lifting("constrained_runs").check(noisy)
    assert str(err.value) == (
        "lifting='constrained_runs' needs a deterministic solver; 'stub' is stochastic"
    )


def test_without_petsc4py_newton_krylov_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "petsc4py", None)  # import fails
    why = petsc_available()
    assert why.startswith("petsc4py is not installed (")
    # the recipe in the message is the one the install guide gives, command by command
    recipe = why.split("says: ", 1)[1].split(" && ")
    guide = (Path(__file__).resolve().parents[1] / "docs" / "getting_started.md").read_text()
    assert len(recipe) == 3 and all(f"\n{command}\n" in guide for command in recipe), recipe
    solver = StubSolver()
    solver.liftings = (*solver.liftings, "newton_krylov")
    with pytest.raises(ValueError, match="^lifting=newton_krylov: petsc4py is not installed"):
        Lifting("newton_krylov").check(solver)


def test_an_iterative_lifting_takes_a_solver_that_declares_no_stochasticity():
    class Quiet:  # says nothing about being stochastic: deterministic
        system = "quiet"
        liftings = ("equilibrium", "constrained_runs")

    assert Lifting("constrained_runs").check(Quiet()) is not None


# ---------------------------------------------------------------- newton_krylov (PETSc)
class NonlinearStub(StubSolver):
    """``w' = tanh(w) / 2 + rho + t``: a contraction with a nonlinear fixed point, so
    Newton needs a few iterations; counts its micro steps."""

    liftings = (*StubSolver.liftings, "newton_krylov")

    def __init__(self) -> None:
        super().__init__()
        self.steps = 0

    def _step(self, internal, t, rng):
        self.steps += 1
        rho, w = internal[:, :C], internal[:, C:]
        return np.concatenate([rho, np.tanh(w) / 2 + rho + t], axis=1)


def fixed_point_residual(obs, internal, t):
    w = internal[:, C:]
    return np.tanh(w) / 2 + obs + t - w


needs_petsc = pytest.mark.skipif(petsc_available() is not None, reason=str(petsc_available()))


@needs_petsc
def test_newton_krylov_report_counts_its_steps_and_norms():
    solver, obs, t = NonlinearStub(), observable(0.1), 3.0
    internal, report = Lifting("newton_krylov", tol=1e-10, max_iter=50).lift(solver, obs, t=t)
    F = fixed_point_residual(obs, internal, t)
    assert report.strategy == "newton_krylov" and report.converged
    assert report.residual == np.abs(F).max() <= 1e-10  # the returned state's, recomputed
    assert report.steps == solver.steps  # every micro step, the final check included
    assert 2 <= report.iterations <= 6  # Newton from w = 0: measured 5
    assert report.history.shape == (report.iterations + 1, C)  # its 0..n, one norm for all
    w0_norm = np.linalg.norm(obs + t)  # F(0) = rho + t
    np.testing.assert_allclose(report.history[0], w0_norm, rtol=1e-12)
    assert report.history[-1, 0] <= 1e-10 < report.history[-2, 0]
    # the cost of a lift with these Krylov settings (GMRES, relative 1e-3, no
    # preconditioner): measured micro steps and GMRES products on this PETSc
    assert report.steps == NEWTON_STEPS


#: micro steps of the lift above (each Newton iteration: one F, plus one finite-difference
#: product per GMRES iteration; one final check); measured 17 with PETSc 3.26.1
NEWTON_STEPS = 17


@needs_petsc
def test_newton_krylov_stops_at_max_iter_and_at_a_tolerance_equal_to_its_norm():
    obs, t = observable(0.1), 3.0
    _, capped = Lifting("newton_krylov", tol=1e-14, max_iter=1).lift(NonlinearStub(), obs, t=t)
    assert capped.iterations == 1 and not capped.converged and capped.residual > 1e-6
    _, first = Lifting("newton_krylov", tol=1e-6, max_iter=50).lift(NonlinearStub(), obs, t=t)
    assert first.iterations <= 3 and first.converged  # stops at atol, does not go on
    # the same iterations, a tolerance equal to the residual they reach (SNES's 2-norm is
    # above it, so the cap stops it): converged means residual <= tol
    again = Lifting("newton_krylov", tol=first.residual, max_iter=first.iterations)
    _, report = again.lift(NonlinearStub(), obs, t=t)
    assert report.residual == first.residual and report.converged
