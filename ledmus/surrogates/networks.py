"""Autoencoders of the LED paper (Vlachas et al. §6 / SI §6) as plain ``nn.Module`` subclasses.

Every autoencoder works on *scaled* states ``(B, *state_shape)`` and exposes

* ``encode_dist(x) -> (mu, logvar | None)``: the latent mean (and log-variance for a VAE),
* ``encode(x) -> z``: the deterministic latent used for propagation (the mean),
* ``decode(z) -> x`` (deterministic decoders) or ``decode_dist(z)`` (mixture density).
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.distributions import Categorical, MixtureSameFamily, MultivariateNormal
from torch.nn import functional as F

ACTIVATIONS = {"tanh": nn.Tanh, "relu": nn.ReLU, "elu": nn.ELU, "silu": nn.SiLU}


def make_activation(name: str) -> nn.Module:
    if name not in ACTIVATIONS:
        raise ValueError(f"activation={name!r} unknown; allowed: {', '.join(ACTIVATIONS)}")
    return ACTIVATIONS[name]()


class ResidualMLP(nn.Module):
    """``in -> width`` then ``layers - 1`` residual blocks ``h + act(W h + b)``, then a
    linear map to ``out``: ``layers`` hidden layers of ``width`` units in all."""

    def __init__(self, n_in: int, n_out: int, layers: int, width: int, act: str = "tanh") -> None:
        super().__init__()
        if layers < 1 or width < 1:
            raise ValueError(f"layers and width must be >= 1, got layers={layers}, width={width}")
        self.inp = nn.Sequential(nn.Linear(n_in, width), make_activation(act))
        self.blocks = nn.ModuleList(
            nn.Sequential(nn.Linear(width, width), make_activation(act)) for _ in range(layers - 1)
        )
        self.out = nn.Linear(width, n_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.inp(x)
        for block in self.blocks:
            h = h + block(h)
        return self.out(h)


def reparameterise(mu: torch.Tensor, logvar: torch.Tensor | None) -> torch.Tensor:
    """``z = mu + exp(logvar/2) * eps`` (SI §6.2, eq 9) in training; ``mu`` for an AE."""
    if logvar is None:
        return mu
    return mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)


def kl_standard_normal(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, diag exp(logvar)) || N(0, I)) per sample, summed over the latent."""
    return 0.5 * torch.sum(mu**2 + logvar.exp() - 1.0 - logvar, dim=-1)


class _Encoding(nn.Module):
    variational: bool

    def encode_dist(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        out = self.encoder_out(x)
        if self.variational:
            mu, logvar = out.chunk(2, dim=-1)
            return mu, logvar.clamp(-20.0, 10.0)
        return out, None

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.encode_dist(x)[0]


class MLPAutoencoder(_Encoding):
    """Residual MLP encoder/decoder on the flattened state (FHN: 3 layers x 100, tanh)."""

    def __init__(
        self,
        state_shape: tuple[int, ...],
        latent_dim: int,
        layers: int = 3,
        width: int = 100,
        activation: str = "tanh",
        variational: bool = False,
    ) -> None:
        super().__init__()
        self.state_shape = tuple(state_shape)
        self.variational = variational
        n = math.prod(self.state_shape)
        self.encoder = ResidualMLP(
            n, latent_dim * (2 if variational else 1), layers, width, activation
        )
        self.decoder = ResidualMLP(latent_dim, n, layers, width, activation)

    def encoder_out(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x.flatten(-len(self.state_shape)))

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z).unflatten(-1, self.state_shape)


