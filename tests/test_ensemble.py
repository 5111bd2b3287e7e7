"""EnsembleRNN: K LatentRNN members in one block-diagonal LatentRNN, with an uncertainty."""

from __future__ import annotations

import copy
import logging

import numpy as np
import pytest
import torch

from ledmus.surrogates.checkpoint import load_model, save_checkpoint
from ledmus.surrogates.config import resolve
from ledmus.surrogates.ensemble import EnsembleRNN, build_rnn, member_weighted, prediction_loss
from ledmus.surrogates.fitting import train_rnn_restarts
from ledmus.surrogates.led import LED
from ledmus.surrogates.propagators import LatentRNN

D, H, K = 3, 6, 4


def make(cell="lstm", layers=1, residual=True, members=K, head="point", seed=10):
    return EnsembleRNN(D, H, cell, layers, residual, members=members, head=head, seed=seed)


def train_steps(rnn, steps=3, weight_decay=0.0):
    opt = torch.optim.Adam(rnn.parameters(), lr=1e-2, weight_decay=weight_decay)
    z = torch.randn(5, 8, D, generator=torch.Generator().manual_seed(1))
    for _ in range(steps):
        opt.zero_grad()
        loss, _ = prediction_loss(rnn, z[:, :-1], z[:, 1:], None)
        loss.backward()
        opt.step()


@pytest.mark.parametrize("cell,head,wd", [("lstm", "point", 0.0), ("gru", "gaussian", 1e-3)])
def test_off_block_weights_stay_exactly_zero(cell, head, wd):
    rnn = make(cell, layers=2, head=head)
    before = {n: p.detach().clone() for n, p, *_ in rnn._blocks()}
    masks = rnn.block_masks()
    train_steps(rnn, weight_decay=wd)
    for name, p, *_ in rnn._blocks():
        assert torch.count_nonzero(p[~masks[name]]) == 0, name
        assert not torch.equal(p, before[name]), name  # the blocks did train
    twin = copy.deepcopy(rnn)  # a copy has fresh parameters: its hooks are registered again
    train_steps(twin)
    for name, p, *_ in twin._blocks():
        assert torch.count_nonzero(p[~masks[name]]) == 0, name


@pytest.mark.parametrize("head", ["point", "gaussian"])
def test_bootstrap_weights_are_each_members_loss_on_its_resample(head):
    rnn = make(head=head)
    gen = torch.Generator().manual_seed(3)
    inp, target = torch.randn(6, 5, D, generator=gen), torch.randn(6, 5, D, generator=gen)
    idx = torch.randint(0, 6, (K, 6), generator=gen)  # member k's resample: sequences idx[k]
    counts = torch.stack([torch.bincount(i, minlength=6) for i in idx], dim=1)  # (B, K)
    got, _ = prediction_loss(rnn, inp, target, None, counts)
    # reference: each member alone (a standalone LatentRNN, or its mean and log-variance)
    # on its resampled batch, summed over members
    mu, lv, _ = rnn._members(inp, None)
    want = 0.0
    for k in range(K):
        m, t = mu[idx[k], :, k], target[idx[k]]
        if head == "point":
            alone = rnn.member(k)(inp[idx[k]], None)[0]
            torch.testing.assert_close(alone, m, rtol=1e-5, atol=1e-6)
            want = want + torch.mean((m - t) ** 2)
        else:
            want = want + torch.nn.functional.gaussian_nll_loss(m, t, lv[idx[k], :, k].exp())
    torch.testing.assert_close(got, want, rtol=1e-6, atol=0)
    ones = torch.ones(6, K)  # all ones: the unweighted sum of the members' losses
    torch.testing.assert_close(
        prediction_loss(rnn, inp, target, None, ones)[0], prediction_loss(rnn, inp, target, None)[0]
    )
    per = torch.rand(6, 5, K, D, generator=gen)
    assert member_weighted(per, torch.zeros(6, K)) == 0  # no draws: nothing, not NaN


