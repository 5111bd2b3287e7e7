"""The restart objective (training and selecting propagators for the restarts a coupled
run makes) and the phase/shape metric of travelling waves."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from ledmus import metrics
from ledmus.surrogates import fitting
from ledmus.surrogates.config import resolve
from ledmus.surrogates.ensemble import EnsembleRNN
from ledmus.surrogates.online import OnlineTrainer
from ledmus.surrogates.propagators import LatentRNN
from ledmus.surrogates.replay import ReplayBuffer
from ledmus.surrogates.restart import (
    RESTART_DEFAULTS,
    restart_loss,
    restart_val_loss,
    validation_windows,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")

X = np.linspace(0.0, 100.0, 101)


def pulse(t: float, speed: float = 0.2) -> np.ndarray:
    """A Gaussian pulse travelling right at ``speed`` grid units per time unit."""
    return np.exp(-(((X - 30.0 - speed * t) / 8.0) ** 2))


# ----------------------------------------------------------------------- phase / shape
@pytest.mark.parametrize("shift", [0.37, -0.81, 2.5, -4.2])
def test_a_pulse_shifted_by_a_known_time_is_recovered(shift: float) -> None:
    ref = np.stack([pulse(t) for t in range(120)])
    steps = np.arange(20, 100)
    pred = np.stack([pulse(t + shift) for t in steps])
    lag, shape = metrics.phase_shape(ref, pred, dt=1.0, window=10, index=steps)
    # The bound is 1e-3 time units; linear interpolation between reference
    # samples one time unit apart leaves 1.5e-5 (measured) for this pulse.
    np.testing.assert_allclose(lag, shift, atol=1e-4)
    # after the shift only the interpolation error is left: 2.1e-5 measured
    assert shape.max() < 1e-4


def test_a_forecast_that_falls_behind_has_a_negative_lag_in_time_units() -> None:
    # dt = 0.5: the reference samples are half a time unit apart; the forecast shows the
    # state the reference had 1.3 time units earlier
    dt = 0.5
    ref = np.stack([pulse(k * dt) for k in range(100)])
    pred = np.stack([pulse(k * dt - 1.3) for k in range(40, 60)])
    lag, _ = metrics.phase_shape(ref, pred, dt=dt, window=6, index=np.arange(40, 60))
    np.testing.assert_allclose(lag, -1.3, atol=1e-4)  # interpolation error, as above


def test_the_shift_is_searched_in_the_reference_not_in_the_prediction() -> None:
    # one predicted state: nothing to interpolate in the prediction, so only a search in
    # the reference can find the shift; a reference of a faster pulse must give a
    # different lag than the same forecast against a slower one
    ref = np.stack([pulse(t) for t in range(60)])
    pred = pulse(30.6)[None]
    lag, _ = metrics.phase_shape(ref, pred, window=5, index=np.array([30]))
    assert abs(lag[0] - 0.6) < 1e-4  # interpolation error, as above
    faster = np.stack([pulse(t, speed=0.4) for t in range(60)])
    lag2, _ = metrics.phase_shape(faster, pred, window=40, index=np.array([30]))
    assert abs(lag2[0] - (30.6 * 0.2 / 0.4 - 30)) < 1e-3  # matched at t = 15.3 of the fast one


def test_phase_shape_rejects_mismatched_fields() -> None:
    with pytest.raises(ValueError, match="same field shape"):
        metrics.phase_shape(np.zeros((5, 4)), np.zeros((2, 3)))
    with pytest.raises(ValueError, match="window"):
        metrics.phase_shape(np.zeros((5, 4)), np.zeros((2, 4)), window=0)


# ----------------------------------------------------------------------- the loss
def manual_restart_loss(rnn: LatentRNN, warm: torch.Tensor, target: torch.Tensor) -> float:
    """Step by step: teacher-force ``warm``, then feed back each prediction."""
    hidden = None
    for t in range(warm.shape[1]):
        pred, hidden = rnn(warm[:, t : t + 1], hidden)
    z = pred[:, -1]
    errs = [torch.mean((z - target[:, 0]) ** 2)]
    for k in range(1, target.shape[1]):
        pred, hidden = rnn(z[:, None], hidden)
        z = pred[:, -1]
        errs.append(torch.mean((z - target[:, k]) ** 2))
    return float(torch.stack(errs).mean())


def test_the_restart_loss_is_the_error_of_the_free_run_after_the_warm_up() -> None:
    torch.manual_seed(0)
    rnn = LatentRNN(3, hidden=7, residual=True).double()
    z = torch.randn(4, 25, 3, dtype=torch.float64).cumsum(dim=1) * 0.1
    warm, target = z[:, :10], z[:, 10:]
    got = restart_loss(rnn, warm, target).item()
    # independent step-by-step loop: equal to rounding (float64, 15 steps)
    assert got == pytest.approx(manual_restart_loss(rnn, warm, target), rel=1e-12)
    # the one-step (teacher-forced) error of the same steps is a different number
    pred, _ = rnn(z[:, :-1])
    teacher = float(torch.mean((pred[:, 9:] - target) ** 2))
    assert abs(got - teacher) > 0.1 * teacher


def test_each_ensemble_member_runs_free_on_its_own_predictions() -> None:
    torch.manual_seed(1)
    ens = EnsembleRNN(3, members=3, hidden=5, residual=True, seed=4).double()
    z = torch.randn(2, 20, 3, dtype=torch.float64).cumsum(dim=1) * 0.1
    got = restart_loss(ens, z[:, :8], z[:, 8:]).item()
    members = [manual_restart_loss(ens.member(k).double(), z[:, :8], z[:, 8:]) for k in range(3)]
    # the sum of the members' standalone losses (each gradient its own), to rounding
    assert got == pytest.approx(sum(members), rel=1e-10)


def test_restart_validation_windows_fit_the_sequences() -> None:
    cfg = {**RESTART_DEFAULTS, "warmup": [10, 60], "horizon": 50}
    wins = validation_windows(451, cfg)
    assert wins[0] == (0, 10) and wins[-1][1] == 60
    assert all(s >= 0 and s + w + 50 <= 451 for s, w in wins)
    assert wins[-1][0] + 60 + 50 == 451  # the last window ends at the last step


# ----------------------------------------------------------------------- config
BASE = {"system": "fhn", "data": "-", "train_rnn": {"hidden_propagation": 30}}


def test_the_restart_subsection_is_validated_field_by_field() -> None:
    cfg = resolve({**BASE, "train_rnn": {"hidden_propagation": 30, "restart": {"horizon": 20}}})
    assert cfg["train_rnn"]["restart"] == {**RESTART_DEFAULTS, "horizon": 20}
    with pytest.raises(ValueError, match="train_rnn.restart horizon must be an integer >= 1"):
        resolve({**BASE, "train_rnn": {"restart": {"horizon": 0}}})
    with pytest.raises(ValueError, match="unknown .*train_rnn.restart.*horizn"):
        resolve({**BASE, "train_rnn": {"restart": {"horizn": 5}}})
    with pytest.raises(ValueError, match="min <= max"):
        resolve({**BASE, "train_rnn": {"restart": {"warmup": [60, 10]}}})
    with pytest.raises(ValueError, match="validation=coupled .* needs a train_rnn.restart"):
        resolve({**BASE, "train_rnn": {"validation": "coupled"}})


def test_a_config_without_the_subsection_trains_as_before() -> None:
    assert "restart" not in resolve(BASE)["train_rnn"]


# ----------------------------------------------------------------------- selection
class _Net(torch.nn.Module):
    """The attributes train_rnn_restarts reads of an LED."""

    def __init__(self) -> None:
        super().__init__()
        self.latent_dim, self.device, self.dtype = 2, torch.device("cpu"), torch.float32
        self.spec = {"rnn": {"cell": "lstm", "hidden": 3, "layers": 1, "residual": False}}
        self.rnn = torch.nn.Linear(1, 1)


def test_selection_weighs_the_restart_error_beside_the_long_free_run(monkeypatch) -> None:
    # restart 0 has the best long free run, restart 1 the best restarts: with the restart
    # error weighed (select_weight 4) restart 1 must win, without it restart 0
    free, restart = iter([1.0, 1.2, 1.0, 1.2]), iter([0.5, 0.1])
    monkeypatch.setattr(fitting, "train_rnn", lambda *a, **k: {"train": [0.0]})
    monkeypatch.setattr(fitting, "free_run_loss", lambda *a: next(free))
    monkeypatch.setattr(fitting, "restart_val_loss", lambda *a: next(restart))
    cfg = {
        "restarts": 2,
        "sequence_length": 3,
        "restart": {**RESTART_DEFAULTS, "select_weight": 4.0},
    }
    z = torch.zeros(1, 5, 2)
    hist = fitting.train_rnn_restarts(_Net(), z, z, cfg, seed=0, progress=False)
    assert hist["chosen_restart"] == 1
    assert [r["score"] for r in hist["restarts"]] == pytest.approx([3.0, 1.6])
    assert [r["restart_val"] for r in hist["restarts"]] == [0.5, 0.1]
    no_restart = {"restarts": 2, "sequence_length": 3}
    hist = fitting.train_rnn_restarts(_Net(), z, z, no_restart, seed=0, progress=False)
    assert hist["chosen_restart"] == 0


def tiny_led_and_latents() -> tuple[torch.nn.Module, torch.Tensor]:
    """A small FHN-shaped LED and smooth random latent sequences ``(2, 40, 3)``."""
    from ledmus.surrogates.led import LED

    torch.manual_seed(0)
    spec = {
        "system": "fhn",
        "state_shape": [2, 5],
        "box": None,
        "autoencoder": resolve(BASE)["autoencoder"] | {"latent_dim": 3, "width": 8},
        "rnn": {"cell": "lstm", "hidden": 6, "layers": 1, "residual": True},
    }
    return LED(spec), torch.randn(2, 40, 3).cumsum(dim=1) * 0.1


def test_training_with_the_objective_records_its_losses_and_scores() -> None:
    model, z = tiny_led_and_latents()
    cfg = resolve(
        {
            **BASE,
            "train_rnn": {
                "epochs": 3,
                "hidden_propagation": 10,
                "sequence_length": 5,
                "validation": "coupled",
                "restarts": 1,
                "restart": {"warmup": [3, 6], "horizon": 8},
            },
        }
    )["train_rnn"]
    hist = fitting.train_rnn_restarts(model, z, z, cfg, seed=0, progress=False)
    assert len(hist["train_restart"]) == 3 and np.isfinite(hist["train_restart"]).all()
    # the score is free run + select_weight * restart, recomputed from the parts
    assert hist["score"] == pytest.approx(hist["free_run_val"] + hist["restart_val"])
    assert hist["restart_val"] == pytest.approx(restart_val_loss(model.rnn, z, cfg["restart"]))
    with pytest.raises(ValueError, match="warmup max \\+ horizon = 14"):
        fitting.train_rnn(model, z[:, :12], z, cfg, progress=False)


# ----------------------------------------------------------------------- online
def test_the_online_trainer_uses_the_restart_objective() -> None:
    raw = {
        "autoencoder": {"latent_dim": 3, "layers": 1, "width": 8},
        "rnn": {"hidden": 6, "residual": True},
    }
    states = np.random.default_rng(100).normal(size=(40, 2, 5))
    buf = ReplayBuffer(30, 8, (2, 5), seed=1)
    buf.add(np.random.default_rng(2).normal(size=(30, 8, 2, 5)).cumsum(axis=1) * 0.1, 0)
    settings = {"noise": 0.0, "ae_weight": 0.0}
    plain = OnlineTrainer.cold_start(raw, states, "fhn", 0, settings)
    with_restart = OnlineTrainer.cold_start(
        raw, states, "fhn", 0, {**settings, "restart_weight": 1.0, "restart_warmup": 3}
    )
    before = copy.deepcopy(with_restart.model)
    batch = with_restart.draw(buf)
    losses = with_restart.update(batch)
    # the reported restart loss is that of the weights before the step, recomputed here
    with torch.no_grad():
        x = before.scaler.transform(before.as_tensor(batch))
        z = before.autoencoder.encode(x.reshape(-1, 2, 5)).reshape(x.shape[0], 8, -1)
        expect = float(restart_loss(before.rnn, z[:, :3], z[:, 3:]))
    assert losses["restart"] == pytest.approx(expect, rel=1e-5)  # float32 rounding
    plain.update(batch)
    moved = [
        not torch.equal(a, b)
        for a, b in zip(
            plain.model.rnn.parameters(), with_restart.model.rnn.parameters(), strict=True
        )
    ]
    assert any(moved)  # the restart term changed the step
    with pytest.raises(ValueError, match="restart_warmup 8 must be < seq_len = 8"):
        OnlineTrainer.cold_start(
            raw, states, "fhn", 0, {"restart_weight": 1.0, "restart_warmup": 8}
        ).update(batch)


# ----------------------------------------------------------------------- run metrics
def test_fhn_runs_and_evaluations_report_lag_and_shape_against_the_reference() -> None:
    from ledmus import systems

    spec = systems.get("fhn")
    assert spec.travelling_wave and not systems.get("ks").travelling_wave
    ref = np.stack([np.stack([pulse(t), 0.1 * pulse(t)]) for t in range(80)])[None]
    pred = np.stack([np.stack([pulse(t - 0.4), 0.1 * pulse(t - 0.4)]) for t in range(80)])[None]
    out = spec.errors(ref, pred, 1.0)
    # interior steps carry the true lag -0.4 (to the 1.5e-5 interpolation error); the
    # first step cannot look before the reference starts
    assert out["lag_final"] == pytest.approx(-0.4, abs=1e-4)
    assert np.allclose(out["lag_t"][1:], -0.4, atol=1e-4)
    # the shift explains the error: measured shape 2.3e-5 (the first step: 9e-4) vs 1.6e-3
    assert out["shape_mnad"] < 0.1 * out["mnad_u"]
    ev = spec.evaluate(ref, pred, 1.0)
    assert ev["lag_final"] == pytest.approx(-0.4, abs=1e-4)
    assert ev["shape_mnad"] == pytest.approx(out["shape_mnad"])
    # a forecast ahead of the reference: the final lag is read where the search can still
    # look ahead (at the very last step it could not: measured 0.0 there)
    ahead = np.stack([np.stack([pulse(t + 0.4), 0.1 * pulse(t + 0.4)]) for t in range(80)])[None]
    assert spec.errors(ref, ahead, 1.0)["lag_final"] == pytest.approx(0.4, abs=1e-4)
    assert spec.evaluate(ref, ahead, 1.0)["lag_final"] == pytest.approx(0.4, abs=1e-4)


def test_the_finetune_schedule_trains_one_step_first_then_both_losses() -> None:
    model, z = tiny_led_and_latents()
    cfg = resolve(
        {
            **BASE,
            "train_rnn": {
                "epochs": 4,
                "hidden_propagation": 10,
                "sequence_length": 5,
                "validation": "coupled",
                "restart": {
                    "warmup": [3, 6],
                    "horizon": 8,
                    "schedule": "finetune",
                    "finetune_epochs": 2,
                    "finetune_lr": 1e-5,
                },
            },
        }
    )["train_rnn"]
    hist = fitting.train_rnn(model, z, z, cfg, progress=False)
    assert len(hist["train"]) == 4 and "train_restart" in hist  # stage 1: one-step only
    assert len(hist["finetune"]["train"]) == 2 == len(hist["train_restart"])
    assert hist["finetune"]["lr"][0] == 1e-5  # stage 2 at its own learning rate
