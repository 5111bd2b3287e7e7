"""The ML moment closure of the 2-D-velocity Boltzmann gas (ledmus/surrogates/closure/
boltzmann_ml.py): the moment equations against the kinetic solver, Galilean and scale
invariance of the moments, the IMEX relaxation, the Navier–Stokes coefficients against
the analytic eigenvalues of the 2-D Maxwell kernel, training and the dataset."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from ledmus import solvers
from ledmus.surrogates.closure import FVSolver, conserved, primitive
from ledmus.surrogates.closure.boltzmann_ml import (
    BoltzmannMLClosure,
    BoltzmannMomentNet,
    check_spec,
)
from ledmus.surrogates.closure.classical import NavierStokes2V, relaxation_rates
from ledmus.surrogates.closure.train_boltzmann import cell_data


def _net(seed: int = 1, **spec) -> BoltzmannMomentNet:
    torch.manual_seed(seed)
    net = BoltzmannMomentNet({"n_moments": 3, **spec}).double()
    with torch.no_grad():  # a collision model that is not the identity
        net.rate_raw.normal_()
        net.eig.normal_(std=0.2)
        net.quad.normal_(std=0.3)
    return net.eval()


def _encode(net, d):
    t = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in d.items()}
    with torch.no_grad():
        return [a.numpy() for a in net.encode(t["x"], t["y"], t["gdv"], t["qdv"])]


class ExactTerms(BoltzmannMLClosure):
    """The closure with the terms measured on ``f`` (σ̃, q̃, g̃, y) in place of the
    network: what the moment equations give with an exact closure."""

    def __init__(self, net, eps, terms, nx):
        super().__init__(net, eps, nx=nx, bc="periodic")
        self.terms = terms

    def closure_terms(self, Q):
        return self.terms


@pytest.fixture(scope="module")
def kinetic_state():
    """A periodic Boltzmann run (ε = 0.1, 128 cells, N = 24) at t = 0.02, one step and two
    steps later: the time derivative of ρW by a second-order one-sided difference."""
    eps = 0.1
    s = solvers.make("boltzmann", eps=eps, nx=128, N=24, bc="periodic", dt_coarse=0.002)
    f0 = s.initial_condition("waves", 1, np.random.default_rng(3))
    f = s.rollout(f0, 0.02)[1][:, -1]
    steps = [f]
    for _ in range(2):
        steps.append(s.to_observable(s._imex(s.to_internal(steps[-1]), s.dt, s._eps_t, True)))
    return s, eps, steps


def _moment_residuals(s, eps, steps, closure_cls=ExactTerms):
    """Relative L2 residual of the ρW equation with the exact terms, and the same with
    each of its four parts left out (dict)."""
    net = _net()
    datas = [cell_data(s, f, eps) for f in steps]
    enc = [_encode(net, d) for d in datas]
    rho = [s.primitives(f)[0][0] for f in steps]
    rhoW = [e[0] * r[:, None] for e, r in zip(enc, rho, strict=True)]
    dWdt = (-3 * rhoW[0] + 4 * rhoW[1] - rhoW[2]) / (2 * s.dt)
    d, (W, g, y, sh) = datas[0], enc[0]
    r, u, _, T = s.primitives(steps[0])[0]
    nx = r.size
    terms = (d["sigma"][None], d["q"][None], g.T[None], np.moveaxis(y, 0, -1)[None])
    cl = closure_cls(net, eps, terms, nx)
    Q = conserved(r[None], u[None], T[None], (W * r[:, None]).T[None], gamma=2.0)
    F = cl.closure_flux(Q)[:, 3:]
    flux = -(np.roll(F, -1, -1) - np.roll(F, 1, -1)) * nx / 2.0
    parts = {
        "flux": flux[0].T,
        "source": cl.source(Q)[0].T,  # forcing, frame change and C(W, W) (net's C)
        "collision": (r**2 / eps)[:, None] * sh,  # the exact (1/ε)∫wQ(f)dv
    }
    quad = np.einsum("kij,ni,nj->nk", cl.C, W, W) * (r**2 / eps)[:, None]
    parts["source"] = parts["source"] - quad  # the exact collision term replaces -ΛW + C
    rhs = sum(parts.values())
    norm = np.linalg.norm(dWdt)
    res = {"all": np.linalg.norm(rhs - dWdt) / norm}
    for k, v in parts.items():
        res[k] = np.linalg.norm(rhs - v - dWdt) / norm
    return res


def test_moment_equation_matches_the_kinetic_solver(kinetic_state):
    # The ρW equation of the module docstring with exact closure terms reproduces d(ρW)/dt
    # of the kinetic solver: measured 0.0136 relative L2 at 128 cells (0.038 at 64, 0.0072
    # at 256, N = 24: about first order in dx, the MUSCL limiter of the kinetic transport
    # at extrema), against 0.098 (collision), 0.355 (flux) and 1.03 (source) with a part
    # left out; bounds 0.02 and 0.04.
    res = _moment_residuals(*kinetic_state)
    assert res["all"] < 0.02, res
    for part in ("flux", "source", "collision"):
        assert res[part] > 0.04, (part, res)


def test_moment_equation_catches_a_dropped_stress_forcing(kinetic_state, monkeypatch):
    # the stress-mode forcing -ρB∂xu (absent in 1V) dropped from the source: the equation
    # no longer closes (measured residual 0.38 at ε = 0.1)
    orig = BoltzmannMLClosure.__init__

    def no_b(self, *a, **k):
        orig(self, *a, **k)
        self.B = np.zeros_like(self.B)

    monkeypatch.setattr(BoltzmannMLClosure, "__init__", no_b)
    assert _moment_residuals(*kinetic_state)["all"] > 0.1


def test_relaxation_rates_match_the_2d_maxwell_kernel():
    # Maxwell molecules in 2-D, b = 1/(2π): λ = -∫ b [cos²θ - 1] dθ = 1/2 for the stress mode
    # and -∫ b [cos⁴ + sin⁴ - 1](θ/2) dθ = ∫ b sin²θ/2 dθ = 1/4 for the heat flux (units of
    # ν = ρ/ε); the solver's truncated spectral kernel gives 0.49991 and 0.25011 at N = 48
    # (bound: 1e-3, the kernel truncation)
    lam_s, lam_q = relaxation_rates(solvers.make("boltzmann", N=48, nx=4))
    assert lam_s == pytest.approx(0.5, abs=1e-3)
    assert lam_q == pytest.approx(0.25, abs=1e-3)


def _shape(vx, vy):
    """A non-Maxwellian velocity shape (two Gaussians, unit density), even in v_y."""
    a = np.exp(-((vx - 0.8) ** 2 + vy**2) / (2 * 0.6)) / (2 * math.pi * 0.6)
    b = np.exp(-((vx + 0.5) ** 2 + vy**2) / (2 * 1.1)) / (2 * math.pi * 1.1)
    return 0.4 * a + 0.6 * b


def _cells(s, ux, T, rho=1.3):
    """``f(v) = (ρ/T) φ((v - (ux, 0))/√T)`` on the solver's grid, one cell each ``(1, N², n)``."""
    vx, vy = np.meshgrid(s.v, s.v, indexing="ij")
    cols = [
        (rho / t) * _shape((vx - a) / math.sqrt(t), vy / math.sqrt(t))
        for a, t in zip(ux, T, strict=True)
    ]
    return np.stack([c.ravel() for c in cols], -1)[None]


