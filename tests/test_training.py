"""Training from a config, the train/evaluate CLI, and the shipped FHN model."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from ledmus.cli import main
from ledmus.datasets import make_dataset
from ledmus.surrogates.checkpoint import load_model
from ledmus.surrogates.config import resolve
from ledmus.surrogates.training import train_from_config

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def fhn_small(tmp_path_factory):
    out = tmp_path_factory.mktemp("fhn_small")
    make_dataset("fhn", out, scale="small", seed=0, progress=False)
    return out


def tiny_config(data, system="fhn"):
    return {
        "system": system, "data": str(data), "seed": 3,
        "autoencoder": {"kind": "mlp", "latent_dim": 4, "layers": 2, "width": 32},
        "rnn": {"cell": "lstm", "hidden": 16},
        "train_autoencoder": {"epochs": 40, "patience": 40},
        "train_rnn": {"epochs": 40, "patience": 40, "sequence_length": 10, "hidden_propagation": 30},
    }  # fmt: skip


def test_two_stage_training_reduces_both_losses_and_is_reproducible(fhn_small, tmp_path):
    cfg = tiny_config(fhn_small)
    path = train_from_config(cfg, tmp_path / "m.pt", progress=False)
    model, payload = load_model(path, system="fhn")
    hist = payload["history"]
    for stage in ("autoencoder", "rnn"):
        # 40 epochs from random weights: the validation loss must fall well below its start
        assert min(hist[stage]["val"]) < 0.5 * hist[stage]["val"][0], stage
    assert payload["config"] == cfg and len(payload["fingerprint"]) == 64
    assert (tmp_path / "m_loss.png").stat().st_size > 1000
    again = train_from_config(cfg, tmp_path / "m2.pt", progress=False)
    w1, w2 = (load_model(p)[0].state_dict() for p in (path, again))
    for key in w1:
        torch.testing.assert_close(w1[key], w2[key])  # same seed, same weights


def test_rnn_restarts_keep_the_best_free_run_validation(fhn_small, tmp_path):
    cfg = tiny_config(fhn_small)
    cfg["train_autoencoder"] = {"epochs": 10}
    cfg["train_rnn"] |= {"epochs": 15, "restarts": 3, "validation": "free_run"}
    model, payload = load_model(train_from_config(cfg, tmp_path / "r.pt", progress=False))
    hist = payload["history"]["rnn"]
    scores = [run["free_run_val"] for run in hist["restarts"]]
    assert [run["seed"] for run in hist["restarts"]] == [3, 4, 5]
    assert hist["chosen_restart"] == int(np.argmin(scores))
    assert len(set(scores)) == 3  # independent initialisations really differ
    # the saved propagator is the chosen one: its free-run score is reproduced exactly
    from ledmus.surrogates.fitting import encode_sequences, free_run_loss
    from ledmus.trajectory import read_trajectory

    z_val = encode_sequences(model, read_trajectory(fhn_small / "val.h5").states)
    assert free_run_loss(model, z_val, 10) == pytest.approx(min(scores), rel=1e-5)


def test_config_errors_name_the_field(fhn_small):
    with pytest.raises(ValueError, match="unknown key.*layer_count.*autoencoder"):
        resolve({"system": "fhn", "data": "x", "autoencoder": {"layer_count": 3}})
    with pytest.raises(ValueError, match="missing required key 'data'"):
        resolve({"system": "fhn"})
    with pytest.raises(ValueError, match="train_rnn.validation='best'.*teacher_forced, free_run"):
        resolve({"system": "fhn", "data": "x", "train_rnn": {"validation": "best"}})
    with pytest.raises(ValueError, match="train_rnn.hidden_propagation"):
        resolve({"system": "fhn", "data": "x", "train_rnn": {"hidden_propagation": 5}})
    with pytest.raises(ValueError, match="config says 'ks'"):
        train_from_config(
            {**tiny_config(fhn_small), "system": "ks"}, fhn_small / "x.pt", progress=False
        )
    with pytest.raises(ValueError, match="device='tpu'"):
        train_from_config(tiny_config(fhn_small), fhn_small / "x.pt", device="tpu", progress=False)


def test_the_autoencoder_architecture_keeps_its_old_name_kind():
    """``autoencoder.architecture`` was ``autoencoder.kind``: the old name resolves to
    the new one, both at once is an error, and a bad value names the field."""
    base = {"system": "fhn", "data": "x"}
    old = resolve({**base, "autoencoder": {"kind": "conv"}})["autoencoder"]
    assert old["architecture"] == "conv" and "kind" not in old
    assert old == resolve({**base, "autoencoder": {"architecture": "conv"}})["autoencoder"]
    assert resolve(base)["autoencoder"]["architecture"] == "mlp"
    with pytest.raises(ValueError, match="autoencoder.architecture and its old name autoencoder"):
        resolve({**base, "autoencoder": {"kind": "conv", "architecture": "mlp"}})
    with pytest.raises(
        ValueError, match="autoencoder.architecture='cnn' unknown; allowed: mlp, conv"
    ):
        resolve({**base, "autoencoder": {"kind": "cnn"}})


def test_cli_train_and_evaluate(fhn_small, tmp_path):
    cfg_path = tmp_path / "tiny.yaml"
    cfg_path.write_text(yaml.safe_dump(tiny_config(fhn_small)))
    model = tmp_path / "tiny.pt"
    assert main(["-q", "train", str(cfg_path), "--out", str(model)]) == 0
    out = tmp_path / "eval"
    args = ["-q", "evaluate", str(model), "--t-warm", "10", "--horizon", "50",
            "--json", str(tmp_path / "m.json"), "--out-dir", str(out)]  # fmt: skip
    assert main(args) == 0
    result = json.loads((tmp_path / "m.json").read_text())
    assert result["n_ics"] == 4 and result["horizon"] == 50
    assert 0 < result["mnad_u"] < 1 and 0 < result["mnad_v"] < 1
    for png in ("contours.png", "error_vs_time.png", "latents.png"):
        assert (out / png).stat().st_size > 1000
    assert json.loads((out / "metrics.json").read_text())["mnad_u"] == result["mnad_u"]


def test_evaluate_refuses_data_of_another_system(fhn_small, tmp_path):
    from ledmus.evaluation import evaluate

    path = train_from_config({**tiny_config(fhn_small), "train_autoencoder": {"epochs": 1},
                              "train_rnn": {"epochs": 1, "sequence_length": 10, "hidden_propagation": 30}},
                             tmp_path / "m.pt", progress=False)  # fmt: skip
    make_dataset("ks", tmp_path / "ks", scale="small", progress=False)
    with pytest.raises(ValueError, match="for system 'ks', the model for 'fhn'"):
        evaluate(path, tmp_path / "ks" / "test.h5")


def test_shipped_fhn_model_loads_and_records_the_config():
    path = ROOT / "models" / "led_fhn.pt"
    model, payload = load_model(path, system="fhn")
    config = yaml.safe_load((ROOT / "configs" / "fhn.yaml").read_text())
    # the checkpoint predates the rename autoencoder.kind -> architecture: the same
    # config once resolved (the old name is read as the new one)
    assert payload["config"]["autoencoder"]["kind"] == config["autoencoder"]["architecture"]
    assert resolve(payload["config"]) == resolve(config)
    assert model.state_shape == (2, 101) and model.latent_dim == 8
    z = model.forecast_latent(np.zeros((2, 60, 2, 101)), 5)
    assert z.shape == (2, 5, 8) and torch.all(torch.isfinite(z))


@pytest.mark.parametrize(("system", "shape"), [("ks", (1, 64)), ("ad3d", (1000, 3))])
def test_shipped_ks_and_ad3d_models_load_and_record_their_configs(system, shape):
    model, payload = load_model(ROOT / "models" / f"led_{system}.pt", system=system)
    config = yaml.safe_load((ROOT / "configs" / f"{system}.yaml").read_text())
    assert resolve(payload["config"]) == resolve(config)
    assert model.state_shape == shape and model.latent_dim == 8


@pytest.fixture(scope="module")
def tiny_model(fhn_small, tmp_path_factory):
    cfg = {**tiny_config(fhn_small), "train_autoencoder": {"epochs": 2},
           "train_rnn": {"epochs": 2, "sequence_length": 10, "hidden_propagation": 30}}  # fmt: skip
    return train_from_config(cfg, tmp_path_factory.mktemp("tiny") / "m.pt", progress=False)


def test_evaluate_generates_a_missing_test_split_deterministically(fhn_small, tmp_path, caplog):
    import shutil

    from ledmus.evaluation import evaluate

    data = tmp_path / "fresh"  # a clone with the training data but no test split
    data.mkdir()
    for name in ("train.h5", "val.h5", "manifest.json"):
        shutil.copy(fhn_small / name, data / name)
    cfg = {**tiny_config(data), "train_autoencoder": {"epochs": 1},
           "train_rnn": {"epochs": 1, "sequence_length": 10, "hidden_propagation": 30}}  # fmt: skip
    model = train_from_config(cfg, tmp_path / "m.pt", progress=False)
    with caplog.at_level("INFO", logger="ledmus"):
        result = evaluate(model, t_warm=10, horizon=20)
    assert "generating the test split" in caplog.text
    from ledmus.trajectory import read_trajectory

    made, original = (read_trajectory(p / "test.h5") for p in (data, fhn_small))
    np.testing.assert_array_equal(made.states, original.states)  # same seed, same split
    np.testing.assert_array_equal(made.extra["offsets"], original.extra["offsets"])
    assert result["n_ics"] == len(original.extra["offsets"])
    manifest = json.loads((data / "manifest.json").read_text())
    assert set(manifest["splits"]) == {"train", "val", "test"}  # the others kept


def synthetic_test_split(path, windows: int, length: int, rng) -> None:
    """A test split of smooth random fields with evaluation windows (no solver needed)."""
    from ledmus.solvers import make
    from ledmus.trajectory import write_trajectory

    total = length + windows
    t = np.arange(total, dtype=np.float64)
    x = np.linspace(0, 2 * np.pi, 101)
    phase = rng.uniform(0, 2 * np.pi, 2)
    states = np.stack([np.cos(x[None] + 0.01 * t[:, None] + p) for p in phase], axis=1)[None]
    write_trajectory(path, states, t, make("fhn"), 0, attrs={"window_length": length},
                     extra={"offsets": np.arange(windows)})  # fmt: skip


def test_evaluate_streams_the_windows(tiny_model, tmp_path, monkeypatch, rng):
    """Decoded windows are never all in memory: with chunks of about 1 MB the numpy peak
    stays far below the size of all decoded windows, and the metrics equal one chunk."""
    import tracemalloc

    from ledmus import evaluation
    from ledmus.surrogates import forecast

    synthetic_test_split(tmp_path / "test.h5", windows=24, length=1010, rng=rng)
    all_decoded = 24 * 1000 * 2 * 101 * 8  # bytes of all predictions: 38.8 MB
    monkeypatch.setattr(forecast, "CHUNK_BYTES", 2**20)  # 1 MB: one window per chunk
    tracemalloc.start()
    small = evaluation.evaluate(tiny_model, tmp_path / "test.h5", t_warm=10, horizon=1000)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    # measured peak about 11 MB (ref + prediction + NAD of one window, the test run and the
    # per-window NAD of all 24); holding all windows would need > 2 x 38.8 MB
    assert peak < 0.5 * all_decoded, peak
    monkeypatch.setattr(forecast, "CHUNK_BYTES", 2**40)  # everything in one chunk
    one = evaluation.evaluate(tiny_model, tmp_path / "test.h5", t_warm=10, horizon=1000)
    for key in ("mnad_u", "mnad_v", "mnad_u_451"):
        # float32 decoding of the same latents per chunk or at once: sums in another order
        assert small[key] == pytest.approx(one[key], rel=1e-6)
