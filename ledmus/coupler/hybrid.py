"""Cell-local hybrid of the learned moment closure and the kinetic solver: kinetic where
it must, closure where it may (a coupling mode: it decides *where* micro runs, as the
schedules decide *when*).

The domain's ``nx`` cells are split anew every coupling step ``Δ`` (the solver's
``dt_coarse``) into **kinetic cells**, run by the kinetic solver (BGK or Boltzmann:
:mod:`.hybrid_systems`) on ``f(v)``, and **closure cells**, run by member 0 of the
closure ensemble on ``Q = (ρ, ρu, E, ρW)``
(:class:`~ledmus.surrogates.closure.fv.FVSolver`); the criteria and the decision are in
:mod:`.hybrid_cells`.  One step from ``t`` to ``t + Δ``:

1. score every cell and decide the new kinetic region; the kinetic cells' moments come
   from ``f``, and their encoder ``W`` is **restricted** only where it is used (the
   ``deviation`` score of cells no other criterion decided, the cells that leave, the
   closure runs' ghost cells); a cell that turns kinetic gets ``f`` **lifted** from its
   ``Q`` by the learned decoder ``h(v; U, W)`` (exact moments), one that turns closure
   its restricted ``Q``;
2. the **closure runs** advance over ``Δ`` with their adaptive steps; their ghost cells
   beyond a kinetic neighbour are that neighbour's restricted ``Q`` at ``t``;
3. the **kinetic runs** advance over ``Δ`` with the solver's ``dt``; their ghost cells are
   the decoder's ``f`` of the closure neighbours at ``t`` and at ``t + Δ`` (linear in
   time between, each stage at its own time) — through the kinetic backend, in process
   or the MUSCLE3 kinetic component (:class:`~.messages.KineticRequest`);
4. **reflux**: at every face between a kinetic and a closure cell the closure cell's
   time-integrated mass, momentum and energy flux is replaced by the kinetic one
   (``U_c += ±(Φ_kinetic - Φ_closure)/dx``), so both sides share one interface flux and
   the totals change only by the fluxes through the domain ends.

A closure run that breaks down (non-finite, ``ρ`` or ``T`` <= 0) turns kinetic and the step
is redone.  With no kinetic cell the run is the closure alone; with every cell kinetic,
the kinetic solver alone (bitwise: the same steps).  Today's whole-domain HMM
(``configs/hmm_bgk.ymmsl``) stays the hybrid with one cell group.

Cost model: with ``f_k`` the kinetic fraction and ``S_c`` the closure's speed-up over the
kinetic solver, ``S ≈ 1/(f_k + (1 - f_k)/S_c)`` (:func:`.hybrid_settings.cost_model`).
Settings: :mod:`.hybrid_settings`; the kinetic side: :mod:`.hybrid_kinetic`.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np

from .hybrid_cells import CellView, decide, fill_gaps, get_criterion, grow, runs
from .hybrid_kinetic import InProcess, KineticBackend, ghost_cells
from .hybrid_settings import HybridSettings
from .hybrid_systems import kinetic_side
from .messages import KineticRequest

log = logging.getLogger("ledmus.coupler.hybrid")


class ClosureBreakdown(FloatingPointError):
    """Closure ``cells`` whose step broke down (non-finite, ``ρ`` or ``T`` <= 0): the step
    is redone with them kinetic.  Failures of the kinetic side are not caught."""

    def __init__(self, message: str, cells: np.ndarray) -> None:
        super().__init__(message)
        self.cells = np.asarray(cells, dtype=int)


# ------------------------------------------------------------------------------- the run
class HybridRun:
    """One cell-local hybrid run of one state (see the module).

    ``solver``: the kinetic solver (BGK, its ``kn`` is ``ε``; or Boltzmann, ``eps`` per cell);
    ``ensemble``: its closure ensemble (:mod:`.hybrid_systems`: member 0 propagates, all
    members score ``deviation``, the decoder lifts); ``f0`` ``(nv, nx)`` the initial state.
    """

    def __init__(
        self,
        solver: Any,
        ensemble: Any,
        f0: np.ndarray,
        settings: HybridSettings | None = None,
        *,
        kinetic: KineticBackend | None = None,
    ) -> None:
        self.solver, self.settings = solver, settings or HybridSettings()
        self.side = kinetic_side(solver, ensemble)
        self.members = self.side.members
        self.eps = self.side.eps
        self.nx, self.dx, self.dt = solver.nx, solver.dx, solver.dt_coarse
        self.periodic = solver.bc == "periodic"
        self.fv = self.side.fv
        self.kinetic_backend = kinetic or InProcess(solver)
        f0 = np.asarray(f0, dtype=np.float64)
        if f0.shape != tuple(solver.state_shape):
            raise ValueError(f"f0 must have shape {tuple(solver.state_shape)}, got {f0.shape}")
        self.f = f0.copy()
        self.f_current = np.ones(self.nx, dtype=bool)  # cells whose f is the state (t = 0: all)
        self.Q = self.restrict(self.f)
        self.core = np.zeros(self.nx, dtype=bool)
        self.kinetic = np.zeros(self.nx, dtype=bool)
        self.t, self.steps, self.switches, self.redone, self.reach = 0.0, 0, 0, 0, 0
        self.fraction_sum = self.fraction_max = 0.0
        self.inflow = np.zeros(3)  # ∫ (F(0) - F(L)) dt through the domain ends
        self.total0 = self.totals()
        self.history: dict[str, list] = {"t": [], "kinetic": [], "fields": [], "labelled": []}
        self.micro_s = self.macro_s = 0.0

    # --------------------------------------------------------------------- mappers
    def restrict(self, f: np.ndarray) -> np.ndarray:
        """``Q`` ``(3+M, m)`` of the cells ``f`` ``(nv, m)``."""
        return self.side.restrict(f)

    def lift(self, Q: np.ndarray) -> np.ndarray:
        """``f`` ``(nv, m)`` of the cells ``Q`` ``(3+M, m)``: the decoder (exact moments),
        or with ``lift_ghosts: maxwellian`` the discrete Maxwellian of ``U``."""
        if self.settings.lift_ghosts == "maxwellian":
            return self.side.maxwellian(Q[:3])
        return self.side.lift(Q)

    # ------------------------------------------------------------------- observables
    def moments_all(self) -> np.ndarray:
        """``Q`` ``(3+M, nx)`` of every cell: closure cells' own, kinetic cells restricted."""
        Q = self.Q.copy()
        k = np.flatnonzero(self.kinetic)
        if k.size:
            Q[:, k] = self.restrict(self.f[:, k])
        return Q

    def conserved(self) -> np.ndarray:
        """``(ρ, ρu, E)`` ``(3, nx)`` of every cell (kinetic cells: the moments of ``f``)."""
        U = self.Q[:3].copy()
        k = np.flatnonzero(self.kinetic)
        if k.size:
            U[:, k] = self.side.conserved(self.f[:, k])
        return U

    def totals(self) -> np.ndarray:
        """``Σ_cells (ρ, ρu, E) dx`` ``(3,)``."""
        return self.conserved().sum(axis=1) * self.dx

    def primitives(self) -> np.ndarray:
        """``(ρ, u, T)`` ``(3, nx)`` of the current state."""
        return np.stack(self.side.primitive(self.conserved()))

    def conservation_error(self) -> np.ndarray:
        """``|Σ U dx (t) - Σ U dx (0) - inflow| / |Σ U dx (0)|`` per conserved row ``(3,)``
        (``|Σ ρu dx(0)|`` replaced by ``Σ ρ dx(0)`` times the sound speed scale 1 when it
        vanishes)."""
        scale = np.abs(self.total0)
        scale[1] = max(scale[1], scale[0])
        return np.abs(self.totals() - self.total0 - self.inflow) / scale

    # ---------------------------------------------------------------------- decision
    def _moments(self) -> tuple[np.ndarray, np.ndarray]:
        """``Q`` ``(3+M, nx)`` of every cell with the kinetic cells' ``U`` from ``f`` and their
        ``W`` not yet restricted (0), and the mask ``(nx,)`` of cells whose ``W`` is known."""
        Q = self.Q.copy()
        k = np.flatnonzero(self.kinetic)
        if k.size:
            Q[:3, k] = self.side.conserved(self.f[:, k])
            Q[3:, k] = 0.0
        return Q, ~self.kinetic

    def _restrict_where(self, Q: np.ndarray, known: np.ndarray, cells: np.ndarray) -> None:
        """Restrict the ``W`` of the kinetic ``cells`` (mask) not yet known, in place."""
        todo = np.flatnonzero(cells & self.kinetic & ~known)
        if todo.size:
            Q[:, todo] = self.restrict(self.f[:, todo])
            known[todo] = True

    def scores(self, Q: np.ndarray, known: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """The criteria's scores ``(nx,)`` of the state ``Q``.  ``deviation`` (four closure
        networks and the restriction of kinetic cells) is left at 0 on the cells that
        another criterion already sends to (or keeps in) the kinetic solver: the decision
        is the same."""
        s = self.settings
        known = np.ones(self.nx, dtype=bool) if known is None else known
        view = CellView(Q, self.f, self.kinetic, self.side)
        out = {n: get_criterion(n).score(view) for n in s.criteria if n != "deviation"}
        if "deviation" in s.criteria:
            decided = np.zeros(self.nx, dtype=bool)
            for name, score in out.items():
                if not get_criterion(name).exit_only:
                    theta = s.thresholds[name]
                    decided |= (score >= theta) | (self.core & (score >= s.hysteresis * theta))
            todo = np.flatnonzero(~decided)
            self._restrict_where(Q, known, ~decided)
            dev = np.zeros(self.nx)
            if todo.size:
                sub = CellView(Q[:, todo], self.f, self.kinetic, self.side, cells=todo)
                dev[todo] = get_criterion("deviation").score(sub)
            out["deviation"] = dev
        return {n: out[n] for n in s.criteria}

    def wave_reach(self, Q: np.ndarray) -> int:
        """Cells a wave can cross in one coupling step, ``ceil(max(|u| + k √(γT)) Δ/dx)``
        with the closure's wave-speed bound ``k`` (``speed_factor``): the buffer is at least
        this wide, so that a front flagged at ``t`` is still inside the kinetic region at
        ``t + Δ``."""
        _, u, T = self.side.primitive(Q)
        T = np.maximum(T, 0.0)
        speed = float(np.max(np.abs(u) + self.fv.closure.speed_factor * self.side.sound_speed(T)))
        return int(np.ceil(speed * self.dt / self.dx - 1e-9))

    def switch(self, kinetic: np.ndarray, Q: np.ndarray) -> None:
        """Make ``kinetic`` the kinetic cells: lift the new ones (by the decoder; at ``t = 0``
        the initial ``f`` is kept), restrict the leavers."""
        off = np.flatnonzero(~kinetic & self.kinetic)
        lift = np.flatnonzero(kinetic & ~self.kinetic & ~self.f_current)
        if lift.size:  # (the initial state's f is kept: it is the kinetic state)
            self.f[:, lift] = self.lift(Q[:, lift])
        if off.size:
            self.Q[:, off] = Q[:, off]
        self.kinetic = kinetic.copy()

    # -------------------------------------------------------------------------- step
    def step(self) -> None:
        """Advance the state by ``Δ`` (see the module)."""
        s = self.settings
        Q, known = self._moments()
        self.reach = self.wave_reach(Q)
        self.core, kinetic = decide(
            self.scores(Q, known),
            s.thresholds,
            self.core,
            self.kinetic,
            hysteresis=s.hysteresis,
            buffer=max(s.buffer, self.reach),
            periodic=self.periodic,
        )
        before = self.kinetic.copy()
        for _ in range(self.nx + 1):
            # W of the cells that leave and of the closure runs' kinetic ghost cells
            near = grow(~kinetic, 2, self.periodic) | ~kinetic
            self._restrict_where(Q, known, near)
            self.switch(kinetic, Q)
            try:
                self._advance(Q)
                break
            except ClosureBreakdown as exc:
                bad = exc.cells
                log.info("t=%g: closure cells %s broke down (%s): kinetic", self.t, bad, exc)
                self.core[bad] = True
                self.redone += 1
                kinetic = fill_gaps(self.kinetic | np.isin(np.arange(self.nx), bad), self.periodic)
        else:  # every cell kinetic and still failing cannot happen: a closure cell failed
            raise FloatingPointError(f"t={self.t:g}: the hybrid step could not be completed")
        # cells whose side changed over the step (a retried split is not a switch)
        self.switches += int(np.count_nonzero(self.kinetic != before))
        self.t += self.dt
        self.steps += 1
        frac = float(self.kinetic.mean())
        self.fraction_sum += frac
        self.fraction_max = max(self.fraction_max, frac)
        if s.record:
            self.history["t"].append(self.t)
            self.history["kinetic"].append(self.kinetic.copy())
            self.history["fields"].append(self.primitives())
            # the cells the kinetic solver ran for a reason (flagged, not buffer)
            core = np.flatnonzero(self.core & self.kinetic)
            self.history["labelled"].append((self.t, core, self.f[:, core].copy()))

    def _advance(self, Q: np.ndarray) -> None:
        """One step ``Δ`` of the current split from the moments ``Q`` of every cell at ``t``."""
        nx, periodic = self.nx, self.periodic
        Q_new, f_new = self.Q.copy(), self.f.copy()
        closure_phi: dict[int, np.ndarray] = {}  # face -> ∫F dt of the closure run there
        inflow = np.zeros(3)
        t0 = time.perf_counter()
        cl_runs = runs(~self.kinetic, periodic)
        work = []
        for run in cl_runs:
            sides = [
                None if g is None else (Q[None, :, g],) * 2 for g in ghost_cells(run, nx, periodic)
            ]
            work.append((Q[None, :, run], *sides))
        if work:
            done = self._closure_runs(cl_runs, work)
        for run, (q, phi) in zip(cl_runs, done if work else [], strict=True):
            Q_new[:, run] = q[0]
            closure_phi[int(run[0])] = phi[0, :, 0]
            closure_phi[int(run[-1] + 1) % nx if periodic else int(run[-1] + 1)] = phi[0, :, 1]
            inflow += self._boundary(run, phi[0])
        self.macro_s += time.perf_counter() - t0
        kin_runs = runs(self.kinetic, periodic)
        if kin_runs:
            result = self.kinetic_backend.advance(self._request(kin_runs, Q, Q_new))
            self.micro_s += result.micro_s
            at = 0
            for k, run in enumerate(kin_runs):
                f_new[:, run] = result.f[:, at : at + run.size]
                at += run.size
                phi = result.phi[k]
                inflow += self._boundary(run, phi)
                left, right = ghost_cells(run, nx, periodic)
                if left is not None:  # the closure cell left of the run: its right face
                    face = int(run[0])
                    Q_new[:3, (face - 1) % nx] -= (phi[:, 0] - closure_phi[face]) / self.dx
                if right is not None:  # the closure cell right of the run: its left face
                    face = int(run[-1] + 1) % nx if periodic else int(run[-1] + 1)
                    Q_new[:3, face % nx] += (phi[:, 1] - closure_phi[face]) / self.dx
            rho, _, T = self.side.primitive(Q_new[:, ~self.kinetic])
            if not (np.all(rho > 0) and np.all(T > 0)):
                cells = np.flatnonzero(~self.kinetic)
                raise ClosureBreakdown(
                    "the interface flux left density or temperature <= 0",
                    cells[(rho <= 0) | (T <= 0)],
                )
        self.Q[:, ~self.kinetic] = Q_new[:, ~self.kinetic]
        self.f[:, self.kinetic] = f_new[:, self.kinetic]
        self.f_current = self.kinetic.copy()
        self.inflow += inflow

    def _closure_runs(self, cl_runs: list, work: list) -> list:
        """All closure runs in one call; on a breakdown, the run(s) that broke down are
        found one by one and raised as :class:`ClosureBreakdown`."""
        try:
            done = self.fv.advance_runs(work, self.dt, cells=[self._padded(r) for r in cl_runs])
            if all(self._realisable(q[0]) for q, _ in done):
                return done
        except (FloatingPointError, ValueError):
            pass
        bad = []
        for run, item in zip(cl_runs, work, strict=True):
            try:
                q, _ = self.fv.advance_runs([item], self.dt, cells=[self._padded(run)])[0]
                ok = self._realisable(q[0])
            except (FloatingPointError, ValueError):
                ok = False
            if not ok:
                bad.append(run)
        cells = np.concatenate(bad) if bad else np.flatnonzero(~self.kinetic)
        raise ClosureBreakdown("a closure run broke down (non-finite, rho or T <= 0)", cells)

    def _padded(self, run: np.ndarray) -> np.ndarray:
        """The ``m + 4`` cells of ``run``'s padded block: its ghost cells, or at an outflow
        end the end cell twice (as the zero-gradient ghosts are)."""
        left, right = ghost_cells(run, self.nx, self.periodic)
        if left is None:
            left = (run[0] - np.array([2, 1])) % self.nx if self.periodic else run[[0, 0]]
        if right is None:
            right = (run[-1] + np.array([1, 2])) % self.nx if self.periodic else run[[-1, -1]]
        return np.concatenate([left, run, right])

    def _realisable(self, Q: np.ndarray) -> bool:
        rho, _, T = self.side.primitive(Q)
        return bool(np.all(np.isfinite(Q)) and np.all(rho > 0) and np.all(T > 0))

    def _boundary(self, run: np.ndarray, phi: np.ndarray) -> np.ndarray:
        """Net inflow ``(3,)`` through the domain ends that ``run`` touches (outflow box)."""
        if self.periodic:
            return np.zeros(3)
        return (phi[:, 0] if run[0] == 0 else 0.0) - (phi[:, 1] if run[-1] == self.nx - 1 else 0.0)

    def _request(self, kin_runs: list, Q: np.ndarray, Q_new: np.ndarray) -> KineticRequest:
        nv, n = self.solver.nv, len(kin_runs)
        ghosts = np.zeros((n, 2, 2, nv, 2))
        ends = np.zeros((n, 2), dtype=np.int64)
        where, cells = [], []
        for k, run in enumerate(kin_runs):
            for side, g in enumerate(ghost_cells(run, self.nx, self.periodic)):
                if g is None:
                    ends[k, side] = 1
                else:
                    where.append((k, side))
                    cells.append(g)
        if cells:  # every ghost cell at t and at t + Δ: one decoder call
            idx = np.concatenate(cells)
            f = self.lift(np.concatenate([Q[:, idx], Q_new[:, idx]], axis=1))
            f0, f1 = f[:, : idx.size], f[:, idx.size :]
            for j, (k, side) in enumerate(where):
                ghosts[k, side, 0] = f0[:, 2 * j : 2 * j + 2]
                ghosts[k, side, 1] = f1[:, 2 * j : 2 * j + 2]
        order = np.concatenate(kin_runs)
        return KineticRequest(
            step=self.steps,
            t0=self.t,
            duration=self.dt,
            start=np.array([r[0] for r in kin_runs], dtype=np.int64),
            size=np.array([r.size for r in kin_runs], dtype=np.int64),
            ends=ends,
            f=np.ascontiguousarray(self.f[:, order]),
            ghosts=ghosts,
        )

    # ------------------------------------------------------------------------ results
    def run(self, t_end: float, progress: bool = False) -> None:
        """Steps ``Δ`` until ``t_end`` (a multiple of ``Δ``)."""
        from ..progress import progress_bar

        n = round((t_end - self.t) / self.dt)
        if n < 0 or abs((t_end - self.t) / self.dt - n) > 1e-9 * max(n, 1):
            raise ValueError(f"t_end={t_end!r} must be t + k*dt_coarse (dt_coarse={self.dt!r})")
        for _ in progress_bar(range(n), enabled=progress, desc="hybrid"):
            self.step()

    def labelled_cells(self) -> dict[str, np.ndarray]:
        """The kinetic core cells of every step (flagged by a criterion, not buffer): the
        exploration data of the next round of concurrent learning (``ledmus learn``,
        config field ``learn.hybrid_data``; for the Boltzmann closure ``data.hybrid_data`` of
        ``ledmus train``): ``f`` ``(nv, N)``, their times, positions and cell indices
        ``(N,)``, and the grid and ε to rebuild the solver (:mod:`.hybrid_systems`)."""
        items = self.history["labelled"]
        nv = self.solver.nv
        f = np.concatenate([c for _, _, c in items], axis=1) if items else np.empty((nv, 0))
        return {
            "f": f,
            "t": np.concatenate([np.full(i.size, t) for t, i, _ in items])
            if items
            else np.empty(0),
            "x": np.concatenate([self.solver.x[i] for _, i, _ in items]) if items else np.empty(0),
            "cell": np.concatenate([i for _, i, _ in items]) if items else np.empty(0, dtype=int),
            **self.side.labels(),
        }

    def metrics(self) -> dict[str, Any]:
        """Kinetic fraction per step (mean, max), switches, redone steps, conservation."""
        frac = [float(k.mean()) for k in self.history["kinetic"]]
        return {
            "steps": self.steps,
            "kinetic_fraction_mean": self.fraction_sum / max(self.steps, 1),
            "kinetic_fraction_max": self.fraction_max,
            "kinetic_fraction": frac,
            "switches": self.switches,
            "redone_steps": self.redone,
            "wave_reach_cells": self.reach,
            "conservation_error": self.conservation_error().tolist(),
            "micro_s": self.micro_s,
            "macro_s": self.macro_s,
        }


def plot_kinetic_region(run: HybridRun, path: Any) -> None:
    """Space-time plot of ``ρ`` with the kinetic cells outlined (PNG at ``path``)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = np.asarray(run.history["t"])
    rho = np.asarray(run.history["fields"])[:, 0]
    kin = np.asarray(run.history["kinetic"], dtype=float)
    x = run.solver.x
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    im = ax.pcolormesh(x, t, rho, shading="nearest", cmap="viridis")
    if kin.any() and not kin.all():
        ax.contour(x, t, kin, levels=[0.5], colors="white", linewidths=1.0)
    eps = f"ε = {run.eps:g}" if np.ndim(run.eps) == 0 else "ε(x)"
    ax.set(xlabel="x", ylabel="t", title=f"ρ and the kinetic region (white), {eps}")
    fig.colorbar(im, ax=ax, label="ρ")
    fig.tight_layout()
    fig.savefig(path, dpi=110, format="png")
    plt.close(fig)


__all__ = ["ClosureBreakdown", "HybridRun", "plot_kinetic_region"]
