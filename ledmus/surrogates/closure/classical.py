"""Classical closures: Euler (``q = 0``) and Navier–Stokes of the 1V BGK model, and
Navier–Stokes of the 2-D-velocity Boltzmann gas (:class:`NavierStokes2V`, at the end).

Kinetic model (1-D in x, one velocity ``v``): ``∂t f + v ∂x f = (M[f] - f)/τ`` with
``τ = ε`` (the Knudsen number ``kn``) and the Maxwellian ::

    M = ρ/√(2πT) exp(-(v - u)²/(2T)),      ρ = ∫f,  ρu = ∫vf,  E = ∫v²/2 f = ρu²/2 + ρT/2.

Gaussian moments (``c = v - u``): ``∫M = ρ``, ``∫c²M = ρT``, ``∫c⁴M = 3ρT²``,
``∫c⁶M = 15ρT³``, odd ones vanish.  The moment equations are
``∂tρ + ∂x(ρu) = 0``, ``∂t(ρu) + ∂x(ρu² + ∫c²f) = 0``,
``∂tE + ∂x((E + p)u + q) = 0`` with ``p = ρT`` and ``q = ½∫c³f``.

**No viscous stress in 1V.**  The second central moment ``∫c²f`` equals ``ρT`` for every
``f`` because ``T`` is *defined* by it (``E`` is a collision invariant shared by ``f``
and ``M``); there is no traceless part of a 1×1 stress tensor, so the momentum flux
``ρu² + p`` is closed exactly at every Knudsen number.  (It is also visible below: every
``∂x u`` term of ``D ln M`` cancels, so ``f1`` has no even part in ``c``.)

**Chapman–Enskog, first order.**  ``f = M + f1`` with ``f1 = -τ (∂t + v∂x) M``, where
``∂t`` of ``(ρ, u, T)`` is replaced by the Euler equations (γ = 3, ``c_v = 1/2``)::

    D ρ = -ρ ∂x u,   D u = -∂x(ρT)/ρ,   D T = -2T ∂x u,        D = ∂t + u ∂x.

With ``ln M = ln ρ - ½ ln(2πT) - c²/(2T)`` and ``∂t + v∂x = D + c ∂x``::

    (∂t + v∂x) ln M = Dρ/ρ + c∂xρ/ρ - (DT + c∂xT)/(2T)
                      + (c/T)(Du + c∂xu) + c²(DT + c∂xT)/(2T²)
                    = -∂xu + c∂xρ/ρ + ∂xu - c∂xT/(2T) - c∂xρ/ρ - c∂xT/T
                      + c²∂xu/T - c²∂xu/T + c³∂xT/(2T²)
                    = (∂xT/(2T)) (c³/T - 3c)

(all ``∂xu`` and ``∂xρ`` terms cancel; checked with sympy).  Hence
``f1 = -τ M (∂xT/(2T)) (c³/T - 3c)``: ``∫f1 = ∫c f1 = ∫c²f1 = 0`` (compatibility) and ::

    q = ½ ∫ c³ f1 dv = -τ ∂xT/(4T) (∫c⁶M/T - 3∫c⁴M) = -τ ∂xT/(4T) (15ρT² - 9ρT²)
      = -(3/2) τ ρ T ∂xT,       i.e.   q = -κ ∂xT,   κ = (3/2) τ ρ T = c_p τ p,

with ``c_p = γ/(γ-1) = 3/2`` (Prandtl number 1, as for BGK in 3V where ``κ = (5/2)τp``).
The thermal diffusivity is ``χ = κ/(ρ c_v) = 3τT``.  Linearised about ``(ρ0, 0, T0)``,
a mode ``exp(ikx + st)`` satisfies ``(s + χk²)(s² + k²T0) + 2k²T0 s = 0``, i.e.
``s³ + χk²s² + 3k²T0 s + χk⁴T0 = 0`` (see the tests): the entropy mode decays at
``≈ χk²/γ``, not ``χk²``, because a temperature wave at fixed density couples to sound.
"""

