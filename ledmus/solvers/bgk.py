"""1-D BGK kinetic gas on a discrete velocity grid (the kinetic model of W. E's
concurrent-learning lecture, §5).

Equation, ``x`` in ``[0, L)`` and ``v`` in ``[-v_max, v_max]``::

    f_t + v f_x = (M[f] - f) / tau,     tau = kn      (tau = eps, as Han et al.)

with the Knudsen number ``kn`` (dimensionless, constant in space and time).  Moments
``rho = sum f dv``, ``rho u = sum v f dv``, ``E = sum v^2/2 f dv``; in 1V
``E = rho u^2/2 + rho T/2`` (``gamma = 3``, ``p = rho T``), and the Euler limit
``kn -> 0`` is the ``gamma = 3`` Euler system.  ``M[f]`` is the *discrete* entropic
Maxwellian (:mod:`ledmus.solvers.bgk_maxwellian`) whose grid moments equal those of
``f`` to rounding, so collisions conserve mass, momentum and energy exactly.

Grids: ``nx`` cells of width ``dx = L/nx`` centred at ``x_i = (i + 1/2) dx``; ``nv``
velocities centred in ``nv`` equal cells of ``[-v_max, v_max]``, ``v_j = -v_max +
(j + 1/2) dv``, ``dv = 2 v_max/nv`` (symmetric, so ``x -> L - x, v -> -v`` maps the
grid onto itself).  Defaults ``v_max = 10``, ``nv = 64``: runs from the named initial
conditions keep ``|u| <= 1`` and ``T`` in about ``[0.35, 2.7]`` (Sod: ``T`` in ``[0.42,
1.6]``; colliding streams: ``T* = 2.67`` at ``u = 0``), so the Maxwellian tails are cut
at 6 thermal speeds or more (``e^{-18}``), and ``dv = 0.3125 <= 0.6 sqrt(T)`` resolves
every Maxwellian (midpoint-rule error ``exp(-2 pi^2 T/dv^2) < 1e-25``).  The CFL bound
is set by ``max|v_j| = v_max - dv/2``: a larger ``v_max`` costs proportionally more steps.

Scheme (second order in ``x`` and ``t``, asymptotic preserving):

- transport: finite volumes, upwind per velocity, MUSCL reconstruction with the van Leer
  limiter; ``P f = -(F_{i+1/2} - F_{i-1/2})/dx`` with ``F = v^+ f_L + v^- f_R``.  Stable,
  positive and TVD per velocity for ``dt <= 0.5 dx / max|v_j|`` (the default ``dt`` is the
  largest that divides ``dt_coarse``; a larger ``dt`` raises ``ValueError``).
- relaxation: exponential time differencing (ETD-RK2, Cox & Matthews) of
  ``g = f - M``, ``g_t = -g/tau + (P f - M_t)``, with the Heun (SSP-RK2) stages of the
  transport.  Collisions do not change the moments, so the moments advance by Heun
  exactly, ``U1 = U + <phi, dt P f>``, ``U^{n+1} = U + (<phi, dt P f> + <phi, dt P f1>)/2``,
  and give ``M1``, ``M^{n+1}`` before ``f`` is known; with ``E = exp(-dt/tau)``,
  ``c1 = (1-E) tau/dt``, ``c2 = (dt/tau - 1 + E)(tau/dt)^2``::

      f1      = M1 + E (f - M) + c1 (dt P f - (M1 - M))
      f^{n+1} = M^{n+1} + (f1 - M1) + c2 (dt P f1 - dt P f - 2 (M^{n+1} - M1))

  Space-homogeneous relaxation (``P f = 0``) is exact: ``f = M + (f0 - M) e^{-t/tau}``.
  ``kn -> 0``: ``c1, c2, E -> 0``, ``f -> M`` after every stage, and the scheme becomes
  Heun + MUSCL kinetic fluxes for the Euler equations (second order, at the transport CFL
  for any ``kn``); it stays second order in the intermediate regime ``dt ~ tau``, where
  splitting or relaxing after each stage (Lawson) fall to first order.  Positivity of
  ``f`` holds for the transport but is not a theorem for the ETD combination (in practice
  ``min f > 0`` in all runs of the named initial conditions, ``kn`` from 1e-4 to 10).
  ``collisions=False`` (free streaming, ``kn`` unused but validated): Heun transport.
- boundaries ``bc``: ``"periodic"`` or ``"outflow"`` (zero-gradient ghost cells: waves
  leave, incoming velocities carry the edge cell's distribution).

State: ``f`` ``(B, nv, nx)``, observable and internal alike (channels = velocities).
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np

from ..windows import CellWindows, check_run
from .base import Solver, Validated, cfl_time_step, check_int, check_positive, steps_in
from .bgk_maxwellian import DiscreteMaxwellian

#: Courant number of the default and the largest allowed ``dt`` (MUSCL + Heun)
CFL = 0.5
BCS = ("outflow", "periodic")
IC_NAMES = ("sod", "waves", "shocks", "colliding", "riemann")


def _phi(lam: float) -> tuple[float, float, float]:
    """``E = e^{-lam}``, ``c1 = (1 - E)/lam``, ``c2 = (lam - 1 + E)/lam^2`` (series for
    small ``lam``, where the closed forms cancel)."""
    e = math.exp(-lam)
    if lam < 1e-2:
        terms = [(-lam) ** k / math.factorial(k + 2) for k in range(8)]
        return e, -math.expm1(-lam) / lam, math.fsum(terms)
    return e, -math.expm1(-lam) / lam, (lam + math.expm1(-lam)) / lam**2


def equilibrium_ic_fields(
    name: str, x: np.ndarray, L: float, batch: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Primitive fields ``(rho, u, T)``, each ``(batch, nx)``, of the named initial
    conditions on cell centres ``x`` ``(nx,)`` of ``[0, L]`` (BGK; the Boltzmann solver's
    with ``u_y = 0``).  ``sod``: ``(rho, u, p) = (1, 0, 1)`` left of ``L/2``,
    ``(0.125, 0, 0.1)`` right (for ``bc="outflow"``).  ``colliding``: two streams
    ``rho = T = 1``, ``u = +1`` left of ``L/2`` and ``-1`` right (two shocks running apart
    from the centre).  ``waves`` (periodic profiles, for ``bc="periodic"``): ``rho, u, T``
    each ``base + A s(x)/max|s|`` with ``s`` the sum of the first three sine/cosine modes
    with N(0, 1) amplitudes and ``A`` uniform in ``[0, 0.5]`` (``rho, T`` in
    ``[0.5, 1.5]``, ``|u| <= 0.5``).  ``shocks`` (explored in W. E's lecture): piecewise
    constant ``rho, u, T`` on 2 to 4 random intervals (``rho, T`` uniform in
    ``[0.5, 1.5]``, ``u`` in ``[-0.5, 0.5]``) plus waves of amplitude ``A`` in
    ``[0, 0.15]``.  ``riemann`` (strong shocks for the closure's training data): two
    constant states, the left one on ``[c, c + L/2)`` with ``c`` uniform in ``[0, L/2)``
    (periodic: two jumps), ``rho`` log-uniform in ``[0.125, 1]``, ``u`` uniform in
    ``[-0.6, 0.6]``, ``T`` uniform in ``[0.8, 1.25]`` (density ratios up to 8 as Sod's,
    velocity jumps up to 1.2; BGK runs reach ``T`` in about ``[0.29, 3.2]``, tails cut at
    5 thermal speeds or more)."""
    xi = np.broadcast_to(x / L, (batch, len(x)))
    if name == "riemann":
        c = rng.uniform(0.0, 0.5, (batch, 1))
        left = (xi - c) % 1.0 < 0.5
        rho, u, T = (
            np.where(left, a[:, :1], a[:, 1:])
            for a in (
                10 ** rng.uniform(math.log10(0.125), 0.0, (batch, 2)),
                rng.uniform(-0.6, 0.6, (batch, 2)),
                rng.uniform(0.8, 1.25, (batch, 2)),
            )
        )
        return rho, u, T
    if name in ("sod", "colliding"):
        left = xi < 0.5
        if name == "sod":
            return np.where(left, 1.0, 0.125), np.zeros_like(xi), np.where(left, 1.0, 0.8)
        return np.ones_like(xi), np.where(left, 1.0, -1.0), np.ones_like(xi)
    amp = 0.5 if name == "waves" else 0.15
    fields = []
    for base in (1.0, 0.0, 1.0):
        m = np.arange(1, 4)
        a, b = rng.standard_normal((2, batch, m.size, 1))
        arg = 2 * np.pi * m[:, None] * xi[:, None]
        s = (a * np.cos(arg) + b * np.sin(arg)).sum(axis=1)
        s /= np.abs(s).max(axis=1, keepdims=True)
        fields.append(base + rng.uniform(0, amp, (batch, 1)) * s)
    if name == "shocks":
        for k, (lo, hi) in enumerate(((0.5, 1.5), (-0.5, 0.5), (0.5, 1.5))):
            fields[k] = fields[k] - (1.0 if k != 1 else 0.0) + _pieces(rng, batch, lo, hi, x, L)
    return fields[0], fields[1], fields[2]


