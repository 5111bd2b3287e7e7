"""Concurrent learning of the moment closure (issue 10 item 4): the ensemble deviation,
the trust band [lo, hi), the label cap, the stop rule and ``ledmus learn``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from ledmus.cli import main
from ledmus.surrogates.checkpoint import load_model
from ledmus.surrogates.closure import learn as ln
from ledmus.surrogates.closure.fv import conserved
from ledmus.surrogates.closure.lift import load_decoder
from ledmus.surrogates.closure.train import generate, resolve_config

MODELS = Path(__file__).resolve().parents[1] / "models"
TINY = {"iterations": 1, "explore": 2, "retrain_steps": 2, "label_cap": 1, "nx": 16,
        "t_end": 0.02, "every": 2, "test_eps": [0.1], "test_profiles": 1, "members": 2,
        "closure": str(MODELS / "closure_bgk.pt"),
        "decoder": str(MODELS / "closure_bgk_decoder.pt")}  # fmt: skip


@pytest.fixture(scope="module")
def parts():
    base, payload = load_model(MODELS / "closure_bgk.pt")
    decoder = load_decoder(MODELS / "closure_bgk_decoder.pt", payload)
    init = generate(resolve_config({"data": {"runs": 1, "batch": 1, "nx": 16, "t_end": 0.02,
                                             "every": 2}}))  # fmt: skip
    return base, decoder, init


def test_learn_config_errors_name_the_field():
    with pytest.raises(ValueError, match="unknown config field learn.trust; allowed: members"):
        ln.resolve_learn({"trust": 1})
    with pytest.raises(ValueError, match="learn.lo < learn.hi"):
        ln.resolve_learn({"lo": 0.5, "hi": 0.5})
    with pytest.raises(ValueError, match="learn.members must be an integer >= 2"):
        ln.resolve_learn({"members": 1})


def test_deviation_is_zero_for_identical_members_and_grows_with_disagreement(parts):
    base = parts[0]
    x = (np.arange(16) + 0.5) / 16
    rho, u, T = (
        (1 + 0.2 * np.sin(2 * np.pi * x))[None],
        0.1 * np.cos(2 * np.pi * x)[None],
        1 + 0 * x[None],
    )
    Q = conserved(rho, u, T, 0.01 * np.ones((1, base.M, 16)))
    same = ln.ensemble(base, 2, seed=0)
    same[1].load_state_dict(same[0].state_dict())
    assert ln.deviation(same, Q, 0.1)[0] == 0.0
    devs = []
    for scale in (1e-3, 1e-2):
        nets = ln.ensemble(base, 2, seed=0)
        nets[1].load_state_dict(nets[0].state_dict())
        with torch.no_grad():
            for p in nets[1].hnet.parameters():
                p.add_(scale)
        devs.append(ln.deviation(nets, Q, 0.1)[0])
    assert 0 < devs[0] < devs[1]


def fake_deviation(values):
    it = iter(values)
    return lambda nets, Q, eps: np.array([next(it)])


@pytest.mark.parametrize("strategy", ["deviation", "random"])
def test_labels_come_from_the_trust_band_capped(parts, monkeypatch, strategy):
    base, decoder, init = parts
    cfg = ln.resolve_learn({**TINY, "lo": 0.1, "hi": 1.0, "label_cap": 1})
    # 2 profiles x 2 states: accurate, in band (0.5), failed (3.0), in band (0.2)
    monkeypatch.setattr(ln, "deviation", fake_deviation([0.01, 0.5, 3.0, 0.2]))
    monkeypatch.setattr(ln, "test_error", lambda net, cfg: 0.0)
    log = ln.run(base, decoder, cfg, strategy=strategy, initial=init)["iterations"]
    e = log[0]
    assert e["explored"] == 4 and e["labelled"] == 1 and e["accurate_ratio"] == 0.25
    assert e["candidate_ratio"] == 0.5 and e["failed_ratio"] == 0.25
    if strategy == "deviation":
        assert e["labelled_deviation"] == [0.5]  # the most deviating state in [lo, hi)
    assert e["cells"] > init["q"].size  # the burst's cells were added


def test_the_loop_stops_when_the_accurate_ratio_reaches_the_target(parts, monkeypatch):
    base, decoder, init = parts
    cfg = ln.resolve_learn({**TINY, "iterations": 3, "target": 0.75})
    monkeypatch.setattr(ln, "deviation", fake_deviation([0.0] * 16))
    monkeypatch.setattr(ln, "test_error", lambda net, cfg: 0.0)
    log = ln.run(base, decoder, cfg, initial=init)["iterations"]
    assert len(log) == 1 and log[0]["stopped"] == "accurate ratio reached"
    assert log[0]["labelled"] == 0


def test_ledmus_learn_writes_the_log_and_the_plot(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({"kind": "closure", "system": "bgk", "learn": TINY}))
    assert main(["-q", "learn", str(config), "--out", str(tmp_path / "out")]) == 0
    log = json.loads((tmp_path / "out" / "learn_log.json").read_text())
    assert set(log["runs"]) == {"deviation", "random"}
    for its in log["runs"].values():
        assert {"explored", "labelled", "accurate_ratio", "test_error", "wall_s"} <= set(its[0])
    assert (tmp_path / "out" / "learn.png").is_file()
    # the final ensemble is a closure_hmm checkpoint: the model of an HMM run
    from ledmus.surrogates import load_macro_model

    macro = load_macro_model(tmp_path / "out" / "ensemble_deviation.pt")
    assert macro.kind == "closure_hmm" and len(macro.net.members) == TINY.get("members", 4)
    base, _ = load_model(MODELS / "closure_bgk.pt")
    # the encoder stays the shipped closure's (frozen); the closure networks were trained
    for member in macro.net.members:
        for a, b in zip(member.wnet.parameters(), base.wnet.parameters(), strict=True):
            assert torch.equal(a, b)
    h = [torch.cat([p.flatten() for p in m.hnet.parameters()]) for m in macro.net.members]
    assert not torch.equal(h[0], h[1])
