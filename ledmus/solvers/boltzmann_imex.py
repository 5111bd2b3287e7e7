"""The penalised IMEX time integration of the Boltzmann solvers (a mixin of
:class:`~ledmus.solvers.boltzmann.Boltzmann`; the scheme is described in that module's
docstring): ``f_t = T(f) + Q(f)/eps`` with the collision operator split as ``Q(f) =
[Q(f) - mu (M[f] - f)] + mu (M[f] - f)``, the bracket explicit and the BGK penalisation
implicit (solved in closed form: ``M[F]`` has the moments of the explicit data), in the
ARS(2,2,2) or first-order IMEX scheme.

The class using it supplies ``_velocity`` (``collision``, ``moments``, ``maxwellian``),
``_transport``, ``_cellwise``, ``_tensor``, ``scheme`` and the tensor ``_dtype`` /
``_device``; ``_penalty`` (the rate ``mu``) may be overridden (the 3-D solver's bounds
its non-constant collision frequency).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ..windows import ARS_D, ARS_G
from .base import check_positive

SCHEMES = ("ars222", "imex1")


class PenalisedIMEX:
    """``relax`` (space-homogeneous) and the IMEX step ``_imex`` (module docstring)."""

    def relax(
        self, f: Any, duration: float, dt: float, *, eps: float = 1.0, method: str = "rk4"
    ) -> np.ndarray:
        """Space-homogeneous ``f_t = Q(f)/eps`` for ``duration`` in steps ``dt``, ``f``
        ``(..., N, N)``.  ``method``: ``"rk4"`` (classical Runge-Kutta on ``Q``),
        ``"ars222"`` or ``"imex1"`` (the penalised schemes of :meth:`advance` without
        transport)."""
        eps = check_positive("eps", eps)
        dt = check_positive("dt", dt)
        if method not in ("rk4", *SCHEMES):
            raise ValueError(f"method must be one of rk4, {', '.join(SCHEMES)}, got {method!r}")
        n = round(check_positive("duration", duration, allow_zero=True) / dt)
        g = self._tensor(f)
        e = torch.as_tensor(eps, dtype=self._dtype, device=self._device)
        for _ in range(n):
            if method == "rk4":
                k1 = self._velocity.collision(g) / eps
                k2 = self._velocity.collision(g + 0.5 * dt * k1) / eps
                k3 = self._velocity.collision(g + 0.5 * dt * k2) / eps
                k4 = self._velocity.collision(g + dt * k3) / eps
                g = g + dt / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
            else:
                g = self._imex(g, dt, e, transport=False, scheme=method)
        return g.cpu().double().numpy()

    def _penalty(self, U: torch.Tensor, eps: torch.Tensor, dt: float) -> torch.Tensor:
        """``mu`` ``(...)`` of the BGK penalisation from the moments ``U`` ``(..., 4)``:
        ``rho`` (the loss frequency of the Maxwell kernel); ``eps`` and the step ``dt`` are
        for a rate that depends on them (the 3-D solver's)."""
        return U[..., 0]

    def _explicit(
        self,
        f: torch.Tensor,
        U: torch.Tensor,
        M: torch.Tensor,
        eps: torch.Tensor,
        transport: Any,
        dt: float,
    ) -> torch.Tensor:
        """``E(f) = T(f) + (Q(f) - mu (M - f))/eps`` with ``mu`` of :meth:`_penalty`;
        ``transport``: ``True`` (the domain's), ``False`` (none) or a callable ``T(f)``."""
        mu = self._cellwise(self._penalty(U, eps, dt))
        out = (self._velocity.collision(f) - mu * (M - f)) / eps
        if callable(transport):  # a run of cells with given ghost cells (advance_runs)
            return out + transport(f)
        return out + self._transport(f) if transport else out

    def _implicit(self, R: torch.Tensor, a: float, eps: torch.Tensor, dt: float):
        """Solve ``F = R + a I(F)``, ``I = mu (M[F] - F)/eps``: ``(F, I(F), U, M[F])``
        (``dt``: the whole step, for :meth:`_penalty`)."""
        U = self._velocity.moments(R)
        M = self._velocity.maxwellian(U)
        lam = a * self._cellwise(self._penalty(U, eps, dt)) / eps
        F = (R + lam * M) / (1.0 + lam)
        return F, (F - R) / a, U, M

    def _imex(
        self,
        f: torch.Tensor,
        dt: float,
        eps: torch.Tensor,
        transport: Any,
        scheme: str | None = None,
    ) -> torch.Tensor:
        """One IMEX step (module docstring); ``transport``: ``True``, ``False`` or the
        pair of callables ``T(f)`` of the two explicit stages (at ``t`` and ``t + g dt``)."""
        t1, t2 = (transport, transport) if isinstance(transport, bool) else transport
        U0 = self._velocity.moments(f)
        M0 = self._velocity.maxwellian(U0)
        e1 = self._explicit(f, U0, M0, eps, t1, dt)
        if (scheme or self.scheme) == "imex1":
            return self._implicit(f + dt * e1, dt, eps, dt)[0]
        f2, i2, U2, M2 = self._implicit(f + ARS_G * dt * e1, ARS_G * dt, eps, dt)
        e2 = self._explicit(f2, U2, M2, eps, t2, dt)
        r3 = f + dt * (ARS_D * e1 + (1.0 - ARS_D) * e2) + (1.0 - ARS_G) * dt * i2
        return self._implicit(r3, ARS_G * dt, eps, dt)[0]


__all__ = ["SCHEMES", "PenalisedIMEX"]
