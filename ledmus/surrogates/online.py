"""Online training for concurrent learning: a replay buffer of micro sequences
and a trainer that fine-tunes an LED's autoencoder and propagator on them.

Micro windows arrive as observable states per ensemble member; the replay buffer
(:class:`~.replay.ReplayBuffer`, module :mod:`.replay`) cuts them into sequences
``(L, *state_shape)`` (``L = seq_len``) and keeps a bounded, regime-aware sample of
them; :class:`OnlineTrainer` takes Adam steps on minibatches ``(B, L, *state_shape)``
drawn from it with its own generators, so a run is bitwise reproducible from its seed
and the buffer contents (at one torch thread).  Both snapshot to plain numpy arrays and
numbers.  Weight transport and the background trainer: :mod:`.online_async`.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch

from ..validation import Field, as_bool, as_int, as_number, parse_fields
from .config import resolve
from .ensemble import EnsembleRNN, prediction_loss
from .family import check_kind
from .led import LED
from .replay import ReplayBuffer, generator_state, set_generator_state
from .restart import restart_loss

# ---------------------------------------------------------------------- trainer
ONLINE_FIELDS = (
    Field("lr", as_number(0, strict=True), 1e-4, "Adam learning rate (both), number > 0"),
    Field("batch_size", as_int(1), 16, "sequences per minibatch, integer >= 1"),
    Field("ae_weight", as_number(0), 1.0, "autoencoder loss weight (0 freezes it), number >= 0"),
    Field("noise", as_number(0), 0.01, "RNN input noise, fraction of the latent std, number >= 0"),
    Field("warmup", as_int(0), 0, "teacher-forced steps before the RNN loss counts, integer >= 0"),
    Field(
        "restart_weight",
        as_number(0),
        0.0,
        "weight of the restart loss (teacher-forced, then free run), number >= 0",
    ),
    Field(
        "restart_warmup",
        as_int(1),
        10,
        "teacher-forced states before the restart loss's free run, integer >= 1",
    ),
    Field(
        "bootstrap",
        as_bool,
        True,
        "ensemble members each weigh the minibatch by their own bootstrap resample, bool",
    ),
)
#: online training settings and their defaults (see :class:`OnlineTrainer`)
ONLINE_DEFAULTS: dict[str, Any] = {f.name: f.default for f in ONLINE_FIELDS}


def fresh_led(raw_config: dict[str, Any], states: np.ndarray, system: str, seed: int) -> LED:
    """An untrained LED built from a training config (the schema of ``configs/fhn.yaml``;
    ``data`` may be left out) with weights drawn after ``torch.manual_seed(seed)`` (the
    global generator's state is restored) and the scaler fitted on ``states``
    ``(S, *state_shape)``: the same model in every process given the same arguments."""
    resolved = resolve({"data": "-", "system": system, **raw_config})
    try:
        check_kind(resolved["kind"], LED.kind, "cold start: the config", "config")
    except ValueError as exc:
        raise ValueError(f"{exc} (an LED config for system {system!r} is needed)") from None
    if resolved["system"] != system:
        raise ValueError(
            f"cold start: an LED config for system {system!r} is needed, got "
            f"system {resolved['system']!r}"
        )
    states = np.asarray(states)
    spec = {
        "system": system,
        "state_shape": list(states.shape[1:]),
        "box": None,
        "autoencoder": resolved["autoencoder"],
        "rnn": resolved["rnn"],
    }
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = LED(spec).to(dtype=getattr(torch, resolved["dtype"]))
    model.scaler.to(torch.float64).fit(states)
    return model.eval()


class OnlineTrainer:
    """Fine-tunes ``model.autoencoder`` and ``model.rnn`` (a LatentRNN or EnsembleRNN) on
    minibatches from a :class:`ReplayBuffer`; the scaler (fitted once) never changes.

    Settings ``cfg`` (:data:`ONLINE_DEFAULTS`): ``lr``, ``batch_size`` ``B``, ``ae_weight``
    ``w``, ``noise`` ``ν``, ``warmup`` ``W``.  One :meth:`step` on physical sequences
    ``s`` ``(B, L, *state_shape)``, with ``x = scaler.transform(s)``, ``z = E(x)``
    ``(B, L, d_z)``::

        L_ae  = w · mean((D(E(x)) - x)²)                 (VAE: its mean path, no KL)
        z~_t  = sg(z_t) + ν σ ε_t,  σ = std over batch and time of sg(z) per dimension
        L_rnn = prediction_loss(rnn, z~_{W:L-1}, sg(z)_{W+1:L}, h_W)   (h_W: teacher-forced
                                                          over z~_{0:W} from a zero state)

    and with ``restart_weight`` ``λ`` > 0 (the restart objective, :mod:`.restart`; ``R``:
    ``restart_warmup``)::

        L_rnn += λ · restart_loss(rnn, z~_{0:R}, sg(z)_{R:L})   (teacher-forced R states,
                                                          then L - R free-run steps)

    (``sg``: stop-gradient, ``ε`` standard normal from the trainer's torch generator), one
    Adam step on each (separate optimisers; ``w = 0``: the autoencoder is left alone).
    An ensemble propagator with ``bootstrap`` (the default) trains every member on its
    own bootstrap resample of each minibatch: member ``k`` weighs sequence ``b`` by
    ``c_bk``, the counts of ``B`` draws with replacement (its own generator, PCG64
    ``[seed, 1]``, so the minibatches are the same with and without it), which keeps the
    members' disagreement, the run's uncertainty, alive through fine-tuning.
    Minibatches are drawn by the trainer's numpy generator (PCG64 ``seed``), the noise by
    its torch generator (``seed``): nothing global, so runs are bitwise reproducible
    given the seed and the buffer contents (at one torch thread).  A non-finite loss
    raises FloatingPointError before any weight changes.  Particle autoencoders are not
    supported.
    """

    def __init__(self, model: LED, cfg: dict[str, Any] | None = None, seed: int = 0) -> None:
        if getattr(model, "particles", False):
            raise ValueError("OnlineTrainer: particle autoencoders are not supported")
        self.model, self.seed = model, int(seed)
        self.cfg = parse_fields(ONLINE_FIELDS, cfg or {}, what="online setting")
        self.np_gen = np.random.Generator(np.random.PCG64(self.seed))
        self.torch_gen = torch.Generator().manual_seed(self.seed)
        self.boot_gen = np.random.Generator(np.random.PCG64([self.seed, 1]))
        self.opt_ae = torch.optim.Adam(model.autoencoder.parameters(), lr=self.cfg["lr"])
        self.opt_rnn = torch.optim.Adam(model.rnn.parameters(), lr=self.cfg["lr"])
        self.updates, self.samples, self.seconds, self.last_losses = 0, 0, 0.0, {}

    @classmethod
    def cold_start(
        cls,
        raw_config: dict[str, Any],
        states: np.ndarray,
        system: str,
        seed: int = 0,
        cfg: dict[str, Any] | None = None,
    ) -> OnlineTrainer:
        """A trainer of :func:`fresh_led` (``cfg``: online settings)."""
        return cls(fresh_led(raw_config, states, system, seed), cfg, seed)

    @property
    def stats(self) -> dict[str, Any]:
        """``updates`` (steps taken), ``samples`` (sequences seen), ``seconds`` (in steps),
        ``last_losses`` (``ae``, ``rnn`` of the last step; an ensemble: member mean)."""
        return {
            "updates": self.updates,
            "samples": self.samples,
            "seconds": self.seconds,
            "last_losses": dict(self.last_losses),
        }

    def draw(self, buffer: ReplayBuffer) -> np.ndarray:
        """The next minibatch ``(B, L, *state_shape)`` (the trainer's numpy generator)."""
        return buffer.sample(self.cfg["batch_size"], self.np_gen)

    def update(self, batch: np.ndarray) -> dict[str, float]:
        """One step on ``batch`` ``(B, L, *state_shape)`` (class docstring); its losses."""
        t0 = time.perf_counter()
        model, rnn, cfg = self.model, self.model.rnn, self.cfg
        x = model.scaler.transform(model.as_tensor(batch))
        b, length = x.shape[:2]
        if not cfg["warmup"] < length - 1:
            raise ValueError(f"online warmup {cfg['warmup']} must be < seq_len - 1 = {length - 1}")
        flat = x.reshape(b * length, *x.shape[2:])
        z = model.autoencoder.encode(flat)
        loss_ae = cfg["ae_weight"] * torch.mean((model.autoencoder.decode(z) - flat) ** 2)
        z = z.detach().reshape(b, length, -1)
        inp, target = z[:, :-1], z[:, 1:]
        if cfg["noise"] > 0:
            eps = torch.randn(inp.shape, generator=self.torch_gen, dtype=inp.dtype)
            inp = inp + cfg["noise"] * z.std(dim=(0, 1)) * eps.to(inp.device)
        w = cfg["warmup"]
        hidden = prediction_loss(rnn, inp[:, :w], target[:, :w], None)[1] if w > 0 else None
        weights = self.bootstrap_weights(b)
        loss_rnn, _ = prediction_loss(rnn, inp[:, w:], target[:, w:], hidden, weights)
        losses = {"ae": loss_ae.item(), "rnn": loss_rnn.item() / getattr(rnn, "members", 1)}
        if cfg["restart_weight"] > 0:
            r = cfg["restart_warmup"]
            if not r < length:
                raise ValueError(f"online restart_warmup {r} must be < seq_len = {length}")
            loss_restart = restart_loss(rnn, inp[:, :r], z[:, r:], weights)
            loss_rnn = loss_rnn + cfg["restart_weight"] * loss_restart
            losses["restart"] = loss_restart.item() / getattr(rnn, "members", 1)
        if not all(np.isfinite(v) for v in losses.values()):
            raise FloatingPointError(
                f"online training: non-finite loss {losses} at update {self.updates}"
            )
        pairs = [(self.opt_ae, loss_ae)] * (cfg["ae_weight"] > 0) + [(self.opt_rnn, loss_rnn)]
        for opt, loss in pairs:
            opt.zero_grad()
            loss.backward()
            opt.step()
        self.updates, self.samples = self.updates + 1, self.samples + b
        self.seconds += time.perf_counter() - t0
        self.last_losses = losses
        return losses

    def bootstrap_weights(self, b: int) -> torch.Tensor | None:
        """Counts ``(b, K)`` of ``b`` draws with replacement per ensemble member (None:
        a single propagator or ``bootstrap`` off)."""
        rnn = self.model.rnn
        if not (self.cfg["bootstrap"] and isinstance(rnn, EnsembleRNN)):
            return None
        counts = self.boot_gen.multinomial(b, np.full(b, 1.0 / b), size=rnn.members)
        return torch.as_tensor(counts.T.copy())

    def step(self, buffer: ReplayBuffer) -> dict[str, float]:
        """One minibatch from ``buffer``, one update: ``update(draw(buffer))``."""
        return self.update(self.draw(buffer))

    def train(self, buffer: ReplayBuffer, steps: int) -> dict[str, Any]:
        """``steps`` steps; ``{"steps": steps, "ae": [...], "rnn": [...]}`` (losses)."""
        out: dict[str, Any] = {"steps": int(steps), "ae": [], "rnn": []}
        for _ in range(int(steps)):
            for key, value in self.step(buffer).items():
                out.setdefault(key, []).append(value)
        return out

    # ------------------------------------------------------------------ snapshot
    def snapshot(self) -> dict[str, Any]:
        """Weights (``model/<name>``), both Adam states (``opt_ae/…``, ``opt_rnn/…``:
        per-parameter tensors, group ``lr``, ``betas``, ``eps``, ``weight_decay``), both
        generator states, the settings (``cfg/<key>``) and the counters, as numpy arrays
        and numbers."""
        sd = self.model.state_dict()
        snap = {f"model/{k}": v.detach().cpu().numpy().copy() for k, v in sd.items()}
        for tag, opt in (("opt_ae", self.opt_ae), ("opt_rnn", self.opt_rnn)):
            sd = opt.state_dict()
            for i, state in sd["state"].items():
                for key, val in state.items():
                    snap[f"{tag}/state/{i}/{key}"] = val.detach().cpu().numpy().copy()
            for g, group in enumerate(sd["param_groups"]):
                for key in ("lr", "betas", "eps", "weight_decay"):
                    snap[f"{tag}/group/{g}/{key}"] = np.array(group[key], np.float64)
        snap["np_gen"] = generator_state(self.np_gen)
        snap["boot_gen"] = generator_state(self.boot_gen)
        snap["torch_gen"] = self.torch_gen.get_state().numpy().copy()
        snap.update({f"cfg/{k}": v for k, v in self.cfg.items()})
        return {**snap, "updates": self.updates, "samples": self.samples, "seconds": self.seconds}

    def restore(self, snap: dict[str, Any]) -> None:
        """Load a :meth:`snapshot` (same architecture): training continues bitwise."""
        cfg = {k[4:]: np.asarray(v).item() for k, v in snap.items() if k.startswith("cfg/")}
        self.cfg.update({k: type(ONLINE_DEFAULTS[k])(v) for k, v in cfg.items()})
        tensors = {k: torch.as_tensor(np.array(v)) for k, v in snap.items() if "/" in k}
        self.model.load_state_dict({k[6:]: v for k, v in tensors.items() if k[:6] == "model/"})
        for tag, opt in (("opt_ae", self.opt_ae), ("opt_rnn", self.opt_rnn)):
            sd = {"state": {}, "param_groups": opt.state_dict()["param_groups"]}
            for key, val in tensors.items():
                head, part, i, name = (key.split("/") + ["", "", ""])[:4]
                if head == tag and part == "state":
                    sd["state"].setdefault(int(i), {})[name] = val
                elif head == tag:
                    v = val.tolist()
                    sd["param_groups"][int(i)][name] = tuple(v) if isinstance(v, list) else v
            opt.load_state_dict(sd)
        set_generator_state(self.np_gen, snap["np_gen"])
        if "boot_gen" in snap:  # snapshots from before the bootstrap keep its fresh state
            set_generator_state(self.boot_gen, snap["boot_gen"])
        self.torch_gen.set_state(torch.as_tensor(np.array(snap["torch_gen"], np.uint8)))
        self.updates, self.samples = int(snap["updates"]), int(snap["samples"])
        self.seconds = float(snap["seconds"])