@pytest.mark.parametrize("cell,layers", [("lstm", 2), ("gru", 1)])
def test_members_are_standalone_latent_rnns(cell, layers):
    rnn = make(cell, layers)
    for k in range(K):  # initialised like LatentRNN built after manual_seed(seed + k)
        torch.manual_seed(10 + k)
        alone = LatentRNN(D, H, cell, layers, True)
        for a, b in zip(
            alone.state_dict().values(), rnn.member(k).state_dict().values(), strict=True
        ):
            assert torch.equal(a, b)
    assert not torch.equal(rnn.member(0).readout.weight, rnn.member(1).readout.weight)
    train_steps(rnn)
    z = torch.randn(3, 7, D)
    rnn.zero_grad()
    loss, _ = prediction_loss(rnn, z[:, :-1], z[:, 1:], None)
    loss.backward()
    with torch.no_grad():
        preds, _ = rnn.forward_members(z)
        mean, _ = rnn(z)
    # float32 rounding: the block GEMMs add K-1 blocks of exact zeros, possibly in another
    # order; measured max |diff| 0 at these sizes, the bound is ~10 ulp of O(0.1..1) values
    torch.testing.assert_close(mean, preds.mean(dim=2), rtol=0, atol=1e-6)
    for k in range(K):
        alone = rnn.member(k)
        with torch.no_grad():
            pk, _ = alone(z)
        torch.testing.assert_close(preds[:, :, k], pk, rtol=0, atol=1e-6)  # as above
        mse = torch.mean((alone(z[:, :-1])[0] - z[:, 1:]) ** 2)
        mse.backward()  # the ensemble loss's gradient of block k is member k's own
        g = {n: p.grad for n, p in alone.rnn.named_parameters()}
        for name, p, gates, size, cols in rnn._blocks():
            if name.startswith("rnn."):
                own = p.grad[rnn._index(k, gates, size, cols)]
                # float32 rounding: measured max |diff| 6e-9 (gru) on gradients up to 0.17
                torch.testing.assert_close(own, g[name[4:]], rtol=0, atol=1e-6)


def test_single_member_equals_latent_rnn():
    torch.manual_seed(5)
    plain = LatentRNN(D, 16, "lstm", 1, True).eval()
    one = EnsembleRNN(D, 16, "lstm", 1, True, members=1, head="point", seed=5).eval()
    z = torch.randn(4, 6, D)
    with torch.no_grad():
        p1, h1 = plain(z)
        p2, h2 = one(z)
        assert torch.equal(p1, p2) and all(torch.equal(a, b) for a, b in zip(h1, h2, strict=True))
        f1, _ = plain.free_run(p1[:, -1], h1, 60)
        f2, _ = one.free_run(p2[:, -1], h2, 60)
    assert torch.equal(f2[:, 0], p2[:, -1])
    # the ensemble's free run uses the native kernel, LatentRNN's oneDNN: float32 rounding
    # over 60 fed-back steps, measured max |diff| 1.9e-6 on latents up to |19| (rel 1e-7)
    torch.testing.assert_close(f1, f2, rtol=0, atol=1e-5)


def test_free_run_feeds_the_ensemble_mean_back():
    rnn = make().eval()
    z = torch.randn(2, 5, D)
    with torch.no_grad():
        pred, hidden = rnn(z)
        out, _ = rnn.free_run(pred[:, -1], hidden, 6)
        loop, x, h = [pred[:, -1]], pred[:, -1], hidden
        for _ in range(5):
            p, h = rnn(x[:, None], h)  # forward: every member reads the mean
            x = p[:, 0]
            loop.append(x)
        own, _ = rnn.free_run_members(pred[:, -1, None].expand(2, K, D), hidden, 6)
    assert out.shape == (2, 6, D) and torch.equal(out[:, 0], pred[:, -1])
    # native kernel (free_run) vs oneDNN (forward): float32 rounding, measured max |diff|
    # 2.4e-7 on O(1) latents; a mean-vs-own-feedback mix-up is 6e-2 (the check below)
    torch.testing.assert_close(out, torch.stack(loop, dim=1), rtol=0, atol=1e-5)
    # members on their own predictions drift apart from the fed-back mean (measured 6e-2)
    assert (own.mean(dim=2) - out)[:, 2:].abs().max() > 1e-3


