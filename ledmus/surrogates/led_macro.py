"""LED as a :class:`~ledmus.surrogates.macro.MacroModel`: restriction = encoder,
lifting = decoder (particles: sampled from the mixture density), propagation = the
latent RNN (Vlachas et al. eqs 13–16), teacher-forced on restricted micro states."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from .led import architecture
from .macro import ASSIMILATIONS, MacroModel, MemberSubsets, PooledRestriction
from .propagators import Hidden


class RNNPropagation(MemberSubsets):
    """The propagation state shared by models with a latent RNN (``net.rnn``):
    ``hidden``, the prediction ``z_next`` of the next step and the ``pending`` last
    propagated state not yet fed back (see :mod:`ledmus.surrogates.macro`)."""

    net: torch.nn.Module
    assimilation: str
    assimilation_tau: float

    def reset(self) -> None:
        #: free-run steps per member since its last assimilation (None: none yet)
        self.free: np.ndarray | None = None
        self.hidden: Hidden | None = None
        self.z_next: torch.Tensor | None = None
        self.pending: torch.Tensor | None = None
        #: per-member flags once member-subset operations ran (None: uniform state)
        self.has_pending: np.ndarray | None = None
        self.spread_next: np.ndarray | None = None  # uncertainty of z_next, (B,)

    def _tensor(self, x: Any) -> torch.Tensor:
        return self.net.as_tensor(x)

    def _uniform(self) -> None:
        """Back to the uniform state after member-subset operations (all members
        pending or none); a mixed state cannot serve a whole-ensemble call."""
        if self.has_pending is None:
            return
        if self.has_pending.all() or not self.has_pending.any():
            if not self.has_pending.any():
                self.pending = None
            self.has_pending = None
            return
        raise RuntimeError("whole-ensemble call on a state whose members differ in pending")

    def assimilate(self, m_seq: np.ndarray) -> None:
        self._uniform()
        with torch.no_grad():
            seq = self._tensor(m_seq)
            if self._innovates():
                if self.pending is not None:
                    pred, hidden, _ = self._feed(self.pending[:, None], self.hidden)
                else:
                    pred, hidden = self.z_next, self.hidden
                age = self._ages(seq.shape[0])
                self.z_next, self.hidden, spread = self._innovate(seq, pred, hidden, age)
            else:
                if self.pending is not None:
                    seq = torch.cat([self.pending[:, None], seq], dim=1)
                self.z_next, self.hidden, spread = self._feed(seq, self.hidden)
            self.pending = None
            self.spread_next = None if np.isnan(spread).all() else spread
            self.free = np.zeros(seq.shape[0], dtype=np.int64)

    def _innovates(self) -> bool:
        """Whether the next assimilation is by innovation (there is a state to shadow)."""
        has_state = self.z_next is not None or self.pending is not None
        return self.assimilation == "innovation" and has_state

    def _ages(self, b: int) -> np.ndarray:
        """Free-run steps per member since its last assimilation ``(b,)``."""
        return np.zeros(b, dtype=np.int64) if self.free is None else self.free.copy()

    def _count_free(self, n: int, members: np.ndarray | None = None) -> None:
        if self.free is None:
            self.free = np.zeros(self._n_members(), dtype=np.int64)
        if members is None:
            self.free += n
        else:
            self.free[members] += n

    def _innovate(
        self, seq: torch.Tensor, pred: torch.Tensor, hidden: Hidden, age: np.ndarray
    ) -> tuple[torch.Tensor, Hidden, np.ndarray]:
        """Assimilate ``seq`` ``(b, T, d)`` = E(x_t) by innovation (see
        :mod:`ledmus.surrogates.macro`): ``pred`` ``(b, d)`` is the model's prediction of
        the window's first state and ``hidden`` its state there; ``age`` ``(b,)`` the
        free-run steps before the window.  Feeds ``z_t + g (E(x_t) - E(D(z_t)))``, ``z_t``
        the free run from ``pred``, and returns what :meth:`_feed` returns."""
        # an ensemble's free run feeds every member the mean, as its propagation does
        shadow = self.net.rnn.free_run(pred, hidden, seq.shape[1])[0]
        seen = self._tensor(self.restrict(self.decode(shadow.cpu().numpy())))
        a = np.asarray(age, dtype=np.float64) + seq.shape[1]
        tau = self.assimilation_tau
        g = np.ones_like(a) if tau == 0 else -np.expm1(-a / tau)
        gain = self._tensor(g).to(shadow.dtype)[:, None, None]
        return self._feed(shadow + gain * (seq - seen), hidden)

    def propagate(self, n: int) -> tuple[np.ndarray, np.ndarray | None]:
        self._uniform()
        if hasattr(self.net.rnn, "free_run_spread"):  # an ensemble: with its uncertainty
            return self.propagate_members(n, np.arange(self._n_members()))
        with torch.no_grad():
            if self.pending is not None:  # two macro phases in a row: feed the last one first
                pred, self.hidden = self.net.rnn(self.pending[:, None], self.hidden)
                self.z_next, self.pending = pred[:, -1], None
            z, self.hidden = self.net.rnn.free_run(self.z_next, self.hidden, n)
            self.pending, self.z_next = z[:, -1], None
            self._count_free(n)
            return z.cpu().numpy(), None

    # ------------------------------------------------------------------ member subsets
    def _n_members(self) -> int:
        """Members of the state (one has been assimilated: the protocol checks it)."""
        like = self.z_next if self.z_next is not None else self.pending
        if like is not None:
            return like.shape[0]
        return (self.hidden[0] if isinstance(self.hidden, tuple) else self.hidden).shape[1]

    def _full(self, b: int) -> None:
        """Materialise the state as full ``(B, ...)`` tensors with per-member flags."""
        like = self.z_next if self.z_next is not None else self.pending
        if self.hidden is None:
            self.hidden = self.net.rnn._zero_hidden(like)
        if self.has_pending is None:
            self.has_pending = np.full(b, self.pending is not None)
        zeros = torch.zeros_like(like)
        if self.pending is None:
            self.pending = zeros.clone()
        if self.z_next is None:
            self.z_next = zeros.clone()
        if self.spread_next is None:
            self.spread_next = np.full(b, np.nan)
        if self.free is None:
            self.free = np.zeros(b, dtype=np.int64)

    def _hidden_rows(self, idx: torch.Tensor) -> Hidden:
        h = self.hidden
        return tuple(x[:, idx] for x in h) if isinstance(h, tuple) else h[:, idx]

    def _put_hidden(self, idx: torch.Tensor, new: Hidden) -> None:
        if isinstance(self.hidden, tuple):
            for full, part in zip(self.hidden, new, strict=True):
                full[:, idx] = part
        else:
            self.hidden[:, idx] = new

    def _feed(self, seq: torch.Tensor, hidden: Hidden) -> tuple[torch.Tensor, Hidden, np.ndarray]:
        """Teacher-force ``seq`` ``(b, T, d)``: the prediction after its last step, the
        hidden state and that prediction's uncertainty ``(b,)`` (NaN without one)."""
        rnn = self.net.rnn
        if hasattr(rnn, "forward_spread"):
            pred, hidden, spread = rnn.forward_spread(seq, hidden)
            return pred[:, -1], hidden, spread[:, -1].cpu().double().numpy()
        pred, hidden = rnn(seq, hidden)
        return pred[:, -1], hidden, np.full(seq.shape[0], np.nan)

    def assimilate_members(self, m_seq: np.ndarray, members: np.ndarray) -> None:
        """:meth:`assimilate` for the members ``members`` (indices) only: ``m_seq``
        ``(len(members), T, d)``; the other members' state is untouched."""
        members = np.asarray(members, dtype=np.int64)
        with torch.no_grad():
            seq = self._tensor(m_seq)
            if self.hidden is None and self.z_next is None and self.pending is None:
                # the first assimilation (the warm-up): all members at once
                if len(members) != seq.shape[0]:
                    raise RuntimeError("the first assimilation must include every member")
                self.z_next, self.hidden, spread = self._feed(seq, None)
                self.has_pending = np.zeros(len(members), dtype=bool)
                self.pending = torch.zeros_like(self.z_next)
                self.spread_next = spread
                self.free = np.zeros(len(members), dtype=np.int64)
                return
            innovation = self._innovates()
            self._full(self._n_members())
            ages = self.free.copy()
            for flag in (True, False):  # members with a pending state feed it first
                rows = members[self.has_pending[members] == flag]
                if len(rows) == 0:
                    continue
                sel = np.flatnonzero(np.isin(members, rows))
                part = seq[torch.as_tensor(sel)]
                idx = torch.as_tensor(rows)
                if innovation:
                    pred, hidden = self.z_next[idx], self._hidden_rows(idx)
                    if flag:
                        pred, hidden, _ = self._feed(self.pending[idx][:, None], hidden)
                    z, hidden, spread = self._innovate(part, pred, hidden, ages[rows])
                else:
                    if flag:
                        part = torch.cat([self.pending[idx][:, None], part], dim=1)
                    z, hidden, spread = self._feed(part, self._hidden_rows(idx))
                self._put_hidden(idx, hidden)
                self.z_next[idx] = z
                self.spread_next[rows] = spread
            self.has_pending[members] = False
            self.free[members] = 0

    def propagate_members(
        self, n: int, members: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """:meth:`propagate` for ``members`` only: ``(len(members), n, d)`` and the
        uncertainty ``(len(members), n)`` (None for a single propagator)."""
        members = np.asarray(members, dtype=np.int64)
        self._full(self._n_members())
        idx = torch.as_tensor(members)
        rnn = self.net.rnn
        with torch.no_grad():
            pend = members[self.has_pending[members]]
            if len(pend):  # feed the last macro state of a previous phase first
                pidx = torch.as_tensor(pend)
                z, hidden, spread = self._feed(self.pending[pidx][:, None], self._hidden_rows(pidx))
                self._put_hidden(pidx, hidden)
                self.z_next[pidx] = z
                self.spread_next[pend] = spread
            start, hidden = self.z_next[idx], self._hidden_rows(idx)
            if hasattr(rnn, "free_run_spread"):
                z, hidden, spread = rnn.free_run_spread(start, hidden, n)
                spread = spread.cpu().double().numpy()
                spread[:, 0] = self.spread_next[members]
            else:
                z, hidden = rnn.free_run(start, hidden, n)
                spread = None
            if n > 1:
                self._put_hidden(idx, hidden)
            self.pending[idx] = z[:, -1]
            self.has_pending[members] = True
            self._count_free(n, members)
            return z.cpu().numpy(), spread

    def revert_members(self, snap: dict[str, Any], members: np.ndarray) -> None:
        """Put ``members`` back to their state in ``snap`` (a :meth:`snapshot`); the
        other members keep their current state."""
        members = np.asarray(members, dtype=np.int64)
        current = self.snapshot()
        self.restore(snap)
        self._full(self._n_members())
        old = (
            self._hidden_rows(torch.as_tensor(members)),
            self.z_next[members].clone(),
            self.pending[members].clone(),
            self.has_pending[members].copy(),
            self.spread_next[members].copy(),
            self.free[members].copy(),
        )
        self.restore(current)
        self._full(self._n_members())
        idx = torch.as_tensor(members)
        self._put_hidden(
            idx, tuple(h.clone() for h in old[0]) if isinstance(old[0], tuple) else old[0].clone()
        )
        self.z_next[idx], self.pending[idx] = old[1], old[2]
        self.has_pending[members], self.spread_next[members] = old[3], old[4]
        self.free[members] = old[5]

    def snapshot(self) -> dict[str, Any]:
        hidden = self.hidden
        if isinstance(hidden, tuple):
            hidden_list = [h.cpu().numpy().copy() for h in hidden]
        else:
            hidden_list = [] if hidden is None else [hidden.cpu().numpy().copy()]

        # copies: member-subset operations write into the state tensors in place
        def arr(t: torch.Tensor | None) -> np.ndarray | None:
            return None if t is None else t.cpu().numpy().copy()

        snap = {"hidden": hidden_list, "z_next": arr(self.z_next), "pending": arr(self.pending)}
        if self.has_pending is not None:
            snap["has_pending"] = self.has_pending.astype(np.int32)
        if self.spread_next is not None:  # the prediction's uncertainty, in either form
            snap["spread_next"] = np.array(self.spread_next)
        if self.free is not None:
            snap["free_steps"] = self.free.copy()
        return snap

    def restore(self, snap: dict[str, Any]) -> None:
        def tensor(x: Any) -> torch.Tensor | None:
            return None if x is None else self._tensor(np.array(x))

        hidden = [self._tensor(np.array(h)) for h in snap["hidden"]]
        if not hidden:
            self.hidden = None
        elif len(hidden) == 2:  # LSTM (h, c)
            self.hidden = (hidden[0], hidden[1])
        else:
            self.hidden = hidden[0]
        self.z_next, self.pending = tensor(snap.get("z_next")), tensor(snap.get("pending"))
        flags = snap.get("has_pending")
        self.has_pending = None if flags is None else np.array(flags).astype(bool)
        spread = snap.get("spread_next")
        self.spread_next = None if spread is None else np.array(spread, dtype=np.float64)
        free = snap.get("free_steps")  # older snapshots: none
        self.free = None if free is None else np.array(free, dtype=np.int64)

    def get_weights(self) -> dict[str, torch.Tensor]:
        return {k: v.detach().clone() for k, v in self.net.state_dict().items()}

    def set_weights(self, state_dict: dict[str, torch.Tensor]) -> None:
        self.net.load_state_dict(state_dict)


class NetworkMacro(RNNPropagation, MacroModel):
    """A macro model around a network with ``system``, ``state_shape``, ``latent_dim``,
    ``encode``, ``decode``, ``decode_sequence`` and ``rnn`` (LED, PCA): restriction, the
    deterministic (grid) lift and the RNN propagation; for particle networks
    (``net.particles``) :class:`LEDMacro` samples the lift instead."""

    assimilations = tuple(ASSIMILATIONS)

    def __init__(self, net: torch.nn.Module) -> None:
        self.net = net.eval()
        self.system = net.system
        self.state_shape = tuple(net.state_shape)
        self.macro_dim = net.latent_dim
        self.particles = bool(getattr(net, "particles", False))
        self.stochastic_decode = self.particles
        self.reset()

    @classmethod
    def from_network(cls, net: torch.nn.Module) -> NetworkMacro:
        return cls(net)

    def restrict(self, states: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return self.net.encode(np.asarray(states)).cpu().numpy()

    def decode(
        self,
        m: np.ndarray,
        generators: Sequence[torch.Generator] | None = None,
        n_particles: int | None = None,
    ) -> np.ndarray:
        """Deterministic decoding (``generators`` and ``n_particles`` unused)."""
        with torch.no_grad():
            z = self._tensor(m)
            if z.ndim == 3:
                return self.net.decode_sequence(z).astype(np.float64)
            return self.net.decode(z).cpu().double().numpy()


class LEDMacro(NetworkMacro):
    """Autoencoder + latent RNN (Vlachas et al. §2); a particle network gives a
    :class:`ParticleLEDMacro`."""

    kind = "led"

    def __init__(self, net: torch.nn.Module) -> None:
        super().__init__(net)
        if self.particles and not isinstance(self, PooledRestriction):
            raise ValueError(
                "a particle LED network is wrapped by ParticleLEDMacro: build it with "
                "LEDMacro.from_network"
            )

    @classmethod
    def from_network(cls, net: torch.nn.Module) -> LEDMacro:
        particles = bool(getattr(net, "particles", False))
        return ParticleLEDMacro(net) if particles and cls is LEDMacro else cls(net)

    @classmethod
    def trained_state(cls, spec: dict[str, Any]) -> tuple[tuple[int, ...], bool]:
        return tuple(spec["state_shape"]), architecture(spec["autoencoder"]) == "particles"


class ParticleLEDMacro(LEDMacro, PooledRestriction):
    """LED of a particle system: the lift samples the mixture-density decoder (one
    generator per member) and the restriction pools over particles split across ranks.
    Its decoder samples, so it has no innovation (a shadow would need random streams)."""

    assimilations = ("teacher_forcing",)

    def decode(
        self,
        m: np.ndarray,
        generators: Sequence[torch.Generator] | None = None,
        n_particles: int | None = None,
    ) -> np.ndarray:
        with torch.no_grad():
            z = self._tensor(m)
            seq = z.ndim == 3
            if generators is None or len(generators) != z.shape[0]:
                raise ValueError("lift of particles needs one generator per member")
            parts = []
            for b, gen in enumerate(generators):
                zb = z[b] if seq else z[b : b + 1]  # (T, d_z): T draws of one member
                parts.append(self.net.decode(zb, gen, n_particles).cpu().double().numpy())
            x = np.stack(parts) if seq else np.concatenate(parts)
            half = float(self.net.spec.get("box") or 1.0) / 2
            return np.clip(x, -half, half)  # float32 rounding of the inverse min-max scaling

    def pool_features(self, local: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            x = self.net.scaler.transform(self._tensor(local))
            return self.net.autoencoder.encoder.phi(x).sum(dim=-2).cpu().double().numpy()

    def restrict_pooled(self, mean_features: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            out = self.net.autoencoder.encoder.g(
                torch.as_tensor(mean_features).to(self.net.device, self.net.dtype)
            )
            if self.net.autoencoder.variational:
                out = out.chunk(2, dim=-1)[0]
            return out.cpu().numpy()