def test_moments_are_galilean_and_scale_invariant():
    # the same shape moved by whole grid steps (exact on the grid): W equal to rounding
    # (moves of a few h only: the box truncates the Maxwellian's tail, e^{-23} at 3h, which
    # the projection of M[f] spreads over the grid: 1.6e-8 relative after 5h);
    # at another temperature (a resampled shape): equal to the quadrature error of the
    # grid (measured 1.0e-6 relative at N = 48, 3.7e-4 at N = 32).  With ξ = v - u (no
    # √T) the scaled W differ by O(1).
    s = solvers.make("boltzmann", N=32, nx=4)
    net = _net(n_moments=4)
    h = s.h
    W = _encode(net, cell_data(s, _cells(s, [0.0, h, 2 * h, -h], [1.0] * 4), 0.1))[0]
    assert np.abs(W[1:] - W[0]).max() <= 1e-10 * np.abs(W[0]).max()
    s48 = solvers.make("boltzmann", N=48, nx=4)
    f = _cells(s48, [0.0, 0.3, 0.3, 0.3], [1.0, 1.6, 1.6, 1.6])
    W2 = _encode(net, cell_data(s48, f, 0.1))[0]
    assert np.abs(W2[1] - W2[0]).max() <= 1e-5 * np.abs(W2[0]).max()


