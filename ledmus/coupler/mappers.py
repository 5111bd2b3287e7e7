"""Lifting and restriction mappers (the conduits' operators), for any macro model.

``Decoder``: macro states -> observable states by :meth:`MacroModel.decode` (stochastic decodes
draw from one generator per member and window).  ``Restrict``: observed micro states ->
macro states by :meth:`MacroModel.restrict`.  Neither keeps state between windows.
"""

from __future__ import annotations

import time

import numpy as np

from ..surrogates.macro import MacroModel
from .messages import MicroRequest, MicroResult, Restricted, WindowRequest
from .micro import check_finite
from .streams import RNG_MDN, member_torch_generator


class Decoder:
    """Macro states ``(B, d)`` -> observable states ``(B, *shape)``."""

    def __init__(
        self, model: MacroModel, seed: int, members: np.ndarray, n_particles: int | None = None
    ) -> None:
        self.model, self.seed = model, int(seed)
        self.members = np.asarray(members, dtype=np.int64)
        self.n_particles = n_particles

    def decode(
        self, m: np.ndarray, window: int, purpose: int = RNG_MDN, rows: np.ndarray | None = None
    ) -> np.ndarray:
        """``(B, d)`` or ``(B, T, d)`` -> float64 states ``(B, [T,] *shape)``
        (``rows``: the positions of ``m``'s members among this mapper's, default all)."""
        gens = None
        if self.model.stochastic_decode:
            device = getattr(self.model, "device", "cpu")
            members = self.members if rows is None else self.members[np.asarray(rows)]
            gens = [
                member_torch_generator(self.seed, int(k), window, device, purpose) for k in members
            ]
        return self.model.decode(m, gens, self.n_particles)

    def handle(self, request: WindowRequest) -> MicroRequest:
        start = time.perf_counter()
        state = None
        if request.m is not None:
            rows = request.lift if request.members is not None else None
            state = check_finite(
                "lift (decoder)",
                self.decode(request.m, request.window, rows=rows),
                request.window,
            )
        return MicroRequest(
            window=request.window,
            t0=request.t0,
            steps=request.steps,
            include_initial=request.include_initial,
            state=state,
            lift_s=time.perf_counter() - start,
            members=request.members,
            lift=request.lift,
        )


class Restrict:
    """Observed states ``(B, n, *shape)`` -> macro states ``(B, n, d)``."""

    def __init__(self, model: MacroModel) -> None:
        self.model = model

    def handle(self, result: MicroResult, m: np.ndarray | None = None) -> Restricted:
        """``m``: macro states computed elsewhere (an MPI-pooled restriction)."""
        start = time.perf_counter()
        if m is None:
            m = self.model.restrict(result.states)
        m = check_finite("restrict (encoder)", m, result.window)
        return Restricted(
            window=result.window,
            states=result.states,
            m=m,
            micro_s=result.micro_s,
            lift_s=result.lift_s,
            restrict_s=time.perf_counter() - start,
            micro_ranks=result.micro_ranks,
            lift_stats=result.lift_stats,
        )
