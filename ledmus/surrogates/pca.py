"""The PCA baseline of the LED paper (Vlachas et al. §3, "PCA" in Figs. 34-35): restriction
and lifting are a linear projection onto the leading ``d`` principal components of the
scaled state, and the same latent RNN as LED
(:class:`~ledmus.surrogates.propagators.LatentRNN`, or an ensemble of them:
:func:`~ledmus.surrogates.ensemble.build_rnn`) propagates the PCA coefficients. ::

    z = V (flat(scale(s)) - mu),     s = scale^-1(unflat(V^T z + mu))

``V`` ``(d, D)`` holds orthonormal principal directions of the flattened, scaled training
states (``D = prod(state_shape)``), ``mu`` ``(D,)`` their mean.  Grids only.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from .ensemble import build_rnn
from .led_macro import NetworkMacro
from .scalers import Scaler
from .tensors import Forecaster


class PCA(Forecaster):
    """PCA restriction/lifting + latent RNN, with the duck-typed surface of
    :class:`~ledmus.surrogates.led.LED` (``encode``, ``decode``, ``decode_sequence``,
    ``warmup``, ``forecast_latent``, ``rnn``, ``scaler``, ``latent_dim``).

    ``spec`` holds ``system``, ``state_shape`` ``(C, N)``, ``box`` (None: grids only) and
    the ``pca`` (``components``: d) and ``rnn`` config sections.  Buffers ``mean``,
    ``components`` and ``explained_variance_ratio`` are set by :meth:`fit_pca`.
    """

    kind = "pca"
    particles = False

    def __init__(self, spec: dict[str, Any]) -> None:
        super().__init__()
        self.keep_spec(spec)
        if spec.get("box") is not None or len(self.state_shape) != 2:
            raise ValueError(
                f"pca: grid states (C, N) only, got state_shape {self.state_shape} "
                f"and box {spec.get('box')!r} (particles)"
            )
        n_features = math.prod(self.state_shape)
        self.latent_dim = int(spec["pca"]["components"])
        if not 1 <= self.latent_dim <= n_features:
            raise ValueError(
                f"pca.components={self.latent_dim} must be in 1..{n_features} "
                f"(the state size of {self.state_shape})"
            )
        self.scaler = Scaler("standard", self.state_shape[0], 0)
        self.register_buffer("mean", torch.zeros(n_features))
        self.register_buffer("components", torch.eye(self.latent_dim, n_features))
        self.register_buffer("explained_variance_ratio", torch.zeros(self.latent_dim))
        self.rnn = build_rnn(self.latent_dim, spec["rnn"])

    # ------------------------------------------------------------------ fit (stage 1)
    @torch.no_grad()
    def fit_pca(self, samples: np.ndarray, *, fit_scaler: bool = True) -> np.ndarray:
        """Fit the scaler (unless ``fit_scaler=False``) and the principal components on
        physical samples ``(S, *state_shape)``: float64 SVD of the scaled, flattened,
        centred samples, stored in the model's dtype.  Each direction's sign is fixed so
        that its largest-magnitude entry is positive (reproducible fits).  Returns the
        explained-variance ratio of the ``d`` kept components (float64)."""
        samples = np.asarray(samples, dtype=np.float64)
        if samples.shape[1:] != self.state_shape:
            raise ValueError(f"pca: samples {samples.shape[1:]} != state {self.state_shape}")
        if samples.shape[0] < self.latent_dim:
            raise ValueError(
                f"pca: {samples.shape[0]} samples cannot give {self.latent_dim} components"
            )
        if fit_scaler:
            self.scaler.fit(samples)
        x = self.scaler.transform(torch.as_tensor(samples, dtype=torch.float64))
        x = x.reshape(x.shape[0], -1)
        mean = x.mean(dim=0)
        _, s, vt = torch.linalg.svd(x - mean, full_matrices=False)
        vt = vt[: self.latent_dim]
        sign = torch.sign(vt.gather(1, vt.abs().argmax(dim=1, keepdim=True)))
        vt = vt * sign
        power = s**2
        ratio = power[: self.latent_dim] / power.sum()
        self.mean.copy_(mean)
        self.components.copy_(vt)
        self.explained_variance_ratio.copy_(ratio)
        return ratio.numpy()

    # ------------------------------------------------------------------ restriction / lifting
    def project(self, x: torch.Tensor) -> torch.Tensor:
        """Scaled states ``(..., *state_shape)`` -> coefficients ``(..., d)``."""
        flat = x.reshape(*x.shape[: x.ndim - 2], -1)
        return (flat - self.mean.to(x.dtype)) @ self.components.to(x.dtype).T

    def unproject(self, z: torch.Tensor) -> torch.Tensor:
        """Coefficients ``(..., d)`` -> scaled states ``(..., *state_shape)``."""
        flat = z @ self.components.to(z.dtype) + self.mean.to(z.dtype)
        return flat.reshape(*z.shape[:-1], *self.state_shape)

    def encode(self, states: Any) -> torch.Tensor:
        """Physical states ``(..., *state_shape)`` -> PCA coefficients ``(..., d)``."""
        return self.project(self.scaler.transform(self.as_tensor(states)))

    def decode(
        self,
        z: torch.Tensor,
        generator: torch.Generator | None = None,
        n_particles: int | None = None,
    ) -> torch.Tensor:
        """Coefficients ``(..., d)`` -> physical states ``(..., *state_shape)``
        (deterministic: ``generator`` and ``n_particles`` are ignored)."""
        return self.scaler.inverse(self.unproject(self.as_tensor(z)))

    @torch.no_grad()
    def scaled_reconstruction_mse(self, samples: Any, chunk: int = 4096) -> float:
        """Mean squared error of ``unproject(project(x))`` on scaled samples (the
        counterpart of the autoencoder's validation loss)."""
        total, count = 0.0, 0
        for i in range(0, len(samples), chunk):
            x = self.scaler.transform(self.as_tensor(samples[i : i + chunk]))
            total += float(((self.unproject(self.project(x)) - x) ** 2).sum())
            count += x.numel()
        return total / count

    # ------------------------------------------------------------------ propagation

    @torch.no_grad()
    def decode_sequence(
        self, z: torch.Tensor, chunk: int = 4096, generator: torch.Generator | None = None
    ) -> np.ndarray:
        """Coefficients ``(B, T, d)`` -> physical states ``(B, T, *state_shape)`` (numpy)."""
        b, t, d = z.shape
        flat = self.as_tensor(z).reshape(b * t, d)
        parts = [self.decode(flat[i : i + chunk]).cpu().numpy() for i in range(0, b * t, chunk)]
        return np.concatenate(parts).reshape(b, t, *self.state_shape)


class PCAMacro(NetworkMacro):
    """PCA restriction/lifting + latent RNN (the seed paper's PCA baseline)."""

    kind = "pca"