def test_closure_terms_are_galilean_invariant():
    # a boosted cell state (u + U0, same ρ, T, ρW) has the same learned terms and the
    # Galilean-transformed fluxes: mass flux + ρU0, the W flux + U0 ρW
    net = _net(n_moments=3)
    cl = BoltzmannMLClosure(net, 0.05)
    rng = np.random.default_rng(0)
    rho, u, T = rng.uniform(0.5, 2, (1, 6)), rng.uniform(-1, 1, (1, 6)), rng.uniform(0.5, 2, (1, 6))
    W = rng.normal(scale=0.05, size=(1, 3, 6)) * rho[:, None]
    Q, Qb = (conserved(rho, u + du, T, W, gamma=2.0) for du in (0.0, 0.7))
    for a, b in zip(cl.closure_terms(Q), cl.closure_terms(Qb), strict=True):
        np.testing.assert_allclose(b, a, rtol=1e-10, atol=1e-14)
    F, Fb = cl.flux(Q), cl.flux(Qb)
    np.testing.assert_allclose(Fb[:, 0], F[:, 0] + 0.7 * rho, rtol=1e-12)
    np.testing.assert_allclose(Fb[:, 3:], F[:, 3:] + 0.7 * W, rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("kn", [1e-3, 10.0])
def test_implicit_relaxation_solves_its_equation(kn):
    # F = R + a S(F), S = -(ρ/ε) Λ ρW: the solve of implicit() checked by substitution;
    # ε used as 1/ε (or Λ transposed) breaks it by O(1)
    net = _net(n_moments=4)
    cl = BoltzmannMLClosure(net, kn)
    rng = np.random.default_rng(1)
    rho = rng.uniform(0.5, 2, (2, 5))
    R = conserved(
        rho, rng.normal(size=(2, 5)), rng.uniform(0.5, 2, (2, 5)), rng.normal(size=(2, 4, 5)), 2.0
    )
    a = 3e-3
    F = cl.implicit(R, a)
    with torch.no_grad():
        lam = net.relaxation().numpy()
    S = -(rho / kn)[:, None] * np.einsum("kj,bjm->bkm", lam, F[:, 3:])
    np.testing.assert_allclose(F[:, 3:], R[:, 3:] + a * S, rtol=1e-10, atol=1e-12)
    np.testing.assert_array_equal(F[:, :3], R[:, :3])


def test_stiff_relaxation_does_not_limit_the_step():
    # the implicit part leaves dt to the transport: the same dt_max at ε = 1e-4 and 1
    net = _net(n_moments=3)
    x = (np.arange(32) + 0.5) / 32
    Q = conserved(
        1 + 0.1 * np.sin(2 * np.pi * x)[None],
        0.0 * x[None],
        np.ones((1, 32)),
        np.zeros((1, 3, 32)),
        2.0,
    )
    dts = [
        FVSolver(BoltzmannMLClosure(net, e), nx=32, time_stepper="ars222").dt_max(Q)
        for e in (1e-4, 1.0)
    ]
    assert dts[0] == pytest.approx(dts[1])
    with pytest.raises(ValueError, match="ars222' needs a closure with an implicit"):
        FVSolver(NavierStokes2V(0.1, (0.5, 0.25)), nx=32, time_stepper="ars222")


def test_per_cell_eps_follows_the_points():
    # ε(x): cells, cells with one ghost each side and the face states get their cell's ε
    cl = BoltzmannMLClosure(_net(), np.array([1.0, 2.0, 3.0, 4.0]), nx=4, bc="outflow")
    assert cl._kn(1, 4).tolist() == [[1, 2, 3, 4]]
    assert cl._kn(1, 6).tolist() == [[1, 1, 2, 3, 4, 4]]
    assert cl._kn(1, 10).tolist() == [[1, 1, 2, 3, 4, 1, 2, 3, 4, 4]]
    with pytest.raises(ValueError, match="a call with 7 points fits none of nx=4 cells"):
        cl._kn(1, 7)


def test_navier_stokes_2v_fluxes():
    # σ = -μ ∂xu with μ = εT/λ_σ, q = -κ ∂xT with κ = 2εT/λ_q at the face (ε = 0.1, λ = 1/2, 1/4)
    ns = NavierStokes2V(0.1, (0.5, 0.25))
    QL = conserved(np.ones((1, 1)), np.zeros((1, 1)), np.ones((1, 1)), None, 2.0)
    QR = conserved(np.ones((1, 1)), 0.1 * np.ones((1, 1)), 1.2 * np.ones((1, 1)), None, 2.0)
    out = ns.diffusive_flux(QL, QR, 0.01)
    mu, kappa = 0.1 * 1.1 / 0.5, 2 * 0.1 * 1.1 / 0.25
    assert out[0, 1, 0] == pytest.approx(-mu * 0.1 / 0.01)
    assert out[0, 2, 0] == pytest.approx(-mu * 0.1 / 0.01 * 0.05 - kappa * 0.2 / 0.01)


def test_spec_errors_name_the_field():
    with pytest.raises(
        ValueError, match="unknown closure spec field 'nmoments'; allowed: n_moments"
    ):
        check_spec({"nmoments": 3})
    with pytest.raises(ValueError, match="spec field n_quad must be an integer >= 8, got 4"):
        check_spec({"n_quad": 4})


def test_learned_closure_runs_a_smooth_case_near_euler_at_small_eps():
    # an untrained closure with W0 = 0 at ε = 1e-4: the relaxation keeps W at O(ε), so the
    # run stays within 1 % of Euler (γ = 2) over t = 0.05 (measured 2e-4)
    from ledmus.surrogates.closure import Euler

    nx = 32
    x = (np.arange(nx) + 0.5) / nx
    prim = (
        1 + 0.2 * np.sin(2 * np.pi * x)[None],
        0.1 * np.cos(2 * np.pi * x)[None],
        np.ones((1, nx)),
    )
    net = _net(n_moments=3)
    ml = FVSolver(BoltzmannMLClosure(net, 1e-4), nx=nx, time_stepper="ars222")
    eu = FVSolver(Euler(2.0), nx=nx)
    a = ml.advance(conserved(*prim, np.zeros((1, 3, nx)), 2.0), 0.05)
    b = eu.advance(conserved(*prim, None, 2.0), 0.05)
    err = np.abs(np.stack(primitive(a, 2.0)) - np.stack(primitive(b, 2.0))).max()
    assert err < 1e-2


@pytest.fixture(scope="module")
def small_dataset(tmp_path_factory):
    from ledmus.datasets import make_dataset

    out = tmp_path_factory.mktemp("boltzmann_data")
    make_dataset("boltzmann", out, scale="small", progress=False)
    return out


def test_dataset_draws_eps_per_run(small_dataset):
    # every run has its own ε, log-uniform in [1e-3, 10] (stored per run), and the ICs
    # cycle through waves, shocks, riemann
    from ledmus.trajectory import read_trajectory

    tr = read_trajectory(small_dataset / "train.h5")
    eps = tr.extra["eps"]
    assert tr.states.shape[:2] == (3, 3) and eps.shape == (3,)
    assert len(set(eps.tolist())) == 3 and np.all((eps >= 1e-3) & (eps <= 10))
    assert tr.attrs["per_run"] == '[["eps", 0.001, 10.0]]'
    s = solvers.make("boltzmann", **{k: v for k, v in tr.params.items() if k not in ("eps", "dt")})
    # each run is the solver at its own ε from its initial state: rerun run 1 and compare
    rerun = solvers.make(
        "boltzmann", **{**{k: v for k, v in tr.params.items() if k != "dt"}, "eps": float(eps[1])}
    )
    np.testing.assert_allclose(
        rerun.rollout(tr.states[1, :1], 0.02)[1], tr.states[1:2], rtol=1e-12, atol=1e-14
    )
    assert s.N == 16


def test_train_and_evaluate_a_small_closure(small_dataset, tmp_path):
    from ledmus.surrogates.checkpoint import load_model
    from ledmus.surrogates.closure.evaluate_boltzmann import evaluate
    from ledmus.surrogates.closure.train_boltzmann import train_boltzmann_closure

    cfg = {
        "kind": "closure_boltzmann",
        "spec": {"n_moments": 2, "width": 8, "closure_width": 8, "n_quad": 10},
        "data": {"dataset": "train.h5", "cells": 40},
        "train": {"encoder_steps": 3, "encoder_batch": 8, "steps": 5, "batch_size": 16},
    }
    path = train_boltzmann_closure(cfg, tmp_path / "c.pt", base_dir=small_dataset, progress=False)
    net, payload = load_model(path, kind="closure_boltzmann")
    assert len(payload["history"]["encoder_loss"]) == 3 and len(payload["history"]["loss"]) == 5
    res = evaluate(net, eps_grid=(0.1,), nx=16, N=16, t_end=0.01, min_time=0.0)
    assert set(res["fair_max"]["ml"]) == {"0.1", "transition"}
    assert res["speedup"]["euler"]["0.1"] > 0 and not res["failures"]
    # repeat: every run timed twice, the best kept; the runs are deterministic, so the
    # errors are the same bits
    twice = evaluate(net, eps_grid=(0.1,), nx=16, N=16, t_end=0.01, repeat=2, min_time=0.0)
    assert twice["repeat"] == 2 and twice["fair"] == res["fair"]
    with pytest.raises(ValueError, match="repeat must be an integer >= 1, got 0"):
        evaluate(net, eps_grid=(0.1,), nx=16, N=16, t_end=0.01, repeat=0)
    with pytest.raises(ValueError, match="min_time must be finite and >= 0 seconds, got -1"):
        evaluate(net, eps_grid=(0.1,), nx=16, N=16, t_end=0.01, min_time=-1)
    with pytest.raises(ValueError, match="config data.dataset 'nope.h5' does not exist"):
        train_boltzmann_closure({**cfg, "data": {"dataset": "nope.h5"}}, tmp_path / "d.pt")


def test_run_group_times_a_model_over_back_to_back_runs(monkeypatch):
    # each round runs the solver once, then a model back to back until min_time has
    # passed (a 0.3 s run alone would catch the machine's speed of that moment); the
    # wall is the mean over those runs, so it stays under the round's elapsed time
    from ledmus.surrogates.closure import evaluate_boltzmann as eb

    calls = {"solver": 0, "model": 0}
    kinetic = type(solvers.make("boltzmann", N=8, nx=4))
    advance, rollout = FVSolver.advance, kinetic.rollout

    def counted(name, fn):
        def wrapper(*a, **k):
            calls[name] += 1
            return fn(*a, **k)

        return wrapper

    monkeypatch.setattr(FVSolver, "advance", counted("model", advance))
    monkeypatch.setattr(kinetic, "rollout", counted("solver", rollout))
    prim = tuple(a[:1, ::8] for a in eb.cases(96)[0][2])  # smooth0 on 12 cells
    kw = dict(nx=12, t_end=0.005, N=8, rates=(1.0, 1.0), models=("euler",), repeat=2)
    res = eb.run_group(None, 0.1, "periodic", prim, min_time=0.0, **kw)
    assert calls == {"solver": 2, "model": 2}  # min_time 0: one model run per round
    res2 = eb.run_group(None, 0.1, "periodic", prim, min_time=0.2, **kw)
    assert calls["solver"] == 4 and calls["model"] >= 2 + 2 * 2  # an Euler run takes ~ms
    np.testing.assert_array_equal(res2["euler"]["final"], res["euler"]["final"])
    assert res2["euler"]["wall_s"] < 0.2


def test_cli_trains_a_closure_next_to_its_config(small_dataset, tmp_path):
    # `ledmus train` finds the family by the config's kind and a relative data.dataset
    # next to the config
    import shutil

    import yaml

    from ledmus.cli import main
    from ledmus.surrogates.checkpoint import load_model

    shutil.copy(small_dataset / "train.h5", tmp_path / "train.h5")
    cfg = {
        "kind": "closure_boltzmann",
        "spec": {"n_moments": 2, "width": 8, "closure_width": 8, "n_quad": 10},
        "data": {"dataset": "train.h5", "cells": 20},
        "train": {"encoder_steps": 1, "encoder_batch": 4, "steps": 2, "batch_size": 8},
    }
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    assert main(["train", str(tmp_path / "c.yaml"), "--out", str(tmp_path / "c.pt")]) == 0
    net, payload = load_model(tmp_path / "c.pt", kind="closure_boltzmann")
    assert payload["system"] == "boltzmann" and net.M == 2


def test_parity_makes_the_closure_reflection_equivariant():
    # x -> -x, v_x -> -v_x is a symmetry of the Boltzmann equation: with parity, w_k(-ξ_x,
    # ξ_y) = p_k w_k, the terms of the reflected state (PW, -u) are q times the original
    # ones, and ŝ(PW) = P ŝ(W); the numpy path equals the torch network
    net = _net(n_moments=5)
    p, q = net.parity_w.numpy(), net.parity_out.numpy()
    assert p.tolist() == [1, 1, 1, -1, -1]
    x, y = torch.linspace(-3, 3, 7, dtype=torch.float64), torch.full((7,), 0.7, dtype=torch.float64)
    with torch.no_grad():
        w, wx, _ = net.weights(x, y)
        wr, wxr, _ = net.weights(-x, y)
        np.testing.assert_allclose(wr.numpy(), w.numpy() * p, atol=1e-14)
        np.testing.assert_allclose(wxr.numpy(), -wx.numpy() * p, atol=1e-14)
        W = torch.randn(4, 5, dtype=torch.float64) * 0.05
        s, sr = net.collision(W), net.collision(W * net.parity_w)
        np.testing.assert_allclose(sr.numpy(), s.numpy() * p, atol=1e-14)
        log_kn = torch.full((4,), -1.5, dtype=torch.float64)
        out = torch.cat([t.reshape(4, -1) for t in net(W, log_kn)], 1).numpy()
    cl = BoltzmannMLClosure(net, 10**-1.5 * 1.3)  # ε/ρ = 10^-1.5 at ρ = 1.3
    rho, T = np.full((1, 4), 1.3), np.full((1, 4), 0.9)
    u = np.array([[0.1, -0.2, 0.3, 0.0]])
    Wq = W.numpy().T[None] * rho[:, None]
    t0 = cl.closure_terms(conserved(rho, u, T, Wq, gamma=2.0))
    t1 = cl.closure_terms(conserved(rho, -u, T, Wq * p[None, :, None], gamma=2.0))
    flat = np.concatenate([t0[0].T, t0[1].T, t0[2][0].T, t0[3][0].reshape(20, 4).T], 1)
    np.testing.assert_allclose(flat, out, rtol=1e-10, atol=1e-14)  # numpy == torch
    qs = (q[0], q[1], q[2 : 2 + 5][:, None], q[7:].reshape(4, 5)[:, :, None])
    for a, b, sign in zip(t0, t1, qs, strict=True):
        np.testing.assert_allclose(b, a * sign, rtol=1e-10, atol=1e-14)


def test_stiffness_bounds_the_quadratic_terms_jacobian():
    # the explicit rate is ‖J‖_F of J = (ρ/ε)·2C(W, ·): at least the spectral norm of the
    # quadratic term's Jacobian in ρW (checked by finite differences), at most √M times it
    net = _net(n_moments=3)
    cl = BoltzmannMLClosure(net, 0.01)
    rng = np.random.default_rng(2)
    rho = rng.uniform(0.5, 2, (1, 4))
    Q = conserved(
        rho, 0 * rho, 1 + 0 * rho, rng.normal(scale=0.05, size=(1, 3, 4)) * rho[:, None], 2.0
    )

    def quad(Q):
        W = Q[:, 3:] / Q[:, :1]
        return np.einsum("kij,bim,bjm->bkm", cl.C, W, W) * (Q[:, 0] ** 2 / 0.01)[:, None]

    r = cl.stiffness(Q)[0]
    for m in range(4):
        J = np.empty((3, 3))
        for j in range(3):
            d = np.zeros_like(Q)
            d[0, 3 + j, m] = 1e-7
            J[:, j] = (quad(Q + d) - quad(Q - d))[0, :, m] / 2e-7
        norm = np.linalg.norm(J, 2)
        assert norm * (1 - 1e-6) <= r[m] <= math.sqrt(3) * norm


@pytest.mark.slow  # about 50 s: two Boltzmann runs at N = 48 on 100 cells
@pytest.mark.parametrize(("eps", "measured"), [(1.0, 0.0400), (10.0, 0.0382)])
def test_shipped_wide_closure_meets_the_shock_target(eps, measured):
    # issue 25's acceptance cases where the closure is weakest: Sod and the colliding
    # streams (one batch, as benchmarks/closure_boltzmann.py runs them: the batch sets the
    # time step) against the Boltzmann solver at the seed's N = 48 to t = 0.1.  The bound
    # is the 5 % target; the measured value (benchmarks/out/closure_boltzmann_
    # wide.json) is the colliding streams'.  The same closure with h 48 wide (round 2)
    # gives 5.50 % and 5.91 % here, 80 wide 5.36 % and 5.35 %, the first shipped one 5.88 %
    # and 6.85 % (benchmarks/out/closure_boltzmann_trial.json).
    from pathlib import Path

    from ledmus.surrogates import load_model
    from ledmus.surrogates.closure.evaluate import fair_errors
    from ledmus.surrogates.closure.evaluate_boltzmann import GAMMA, cases, run_group

    root = Path(__file__).resolve().parents[1]
    net = load_model(root / "models" / "closure_boltzmann_wide.pt", kind="closure_boltzmann")[0]
    shocks = [c for c in cases(100) if c[0] in ("sod", "colliding")]
    prim = tuple(np.concatenate([c[2][i] for c in shocks]) for i in range(3))
    rates = relaxation_rates(solvers.make("boltzmann", N=48, nx=4))
    res = run_group(
        net, eps, "outflow", prim, nx=100, t_end=0.1, N=48, rates=rates, models=("ml",), min_time=0
    )
    err = fair_errors(res["ml"]["final"], res["boltzmann"]["final"], GAMMA).max(-1)
    assert res["ml"]["error"] is None
    assert err.max() <= 0.05
    assert err.max() == pytest.approx(measured, abs=5e-4)  # float64, deterministic on a CPU
