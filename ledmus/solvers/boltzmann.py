"""Boltzmann gas, 1-D in ``x``, 2-D in velocity, Maxwell molecules, fast spectral collisions.

Equation, ``x`` in ``[0, L)``, ``v = (v_x, v_y)`` in ``R^2``::

    f_t + v_x f_x = Q(f) / eps(x),
    Q(f)(v) = int_{R^2} int_{S^1} b [f(v') f(v'_*) - f(v) f(v_*)] dsigma dv_*,
    v' = (v + v_*)/2 + |v - v_*| sigma/2,   v'_* = (v + v_*)/2 - |v - v_*| sigma/2,

with the **Maxwell-molecule kernel** ``b = 1/(2 pi)`` (``dsigma`` the arc length on the
unit circle, total ``2 pi``), so the collision frequency is ``nu = int int b dsigma dv_* =
rho`` for every ``v``.  This is the normalisation of the 2-D BKW solution (Bobylev;
Krook & Wu; used by Pareschi & Russo 2000 and Mouhot & Pareschi 2006 as their test)::

    K(t) = 1 - exp(-t/8)/2,   f(t, v) = exp(-|v|^2/(2K)) / (2 pi K^2)
                                        * (2K - 1 + (1 - K)|v|^2/(2K)),

(``rho = 1``, ``T = 1``, ``eps = 1``): the fourth moment obeys ``dM4/dt = (pi b/2)(8 -
M4)`` and ``M4 = 16K - 8K^2`` gives ``K' = (pi b/4)(1 - K) = (1 - K)/8`` exactly for ``b =
1/(2 pi)``.  Moments ``rho = int f``, ``rho u = int v f``, ``E = int |v|^2/2 f = rho|u|^2/2
+ rho T`` (``T`` per degree of freedom, ``p = rho T``, ``d = 2``: the Euler limit
``eps -> 0`` is the ``gamma = (d + 2)/d = 2`` Euler system in ``x``, with ``u_y`` a
passive scalar).  Units: ``x`` in units of ``L``, ``v`` in units of the reference
thermal speed (``T = 1``), time in ``L`` over that speed.

**Velocity grid.**  ``N x N`` cell centres ``v_j = -V + (j + 1/2) h``, ``h = 2V/N``, on
the periodised box ``[-V, V]^2``; ``V`` (``v_box``) is by default the anti-aliasing
bound of Pareschi & Russo for a distribution supported in the ball ``|v| <= S``
(``v_support``): ``V = (3 + sqrt 2)/2 S`` with kernel truncation ``R = 2 S``.  Grid
moments are midpoint sums (``h^2 sum``), spectrally accurate for smooth ``f``.

**Fast spectral collisions** (Mouhot & Pareschi, Math. Comp. 75, 2006).  In the
Carleman form ``Q(f)(v) = int int_{|x|, |y| <= R} B delta(x.y) [f(v+y) f(v+x) - f(v+x+y)
f(v)] dx dy`` with ``B = 2^{d-1} b = 1/pi``.  With ``f(v) = sum_k fh_k e^{i pi k.v/V}``
(``k`` in ``[-N/2, N/2)^2``) this is ``Qh_k = sum_{l+m=k} [Bh(l, m) - Bh(m, m)] fh_l
fh_m`` with, writing ``x = r e_theta``, ``y = s e_theta^perp``, ::

    Bh(l, m) = (1/pi) int_0^pi phi(l . e_theta) phi(m . e_theta^perp) dtheta,
    phi(s) = int_{-R}^{R} e^{i pi r s / V} dr = 2 R sinc(R s / V)     (sinc(z) = sin(pi z)/(pi z)).

For 2-D Maxwell molecules the integrand is a product of a function of ``l`` and one of
``m`` (the decomposition is exact).  Turning ``theta`` by ``pi/2`` swaps ``e`` and
``e^perp`` up to sign, and ``phi`` is even, so the gain integrand has period ``pi/2``:
the ``theta`` integral is the trapezoidal rule on ``M`` (``n_directions``) angles
``theta_p = (pi/2) p/M`` of the quarter circle (the same as ``2M`` equispaced angles on
the half circle at half the cost; periodic integrand: spectrally accurate), weight
``(1/pi)(pi/M) = 1/M``.  The **spectral weights** ``alpha_p(l)
= phi(l . e_p)``, ``alpha'_p(l) = phi(l . e_p^perp)`` and the loss weights ``Bh(m, m) =
(1/M) sum_p alpha_p(m) alpha'_p(m)`` are computed once per solver (Nyquist modes set to
zero, so every multiplier is real and even and the products are real).  Then, with ``F``
the discrete Fourier transform over the two velocity axes, ::

    Q(f) = (1/M) sum_p F^-1[alpha_p F f] F^-1[alpha'_p F f] - f F^-1[Bh(m, m) F f],

``2M + 2`` real FFTs of size ``N^2`` per cell, ``O(M N^2 log N)``, one batched call per
direction chunk over all members and cells.  The velocity grid, ``Q``, the moments, their projection
and the Maxwellian are :class:`~ledmus.solvers.spectral_collisions.SpectralCollisions`
(one cell's velocity space); this module transports and time-steps.  Mass is conserved exactly; momentum and
energy only to spectral accuracy (Mouhot & Pareschi; Pareschi & Russo 2000 measure
1e-6..1e-10 drifts).  ``conservative=True`` (default) adds the L2 projection of
Gamba & Tharkabhushanam (2009) / Pareschi & Russo: ``Q <- Q - C^T (C C^T)^{-1} C Q``
with ``C`` the ``4 x N^2`` matrix of the grid moments ``h^2 (1, v_x, v_y, |v|^2/2)``,
after which every collision step conserves the four moments to rounding.

**Equilibrium** ``M[f]``: the sampled Maxwellian of the moments of ``f``, projected the
same way onto the exact grid moments (so ``C M[f] = C f`` to rounding; the correction is
of the size of the midpoint-rule and tail-truncation error of the sampled Maxwellian).
``Q(M)`` is not exactly zero (truncated kernel, spectral error): measured ``max|Q(M)| =
1e-7 max M`` at the defaults.

**Time stepping** (Filbet & Jin, JCP 229, 2010; Dimarco & Pareschi, SINUM 51, 2013).
Penalisation by a BGK operator, ``Q = [Q - P] + P`` with ``P(f) = mu (M[f] - f)`` and
``mu = rho`` per cell (the exact loss frequency of the untruncated Maxwell kernel, an
upper bound of the truncated one).  ``E(f) = T(f) + (Q(f) - P(f))/eps`` (transport and
the non-stiff remainder) is explicit, ``I(f) = P(f)/eps`` implicit.  Since ``P``
conserves the moments, a stage ``F = R + a dt I(F)`` has the moments of ``R``, hence
``M[F] = M[R]`` and ``F = (R + lam M[R])/(1 + lam)`` with ``lam = a dt mu/eps``: no
iteration.  ``scheme="ars222"`` (default): the IMEX Runge-Kutta ARS(2,2,2) of Ascher,
Ruuth & Spiteri (second order, implicit part L-stable and globally stiffly accurate, so
``eps -> 0`` gives ``f = M`` after every step for well-prepared (near-equilibrium)
data: second-order kinetic fluxes for the ``gamma = 2`` Euler equations), ``g = 1 - 1/sqrt 2``, ``d = 1 - 1/(2g)``::

    R2 = f + g dt E(f);                      F2 = (R2 + lam_g M[R2]) / (1 + lam_g)
    R3 = f + dt (d E(f) + (1-d) E(F2)) + (1-g) dt I(F2);  f^{n+1} = (R3 + lam_g M[R3]) / (1 + lam_g)

``scheme="imex1"``: Filbet & Jin's first-order scheme, ``R = f + dt E(f)``, ``f^{n+1} =
(R + lam M[R])/(1 + lam)``, ``lam = dt mu/eps``.  Both run at the transport CFL for any
``eps > 0`` (tested at ``eps = 1e-4`` (Sod), ``1e-3..10`` and ``1e12``).  Known limits
of the penalisation: data far from equilibrium at ``eps << dt`` relax over several
steps at the rate ``a/mu`` of each linearised mode (``a`` its decay rate), not in one
step (Filbet & Jin, §3); the named initial conditions are local equilibria.  Positivity
of ``f`` is not guaranteed (spectral collision operators are not positive): measured
``min f / max f`` at shocks ``-9e-6`` (Sod, ``N = 32``), ``-1.2e-4`` (``N = 24``),
``-2.4e-3`` (``riemann``, ``N = 16``, too coarse a grid: ``h = 1.1``).

**Transport** ``T(f) = -v_x f_x``: finite volumes, upwind per ``v_x``, MUSCL
reconstruction with the ``minmod`` or monotonised-central (``mc``) limiter; ``dt <= 0.5
dx / max|v_x|`` (``max|v_x| = V - h/2``).  Boundaries ``bc``: ``periodic``; ``outflow``
(zero-gradient ghost cells); ``specular`` (walls at ``x = 0, L``: ghost cells are the
mirror images ``f(-x, -v_x, v_y)``, so the wall fluxes of mass and energy vanish).

**Knudsen number per cell** ``eps``: a number; ``"transition"``: ``log10 eps`` rises
smoothly from ``-3`` at ``x = 0`` to ``1`` at ``x = L``, ``log10 eps(x) = -3 + 4 s(x)``,
``s(x) = [tanh((x/L - 1/2)/w) + tanh(1/(2w))] / (2 tanh(1/(2w)))``, ``w = 0.1``
(``eps(0) = 1e-3``, ``eps(L) = 10``, ``eps(L/2) = 0.1``); an array or the path of a
``.npy`` file with ``nx`` values.

State: the observable is ``f`` ``(B, N*N, nx)`` (channel ``i*N + j`` is the velocity
``(v_x[i], v_y[j])``, as BGK's ``(B, nv, nx)``: channels = velocities); the internal
state is a torch tensor ``(B, nx, N, N)`` on ``device`` in ``dtype``.

**Cells split over MPI ranks** (``comm``: an mpi4py communicator; None, the default,
is one process).  Rank ``r`` of ``P`` owns the contiguous block ``cells`` (a slice)
of the ``nx`` global cells (``numpy.array_split`` sizes: the first ``nx mod P`` ranks
hold one cell more; at least 2 cells each, so ``nx >= 2 P``).  Each transport
evaluation (each explicit stage) exchanges a two-cell halo with the neighbouring ranks
(``Sendrecv``); the boundary condition makes the ghost cells only at the ends of the
global domain (``periodic``: the first and last rank are neighbours).  The collision
step is local in ``x``.  Global: the constructor's ``nx``, ``eps`` (one value per global
cell) and ``L``, ``dx``, ``dt``, :meth:`~Boltzmann.params`,
:meth:`~Boltzmann.trajectory_attrs`, ``nx_global``, ``x_global``.  Local (this rank's
block): the attributes ``nx`` (this rank's cell count), ``x``, ``eps_cells``,
``state_shape`` and so every observable and internal state, and the fields of
:meth:`~Boltzmann.maxwellian`.  A named initial condition is drawn on the global cells
and sliced, so ranks whose generators are in the same state get the blocks of the
one-process state.
:meth:`~Boltzmann.scatter_cells`, :meth:`~Boltzmann.gather_cells` and
:meth:`~Boltzmann.allgather_cells` move arrays ``(..., nx)`` between the global and the
local blocks.  Runs of cells advanced with given ghost cells (the cell-local hybrid's
kinetic side) are :mod:`~ledmus.solvers.boltzmann_runs`; the IMEX steps and ``relax``
are :mod:`~ledmus.solvers.boltzmann_imex`.  A 3-D velocity space (hard spheres):
:mod:`ledmus.solvers.boltzmann3d`.
"""

