"""Leading Lyapunov exponent of a deterministic solver by Benettin's method."""

from __future__ import annotations

import numpy as np

from ..progress import progress_bar
from .base import Solver


def leading_lyapunov(
    solver: Solver,
    ic: np.ndarray,
    t_end: float,
    *,
    tau: float = 1.0,
    transient: float = 0.0,
    delta0: float = 1e-7,
    rng: np.random.Generator | None = None,
    progress: bool = False,
) -> np.ndarray:
    """lambda_1 for every ensemble member of ``ic`` ``(B, *state_shape)``, shape ``(B,)``.

    Each member carries a neighbour at Euclidean distance ``delta0`` (zero-mean random
    direction, so conserved means stay equal); every ``tau`` time units the log growth
    ``ln(|delta|/delta0)`` is accumulated and the neighbour is pulled back to ``delta0``
    along the separation.  ``lambda_1 = sum(logs) / t_end``, in inverse time units.
    """
    if solver.stochastic:
        raise ValueError(
            f"{solver.system!r} is stochastic; Lyapunov exponents need a deterministic solver"
        )
    rng = rng if rng is not None else np.random.default_rng(0)
    v = solver.advance(solver.lift(ic), 0.0, transient)
    u = solver.observe(v)
    b = u.shape[0]
    axes = tuple(range(1, u.ndim))
    direction = rng.standard_normal(u.shape)
    direction -= direction.mean(axis=-1, keepdims=True)
    direction /= np.sqrt((direction**2).sum(axis=axes, keepdims=True))
    w = solver.lift(u + delta0 * direction)
    n = int(round(t_end / tau))
    logs = np.zeros(b)
    for _ in progress_bar(range(n), enabled=progress, desc="Benettin", unit="τ"):
        v = solver.advance(v, 0.0, tau)
        w = solver.advance(w, 0.0, tau)
        u = solver.observe(v)
        du = solver.observe(w) - u
        dist = np.sqrt((du**2).sum(axis=axes))
        logs += np.log(dist / delta0)
        w = solver.lift(u + du * (delta0 / dist).reshape((b,) + (1,) * len(axes)))
    return logs / (n * tau)