def test_spread_zero_for_identical_members_and_scaled_by_latent_var():
    rnn = make().eval()
    rnn.latent_var.copy_(torch.tensor([0.5, 2.0, 4.0]))
    z = torch.randn(2, 5, D)
    with torch.no_grad():
        preds, _ = rnn.forward_members(z)
        _, _, u = rnn.forward_spread(z)
    by_hand = (preds.var(dim=2, unbiased=False) / torch.tensor([0.5, 2.0, 4.0])).mean(dim=-1)
    # the same formula: measured rel diff 0; rtol allows float32 reordering of u ~1e-3..1e-2
    torch.testing.assert_close(u, by_hand, rtol=1e-5, atol=1e-9)
    assert (u > 0).all()
    same = make().eval()
    one = same.member(0)
    for k in range(K):
        same._put(k, one, None)
    with torch.no_grad():
        pred, hidden, u = same.forward_spread(z)
        _, _, u_run = same.free_run_spread(pred[:, -1], hidden, 5)
    assert torch.count_nonzero(u) == 0 and torch.count_nonzero(u_run) == 0


def test_gaussian_head_total_variance():
    rnn = make(head="gaussian").eval()
    rnn.latent_var.copy_(torch.tensor([0.5, 2.0, 4.0]))
    z = torch.randn(2, 5, D)
    with torch.no_grad():
        _, _, u = rnn.forward_spread(z)
        h, _ = rnn.core.rnn(z.repeat(1, 1, K))
        mus, sig2 = [], []
        for k in range(K):  # by hand, member by member from the blocks
            hk = h[..., k * H : (k + 1) * H]
            wk = rnn.core.readout.weight[k * D : (k + 1) * D, k * H : (k + 1) * H]
            vk = rnn.logvar.weight[k * D : (k + 1) * D, k * H : (k + 1) * H]
            mus.append(z + hk @ wk.T)
            sig2.append(torch.exp(hk @ vk.T + rnn.logvar.bias[k * D : (k + 1) * D]))
    mu, s2 = torch.stack(mus), torch.stack(sig2)
    total = s2.mean(dim=0) + ((mu - mu.mean(dim=0)) ** 2).mean(dim=0)  # law of total variance
    by_hand = (total / torch.tensor([0.5, 2.0, 4.0])).mean(dim=-1)
    # block read-outs vs per-member matmuls: measured rel diff 0 on u ~1.0; rtol allows
    # float32 reordering (a few ulp)
    torch.testing.assert_close(u, by_hand, rtol=1e-5, atol=1e-8)


def test_free_run_spread_first_column_is_the_spread_of_z_next():
    rnn = make().eval()
    z = torch.randn(2, 5, D)
    with torch.no_grad():
        pred, hidden, u = rnn.forward_spread(z)
        out, h2, s = rnn.free_run_spread(pred[:, -1], hidden, 4)
        assert torch.equal(s[:, 0], u[:, -1]) and s.shape == (2, 4) and (s[:, 1:] > 0).all()
        _, _, s_next = rnn.free_run_spread(out[:, -1], h2, 3)  # continues the last prediction
        assert torch.equal(s_next[:, 0], s[:, -1])
        _, _, s_other = rnn.free_run_spread(out[:, -1] + 1, h2, 3)
        assert torch.isnan(s_other[:, 0]).all() and not torch.isnan(s_other[:, 1:]).any()


def test_build_rnn_and_prediction_loss_for_a_single_propagator():
    plain = build_rnn(D, {"cell": "gru", "hidden": H, "ensemble": 1})
    assert type(plain) is LatentRNN
    assert isinstance(build_rnn(D, {"hidden": H, "head": "gaussian"}), EnsembleRNN)
    z = torch.randn(2, 5, D)
    loss, _ = prediction_loss(plain, z[:, :-1], z[:, 1:], None)
    assert torch.equal(loss, torch.mean((plain(z[:, :-1])[0] - z[:, 1:]) ** 2))


def _spec(ensemble=3):
    return {"system": "fhn", "state_shape": [2, 11], "box": None,
            "autoencoder": {"kind": "mlp", "latent_dim": D, "layers": 1, "width": 8},
            "rnn": {"cell": "lstm", "hidden": H, "residual": True, "ensemble": ensemble}}  # fmt: skip


