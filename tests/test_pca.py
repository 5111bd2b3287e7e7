"""The PCA baseline (ledmus.surrogates.pca): fit, restriction/lifting, checkpoint, the
MacroModel protocol, configs and training; tiny synthetic data made here."""

import numpy as np
import pytest
import torch

from ledmus import solvers
from ledmus.surrogates import PCA, PCAMacro, load_macro_model
from ledmus.surrogates.checkpoint import load_model, save_checkpoint
from ledmus.surrogates.config import resolve
from ledmus.surrogates.training import train_from_config
from ledmus.trajectory import write_trajectory

SHAPE = (2, 6)  # (C, N): D = 12
D = 12


def make_pca(d=3, dtype=torch.float64, hidden=7, seed=0, cell="lstm"):
    torch.manual_seed(seed)
    spec = {"system": "fhn", "state_shape": list(SHAPE), "box": None,
            "pca": {"components": d}, "rnn": {"cell": cell, "hidden": hidden}}  # fmt: skip
    net = PCA(spec).to(dtype=dtype)
    net.scaler.to(torch.float64)
    return net


def subspace_data(rng, n=200, d=3):
    """Samples ``(n, *SHAPE)`` on a d-dimensional affine subspace, channels of very
    different offsets and scales (the standard scaling is affine per channel, so the
    scaled data still lies on a d-dimensional affine subspace)."""
    basis = rng.standard_normal((D, d))
    x = rng.standard_normal((n, d)) @ basis.T + rng.standard_normal(D)
    x = x.reshape(n, *SHAPE)
    return x * np.array([0.1, 30.0])[:, None] + np.array([5.0, -2.0])[:, None]


def fitted_macro(rng, d=3, cell="lstm"):
    net = make_pca(d, cell=cell)
    net.fit_pca(rng.standard_normal((300, *SHAPE)))
    return PCAMacro(net)


def test_pca_reconstructs_data_in_a_d_dim_subspace_and_components_are_orthonormal(rng):
    x = subspace_data(rng, d=3)
    net = make_pca(d=3)
    ratio = net.fit_pca(x)
    rec = net.decode(net.encode(x)).numpy()
    # float64 SVD and model: the discarded singular values are rounding (~1e-15 of the
    # largest), so the reconstruction error is a few hundred ulps of the data (|x| <~ 100)
    np.testing.assert_allclose(rec, x, rtol=0, atol=1e-11)
    assert ratio.sum() == pytest.approx(1.0, abs=1e-12)  # 3 components hold all variance
    v = net.components.numpy()
    assert v.shape == (3, D) and net.mean.shape == (D,)
    np.testing.assert_allclose(v @ v.T, np.eye(3), atol=1e-13)


def test_restrict_of_lift_is_the_identity_on_coefficients(rng):
    macro = fitted_macro(rng, d=4)
    z = rng.standard_normal((5, 4))
    lifted = macro.decode(z)
    assert lifted.shape == (5, *SHAPE) and lifted.dtype == np.float64
    np.testing.assert_allclose(macro.restrict(lifted), z, atol=1e-12)
    zs = rng.standard_normal((2, 3, 4))  # sequences (B, T, d) too
    np.testing.assert_allclose(macro.restrict(macro.decode(zs)), zs, atol=1e-12)


def test_explained_variance_matches_numpy_svd(rng):
    x = rng.standard_normal((150, *SHAPE)) * rng.uniform(0.5, 3.0, SHAPE)
    net = make_pca(d=5)
    net.fit_pca(x)
    # independent reference: per-channel standard scaling and SVD in numpy
    mu = x.mean(axis=(0, 2), keepdims=True)
    sd = x.std(axis=(0, 2), keepdims=True)
    flat = ((x - mu) / sd).reshape(len(x), -1)
    _, s, vt = np.linalg.svd(flat - flat.mean(axis=0), full_matrices=False)
    ref = s**2 / np.sum(s**2)
    np.testing.assert_allclose(net.explained_variance_ratio.numpy(), ref[:5], rtol=1e-10)
    # same subspace (directions up to sign)
    np.testing.assert_allclose(np.abs(net.components.numpy() @ vt[:5].T), np.eye(5), atol=1e-8)


