"""Machine-learned moment closure of the 2-D-velocity Boltzmann gas (Maxwell molecules),
with Galilean-invariant generalised moments (W. E's concurrent-learning lecture, §5).

**Kinetic model** (:mod:`ledmus.solvers.boltzmann`): ``f_t + v_x f_x = Q(f)/ε``, ``v = (v_x,
v_y)``, collision frequency ``ν = ρ/ε``; moments ``ρ``, ``ρu``, ``E = ρu²/2 + ρT`` (``T``
per degree of freedom, ``d = 2``, ``γ = 2``).  The closure is written for data with
``u_y = 0`` and ``f`` even in ``v_y`` (every named initial condition; the equation keeps
it), so the weight functions are even in ``ξ_y``.

**Moments.**  ``ξ = ((v_x - u)/√T, v_y/√T)``, ``g = f - M[f]``, and the learned weight
functions ``w(ξ) ∈ R^M`` (an MLP of ``(ξ_x, ξ_y²)``, made orthogonal under the standard
2-D normal density to the collision invariants ``1, ξ_x, |ξ|² - 2`` and scaled to
``⟨w_k²⟩ = 1``)::

    W = (1/ρ) ∫ w(ξ) g dv            (dimensionless; invariant under x-boosts and scaling)

so ``W`` of every Maxwellian is 0 and, because ``ξ`` is the peculiar velocity in thermal
units, a state boosted by ``U₀`` has the same ``W`` (Galilean invariance by
construction; the tests check it to rounding).

**Moment system** (``Q = (ρ, ρu, E, ρW_1..ρW_M)``; :class:`~.fv.FVSolver` with
``time_stepper="ars222"``)::

    ∂t ρ + ∂x ρu = 0
    ∂t ρu + ∂x (ρu² + ρT + σ) = 0,                 σ = ρT σ̃(W)
    ∂t E + ∂x ((E + ρT + σ)u + q) = 0,             q = ρT^{3/2} q̃(W)
    ∂t ρW + ∂x (ρuW + ρ√T g̃) = (ρ²/ε) ŝ(W) - ρ (B ∂xu + A ∂x√T)
                              + ρ (a₀ y₀ - ∂xu y₁ + b y₁₂ - c y₃)

**Derivation** (``D = ∂t + v_x ∂x``): ``∂t(ρW) + ∂x ∫v_x w g dv = ∫w Q(f)/ε dv - ∫w DM dv
+ ∫∇w·Dξ g dv``.  With the exact moment equations above,

- flux: ``∫ v_x w g dv = ρuW + ρ√T g̃``, ``g̃ = (1/ρ)∫ξ_x w g dv``;
- collisions: for Maxwell molecules ``Q`` is quadratic and ``ν ∝ ρ``, so ``(1/ε)∫wQ(f)dv
  = (ρ²/ε) ŝ``, ``ŝ = (1/ρ²)∫w Q(f) dv`` a function of the shape of ``f`` alone; learned
  as ``ŝ(W) = -Λ W + C(W, W)``: a linear relaxation ``Λ = P diag(λ) P⁻¹`` (``λ > 0``)
  and a symmetric quadratic form ``C`` (the bilinear gain/loss of ``g`` with itself);
- equilibrium forcing: ``-∫w DM dv = -ρ(B ∂xu + A ∂x√T)`` with ``B = ⟨w ξ_x²⟩`` (the
  stress mode, absent in 1V) and ``A = ⟨w ξ_x|ξ|²⟩`` (the heat-flux mode); every other
  term multiplies a collision invariant, to which ``w`` is orthogonal;
- frame change: ``Dξ_x = a₀ + (b - ∂xu) ξ_x - c ξ_x²``, ``Dξ_y = b ξ_y - c ξ_x ξ_y``,
  ``a₀ = ∂x(ρT + σ)/(ρ√T)``, ``b = ((ρT + σ)∂xu + ∂xq)/(2ρT)``, ``c = ∂x√T``, so
  ``∫∇w·Dξ g dv = ρ(a₀y₀ - ∂xu y₁ + b y₁₂ - c y₃)`` with ``y₀ = (1/ρ)∫∂_x w g``, ``y₁ =
  (1/ρ)∫ξ_x∂_x w g``, ``y₁₂ = (1/ρ)∫ξ·∇w g``, ``y₃ = (1/ρ)∫ξ_x ξ·∇w g``.

Learned (dimensionless) functions of ``(W, log10(ε/ρ))`` — ``ε/ρ`` is the local
collision time: ``σ̃``, ``q̃``, ``g̃`` and ``y = (y₀, y₁, y₁₂, y₃)``, one MLP ``h`` with
``s(κ)[h(Ŵ, κ) - h(0, κ)]``, ``Ŵ = W/s(κ)``, ``s`` of :func:`.ml.eps_scale` (so all
vanish at ``W = 0``: the Euler limit is exact there); ``ŝ`` depends on ``W`` only.

**Stiff source.**  ``-(ρ/ε) Λ (ρW)`` is implicit in the IMEX step (``(I + aρΛ/ε)⁻¹`` per
cell by the eigenvectors ``P``: :meth:`BoltzmannMLClosure.implicit`), so ``ε = 1e-3``
does not limit the step; at small ``ε`` the scheme gives ``ρW ≈ -(ε/ρ)Λ⁻¹ρ(B∂xu +
A∂x√T)``, the Navier–Stokes moments.  The quadratic part is explicit (its rate is
``(ρ/ε)|2C(W, ·)| ~ |Ŵ|``, not stiff, since ``W ~ ε/ρ`` there).

The training targets (measured on ``f``) and the loss are in :mod:`.train_boltzmann`.

The Navier–Stokes baseline of this gas is :class:`.classical.NavierStokes2V`.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import nn

from .classical import GAMMA_2V
from .fv import MomentClosure, primitive
from .ml import _apply, _mlp, _numpy_layers, centred_ddx, eps_scale, spec_with_defaults

GAMMA = GAMMA_2V
SPEC_DEFAULTS: dict[str, Any] = {
    "n_moments": 9,  # M (the seed's W ∈ R⁹)
    "width": 32,  # hidden width of w(ξ)
    "depth": 2,  # hidden layers of w(ξ)
    "closure_width": 48,  # hidden width of h(Ŵ, log10 ε/ρ)
    "closure_depth": 2,  # hidden layers of h
    "n_quad": 24,  # Gauss-Hermite nodes per axis of the ⟨·⟩ quadrature
    "eps_ref": 0.1,  # s(κ) = κ/(1 + κ/eps_ref)
    "parity": True,  # reflection-equivariant: w even or odd in ξ_x, h and (Λ, C) to match
}
_INT_FIELDS = ("n_moments", "width", "depth", "closure_width", "closure_depth", "n_quad")


def check_spec(spec: dict[str, Any] | None) -> dict[str, Any]:
    """The full spec (defaults filled in); ``ValueError`` naming a bad or unknown field."""
    minimum = {name: 8 if name == "n_quad" else 1 for name in _INT_FIELDS}
    out = spec_with_defaults(spec, SPEC_DEFAULTS, minimum)
    if not isinstance(out["parity"], (bool, np.bool_)):
        raise ValueError(f"spec field parity must be true or false, got {out['parity']!r}")
    out["parity"] = bool(out["parity"])
    return out


def _invariants(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The collision invariants ``1, ξ_x, |ξ|² - 2`` (``⟨·²⟩ = 1, 1, 4``), ``(..., 3)``."""
    return torch.stack([torch.ones_like(x), x, x * x + y * y - 2.0], -1)


