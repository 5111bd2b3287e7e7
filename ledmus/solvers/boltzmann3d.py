"""Boltzmann gas, 1-D in ``x``, **3-D in velocity**, hard spheres, fast spectral collisions.

Equation, ``x`` in ``[0, L)``, ``v = (v_x, v_y, v_z)`` in ``R^3``::

    f_t + v_x f_x = Q(f) / eps(x),
    Q(f)(v) = int_{R^3} int_{S^2} B(|v - v_*|) [f(v') f(v'_*) - f(v) f(v_*)] dsigma dv_*,
    v' = (v + v_*)/2 + |v - v_*| sigma/2,   v'_* = (v + v_*)/2 - |v - v_*| sigma/2,

with the **hard-sphere kernel** ``B = |v - v_*| / (4 pi)`` (``dsigma`` the area on the
unit sphere, total ``4 pi``), so the collision frequency is ``nu(v) = int int B dsigma
dv_* = int |v - v_*| f(v_*) dv_*`` (``rho sqrt(8 T/pi)`` at ``v = u`` of a Maxwellian):
time is in units of the collision time of unit density and unit thermal speed.  Moments
``rho = int f``, ``rho u = int v f``, ``E = int |v|^2/2 f = rho|u|^2/2 + (3/2) rho T``
(``T`` per degree of freedom, ``p = rho T``, ``d = 3``: the Euler limit ``eps -> 0`` is
the ``gamma = (d + 2)/d = 5/3`` Euler system in ``x``, with ``u_y``, ``u_z`` passive).
Units as in :mod:`ledmus.solvers.boltzmann`.

**Why hard spheres.**  The fast spectral method of Mouhot & Pareschi (Math. Comp. 75,
2006) needs a Carleman kernel ``B~ = 2^{d-1} B |x + y|^{-(d-2)}`` that is a product of a
function of ``|x|`` and one of ``|y|``.  In 3-D this holds exactly for hard spheres
(``B~ = 4 |x+y|/(4 pi) / |x+y| = 1/pi``, a constant), not for Maxwell molecules
(``B~ ~ |x + y|^{-1} = (|x|^2 + |y|^2)^{-1/2}``), which need the ``O(M_rho M_sigma N^3
log N)`` method of Gamba, Haack, Hauck & Hu (SISC 2017) at tens of times the cost.  The
BKW exact solution exists only for Maxwell molecules, so it is **not** a test of this
operator; it is validated by conservation, the H-theorem, the Maxwellian, the initial
relaxation rate of the stress against a direct quadrature of the collision integral
(``tests/test_boltzmann3d.py``), free streaming and the Euler limit.

**Fast spectral collisions, 3-D hard spheres.**  Carleman form ``Q(f)(v) = int int_{|x|,
|y| <= R} B~ delta(x.y) [f(v+y) f(v+x) - f(v+x+y) f(v)] dx dy`` with ``B~ = 1/pi``.  With
``f(v) = sum_k fh_k e^{i pi k.v/V}`` (``k`` in ``[-N/2, N/2)^3``), ``Qh_k = sum_{l+m=k}
[Bh(l, m) - Bh(m, m)] fh_l fh_m`` and, writing ``x = r e``, ``y`` in the plane ``e^perp``
(``delta(x.y) dx dy = r dr de dA(y)``), ::

    Bh(l, m) = (1/pi) int_{S^2_+} phi(l . e) psi(|Pi_e m|) de,
    phi(t) = int_{-R}^{R} |r| e^{i pi r t/V} dr = 2 R^2 [sinc(z) - sinc(z/2)^2/2],  z = pi R t/V,
    psi(q) = int_{|y| <= R, y . e = 0} e^{i pi m.y/V} dA(y) = 2 pi R^2 J_1(w)/w,  w = pi R q/V,

(``sinc(z) = sin(z)/z`` here, ``J_1`` the Bessel function, ``Pi_e m = m - (m.e) e``,
``S^2_+`` the half sphere: the integrand is even in ``e``).  The decomposition in ``l``
and ``m`` is exact; the one approximation is the quadrature of the half sphere:
``n_directions = M`` Gauss-Legendre nodes in ``cos theta`` in ``(0, 1]`` (the positive
half of the ``2M``-node rule on ``[-1, 1]``) times ``2M`` equispaced azimuths, ``2M^2``
directions ``e_p`` with weights ``w_p`` (``sum w_p = 2 pi``, the half sphere; the full
rule is antipodally symmetric, so the half-sphere sum is half the full-sphere one).  The
**spectral weights** ``alpha_p(l) = phi(l . e_p)``, ``alpha'_p(m) = psi(|Pi_{e_p} m|)``
and ``Bh(m, m) = (1/pi) sum_p w_p alpha_p(m) alpha'_p(m)`` are computed once (Nyquist
modes zero, every multiplier real and even), and with ``F`` the DFT over the three
velocity axes::

    Q(f) = (1/pi) sum_p w_p F^-1[alpha_p F f] F^-1[alpha'_p F f] - f F^-1[Bh(m, m) F f],

``4 M^2 + 2`` real FFTs of size ``N^3`` per cell, ``O(M^2 N^3 log N)``.  ``F^-1[Bh(m, m)
F f](v)`` is the (truncated, periodised) collision frequency ``nu(v)``.  Mass is
conserved exactly for any quadrature; ``conservative=True`` (default) projects ``Q`` onto
zero grid moments ``h^3 (1, v_x, v_y, v_z, |v|^2/2)`` (``C`` ``5 x N^3``), exactly as the
2-D solver.  Velocity grid, anti-aliasing bound ``V = (3 + sqrt 2)/2 S``, ``R = 2 S``,
projected Maxwellian ``rho/(2 pi T)^{3/2} exp(-|v - u|^2/(2T))``: as the 2-D solver, per
axis.

**Equilibrium.**  The truncated, periodised operator does not vanish at the (projected)
Maxwellian: ``max|Q(M)|/max M = 4.4e-3`` at ``N = 16`` (``h = 1.1``), ``7.9e-5`` at
``N = 24`` (4 polar nodes).  Its discrete equilibrium (the zero of the projected ``Q``)
then differs from ``M`` in the fluxes ``int v_x^2 f``, ``int v_x |v|^2 f``, and the Euler
limit inherits it: the ``eps = 1e-4`` Sod star pressure is 2.7 % high at ``N = 16``
(``-0.35 %`` at ``N = 24``), a uniform Maxwellian drifts 1.1 % of ``max f`` by ``t =
0.1``.  ``equilibrium_preserving=True`` (default) collides with the steady-state
preserving operator of Filbet, Pareschi & Rey (JCP 301, 2015), ``Q~(f) = Q(f) -
Q(M[f])`` (``M[f]`` the projected Maxwellian of the grid moments of ``f``; zero where
``f`` has no positive density and temperature): spectrally accurate as ``Q``, ``Q~(M) =
0`` to rounding, at twice the cost (``f`` and ``M[f]`` go through the FFTs together).
Sod star state at ``N = 16``: ``+0.04 %``.

**Penalisation.**  The IMEX ARS(2,2,2)/imex1 steps, transport, boundaries, ``eps`` per
cell and the MPI split are those of :class:`~ledmus.solvers.boltzmann.Boltzmann`; only
the BGK rate ``mu`` differs, because hard-sphere ``nu(v)`` is not constant.  A linear
non-equilibrium mode of ``Q`` decaying at rate ``a`` is multiplied per step by ``R(a dt/
eps, mu dt/eps)``.  Explicit (``mu = 0``) ARS(2,2,2) gives ``1 - x + x^2/2``, stable for
``x = a dt/eps <= 2``; for ``dt/eps -> inf`` ``R -> z^2/(2 g^2) + (1 - 1/(2 g^2)) z``,
``z = 1 - a/mu``, ``g = 1 - 1/sqrt 2``, so ``|R| <= 1`` only for ``a <= (4 - 2 sqrt 2)
mu = 1.17 mu`` (imex1: ``R -> z``, ``a <= 2 mu``); in between the smallest stable ``mu``
is ``(a - 2 eps/dt)/(4 - 2 sqrt 2)`` (computed over ``a dt/eps`` up to ``1e4``).  ``a``
reaches the largest loss frequency ``max_v nu(v)``, that of the discrete, quadrature,
periodised kernel ``K = F^-1[Bh(m, m)]`` (which can exceed the ``sqrt 2 R`` of the
truncated ``|g|``): ``nu <= kappa rho`` for ``f >= 0``, ``kappa = max K/h^3``
(``collision_frequency_bound``, computed once: 9.5 / 11.6 at ``N = 16``, ``v_support =
3.5``, 2 / 4 polar nodes, 28.9 at 1 node; the Maxwellians' ``max nu`` 7.7-8.3 / 9.1-10.2
/ 17-22 ``rho``).  Hence ``mu = max(0, kappa rho - 2 eps/dt)`` per cell: stable for every
real decay rate at every ``dt/eps``, and zero, the plain explicit scheme, while ``kappa
rho dt/eps <= 2``.  The linearisation at a Maxwellian (``N = 16``, 2 / 4 polar nodes) has
eigenvalues down to ``-7.83 / -8.96 rho`` with imaginary parts ``<= 0.4 / 0.6``: the
step's spectral radius at the unit Maxwellian is 1 (the invariants) up to ``dt/eps =
100``; at ``dt/eps = 1e4`` modes near ``a = (2 - sqrt 2) mu``, where ``R = -1``, grow
(2 polar nodes: 0.4 % per step; 0.9 % at ``rho = 0.3``, ``u = 0.8``, ``T = 0.5``).  The
operator's own growing modes (an eigenvalue ``+1.3e-4`` at that ``rho, u, T``) grow at
their rate whatever ``mu`` (``3e-4`` per step at ``dt/eps = 100``).  (The first version's ``mu = rho R/sqrt 2 = 4.95 rho`` was
below ``0.85 max nu``: step amplification 3.7 at ``dt/eps = 6.9``, 2 polar nodes; a
uniform Maxwellian at ``eps = 1e-4`` went to NaN.)

**One polar node** (``n_directions=1``, 2 directions) is degenerate: the collisions along
a direction ``e`` (``x`` along ``e``, ``y`` across) conserve ``v^T A v`` for every ``A``
with eigenvector ``e``, and both directions lie in the ``v_x``-``v_z`` plane, so ``A =
e_y e_y^T`` qualifies: ``int v_y^2 f`` is a sixth invariant (a bi-Maxwellian with ``T_y
= 0.85``, ``T_x = T_z = 1.3`` keeps ``T_y = 0.79`` at ``t = 2``, ``N = 16``; 2 nodes:
1.08), and the discrete linearisation has a growing mode (``+0.034 rho`` at ``N = 16``,
``+0.13 rho`` at ``rho = 0.3``, ``u = 0.8``, ``T = 0.5``).  It is no model of the gas near
equilibrium (the ``eps = 1e-4`` Sod run still ends in NaN); it serves cheap layout and
kinetic-regime tests.  Use ``>= 2`` polar nodes (8 directions).

State: the observable ``f`` ``(B, N^3, nx)``, channel ``(i N + j) N + k`` the velocity
``(v[i], v[j], v[k])``; internal ``(B, nx, N, N, N)``.  The velocity space of one cell
(grid, ``Q``, moments, projection, Maxwellian) is :class:`HardSphereCollisions`, as
:class:`~ledmus.solvers.spectral_collisions.SpectralCollisions` is the 2-D solver's;
:class:`Boltzmann3D` inherits transport, time stepping, boundaries, the MPI split
(:mod:`~ledmus.solvers.cells`; the ranks must also agree on ``n_directions``,
``conservative`` and ``equilibrium_preserving``) and the runs of cells
(:mod:`~ledmus.solvers.boltzmann_runs`) from :class:`~ledmus.solvers.boltzmann.Boltzmann`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from scipy.special import j1

from .base import check_positive
from .boltzmann import Boltzmann
from .spectral_collisions import CHUNK_BYTES, GridMoments

#: Carleman kernel of ``B = |g|/(4 pi)`` in 3-D: ``2^{d-1} B |x + y|^{-(d-2)} = 1/pi``
CARLEMAN = 1.0 / math.pi
#: bytes per array of one block of distributions on the CPU (stays in cache)
CPU_BLOCK_BYTES = 2**21


def half_sphere_rule(m: int) -> tuple[np.ndarray, np.ndarray]:
    """Directions ``(2 m^2, 3)`` and weights ``(2 m^2,)`` (sum ``2 pi``) on the half sphere
    ``e_z > 0``: the positive Gauss-Legendre nodes of the ``2m``-node rule in ``cos
    theta`` times ``2m`` equispaced azimuths (half of an antipodally symmetric rule)."""
    if m < 1:
        raise ValueError(f"n_directions must be an integer >= 1, got {m!r}")
    mu, w = np.polynomial.legendre.leggauss(2 * m)
    keep = mu > 0
    mu, w = mu[keep], w[keep]
    az = 2.0 * np.pi * np.arange(2 * m) / (2 * m)
    st = np.sqrt(1.0 - mu**2)
    e = np.stack(
        [
            (st[:, None] * np.cos(az)[None]).ravel(),
            (st[:, None] * np.sin(az)[None]).ravel(),
            np.repeat(mu, 2 * m),
        ],
        axis=-1,
    )
    return e, np.repeat(w, 2 * m) * (np.pi / m)


def _phi(t: np.ndarray, R: float, V: float) -> np.ndarray:
    """``int_{-R}^{R} |r| e^{i pi r t/V} dr = 2 R^2 [sinc(z) - sinc(z/2)^2/2]``, ``z = pi R
    t/V`` (``np.sinc(x) = sin(pi x)/(pi x)``)."""
    z = R * np.asarray(t) / V  # z/pi
    return 2.0 * R * R * (np.sinc(z) - 0.5 * np.sinc(0.5 * z) ** 2)


def _psi(q: np.ndarray, R: float, V: float) -> np.ndarray:
    """``int_{disc of radius R} e^{i pi m.y/V} dA = 2 pi R^2 J_1(w)/w``, ``w = pi R q/V``
    (``q = |Pi_e m|``; ``pi R^2`` at ``q = 0``)."""
    w = np.pi * R * np.asarray(q) / V
    safe = np.where(w > 1e-8, w, 1.0)
    return 2.0 * np.pi * R * R * np.where(w > 1e-8, j1(safe) / safe, 0.5 - w * w / 16.0)


class HardSphereCollisions(GridMoments):
    """The velocity space of one cell, 3-D hard spheres (module docstring): the grid
    ``v_j = -v_box + (j + 1/2) h``, ``h = 2 v_box/N`` on each axis, kernel truncation ``R
    = 2 v_support``, the half-sphere rule of ``n_directions`` polar nodes; the spectral
    weights, moment matrix, projector and ``collision_frequency_bound`` are computed
    once.  ``tensor`` turns an array into a tensor of the solver's dtype and device;
    ``block_bytes``: the size of one block of distributions in :meth:`spectral_q`.

    Shapes: a distribution is ``(..., N, N, N)`` (axes ``v_x``, ``v_y``, ``v_z``); moments
    are ``(..., 5)``: ``rho, rho u_x, rho u_y, rho u_z, E``."""

    dims = 3

    def __init__(
        self,
        N: int,
        v_box: float,
        v_support: float,
        n_directions: int,
        conservative: bool,
        equilibrium_preserving: bool,
        tensor: Callable[[Any], torch.Tensor],
        block_bytes: int = CPU_BLOCK_BYTES,
    ) -> None:
        self.N, self.n_directions = N, n_directions
        self.conservative, self.equilibrium_preserving = conservative, equilibrium_preserving
        self.h = 2.0 * v_box / N
        self.v = -v_box + (np.arange(N) + 0.5) * self.h  # every axis
        V, R = v_box, 2.0 * v_support
        e, w = half_sphere_rule(n_directions)
        self.directions, self.weights = e, w
        kx = np.fft.fftfreq(N, 1.0 / N)[:, None, None]
        ky = np.fft.fftfreq(N, 1.0 / N)[None, :, None]
        kz = np.fft.rfftfreq(N, 1.0 / N)[None, None, :]
        nyquist = (np.abs(kx) == N // 2) | (np.abs(ky) == N // 2) | (np.abs(kz) == N // 2)
        ex, ey, ez = (e[:, i, None, None, None] for i in range(3))
        dot = kx * ex + ky * ey + kz * ez  # (P, N, N, N/2+1)
        perp = np.sqrt(np.maximum(kx * kx + ky * ky + kz * kz - dot * dot, 0.0))
        alpha = _phi(dot, R, V)
        alpha_perp = _psi(perp, R, V) * (CARLEMAN * w)[:, None, None, None]
        alpha[:, nyquist] = 0.0
        alpha_perp[:, nyquist] = 0.0
        self._alpha = tensor(alpha)
        self._alpha_perp = tensor(alpha_perp)  # carries the weight (1/pi) w_p
        loss = (alpha * alpha_perp).sum(axis=0)
        self._loss = tensor(loss)
        vx, vy, vz = np.meshgrid(self.v, self.v, self.v, indexing="ij")
        C = self.h**3 * np.stack(
            [np.ones_like(vx), vx, vy, vz, 0.5 * (vx**2 + vy**2 + vz**2)]
        ).reshape(5, N**3)
        self.C = C  # (5, N^3) float64, for the numpy moments
        self._C = tensor(C.T)  # (N^3, 5): f_flat @ C -> moments
        self._P = tensor(C.T @ np.linalg.inv(C @ C.T))
        self._vx, self._vy, self._vz = (tensor(a) for a in (vx, vy, vz))
        # sup of nu(v) over f >= 0 of unit mass: the largest value of the discrete kernel
        kernel = np.fft.irfftn(loss, s=(N, N, N), axes=(0, 1, 2))
        self.collision_frequency_bound = float(kernel.max()) / self.h**3
        self._rows = max(1, int(block_bytes // (8 * N**3)))

    def collision(self, f: torch.Tensor) -> torch.Tensor:
        """``Q(f)`` of ``f`` ``(..., N, N, N)`` (fast spectral method, hard spheres); with
        ``equilibrium_preserving`` ``Q(f) - Q(M[f])``, both in one batch."""
        N = self.N
        lead = f.shape[:-3]
        f3 = f.reshape(-1, N, N, N)
        if not self.equilibrium_preserving:
            return self.spectral_q(f3).reshape(*lead, N, N, N)
        q = self.spectral_q(torch.cat([f3, self.equilibrium_of(f3)]))
        n = f3.shape[0]
        return (q[:n] - q[n:]).reshape(*lead, N, N, N)

    def equilibrium_of(self, f3: torch.Tensor) -> torch.Tensor:
        """``M[f]`` ``(n, N, N, N)`` of ``f3`` ``(n, N, N, N)``; zero where ``f`` has no
        positive density and temperature or its Maxwellian is not finite on the grid
        (arbitrary arguments of :meth:`collision`)."""
        U = self.moments(f3)
        rho = U[:, 0]
        ok = (rho > 0) & (U[:, 4] - 0.5 * (U[:, 1:4] ** 2).sum(-1) / rho > 0)
        if bool(ok.all()):
            m = self.maxwellian(U)
            if bool(torch.isfinite(m).all()):
                return m
        unit = torch.tensor([1.0, 0.0, 0.0, 0.0, 1.5], dtype=U.dtype, device=U.device)
        m = self.maxwellian(torch.where(ok[:, None], U, unit))
        ok = ok & torch.isfinite(m).reshape(m.shape[0], -1).all(-1)
        return torch.where(ok[:, None, None, None], m, torch.zeros_like(m))

    def spectral_q(self, f3: torch.Tensor) -> torch.Tensor:
        """The fast spectral ``Q`` ``(n, N, N, N)`` (projected if ``conservative``), in
        blocks of ``_rows`` distributions, one direction at a time: on the CPU blocks of
        ``2 MiB`` per array stay in cache (3x faster than one batch of 100 cells at
        ``N = 16``)."""
        N = self.N
        shape, dims = (N, N, N), (-3, -2, -1)
        out = []
        for i in range(0, f3.shape[0], self._rows):
            g = f3[i : i + self._rows]
            fh = torch.fft.rfftn(g, dim=dims)
            gain = -g * torch.fft.irfftn(self._loss * fh, s=shape, dim=dims)  # the loss
            for a, b in zip(self._alpha, self._alpha_perp, strict=True):
                gain += torch.fft.irfftn(a * fh, s=shape, dim=dims) * torch.fft.irfftn(
                    b * fh, s=shape, dim=dims
                )
            out.append(gain)
        q = torch.cat(out) if len(out) > 1 else out[0]
        if self.conservative:
            q = self.project(q, -self.moments(q))
        return q

    def collision_frequency(self, f: torch.Tensor) -> torch.Tensor:
        """``nu(v) = F^-1[Bh(m, m) F f]`` ``(..., N, N, N)`` of ``f`` ``(..., N, N, N)``."""
        fh = torch.fft.rfftn(f, dim=(-3, -2, -1))
        return torch.fft.irfftn(self._loss * fh, s=(self.N,) * 3, dim=(-3, -2, -1))

    def maxwellian(self, U: torch.Tensor) -> torch.Tensor:
        """``(..., N, N, N)`` Maxwellian with grid moments ``U`` ``(..., 5)`` (projected)."""
        rho = U[..., 0]
        ux, uy, uz = U[..., 1] / rho, U[..., 2] / rho, U[..., 3] / rho
        T = ((U[..., 4] / rho - 0.5 * (ux * ux + uy * uy + uz * uz)) / 1.5).clamp_min(1e-300)
        e = lambda a: a[..., None, None, None]  # noqa: E731
        d2 = (self._vx - e(ux)) ** 2 + (self._vy - e(uy)) ** 2 + (self._vz - e(uz)) ** 2
        m = e(rho / (2 * math.pi * T) ** 1.5) * torch.exp(-d2 / (2 * e(T)))
        return self.project(m, U - self.moments(m))


class Boltzmann3D(Boltzmann):
    """1-D-in-x, 3-D-velocity Boltzmann gas, hard spheres, fast spectral method (module
    docstring).  The constructor's arguments are those of
    :class:`~ledmus.solvers.boltzmann.Boltzmann`; ``N`` is the points per velocity axis
    (``N^3`` in all), ``n_directions = M`` the polar nodes of the half-sphere rule
    (``2 M^2`` directions)."""

    name = "boltzmann3d"
    velocity_dims = 3

    def __init__(
        self,
        *,
        eps: float | str | Any = 0.01,
        L: float = 1.0,
        nx: int = 100,
        N: int = 16,
        v_support: float = 4.0,
        v_box: float | None = None,
        n_directions: int = 2,
        dt: float | None = None,
        dt_coarse: float = 0.005,
        bc: str = "outflow",
        limiter: str = "mc",
        scheme: str = "ars222",
        conservative: bool = True,
        collisions: bool = True,
        dtype: str = "float64",
        device: str = "cpu",
        comm: Any = None,
        equilibrium_preserving: bool = True,
    ) -> None:
        """As :class:`~ledmus.solvers.boltzmann.Boltzmann` (``N`` per axis, default 16;
        ``n_directions`` polar nodes, default 2: 8 directions; 1 is degenerate, see the
        module docstring); ``equilibrium_preserving``: collide with ``Q(f) - Q(M[f])``
        (module docstring).  With ``comm`` every rank must also pass the same
        ``n_directions``, ``conservative`` and ``equilibrium_preserving``."""
        if not isinstance(equilibrium_preserving, (bool, np.bool_)):
            raise ValueError(
                f"equilibrium_preserving must be true or false, got {equilibrium_preserving!r}"
            )
        self.equilibrium_preserving = bool(equilibrium_preserving)
        super().__init__(
            eps=eps,
            L=L,
            nx=nx,
            N=N,
            v_support=v_support,
            v_box=v_box,
            n_directions=n_directions,
            dt=dt,
            dt_coarse=dt_coarse,
            bc=bc,
            limiter=limiter,
            scheme=scheme,
            conservative=conservative,
            collisions=collisions,
            dtype=dtype,
            device=device,
            comm=comm,
        )
        #: ``kappa``: ``nu(v) <= kappa rho`` for every ``f >= 0`` (module docstring)
        self.collision_frequency_bound = self._velocity.collision_frequency_bound

    # ------------------------------------------------------------------ construction
    def _velocity_space(self) -> HardSphereCollisions:  # type: ignore[override]
        """The 3-D hard-sphere velocity space (:class:`HardSphereCollisions`)."""
        block = CHUNK_BYTES if self._device.type == "cuda" else CPU_BLOCK_BYTES
        return HardSphereCollisions(
            self.N,
            self.v_box,
            self.v_support,
            self.n_directions,
            self.conservative,
            self.equilibrium_preserving,
            self._tensor,
            block,
        )

    def _split(self, comm: Any) -> None:
        """The 2-D solver's split (collective), after checking on every rank together that
        the settings of the 3-D collision operator agree (the same ``ValueError`` on
        every rank if not)."""
        if comm is not None:
            names = ("n_directions", "conservative", "equilibrium_preserving")
            every = comm.allgather(tuple(getattr(self, n) for n in names))
            differ = [n for k, n in enumerate(names) if any(e[k] != every[0][k] for e in every)]
            if differ:
                raise ValueError(
                    f"{', '.join(differ)} differ between the ranks of comm; allowed: every rank "
                    "constructs Boltzmann3D with the same arguments"
                )
        super()._split(comm)

    @property
    def state_shape(self) -> tuple[int, ...]:
        """``(N^3, nx)``, ``nx`` this rank's cells."""
        return (self.N**3, self.nx)

    def params(self) -> dict[str, Any]:
        """The 2-D solver's settings and ``equilibrium_preserving``."""
        return {**super().params(), "equilibrium_preserving": self.equilibrium_preserving}

    def trajectory_attrs(self) -> dict[str, Any]:
        """As the 2-D solver's; state channel ``(i N + j) N + k`` is ``(v[i], v[j], v[k])``."""
        out = super().trajectory_attrs()
        out["state_axes"] = "velocity (v_x, v_y, v_z) flattened (i*N + j)*N + k, position x"
        return out

    # ------------------------------------------------------------------- penalisation
    def _penalty(self, U: torch.Tensor, eps: torch.Tensor, dt: float) -> torch.Tensor:
        """``mu = max(0, kappa rho - 2 eps/dt)`` per cell, ``kappa`` =
        ``collision_frequency_bound``, ``dt`` the whole step (module docstring)."""
        kappa = self._velocity.collision_frequency_bound
        explicit_rate = 2.0 * eps.reshape(eps.shape[: max(0, eps.dim() - 3)]) / dt
        return (kappa * U[..., 0] - explicit_rate).clamp_min(0.0)

    # ------------------------------------------------------------------------ moments
    def velocity_moments(self, f: Any) -> np.ndarray:
        """``(..., 5)``: ``rho``, ``rho u_x``, ``rho u_y``, ``rho u_z``, ``E`` of ``f``
        ``(..., N, N, N)``."""
        return super().velocity_moments(f)

    def moments(self, f: Any) -> np.ndarray:
        """``(..., 5, nx)``: ``rho``, ``rho u_x``, ``rho u_y``, ``rho u_z``, ``E = int
        |v|^2/2 f`` of the observable ``f`` ``(..., N^3, nx)`` (grid sums ``h^3 sum``)."""
        f = np.asarray(f, dtype=np.float64)
        return self._velocity.C @ f

    def primitives(self, f: Any) -> np.ndarray:
        """``(..., 5, nx)``: ``rho``, ``u_x``, ``u_y``, ``u_z``, ``T`` (per degree of
        freedom: ``E = rho|u|^2/2 + (3/2) rho T``, ``p = rho T``) of the observable ``f``."""
        rho, mx, my, mz, e = np.moveaxis(self.moments(f), -2, 0)
        ux, uy, uz = mx / rho, my / rho, mz / rho
        T = (e / rho - 0.5 * (ux * ux + uy * uy + uz * uz)) / 1.5
        return np.stack([rho, ux, uy, uz, T], axis=-2)

    def maxwellian(self, rho: Any, u: Any, T: Any, uy: Any = 0.0, uz: Any = 0.0) -> np.ndarray:
        """Observable ``(B, N^3, nx)`` Maxwellian of the fields ``rho``, ``u`` (= ``u_x``),
        ``T``, ``uy``, ``uz`` ``(B, nx)`` (or broadcastable), ``rho/(2 pi T)^{3/2}
        exp(-|v - u|^2/(2T))`` projected onto the exact grid moments.  With ``comm``: the
        fields and the result are this rank's cells."""
        arrs = np.broadcast_arrays(*(np.asarray(a, dtype=np.float64) for a in (rho, u, T, uy, uz)))
        rho, u, T, uy, uz = (np.atleast_2d(a) for a in arrs)
        for name, a in (("rho", rho), ("T", T)):
            if not (np.all(np.isfinite(a)) and np.all(a > 0)):
                raise ValueError(f"{name} must be finite and > 0 everywhere")
        if not all(np.all(np.isfinite(a)) for a in (u, uy, uz)):
            raise ValueError("u, uy and uz must be finite")
        if rho.shape[-1] != self.nx:
            raise ValueError(f"fields have {rho.shape[-1]} cells but nx={self.nx}")
        kin = 0.5 * (u * u + uy * uy + uz * uz)
        U = np.stack([rho, rho * u, rho * uy, rho * uz, rho * (kin + 1.5 * T)], axis=-1)
        return self.to_observable(self._velocity.maxwellian(self._tensor(U)))

    def maxwellian_of_moments(self, U: Any) -> np.ndarray:
        """Projected Maxwellian ``(..., N^3, m)`` of the 1-D conserved moments ``U`` ``(...,
        3, m)`` = ``(rho, rho u_x, E)`` of any ``m`` cells, with ``u_y = u_z = 0`` (``E =
        rho u_x^2/2 + (3/2) rho T``): its grid moments are exactly ``U``."""
        U = np.asarray(U, dtype=np.float64)
        lead, m = U.shape[:-2], U.shape[-1]
        rows = np.moveaxis(U, -2, -1)  # (..., m, 3)
        zero = np.zeros_like(rows[..., 0])
        full = np.stack([rows[..., 0], rows[..., 1], zero, zero, rows[..., 2]], -1)
        g = self._velocity.maxwellian(self._tensor(full))  # (..., m, N, N, N)
        out = g.reshape(*lead, m, self.nv).movedim(-1, -2)
        return out.detach().cpu().double().numpy().copy()

    def velocity_maxwellian(  # type: ignore[override]
        self, rho: float, ux: float, uy: float, uz: float, T: float
    ) -> np.ndarray:
        """``(N, N, N)`` projected Maxwellian of one cell."""
        for name, a in (("rho", rho), ("T", T)):
            check_positive(name, a)
        U = [
            rho,
            rho * ux,
            rho * uy,
            rho * uz,
            rho * (0.5 * (ux * ux + uy * uy + uz * uz) + 1.5 * T),
        ]
        return self._velocity.maxwellian(self._tensor(U)).cpu().double().numpy()

    def collision(self, f: Any) -> np.ndarray:
        """``Q(f)`` ``(..., N, N, N)`` of velocity distributions ``f`` ``(..., N, N, N)``
        (``Q(f) - Q(M[f])`` with ``equilibrium_preserving``)."""
        return super().collision(f)

    def collision_frequency(self, f: Any) -> np.ndarray:
        """``nu(v) = F^-1[Bh(m, m) F f]`` ``(..., N, N, N)``: the loss rate of the truncated
        kernel (``int |v - v_*| f(v_*) dv_*`` for ``f`` well inside the box)."""
        return self._velocity.collision_frequency(self._tensor(f)).cpu().double().numpy()

    def entropy(self, f: Any) -> np.ndarray:
        """``H = h^3 sum f log f`` of ``f`` ``(..., N, N, N)`` (``|f| log |f|`` as the 2-D)."""
        a = np.abs(np.asarray(f, dtype=np.float64))
        return self.h**3 * np.sum(
            np.where(a > 0, a * np.log(np.where(a > 0, a, 1.0)), 0.0), axis=(-3, -2, -1)
        )


__all__ = ["CARLEMAN", "Boltzmann3D", "HardSphereCollisions", "half_sphere_rule"]