def test_checkpoint_round_trip_and_load_macro_model(rng, tmp_path):
    net = make_pca(d=3, dtype=torch.float32)
    net.fit_pca(subspace_data(rng, d=4))
    path = save_checkpoint(tmp_path / "p.pt", net, config={"kind": "pca"}, fingerprint="0" * 64)
    again, payload = load_model(path, system="fhn")
    assert payload["kind"] == "pca" and isinstance(again, PCA)
    assert again.scaler.shift.dtype == torch.float64 and again.components.dtype == torch.float32
    for key, value in net.state_dict().items():
        assert torch.equal(value, again.state_dict()[key]), key
    x = subspace_data(rng, n=4, d=4)
    assert torch.equal(net.encode(x), again.encode(x))
    macro = load_macro_model(path, system="fhn")
    assert isinstance(macro, PCAMacro) and macro.macro_dim == 3
    assert macro.state_shape == SHAPE and not macro.stochastic_decode


def explicit_rnn(rnn, seq, hidden=None):
    pred, hidden = rnn(seq, hidden)
    return pred[:, -1], hidden


def assert_same(a, b):
    # float64: the same operations, but the LSTM's matrix products may sum in another
    # order for differently laid-out inputs (seen: 1 ulp), so equal up to 1e-12 relative
    np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-15)


@torch.no_grad()
def test_assimilate_then_propagate_equals_an_explicit_rnn_loop(rng):
    macro = fitted_macro(rng, d=3)
    rnn = macro.net.rnn
    m1, m2 = rng.standard_normal((2, 4, 5, 3))  # two micro windows, B = 4, T = 5
    macro.assimilate(m1)
    z1, unc = macro.propagate(6)
    macro.assimilate(m2)  # feeds the pending last state, then the window
    z2, _ = macro.propagate(3)

    z, hidden = explicit_rnn(rnn, torch.as_tensor(m1))
    steps = [z]
    for _ in range(5):
        z, hidden = explicit_rnn(rnn, z[:, None], hidden)
        steps.append(z)
    assert_same(z1, torch.stack(steps, 1).numpy())
    assert unc is None and z1.shape == (4, 6, 3)
    seq = torch.cat([torch.as_tensor(z1[:, -1:]), torch.as_tensor(m2)], dim=1)
    z, hidden = explicit_rnn(rnn, seq, hidden)
    steps = [z]
    for _ in range(2):
        z, hidden = explicit_rnn(rnn, z[:, None], hidden)
        steps.append(z)
    assert_same(z2, torch.stack(steps, 1).numpy())


def test_snapshot_restore_and_set_weights(rng):
    macro = fitted_macro(rng, d=3)
    with pytest.raises(RuntimeError, match="before any assimilate"):
        macro.propagate(2)
    macro.assimilate(rng.standard_normal((2, 4, 3)))
    macro.propagate(3)  # leaves a pending state
    snap = macro.snapshot()
    a, _ = macro.propagate(5)
    macro.restore(snap)
    b, _ = macro.propagate(5)
    np.testing.assert_array_equal(a, b)

    weights = macro.get_weights()
    changed = {k: v.clone() for k, v in weights.items()}
    changed["rnn.readout.weight"] *= 0.5
    macro.restore(snap)
    macro.set_weights(changed)
    c, _ = macro.propagate(5)
    assert not np.allclose(a, c)
    macro.restore(snap)
    macro.set_weights(weights)  # the propagation state is kept, the old weights are back
    np.testing.assert_array_equal(a, macro.propagate(5)[0])


