"""Plug-ins from outside ledmus: a toy system and a toy macro model, registered inside
this test (no ledmus module edited), run as a coupled run through the embedded engine
with settings, checkpoint, errors, metrics and plots."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

from ledmus import systems
from ledmus.coupler.engine import run_embedded
from ledmus.coupler.settings import validate
from ledmus.solvers.base import Solver
from ledmus.surrogates.checkpoint import MODEL_CLASSES, register_model_class, save_checkpoint
from ledmus.surrogates.macro import MACRO_MODELS, MacroModel, register_macro_model

RATE = 0.2  # decay rate of the toy system [1/time]


class ToyDecay(Solver):
    """du/dt = -rate u on 8 nodes, stepped exactly; ICs: uniform random levels."""

    name = "toy-decay"

    def __init__(self, rate: float = RATE, dt: float = 0.5, dt_coarse: float = 1.0) -> None:
        super().__init__(dt=dt, dt_coarse=dt_coarse)
        self.rate = rate

    @property
    def state_shape(self):
        return (1, 8)

    def params(self):
        return {"rate": self.rate, "dt": self.dt, "dt_coarse": self.dt_coarse}

    def ic_names(self):
        return ("uniform",)

    def _named_ic(self, name, batch, rng):
        return np.ones((batch, 1, 8)) * (1.0 + rng.random((batch, 1, 1)))

    def _lift(self, obs, rng):
        return obs.copy()

    def _observe(self, internal):
        return internal.copy()

    def _step(self, internal, t, rng):
        return internal * np.exp(-self.rate * self.dt)


class MeanNet(nn.Module):
    """The toy macro model's network: the decay rate as its one weight."""

    kind = "toy-mean"

    def __init__(self, spec):
        super().__init__()
        self.spec, self.system = dict(spec), spec["system"]
        self.state_shape = tuple(spec["state_shape"])
        self.rate = nn.Parameter(torch.tensor(float(spec["rate"]), dtype=torch.float64))


class MeanMacro(MacroModel):
    """Macro state = the spatial mean (exact for uniform fields), propagated exactly."""

    kind = "toy-mean"

    def __init__(self, net: MeanNet) -> None:
        self.net, self.system, self.state_shape, self.macro_dim = (
            net,
            net.system,
            net.state_shape,
            1,
        )
        self.reset()

    @classmethod
    def from_network(cls, net):
        return cls(net)

    def restrict(self, states):
        return np.asarray(states).mean(axis=(-2, -1))[..., None].astype(np.float32)

    def lift(self, m, generators=None, n_particles=None):
        m = np.asarray(m, dtype=np.float64)
        return np.broadcast_to(m[..., None], (*m.shape[:-1], *self.state_shape)).copy()

    def reset(self):
        self.last = self.pending = None

    def assimilate(self, m_seq):
        self.last, self.pending = np.asarray(m_seq)[:, -1], None

    def propagate(self, n):
        k = np.arange(1, n + 1)[None, :, None]
        rate = float(self.net.rate.detach())
        out = (self.last[:, None].astype(np.float64) * np.exp(-rate * k)).astype(np.float32)
        self.last = out[:, -1]
        return out, np.zeros(out.shape[:2])

    def snapshot(self):
        return {"last": self.last}

    def restore(self, snap):
        self.last = snap["last"]

    def get_weights(self):
        return self.net.state_dict()

    def set_weights(self, state_dict):
        self.net.load_state_dict(state_dict)


@pytest.fixture
def plugins():
    spec = systems.register(
        systems.SystemSpec(
            "toy-decay",
            ToyDecay,
            "grid",
            description="exact decay",
            channels=("u",),
            coordinates=lambda s: np.arange(8) * 0.5,
        )  # fmt: skip
    )
    register_model_class("toy-mean", MeanNet)
    register_macro_model(MeanMacro)
    yield spec
    systems.unregister("toy-decay")
    MODEL_CLASSES.pop("toy-mean")
    MACRO_MODELS.pop("toy-mean")


def test_a_toy_system_and_macro_model_run_coupled_without_editing_ledmus(plugins, tmp_path):
    net = MeanNet({"system": "toy-decay", "state_shape": [1, 8], "rate": RATE})
    path = tmp_path / "toy.pt"
    save_checkpoint(path, net, config={}, fingerprint="toy")
    raw = {"model": str(path), "t_warm": 2.0, "t_macro": 3.0, "t_micro": 1.0, "t_end": 14.0,
           "ensemble": 3, "ic": "uniform", "compare": True, "plots": True}  # fmt: skip
    result = run_embedded(validate(raw), tmp_path / "run")
    meta = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert meta["system"] == "toy-decay" and result["windows"] == 4
    # the macro model is exact for this system: errors are float32 rounding of u ~ 1
    assert result["errors"]["mnad_u"] < 1e-6
    assert (tmp_path / "run" / "field.png").is_file()
    # a macro model with the wrong rate is visibly wrong (the errors see the macro phases)
    net.rate.data.fill_(2 * RATE)
    save_checkpoint(path, net, config={}, fingerprint="toy")
    assert run_embedded(validate(raw), tmp_path / "wrong")["errors"]["mnad_u"] > 0.01


def test_settings_refuse_a_model_of_an_unregistered_kind(plugins, tmp_path):
    net = MeanNet({"system": "toy-decay", "state_shape": [1, 8], "rate": RATE})
    save_checkpoint(tmp_path / "toy.pt", net, config={}, fingerprint="toy")
    MACRO_MODELS.pop("toy-mean")
    try:
        with pytest.raises(ValueError, match="setting model: unknown macro-model kind 'toy-mean'"):
            validate({"model": str(tmp_path / "toy.pt"), "t_warm": 1.0, "t_macro": 1.0,
                      "t_micro": 1.0, "t_end": 4.0})  # fmt: skip
    finally:
        register_macro_model(MeanMacro)
