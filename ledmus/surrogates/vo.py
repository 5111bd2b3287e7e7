"""Probabilistic coarse-graining with virtual observables (Kaltenbach &
Koutsourelakis, "Physics-aware, deep probabilistic modeling of multiscale dynamics in the
small data regime"): the model, its likelihood terms and its predictions.

CG state ``X_t`` ``(d,)``: the particle density in ``d`` bins (the paper's §3.2).  Laws::

    transition (eqs 4-5)      X_{t+1} = X_t + NN(X_t) + sigma_r eps,      eps ~ N(0, I)
    coarse-to-fine (eq 17)    x_t | X_t ~ Multinomial(d_f, X_t)        (d_f particles)
    virtual observable (6-8)  0 = c(X_t) + sigma_c eps_c,   c(X) = 1 - sum_j X_j   (eq 18)

``NN``: ``layers`` fully connected ReLU layers of ``hidden`` units and a linear read-out
(the paper: two layers of 25); it sees ``d X`` (order one) and returns the increment in
fractions.  ``sigma_r`` is learned (as ``log sigma_r``), ``sigma_c^2`` fixed (1e-9).
Without virtual observables (``virtual_observables: false``, the ablation) the
emission uses the normalised probabilities ``X / sum X`` (eq 17 with unnormalised ``X``
is unbounded above without the constraint) and the mass is left to the transition law.

Prediction (Algorithm 1): samples of ``X_T`` from the posterior, the transition law
forward, then a multinomial draw of the ``d_f`` particles per sample and step.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import nn

from .config import DEFAULTS
from .tensors import TensorModule


class VirtualObservableCG(TensorModule):
    """Transition law and likelihoods of the paper.  ``spec``: ``system``, ``state_shape``
    ``(1, d)``, ``n_particles`` (``d_f``), ``dt_coarse`` and the ``vo`` section."""

    kind = "vo"
    particles = False

    def __init__(self, spec: dict[str, Any]) -> None:
        super().__init__()
        self.keep_spec(spec)
        if len(self.state_shape) != 2 or self.state_shape[0] != 1:
            raise ValueError(f"vo: histogram states (1, d) only, got {self.state_shape}")
        self.d = int(self.state_shape[1])
        self.n_particles = int(spec["n_particles"])
        cfg = {**DEFAULTS["vo"], **spec.get("vo", {})}  # the config section's defaults
        self.sigma_c2 = float(cfg["sigma_c2"])
        self.virtual_observables = bool(cfg["virtual_observables"])
        self.samples = int(cfg["samples"])
        layers: list[nn.Module] = []
        width = self.d
        for _ in range(int(cfg["layers"])):
            layers += [nn.Linear(width, int(cfg["hidden"])), nn.ReLU()]
            width = int(cfg["hidden"])
        layers.append(nn.Linear(width, self.d))
        self.net = nn.Sequential(*layers).to(torch.float64)
        with torch.no_grad():  # start near X_{t+1} = X_t: increments are small
            self.net[-1].weight.mul_(0.01)
            self.net[-1].bias.zero_()
        self.log_sigma_r = nn.Parameter(torch.tensor(math.log(1e-3), dtype=torch.float64))

    @property
    def sigma_r(self) -> torch.Tensor:
        return self.log_sigma_r.exp()

    # ------------------------------------------------------------------ laws
    def increment(self, x: torch.Tensor) -> torch.Tensor:
        """``NN(X)`` for ``X`` ``(..., d)`` (fractions in, fractions out)."""
        return self.net(x * self.d) / self.d

    def transition_log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """``sum_t log N(X_{t+1} | X_t + NN(X_t), sigma_r^2 I)`` of paths ``(..., T+1, d)``,
        summed over steps and bins, shape ``(...)``."""
        mean = x[..., :-1, :] + self.increment(x[..., :-1, :])
        var = self.sigma_r**2
        r = x[..., 1:, :] - mean
        return (-0.5 * r**2 / var - 0.5 * torch.log(2 * math.pi * var)).sum(dim=(-2, -1))

    def emission_log_prob(self, x: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
        """``log p_cf(x_t | X_t)`` of eq 17 without the multinomial coefficient (constant in
        ``X``), summed over steps and bins: ``sum m_j log X_j``; ``counts`` ``(..., T+1,
        d)`` particles per bin."""
        p = x if self.virtual_observables else x / x.sum(dim=-1, keepdim=True)
        return (counts * torch.log(p)).sum(dim=(-2, -1))

    def constraint_log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """Virtual likelihood of eq 12, ``sum_t log N(0 | 1 - sum_j X_tj, sigma_c^2)``;
        zero without virtual observables."""
        if not self.virtual_observables:
            return torch.zeros(x.shape[:-2], dtype=x.dtype)
        c = 1.0 - x.sum(dim=-1)
        return (-0.5 * c**2 / self.sigma_c2 - 0.5 * math.log(2 * math.pi * self.sigma_c2)).sum(-1)

    # ------------------------------------------------------------------ prediction
    @torch.no_grad()
    def propagate(
        self, x0: torch.Tensor, n: int, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Sample paths of the transition law: ``x0`` ``(..., d)`` -> ``(..., n, d)``."""
        out, x = [], x0.to(torch.float64)
        for _ in range(n):
            eps = torch.randn(x.shape, dtype=x.dtype, generator=generator)
            x = x + self.increment(x) + self.sigma_r * eps
            out.append(x)
        return torch.stack(out, dim=-2) if out else x0.new_zeros((*x0.shape[:-1], 0, self.d))

    def fine_grained(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Particle densities drawn by eq 17 from CG states ``(..., d)``: multinomial counts
        of ``d_f`` particles over the probabilities :func:`fractions` ``(X)``, divided by
        ``d_f``."""
        p = fractions(x)
        flat = p.reshape(-1, self.d)
        counts = rng.multinomial(self.n_particles, flat)
        return (counts / self.n_particles).reshape(p.shape)


def fractions(x: np.ndarray) -> np.ndarray:
    """CG states ``(..., d)`` as bin fractions: negative entries clipped to 0, normalised to
    sum 1 (uniform where nothing is left), float64."""
    p = np.clip(np.asarray(x, dtype=np.float64), 0.0, None)
    total = p.sum(axis=-1, keepdims=True)
    return np.where(total > 0, p / np.where(total > 0, total, 1.0), 1.0 / p.shape[-1])


class LognormalPosterior(nn.Module):
    """Mean-field lognormal ``q(X_{0:T})`` per sequence (the paper's §3.2): ``log X`` is
    Gaussian with mean ``mu`` and standard deviation ``exp(log_s)``, both ``(n, T+1, d)``."""

    def __init__(self, observed: torch.Tensor, s0: float = 1e-2) -> None:
        super().__init__()
        floor = 0.1 / observed.shape[-1] / 1000  # an empty bin still gets a positive start
        self.mu = nn.Parameter(torch.log(observed.clamp_min(floor)).to(torch.float64))
        self.log_s = nn.Parameter(torch.full_like(self.mu, math.log(s0)))

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` reparameterised samples ``(n, *mu.shape)``."""
        eps = torch.randn((n, *self.mu.shape), dtype=self.mu.dtype, generator=generator)
        return torch.exp(self.mu + self.log_s.exp() * eps)

    def entropy(self) -> torch.Tensor:
        """Entropy of each sequence's lognormal, ``(n,)``."""
        return (self.mu + self.log_s + 0.5 * math.log(2 * math.pi * math.e)).sum(dim=(-2, -1))

    def mean(self) -> torch.Tensor:
        """``E[X] = exp(mu + s^2/2)``, ``(n, T+1, d)``."""
        return torch.exp(self.mu + 0.5 * self.log_s.exp() ** 2)
