"""The LED model: scaler + autoencoder + latent propagator, built from a config dict.

Shapes: states ``(B, *state_shape)`` or sequences ``(B, T, *state_shape)`` in physical
units (float32 or float64 in, the model's dtype inside); latents ``(B, d_z)``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from .ensemble import build_rnn
from .networks import ConvAutoencoder, MLPAutoencoder, ParticleAutoencoder
from .scalers import Scaler
from .tensors import Forecaster

AUTOENCODERS = {"mlp": MLPAutoencoder, "conv": ConvAutoencoder, "particles": ParticleAutoencoder}


#: the former name of ``autoencoder.architecture`` (configs and checkpoints written
#: before the rename say ``kind``; both are read)
OLD_ARCHITECTURE_KEY = "kind"


def architecture(section: dict[str, Any]) -> str:
    """The ``architecture`` of an ``autoencoder`` config section or checkpoint spec
    (default ``mlp``; the former key ``kind`` is read too)."""
    return str(section.get("architecture", section.get(OLD_ARCHITECTURE_KEY, "mlp")))


def build_autoencoder(state_shape: tuple[int, ...], cfg: dict[str, Any]) -> nn.Module:
    """Autoencoder from the ``autoencoder`` section of a config (``architecture`` picks
    the class)."""
    cfg = dict(cfg)
    arch = architecture(cfg)
    for key in ("architecture", OLD_ARCHITECTURE_KEY, "scaler"):
        cfg.pop(key, None)
    if arch not in AUTOENCODERS:
        raise ValueError(
            f"autoencoder.architecture={arch!r} unknown; allowed: {', '.join(AUTOENCODERS)}"
        )
    if "channels" in cfg:
        cfg["channels"] = tuple(cfg["channels"])
    try:
        return AUTOENCODERS[arch](tuple(state_shape), **cfg)
    except TypeError as exc:
        raise ValueError(f"autoencoder ({arch}): {exc}") from None


class LED(Forecaster):
    """Learned effective dynamics: ``z = E(scale(s))``, ``z' = RNN(z)``, ``s = D(z)``.

    ``spec`` holds ``system``, ``state_shape``, ``box`` (particles: the box side; None
    for grids) and the ``autoencoder`` and ``rnn`` config sections.
    """

    #: the model family (the checkpoint's ``kind``)
    kind = "led"

    def __init__(self, spec: dict[str, Any]) -> None:
        super().__init__()
        self.keep_spec(spec)
        ae = spec["autoencoder"]
        self.particles = architecture(ae) == "particles"
        if self.particles:
            scaler_method, channel_axis = "minmax", 1
        else:
            scaler_method, channel_axis = ae.get("scaler", "standard"), 0
        n_channels = self.state_shape[channel_axis]
        self.scaler = Scaler(scaler_method, n_channels, channel_axis)
        self.autoencoder = build_autoencoder(self.state_shape, ae)
        self.latent_dim = int(ae["latent_dim"])
        self.rnn = build_rnn(self.latent_dim, spec["rnn"])

    # ------------------------------------------------------------------ restriction / lifting
    def encode(self, states: Any) -> torch.Tensor:
        """Physical states ``(..., *state_shape)`` -> latents ``(..., d_z)`` (VAE: the mean)."""
        return self.autoencoder.encode(self.scaler.transform(self.as_tensor(states)))

    def decode(
        self,
        z: torch.Tensor,
        generator: torch.Generator | None = None,
        n_particles: int | None = None,
    ) -> torch.Tensor:
        """Latents ``(B, d_z)`` -> physical states ``(B, *state_shape)``; particles are
        sampled from the mixture density (``n_particles`` defaults to the training N)."""
        if self.particles:
            x = self.autoencoder.decode(z, n_particles, generator)
        else:
            x = self.autoencoder.decode(z)
        return self.scaler.inverse(x)

    # ------------------------------------------------------------------ sequences
    # (warm-up and latent forecasting: tensors.Forecaster)
    @torch.no_grad()
    def decode_sequence(
        self, z: torch.Tensor, chunk: int = 4096, generator: torch.Generator | None = None
    ) -> np.ndarray:
        """Decode latents ``(B, T, d_z)`` to physical states ``(B, T, *state_shape)`` (numpy)."""
        b, t, d = z.shape
        flat = z.reshape(b * t, d)
        parts = [
            self.decode(flat[i : i + chunk], generator).cpu().numpy()
            for i in range(0, b * t, chunk)
        ]
        return np.concatenate(parts).reshape(b, t, *self.state_shape)