@pytest.mark.parametrize("cell, n_hidden", [("lstm", 2), ("gru", 1)])
def test_snapshot_of_a_prediction_restores_into_any_model_of_the_network(rng, cell, n_hidden):
    macro = fitted_macro(rng, d=3, cell=cell)
    macro.assimilate(rng.standard_normal((2, 4, 3)))
    snap = macro.snapshot()  # the prediction z_next; hidden: LSTM (h, c), GRU h
    assert len(snap["hidden"]) == n_hidden and snap["pending"] is None
    hidden = macro.hidden if cell == "lstm" else (macro.hidden,)
    for saved, h in zip(snap["hidden"], hidden, strict=True):
        assert isinstance(saved, np.ndarray)
        np.testing.assert_array_equal(saved, h.numpy())
    a, _ = macro.propagate(4)
    b, _ = macro.propagate(2)  # continues after the pending state
    resumed = PCAMacro(macro.net)  # a resumed run: a fresh model restores the snapshot
    resumed.restore(snap)
    np.testing.assert_array_equal(resumed.propagate(4)[0], a)
    np.testing.assert_array_equal(resumed.propagate(2)[0], b)
    macro.restore(snap)
    np.testing.assert_array_equal(macro.propagate(4)[0], a)


def test_bad_pca_configs_name_the_field():
    base = {"kind": "pca", "system": "fhn", "data": "x"}
    with pytest.raises(ValueError, match="pca.components must be an integer >= 1, got 0"):
        resolve({**base, "pca": {"components": 0}})
    with pytest.raises(ValueError, match="unknown key.*n_components in pca.*components"):
        resolve({**base, "pca": {"n_components": 3}})
    with pytest.raises(ValueError, match="unknown key.*autoencoder for kind pca"):
        resolve({**base, "autoencoder": {"latent_dim": 3}})
    with pytest.raises(ValueError, match="unknown key.*pca for kind led"):
        resolve({"system": "fhn", "data": "x", "pca": {"components": 3}})
    with pytest.raises(ValueError, match="kind='pcb' unknown; allowed: led, pca"):
        resolve({**base, "kind": "pcb"})
    with pytest.raises(ValueError, match=r"pca.components=13 must be in 1\.\.12"):
        make_pca(d=13)
    cfg = resolve({**base, "pca": {"components": 3}})
    assert cfg["kind"] == "pca" and cfg["pca"] == {"components": 3}
    assert "autoencoder" not in cfg and "train_autoencoder" not in cfg
    assert resolve({"system": "fhn", "data": "x"})["kind"] == "led"


def test_train_and_evaluate_a_pca_model_from_a_config(rng, tmp_path):
    from ledmus.evaluation import evaluate

    solver = solvers.make("fhn")
    t = np.arange(40) * solver.dt_coarse
    phase = np.linspace(0, 2 * np.pi, 101)
    for name, runs in (("train", 2), ("val", 1), ("test", 2)):
        shift = rng.uniform(0, 2 * np.pi, (runs, 1, 1, 1))
        states = np.sin(phase + 0.2 * t[:, None, None] + shift) * np.array([1.0, 0.3])[:, None]
        write_trajectory(tmp_path / f"{name}.h5", states, t, solver, 0)
    cfg = {"kind": "pca", "system": "fhn", "data": str(tmp_path), "seed": 1,
           "pca": {"components": 2}, "rnn": {"hidden": 8},
           "train_rnn": {"epochs": 3, "batch_size": 4, "sequence_length": 5,
                         "hidden_propagation": 10, "restarts": 2, "validation": "free_run"}}  # fmt: skip
    path = train_from_config(cfg, tmp_path / "p.pt", progress=False)
    net, payload = load_model(path)
    hist = payload["history"]
    assert isinstance(net, PCA) and payload["config"] == cfg and payload["kind"] == "pca"
    # a travelling sine wave per channel: 2 components hold all of its variance
    assert hist["pca"]["explained_variance_total"] == pytest.approx(1.0, abs=1e-6)
    assert hist["pca"]["reconstruction_mse_val"] < 1e-8
    assert set(hist["wall_time_s"]) == {"pca", "rnn"} and len(hist["rnn"]["restarts"]) == 2
    assert (tmp_path / "p_loss.png").stat().st_size > 1000
    assert (tmp_path / "p_history.json").is_file()
    result = evaluate(path, tmp_path / "test.h5", t_warm=5, horizon=10, plots=False)
    assert result["n_ics"] == 2 and np.isfinite(result["mnad_u"])