def test_checkpoint_round_trip_keeps_predictions(tmp_path):
    torch.manual_seed(0)
    model = LED(_spec())
    model.scaler.fit(np.random.default_rng(0).normal(size=(20, 2, 11)))
    model.rnn.latent_var.copy_(torch.tensor([0.5, 2.0, 4.0]))
    path = save_checkpoint(tmp_path / "e.pt", model, config={"system": "fhn"}, fingerprint="x")
    loaded, _ = load_model(path, system="fhn")
    assert isinstance(loaded.rnn, EnsembleRNN) and loaded.rnn.members == 3
    states = np.random.default_rng(1).normal(size=(2, 4, 2, 11))
    model.eval()
    assert torch.equal(loaded.forecast_latent(states, 9), model.forecast_latent(states, 9))
    with torch.no_grad():
        z = model.encode(states)
        assert torch.equal(loaded.rnn.forward_spread(z)[2], model.rnn.forward_spread(z)[2])


def test_training_an_ensemble_once(caplog):
    torch.manual_seed(0)
    model = LED(_spec())
    t = torch.arange(40.0)[None, :, None] * torch.tensor([0.3, 0.5, 0.7])
    z = torch.sin(t + torch.arange(3.0)[:, None, None]) * torch.tensor([1.0, 2.0, 0.5])
    raw = {"system": "fhn", "data": "-", "train_rnn": {
        "epochs": 4, "sequence_length": 5, "hidden_propagation": 10, "restarts": 4,
        "validation": "free_run", "batch_size": 4}}  # fmt: skip
    with caplog.at_level(logging.INFO, logger="ledmus"):
        hist = train_rnn_restarts(model, z, z[:2], resolve(raw)["train_rnn"], 7, False)
    assert "restarts=4 ignored" in caplog.text and len(hist["restarts"]) == 1
    assert len(hist["member_free_run_val"]) == 3 and len(hist["train"]) == 4
    assert torch.equal(model.rnn.latent_var, z.var(dim=(0, 1)))
    masks = model.rnn.block_masks()
    for name, p, *_ in model.rnn._blocks():
        assert torch.count_nonzero(p[~masks[name]]) == 0, name


def test_config_names_the_field():
    with pytest.raises(ValueError, match="config rnn.ensemble must be an integer >= 1"):
        resolve({"system": "fhn", "data": "x", "rnn": {"ensemble": 0}})
    with pytest.raises(ValueError, match="config rnn.head='mixture' unknown"):
        resolve({"system": "fhn", "data": "x", "rnn": {"head": "mixture"}})
    assert "ensemble" not in resolve({"system": "fhn", "data": "x"})["rnn"]  # old specs as before


def test_macro_model_reports_the_ensemble_uncertainty_from_the_first_step():
    """The coupler's view (NetworkMacro): after a whole-ensemble assimilate, propagate's
    first uncertainty is the spread of the teacher-forced prediction (it was NaN when
    assimilate bypassed forward_spread), and a member-subset assimilate gives the same."""
    from ledmus.surrogates.led_macro import NetworkMacro

    torch.manual_seed(0)
    net = LED(_spec())
    net.scaler.fit(np.random.default_rng(0).normal(size=(20, 2, 11)))
    net.rnn.latent_var.copy_(torch.tensor([0.5, 2.0, 4.0]))
    states = np.random.default_rng(1).normal(size=(2, 4, 2, 11))
    whole, parts = NetworkMacro(net), NetworkMacro(net)
    m = whole.restrict(states)
    whole.assimilate(m)
    z, u = whole.propagate(5)
    assert u.shape == (2, 5) and np.isfinite(u).all() and (u > 0).all()
    with torch.no_grad():
        _, _, spread = net.rnn.forward_spread(net.as_tensor(m))
    assert np.array_equal(u[:, 0], spread[:, -1].double().numpy())
    parts.assimilate(m[:, :2])
    for k in (1, 0):
        parts.assimilate_members(m[[k], 2:], np.array([k]))
    z2, u2 = parts.propagate_members(5, np.array([0, 1]))
    # a member alone vs its batch row: float32 GEMMs of different batch sizes may differ
    # by a few ulp (measured: 0 here)
    np.testing.assert_allclose(u2, u, rtol=1e-5)
    np.testing.assert_allclose(z2, z, rtol=1e-5, atol=1e-6)
