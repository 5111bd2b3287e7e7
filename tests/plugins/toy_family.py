"""A plug-in from outside ledmus: the toy system ``toy-decay`` and the model family
``toy-mean``, registered at import (as ``LEDMUS_PLUGINS=toy_family`` imports it in every
ledmus process of a run).  No ledmus module knows either name.

System: du/dt = -rate u on 8 nodes, stepped exactly.  Family: the macro state is the
spatial mean, propagated exactly with a learned rate; ``train`` fits the rate to the
data by least squares on log u, ``evaluate`` forecasts every test run from its first
state, and the extra command ``ledmus toy-mean rate MODEL.pt`` prints the rate.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from ledmus import systems
from ledmus.atomic import write_json
from ledmus.solvers.base import Solver
from ledmus.surrogates import Family, Verb, register_family, unregister_family
from ledmus.surrogates.checkpoint import load_model, save_checkpoint
from ledmus.surrogates.config import parse_section
from ledmus.surrogates.macro import MacroModel
from ledmus.surrogates.training import load_training_data
from ledmus.trajectory import fingerprint, read_trajectory
from ledmus.validation import Field, as_choice, as_int, as_number, as_path, as_str

RATE = 0.2  # decay rate of the toy system [1/time]
KIND, SYSTEM = "toy-mean", "toy-decay"


class ToyDecay(Solver):
    """du/dt = -rate u on 8 nodes, stepped exactly; ICs: uniform random levels."""

    name = SYSTEM

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
    """The toy family's network: the decay rate as its one weight."""

    kind = KIND

    def __init__(self, spec):
        super().__init__()
        self.spec, self.system = dict(spec), spec["system"]
        self.state_shape = tuple(spec["state_shape"])
        self.rate = nn.Parameter(torch.tensor(float(spec["rate"]), dtype=torch.float64))


class MeanMacro(MacroModel):
    """Macro state = the spatial mean (exact for uniform fields), propagated exactly."""

    kind = KIND

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

    def decode(self, m, generators=None, n_particles=None):
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


TOP = (
    Field("kind", as_choice((KIND,)), KIND, KIND),
    Field("system", as_str, doc="the micro system of the data"),
    Field("data", as_path, doc="folder of train.h5"),
)
FIT = (
    Field("steps", as_int(1), 4, "coarse steps of each run used, integer >= 1"),
    Field("floor", as_number(0, strict=True), 1e-12, "smallest u used, number > 0"),
)


def resolve(raw):
    top = parse_section(TOP, {k: v for k, v in raw.items() if k != "fit"}, "")
    return {**top, "fit": parse_section(FIT, raw.get("fit", {}), "fit.")}


def train(raw, out, options):
    """Least squares of log(mean u) against t over the first ``fit.steps`` steps."""
    cfg = resolve(raw)
    traj, _ = load_training_data(cfg, options.base_dir)
    n = cfg["fit"]["steps"] + 1
    u = np.maximum(traj.states[:, :n].mean(axis=(-2, -1)), cfg["fit"]["floor"])
    t = np.asarray(traj.t[:n])
    slope = np.polyfit(np.tile(t, len(u)), np.log(u).ravel(), 1)[0]
    spec = {
        "system": cfg["system"],
        "state_shape": list(traj.states.shape[2:]),
        "rate": float(-slope),
    }
    config = {**raw, "dtype": "float64"}  # the checkpoint's dtype: the rate stays float64
    return save_checkpoint(out, MeanNet(spec), config=config, fingerprint=fingerprint(traj))


def evaluate(payload, model_path, data, options):
    """Every test run forecast from its first state: the largest relative error."""
    if data is None:
        raise ValueError("--data is required for a toy-mean model")
    traj = read_trajectory(data)
    rate = float(payload["state_dict"]["rate"])
    u = traj.states.mean(axis=(-2, -1))
    pred = u[:, :1] * np.exp(-rate * (np.asarray(traj.t) - traj.t[0]))
    result = {"system": traj.system, "rate": rate, "rel_error": float(np.abs(pred / u - 1).max())}
    if options.out_dir is not None:
        write_json(Path(options.out_dir) / "metrics.json", result)
    return result


def show_rate(args):
    net, _ = load_model(args.model)
    print(f"rate {float(net.rate.detach()):.12g}")


def rate_arguments(parser):
    parser.add_argument("model", help="toy-mean checkpoint")


SPEC = systems.SystemSpec(
    SYSTEM,
    ToyDecay,
    "grid",
    description="exact decay",
    channels=("u",),
    coordinates=lambda s: np.arange(8) * 0.5,
)
FAMILY = Family(
    KIND,
    network=MeanNet,
    macro=MeanMacro,
    resolve=resolve,
    train=train,
    evaluate=evaluate,
    verbs=(Verb("rate", "print the learned decay rate", rate_arguments, show_rate),),
    description="exact spatial mean of the toy decay",
)


def register() -> None:
    systems.register(SPEC, replace=True)
    register_family(FAMILY, replace=True)


def unregister() -> None:
    systems.unregister(SYSTEM)
    unregister_family(KIND)


register()