from __future__ import annotations

import math
import os
from typing import Any

import numpy as np
import torch

from .base import Solver, cfl_time_step, check_int, check_positive
from .bgk import equilibrium_ic_fields
from .boltzmann_imex import SCHEMES, PenalisedIMEX
from .boltzmann_runs import BoltzmannRuns
from .cells import CellSplit, checked_cells
from .spectral_collisions import SpectralCollisions

#: Courant number of the default and the largest allowed ``dt`` (MUSCL, explicit RK2)
CFL = 0.5
BCS = ("outflow", "periodic", "specular")
LIMITERS = ("mc", "minmod")
DTYPES = {"float64": torch.float64, "float32": torch.float32}
IC_NAMES = ("sod", "waves", "shocks", "colliding", "riemann")
#: Pareschi & Russo's anti-aliasing factor: ``V >= (3 + sqrt 2)/2 S``
ALIAS_FACTOR = (3.0 + math.sqrt(2.0)) / 2.0
#: width (fraction of L) of the tanh profile of ``eps="transition"``; its end values
TRANSITION_WIDTH = 0.1
TRANSITION_EPS = (1e-3, 10.0)


def transition_eps(x: np.ndarray, length: float, width: float = TRANSITION_WIDTH) -> np.ndarray:
    """``eps(x)``: ``log10 eps`` from ``-3`` at ``x = 0`` to ``1`` at ``x = length`` (tanh
    profile of relative width ``width``; see the module docstring)."""
    lo, hi = (math.log10(e) for e in TRANSITION_EPS)
    h = math.tanh(0.5 / width)
    s = (np.tanh((np.asarray(x) / length - 0.5) / width) + h) / (2.0 * h)
    return 10.0 ** (lo + (hi - lo) * s)