from __future__ import annotations

import math

import numpy as np

from .fv import MomentClosure, primitive

KAPPA_COEFF = 1.5
"""``κ = KAPPA_COEFF · τ ρ T`` for the 1V BGK model (derivation above)."""
GAMMA_2V = 2.0
"""Adiabatic exponent of the 2-D-velocity gas (``E = ρu²/2 + ρT``)."""


class Euler(MomentClosure):
    """Euler closure ``q = 0`` (the ``ε → 0`` limit); ``gamma`` defaults to the 1V value 3."""

    def __init__(self, gamma: float = 3.0) -> None:
        gamma = float(gamma)
        if not (math.isfinite(gamma) and gamma > 1.0):
            raise ValueError(f"gamma must be finite and > 1, got {gamma!r}")
        self.gamma = gamma

    def __repr__(self) -> str:
        return f"Euler(gamma={self.gamma!r})"


class NavierStokes(MomentClosure):
    """Navier–Stokes closure of the 1V BGK model: ``q = -κ ∂xT``, ``κ = (3/2) kn ρ T``.

    ``kn``: relaxation time ``τ = ε`` (> 0), a float or one value per ensemble member,
    shape ``(B,)``.  The face flux uses ``κ`` at the mean of the two adjacent cells and
    ``∂xT = (T_right - T_left)/dx`` (second order at the face); ``diffusivity`` returns
    ``χ = κ/(ρ c_v) = 3 kn T`` for the parabolic step limit ``dt ≤ cfl dx²/(2χ)``.
    """

    gamma = 3.0

    def __init__(self, kn) -> None:
        kn_arr = np.asarray(kn, dtype=np.float64)
        if kn_arr.ndim > 1 or not np.all(np.isfinite(kn_arr)) or np.any(kn_arr <= 0):
            raise ValueError(f"kn must be finite and > 0 (a float or shape (B,)), got {kn!r}")
        self.kn = float(kn_arr) if kn_arr.ndim == 0 else kn_arr

    def _tau(self, ndim: int):
        """``kn`` broadcastable against a ``(B, m)`` array."""
        return self.kn if np.ndim(self.kn) == 0 else self.kn.reshape(-1, *([1] * (ndim - 1)))

    def conductivity(self, rho: np.ndarray, T: np.ndarray) -> np.ndarray:
        """``κ = (3/2) kn ρ T``; ``rho``, ``T``: ``(B, m)``."""
        return KAPPA_COEFF * self._tau(rho.ndim) * rho * T

    def diffusive_flux(self, Q_left: np.ndarray, Q_right: np.ndarray, dx: float) -> np.ndarray:
        """Face flux ``(0, 0, q)``, ``q = -κ̄ (T_right - T_left)/dx``; shape ``(B, 3, nf)``."""
        rl, _, tl = primitive(Q_left, self.gamma)
        rr, _, tr = primitive(Q_right, self.gamma)
        kappa = 0.5 * (self.conductivity(rl, tl) + self.conductivity(rr, tr))
        out = np.zeros_like(Q_left)
        out[:, 2] = -kappa * (tr - tl) / dx
        return out

    def diffusivity(self, Q: np.ndarray) -> np.ndarray:
        """``χ = κ/(ρ c_v) = 2κ/ρ = 3 kn T``, shape ``(B, m)``."""
        rho, _, T = primitive(Q, self.gamma)
        return self.conductivity(rho, T) / (rho / (self.gamma - 1.0))

    def __repr__(self) -> str:
        return f"NavierStokes(kn={self.kn!r})"


