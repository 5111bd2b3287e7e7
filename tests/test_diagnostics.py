"""Every diagnostic a run reports, recomputed independently (issue 23): the VO
evaluation's coverage95 from the samples, on the predicted steps only; the lifting's
residual as ``max |g(w) - w|`` on the state it returns (and ``converged`` against the
tolerance); the closure ensemble's deviation from the members' closure terms by hand."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from ledmus import solvers, systems
from ledmus.coupler.messages import LiftTally, lift_stats
from ledmus.solvers.lifting import Lifting

ROOT = Path(__file__).resolve().parents[1]


# ---------------------------------------------------------------- coverage95
def test_coverage95_counts_the_predicted_steps_only(tmp_path, monkeypatch):
    import ledmus.surrogates.vo_evaluation as ev
    from ledmus.surrogates.checkpoint import model_from_payload, read_checkpoint
    from ledmus.trajectory import write_trajectory

    path = ROOT / "models" / "vo_rw.pt"
    payload = read_checkpoint(path)
    model = model_from_payload(payload, path)
    t_infer, n_total, d = int(model.spec["t_infer"]), 16, 25  # 10 inferred, 6 predicted
    rng = np.random.default_rng(0)
    truth = rng.dirichlet(np.full(d, 50.0), size=n_total)  # densities (n_total, d)
    solver = systems.get("rw").make(n_particles=2000)
    data = write_trajectory(
        tmp_path / "test.h5", truth[None, :, None], 4.0 * np.arange(n_total), solver, 0
    )
    # samples around the truth; on the predicted steps every third bin's band misses it
    samples = truth + 0.002 * rng.standard_normal((400, n_total, d))
    samples[:, t_infer + 1 :, ::3] += 0.05
    monkeypatch.setattr(
        ev,
        "predict",
        lambda *a, **k: {"x": samples, "fine": samples, "q_mean": truth[: t_infer + 1]},
    )
    result = ev.evaluate_vo(model, payload, path, data, plots=False, samples=400)
    # by hand: per predicted step and bin, is the truth within the 2.5 / 97.5 % quantiles
    inside = []
    for k in range(t_infer + 1, n_total):
        for j in range(d):
            s = np.sort(samples[:, k, j])
            lo, hi = np.quantile(s, 0.025), np.quantile(s, 0.975)
            inside.append(lo <= truth[k, j] <= hi)
    coverage = sum(inside) / len(inside)
    # measured 0.64 (the bands of 9 of 25 bins miss the truth); over all 16 steps it
    # would be 0.865 and on the inferred ones 1.0: the gaps tell them apart
    assert result["coverage95"] == pytest.approx(coverage, abs=1e-12)
    assert 0.55 < coverage < 0.75
    assert result["coverage95_inferred"] > coverage + 0.2


# ---------------------------------------------------------------- lifting residual
def residual_of(solver, obs: np.ndarray, internal: np.ndarray) -> float:
    """``max |U(S(C(obs, w))) - w|`` with ``w = U(internal)``: one micro step from the
    returned state, its observed moments reset, against the returned unobserved part."""
    w = solver._unobserved(internal)
    again = solver._step(solver._with_unobserved(obs, w), 0.0, None)
    return float(np.abs(solver._unobserved(again) - w).max())


@pytest.mark.parametrize("tol, max_iter", [(1e-8, 200), (1e-8, 3)])
def test_lifting_residual_and_convergence_recomputed_on_the_returned_state(tol, max_iter):
    solver = solvers.make("fhn")
    k = np.pi * solver.x / solver.length
    obs = np.stack([0.6 * np.cos(k) + 0.2 * np.cos(3 * k), 0.1 + 0.05 * np.cos(2 * k)])[None]
    internal, report = Lifting("constrained_runs", tol=tol, max_iter=max_iter).lift(solver, obs)
    res = residual_of(solver, obs, internal)
    np.testing.assert_allclose(solver.observe(internal), obs, rtol=0, atol=1e-15)
    # the report gives the last iteration's max change; the returned state's residual is
    # one contraction by |1 - omega_u| = 0.4545 smaller (u is the slower species; v's is
    # 0.2): measured ratio 0.435 (converged) and 0.451 (after 3 iterations), so [0.40, 0.47]
    # (a report of another norm, e.g. the RMS, moves the ratio out of it)
    assert 0.40 * report.residual < res < 0.47 * report.residual
    assert report.converged == (res <= tol) == (max_iter == 200)
    # the run's tally (what metrics.json reports) keeps the worst lift
    tally = LiftTally()
    tally.add(lift_stats(report))
    summary = tally.summary()
    assert summary["residual_max"] >= res
    assert summary["not_converged"] == (0 if res <= tol else 1)


# ---------------------------------------------------------------- closure deviation
def closure_model(eps: float = 0.5):
    from ledmus.surrogates import load_macro_model

    model = load_macro_model(ROOT / "models" / "closure_bgk_hmm.pt")
    model.bind_micro(solvers.make("bgk", kn=eps))
    return model


@pytest.mark.parametrize("eps_ref", [None, 0.37])  # as shipped (0.1), and another value
def test_closure_ensemble_deviation_by_hand(eps_ref):
    from ledmus.surrogates.closure.ml import MLMomentClosure

    eps = 0.5
    model = closure_model(eps)
    members = list(model.net.members)
    if eps_ref is not None:  # every member of an ensemble shares its spec
        for net in members:
            net.spec["eps_ref"] = eps_ref
    eps_ref = members[0].spec["eps_ref"]
    bgk, rng = model.bgk, np.random.default_rng(0)
    f0 = np.concatenate([bgk.initial_condition(ic, 1, rng) for ic in ("sod", "waves")])
    model.reset()
    model.assimilate(model.restrict(f0[:, None]))
    out, dev = model.propagate(2)
    assert dev.shape == (2, 2)
    for j in range(2):
        for b in range(2):
            Q = out[b : b + 1, j].reshape(1, 3 + model.M, bgk.nx)
            terms = []  # per member: q (1 row), g (M rows), y (3 M rows) per cell
            for net in members:
                q, g, y = MLMomentClosure(net, eps).closure_terms(Q)
                terms.append(np.concatenate([q[0][None], g[0], y[0].reshape(-1, bgk.nx)]))
            terms = np.array(terms)  # (K, 1 + 4M, nx)
            mean = terms.sum(axis=0) / len(members)
            std = np.sqrt(((terms - mean) ** 2).sum(axis=0) / len(members))  # population std
            scale = eps / (1.0 + eps / eps_ref)  # s(eps) = eps / (1 + eps / eps_ref)
            # the code evaluates s(eps) in float32 (relative 3e-8 measured; 1e-6 allows it)
            assert dev[b, j] == pytest.approx(std.max() / scale, rel=1e-6)
            # the members disagree: measured 5.1e-5 (waves) to 2e-3 (sod)
            assert math.isfinite(dev[b, j]) and dev[b, j] > 1e-5
    assert dev[0, 0] != pytest.approx(dev[1, 0], rel=1e-3)  # a deviation per state
    from ledmus.surrogates.closure.learn import deviation

    Q = out[:, 0].reshape(2, 3 + model.M, bgk.nx)
    np.testing.assert_array_equal(deviation(members[:1], Q, eps), [0.0, 0.0])  # one member


class BreakingFV:
    """A stand-in finite-volume solver: ``Q + dt``, but a batch holding a state whose
    first entry lies in ``(-dt, 0)`` raises (a breakdown), as does such a state alone."""

    def __init__(self, dt: float) -> None:
        self.dt, self.calls = dt, []

    def advance(self, Q, dt):
        assert dt == self.dt
        self.calls.append(len(Q))
        if ((Q[:, 0, 0] < 0) & (Q[:, 0, 0] > -dt)).any():
            raise FloatingPointError("breakdown")
        return Q + dt


def test_a_closure_member_that_breaks_down_keeps_its_state_with_infinite_deviation(monkeypatch):
    """Three members; the middle one breaks down at the second step: it keeps the state it
    had, its deviation is inf from there on, the others march on with theirs."""
    import ledmus.surrogates.closure.learn as learn

    model = closure_model()
    dt = model.bgk.dt_coarse
    model._fv = fv = BreakingFV(dt)
    monkeypatch.setattr(learn, "deviation", lambda nets, Q, eps: Q[:, 0, 0] * 1.0)
    shape = (3 + model.M, model.nx)
    Q = np.stack([np.full(shape, v) for v in (1.0, 2.0, 3.0)])
    Q[1, 0, 0] = -1.5 * dt  # -0.5 dt after one step: the second breaks down
    model.restore({"Q": Q.copy(), "assimilated": True})  # a state to march from
    out, dev = model.propagate(3)
    assert out.shape == (3, 3, model.macro_dim) and dev.shape == (3, 3)
    expect = Q.reshape(3, -1)[:, None] + dt * np.arange(1, 4)[None, :, None]
    for b in (0, 2):
        np.testing.assert_allclose(out[b], expect[b], rtol=1e-15, atol=1e-15)
        np.testing.assert_allclose(dev[b], expect[b][:, 0], rtol=1e-15)
    # member 1: the first step (-1.5 dt -> -0.5 dt) went through; then it broke down
    np.testing.assert_allclose(out[1, 0], expect[1, 0], rtol=1e-15)
    np.testing.assert_allclose(out[1, 1], expect[1, 0], rtol=1e-15)
    np.testing.assert_allclose(out[1, 2], expect[1, 0], rtol=1e-15)
    assert dev[1, 0] == pytest.approx(-0.5 * dt) and np.isinf(dev[1, 1:]).all()
    # batch of 3; then 3, 1, 1, 1 (the batch failed, each member alone); then the 2 alive
    assert fv.calls == [3, 3, 1, 1, 1, 2]


def test_reverting_one_closure_member_restores_it_alone(monkeypatch):
    import ledmus.surrogates.closure.learn as learn

    model = closure_model()
    model._fv = BreakingFV(model.bgk.dt_coarse)
    monkeypatch.setattr(learn, "deviation", lambda nets, Q, eps: Q[:, 0, 0] * 1.0)
    Q = np.stack([np.full((3 + model.M, model.nx), v) for v in (1.0, 2.0, 3.0)])
    model.restore({"Q": Q.copy(), "assimilated": True})
    snap = model.snapshot()
    model.propagate(2)
    moved = model.Q.copy()
    model.revert_members(snap, np.array([1]))
    np.testing.assert_array_equal(model.Q[1], Q[1])
    np.testing.assert_array_equal(model.Q[[0, 2]], moved[[0, 2]])
    assert not np.array_equal(moved[[0, 2]], Q[[0, 2]])
    model.revert_members(snap, np.array([0, 2]))
    np.testing.assert_array_equal(model.Q, Q)
