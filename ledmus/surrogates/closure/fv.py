"""Conservative second-order finite-volume solver for 1-D moment systems (W. E's lecture §5).

Solves, on ``x ∈ [0, L)`` with ``nx`` cells of width ``dx = L/nx`` (centres
``x_i = (i + ½) dx``), the moment system of the 1V kinetic model ::

    ∂t U + ∂x [F0(U) + F̃(U, W; ε)] = 0,           U = (ρ, ρu, E),  E = ρu²/2 + p/(γ-1)
    ∂t W + ∂x  G(U, W; ε)           = R(U, W; ε),   W ∈ R^M (extra moments)

with ``F0(U) = (ρu, ρu² + p, (E + p)u)`` the exact Maxwellian (Euler) flux, ``p = ρT``,
``γ = 3`` for the 1V model (``E = ρu²/2 + ρT/2``, sound speed ``c = √(γT)``).  Units are
those of the kinetic model (``T`` is a squared velocity).  The state is one array
``Q = [U; W]`` of shape ``(B, 3 + M, nx)``, float64, ``B`` an ensemble axis.

Scheme: MUSCL reconstruction (primitive ``(ρ, u, p, W)`` or characteristic variables of
the Euler block; limiters ``minmod``, ``vanleer``, ``mc``, ``none`` = unlimited central,
``first`` = first order; a cell falls back to first order where a face value would have
``ρ ≤ 0`` or ``p ≤ 0``), HLL (Davis wave speeds) or Rusanov face fluxes, an optional
centred parabolic face flux, SSP-RK2 or SSP-RK3 time stepping with the source in the
right-hand side (or the IMEX ARS(2,2,2) step for a closure with a stiff relaxation
``implicit(R, a)``: :meth:`FVSolver.step`), periodic or outflow (zero-gradient)
boundaries, and the step ::

    dt ≤ cfl / max_i ( a_i/dx + 2 χ_i/dx² + r_i )

with ``a`` the largest ``|wave speed|``, ``χ`` the diffusivity (x²/t) and ``r`` the source
stiffness (1/t) of the closure.  Cell averages change only through face-flux
differences, so ``Σ_i U_i dx`` is conserved to rounding on a periodic box.

**Closure interface** (subclass :class:`MomentClosure`; every method takes and returns
float64 numpy arrays, ``Q`` of shape ``(B, n_moments, m)`` where ``m`` is any number of
points — cells, or left and right face states concatenated — so a learned closure
evaluates one batch of ``B·m`` points per call, e.g. ``net(torch.from_numpy(Q)
.permute(0, 2, 1).reshape(-1, n))`` and back):

- ``n_moments``: int, ``3 + M``; ``gamma``: float (3 for the 1V model).
- ``closure_flux(Q) -> (B, n_moments, m) | None``: rows 0–2 ``F̃`` (the correction to the
  Euler flux; in 1V only row 2, the heat flux ``q``, is physical), rows 3.. the full
  ``W`` flux ``G``.  ``None`` means zero.  Evaluated at reconstructed face states.
- ``wave_speeds(Q) -> (s_min, s_max)`` each ``(B, m)``: bounds of the characteristic
  speeds, default ``u ∓ c``; a closure whose W system is faster must widen them.
- ``diffusive_flux(Q_left, Q_right, dx) -> (B, n_moments, nf) | None``: parabolic face
  flux from the two cells adjacent to each face (gradient ``(Q_right - Q_left)/dx``),
  added to the hyperbolic flux.  ``diffusivity(Q) -> (B, m) | None``: its largest
  eigenvalue (x²/t) for the step choice.
- ``source(Q, ddx=None) -> (B, M, m) | None``: ``R`` for the W rows (U has none, by
  conservation), including its ``1/ε``.  A source with x-derivatives takes them with
  ``ddx`` (a ``(B, m) -> (B, m)`` centred difference) when given — a decomposed solver
  passes ``Q`` with one ghost cell at each end and drops the source there
  (:meth:`FVSolver.rhs_padded`) — else over ``Q`` as the whole box, cells in order.
  ``stiffness(Q) -> (B, m) | None``: spectral radius of ``∂R/∂W`` (1/t); the source is
  explicit, so it limits ``dt`` (``dt·r ≤ cfl``).
- ``check(Q)``: extra validation of W (raise ``ValueError`` naming the field).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ...windows import ARS_D, ARS_G, check_ghosts
from .muscl import slopes

LIMITERS = ("minmod", "vanleer", "mc", "none", "first")
RECONSTRUCTIONS = ("primitive", "characteristic")
RIEMANN = ("hll", "rusanov")
STEPPERS = ("ssprk2", "ssprk3", "ars222")
BCS = ("periodic", "outflow")


def primitive(Q: np.ndarray, gamma: float = 3.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(ρ, u, T)`` from ``Q[:, :3] = (ρ, ρu, E)``; ``T = p/ρ``, ``p = (γ-1)(E - ρu²/2)``."""
    rho = Q[:, 0]
    u = Q[:, 1] / rho
    return rho, u, (gamma - 1.0) * (Q[:, 2] / rho - 0.5 * u * u)


