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
    import ledmus.evaluation_vo as ev
    from ledmus.evaluation import model_from_payload, read_checkpoint
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
def test_closure_ensemble_deviation_by_hand():
    from ledmus.surrogates import load_macro_model
    from ledmus.surrogates.closure.ml import MLMomentClosure

    model = load_macro_model(ROOT / "models" / "closure_bgk_hmm.pt")
    eps = 0.5
    model.bind_micro(solvers.make("bgk", kn=eps))
    bgk = model.bgk
    f0 = bgk.initial_condition("sod", 1, np.random.default_rng(0))
    model.reset()
    model.assimilate(model.restrict(f0[:, None]))
    out, dev = model.propagate(2)
    members = list(model.net.members)
    eps_ref = members[0].spec["eps_ref"]
    for j in range(2):
        Q = out[:, j].reshape(1, 3 + model.M, bgk.nx)
        terms = []  # per member: q (1 row), g (M rows), y (3 M rows) per cell
        for net in members:
            q, g, y = MLMomentClosure(net, eps).closure_terms(Q)
            terms.append(np.concatenate([q[0][None], g[0], y[0].reshape(-1, bgk.nx)]))
        terms = np.array(terms)  # (K, 1 + 4M, nx)
        mean = terms.sum(axis=0) / len(members)
        std = np.sqrt(((terms - mean) ** 2).sum(axis=0) / len(members))  # population std
        scale = eps / (1.0 + eps / eps_ref)  # s(eps) = eps / (1 + eps / eps_ref)
        # the code evaluates s(eps) in float32 (relative 3e-8 measured; 1e-6 allows it)
        assert dev[0, j] == pytest.approx(std.max() / scale, rel=1e-6)
        assert math.isfinite(dev[0, j]) and dev[0, j] > 1e-4  # the members disagree
