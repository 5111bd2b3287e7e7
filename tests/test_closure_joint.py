"""Joint training of encoder, closure and decoder (seed 002; closure/joint.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ledmus.surrogates.checkpoint import load_model
from ledmus.surrogates.closure.joint import joint_data, joint_loss, train_joint
from ledmus.surrogates.closure.lift import MomentDecoder, load_decoder
from ledmus.surrogates.closure.ml import MomentNet
from ledmus.surrogates.closure.train import closure_loss, generate, resolve_config

TINY = {"kind": "closure", "system": "bgk", "seed": 0,
        "data": {"runs": 2, "batch": 2, "nx": 16, "t_end": 0.02, "every": 2},
        "train": {"steps": 3, "batch_size": 32, "lr": 1e-3}}  # fmt: skip


def batch(n: int = 64) -> tuple[MomentNet, MomentDecoder, dict[str, torch.Tensor]]:
    torch.manual_seed(0)
    net = MomentNet().double()
    dec = MomentDecoder({"n_moments": net.M}).double()
    data = joint_data(resolve_config(TINY))
    return net, dec, {k: torch.from_numpy(v[:n]) for k, v in data.items()}


@pytest.mark.parametrize("ics", [None, ["riemann"]])
def test_joint_data_holds_the_closure_training_cells(ics):
    """The closure part of the joint data is the default pipeline's data, cell by cell
    (with the config's choice of initial conditions too)."""
    raw = TINY if ics is None else {**TINY, "data": {**TINY["data"], "ics": ics}}
    cfg = resolve_config(raw)
    a, b = joint_data(cfg), generate(cfg)
    for k in b:
        np.testing.assert_array_equal(a[k], b[k])
    # the decoder part: f and M[f] in units of rho/sqrt(T) have unit mass in dxi
    np.testing.assert_allclose((a["m"] * a["dxi"][:, None]).sum(1), 1.0, rtol=1e-12)
    np.testing.assert_allclose((a["f"] * a["dxi"][:, None]).sum(1), 1.0, rtol=1e-12)


def test_without_the_decoder_term_the_loss_is_the_closure_loss():
    net, dec, b = batch()
    loss, closure, *_ = joint_loss(net, dec, b, lambda_rec=0.0, lambda_eta=0.1, lambda_w=0.1)
    ref = closure_loss(net, {k: b[k] for k in ("xi", "gdv", "q", "log_eps")})
    assert float(loss.detach()) == float(closure.detach()) == float(ref.detach())


def test_the_reconstruction_trains_the_encoder():
    """The decoder's reconstruction error reaches the weight functions w(xi) through W
    (a detached W, the sequential pipeline, gives them no gradient)."""
    net, dec, b = batch()
    _, _, rec, _, _ = joint_loss(net, dec, b, lambda_rec=1.0, lambda_eta=0.1, lambda_w=0.1)
    rec.backward()
    grad = sum(float(p.grad.abs().sum()) for p in net.wnet.parameters() if p.grad is not None)
    assert grad > 1e-8
    assert all(p.grad is None or float(p.grad.abs().sum()) == 0 for p in net.hnet.parameters())


def test_train_joint_writes_a_closure_and_its_decoder(tmp_path):
    torch.set_num_threads(1)
    closure, decoder = train_joint(TINY, tmp_path)
    net, payload = load_model(closure)
    dec = load_decoder(decoder, payload)  # refuses a decoder of another closure
    assert payload["kind"] == "closure" and payload["config"]["joint"]["lambda_rec"] == 1.0
    assert len(payload["history"]["reconstruction"]) == 3 and dec.M == net.M


def test_a_bad_config_field_is_one_line(tmp_path, capsys):
    from ledmus.cli import main

    (tmp_path / "c.yaml").write_text("kind: closure\ndata: {runs: 0}\n")
    code = main(["closure", "joint", str(tmp_path / "c.yaml"), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1, err
    assert "config data.runs must be an integer >= 1, got 0" in err
