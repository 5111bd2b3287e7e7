"""Online training for concurrent learning (issue 9): a replay buffer of micro sequences
and a trainer that fine-tunes an LED's autoencoder and propagator on them.

Micro windows arrive as observable states per ensemble member; :class:`ReplayBuffer`
cuts them into sequences ``(L, *state_shape)`` (``L = seq_len``) and keeps a bounded,
regime-aware sample of them; :class:`OnlineTrainer` takes Adam steps on minibatches
``(B, L, *state_shape)`` drawn from it with its own generators, so a run is bitwise
reproducible from its seed and the buffer contents (at one torch thread).  Both
snapshot to plain numpy arrays and numbers.  Weight transport and the background
trainer: :mod:`.online_async`.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch

from ..validation import Field, as_int, as_number, parse_fields
from .config import resolve
from .ensemble import prediction_loss
from .led import LED

_MASK64 = (1 << 64) - 1


def generator_state(gen: np.random.Generator) -> np.ndarray:
    """The state of a PCG64 generator as ``uint64`` ``(6,)``: state (high, low word),
    increment (high, low), ``has_uint32``, ``uinteger``."""
    st = gen.bit_generator.state
    s, inc = st["state"]["state"], st["state"]["inc"]
    words = [s >> 64, s & _MASK64, inc >> 64, inc & _MASK64, st["has_uint32"], st["uinteger"]]
    return np.array(words, dtype=np.uint64)


def set_generator_state(gen: np.random.Generator, words: np.ndarray) -> None:
    """Inverse of :func:`generator_state`."""
    w = [int(x) for x in np.asarray(words, dtype=np.uint64)]
    gen.bit_generator.state = {
        "bit_generator": "PCG64",
        "state": {"state": (w[0] << 64) | w[1], "inc": (w[2] << 64) | w[3]},
        "has_uint32": w[4],
        "uinteger": w[5],
    }


class ReplayBuffer:
    """Bounded store of float32 sequences ``(seq_len, *state_shape)``, each tagged with a
    regime id (an int), filled from micro windows (:meth:`feed`) or whole sequences
    (:meth:`add`).

    Replacement when full (one victim per added sequence, drawn with the buffer's own
    generator, PCG64 seeded ``seed``): let ``r`` be the newest regime (that of the
    sequence being added), ``n_old`` the number of stored sequences of other regimes and
    ``keep = floor(keep_fraction * capacity)``.  If ``n_old <= keep`` (and some stored
    sequence has regime ``r``) the victim is uniform among the sequences of regime ``r``,
    so earlier regimes keep their ``n_old`` sequences; otherwise it is uniform among all
    stored sequences.  After a regime change the earlier regimes thus shrink by random
    replacement to exactly ``keep`` sequences and stay there: the trainer keeps seeing
    a ``keep_fraction`` share of the past and does not forget it.
    """

    def __init__(
        self, capacity: int, seq_len: int, state_shape: tuple[int, ...],
        keep_fraction: float = 0.25, seed: int = 0,
    ) -> None:  # fmt: skip
        if capacity < 1 or seq_len < 2 or not 0.0 <= keep_fraction <= 1.0:
            raise ValueError(f"ReplayBuffer: capacity >= 1, seq_len >= 2, 0 <= keep_fraction <= 1 "
                             f"needed, got {capacity}, {seq_len}, {keep_fraction}")  # fmt: skip
        self.capacity, self.seq_len = int(capacity), int(seq_len)
        self.state_shape = tuple(int(s) for s in state_shape)
        self.keep_fraction = float(keep_fraction)
        self._data = np.zeros((self.capacity, self.seq_len, *self.state_shape), np.float32)
        self._tags = np.zeros(self.capacity, np.int64)
        self._size = 0
        self.seen = 0  #: sequences ever added
        self.newest: int | None = None  #: regime of the last added sequence
        self._rng = np.random.Generator(np.random.PCG64(seed))
        #: member -> (next expected coarse index, regime, pending states (k, *state_shape))
        self._pending: dict[int, tuple[int, int, np.ndarray]] = {}

    def __len__(self) -> int:
        return self._size

    def regimes(self) -> dict[int, int]:
        """Regime id -> number of stored sequences."""
        ids, counts = np.unique(self._tags[: self._size], return_counts=True)
        return dict(zip(ids.tolist(), counts.tolist(), strict=True))

    def _check(self, states: np.ndarray, lead: int, what: str) -> np.ndarray:
        states = np.asarray(states, dtype=np.float32)
        shape = (self.seq_len, *self.state_shape)[2 - lead :]
        if states.ndim != lead + len(self.state_shape) or states.shape[1:] != shape:
            raise ValueError(f"ReplayBuffer.{what}: shape (n, {', '.join(map(str, shape))}) "
                             f"expected, got {states.shape}")  # fmt: skip
        return states

    def feed(self, member: int, start_index: int, states: np.ndarray, regime: int) -> int:
        """Micro states ``(n, *state_shape)`` of ``member`` at coarse indices
        ``start_index … start_index + n - 1``.  They extend the member's pending segment
        when ``start_index`` is the next expected index and ``regime`` is the same, else
        the segment restarts with them.  Each time the segment holds ``seq_len`` states a
        sequence is added and the segment keeps its last state (stride ``seq_len - 1``).
        Returns the number of sequences added."""
        states = self._check(states, 1, "feed")
        member, start_index, regime = int(member), int(start_index), int(regime)
        following = start_index + len(states)
        pend = self._pending.get(member)
        if pend is not None and pend[0] == start_index and pend[1] == regime:
            states = np.concatenate([pend[2], states])
        out = []
        while len(states) >= self.seq_len:
            out.append(states[: self.seq_len])
            states = states[self.seq_len - 1 :]
        self._pending[member] = (following, regime, states.copy())
        if out:
            self.add(np.stack(out), regime)
        return len(out)

    def add(self, seqs: np.ndarray, regime: int) -> None:
        """Store sequences ``(n, seq_len, *state_shape)`` of ``regime``, one at a time
        (replacement rule: the class docstring)."""
        seqs, regime = self._check(seqs, 2, "add"), int(regime)
        for seq in seqs:
            self.newest = regime
            if self._size < self.capacity:
                slot, self._size = self._size, self._size + 1
            else:
                newest = np.flatnonzero(self._tags == regime)
                n_old = self.capacity - len(newest)
                if n_old <= int(self.keep_fraction * self.capacity) and len(newest):
                    slot = int(newest[self._rng.integers(len(newest))])
                else:
                    slot = int(self._rng.integers(self.capacity))
            self._data[slot], self._tags[slot] = seq, regime
            self.seen += 1

    def sample(self, n: int, generator: np.random.Generator) -> np.ndarray:
        """``n`` stored sequences drawn uniformly with replacement by ``generator``:
        a copy ``(n, seq_len, *state_shape)``."""
        if self._size == 0:
            raise ValueError("ReplayBuffer.sample: the buffer is empty")
        return self._data[generator.integers(0, self._size, n)]

    # ------------------------------------------------------------------ snapshot
    def snapshot(self) -> dict[str, Any]:
        """Everything as numpy arrays and ints: settings, stored sequences and tags (slot
        order), pending segments (concatenated, with member, next index, regime, length)
        and the generator state (:func:`generator_state`)."""
        members = sorted(self._pending)
        pend = [self._pending[m] for m in members]
        size, empty = self._size, np.zeros((0, *self.state_shape), np.float32)
        return {
            "capacity": self.capacity, "seq_len": self.seq_len, "seen": self.seen,
            "state_shape": np.array(self.state_shape, np.int64),
            "keep_fraction": np.array(self.keep_fraction),
            "data": self._data[:size].copy(), "tags": self._tags[:size].copy(),
            "newest": np.array([] if self.newest is None else [self.newest], np.int64),
            "pending_member": np.array(members, np.int64),
            "pending_next": np.array([p[0] for p in pend], np.int64),
            "pending_regime": np.array([p[1] for p in pend], np.int64),
            "pending_length": np.array([len(p[2]) for p in pend], np.int64),
            "pending_states": np.concatenate([empty, *(p[2] for p in pend)]),
            "rng_state": generator_state(self._rng),
        }  # fmt: skip

    def restore(self, snap: dict[str, Any]) -> None:
        """Become the buffer :meth:`snapshot` described (settings included): it then
        continues bitwise like the original."""
        shape = tuple(int(s) for s in snap["state_shape"])
        self.__init__(int(snap["capacity"]), int(snap["seq_len"]), shape, float(snap["keep_fraction"]))  # fmt: skip
        self._size = len(snap["tags"])
        self._data[: self._size], self._tags[: self._size] = snap["data"], snap["tags"]
        self.seen = int(snap["seen"])
        self.newest = int(snap["newest"][0]) if len(snap["newest"]) else None
        parts = np.split(np.asarray(snap["pending_states"]), np.cumsum(snap["pending_length"])[:-1])
        nxt, reg = snap["pending_next"].tolist(), snap["pending_regime"].tolist()
        for i, m in enumerate(snap["pending_member"].tolist()):
            self._pending[m] = (nxt[i], reg[i], np.array(parts[i], np.float32))
        set_generator_state(self._rng, snap["rng_state"])


# ---------------------------------------------------------------------- trainer
ONLINE_FIELDS = (
    Field("lr", as_number(0, strict=True), 1e-4, "Adam learning rate (both), number > 0"),
    Field("batch_size", as_int(1), 16, "sequences per minibatch, integer >= 1"),
    Field("ae_weight", as_number(0), 1.0, "autoencoder loss weight (0 freezes it), number >= 0"),
    Field("noise", as_number(0), 0.01, "RNN input noise, fraction of the latent std, number >= 0"),
    Field("warmup", as_int(0), 0, "teacher-forced steps before the RNN loss counts, integer >= 0"),
)
#: online training settings and their defaults (see :class:`OnlineTrainer`)
ONLINE_DEFAULTS: dict[str, Any] = {f.name: f.default for f in ONLINE_FIELDS}


def fresh_led(raw_config: dict[str, Any], states: np.ndarray, system: str, seed: int) -> LED:
    """An untrained LED built from a training config (the schema of ``configs/fhn.yaml``;
    ``data`` may be left out) with weights drawn after ``torch.manual_seed(seed)`` (the
    global generator's state is restored) and the scaler fitted on ``states``
    ``(S, *state_shape)``: the same model in every process given the same arguments."""
    resolved = resolve({"data": "-", "system": system, **raw_config})
    if resolved["kind"] != "led" or resolved["system"] != system:
        raise ValueError(f"cold start: an LED config for system {system!r} is needed, got "
                         f"kind {resolved['kind']!r}, system {resolved['system']!r}")  # fmt: skip
    states = np.asarray(states)
    spec = {"system": system, "state_shape": list(states.shape[1:]), "box": None,
            "autoencoder": resolved["autoencoder"], "rnn": resolved["rnn"]}  # fmt: skip
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

    (``sg``: stop-gradient, ``ε`` standard normal from the trainer's torch generator), one
    Adam step on each (separate optimisers; ``w = 0``: the autoencoder is left alone).
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
        self.opt_ae = torch.optim.Adam(model.autoencoder.parameters(), lr=self.cfg["lr"])
        self.opt_rnn = torch.optim.Adam(model.rnn.parameters(), lr=self.cfg["lr"])
        self.updates, self.samples, self.seconds, self.last_losses = 0, 0, 0.0, {}

    @classmethod
    def cold_start(
        cls, raw_config: dict[str, Any], states: np.ndarray, system: str, seed: int = 0,
        cfg: dict[str, Any] | None = None,
    ) -> OnlineTrainer:  # fmt: skip
        """A trainer of :func:`fresh_led` (``cfg``: online settings)."""
        return cls(fresh_led(raw_config, states, system, seed), cfg, seed)

    @property
    def stats(self) -> dict[str, Any]:
        """``updates`` (steps taken), ``samples`` (sequences seen), ``seconds`` (in steps),
        ``last_losses`` (``ae``, ``rnn`` of the last step; an ensemble: member mean)."""
        return {"updates": self.updates, "samples": self.samples, "seconds": self.seconds,
                "last_losses": dict(self.last_losses)}  # fmt: skip

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
        loss_rnn, _ = prediction_loss(rnn, inp[:, w:], target[:, w:], hidden)
        losses = {"ae": loss_ae.item(), "rnn": loss_rnn.item() / getattr(rnn, "members", 1)}
        if not all(np.isfinite(v) for v in losses.values()):
            raise FloatingPointError(f"online training: non-finite loss {losses} at update "
                                     f"{self.updates}")  # fmt: skip
        pairs = [(self.opt_ae, loss_ae)] * (cfg["ae_weight"] > 0) + [(self.opt_rnn, loss_rnn)]
        for opt, loss in pairs:
            opt.zero_grad()
            loss.backward()
            opt.step()
        self.updates, self.samples = self.updates + 1, self.samples + b
        self.seconds += time.perf_counter() - t0
        self.last_losses = losses
        return losses

    def step(self, buffer: ReplayBuffer) -> dict[str, float]:
        """One minibatch from ``buffer``, one update: ``update(draw(buffer))``."""
        return self.update(self.draw(buffer))

    def train(self, buffer: ReplayBuffer, steps: int) -> dict[str, Any]:
        """``steps`` steps; ``{"steps": steps, "ae": [...], "rnn": [...]}`` (losses)."""
        out: dict[str, Any] = {"steps": int(steps), "ae": [], "rnn": []}
        for _ in range(int(steps)):
            for key, value in self.step(buffer).items():
                out[key].append(value)
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
                head, kind, i, name = (key.split("/") + ["", "", ""])[:4]
                if head == tag and kind == "state":
                    sd["state"].setdefault(int(i), {})[name] = val
                elif head == tag:
                    v = val.tolist()
                    sd["param_groups"][int(i)][name] = tuple(v) if isinstance(v, list) else v
            opt.load_state_dict(sd)
        set_generator_state(self.np_gen, snap["np_gen"])
        self.torch_gen.set_state(torch.as_tensor(np.array(snap["torch_gen"], np.uint8)))
        self.updates, self.samples = int(snap["updates"]), int(snap["samples"])
        self.seconds = float(snap["seconds"])
