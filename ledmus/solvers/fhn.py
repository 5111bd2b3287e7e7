"""FitzHugh–Nagumo reaction–diffusion by D1Q3 lattice Boltzmann (Vlachas et al. §8.3.1).

PDE (eq 29), on nodes ``x_j = j*dx``, ``dx = length/(n_nodes-1)``::

    u_t = D_u u_xx + u - u^3 - v
    v_t = D_v v_xx + eps (u - a1 v - a0)

Scheme (eqs 30–39), populations ``f_i`` for velocities ``c_i in {-1, 0, +1}``::

    f_i(x_j + c_i dx, t + dt) = f_i - omega (f_i - rho/3) + R_i
    rho = sum_i f_i,   R_i^u = dt/3 (u - u^3 - v),   R_i^v = dt/3 eps (u - a1 v - a0)
    omega = 2 / (1 + 3 D dt/dx^2)

whose macroscopic limit has diffusivity ``(2/3)(1/omega - 1/2) dx^2/dt = D``.
Zero-flux walls (``walls``):

- ``"nodes"`` (default): the walls are the end nodes, ``x = 0`` and ``x = length``, the
  paper's domain.  Mirror (specular) boundary: the population entering an end node is the
  mirror image of the one leaving its neighbour towards it,
  ``f_+(x_0, t + dt) = f_-^*(x_1)`` and ``f_-(x_{N-1}, t + dt) = f_+^*(x_{N-2})``, i.e. the
  lattice is the even extension of period ``2 length``.  Every cosine ``cos(pi m x/length)``
  is an eigenmode, and the trapezoidal mass ``dx (rho_0/2 + rho_1 + … + rho_{N-1}/2)``
  is conserved exactly (changed only by the reaction).
- ``"halfway"``: half-way bounce-back; a population leaving the end node comes back into it
  with the opposite velocity, which puts the walls half a link outside the end nodes (at
  ``-dx/2`` and ``length + dx/2``: a domain of length ``length + dx``) and conserves the
  plain sum ``dx sum_j rho_j`` exactly.  Half-way walls were the earlier default (see CHANGELOG).

Lifting (:mod:`ledmus.solvers.lifting`): ``equilibrium`` is the equal-weight rule of
eqs 40–41, ``f_i = rho/3``; ``chapman_enskog`` adds the first-order non-equilibrium part
``f_i^(1) = -c_i dx d_x rho / (3 omega)`` (lattice units: ``-c_i (rho_{j+1} -
rho_{j-1}) / (6 omega)``, the even extension at the walls); ``constrained_runs`` and
``newton_krylov`` iterate on the unobserved moments per species and node,
``j = f_+ - f_-`` (flux) and ``psi = f_+ + f_- - 2 rho/3`` (the non-equilibrium part of
the second moment), with ``rho`` reset after every step.

Internal state: populations ``(B, 2, 3, N)`` (species u, v; velocities -1, 0, +1).
Observable: ``(B, 2, N)`` with channels u, v.
"""

from __future__ import annotations

from importlib import resources
from typing import Any, ClassVar

import numpy as np

from .base import Solver, Validated, check_int, check_positive, check_stable

IC_NAMES = tuple(f"y0{k}" for k in range(6))
WALLS = ("nodes", "halfway")


def load_fhn_ic(name: str) -> np.ndarray:
    """The tabulated initial condition ``name`` (y00…y05), shape ``(2, 101)``: u, v."""
    if name not in IC_NAMES:
        raise ValueError(f"FHN initial condition {name!r} unknown; allowed: {', '.join(IC_NAMES)}")
    folder = resources.files("ledmus") / "resources" / "fhn_initial_conditions"
    rows = [np.loadtxt(folder.joinpath(f"{name}{c}.txt").open()) for c in "uv"]
    return np.stack(rows).astype(np.float64)


