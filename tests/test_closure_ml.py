"""The machine-learned moment closure of the BGK model (issue 10 item 3, seed 002 §5)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from ledmus import solvers
from ledmus.surrogates.checkpoint import load_model, save_checkpoint
from ledmus.surrogates.closure import FVSolver, conserved, euler_flux
from ledmus.surrogates.closure.ml import MLMomentClosure, MomentNet
from ledmus.surrogates.closure.train import cell_data, fit, generate, resolve_config


@pytest.fixture(scope="module")
def net() -> MomentNet:
    torch.manual_seed(0)
    return MomentNet({"n_moments": 3, "width": 16, "closure_width": 16}).double().eval()


def encode(net, data):
    with torch.no_grad():
        out = net.encode(torch.from_numpy(data["xi"]), torch.from_numpy(data["gdv"]))
    return tuple(a.numpy() for a in out)


def test_maxwellians_have_zero_moments_and_the_closure_is_euler_there(net):
    bgk = solvers.make("bgk", kn=0.1, nx=8, bc="periodic")
    rng = np.random.default_rng(1)
    rho, u, T = (
        rng.uniform(0.5, 1.5, (1, 8)),
        rng.uniform(-1, 1, (1, 8)),
        rng.uniform(0.4, 2.5, (1, 8)),
    )
    W, g, y = encode(net, cell_data(bgk, bgk.maxwellian(rho, u, T), 0.1))
    # measured max |W| 4.8e-17, |g̃| 4.6e-16, |y| 1.9e-15
    assert np.abs(W).max() < 1e-14 and np.abs(g).max() < 1e-14 and np.abs(y).max() < 1e-14
    Q = conserved(rho, u, T, np.zeros((1, 3, 8)))
    for kn in (1e-3, 1.0, 10.0):
        cl = MLMomentClosure(net, kn)
        q, gt, yt = cl.closure_terms(Q)
        # h(Ŵ, ε) - h(0, ε) by construction, but h(0, ε) comes from a one-row batch, which
        # rounds differently from the 8-row one: a few ulp of |h| ~ 1 times s(ε) <= 0.1
        # (measured 5.5e-20 for this net, 8.8e-17 for the shipped one); a closure that
        # does not vanish at W = 0 gives O(s(ε)) ~ 1e-3 at ε = 1e-3
        assert max(np.abs(a).max() for a in (q, gt, yt)) < 1e-15
        F = cl.flux(Q)
        # relative to |F| ~ 1 (the Euler flux): the closure's part is the rounding above
        np.testing.assert_allclose(F[:, :3], euler_flux(Q), rtol=0, atol=1e-15)
        assert np.abs(F[:, 3:]).max() < 1e-15
        uniform = conserved(
            np.ones((1, 8)), np.full((1, 8), 0.3), np.ones((1, 8)), np.zeros((1, 3, 8))
        )
        assert np.all(cl.source(uniform) == 0)


def skewed(v, u, T):
    """A non-Maxwellian ``f = ρ/√T h((v - u)/√T)`` (skewed two-bump ``h``)."""
    xi = (v - u) / np.sqrt(T)
    h = np.exp(-0.5 * (xi - 0.8) ** 2) + 0.5 * np.exp(-((xi + 1.2) ** 2)) * (1 + 0.3 * xi)
    return 1.3 * h / np.sqrt(T)


@pytest.mark.parametrize("u,T", [(0.7, 1.0), (-1.5, 1.0), (0.0, 2.5), (0.9, 0.5)])
def test_encoder_is_galilean_and_scale_invariant(net, u, T):
    # fine velocity grid (dv = 0.02): the quadrature error is far below the tolerance
    bgk = solvers.make("bgk", kn=0.1, nx=4, nv=2000, v_max=20.0, bc="periodic")
    f = np.stack([skewed(bgk.v, 0.0, 1.0), skewed(bgk.v, u, T)])[:, :, None]
    W, g, y = encode(net, cell_data(bgk, f, 0.1))
    assert np.abs(W[0]).max() > 0.03  # a genuinely non-equilibrium f: measured 0.072
    # measured max |ΔW| 4.2e-17 .. 1.8e-16, |Δg̃| 6.2e-16 .. 1.7e-15 (rounding)
    np.testing.assert_allclose(W[1], W[0], rtol=0, atol=1e-12)
    np.testing.assert_allclose(g[1], g[0], rtol=0, atol=1e-12)
    np.testing.assert_allclose(y[1], y[0], rtol=0, atol=1e-12)  # measured |Δy| 9.2e-16 .. 9.8e-15


@pytest.mark.parametrize("kn", [0.05, 1.0])
def test_the_exact_w_equation_holds_on_bgk_data(net, kn):
    """Every term of the moment system (module docstring of ``ml``) with the exact closure
    values from ``f``: ``∂t(ρW)`` by centred differences of BGK snapshots matches."""
    nx, dt = 200, 0.0005
    bgk = solvers.make("bgk", kn=kn, nx=nx, nv=96, v_max=12.0, bc="periodic", dt_coarse=dt)
    x = bgk.x
    f0 = bgk.maxwellian(1 + 0.2 * np.sin(2 * np.pi * x), 0.2 * np.cos(2 * np.pi * x),
                        1 + 0.2 * np.sin(2 * np.pi * x + 1))  # fmt: skip
    _, f = bgk.rollout(f0, 0.02)
    terms = []
    for fk in f[0, -3:]:
        W, g, y = encode(net, cell_data(bgk, fk[None], kn))
        rho, u, T = np.moveaxis(bgk.primitives(fk[None]), 1, 0)
        q = rho * T**1.5 * cell_data(bgk, fk[None], kn)["q"][None]
        terms.append((rho, u, T, W.T[None], g.T[None], np.moveaxis(y, 0, -1)[None], q))
    rhoW = [t[0][:, None] * t[3] for t in terms]
    dt_rhoW = (rhoW[2] - rhoW[0]) / (2 * dt)
    rho, u, T, W, g, y, q = terms[1]
    cl = MLMomentClosure(net, kn)
    Q = conserved(rho, u, T, rho[:, None] * W)
    G = u[:, None] * Q[:, 3:] + (rho * np.sqrt(T))[:, None] * g
    dGdx = (np.roll(G, -1, -1) - np.roll(G, 1, -1)) * nx / 2
    cl.closure_terms = lambda Q: (q / (rho * T**1.5), g, y)  # the exact closure values
    src = cl.source(Q)
    err = np.abs(-dGdx + src - dt_rhoW).max() / np.abs(dt_rhoW).max()
    assert err < 5e-3  # measured 2.8e-3 (kn 0.05), 1.8e-3 (kn 1): O(dx², dt²)
    cl.closure_terms = lambda Q: (q / (rho * T**1.5), g, 0 * y)  # frame-change terms dropped
    err_no_frame = np.abs(-dGdx + cl.source(Q) - dt_rhoW).max() / np.abs(dt_rhoW).max()
    assert err_no_frame > 4 * err  # measured 4.4e-2, 3.7e-2: 16x, 20x


def test_tiny_training_decreases_the_loss_and_fits():
    cfg = resolve_config({"data": {"runs": 2, "batch": 2, "nx": 16, "every": 10, "eps_min": 1e-2,
                                   "eps_max": 1e-1, "t_end": 0.05}})  # fmt: skip
    data = generate(cfg)
    torch.manual_seed(0)
    net = MomentNet({"n_moments": 2, "width": 16, "closure_width": 16}).double()
    hist = fit(net, data, steps=300, batch_size=64, lr=5e-3)
    first, last = np.mean(hist[:10]), np.mean(hist[-20:])
    assert last < 0.1 * first  # measured first 80.2, last 2.04 (ratio 0.025)
    assert last < 5.0  # dimensionless loss (errors relative to s(ε)): measured 2.04


def test_fv_solver_with_the_learned_closure_conserves_mass_momentum_energy(net):
    nx = 32
    x = (np.arange(nx) + 0.5) / nx
    rho, u, T = (
        1 + 0.2 * np.sin(2 * np.pi * x),
        0.2 * np.cos(2 * np.pi * x),
        1 + 0.2 * np.sin(4 * np.pi * x),
    )
    W = 0.05 * np.stack([np.sin(2 * np.pi * (k + 1) * x) for k in range(3)])
    Q0 = conserved(rho[None], u[None], T[None], W[None] * rho)
    Q0 = np.concatenate([Q0, Q0], 0)
    cl = MLMomentClosure(net, np.array([0.01, 1.0]))
    Q = FVSolver(cl, nx=nx, bc="periodic").advance(Q0, 0.05)
    assert np.abs(Q[:, 3:] - Q0[:, 3:]).max() > 1e-3  # W does evolve: measured 0.145
    drift = np.abs(Q[:, :3].sum(-1) - Q0[:, :3].sum(-1)) / np.abs(Q0[:, :3]).sum(-1)
    assert drift.max() < 1e-13  # measured 1.1e-15


def test_a_batch_with_one_kn_per_member_equals_the_members_one_by_one(net):
    rng = np.random.default_rng(3)
    nx, kns = 16, np.array([1e-3, 0.05, 2.0])
    Q = conserved(rng.uniform(0.5, 1.5, (3, nx)), rng.uniform(-0.5, 0.5, (3, nx)),
                  rng.uniform(0.5, 2.0, (3, nx)), rng.normal(0, 0.05, (3, 3, nx)))  # fmt: skip
    together = MLMomentClosure(net, kns).closure_terms(Q)
    for b, kn in enumerate(kns):
        alone = MLMomentClosure(net, kn).closure_terms(Q[b : b + 1])
        for a, c in zip(together, alone, strict=True):
            # same network rows, batched 3x larger: rounding only (measured 5.6e-18);
            # member 1 closed with member 0's ε differs by 1.3e-2
            np.testing.assert_allclose(a[b : b + 1], c, rtol=0, atol=1e-14)


def test_checkpoint_round_trip_is_bitwise(net, tmp_path):
    path = save_checkpoint(tmp_path / "c.pt", net, config={"dtype": "float64"}, fingerprint="x")
    back, payload = load_model(path)
    assert payload["kind"] == "closure" and payload["spec"] == net.spec
    rng = np.random.default_rng(0)
    xi, gdv = (
        torch.from_numpy(rng.normal(size=(50, 16))),
        torch.from_numpy(rng.normal(size=(50, 16))),
    )
    W, e = torch.from_numpy(rng.normal(size=(50, 3))), torch.from_numpy(rng.uniform(-3, 1, 50))
    with torch.no_grad():
        for a, b in zip((*net.encode(xi, gdv), *net(W, e)), (*back.encode(xi, gdv), *back(W, e)),
                        strict=True):  # fmt: skip
            assert torch.equal(a, b)


@pytest.mark.parametrize(
    "spec,field",
    [({"n_moments": 0}, "n_moments"), ({"width": 2.5}, "width"), ({"depth": True}, "depth"),
     ({"xi_max": 1.0}, "xi_max"), ({"n_quad": 2}, "n_quad"), ({"eps_ref": 0.0}, "eps_ref"), ({"moments": 3}, "moments")],
)  # fmt: skip
def test_bad_spec_fields_raise_naming_the_field(spec, field):
    with pytest.raises(ValueError, match=field):
        MomentNet(spec)


def test_the_data_ics_field_chooses_the_bgk_initial_conditions():
    from ledmus.surrogates.closure.train import bgk_runs

    def density_ratio(ics):
        ((_, bgk, f),) = bgk_runs(1, 8, 32, 0.1, 0.1, 0.005, 1, np.random.default_rng(0), ics)
        rho = bgk.primitives(f)[:, 0]
        return rho.max() / rho.min()

    # waves keep rho in [0.5, 1.5] (ratio <= 3), shocks in [0.35, 1.65] (<= 4.7); riemann
    # draws it from [0.125, 1] (<= 8): measured 2.5, 3.3 and 7.3 at t = 0.005 (run 0 is
    # waves when ics is ignored, so the riemann check is the one that can fail)
    assert density_ratio(("waves",)) < 3 and density_ratio(("shocks",)) < 4.7
    assert density_ratio(("riemann",)) > 5


@pytest.mark.parametrize(
    "raw,field",
    [({"data": {"runs": 0}}, "data.runs"), ({"train": {"lr": -1}}, "train.lr"),
     ({"data": {"eps": 1}}, "data.eps"), ({"optimiser": "sgd"}, "optimiser"),
     ({"data": {"ics": ["sod"]}}, "data.ics must be a non-empty list of waves, shocks, riemann"),
     ({"data": {"ics": []}}, "data.ics"), ({"data": {"ics": "waves"}}, "data.ics")],
)  # fmt: skip
def test_bad_config_fields_raise_naming_the_field(raw, field):
    with pytest.raises(ValueError, match=field):
        resolve_config(raw)


def test_ledmus_train_dispatches_a_closure_config(tmp_path):
    from ledmus.cli import main
    from ledmus.surrogates.checkpoint import load_model

    cfg = {"kind": "closure", "system": "bgk", "seed": 0,
           "spec": {"n_moments": 2, "width": 8, "depth": 1, "closure_width": 8, "closure_depth": 1},
           "data": {"runs": 1, "batch": 1, "nx": 16, "t_end": 0.01, "every": 1},
           "train": {"steps": 3, "batch_size": 32}}  # fmt: skip
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(cfg))
    assert main(["train", str(path), "--out", str(tmp_path / "c.pt")]) in (None, 0)
    net, payload = load_model(tmp_path / "c.pt")
    assert payload["kind"] == "closure" and net.M == 2


_THREADS_SNIPPET = """
import sys, numpy as np, torch
torch.set_num_threads(1)
from ledmus import solvers
from ledmus.surrogates.checkpoint import load_model
from ledmus.surrogates.closure import lift as L
from ledmus.surrogates.closure.ml import MLMomentClosure
ens, _ = load_model(sys.argv[1])
bgk = solvers.make("bgk", kn=0.1, nx=100, bc="periodic")
f = bgk.rollout(bgk.initial_condition("waves", 2, np.random.default_rng(3)), 0.01)[1][:, -1]
Q = L.restrict(ens.members[0], f, bgk)
parts = [Q, L.lift(ens.decoder, Q, bgk, 0.1)]
cl = MLMomentClosure(ens.members[0], 0.1)
for m in (51, 135, 167, 300):  # row counts whose threaded products split differently
    parts += list(cl.closure_terms(np.concatenate([Q] * 3, -1)[..., :m]))
np.save(sys.argv[2], np.concatenate([p.ravel() for p in parts]))
"""


def test_numpy_networks_give_the_same_bits_on_one_or_two_blas_threads(tmp_path):
    """The numpy closure, encoder and decoder keep each BLAS product under OpenBLAS's
    threading threshold, so OMP_NUM_THREADS does not change a bit (a threaded product
    differs by about 1e-14, measured): the MUSCLE3 components (one thread each) and an
    embedded run agree bitwise."""
    import os
    import subprocess
    import sys

    model = Path(__file__).resolve().parents[1] / "models" / "closure_bgk_hmm.pt"
    out = []
    for threads in ("1", "2"):
        path = tmp_path / f"t{threads}.npy"
        env = dict(os.environ, OMP_NUM_THREADS=threads, OPENBLAS_NUM_THREADS=threads)
        cmd = [sys.executable, "-c", _THREADS_SNIPPET, str(model), str(path)]
        subprocess.run(cmd, check=True, env=env, timeout=300)
        out.append(np.load(path))
    np.testing.assert_array_equal(out[0], out[1])