class ConvAutoencoder(_Encoding):
    """1-D convolutional autoencoder with periodic (circular) padding for periodic grids.

    Encoder: ``len(channels)`` blocks of [conv k, act, average-pool 2] then a residual
    MLP to the latent; decoder mirrors it with nearest upsampling.  ``N`` must be
    divisible by ``2**len(channels)``.
    """

    def __init__(
        self,
        state_shape: tuple[int, ...],
        latent_dim: int,
        channels: tuple[int, ...] = (16, 32, 64),
        kernel: int = 5,
        layers: int = 2,
        width: int = 100,
        activation: str = "tanh",
        variational: bool = False,
    ) -> None:
        super().__init__()
        self.state_shape = tuple(state_shape)
        self.variational = variational
        c_in, n = self.state_shape
        depth = len(channels)
        if n % 2**depth:
            raise ValueError(f"grid of {n} nodes is not divisible by 2**{depth} (conv channels)")
        pad = kernel // 2
        enc, dec = [], []
        prev = c_in
        for c in channels:
            enc += [
                nn.Conv1d(prev, c, kernel, padding=pad, padding_mode="circular"),
                make_activation(activation),
                nn.AvgPool1d(2),
            ]
            prev = c
        self.features = nn.Sequential(*enc)
        self.coarse = (channels[-1], n // 2**depth)
        flat = channels[-1] * self.coarse[1]
        self.encoder_mlp = ResidualMLP(
            flat, latent_dim * (2 if variational else 1), layers, width, activation
        )
        self.decoder_mlp = ResidualMLP(latent_dim, flat, layers, width, activation)
        rev = list(channels[::-1]) + [c_in]
        for i in range(depth):
            dec += [
                nn.Upsample(scale_factor=2, mode="nearest"),
                nn.Conv1d(rev[i], rev[i + 1], kernel, padding=pad, padding_mode="circular"),
            ]
            if i < depth - 1:
                dec.append(make_activation(activation))
        self.upsample = nn.Sequential(*dec)

    def encoder_out(self, x: torch.Tensor) -> torch.Tensor:
        lead = x.shape[:-2]
        h = self.features(x.reshape(-1, *self.state_shape)).flatten(1)
        return self.encoder_mlp(h).reshape(*lead, -1)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        lead = z.shape[:-1]
        h = self.decoder_mlp(z.reshape(-1, z.shape[-1])).reshape(-1, *self.coarse)
        return self.upsample(h).reshape(*lead, *self.state_shape)


class PermutationInvariantEncoder(nn.Module):
    """SI §6.3: ``z = g(mean_i phi(x_i))`` for particles ``(B, N, d_x)``; any N works.

    ``phi``: residual MLP ``d_x -> d_p``; ``g``: residual MLP ``d_p -> latent``.
    """

    def __init__(
        self,
        d_x: int,
        n_out: int,
        layers: int = 5,
        width: int = 100,
        d_p: int = 100,
        activation: str = "tanh",
    ) -> None:
        super().__init__()
        self.phi = ResidualMLP(d_x, d_p, layers, width, activation)
        self.g = ResidualMLP(d_p, n_out, layers, width, activation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.g(self.phi(x).mean(dim=-2))


def inverse_softplus(y: torch.Tensor) -> torch.Tensor:
    """``v`` with ``softplus(v) = y`` for ``y > 0``: ``y + log(-expm1(-y))``."""
    return y + torch.log(-torch.expm1(-y))


class MixtureDensityDecoder(nn.Module):
    """SI §6.4: ``p(v|z) = sum_k pi_k(z) N(mu_k(z), L_k L_k^T)`` on ``v = softplus^{-1}(x)``,
    ``x`` the particle position min-max scaled to [0, 1].

    Outputs per component: mean (linear), Cholesky diagonal (softplus), strict lower
    triangle (linear), and softmax mixing weights.  Every particle is an independent
    draw given ``z``.
    """

    def __init__(
        self,
        latent_dim: int,
        d_x: int,
        components: int = 5,
        layers: int = 5,
        width: int = 100,
        activation: str = "tanh",
    ) -> None:
        super().__init__()
        self.d_x, self.k = d_x, components
        self.n_tril = d_x * (d_x - 1) // 2
        n_out = components * (1 + 2 * d_x + self.n_tril)
        self.net = ResidualMLP(latent_dim, n_out, layers, width, activation)
        self.register_buffer("_tril", torch.tril_indices(d_x, d_x, offset=-1), persistent=False)

    def distribution(self, z: torch.Tensor) -> MixtureSameFamily:
        """Mixture over one particle's ``v``; batch shape ``(*z.shape[:-1], 1)`` so it
        broadcasts over the particle axis."""
        k, d = self.k, self.d_x
        out = self.net(z).unsqueeze(-2)  # (..., 1, n_out)
        logits, mu, diag, off = out.split([k, k * d, k * d, k * self.n_tril], dim=-1)
        lead = out.shape[:-1]
        scale = torch.diag_embed(F.softplus(diag.reshape(*lead, k, d)) + 1e-4)
        if self.n_tril:
            scale[..., self._tril[0], self._tril[1]] = off.reshape(*lead, k, self.n_tril)
        comp = MultivariateNormal(loc=mu.reshape(*lead, k, d), scale_tril=scale)
        return MixtureSameFamily(Categorical(logits=logits), comp)

    def log_prob(self, z: torch.Tensor, x01: torch.Tensor) -> torch.Tensor:
        """Mean log-likelihood per particle of positions ``x01`` ``(B, N, d)`` in [0, 1]."""
        v = inverse_softplus(x01.clamp(min=1e-4))
        return self.distribution(z).log_prob(v).mean(dim=-1)

    def sample(
        self, z: torch.Tensor, n_particles: int, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Particles ``(B, n_particles, d)`` in [0, 1]: softplus of mixture draws, with
        values above 1 mirrored back (the box is reflective)."""
        dist = self.distribution(z)
        probs = dist.mixture_distribution.probs[..., 0, :]  # (B, K)
        comp = dist.component_distribution
        b = probs.shape[0]
        idx = torch.multinomial(probs, n_particles, replacement=True, generator=generator)
        loc = comp.loc[:, 0].gather(1, idx[..., None].expand(-1, -1, self.d_x))  # (B, N, d)
        tril = comp.scale_tril[:, 0][torch.arange(b, device=z.device)[:, None], idx]  # (B,N,d,d)
        eps = torch.randn(
            b, n_particles, self.d_x, 1, generator=generator, device=z.device, dtype=loc.dtype
        )
        x = F.softplus(loc + (tril @ eps)[..., 0])
        x = 1.0 - (1.0 - x).abs()  # mirror at 1
        return x.clamp(0.0, 1.0)


class ParticleAutoencoder(_Encoding):
    """Permutation-invariant encoder + mixture-density decoder for particles ``(B, N, d)``
    (AD: Vlachas et al. §3.1 / SI §8.1–8.2: phi and g 5 x 100 residual tanh, feature space
    ``d_p`` = 200, decoder hidden ``md_width`` = 50, K = 4 (1-D) or 5 (3-D) kernels)."""

    def __init__(
        self,
        state_shape: tuple[int, ...],
        latent_dim: int,
        layers: int = 5,
        width: int = 100,
        activation: str = "tanh",
        variational: bool = False,
        components: int = 5,
        d_p: int = 200,
        md_width: int = 50,
    ) -> None:
        super().__init__()
        self.state_shape = tuple(state_shape)
        self.variational = variational
        d_x = self.state_shape[-1]
        out = latent_dim * (2 if variational else 1)
        self.encoder = PermutationInvariantEncoder(d_x, out, layers, width, d_p, activation)
        self.decoder = MixtureDensityDecoder(
            latent_dim, d_x, components, layers, md_width, activation
        )

    def encoder_out(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x)

    def decode(
        self,
        z: torch.Tensor,
        n_particles: int | None = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        return self.decoder.sample(z, n_particles or self.state_shape[0], generator)