class FitzHughNagumoLB(Solver):
    """D1Q3 BGK lattice Boltzmann for the FitzHugh–Nagumo equations (paper defaults)."""

    name = "fhn"
    liftings = ("equilibrium", "chapman_enskog", "constrained_runs", "newton_krylov")
    # The BGK relaxation rate omega = 2/(1 + 3 D dt/dx^2) of each species.  Any omega in
    # (0, 2) is stable, but the scheme is a diffusion solver only while the relaxation time
    # dt (1/omega - 1/2) is short: omega -> 0 (large D dt/dx^2) turns it into a telegraph
    # equation, omega -> 2 leaves the non-equilibrium modes undamped (|1 - omega| per step).
    # Lower bound: from y05, 200 coarse steps against dt = 0.005, MNAD u is 1e-4 at dt 0.01
    # (omega_v 0.5), 5e-4 at 0.025 (omega_v 0.235), 2.2e-3 at 0.05 (0.125), 0.014 at 0.1,
    # 0.22 at 0.5 (measured), so omega >= 0.2 keeps it below about 5e-4.  Upper bound: the
    # tests run up to d_u = 0.05 (omega_u 1.963, tests/test_lifting.py).
    validated: ClassVar[dict[str, Validated]] = {
        f"omega_{c}": Validated(
            0.2,
            1.97,
            "accurate LB diffusion; see FitzHughNagumoLB",
            (f"omega_{c}", f"d_{c}", "dt", "dx"),
        )
        for c in "uv"
    }

    def __init__(
        self,
        *,
        length: float = 20.0,
        n_nodes: int = 101,
        d_u: float = 1.0,
        d_v: float = 4.0,
        a0: float = -0.03,
        a1: float = 2.0,
        eps: float = 0.006,
        dt: float = 0.005,
        dt_coarse: float = 1.0,
        reaction: bool = True,
        walls: str = "nodes",
    ) -> None:
        super().__init__(dt=dt, dt_coarse=dt_coarse)
        # the reaction is explicit Euler: at the resting states u = +-1 (f'(u) = 1 - 3u^2 =
        # -2) its factor per step is 1 - 2 dt, so a dt above 1 makes them unstable
        check_stable("dt", self.dt, 0.0, 1.0, "the explicit reaction step at u = +-1")
        self.length = check_positive("length", length)
        self.n_nodes = check_int("n_nodes", n_nodes, minimum=3)
        self.d_u = check_positive("d_u", d_u)
        self.d_v = check_positive("d_v", d_v)
        self.a0, self.a1, self.eps = (
            float(a0),
            float(a1),
            check_positive("eps", eps, allow_zero=True),
        )
        if not isinstance(reaction, (bool, np.bool_)):
            raise ValueError(f"reaction must be true or false, got {reaction!r}")
        self.reaction = bool(reaction)
        if walls not in WALLS:
            raise ValueError(f"walls must be one of {', '.join(WALLS)}, got {walls!r}")
        self.walls = walls
        self.dx = self.length / (self.n_nodes - 1)
        self.omega = np.array([self.relaxation(d) for d in (self.d_u, self.d_v)])
        for sym, om in zip(("d_u", "d_v"), self.omega, strict=True):
            if not 0.0 < om < 2.0:  # cannot happen for D > 0, kept as the stability contract
                raise ValueError(f"LB relaxation omega for {sym} is {om}, allowed: (0, 2)")
        n = self.n_nodes
        self._keep = (1.0 - self.omega)[:, None, None]  # (2,1,1)
        self._feed = (self.omega / 3.0)[:, None]  # (2,1)
        # Streaming with the walls as one gather over the flat (3, N) axis:
        # index c*N + j, c = 0 (velocity -1), 1 (rest), 2 (velocity +1).
        j = np.arange(n)
        src = np.empty((3, n), dtype=np.intp)
        src[0, :-1] = 0 * n + j[1:]  # left movers come from the right neighbour
        src[1] = 1 * n + j
        src[2, 1:] = 2 * n + j[:-1]
        if self.walls == "nodes":
            src[0, -1] = 2 * n + (n - 2)  # mirror of the right mover leaving node N-2
            src[2, 0] = 0 * n + 1  # mirror of the left mover leaving node 1
        else:
            src[0, -1] = 2 * n + (n - 1)  # right mover at the right wall bounces back
            src[2, 0] = 0 * n + 0  # left mover at the left wall bounces back
        self._stream = src.ravel()

    @property
    def omega_u(self) -> float:
        return float(self.omega[0])

    @property
    def omega_v(self) -> float:
        return float(self.omega[1])

    def relaxation(self, diffusivity: float) -> float:
        """BGK relaxation ``omega = 2/(1 + 3 D dt/dx^2)`` (eq 39)."""
        return 2.0 / (1.0 + 3.0 * diffusivity * self.dt / self.dx**2)

    @property
    def state_shape(self) -> tuple[int, ...]:
        return (2, self.n_nodes)

    @property
    def x(self) -> np.ndarray:
        """Node coordinates ``j*dx``, shape ``(N,)`` (walls at ``0`` and ``length`` for
        ``walls="nodes"``, at ``-dx/2`` and ``length + dx/2`` for ``"halfway"``)."""
        return self.dx * np.arange(self.n_nodes)

    def params(self) -> dict[str, Any]:
        return dict(
            length=self.length,
            n_nodes=self.n_nodes,
            d_u=self.d_u,
            d_v=self.d_v,
            a0=self.a0,
            a1=self.a1,
            eps=self.eps,
            dt=self.dt,
            dt_coarse=self.dt_coarse,
            reaction=self.reaction,
            walls=self.walls,
        )

    def ic_names(self) -> tuple[str, ...]:
        return IC_NAMES

    def _named_ic(self, name: str, batch: int, rng: np.random.Generator) -> np.ndarray:
        ic = load_fhn_ic(name)
        if ic.shape != self.state_shape:
            raise ValueError(
                f"ic={name!r} is tabulated on 101 nodes but n_nodes={self.n_nodes}; "
                "pass the initial condition as an array instead"
            )
        return np.repeat(ic[None], batch, axis=0)

    def _lift(self, obs: np.ndarray, rng: np.random.Generator | None) -> np.ndarray:
        return np.repeat(obs[:, :, None, :] / 3.0, 3, axis=2)

    def _observe(self, f: np.ndarray) -> np.ndarray:
        return f.sum(axis=2)

    def _lift_chapman_enskog(self, obs: np.ndarray) -> np.ndarray:
        # the lattice's even extension: about the end node ("nodes", rho_{-1} = rho_1) or
        # about the half-way wall ("halfway", rho_{-1} = rho_0)
        mode = "reflect" if self.walls == "nodes" else "symmetric"
        padded = np.pad(obs, [(0, 0), (0, 0), (1, 1)], mode=mode)
        grad = 0.5 * (padded[..., 2:] - padded[..., :-2])  # d rho / dx in lattice units
        f1 = grad / (3.0 * self.omega[None, :, None])
        f = self._lift(obs, None)
        f[:, :, 0] += f1  # c = -1
        f[:, :, 2] -= f1  # c = +1
        return f

    def _unobserved(self, f: np.ndarray) -> np.ndarray:
        """``(B, 2, 2, N)``: per species the flux ``j`` and ``psi``."""
        rho = f.sum(axis=2)
        return np.stack([f[:, :, 2] - f[:, :, 0], f[:, :, 2] + f[:, :, 0] - rho * (2 / 3)], 2)

    def _with_unobserved(self, obs: np.ndarray, w: np.ndarray) -> np.ndarray:
        j, psi = w[:, :, 0], w[:, :, 1]
        third = obs / 3.0
        return np.stack([third + 0.5 * (psi - j), third - psi, third + 0.5 * (psi + j)], axis=2)

    def _step(self, f: np.ndarray, t: float, rng: np.random.Generator | None) -> np.ndarray:
        rho = f.sum(axis=2)  # (B, 2, N)
        src = rho * self._feed  # omega*rho/3: the BGK pull towards f_eq = rho/3
        if self.reaction:
            u, v = rho[:, 0], rho[:, 1]
            c = self.dt / 3.0
            src[:, 0] += c * (u - u * u * u - v)
            src[:, 1] += (c * self.eps) * (u - self.a1 * v - self.a0)
        post = f * self._keep
        post += src[:, :, None, :]
        b = f.shape[0]
        return post.reshape(b, 2, -1)[:, :, self._stream].reshape(f.shape)