def _pieces(
    rng: np.random.Generator, batch: int, lo: float, hi: float, x: np.ndarray, L: float
) -> np.ndarray:
    """``(batch, nx)`` piecewise constant on cell centres ``x``: 2-4 pieces of ``[0, L]``,
    values uniform in [lo, hi]."""
    out = np.empty((batch, len(x)))
    for b in range(batch):
        cuts = np.sort(rng.uniform(0, L, rng.integers(1, 4)))
        values = rng.uniform(lo, hi, cuts.size + 1)
        out[b] = values[np.searchsorted(cuts, x)]
    return out


class BGK(CellWindows, Solver):
    """1-D BGK gas, discrete velocities, conservative discrete Maxwellian (see module)."""

    name = "bgk"
    # Transport is refused above its CFL bound (__init__) and the collision step is the
    # exact exponential one (stable for every kn > 0).  The velocity grid decides the
    # accuracy: tests/test_bgk.py validates down to v_max = 5 with nv = 16 (dv = 0.625),
    # where the hottest "shocks" states are cut at 3.4 thermal speeds and only the
    # discrete Maxwellian stays conservative; the default grid is v_max 10, dv 0.3125.
    validated: ClassVar[dict[str, Validated]] = {
        "v_max": Validated(5.0, math.inf, "Maxwellian tails, tests/test_bgk.py"),
        "dv": Validated(
            0.0, 0.625, "velocity resolution, tests/test_bgk.py", ("dv", "v_max", "nv")
        ),
    }

    def __init__(
        self,
        *,
        kn: float = 0.01,
        L: float = 1.0,
        nx: int = 100,
        nv: int = 64,
        v_max: float = 10.0,
        dt: float | None = None,
        dt_coarse: float = 0.005,
        bc: str = "outflow",
        collisions: bool = True,
    ) -> None:
        self.kn = self.tau = check_positive("kn", kn)
        self.L = check_positive("L", L)
        self.nx = check_int("nx", nx, minimum=4)
        self.nv = check_int("nv", nv, minimum=3)
        self.v_max = check_positive("v_max", v_max)
        if bc not in BCS:
            raise ValueError(f"bc must be one of {', '.join(BCS)}, got {bc!r}")
        self.bc = bc
        if not isinstance(collisions, (bool, np.bool_)):
            raise ValueError(f"collisions must be true or false, got {collisions!r}")
        self.collisions = bool(collisions)
        self.dx = self.L / self.nx
        self.dv = 2.0 * self.v_max / self.nv
        self.x = (np.arange(self.nx) + 0.5) * self.dx
        self.v = -self.v_max + (np.arange(self.nv) + 0.5) * self.dv
        dt_coarse = check_positive("dt_coarse", dt_coarse)
        self.dt_max = CFL * self.dx / np.abs(self.v).max()
        dt = cfl_time_step(
            dt, dt_coarse, self.dt_max, f"{CFL} dx/max|v|", "dx = L/nx, max|v| = v_max - dv/2"
        )
        super().__init__(dt=dt, dt_coarse=dt_coarse)
        nu = self.dt / self.dx
        self._vp = (nu * np.maximum(self.v, 0.0))[:, None]
        self._vn = (nu * np.minimum(self.v, 0.0))[:, None]
        self._n_neg = int(np.count_nonzero(self.v < 0))  # v is sorted
        self._maxwellian = DiscreteMaxwellian(self.v, self.dv)
        self._w = self.dv * np.stack([np.ones(self.nv), self.v, 0.5 * self.v**2])  # (3, nv)
        self._E, self._c1, self._c2 = _phi(self.dt / self.tau)

    @property
    def state_shape(self) -> tuple[int, ...]:
        return (self.nv, self.nx)

    def params(self) -> dict[str, Any]:
        return dict(
            kn=self.kn,
            L=self.L,
            nx=self.nx,
            nv=self.nv,
            v_max=self.v_max,
            dt=self.dt,
            dt_coarse=self.dt_coarse,
            bc=self.bc,
            collisions=self.collisions,
        )

    def trajectory_attrs(self) -> dict[str, Any]:
        """Root attributes of trajectory files (``ledmus simulate``): the grids ``v``,
        ``dv`` (state axis 1: velocity) and ``x``, ``dx`` (state axis 2: position)."""
        return {
            "v": self.v,
            "dv": self.dv,
            "x": self.x,
            "dx": self.dx,
            "state_axes": "velocity v, position x",
        }

    # --------------------------------------------------------------------- moments
    def moments(self, f: np.ndarray) -> np.ndarray:
        """``(..., 3, nx)``: ``rho``, ``rho u``, ``E`` of ``f`` ``(..., nv, nx)``."""
        return self._w @ np.asarray(f, dtype=np.float64)

    def primitives(self, f: np.ndarray) -> np.ndarray:
        """``(..., 3, nx)``: ``rho``, ``u``, ``T`` (``T = 2E/rho - u^2``, ``p = rho T``)."""
        rho, mom, e = np.moveaxis(self.moments(f), -2, 0)
        u = mom / rho
        return np.stack([rho, u, 2.0 * e / rho - u * u], axis=-2)

    def maxwellian_of_moments(
        self, U: np.ndarray, *, discrete: bool = True, shape: np.ndarray | None = None
    ) -> np.ndarray:
        """Discrete Maxwellian ``(..., nv, nx)`` whose grid moments are ``U`` ``(..., 3, nx)``
        (``discrete=False``: the sampled continuous Maxwellian, for comparisons).
        ``shape`` ``(..., nv, nx)``: ``exp(a . (1, v, v²/2) + shape)`` with the grid
        moments ``U`` instead (:class:`DiscreteMaxwellian`)."""
        U = np.asarray(U, dtype=np.float64)
        lead, n = U.shape[:-2], U.shape[-1]
        cells = np.moveaxis(U, -2, -1).reshape(-1, 3)
        if shape is not None:
            shape = np.moveaxis(np.asarray(shape, dtype=np.float64), -2, -1).reshape(-1, self.nv)
        m = self._maxwellian(cells, discrete=discrete, shape=shape).reshape(*lead, n, self.nv)
        return np.ascontiguousarray(np.moveaxis(m, -1, -2))

    def maxwellian(self, rho: Any, u: Any, T: Any) -> np.ndarray:
        """Discrete Maxwellian ``(B, nv, nx)`` of the fields ``rho, u, T`` ``(B, nx)``
        (or broadcastable): its grid moments are ``rho``, ``rho u``, ``rho u^2/2 + rho T/2``.
        """
        rho, u, T = np.broadcast_arrays(*(np.asarray(a, dtype=np.float64) for a in (rho, u, T)))
        for name, a in (("rho", rho), ("T", T)):
            if not (np.all(np.isfinite(a)) and np.all(a > 0)):
                raise ValueError(f"{name} must be finite and > 0 everywhere")
        if not np.all(np.isfinite(u)):
            raise ValueError("u must be finite")
        rho, u, T = (np.atleast_2d(a) for a in (rho, u, T))
        if rho.shape[-1] != self.nx:
            raise ValueError(f"fields have {rho.shape[-1]} cells but nx={self.nx}")
        U = np.stack([rho, rho * u, 0.5 * rho * (u * u + T)], axis=1)
        return self.maxwellian_of_moments(U)

    def equilibrium(self, f: np.ndarray) -> np.ndarray:
        """``M[f]``: the discrete Maxwellian with the moments of ``f``."""
        return self.maxwellian_of_moments(self.moments(f))

    # ---------------------------------------------------------------- initial states
    def ic_names(self) -> tuple[str, ...]:
        return IC_NAMES

    def _named_ic(self, name: str, batch: int, rng: np.random.Generator) -> np.ndarray:
        """All start in local equilibrium: :func:`equilibrium_ic_fields`."""
        return self.maxwellian(*equilibrium_ic_fields(name, self.x, self.L, batch, rng))

    # ------------------------------------------------------------------------- solver
    def _lift(self, obs: np.ndarray, rng: np.random.Generator | None) -> np.ndarray:
        return obs.copy()

    def _observe(self, f: np.ndarray) -> np.ndarray:
        return f

    def _pad(self, f: np.ndarray) -> np.ndarray:
        """``f`` ``(B, nv, m)`` with two ghost cells at each end by the boundary ``bc``."""
        if self.bc == "periodic":
            return np.concatenate([f[..., -2:], f, f[..., :2]], axis=-1)
        return np.concatenate([f[..., :1], f[..., :1], f, f[..., -1:], f[..., -1:]], axis=-1)

    def _faces(self, fp: np.ndarray) -> np.ndarray:
        """``dt/dx`` times the MUSCL (van Leer) upwind face fluxes ``v f`` of the ``m + 1``
        faces of the ``m`` cells inside the ghosted ``fp`` ``(B, nv, m + 4)``."""
        d = np.diff(fp, axis=-1)  # (m + 3)
        dl, dr = d[..., :-1], d[..., 1:]  # around padded cells 1 .. m+2
        p = dl * dr
        half = np.zeros_like(p)  # van Leer half slope dl dr/(dl + dr), 0 at extrema
        np.divide(p, dl + dr, out=half, where=p > 0)
        k = self._n_neg  # velocities < 0 take the face value of the right cell, > 0 the left
        flux = np.empty(fp.shape[:-1] + (fp.shape[-1] - 3,))
        flux[..., :k, :] = self._vn[:k] * (fp[..., :k, 2:-1] - half[..., :k, 1:])
        flux[..., k:, :] = self._vp[k:] * (fp[..., k:, 1:-2] + half[..., k:, :-1])
        return flux

    def _transport(self, f: np.ndarray) -> np.ndarray:
        """``dt P f``: MUSCL (van Leer) upwind flux differences, ``(B, nv, nx)``."""
        return self._transport_faces(f)[0]

    def _transport_faces(self, f: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``dt P f`` and the face fluxes it differences (boundary ``bc``)."""
        flux = self._faces(self._pad(f))
        return flux[..., :-1] - flux[..., 1:], flux

    def _heun_etd(
        self, f: np.ndarray, transport0: Any, transport1: Any
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """One step from ``f``; ``transport0(f)`` (first stage) and ``transport1(f1)``
        (second, at ``t + dt``) give ``(dt P f, face fluxes)``; also returns both stages'
        face fluxes."""
        d0, flux0 = transport0(f)
        if not self.collisions:
            d1, flux1 = transport1(f + d0)
            return f + 0.5 * (d0 + d1), flux0, flux1
        u0 = self.moments(f)
        a = self.moments(d0)
        m0 = self.maxwellian_of_moments(u0)
        m1 = self.maxwellian_of_moments(u0 + a)
        f1 = m1 + self._E * (f - m0) + self._c1 * (d0 - (m1 - m0))
        d1, flux1 = transport1(f1)
        m2 = self.maxwellian_of_moments(u0 + 0.5 * (a + self.moments(d1)))
        return m2 + (f1 - m1) + self._c2 * (d1 - d0 - 2.0 * (m2 - m1)), flux0, flux1

    def _step(self, f: np.ndarray, t: float, rng: np.random.Generator | None) -> np.ndarray:
        return self._heun_etd(f, self._transport_faces, self._transport_faces)[0]

    # ------------------------------------------------------------------ cell windows
    def advance_runs(
        self, runs: list, duration: float, *, cells: list | None = None
    ) -> list[tuple[np.ndarray, np.ndarray]]:
        """:meth:`~ledmus.windows.CellWindows.advance_cells` of several runs ``(f, left,
        right)`` at once, Heun-ETD steps with the stage weights ½, ½ in ``phi`` (``cells``, the
        runs' cell indices, is accepted for the interface the hybrid shares with the
        Boltzmann solver and not needed: ``kn`` is one number): the runs and
        their ghost cells lie side by side in one padded array (the faces between one
        run's ghosts and the next run's are computed but not used), so each stage is one
        transport over all of them."""
        states, ghosts, inner, ends = [], [], [], []
        at = 0
        for f, left, right in runs:
            f = check_run(f, left, right, nv=self.nv, nx=self.nx, bc=self.bc)
            m = f.shape[2]
            states.append(f)
            ghosts.append((left, right))
            inner.append(np.arange(at, at + m))
            ends += [at, at + m]  # the run's two end faces among the inner faces
            at += m + 4
        n = steps_in(duration, self.dt, "duration", "dt")
        real = np.concatenate(inner)  # the runs' cells among the inner cells
        bounds = np.cumsum([0] + [a.shape[-1] for a in states])

        def transport(theta: float) -> Any:
            def apply(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
                blocks = []
                for k, (left, right) in enumerate(ghosts):
                    part = a[..., bounds[k] : bounds[k + 1]]
                    edge = self._pad(part)  # bc copies, used at a domain end
                    if left is None and right is None:
                        blocks.append(edge)
                        continue
                    g0 = edge[..., :2] if left is None else (1 - theta) * left[0] + theta * left[1]
                    g1 = (
                        edge[..., -2:]
                        if right is None
                        else (1 - theta) * right[0] + theta * right[1]
                    )
                    blocks.append(np.concatenate([g0, part, g1], axis=-1))
                flux = self._faces(blocks[0] if len(blocks) == 1 else np.concatenate(blocks, -1))
                d = flux[..., :-1] - flux[..., 1:]
                return (d if len(blocks) == 1 else d[..., real]), flux[..., ends]

            return apply

        f = np.concatenate(states, axis=-1)
        phi = np.zeros((f.shape[0], 3, len(ends)))
        for k in range(n):
            f, e0, e1 = self._heun_etd(f, transport(k / n), transport((k + 1) / n))
            phi += self.moments(0.5 * (e0 + e1)) * self.dx
        return [
            (f[..., bounds[k] : bounds[k + 1]], phi[..., 2 * k : 2 * k + 2])
            for k in range(len(states))
        ]
