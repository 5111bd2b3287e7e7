"""Advection–diffusion of Brownian particles (Vlachas et al. eq 25), Euler–Maruyama.

SDE per particle and axis, time in the paper's units::

    dx = A cos(omega t) dt + sqrt(D) dW          (so <dx^2> = D dt with A = 0)

on the box ``[-L/2, L/2]^d`` with reflective walls (``boundary="reflective"``) or on
the whole line (``boundary="free"``, used by the statistical tests).  Reflection mirrors
the unconstrained step back into the box at the wall it crossed.

Internal state and observable are the positions ``(B, N_particles, d)``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .base import Solver, check_int, check_positive

BOUNDARIES = ("reflective", "free")


def _vector(name: str, value: Any, dim: int) -> np.ndarray:
    arr = np.atleast_1d(np.asarray(value, dtype=np.float64))
    if arr.shape == (1,) and dim > 1:
        arr = np.repeat(arr, dim)
    if arr.shape != (dim,) or not np.all(np.isfinite(arr)):
        raise ValueError(
            f"{name} must be a finite number or a list of {dim} numbers, got {value!r}"
        )
    return arr


class AdvectionDiffusionParticles(Solver):
    """Euler–Maruyama Brownian particles with cosine drift in a reflective box."""

    name = "ad"
    stochastic = True

    def __init__(
        self,
        *,
        dim: int = 1,
        n_particles: int = 1000,
        diffusion: float = 0.2,
        amplitude: Any = 1.0,
        frequency: Any = 0.1,
        box: float = 1.0,
        boundary: str = "reflective",
        dt: float = 1e-3,
        dt_coarse: float = 0.5,
    ) -> None:
        super().__init__(dt=dt, dt_coarse=dt_coarse)
        self.dim = check_int("dim", dim, minimum=1)
        self.n_particles = check_int("n_particles", n_particles, minimum=1)
        self.diffusion = check_positive("diffusion", diffusion, allow_zero=True)
        self.amplitude = _vector("amplitude", amplitude, self.dim)
        self.frequency = _vector("frequency", frequency, self.dim)
        self.box = check_positive("box", box)
        if boundary not in BOUNDARIES:
            raise ValueError(f"boundary={boundary!r} unknown; allowed: {', '.join(BOUNDARIES)}")
        self.boundary = boundary
        # Accuracy limit of explicit Euler with walls: one step must be a small fraction
        # of the box (Vlachas et al. SI §8.2: U dt << L and sqrt(D dt) << L).
        limit = 0.05 * self.box
        if (
            np.sqrt(self.diffusion * self.dt) > limit
            or np.max(np.abs(self.amplitude)) * self.dt > limit
        ):
            raise ValueError(
                f"dt={self.dt!r} is too large: sqrt(D*dt) and |A|*dt must stay <= 0.05*box={limit}"
            )
        self._sigma = np.sqrt(self.diffusion * self.dt)

    @property
    def state_shape(self) -> tuple[int, ...]:
        return (self.n_particles, self.dim)

    def params(self) -> dict[str, Any]:
        return dict(
            dim=self.dim,
            n_particles=self.n_particles,
            diffusion=self.diffusion,
            amplitude=self.amplitude.tolist(),
            frequency=self.frequency.tolist(),
            box=self.box,
            boundary=self.boundary,
            dt=self.dt,
            dt_coarse=self.dt_coarse,
        )

    def ic_names(self) -> tuple[str, ...]:
        return ("random", "origin", "uniform")

    def _named_ic(self, name: str, batch: int, rng: np.random.Generator) -> np.ndarray:
        """``origin``: every particle at 0 (the paper's x_0 = 0); ``random``: every particle
        of a member at one point drawn uniformly in the box; ``uniform``: i.i.d. uniform."""
        half = self.box / 2
        shape = (batch, self.n_particles, self.dim)
        if name == "origin":
            return np.zeros(shape)
        if name == "random":
            return np.broadcast_to(rng.uniform(-half, half, (batch, 1, self.dim)), shape).copy()
        return rng.uniform(-half, half, shape)

    def _lift(self, obs: np.ndarray, rng: np.random.Generator | None) -> np.ndarray:
        if self.boundary == "reflective" and np.any(np.abs(obs) > self.box / 2):
            raise ValueError(
                f"state has particles outside the box [-{self.box / 2}, {self.box / 2}]"
            )
        return obs.copy()

    def _observe(self, x: np.ndarray) -> np.ndarray:
        return x.copy()

    def _step(self, x: np.ndarray, t: float, rng: np.random.Generator | None) -> np.ndarray:
        noise = rng.standard_normal(x.shape)
        noise *= self._sigma
        noise += (self.amplitude * np.cos(self.frequency * t)) * self.dt
        x = x + noise
        if self.boundary == "reflective":
            # Mirror at the upper wall, then at the lower: x <- h - |h - x|, x <- |x + h| - h.
            # Exact for an overshoot below one box length; the dt check keeps a step's
            # drift and noise scale under 0.05 box, so more needs a >19-sigma draw.
            half = self.box / 2
            np.subtract(half, x, out=x)
            np.abs(x, out=x)
            np.subtract(self.box, x, out=x)  # = (h - |h - x|) + h
            np.abs(x, out=x)
            x -= half
        return x