def conserved(rho, u, T, W=None, gamma: float = 3.0) -> np.ndarray:
    """``Q = (ρ, ρu, E, W...)`` from primitives; ``rho, u, T``: ``(B, m)``, ``W``: ``(B, M, m)``."""
    rho, u, T = np.broadcast_arrays(*(np.asarray(a, dtype=np.float64) for a in (rho, u, T)))
    U = np.stack([rho, rho * u, 0.5 * rho * u * u + rho * T / (gamma - 1.0)], axis=1)
    return U if W is None else np.concatenate([U, np.asarray(W, dtype=np.float64)], axis=1)


def euler_flux(Q: np.ndarray, gamma: float = 3.0) -> np.ndarray:
    """Maxwellian flux ``F0 = (ρu, ρu² + p, (E + p)u)``, shape ``(B, 3, m)``."""
    rho, u, T = primitive(Q, gamma)
    p = rho * T
    return np.stack([Q[:, 1], Q[:, 1] * u + p, (Q[:, 2] + p) * u], axis=1)


class MomentClosure:
    """The closure interface (see the module docstring); the base class is the Euler
    system (``q = 0``, no W, no diffusion, no source)."""

    n_moments: int = 3
    gamma: float = 3.0

    def closure_flux(self, Q: np.ndarray) -> np.ndarray | None:
        return None

    def flux(self, Q: np.ndarray) -> np.ndarray:
        """Hyperbolic flux ``[F0(U) + F̃; G]``, shape ``(B, n_moments, m)``."""
        F = np.zeros_like(Q)
        F[:, :3] = euler_flux(Q, self.gamma)
        extra = self.closure_flux(Q)
        return F if extra is None else F + extra

    def wave_speeds(self, Q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        rho, u, T = primitive(Q, self.gamma)
        c = np.sqrt(self.gamma * np.maximum(T, 0.0))
        return u - c, u + c

    def diffusive_flux(self, Q_left: np.ndarray, Q_right: np.ndarray, dx: float):
        return None

    def diffusivity(self, Q: np.ndarray) -> np.ndarray | None:
        return None

    def source(self, Q: np.ndarray, ddx=None) -> np.ndarray | None:
        return None

    def stiffness(self, Q: np.ndarray) -> np.ndarray | None:
        return None

    def check(self, Q: np.ndarray) -> None:
        return None


def check_state(Q, closure: MomentClosure, nx: int | None = None) -> np.ndarray:
    """Validate ``Q`` (shape ``(B, n_moments, nx)``, finite, ``ρ > 0``, ``T > 0``); a float64 copy."""
    Q = np.array(Q, dtype=np.float64)
    n = closure.n_moments
    if Q.ndim != 3 or Q.shape[1] != n or (nx is not None and Q.shape[2] != nx):
        raise ValueError(f"U must have shape (B, {n}, {nx or 'nx'}), got {Q.shape}")
    if not np.all(np.isfinite(Q)):
        raise ValueError("U must be finite (found NaN or inf)")
    rho, _, T = primitive(Q, closure.gamma)
    if np.any(rho <= 0):
        raise ValueError(f"density U[:, 0] must be > 0, min is {rho.min():.3g}")
    if np.any(T <= 0):
        raise ValueError(f"temperature T = (γ-1)(E/ρ - u²/2) must be > 0, min is {T.min():.3g}")
    closure.check(Q)
    return Q


class FVSolver:
    """Batched finite-volume solver for a moment system given by ``closure``.

    Parameters (keyword-only after ``closure``): ``nx`` cells on ``[0, length)``; ``bc``
    ``"periodic"`` or ``"outflow"``; ``cfl`` in ``(0, 1]``; ``limiter`` one of
    :data:`LIMITERS`; ``reconstruction`` ``"primitive"`` or ``"characteristic"``;
    ``riemann`` ``"hll"`` or ``"rusanov"``; ``time_stepper`` ``"ssprk2"``, ``"ssprk3"`` or
    ``"ars222"`` (IMEX, for a closure with a stiff relaxation: :meth:`step`).
    """

    def __init__(
        self,
        closure: MomentClosure,
        *,
        nx: int,
        length: float = 1.0,
        bc: str = "periodic",
        cfl: float = 0.4,
        limiter: str = "vanleer",
        reconstruction: str = "primitive",
        riemann: str = "hll",
        time_stepper: str = "ssprk3",
    ) -> None:
        for name, value, allowed in (
            ("bc", bc, BCS),
            ("limiter", limiter, LIMITERS),
            ("reconstruction", reconstruction, RECONSTRUCTIONS),
            ("riemann", riemann, RIEMANN),
            ("time_stepper", time_stepper, STEPPERS),
        ):
            if value not in allowed:
                raise ValueError(f"unknown {name} {value!r}; allowed: {', '.join(allowed)}")
        if isinstance(nx, bool) or int(nx) != nx or nx < 4:
            raise ValueError(f"nx must be an integer >= 4, got {nx!r}")
        if not (math.isfinite(length) and length > 0):
            raise ValueError(f"length must be finite and > 0, got {length!r}")
        if not (math.isfinite(cfl) and 0 < cfl <= 1):
            raise ValueError(f"cfl must be in (0, 1], got {cfl!r}")
        if time_stepper == "ars222" and not callable(getattr(closure, "implicit", None)):
            raise ValueError(
                "time_stepper 'ars222' needs a closure with an implicit(Q, a) method (a stiff "
                f"relaxation); {closure!r} has none: use ssprk2 or ssprk3"
            )
        if int(closure.n_moments) < 3:
            raise ValueError(f"closure.n_moments must be >= 3, got {closure.n_moments!r}")
        self.closure, self.nx, self.length = closure, int(nx), float(length)
        self.bc, self.cfl = bc, float(cfl)
        self.limiter, self.reconstruction, self.riemann = limiter, reconstruction, riemann
        self.time_stepper = time_stepper
        self.dx = self.length / self.nx
        self.x = (np.arange(self.nx) + 0.5) * self.dx
        self._cells: np.ndarray | None = None  # advance_runs' padded cell indices

    # ----------------------------------------------------------------- spatial operator
    def _pad(self, Q: np.ndarray) -> np.ndarray:
        mode = "wrap" if self.bc == "periodic" else "edge"
        return np.pad(Q, ((0, 0), (0, 0), (2, 2)), mode=mode)

    def rhs(self, Q: np.ndarray) -> np.ndarray:
        """Semi-discrete right-hand side ``dQ/dt``, shape ``(B, n_moments, nx)``."""
        out = self.flux_divergence(self._pad(Q))
        src = self.closure.source(Q)
        if src is not None:
            out[:, 3:] += src
        return out

    def rhs_padded(self, P: np.ndarray) -> np.ndarray:
        """``dQ/dt`` of the ``m`` cells inside ``P`` ``(B, n_moments, m + 4)``, whose two
        ghost cells at each end the caller has filled (a neighbour's cells, periodic
        copies or zero-gradient); the source gets ``ddx`` = centred differences over
        ``P[..., 1:-1]`` (one-sided at its ends, whose source is dropped)."""
        return self._rhs_faces(P)[0]

    def _rhs_faces(self, P: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`rhs_padded` and the ``m + 1`` face fluxes ``(B, n_moments, m + 1)``."""
        flux, dx = self.face_fluxes(P), self.dx
        out = -(flux[:, :, 1:] - flux[:, :, :-1]) / dx

        def ddx(a: np.ndarray) -> np.ndarray:
            d = np.empty_like(a)
            d[:, 1:-1] = (a[:, 2:] - a[:, :-2]) / (2.0 * dx)
            d[:, 0], d[:, -1] = (a[:, 1] - a[:, 0]) / dx, (a[:, -1] - a[:, -2]) / dx
            return d

        self._bind(lambda b: b[1:-1])
        src = self.closure.source(P[:, :, 1:-1], ddx=ddx)
        if src is not None:
            out[:, 3:] += src[:, :, 1:-1]
        return out, flux

    def _bind(self, select: Any) -> None:
        """Tell a closure with per-cell parameters (one with ``bind``) which cell each
        point of its next calls is: ``select(cells)`` of the padded layout's cell indices
        that :meth:`advance_runs` was given; nothing without them."""
        if self._cells is not None and callable(getattr(self.closure, "bind", None)):
            self.closure.bind(select(self._cells))

    def flux_divergence(self, P: np.ndarray) -> np.ndarray:
        """``-(F_{i+½} - F_{i-½})/dx`` (hyperbolic + parabolic face fluxes) of the ``m``
        cells inside the ghosted ``P`` ``(B, n_moments, m + 4)``; shape ``(B, n_moments, m)``."""
        flux = self.face_fluxes(P)
        return -(flux[:, :, 1:] - flux[:, :, :-1]) / self.dx

    def face_fluxes(self, P: np.ndarray) -> np.ndarray:
        """The face fluxes ``F_{i-½}`` (hyperbolic + parabolic) of the ``m + 1`` faces of
        the ``m`` cells inside the ghosted ``P`` ``(B, n_moments, m + 4)``."""
        cl, g = self.closure, self.closure.gamma
        V = P.copy()  # primitive (ρ, u, p, W)
        rho, u, T = primitive(P, g)
        V[:, 1], V[:, 2] = u, rho * T
        s = slopes(V, self.limiter, self.reconstruction, cl.gamma)
        Vc = V[:, :, 1:-1]
        bad = np.any((Vc[:, (0, 2)] - 0.5 * np.abs(s[:, (0, 2)])) <= 0, axis=1)
        s = np.where(bad[:, None, :], 0.0, s)
        VL, VR = (Vc + 0.5 * s)[:, :, :-1], (Vc - 0.5 * s)[:, :, 1:]  # the nx+1 faces
        faces = np.concatenate([VL, VR], axis=-1)
        QF = conserved(faces[:, 0], faces[:, 1], faces[:, 2] / faces[:, 0], faces[:, 3:], g)
        self._bind(lambda b: np.concatenate([b[1:-2], b[2:-1]]))  # left, then right states
        F = cl.flux(QF)
        smin, smax = cl.wave_speeds(QF)
        nf = P.shape[-1] - 3
        FL, FR, QL, QR = F[..., :nf], F[..., nf:], QF[..., :nf], QF[..., nf:]
        if self.riemann == "hll":
            sl = np.minimum(np.minimum(smin[:, :nf], smin[:, nf:]), 0.0)[:, None]
            sr = np.maximum(np.maximum(smax[:, :nf], smax[:, nf:]), 0.0)[:, None]
            flux = (sr * FL - sl * FR + sl * sr * (QR - QL)) / (sr - sl)
        else:
            a = np.maximum(np.maximum(-smin, smax)[:, :nf], np.maximum(-smin, smax)[:, nf:])
            flux = 0.5 * (FL + FR) - 0.5 * a[:, None] * (QR - QL)
        dflux = cl.diffusive_flux(P[:, :, 1:-2], P[:, :, 2:-1], self.dx)
        if dflux is not None:
            flux = flux + dflux
        return flux

    # ------------------------------------------------------------------- time stepping
    def dt_max(self, Q: np.ndarray) -> float:
        """Largest stable step at state ``Q``: ``cfl / max(a/dx + 2χ/dx² + r)``."""
        cl = self.closure
        smin, smax = cl.wave_speeds(Q)
        rate = np.maximum(np.abs(smin), np.abs(smax)) / self.dx
        chi, r = cl.diffusivity(Q), cl.stiffness(Q)
        if chi is not None:
            rate = rate + 2.0 * chi / self.dx**2
        if r is not None:
            rate = rate + r
        return self.cfl / float(np.max(rate))

    def step(self, Q: np.ndarray, dt: float) -> np.ndarray:
        """One SSP Runge–Kutta step of size ``dt`` (no stability check); ``ars222``: the
        IMEX Runge–Kutta ARS(2,2,2) (Ascher, Ruuth & Spiteri 1997) with the closure's
        ``implicit(R, a)`` (solve ``F = R + a S(F)`` for its stiff source ``S``) as the
        implicit part, ``g = 1 - 1/√2``, ``d = 1 - 1/(2g)``::

            e1 = rhs(Q);  F2 = implicit(Q + g dt e1, g dt);  i2 = (F2 - Q - g dt e1)/(g dt)
            Q' = implicit(Q + dt (d e1 + (1 - d) rhs(F2)) + (1 - g) dt i2, g dt)
        """
        if self.time_stepper == "ars222":
            implicit = self.closure.implicit
            e1 = self.rhs(Q)
            R2 = Q + ARS_G * dt * e1
            F2 = implicit(R2, ARS_G * dt)
            R3 = (
                Q
                + dt * (ARS_D * e1 + (1.0 - ARS_D) * self.rhs(F2))
                + (1.0 - ARS_G) / ARS_G * (F2 - R2)
            )
            return implicit(R3, ARS_G * dt)
        Q1 = Q + dt * self.rhs(Q)
        if self.time_stepper == "ssprk2":
            return 0.5 * (Q + Q1 + dt * self.rhs(Q1))
        Q2 = 0.75 * Q + 0.25 * (Q1 + dt * self.rhs(Q1))
        return Q / 3.0 + 2.0 / 3.0 * (Q2 + dt * self.rhs(Q2))

    def _check_running(self, Q: np.ndarray, t: float) -> None:
        rho, _, T = primitive(Q, self.closure.gamma)
        if not (np.all(np.isfinite(Q)) and np.all(rho > 0) and np.all(T > 0)):
            raise FloatingPointError(
                f"state became unphysical at t={t:g} (non-finite, density or temperature <= 0)"
            )

    def advance(self, U: np.ndarray, duration: float, *, dt: float | None = None) -> np.ndarray:
        """State after ``duration``; ``U``: ``(B, n_moments, nx)``.

        ``dt=None``: adaptive, each step ``(remaining)/ceil(remaining/dt_max)``.  A given
        ``dt`` must divide ``duration`` and satisfy ``dt <= dt_max`` at every step, else
        ``ValueError`` naming ``dt`` (or ``duration``).
        """
        return self._march(check_state(U, self.closure, self.nx), duration, dt)

    def _march(self, Q: np.ndarray, duration: float, dt: float | None) -> np.ndarray:
        """The step loop of :meth:`advance` on a checked ``Q`` through the hooks
        :meth:`step`, :meth:`dt_max` and ``_check_running`` (a distributed solver's)."""
        if not (math.isfinite(duration) and duration >= 0):
            raise ValueError(f"duration must be finite and >= 0, got {duration!r}")
        if dt is not None:
            if not (math.isfinite(dt) and dt > 0):
                raise ValueError(f"dt must be finite and > 0, got {dt!r}")
            n = round(duration / dt)
            if abs(duration / dt - n) > 1e-9 * max(1.0, n):
                raise ValueError(f"duration={duration!r} is not a multiple of dt={dt!r}")
            for k in range(n):
                bound = self.dt_max(Q)
                if dt > bound * (1 + 1e-12):
                    raise ValueError(
                        f"dt={dt:g} exceeds the stability bound dt_max={bound:g} "
                        f"(cfl={self.cfl}) at step {k}"
                    )
                Q = self.step(Q, dt)
                self._check_running(Q, (k + 1) * dt)
            return Q
        t = 0.0
        while duration - t > 1e-14 * max(duration, 1.0):
            remaining = duration - t
            h = remaining / math.ceil(remaining / self.dt_max(Q) * (1 - 1e-12))
            Q = self.step(Q, h)
            t += h
            self._check_running(Q, t)
        return Q

    def advance_cells(
        self,
        Q: np.ndarray,
        duration: float,
        *,
        left: tuple[np.ndarray, np.ndarray] | None = None,
        right: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Advance the ``m`` contiguous cells ``Q`` ``(B, n_moments, m)`` of a larger
        domain over ``duration`` with their neighbours as ghost cells: ``left`` and
        ``right`` are ``(g0, g1)``, the two cells ``(B, n_moments, 2)`` beyond each end at
        the start and the end of ``duration``, linear in time between (each Runge–Kutta
        stage takes them at its own time); ``None``: a domain end, filled by ``bc``
        (``periodic`` needs both ``None`` and the whole box).  Steps are adaptive as in
        :meth:`advance` (``dt_max`` over the cells and ghosts).  The cell-local hybrid runs
        its closure cells this way (:meth:`advance_runs`: several runs at once).

        Returns ``(Q_new, phi)``: ``phi`` ``(B, 3, 2)`` the conserved rows of ``∫ F dt``
        through the left and right end faces with the stage weights of the scheme (SSP-RK2
        ½, ½; SSP-RK3 1/6, 1/6, 2/3; ARS(2,2,2) ``d``, ``1 - d``, its implicit part acting on
        the ``W`` rows alone), so ``Σ_cells U dx`` changed by ``phi[..., 0] -
        phi[..., 1]`` to rounding.
        """
        return self.advance_runs([(Q, left, right)], duration)[0]

    def advance_runs(
        self, runs: list, duration: float, *, cells: list | None = None
    ) -> list[tuple[np.ndarray, np.ndarray]]:
        """:meth:`advance_cells` of several runs ``(Q, left, right)`` at once, with one step
        size (the smallest ``dt_max``) and one closure evaluation per stage for all of them:
        the runs and their ghost cells lie side by side in one padded array, and the faces
        between one run's ghosts and the next run's are computed but not used.  ``cells``:
        per run the ``m + 4`` cell indices of its padded block (two ghosts each side), for a
        closure with per-cell parameters (a ``bind`` method: the Boltzmann closure's ε(x));
        ignored by the others."""
        if not (math.isfinite(duration) and duration >= 0):
            raise ValueError(f"duration must be finite and >= 0, got {duration!r}")
        if cells is not None:
            if len(cells) != len(runs) or any(
                np.shape(c) != (np.shape(q)[-1] + 4,)
                for c, (q, _, _) in zip(cells, runs, strict=False)
            ):
                raise ValueError("cells must give m + 4 cell indices (the padded block) per run")
            self._cells = np.concatenate([np.asarray(c, dtype=int) for c in cells])
        try:
            return self._advance_runs(runs, duration)
        finally:
            self._cells = None
            if callable(getattr(self.closure, "bind", None)):
                self.closure.bind(None)

    def _advance_runs(self, runs: list, duration: float) -> list[tuple[np.ndarray, np.ndarray]]:
        mode = "wrap" if self.bc == "periodic" else "edge"
        states, ghosts, cells, ends = [], [], [], []
        at = 0
        for Q, left, right in runs:
            Q = check_state(Q, self.closure)
            check_ghosts(Q.shape[:2], left, right, self.bc)
            m = Q.shape[-1]
            states.append(Q)
            ghosts.append((left, right))
            cells.append(np.arange(at + 2, at + 2 + m))
            ends.append((at, at + m))  # face indices of the run's two end faces
            at += m + 4
        n_inner = at - 4
        real = np.concatenate(cells) - 2  # the runs' cells among the inner cells
        bounds = np.cumsum([0] + [q.shape[-1] for q in states])
        face_idx = np.array(ends).reshape(-1)

        def padded(Q: np.ndarray, theta: float) -> np.ndarray:
            blocks = []
            for k, (left, right) in enumerate(ghosts):
                P = np.pad(Q[..., bounds[k] : bounds[k + 1]], ((0, 0), (0, 0), (2, 2)), mode=mode)
                if left is not None:
                    P[..., :2] = (1 - theta) * left[0] + theta * left[1]
                if right is not None:
                    P[..., -2:] = (1 - theta) * right[0] + theta * right[1]
                blocks.append(P)
            return blocks[0] if len(blocks) == 1 else np.concatenate(blocks, axis=-1)

        def rate(Q: np.ndarray, theta: float) -> tuple[np.ndarray, np.ndarray]:
            out, flux = self._rhs_faces(padded(Q, theta))
            if n_inner != real.size:
                out = out[..., real]
            return out, flux[:, :3][..., face_idx]

        Q = np.concatenate(states, axis=-1)
        phi, t = np.zeros((Q.shape[0], 3, face_idx.size)), 0.0
        while duration - t > 1e-14 * max(duration, 1.0):
            remaining = duration - t
            self._bind(lambda b: b)
            bound = self.dt_max(padded(Q, t / duration))
            h = remaining / math.ceil(remaining / bound * (1 - 1e-12))
            th0, th1 = t / duration, (t + h) / duration
            r0, e0 = rate(Q, th0)
            if self.time_stepper == "ars222":  # the IMEX step of :meth:`step`

                def implicit(R: np.ndarray, a: float) -> np.ndarray:
                    self._bind(lambda b: b[real + 2])
                    return self.closure.implicit(R, a)

                R2 = Q + ARS_G * h * r0
                F2 = implicit(R2, ARS_G * h)
                r1, e1 = rate(F2, (t + ARS_G * h) / duration)
                R3 = Q + h * (ARS_D * r0 + (1.0 - ARS_D) * r1) + (1.0 - ARS_G) / ARS_G * (F2 - R2)
                Q = implicit(R3, ARS_G * h)
                phi += h * (ARS_D * e0 + (1.0 - ARS_D) * e1)
                t += h
                self._check_running(Q, t)
                continue
            Q1 = Q + h * r0
            r1, e1 = rate(Q1, th1)
            if self.time_stepper == "ssprk2":
                Q = 0.5 * (Q + Q1 + h * r1)
                phi += h * (0.5 * e0 + 0.5 * e1)
            else:
                Q2 = 0.75 * Q + 0.25 * (Q1 + h * r1)
                r2, e2 = rate(Q2, 0.5 * (th0 + th1))
                Q = Q / 3.0 + 2.0 / 3.0 * (Q2 + h * r2)
                phi += h * (e0 / 6.0 + e1 / 6.0 + 2.0 / 3.0 * e2)
            t += h
            self._check_running(Q, t)
        return [
            (Q[..., bounds[k] : bounds[k + 1]], phi[..., 2 * k : 2 * k + 2])
            for k in range(len(states))
        ]

    def rollout(
        self, U0: np.ndarray, t_end: float, dt_coarse: float, *, dt: float | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """``(t, states)``: ``t`` shaped ``(T,)`` = ``0, dt_coarse, …, t_end`` and states
        ``(B, T, n_moments, nx)`` (``T = t_end/dt_coarse + 1``, initial state included)."""
        if not (math.isfinite(dt_coarse) and dt_coarse > 0):
            raise ValueError(f"dt_coarse must be finite and > 0, got {dt_coarse!r}")
        n = round(t_end / dt_coarse)
        if not math.isfinite(t_end) or t_end < 0 or abs(t_end / dt_coarse - n) > 1e-9 * max(1, n):
            raise ValueError(f"t_end={t_end!r} must be a multiple >= 0 of dt_coarse={dt_coarse!r}")
        Q = check_state(U0, self.closure, self.nx)
        out = np.empty((Q.shape[0], n + 1, *Q.shape[1:]))
        out[:, 0] = Q
        for j in range(n):
            Q = self.advance(Q, dt_coarse, dt=dt)
            out[:, j + 1] = Q
        return dt_coarse * np.arange(n + 1), out