def relaxation_rates(solver, delta: float = 1e-4) -> tuple[float, float]:
    """``(λ_σ, λ_q)``: the relaxation rates, in units of ``ν = ρ/ε``, of the stress mode
    ``φ = ξ_x² - ξ_y²`` and the heat-flux mode ``φ = ξ_x(|ξ|² - 4)`` under the collision
    operator of ``solver`` (a :class:`~ledmus.solvers.boltzmann.Boltzmann`),
    ``λ = -⟨φ, Q(M + δMφ)⟩/(δ ρ ⟨φ, Mφ⟩)`` at ``ρ = T = 1``, ``u = 0``."""
    v = solver.v
    vx, vy = np.meshgrid(v, v, indexing="ij")
    M = solver.velocity_maxwellian(1.0, 0.0, 0.0, 1.0)
    out = []
    for phi in (vx * vx - vy * vy, vx * (vx * vx + vy * vy - 4.0)):
        Q = solver.collision((M + delta * M * phi)[None])[0]
        out.append(float(-(phi * Q).sum() / (delta * (phi * phi * M).sum())))
    return out[0], out[1]


class NavierStokes2V(NavierStokes):
    """Navier–Stokes closure of the 2-D-velocity Boltzmann gas (γ = 2, Maxwell molecules).

    Chapman–Enskog: ``g = -(ε/(ρλ)) DM`` per eigenmode, with ``DM/M ⊃ ½(ξ_x² - ξ_y²)∂xu
    + ξ_x(|ξ|² - 4)∂x√T``; so ``σ = ∫c_x² g = -(εT/λ_σ)(⟨ξ_x⁴⟩ - ⟨ξ_x²ξ_y²⟩)/2 ∂xu =
    -(εT/λ_σ)∂xu`` and ``q = -(ε/λ_q)T^{3/2}(⟨ξ_x²|ξ|⁴⟩/2 - 2⟨ξ_x²|ξ|²⟩)∂x√T = -(2εT/λ_q)∂xT``
    (Gaussian moments 3, 1, 24, 4).  ``kn``: ``ε``, a float or ``(B,)`` (checked as by
    :class:`NavierStokes`); ``rates``: ``(λ_σ, λ_q)`` of :func:`relaxation_rates`.  Face
    fluxes from the two adjacent cells."""

    gamma = GAMMA_2V

    def __init__(self, kn, rates: tuple[float, float]) -> None:
        super().__init__(kn)
        self.lam_s, self.lam_q = (float(r) for r in rates)

    def viscosity(self, T: np.ndarray) -> np.ndarray:
        """``μ = εT/λ_σ``; ``T``: ``(B, m)``."""
        return self._tau(T.ndim) * T / self.lam_s

    def conductivity(self, rho: np.ndarray, T: np.ndarray) -> np.ndarray:
        """``κ = 2εT/λ_q`` (independent of ``ρ`` for Maxwell molecules); ``T``: ``(B, m)``."""
        return 2.0 * self._tau(T.ndim) * T / self.lam_q

    def diffusive_flux(self, Q_left: np.ndarray, Q_right: np.ndarray, dx: float) -> np.ndarray:
        """Face flux ``(0, σ, σu + q)``, ``σ = -μ̄ ∂xu``, ``q = -κ̄ ∂xT`` with ``μ``, ``κ`` at
        the mean temperature of the two cells."""
        rl, ul, tl = primitive(Q_left, self.gamma)
        rr, ur, tr = primitive(Q_right, self.gamma)
        tm, um = 0.5 * (tl + tr), 0.5 * (ul + ur)
        mu, kappa = self.viscosity(tm), self.conductivity(0.5 * (rl + rr), tm)
        sigma = -mu * (ur - ul) / dx
        out = np.zeros_like(Q_left)
        out[:, 1] = sigma
        out[:, 2] = sigma * um - kappa * (tr - tl) / dx
        return out

    def diffusivity(self, Q: np.ndarray) -> np.ndarray:
        """The larger of ``μ/ρ`` and ``κ/(ρ c_v)`` (``c_v = 1``), shape ``(B, m)``."""
        rho, _, T = primitive(Q, self.gamma)
        return self._tau(rho.ndim) * T / rho * max(1.0 / self.lam_s, 2.0 / self.lam_q)

    def __repr__(self) -> str:
        return f"NavierStokes2V(kn={self.kn!r})"