class Boltzmann(BoltzmannRuns, PenalisedIMEX, Solver):
    """1-D-in-x, 2-D-velocity Boltzmann gas, Maxwell molecules, fast spectral method.

    Attributes of the split over MPI ranks (module docstring; without ``comm`` one rank
    holding every cell): ``comm``, ``rank``, ``size``, ``nx_global``, ``cells`` (this
    rank's slice of the global cells), ``nx = cells.stop - cells.start``, ``x_global``.
    """

    name = "boltzmann"
    #: dimension of the velocity space (the systems layer reads the state with it)
    velocity_dims = 2

    def __init__(
        self,
        *,
        eps: float | str | Any = 0.01,
        L: float = 1.0,
        nx: int = 100,
        N: int = 32,
        v_support: float = 4.0,
        v_box: float | None = None,
        n_directions: int = 4,
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
    ) -> None:
        """``nx``, ``eps`` (a profile: ``nx`` values) and ``L`` describe the global domain;
        ``comm`` (an mpi4py communicator, or None: one process) splits its cells over the
        ranks (see the module docstring).  Every rank must pass the same arguments; a split
        that leaves a rank fewer than 2 cells raises ``ValueError`` on every rank."""
        self.L = check_positive("L", L)
        self.nx = check_int("nx", nx, minimum=4) if comm is None else checked_cells(comm, nx)
        self.N = check_int("N", N, minimum=8)
        if self.N % 2:
            raise ValueError(f"N must be an even integer >= 8, got {N!r}")
        self.v_support = check_positive("v_support", v_support)
        bound = ALIAS_FACTOR * self.v_support
        if v_box is None:
            v_box = bound
        self.v_box = check_positive("v_box", v_box)
        if self.v_box < bound * (1 - 1e-12):
            raise ValueError(
                f"v_box={v_box!r} is below the anti-aliasing bound; allowed: v_box >= "
                f"(3 + sqrt 2)/2 v_support = {bound:.6g}"
            )
        self.n_directions = check_int("n_directions", n_directions, minimum=1)
        for field, value, allowed in (
            ("bc", bc, BCS),
            ("limiter", limiter, LIMITERS),
            ("scheme", scheme, SCHEMES),
            ("dtype", dtype, tuple(DTYPES)),
        ):
            if value not in allowed:
                raise ValueError(f"{field} must be one of {', '.join(allowed)}, got {value!r}")
        self.bc, self.limiter, self.scheme, self.dtype = bc, limiter, scheme, dtype
        for field, value in (("conservative", conservative), ("collisions", collisions)):
            if not isinstance(value, (bool, np.bool_)):
                raise ValueError(f"{field} must be true or false, got {value!r}")
        self.conservative, self.collisions = bool(conservative), bool(collisions)
        if not isinstance(device, str) or device.split(":")[0] not in ("cpu", "cuda"):
            raise ValueError(f"device must be 'cpu' or 'cuda' (or 'cuda:<k>'), got {device!r}")
        self.device = device
        use = device if device.startswith("cuda") and torch.cuda.is_available() else "cpu"
        self._device = torch.device(use)
        self._dtype = DTYPES[dtype]

        self.dx = self.L / self.nx
        self.x = (np.arange(self.nx) + 0.5) * self.dx
        self.eps = eps if isinstance(eps, str) else None
        self.eps_cells = self._eps_profile(eps)
        self._velocity = self._velocity_space()
        self.h, self.v = self._velocity.h, self._velocity.v  # both axes
        dt_coarse = check_positive("dt_coarse", dt_coarse)
        self.dt_max = CFL * self.dx / np.abs(self.v).max()
        dt = cfl_time_step(
            dt, dt_coarse, self.dt_max, f"{CFL} dx/max|v_x|", "dx = L/nx, max|v_x| = v_box - h/2"
        )
        super().__init__(dt=dt, dt_coarse=dt_coarse)
        self._split(comm)
        self._setup_tensors()

    # ------------------------------------------------------------------ construction
    def _eps_profile(self, eps: Any) -> np.ndarray:
        """``eps`` per cell ``(nx,)`` from a number, ``"transition"``, an array or a .npy."""
        if isinstance(eps, str):
            if eps == "transition":
                return transition_eps(self.x, self.L)
            if not eps.endswith(".npy") or not os.path.isfile(eps):
                raise ValueError(
                    f"eps={eps!r}: allowed: a number > 0, 'transition', an array or an existing "
                    f".npy file with nx={self.nx} values"
                )
            eps = np.load(eps)
        if np.ndim(eps) == 0:
            return np.full(self.nx, check_positive("eps", eps))
        try:
            arr = np.asarray(eps, dtype=np.float64)
        except (TypeError, ValueError):
            raise ValueError(f"eps must be numbers, got {eps!r}") from None
        if arr.shape != (self.nx,) or not (np.all(np.isfinite(arr)) and np.all(arr > 0)):
            raise ValueError(
                f"eps must hold nx={self.nx} finite values > 0 (one per cell), got shape "
                f"{arr.shape} with min {np.min(arr) if arr.size else 'none'}"
            )
        return arr.copy()

    def _velocity_space(self) -> SpectralCollisions:
        """One cell's velocity space (grid, collisions, moments, Maxwellian): the 2-D
        Maxwell-molecule :class:`~.spectral_collisions.SpectralCollisions`; a solver with
        another velocity space (:class:`~.boltzmann3d.Boltzmann3D`) returns its own."""
        return SpectralCollisions(
            self.N, self.v_box, self.v_support, self.n_directions, self.conservative, self._tensor
        )

    def _split(self, comm: Any) -> None:
        """This rank's block of cells (:class:`~.cells.CellSplit`): ``nx_global``,
        ``cells`` and the local ``nx``, ``x``, ``eps_cells`` (collective)."""
        self.comm = comm
        self.x_global, self._eps_global = self.x, self.eps_cells
        if comm is not None:
            # decided on the settings of every rank, so every rank raises the same error
            names = ("N", "L", "v_box", "bc", "dtype", "dt", "eps")
            mine = (self.N, self.L, self.v_box, self.bc, self.dtype, self.dt)
            every = comm.allgather((*mine, self._eps_global.tobytes()))
            differ = [n for k, n in enumerate(names) if any(e[k] != every[0][k] for e in every)]
            if differ:
                raise ValueError(
                    f"{', '.join(differ)} differ between the ranks of comm; allowed: every rank "
                    "constructs Boltzmann with the same arguments"
                )
        self._cells = CellSplit(comm, self.nx, periodic=self.bc == "periodic")
        self.rank, self.size = self._cells.rank, self._cells.size
        self.nx_global, self.cells, self.nx = self.nx, self._cells.cells, self._cells.nx
        self.x = self.x_global[self.cells].copy()
        self.eps_cells = self._eps_global[self.cells].copy()

    def _tensor(self, a: Any) -> torch.Tensor:
        return torch.as_tensor(np.asarray(a), dtype=self._dtype, device=self._device)

    def _setup_tensors(self) -> None:
        """``eps`` per cell and the transport's upwind masks; ``v_x`` is the first velocity
        axis (``-velocity_dims``)."""
        d = self.velocity_dims
        self._eps_t = self._tensor(self.eps_cells).reshape(self.nx, *(1,) * d)  # (nx, 1, ..)
        v = self._tensor(self.v).reshape(self.N, *(1,) * (d - 1))  # (N, 1, ..): v_x axis
        self._vpos = v > 0
        self._v_dx = v / self.dx

    def _cellwise(self, a: torch.Tensor) -> torch.Tensor:
        """``a`` ``(...)`` broadcast over the velocity axes: ``(..., 1, ..., 1)``."""
        return a[(..., *(None,) * self.velocity_dims)]

    @property
    def state_shape(self) -> tuple[int, ...]:
        """``(N*N, nx)``, ``nx`` this rank's cells (the global ``nx`` without ``comm``)."""
        return (self.N * self.N, self.nx)

    def params(self) -> dict[str, Any]:
        """The constructor's settings, of the global domain (the same on every rank)."""
        eps_cells = self._eps_global
        eps = (
            self.eps
            if self.eps is not None
            else (float(eps_cells[0]) if np.all(eps_cells == eps_cells[0]) else eps_cells.tolist())
        )
        return dict(
            eps=eps,
            L=self.L,
            nx=self.nx_global,
            N=self.N,
            v_support=self.v_support,
            v_box=self.v_box,
            n_directions=self.n_directions,
            dt=self.dt,
            dt_coarse=self.dt_coarse,
            bc=self.bc,
            limiter=self.limiter,
            scheme=self.scheme,
            conservative=self.conservative,
            collisions=self.collisions,
            dtype=self.dtype,
            device=self.device,
        )

    def trajectory_attrs(self) -> dict[str, Any]:
        """Root attributes of trajectory files: the velocity grid ``v`` (both axes; state
        channel ``i*N + j`` is ``(v[i], v[j])``), ``h``, and ``x``, ``dx``, ``eps`` of the
        global domain (a split run's file holds the gathered states)."""
        return {
            "v": self.v,
            "h": self.h,
            "x": self.x_global,
            "dx": self.dx,
            "eps": self._eps_global,
            "state_axes": "velocity (v_x, v_y) flattened i*N + j, position x",
        }

    # ------------------------------------------------------------- cells over ranks
    def scatter_cells(self, a: Any, root: int = 0) -> np.ndarray:
        """This rank's block ``a[..., cells]`` (float64) of a global array ``a`` ``(...,
        nx_global)`` given on ``root`` (the other ranks may pass None); collective.  Use
        it on a global observable initial condition ``(B, N*N, nx_global)`` before
        :meth:`rollout`, or on the fields of :meth:`maxwellian`.  Without ``comm``: a
        float64 copy of ``a``."""
        return self._cells.scatter(a, root)

    def gather_cells(self, a: Any, root: int = 0) -> np.ndarray | None:
        """The global array ``(..., nx_global)`` (float64) on ``root`` from every rank's
        block ``a`` ``(..., nx)`` (same leading axes on every rank), None on the other
        ranks; collective.  E.g. the states ``(B, T, N*N, nx)`` of :meth:`rollout`.
        Without ``comm``: a float64 copy of ``a``."""
        return self._cells.gather(a, root)

    def allgather_cells(self, a: Any) -> np.ndarray:
        """:meth:`gather_cells` whose result every rank gets."""
        out = self._cells.gather(a, None)
        assert out is not None
        return out

    # -------------------------------------------------------------- layout helpers
    def to_internal(self, f: Any) -> torch.Tensor:
        """Observable ``(B, N*N, nx)`` (numpy) -> internal ``(B, nx, N, N)`` tensor (``d =
        velocity_dims`` velocity axes of ``N``: ``(B, N^d, nx)`` -> ``(B, nx, N, .., N)``)."""
        f = self._tensor(f)
        d = self.velocity_dims
        f = f.reshape(f.shape[0], *(self.N,) * d, self.nx)
        return f.permute(0, d + 1, *range(1, d + 1)).contiguous()

    def to_observable(self, f: torch.Tensor) -> np.ndarray:
        """Internal ``(B, nx, N, N)`` -> observable ``(B, N*N, nx)`` float64 numpy."""
        d = self.velocity_dims
        out = f.permute(0, *range(2, d + 2), 1).reshape(f.shape[0], self.N**d, self.nx)
        return out.detach().to("cpu", torch.float64).numpy().copy()

    # ----------------------------------------------------------------------- transport
    def _ghosts(self, f: torch.Tensor, side: str) -> torch.Tensor:
        """The boundary condition's two ghost cells ``(B, 2, N, N)`` left or right of ``f``."""
        if self.bc == "periodic":
            return f[:, -2:] if side == "left" else f[:, :2]
        if self.bc == "outflow":
            edge = f[:, :1] if side == "left" else f[:, -1:]
            return torch.cat([edge, edge], dim=1)
        # specular: mirror images, v_x reversed (the v grid is symmetric)
        return torch.flip(f[:, :2] if side == "left" else f[:, -2:], dims=(1, 2))

    def _halo(self, f: torch.Tensor) -> torch.Tensor:
        """``f`` ``(B, nx, N, N)`` padded with two ghost cells each side ``(B, nx + 4, N,
        N)``: the neighbouring ranks' edge cells (one exchange), the boundary condition's
        ghosts at the ends of the global domain."""
        if self.comm is None:
            return torch.cat([self._ghosts(f, "left"), f, self._ghosts(f, "right")], dim=1)
        from_left, from_right = self._cells.exchange(
            f[:, :2].detach().cpu().numpy(), f[:, -2:].detach().cpu().numpy()
        )
        left = self._ghosts(f, "left") if from_left is None else self._tensor(from_left)
        right = self._ghosts(f, "right") if from_right is None else self._tensor(from_right)
        return torch.cat([left, f, right], dim=1)

    def _faces(self, fp: torch.Tensor) -> torch.Tensor:
        """Upwind MUSCL fluxes over ``dx``, ``v_x f_face/dx`` ``(B, n + 1, N, N)``, at the
        ``n + 1`` faces ``-1/2 .. n-1/2`` of the ``n`` cells inside ``fp`` ``(B, n + 4, N, N)``
        (two ghost cells each side)."""
        d = fp[:, 1:] - fp[:, :-1]  # (n + 3)
        a, b = d[:, :-1], d[:, 1:]  # around padded cells 1 .. n+2
        sign = 0.5 * (torch.sign(a) + torch.sign(b))
        if self.limiter == "minmod":
            slope = sign * torch.minimum(a.abs(), b.abs())
        else:
            slope = sign * torch.minimum(0.5 * (a + b).abs(), 2 * torch.minimum(a.abs(), b.abs()))
        n = fp.shape[1] - 4
        f_left = fp[:, 1 : n + 2] + 0.5 * slope[:, : n + 1]
        f_right = fp[:, 2 : n + 3] - 0.5 * slope[:, 1 : n + 2]
        return self._v_dx * torch.where(self._vpos, f_left, f_right)

    def _transport(self, f: torch.Tensor) -> torch.Tensor:
        """``T(f) = -v_x f_x`` ``(B, nx, N, N)``: MUSCL upwind finite volumes (with
        ``comm``: one halo exchange per call)."""
        flux = self._faces(self._halo(f))  # faces -1/2 .. n-1/2
        return flux[:, :-1] - flux[:, 1:]

    # ------------------------------------------------------------------------ moments
    def velocity_moments(self, f: Any) -> np.ndarray:
        """``(..., 4)``: ``rho``, ``rho u_x``, ``rho u_y``, ``E`` of ``f`` ``(..., N, N)``."""
        return self._velocity.moments(self._tensor(f)).cpu().double().numpy()

    def moments(self, f: Any) -> np.ndarray:
        """``(..., 4, nx)``: ``rho``, ``rho u_x``, ``rho u_y``, ``E = int |v|^2/2 f`` of the
        observable ``f`` ``(..., N*N, nx)`` (grid sums ``h^2 sum``)."""
        f = np.asarray(f, dtype=np.float64)
        vx, vy = np.meshgrid(self.v, self.v, indexing="ij")
        w = self.h**2 * np.stack(
            [np.ones(vx.size), vx.ravel(), vy.ravel(), 0.5 * (vx**2 + vy**2).ravel()]
        )
        return w @ f

    def primitives(self, f: Any) -> np.ndarray:
        """``(..., 4, nx)``: ``rho``, ``u_x``, ``u_y``, ``T`` (per degree of freedom, ``E =
        rho|u|^2/2 + rho T``, ``p = rho T``) of the observable ``f`` ``(..., N*N, nx)``."""
        rho, mx, my, e = np.moveaxis(self.moments(f), -2, 0)
        ux, uy = mx / rho, my / rho
        return np.stack([rho, ux, uy, e / rho - 0.5 * (ux * ux + uy * uy)], axis=-2)

    def maxwellian(self, rho: Any, u: Any, T: Any, uy: Any = 0.0) -> np.ndarray:
        """Observable ``(B, N*N, nx)`` Maxwellian of the fields ``rho``, ``u`` (= ``u_x``),
        ``T``, ``uy`` ``(B, nx)`` (or broadcastable), ``rho/(2 pi T) exp(-|v - u|^2/(2T))``
        projected so that its grid moments are exactly ``rho``, ``rho u``, ``rho|u|^2/2 +
        rho T``.  With ``comm``: the fields and the result are this rank's cells."""
        arrs = np.broadcast_arrays(*(np.asarray(a, dtype=np.float64) for a in (rho, u, T, uy)))
        rho, u, T, uy = (np.atleast_2d(a) for a in arrs)
        for name, a in (("rho", rho), ("T", T)):
            if not (np.all(np.isfinite(a)) and np.all(a > 0)):
                raise ValueError(f"{name} must be finite and > 0 everywhere")
        if not (np.all(np.isfinite(u)) and np.all(np.isfinite(uy))):
            raise ValueError("u and uy must be finite")
        if rho.shape[-1] != self.nx:
            raise ValueError(f"fields have {rho.shape[-1]} cells but nx={self.nx}")
        U = np.stack([rho, rho * u, rho * uy, rho * (0.5 * (u * u + uy * uy) + T)], axis=-1)
        m = self._velocity.maxwellian(self._tensor(U))  # (B, nx, N, N)
        return self.to_observable(m)

    def maxwellian_of_moments(self, U: Any) -> np.ndarray:
        """Projected Maxwellian ``(..., N*N, m)`` of the 1-D conserved moments ``U`` ``(..., 3,
        m)`` = ``(rho, rho u_x, E)`` of any ``m`` cells, with ``u_y = 0`` (``E = rho u_x^2/2 +
        rho T``): its grid moments are exactly ``U`` (and ``rho u_y = 0``).  The moment
        closure's state has these three rows; the hybrid lifts with it."""
        U = np.asarray(U, dtype=np.float64)
        lead, m = U.shape[:-2], U.shape[-1]
        rows = np.moveaxis(U, -2, -1)  # (..., m, 3)
        full = np.stack([rows[..., 0], rows[..., 1], np.zeros_like(rows[..., 0]), rows[..., 2]], -1)
        g = self._velocity.maxwellian(self._tensor(full))  # (..., m, N, N)
        out = g.reshape(*lead, m, self.nv).movedim(-1, -2)
        return out.detach().cpu().double().numpy().copy()

    def equilibrium(self, f: Any) -> np.ndarray:
        """``M[f]``: the (projected) Maxwellian with the grid moments of ``f`` ``(B, N*N, nx)``."""
        g = self.to_internal(self.check_observable(f))
        return self.to_observable(self._velocity.maxwellian(self._velocity.moments(g)))

    def velocity_maxwellian(self, rho: float, ux: float, uy: float, T: float) -> np.ndarray:
        """``(N, N)`` projected Maxwellian of one cell."""
        U = [rho, rho * ux, rho * uy, rho * (0.5 * (ux * ux + uy * uy) + T)]
        return self._velocity.maxwellian(self._tensor(U)).cpu().double().numpy()

    def collision(self, f: Any) -> np.ndarray:
        """``Q(f)`` ``(..., N, N)`` of velocity distributions ``f`` ``(..., N, N)``."""
        return self._velocity.collision(self._tensor(f)).cpu().double().numpy()

    def entropy(self, f: Any) -> np.ndarray:
        """``H = h^2 sum f log f`` of ``f`` ``(..., N, N)`` (``0 log 0 = 0``; negative values,
        which the spectral method allows in far tails, count as ``|f| log |f|``)."""
        a = np.abs(np.asarray(f, dtype=np.float64))
        return self.h**2 * np.sum(
            np.where(a > 0, a * np.log(np.where(a > 0, a, 1.0)), 0.0), axis=(-2, -1)
        )

    def _lift(self, obs: np.ndarray, rng: np.random.Generator | None) -> torch.Tensor:
        return self.to_internal(obs)

    def _observe(self, f: torch.Tensor) -> np.ndarray:
        return self.to_observable(f)

    def _step(self, f: torch.Tensor, t: float, rng: np.random.Generator | None) -> torch.Tensor:
        if not self.collisions:  # free streaming: Heun (SSP-RK2) transport
            d0 = self.dt * self._transport(f)
            return f + 0.5 * (d0 + self.dt * self._transport(f + d0))
        return self._imex(f, self.dt, self._eps_t, transport=True)

    # ------------------------------------------------------------------ cell windows
    @property
    def nv(self) -> int:
        """Velocities per cell, ``N**velocity_dims`` (the observable's channels)."""
        return self.N**self.velocity_dims

    # ---------------------------------------------------------------- initial states
    def ic_names(self) -> tuple[str, ...]:
        return IC_NAMES

    def _named_ic(self, name: str, batch: int, rng: np.random.Generator) -> np.ndarray:
        """Local equilibria with ``u_y = 0`` and BGK's primitive fields
        (:func:`~ledmus.solvers.bgk.equilibrium_ic_fields`).  ``riemann`` starts with
        ``|u| + 5 sqrt(T) <= 6.7 < v_box`` (default 8.83).  With ``comm``: the fields are
        drawn on the global cells and this rank's block is returned, so ranks whose
        generators are in the same state hold the blocks of the one-process state."""
        fields = equilibrium_ic_fields(name, self.x_global, self.L, batch, rng)
        return self.maxwellian(*(a[:, self.cells] for a in fields))