_INV_NORM = (1.0, 1.0, 4.0)


class BoltzmannMomentNet(nn.Module):
    """Weight functions ``w(ξ)``, closure network ``h`` and collision model ``(Λ, C)``."""

    kind = "closure_boltzmann"
    system = "boltzmann"

    def __init__(self, spec: dict[str, Any] | None = None) -> None:
        super().__init__()
        self.spec = check_spec(spec)
        s = self.spec
        M = self.M = s["n_moments"]
        self.wnet = _mlp(2, s["width"], s["depth"], M)
        self.hnet = _mlp(M + 1, s["closure_width"], s["closure_depth"], 2 + 5 * M)
        self.rate_raw = nn.Parameter(torch.zeros(M))  # λ = softplus(rate_raw) + 1e-3
        self.eig = nn.Parameter(torch.zeros(M, M))  # P = I + eig
        self.quad = nn.Parameter(torch.zeros(M, M, M))  # C, symmetrised in its last two
        # parity p_k of w_k under ξ_x -> -ξ_x (the last M // 2 odd), of the outputs of h
        # (σ̃ even, q̃ odd, g̃ and y₀, y₃ opposite to w, y₁ and y₁₂ as w), and the masks
        # that keep Λ and C reflection-equivariant (all ones without parity)
        p = torch.ones(M, dtype=torch.float64)
        if s["parity"]:
            p[M - M // 2 :] = -1.0
        q = torch.cat([p.new_tensor([1.0, -1.0]), -p, -p, p, p, -p])
        self.register_buffer("parity_w", p, persistent=False)
        self.register_buffer("parity_out", q, persistent=False)
        self.register_buffer("mask_eig", (p[:, None] == p[None, :]).double(), persistent=False)
        mask_c = (p[:, None, None] == p[None, :, None] * p[None, None, :]).double()
        self.register_buffer("mask_quad", mask_c, persistent=False)
        x, w = np.polynomial.hermite_e.hermegauss(s["n_quad"])  # weight e^{-x²/2}
        w = w / math.sqrt(2.0 * math.pi)
        gx, gy = np.meshgrid(x, x, indexing="ij")
        self.register_buffer("quad_x", torch.from_numpy(gx.ravel()), persistent=False)
        self.register_buffer("quad_y", torch.from_numpy(gy.ravel()), persistent=False)
        self.register_buffer("quad_w", torch.from_numpy(np.outer(w, w).ravel()), persistent=False)

    @property
    def dtype(self) -> torch.dtype:
        return self.wnet[0].weight.dtype

    # ------------------------------------------------------------------ weight functions
    def _raw(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Raw ``w`` and its derivatives in ``ξ_x`` and ``ξ_y``: the MLP of ``(ξ_x,
        ξ_y²)``, or with ``parity`` of ``(ξ_x², ξ_y²)``, times ``ξ_x`` for the odd ones."""
        par = self.spec["parity"]
        h = torch.stack([x * x if par else x, y * y], -1)
        dx = torch.zeros_like(h)
        dx[..., 0] = 2.0 * x if par else 1.0
        dy = torch.zeros_like(h)
        dy[..., 1] = 2.0 * y
        for layer in self.wnet:
            if isinstance(layer, nn.Linear):
                h, dx, dy = layer(h), dx @ layer.weight.T, dy @ layer.weight.T
            else:
                h = torch.tanh(h)
                d = 1.0 - h * h
                dx, dy = dx * d, dy * d
        if par:
            odd = self.parity_w < 0
            xe = x[..., None]
            return (
                torch.where(odd, xe * h, h),
                torch.where(odd, h + xe * dx, dx),
                torch.where(odd, xe * dy, dy),
            )
        return h, dx, dy

    def _stats(self) -> tuple[torch.Tensor, ...]:
        """``(c (M, 3), n (M,), B (M,), A (M,))``: projection of the raw ``w`` on the
        invariants, the norms, ``B = ⟨w ξ_x²⟩`` and ``A = ⟨w ξ_x|ξ|²⟩`` of the normalised ``w``."""
        dt = self.dtype
        x, y, qw = self.quad_x.to(dt), self.quad_y.to(dt), self.quad_w.to(dt)
        raw = self._raw(x, y)[0]  # (nq, M)
        inv = _invariants(x, y)  # (nq, 3)
        c = torch.einsum("q,qm,qk->mk", qw, raw, inv) / inv.new_tensor(_INV_NORM)
        w = raw - inv @ c.T
        n = torch.sqrt((qw[:, None] * w * w).sum(0))
        w = w / n
        B = (qw[:, None] * w * (x * x)[:, None]).sum(0)
        A = (qw[:, None] * w * (x * (x * x + y * y))[:, None]).sum(0)
        return c, n, B, A

    def weights(self, x: torch.Tensor, y: torch.Tensor, stats=None) -> tuple[torch.Tensor, ...]:
        """``(w, ∂_x w, ∂_y w)`` at ``ξ = (x, y)`` of any shape; each ``(*x.shape, M)``."""
        c, n = (self._stats() if stats is None else stats)[:2]
        raw, dx, dy = self._raw(x, y)
        inv = _invariants(x, y)
        zero = torch.zeros_like(x)
        dinv_x = torch.stack([zero, torch.ones_like(x), 2.0 * x], -1)
        dinv_y = torch.stack([zero, zero, 2.0 * y], -1)
        return (raw - inv @ c.T) / n, (dx - dinv_x @ c.T) / n, (dy - dinv_y @ c.T) / n

    def weight_values(self, x: torch.Tensor, y: torch.Tensor, stats=None) -> torch.Tensor:
        """``w`` at ``ξ = (x, y)`` of any shape, ``(*x.shape, M)``, without the derivatives
        of :meth:`weights` (the restriction and the lift of a state need only the values)."""
        c, n = (self._stats() if stats is None else stats)[:2]
        par = self.spec["parity"]
        h = torch.stack([x * x if par else x, y * y], -1)
        for layer in self.wnet:
            h = layer(h)
        if par:
            h = torch.where(self.parity_w < 0, x[..., None] * h, h)
        return (h - _invariants(x, y) @ c.T) / n

    def forcing(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(B, A)`` ``(M,)`` each: the equilibrium forcing ``-ρ(B∂xu + A∂x√T)``."""
        return self._stats()[2:]

    def encode(self, x: torch.Tensor, y: torch.Tensor, gdv: torch.Tensor, qdv=None):
        """``(W, g̃, y, ŝ)`` from the nodes ``ξ = (x, y)`` and ``gdv = (f - M)h²/ρ``, each
        ``(N, nv)``: ``W`` ``(N, M)``, the flux target ``g̃`` ``(N, M)``, the frame-change
        targets ``(y₀, y₁, y₁₂, y₃)`` ``(N, 4, M)`` and, given ``qdv = Q(f)h²/ρ²``, the
        collision target ``ŝ = Σ w qdv`` ``(N, M)`` (else None)."""
        w, wx, wy = self.weights(x, y)
        radial = x[..., None] * wx + y[..., None] * wy  # ξ·∇w
        W = torch.einsum("njm,nj->nm", w, gdv)
        g = torch.einsum("njm,nj->nm", w, x * gdv)
        ys = torch.stack(
            [
                torch.einsum("njm,nj->nm", wx, gdv),
                torch.einsum("njm,nj->nm", wx, x * gdv),
                torch.einsum("njm,nj->nm", radial, gdv),
                torch.einsum("njm,nj->nm", radial, x * gdv),
            ],
            1,
        )
        s = None if qdv is None else torch.einsum("njm,nj->nm", w, qdv)
        return W, g, ys, s

    # ------------------------------------------------------------------------- closure
    def rates(self) -> torch.Tensor:
        """``λ`` ``(M,)``: the eigenvalues of ``Λ`` (> 0)."""
        return nn.functional.softplus(self.rate_raw) + 1e-3

    def eigenvectors(self) -> torch.Tensor:
        """``P = I + eig`` ``(M, M)`` (block-diagonal by parity)."""
        return torch.eye(self.M, dtype=self.dtype) + self.eig * self.mask_eig.to(self.dtype)

    def relaxation(self) -> torch.Tensor:
        """``Λ = P diag(λ) P⁻¹`` ``(M, M)``."""
        P = self.eigenvectors()
        return P @ torch.diag(self.rates()) @ torch.linalg.inv(P)

    def quadratic(self) -> torch.Tensor:
        """``C`` ``(M, M, M)``, symmetric in its last two indices (``C_kij = 0`` unless
        ``p_k = p_i p_j``)."""
        return 0.5 * (self.quad + self.quad.transpose(1, 2)) * self.mask_quad.to(self.dtype)

    def collision(self, W: torch.Tensor) -> torch.Tensor:
        """``ŝ(W) = -ΛW + C(W, W)`` ``(N, M)``."""
        return -W @ self.relaxation().T + torch.einsum("kij,ni,nj->nk", self.quadratic(), W, W)

    def _h(self, Wn: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
        """``h(Ŵ, κ)``, with ``parity`` symmetrised: ``½[h(Ŵ) + q h(PŴ)]`` (``P``, ``q``
        the parities of the moments and the outputs), so reflected states give reflected
        terms exactly."""
        out = self.hnet(torch.cat([Wn, e], 1))
        if not self.spec["parity"]:
            return out
        q = self.parity_out.to(out.dtype)
        flip = self.hnet(torch.cat([Wn * self.parity_w.to(Wn.dtype), e], 1))
        return 0.5 * (out + q * flip)

    def baseline(self, log_kn: torch.Tensor) -> torch.Tensor:
        """``h(0, κ)`` ``(N, 2 + 5M)`` for ``log10 κ`` ``(N,)``."""
        e = log_kn[:, None]
        return self._h(e.new_zeros(e.shape[0], self.M), e)

    def forward(self, W: torch.Tensor, log_kn: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """``(σ̃, q̃, g̃, y)``: ``(N,)``, ``(N,)``, ``(N, M)``, ``(N, 4, M)`` from ``W``
        ``(N, M)`` and ``log10(ε/ρ)`` ``(N,)``; all vanish at ``W = 0``."""
        s = eps_scale(log_kn, self.spec["eps_ref"])[:, None]
        e = log_kn[:, None]
        out = s * (self._h(W / s, e) - self.baseline(log_kn))
        M = self.M
        return out[:, 0], out[:, 1], out[:, 2 : 2 + M], out[:, 2 + M :].reshape(-1, 4, M)


# --------------------------------------------------------------------- moment system
class BoltzmannMLClosure(MomentClosure):
    """The learned moment system as a :class:`~.fv.MomentClosure` (numpy in and out; a
    float64 net runs as numpy matrix products).

    ``kn``: ``ε`` (> 0): a float, one value per member ``(B,)``, or one per cell ``(nx,)``
    / ``(B, nx)`` with ``nx`` given (the ``ε(x)`` case).  The closure sees states of the
    ``nx`` cells, of ``nx + 2`` cells (one ghost each side: the solver's source) and of
    the ``2(nx + 1)`` face states (left states then right states), and gives each the
    ``ε`` of the cell it came from (ghosts: the end cells, or the other end on a periodic
    box).  ``length``, ``bc``: the box, for the centred differences of the source when
    the solver's ``ddx`` is not given.  Wave speeds ``u ∓ speed_factor √(γT)`` (default
    1.8: the W block is not analysed).  Use with ``FVSolver(time_stepper="ars222")``.
    """

    gamma = GAMMA

    def __init__(
        self,
        net: BoltzmannMomentNet,
        kn,
        *,
        nx: int | None = None,
        length: float = 1.0,
        bc: str = "periodic",
        speed_factor: float = 1.8,
    ) -> None:
        kn_arr = np.asarray(kn, dtype=np.float64)
        if kn_arr.ndim > 2 or not np.all(np.isfinite(kn_arr)) or np.any(kn_arr <= 0):
            raise ValueError(
                f"kn must be finite and > 0 (a float, (B,), (nx,) or (B, nx)), got {kn!r}"
            )
        per_cell = kn_arr.ndim == 2 or (kn_arr.ndim == 1 and nx is not None and kn_arr.size == nx)
        if kn_arr.ndim == 2 and (nx is None or kn_arr.shape[1] != nx):
            raise ValueError(f"kn of shape {kn_arr.shape} needs nx = {kn_arr.shape[1]}")
        if bc not in ("periodic", "outflow"):
            raise ValueError(f"bc must be periodic or outflow, got {bc!r}")
        if not (math.isfinite(speed_factor) and speed_factor >= 1):
            raise ValueError(f"speed_factor must be >= 1, got {speed_factor!r}")
        self.net = net.eval()
        self.nx, self.length, self.bc, self.speed_factor = (
            nx,
            float(length),
            bc,
            float(speed_factor),
        )
        self.per_cell = per_cell
        self.kn = kn_arr.reshape(1, -1) if per_cell and kn_arr.ndim == 1 else kn_arr
        self.M = net.M
        self.n_moments = 3 + net.M
        with torch.no_grad():
            B, A = net.forcing()
            self.B, self.A = B.double().numpy(), A.double().numpy()
            P = net.eigenvectors()
            self.P = P.double().numpy()
            self.Pinv = torch.linalg.inv(P).double().numpy()
            self.lam = net.rates().double().numpy()
            self.C = net.quadratic().double().numpy()
        # ‖2C(W, ·)‖_F² = 4 Wᵀ G W with G_ii' = Σ_kj C_kij C_ki'j (see :meth:`stiffness`)
        self._gram = np.einsum("kij,kpj->ip", self.C, self.C)
        self._layers = _numpy_layers(net.hnet)
        self.parity = (
            (net.parity_w.double().numpy(), net.parity_out.double().numpy())
            if net.spec["parity"]
            else None
        )

    # ---------------------------------------------------------------- ε of each point
    def bind(self, cells: Any) -> None:
        """The cell index ``(m,)`` of each point of the following calls (None: back to the
        layouts of the class docstring).  :meth:`~.fv.FVSolver.advance_runs` binds the
        points of runs of cells with their ghosts, whose layouts those do not cover; a
        closure with one ``ε`` ignores it."""
        self._bound = None if cells is None else np.asarray(cells, dtype=int)

    def _kn(self, B: int, m: int) -> np.ndarray:
        """``ε`` ``(B, m)`` of the ``m`` points of a call (see the class docstring)."""
        bound = getattr(self, "_bound", None)
        if self.per_cell and bound is not None:
            if bound.size != m:
                raise ValueError(f"per-cell kn: {bound.size} bound cells for a call of {m} points")
            return np.broadcast_to(self.kn[:, bound], (B, m))
        if not self.per_cell:
            k = self.kn.reshape(-1, 1) if self.kn.ndim else self.kn
            return np.broadcast_to(k, (B, m))
        k, nx = self.kn, self.nx
        wrap = self.bc == "periodic"
        left = k[:, -1:] if wrap else k[:, :1]
        right = k[:, :1] if wrap else k[:, -1:]
        if m == nx:
            pts = k
        elif m == nx + 2:
            pts = np.concatenate([left, k, right], 1)
        elif m == 2 * (nx + 1):
            pts = np.concatenate([left, k, k, right], 1)  # left states, then right states
        else:
            raise ValueError(f"per-cell kn: a call with {m} points fits none of nx={nx} cells")
        return np.broadcast_to(pts, (B, m))

    def closure_terms(self, Q: np.ndarray) -> tuple[np.ndarray, ...]:
        """``(σ̃, q̃, g̃, y)`` of the states ``Q`` ``(B, 3+M, m)``: ``(B, m)``, ``(B, m)``,
        ``(B, M, m)``, ``(B, 4, M, m)``."""
        B, _, m = Q.shape
        rho = Q[:, 0]
        W = np.moveaxis(Q[:, 3:] / rho[:, None], 1, 2).reshape(-1, self.M)
        log_kn = np.log10(self._kn(B, m) / rho).reshape(-1)
        M = self.M
        if self._layers is not None:
            with torch.no_grad():
                s = eps_scale(torch.from_numpy(log_kn), self.net.spec["eps_ref"]).numpy()
            n, e = W.shape[0], log_kn[:, None]
            Wn = W / s[:, None]
            rows = [Wn, np.zeros_like(W)]
            if self.parity is not None:
                rows.append(Wn * self.parity[0])
            h = _apply(self._layers, np.concatenate([np.concatenate([r, e], 1) for r in rows]))
            if self.parity is None:
                out = s[:, None] * (h[:n] - h[n : 2 * n])
            else:  # ½[h(Ŵ) + q h(PŴ)] - ½[h(0) + q h(0)]
                q = self.parity[1]
                out = s[:, None] * (0.5 * (h[:n] + q * h[2 * n :]) - 0.5 * (1 + q) * h[n : 2 * n])
        else:
            dt = self.net.dtype
            with torch.no_grad():
                terms = self.net(torch.from_numpy(W).to(dt), torch.from_numpy(log_kn).to(dt))
            out = torch.cat([t.reshape(W.shape[0], -1) for t in terms], 1).double().numpy()
        sig = out[:, 0].reshape(B, m)
        q = out[:, 1].reshape(B, m)
        g = np.moveaxis(out[:, 2 : 2 + M].reshape(B, m, M), 2, 1)
        y = np.moveaxis(out[:, 2 + M :].reshape(B, m, 4, M), 1, 3)
        return sig, q, g, y

    def closure_flux(self, Q: np.ndarray) -> np.ndarray:
        rho, u, T = primitive(Q, self.gamma)
        sig, q, g, _ = self.closure_terms(Q)
        out = np.zeros_like(Q)
        stress = rho * T * sig
        out[:, 1] = stress
        out[:, 2] = stress * u + rho * T**1.5 * q
        out[:, 3:] = u[:, None] * Q[:, 3:] + (rho * np.sqrt(T))[:, None] * g
        return out

    def wave_speeds(self, Q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        _, u, T = primitive(Q, self.gamma)
        c = self.speed_factor * np.sqrt(self.gamma * np.maximum(T, 0.0))
        return u - c, u + c

    def _ddx(self, a: np.ndarray) -> np.ndarray:
        return centred_ddx(a, self.length, self.bc)

    def source(self, Q: np.ndarray, ddx=None) -> np.ndarray:
        """The explicit part of the ``ρW`` source ``(B, M, m)``: forcing, frame change and
        the quadratic collision term (the linear relaxation is :meth:`implicit`)."""
        d = self._ddx if ddx is None else ddx
        rho, u, T = primitive(Q, self.gamma)
        sig, q, _, y = self.closure_terms(Q)
        sq = np.sqrt(T)
        p_xx = rho * T * (1.0 + sig)
        du, c = d(u), d(sq)
        a0 = d(p_xx) / (rho * sq)
        b = (p_xx * du + d(rho * T**1.5 * q)) / (2.0 * rho * T)
        frame = a0[:, None] * y[:, 0] - du[:, None] * y[:, 1] + b[:, None] * y[:, 2]
        frame = frame - c[:, None] * y[:, 3]
        force = self.B[None, :, None] * du[:, None] + self.A[None, :, None] * c[:, None]
        W = Q[:, 3:] / rho[:, None]
        quad = np.einsum("kij,bim,bjm->bkm", self.C, W, W)
        kn = self._kn(*rho.shape)
        return rho[:, None] * (frame - force) + (rho * rho / kn)[:, None] * quad

    def implicit(self, R: np.ndarray, a: float) -> np.ndarray:
        """Solve ``F = R + a S(F)`` for the linear relaxation ``S = -(ρ/ε)Λ ρW`` of the W
        rows (the U rows and so ``ρ`` are unchanged): ``ρW = P diag(1/(1 + aρλ/ε)) P⁻¹ ρW_R``."""
        B, _, m = R.shape
        F = R.copy()
        tau = a * R[:, 0] / self._kn(B, m)  # (B, m)
        z = np.einsum("kj,bjm->bkm", self.Pinv, R[:, 3:])
        z = z / (1.0 + tau[:, None] * self.lam[None, :, None])
        F[:, 3:] = np.einsum("kj,bjm->bkm", self.P, z)
        return F

    def stiffness(self, Q: np.ndarray) -> np.ndarray:
        """Rate of the explicit quadratic term ``(ρ²/ε)C(W, W)`` per cell ``(B, m)``: the
        Frobenius norm of its Jacobian ``(ρ/ε)·2C(W, ·)`` in ``ρW``, a bound of its spectral
        radius (colliding flows at ε = 1e-3 with the shipped model: 287/s at most, against the
        transport rate 365/s; the cruder bound ``2‖C‖|W|`` gave 1125/s and a 3 times smaller
        step).  Computed as ``2√(WᵀGW)`` with ``G_ii' = Σ_kj C_kij C_ki'j``, without forming
        the ``M × M`` Jacobian of every cell."""
        rho = Q[:, 0]
        W = Q[:, 3:] / rho[:, None]
        norm2 = np.maximum(np.einsum("bim,ip,bpm->bm", W, self._gram, W), 0.0)
        return 2.0 * np.sqrt(norm2) * rho / self._kn(*rho.shape)

    def __repr__(self) -> str:
        return f"BoltzmannMLClosure(M={self.M}, kn={self.kn!r}, bc={self.bc!r})"


__all__ = ["GAMMA", "SPEC_DEFAULTS", "BoltzmannMLClosure", "BoltzmannMomentNet", "check_spec"]
