"""LED as a :class:`~ledmus.surrogates.macro.MacroModel`: restriction = encoder,
lifting = decoder (particles: sampled from the mixture density), propagation = the
latent RNN (seed 001 eqs 13–16), teacher-forced on restricted micro states."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from .macro import MacroModel, register_macro_model
from .propagators import Hidden


class RNNPropagation:
    """The propagation state shared by models with a latent RNN (``net.rnn``):
    ``hidden``, the prediction ``z_next`` of the next step and the ``pending`` last
    propagated state not yet fed back (see :mod:`ledmus.surrogates.macro`)."""

    net: torch.nn.Module

    def reset(self) -> None:
        self.hidden: Hidden | None = None
        self.z_next: torch.Tensor | None = None
        self.pending: torch.Tensor | None = None

    def _tensor(self, x: Any) -> torch.Tensor:
        return self.net.as_tensor(x)

    def assimilate(self, m_seq: np.ndarray) -> None:
        with torch.no_grad():
            seq = self._tensor(m_seq)
            if self.pending is not None:
                seq = torch.cat([self.pending[:, None], seq], dim=1)
            pred, self.hidden = self.net.rnn(seq, self.hidden)
            self.z_next, self.pending = pred[:, -1], None

    def propagate(self, n: int) -> tuple[np.ndarray, None]:
        with torch.no_grad():
            if self.pending is not None:  # two macro phases in a row: feed the last one first
                pred, self.hidden = self.net.rnn(self.pending[:, None], self.hidden)
                self.z_next, self.pending = pred[:, -1], None
            if self.z_next is None:
                raise RuntimeError("propagate before any assimilate: no state to start from")
            z, self.hidden = self.net.rnn.free_run(self.z_next, self.hidden, n)
            self.pending, self.z_next = z[:, -1], None
            return z.cpu().numpy(), None

    def snapshot(self) -> dict[str, Any]:
        hidden = self.hidden
        if isinstance(hidden, tuple):
            hidden_list = [h.cpu().numpy() for h in hidden]
        else:
            hidden_list = [] if hidden is None else [hidden.cpu().numpy()]

        def arr(t: torch.Tensor | None) -> np.ndarray | None:
            return None if t is None else t.cpu().numpy()

        return {"hidden": hidden_list, "z_next": arr(self.z_next), "pending": arr(self.pending)}

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

    def get_weights(self) -> dict[str, torch.Tensor]:
        return {k: v.detach().clone() for k, v in self.net.state_dict().items()}

    def set_weights(self, state_dict: dict[str, torch.Tensor]) -> None:
        self.net.load_state_dict(state_dict)


class NetworkMacro(RNNPropagation, MacroModel):
    """A macro model around a network with ``system``, ``state_shape``, ``latent_dim``,
    ``encode``, ``decode``, ``decode_sequence`` and ``rnn`` (LED, PCA): restriction, the
    deterministic (grid) lift and the RNN propagation; for particle networks
    (``net.particles``) :class:`LEDMacro` samples the lift instead."""

    def __init__(self, net: torch.nn.Module) -> None:
        self.net = net.eval()
        self.system = net.system
        self.state_shape = tuple(net.state_shape)
        self.macro_dim = net.latent_dim
        self.particles = bool(getattr(net, "particles", False))
        self.stochastic_lift = self.pooled = self.particles
        self.reset()

    @classmethod
    def from_network(cls, net: torch.nn.Module) -> NetworkMacro:
        return cls(net)

    def restrict(self, states: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return self.net.encode(np.asarray(states)).cpu().numpy()

    def lift(
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


@register_macro_model
class LEDMacro(NetworkMacro):
    """Autoencoder + latent RNN (seed 001 §2)."""

    kind = "led"

    @classmethod
    def trained_state(cls, spec: dict[str, Any]) -> tuple[tuple[int, ...], bool]:
        return tuple(spec["state_shape"]), spec["autoencoder"].get("kind") == "particles"

    def lift(
        self,
        m: np.ndarray,
        generators: Sequence[torch.Generator] | None = None,
        n_particles: int | None = None,
    ) -> np.ndarray:
        if not self.particles:
            return super().lift(m)
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
