"""Runs of cells of the Boltzmann solver's grid advanced with given ghost cells: the
kinetic side of the cell-local hybrid (:mod:`ledmus.coupler.hybrid`), a mixin of
:class:`~ledmus.solvers.boltzmann.Boltzmann` (whose transport faces ``_faces``, boundary
ghosts ``_ghosts``, IMEX step ``_imex`` and velocity space it uses).

Each run and its two ghost cells per side lie side by side in one padded array, so each
explicit stage is one transport and one batched collision call over all runs; the ghosts
enter each stage at its own time (``t`` and ``t + g dt`` for ARS(2,2,2)); the end fluxes
carry the stage weights, so the totals of a run change by its end fluxes to rounding.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ..windows import ARS_D, ARS_G, CellWindows, check_run
from .base import steps_in


class BoltzmannRuns(CellWindows):
    """:meth:`advance_runs` of the Boltzmann solver (see the module)."""

    def advance_runs(
        self, runs: list, duration: float, *, cells: list | None = None
    ) -> list[tuple[np.ndarray, np.ndarray]]:
        """:meth:`~ledmus.windows.CellWindows.advance_cells` of several runs ``(f, left,
        right)`` at once (``cells``: one index array or None per run), with the IMEX
        step's explicit weights in ``phi`` (ARS(2,2,2): ``d``, ``1 - d``; IMEX1: 1; free
        streaming: ½, ½).  Without ``comm`` only."""
        if self.comm is not None:
            raise ValueError("advance_runs works on one process (comm=None)")
        nv = self.nv
        cells = cells or [None] * len(runs)
        if len(cells) != len(runs):
            raise ValueError(f"cells must give one entry per run ({len(runs)}), got {len(cells)}")
        blocks, ghosts, real, ends, eps = [], [], [], [], []
        at = 0
        for (f, left, right), idx in zip(runs, cells, strict=True):
            f = check_run(f, left, right, nv=nv, nx=self.nx, bc=self.bc)
            m = f.shape[2]
            idx = np.arange(m) if idx is None else np.asarray(idx, dtype=int)
            if idx.shape != (m,) or np.any(idx < 0) or np.any(idx >= self.nx):
                raise ValueError(
                    f"cells of a run of {m} cells must be {m} indices in [0, {self.nx})"
                )
            blocks.append(self._cells_internal(f))
            ghosts.append(
                tuple(
                    None if g is None else [self._cells_internal(a) for a in g]
                    for g in (left, right)
                )
            )
            real.append(np.arange(at, at + m))
            ends += [at, at + m]  # the run's end faces among the faces of the padded array
            eps.append(self.eps_cells[idx])
            at += m + 4
        real_t = torch.as_tensor(np.concatenate(real), device=self._device)
        ends_t = torch.as_tensor(np.asarray(ends), device=self._device)
        sizes = [b.shape[1] for b in blocks]
        eps_t = self._tensor(np.concatenate(eps)).reshape(-1, *(1,) * self.velocity_dims)
        n = steps_in(duration, self.dt, "duration", "dt")
        stage_flux: list[torch.Tensor] = []

        def transport(theta: float) -> Any:
            def apply(f: torch.Tensor) -> torch.Tensor:
                padded = []
                for part, (left, right) in zip(torch.split(f, sizes, dim=1), ghosts, strict=True):
                    g0 = (
                        self._ghosts(part, "left")
                        if left is None
                        else (1 - theta) * left[0] + theta * left[1]
                    )
                    g1 = (
                        self._ghosts(part, "right")
                        if right is None
                        else (1 - theta) * right[0] + theta * right[1]
                    )
                    padded.append(torch.cat([g0, part, g1], dim=1))
                flux = self._faces(torch.cat(padded, dim=1))
                stage_flux.append(flux[:, ends_t])
                return (flux[:, :-1] - flux[:, 1:])[:, real_t]

            return apply

        f = torch.cat(blocks, dim=1)
        d = self.velocity_dims  # moments rho, rho u (d), E: the energy is row d + 1
        phi = torch.zeros((f.shape[0], len(ends), d + 2), dtype=self._dtype, device=self._device)
        for k in range(n):
            stage_flux.clear()
            th0, th1 = k / n, (k + 1) / n
            if not self.collisions:
                d0 = self.dt * transport(th0)(f)
                f = f + 0.5 * (d0 + self.dt * transport(th1)(f + d0))
                weights = (0.5, 0.5)
            elif self.scheme == "imex1":
                f = self._imex(f, self.dt, eps_t, (transport(th0), None))
                weights = (1.0,)
            else:
                thg = (k + ARS_G) / n
                f = self._imex(f, self.dt, eps_t, (transport(th0), transport(thg)))
                weights = (ARS_D, 1.0 - ARS_D)
            for w, flux in zip(weights, stage_flux, strict=True):
                phi = phi + (w * self.dt * self.dx) * self._velocity.moments(flux)
        out = []
        phi_np = phi[..., [0, 1, d + 1]].permute(0, 2, 1).detach().cpu().double().numpy()
        for k, part in enumerate(torch.split(f, sizes, dim=1)):
            obs = part.permute(0, *range(2, d + 2), 1).reshape(part.shape[0], nv, part.shape[1])
            out.append((obs.detach().cpu().double().numpy().copy(), phi_np[..., 2 * k : 2 * k + 2]))
        return out

    def _cells_internal(self, f: np.ndarray) -> torch.Tensor:
        """Observable cells ``(B, nv, m)`` -> internal ``(B, m, N, .., N)`` (``velocity_dims``
        axes)."""
        t = self._tensor(f)
        d = self.velocity_dims
        t = t.reshape(t.shape[0], *(self.N,) * d, t.shape[-1])
        return t.permute(0, d + 1, *range(1, d + 1)).contiguous()


__all__ = ["BoltzmannRuns"]
