"""Machine-learned moment closure of the 1V BGK model (Han, Ma, Ma & E 2019;
W. E's concurrent-learning lecture, §5).

**Moments.**  With ``ξ = (v - u)/√T`` and the learned weight functions ``w(ξ) ∈ R^M``
(a small MLP of ``ξ``), the generalised moments are ::

    W = (1/ρ) ∫ w(ξ) (f - M[f]) dv       (dimensionless; Galilean and scale invariant)

with ``M[f]`` the Maxwellian of ``f`` (on a velocity grid the discrete one): ``W`` of any
Maxwellian is 0 exactly, which is the constant ``(1/ρ)∫ w M dv = ⟨w⟩`` subtracted.
**Normalisation**: ``w`` is the raw MLP output made Gaussian-orthogonal to the Hermite
polynomials ``He0, He1, He2 = 1, ξ, ξ² - 1`` (they see nothing of ``f - M``, whose
first three moments vanish) and scaled to ``⟨w_k²⟩ = 1``, ``⟨·⟩`` the average over the
standard normal density (trapezoid quadrature on ``[-xi_max, xi_max]``).

**Moment system** solved by :class:`~.fv.FVSolver` through :class:`MLMomentClosure`:
state ``Q = (ρ, ρu, E, ρW_1..ρW_M)`` (the W rows are ``ρW``, density-weighted), and ::

    ∂t U + ∂x [F0(U) + (0, 0, q)] = 0,        q = ρ T^{3/2} q̃(W, ε)
    ∂t(ρW) + ∂x [ρuW + ρ√T g̃] = -ρW/ε - A ρ ∂x√T
                               + ρ [y0 ∂x(ρT)/(ρ√T) + y1 ∂xq/(ρT) - y2 ∂x√T]

Derivation, ``g = f - M`` (checked against BGK data to 5e-4, see the tests):
``∂t(ρW) + ∂x∫v w g dv = ∫w(M - f)/ε dv - ∫w (∂t + v∂x)M dv + ∫w'(ξ) g (∂t + v∂x)ξ dv``
with the exact 1V moment equations for ``∂t(ρ, u, T)``.  (i) The BGK source is
*exactly* ``-ρW/ε`` (no network needed).  (ii) The flux ``∫v w g dv = ρuW + ρ√T g̃``,
``g̃ = (1/ρ)∫ξ w g dv``.  (iii) The equilibrium forcing ``-∫w(∂t + v∂x)M dv = -ρA∂x√T``,
``A = ⟨w He3⟩``, ``He3 = ξ³ - 3ξ`` (its ``∂xq`` part multiplies ``⟨w He2⟩ = 0``).
(iv) The frame-change term: ``(∂t + v∂x)ξ = ∂x(ρT)/(ρ√T) + ξ ∂xq/(ρT) - ξ² ∂x√T``
(the ``∂xu`` terms cancel), so it is ``ρ Σ_k y_k a_k`` with ``y_k = (1/ρ)∫ξ^k w'(ξ) g dv``.
The non-conservative gradients of (iii), (iv) are centred differences in
:meth:`MLMomentClosure.source`.  At small ε, ``ρW ≈ -ε ρ A ∂x√T`` and ``q`` is the
Navier–Stokes heat flux ``-(3/2)ερT∂xT`` once ``q̃`` is linear in ``W``.  Learned (all
dimensionless): ``q̃``, ``g̃`` and ``y_0..y_2`` as functions of ``(W, log10 ε)`` only,
one MLP ``h`` with ``(q̃, g̃, y) = s(ε)[h(Ŵ, ε) - h(0, ε)]``, ``Ŵ = W/s(ε)``,
``s(ε) = ε/(1 + ε/eps_ref)`` (``∝ ε`` at small ε, saturating at ``eps_ref``, default
0.1, the time scale of the training data: for ``ε ≫ t`` the nonequilibrium grows like
``t``, not ``ε``), so all vanish at ``W = 0`` **by construction** (the Euler limit
is exact at ``W = 0``; :class:`MLMomentClosure` evaluates ``h(0, ε)`` on one row per
member, not per cell, which leaves a few ulp of ``h`` times ``s(ε)``: the one-row and
many-row batches round differently, 9e-17 for the shipped float64 net, about 1e-9 for a
float32 one); ``F = F0(U) + F̃`` with the exact Euler flux ``F0``.

The decoder ``h(v; U, W)`` (lifting) and the entropy term are in :mod:`~ledmus.surrogates.closure.lift`.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import nn

from .fv import MomentClosure, primitive

SPEC_DEFAULTS: dict[str, Any] = {
    "n_moments": 4,  # M, number of generalised moments W
    "width": 32,  # hidden width of the weight-function MLP w(ξ)
    "depth": 2,  # hidden layers of w(ξ)
    "closure_width": 64,  # hidden width of the closure MLP h(Ŵ, log10 ε)
    "closure_depth": 2,  # hidden layers of h
    "xi_max": 10.0,  # Gaussian quadrature on [-xi_max, xi_max] ...
    "n_quad": 401,  # ... with this many trapezoid nodes
    "eps_ref": 0.1,  # s(ε) = ε/(1 + ε/eps_ref), the scale of W, q̃, g̃, y
}
_INT_FIELDS = ("n_moments", "width", "depth", "closure_width", "closure_depth", "n_quad")


def spec_with_defaults(
    spec: dict[str, Any] | None, defaults: dict[str, Any], int_minimum: dict[str, int]
) -> dict[str, Any]:
    """``spec`` over ``defaults`` with the checks every closure spec shares: no unknown
    field, the integer fields of ``int_minimum`` at least their minimum, ``eps_ref`` a
    finite number > 0 (``ValueError`` naming the field)."""
    spec = dict(spec or {})
    unknown = sorted(set(spec) - set(defaults))
    if unknown:
        raise ValueError(
            f"unknown closure spec field {unknown[0]!r}; allowed: {', '.join(defaults)}"
        )
    out = {**defaults, **spec}
    for name, lo in int_minimum.items():
        v = out[name]
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < lo:
            raise ValueError(f"spec field {name} must be an integer >= {lo}, got {v!r}")
        out[name] = int(v)
    e = out["eps_ref"]
    if isinstance(e, bool) or not isinstance(e, (int, float)) or not (math.isfinite(e) and e > 0):
        raise ValueError(f"spec field eps_ref must be a finite number > 0, got {e!r}")
    out["eps_ref"] = float(e)
    return out


def check_spec(spec: dict[str, Any] | None) -> dict[str, Any]:
    """The full spec (defaults filled in); ``ValueError`` naming a bad or unknown field."""
    minimum = {name: 3 if name == "n_quad" else 1 for name in _INT_FIELDS}
    out = spec_with_defaults(spec, SPEC_DEFAULTS, minimum)
    x = out["xi_max"]
    if isinstance(x, bool) or not isinstance(x, (int, float)) or not (math.isfinite(x) and x >= 4):
        raise ValueError(f"spec field xi_max must be a finite number >= 4, got {x!r}")
    out["xi_max"] = float(x)
    return out


def _mlp(n_in: int, width: int, depth: int, n_out: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    for k in range(depth):
        layers += [nn.Linear(n_in if k == 0 else width, width), nn.Tanh()]
    layers.append(nn.Linear(width, n_out))
    return nn.Sequential(*layers)


def eps_scale(log_eps: torch.Tensor, eps_ref: float = 0.1) -> torch.Tensor:
    """``s(ε) = ε/(1 + ε/eps_ref)``: the size of the nonequilibrium part."""
    return eps_ref * torch.sigmoid(log_eps * math.log(10.0) - math.log(eps_ref))


class MomentNet(nn.Module):
    """Encoder weight functions ``w(ξ)`` and closure network ``h`` (see the module)."""

    kind = "closure"
    system = "bgk"

    def __init__(self, spec: dict[str, Any] | None = None) -> None:
        super().__init__()
        self.spec = check_spec(spec)
        s = self.spec
        self.M = s["n_moments"]
        self.wnet = _mlp(1, s["width"], s["depth"], self.M)
        self.hnet = _mlp(self.M + 1, s["closure_width"], s["closure_depth"], 1 + 4 * self.M)
        xi = torch.linspace(-s["xi_max"], s["xi_max"], s["n_quad"], dtype=torch.float64)
        rho = torch.exp(-0.5 * xi * xi)
        rho[0] = rho[-1] = 0.5 * rho[0]  # trapezoid end weights
        self.register_buffer("quad_xi", xi, persistent=False)
        self.register_buffer("quad_w", rho / rho.sum(), persistent=False)

    # ------------------------------------------------------------------ weight functions
    def _stats(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Projection coefficients ``c`` (M, 3) on He0..He2, norms ``n`` (M,) and
        forcing coefficients ``A = ⟨w He3⟩`` (M,) of the normalised ``w``."""
        xi, qw = self.quad_xi.to(self.dtype), self.quad_w.to(self.dtype)
        raw = self.wnet(xi[:, None])  # (nq, M)
        he = torch.stack([torch.ones_like(xi), xi, xi * xi - 1.0], 1)  # (nq, 3)
        c = (qw[:, None, None] * raw[:, :, None] * he[:, None, :]).sum(0) / torch.tensor(
            [1.0, 1.0, 2.0], dtype=xi.dtype
        )  # ⟨He_k²⟩ = 1, 1, 2
        w = raw - he @ c.T
        n = torch.sqrt((qw[:, None] * w * w).sum(0))
        A = (qw[:, None] * (w / n) * (xi**3 - 3.0 * xi)[:, None]).sum(0)
        return c, n, A

    @property
    def dtype(self) -> torch.dtype:
        return self.wnet[0].weight.dtype

    def _raw(self, xi: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Raw MLP ``w(ξ)`` and its ξ-derivative (forward-mode by hand), ``(*xi.shape, M)``."""
        h, dh = xi[..., None], torch.ones_like(xi)[..., None]
        for layer in self.wnet:
            if isinstance(layer, nn.Linear):
                h, dh = layer(h), dh @ layer.weight.T
            else:
                h = torch.tanh(h)
                dh = dh * (1.0 - h * h)
        return h, dh

    def weights(self, xi: torch.Tensor, stats=None) -> tuple[torch.Tensor, torch.Tensor]:
        """``(w(ξ), w'(ξ))`` for ``ξ`` of any shape; each ``(*xi.shape, M)``."""
        c, n, _ = self._stats() if stats is None else stats
        raw, draw = self._raw(xi)
        he = torch.stack([torch.ones_like(xi), xi, xi * xi - 1.0], -1)
        dhe = torch.stack([torch.zeros_like(xi), torch.ones_like(xi), 2.0 * xi], -1)
        return (raw - he @ c.T) / n, (draw - dhe @ c.T) / n

    def forcing(self) -> torch.Tensor:
        """``A = ⟨w He3⟩`` (M,): the equilibrium forcing ``-A ρ ∂x√T`` of ``ρW``."""
        return self._stats()[2]

    def encode(
        self, xi: torch.Tensor, gdv: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(W, g̃, y)`` from ``ξ_j`` and ``(f_j - M_j) dv/ρ`` ``(N, nv)``: ``W = Σ
        w(ξ_j) g_j dv/ρ`` ``(N, M)``, the exact flux target ``g̃ = Σ ξ_j w(ξ_j) g_j dv/ρ``
        ``(N, M)`` and the exact targets ``y_k = Σ ξ_j^k w'(ξ_j) g_j dv/ρ``, ``k = 0, 1, 2``,
        ``(N, 3, M)`` of the frame-change terms (see the module)."""
        w, dw = self.weights(xi)  # (N, nv, M)
        powers = torch.stack([gdv, xi * gdv, xi * xi * gdv], 1)  # (N, 3, nv)
        return (
            torch.einsum("njm,nj->nm", w, gdv),
            torch.einsum("njm,nj->nm", w, xi * gdv),
            torch.einsum("njm,nkj->nkm", dw, powers),
        )

    # ------------------------------------------------------------------------- closure
    def baseline(self, log_eps: torch.Tensor) -> torch.Tensor:
        """``h(0, ε)`` ``(N, n_out)`` for ``log10 ε`` ``(N,)``: what :meth:`forward`
        subtracts; a caller with few distinct ``ε`` may compute it once and pass it."""
        e = log_eps[:, None]
        return self.hnet(torch.cat([e.new_zeros(e.shape[0], self.M), e], 1))

    def forward(
        self, W: torch.Tensor, log_eps: torch.Tensor, base: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(q̃, g̃, y)``, shapes ``(N,)``, ``(N, M)``, ``(N, 3, M)``, from ``W`` ``(N, M)``
        and ``log10 ε`` ``(N,)``; all vanish at ``W = 0`` by construction.  ``base``:
        :meth:`baseline` of ``log_eps`` (``(N, n_out)`` or broadcastable), else computed."""
        s = eps_scale(log_eps, self.spec["eps_ref"])[:, None]
        e = log_eps[:, None]
        if base is None:
            base = self.baseline(log_eps)
        out = s * (self.hnet(torch.cat([W / s, e], 1)) - base)
        return out[:, 0], out[:, 1 : 1 + self.M], out[:, 1 + self.M :].reshape(-1, 3, self.M)


def centred_ddx(a: np.ndarray, length: float, bc: str) -> np.ndarray:
    """Centred ``∂x`` of ``a`` ``(B, m)`` on ``m`` cells in order on a box of ``length``
    (``dx = length/m``), periodic or zero-gradient (``bc``) at the ends."""
    p = np.pad(a, ((0, 0), (1, 1)), mode="wrap" if bc == "periodic" else "edge")
    return (p[:, 2:] - p[:, :-2]) / (2.0 * length / a.shape[-1])


def _numpy_layers(seq: nn.Sequential) -> list | None:
    """``[(Wᵀ, b) or None (tanh)]`` of a plain float64 Linear/Tanh stack, else None."""
    layers = list(seq)
    if not all(isinstance(m, (nn.Linear, nn.Tanh)) for m in layers):
        return None
    if any(isinstance(m, nn.Linear) and m.weight.dtype != torch.float64 for m in layers):
        return None
    return [
        (m.weight.detach().numpy().T.copy(), m.bias.detach().numpy().copy())
        if isinstance(m, nn.Linear)
        else None
        for m in layers
    ]


#: OpenBLAS runs a product with ``m·n·k`` below this on one thread (its default
#: ``GEMM_MULTITHREAD_THRESHOLD`` 4 × 65536); :func:`_apply` keeps every product under it,
#: so the numpy networks give the same bits whatever ``OMP_NUM_THREADS`` is (a threaded
#: product splits its sums differently: 1e-14 apart, measured)
SERIAL_GEMM = 4 * 65536
#: the rows :func:`_apply` takes through the whole stack at once, so that a chunk's
#: activations (width 64: 256 KiB) stay in the CPU cache from one layer to the next.
#: Layer by layer over a whole batch of 2424 rows (the width-64 Boltzmann closure on four
#: profiles) costs 1.45 µs a row against 0.72 µs chunked; at 1224 rows or fewer the two
#: cost the same to within 7 % (``benchmarks/out/closure_apply.json``)
CHUNK_ROWS = 512


def _matmul_into(a: np.ndarray, w: np.ndarray, out: np.ndarray) -> None:
    """``out = a @ w`` in row blocks small enough to run on one BLAS thread."""
    rows = max(1, (SERIAL_GEMM - 1) // (w.shape[0] * w.shape[1]))
    for i in range(0, a.shape[0], rows):
        np.matmul(a[i : i + rows], w, out=out[i : i + rows])


def _apply(layers: list, h: np.ndarray) -> np.ndarray:
    """The stack on the rows of ``h`` ``(..., n_in)``: :data:`CHUNK_ROWS` rows at a time
    through every layer, each product in row blocks below :data:`SERIAL_GEMM` (so the
    result does not depend on the BLAS thread count)."""
    lead = h.shape[:-1]
    h = h.reshape(-1, h.shape[-1])
    n_out = next((p[0].shape[1] for p in reversed(layers) if p is not None), h.shape[-1])
    out = np.empty((h.shape[0], n_out))
    for i in range(0, h.shape[0], CHUNK_ROWS):
        x, owned = h[i : i + CHUNK_ROWS], False
        for p in layers:
            if p is None:
                x = np.tanh(x, out=x) if owned else np.tanh(x)
            else:
                y = np.empty((x.shape[0], p[0].shape[1]))
                _matmul_into(x, p[0], y)
                y += p[1]
                x = y
            owned = True
        out[i : i + CHUNK_ROWS] = x
    return out.reshape(*lead, n_out)


def numpy_encoder(net: MomentNet) -> Any:
    """``W(ξ, g dv/ρ)`` ``(N, nv), (N, nv) -> (N, M)``: the first output of
    :meth:`MomentNet.encode` in numpy, for a float64 ``net`` with a plain ``w`` stack
    (the weights as they are now: build it again after they change); ``None`` otherwise."""
    layers = _numpy_layers(net.wnet)
    if layers is None:
        return None
    xi_q, qw = net.quad_xi.numpy(), net.quad_w.numpy()

    def he(x: np.ndarray) -> np.ndarray:
        return np.stack([np.ones_like(x), x, x * x - 1.0], -1)

    raw = _apply(layers, xi_q[:, None])  # (nq, M)
    c = (qw[:, None, None] * raw[:, :, None] * he(xi_q)[:, None, :]).sum(0) / np.array(
        [1.0, 1.0, 2.0]
    )
    w_q = raw - he(xi_q) @ c.T
    n = np.sqrt((qw[:, None] * w_q * w_q).sum(0))

    def encode(xi: np.ndarray, gdv: np.ndarray) -> np.ndarray:
        w = (_apply(layers, xi[..., None]) - he(xi) @ c.T) / n  # (N, nv, M)
        return np.einsum("njm,nj->nm", w, gdv)

    return encode


def _numpy_closure(net: MomentNet, kn: np.ndarray) -> Any:
    """The closure network in numpy for a float64 ``net`` whose ``h`` is the plain
    Linear/Tanh stack, with ``s(ε)`` and ``h(0, ε)`` computed once for the fixed ``kn``
    (the torch call costs about 0.1 ms however few cells it gets; this is the same
    arithmetic to rounding); ``None`` otherwise (the torch path)."""
    params = _numpy_layers(net.hnet)
    if params is None:
        return None
    log_eps = np.log10(kn).reshape(-1)  # (1,) or (B,)
    with torch.no_grad():
        le = torch.from_numpy(log_eps.copy())
        base = net.baseline(le).numpy().copy()  # (1 or B, n_out)
        scale = eps_scale(le, net.spec["eps_ref"]).numpy().copy()  # (1 or B,)
    M = net.M

    def terms(x: np.ndarray, B: int, m: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        s = np.repeat(scale, m) if scale.size > 1 else np.full(B * m, scale[0])
        h = np.concatenate(
            [
                x / s[:, None],
                np.repeat(log_eps, m)[:, None]
                if log_eps.size > 1
                else np.full((B * m, 1), log_eps[0]),
            ],
            1,
        )
        h = _apply(params, h)
        b = np.repeat(base, m, axis=0) if base.shape[0] > 1 else base
        out = s[:, None] * (h - b)
        q = out[:, 0].reshape(B, m)
        g = np.moveaxis(out[:, 1 : 1 + M].reshape(B, m, M), 2, 1)
        y = np.moveaxis(out[:, 1 + M :].reshape(B, m, 3, M), 1, 3)
        return q, g, y

    return terms


class MLMomentClosure(MomentClosure):
    """The learned moment system as a :class:`~.fv.MomentClosure` (numpy in and out).

    ``net``: a :class:`MomentNet` (evaluated under ``torch.no_grad`` in its dtype, one
    batch of ``B·m`` points per call); ``kn``: ``ε`` (> 0), a float or shape ``(B,)``.
    ``length``, ``bc``: the FV box, needed because :meth:`source` holds the forcing
    ``-A ρ ∂x√T`` (centred differences on the cell array it is given, ``dx = length/m``,
    periodic or zero-gradient ends) — so ``source`` must be called with the cells in
    order, as :class:`~.fv.FVSolver` does, or be given the solver's ``ddx`` (a
    domain-decomposed solver, :mod:`.petsc_fv`, whose ghost cells carry the neighbours).
    Wave speeds ``u ∓ speed_factor·√(3T)`` (default factor 1.5: the learned W block is
    not analysed, so the HLL bounds are the Euler ones widened by 50 %).  ``stiffness``
    is ``1/ε`` (the source is explicit).
    """

    gamma = 3.0

    def __init__(
        self,
        net: MomentNet,
        kn,
        *,
        length: float = 1.0,
        bc: str = "periodic",
        speed_factor: float = 1.5,
    ) -> None:
        kn_arr = np.asarray(kn, dtype=np.float64)
        if kn_arr.ndim > 1 or not np.all(np.isfinite(kn_arr)) or np.any(kn_arr <= 0):
            raise ValueError(f"kn must be finite and > 0 (a float or shape (B,)), got {kn!r}")
        if bc not in ("periodic", "outflow"):
            raise ValueError(f"bc must be periodic or outflow, got {bc!r}")
        if not (math.isfinite(length) and length > 0):
            raise ValueError(f"length must be finite and > 0, got {length!r}")
        if not (math.isfinite(speed_factor) and speed_factor >= 1):
            raise ValueError(f"speed_factor must be >= 1, got {speed_factor!r}")
        self.net, self.kn, self.length, self.bc = net.eval(), kn_arr, float(length), bc
        self.speed_factor = float(speed_factor)
        self.M = net.M
        self.n_moments = 3 + net.M
        with torch.no_grad():
            self.A = net.forcing().double().numpy()
        self._fast = _numpy_closure(net, self.kn)

    def _log_eps(self, B: int, m: int) -> np.ndarray:
        return np.broadcast_to(np.log10(self.kn).reshape(-1, 1), (B, m))

    def closure_terms(self, Q: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(q̃, g̃, y)`` of the states ``Q`` ``(B, 3+M, m)``: shapes ``(B, m)``,
        ``(B, M, m)``, ``(B, 3, M, m)``."""
        B, _, m = Q.shape
        W = Q[:, 3:] / Q[:, :1]
        x = np.moveaxis(W, 1, 2).reshape(-1, self.M)
        if self._fast is not None:
            return self._fast(x, B, m)
        dt = self.net.dtype
        with torch.no_grad():
            log_eps = torch.from_numpy(self._log_eps(B, m).reshape(-1).copy()).to(dt)
            # h(0, ε) depends on ε alone: once per member (1 or B rows), not per cell
            base = self.net.baseline(torch.from_numpy(np.log10(self.kn).reshape(-1)).to(dt))
            if base.shape[0] > 1:
                base = base.repeat_interleave(m, 0)
            q, g, y = self.net(torch.from_numpy(np.ascontiguousarray(x)).to(dt), log_eps, base)
        q = q.double().numpy().reshape(B, m)
        g = np.moveaxis(g.double().numpy().reshape(B, m, self.M), 2, 1)
        return q, g, np.moveaxis(y.double().numpy().reshape(B, m, 3, self.M), 1, 3)

    def closure_flux(self, Q: np.ndarray) -> np.ndarray:
        rho, u, T = primitive(Q, self.gamma)
        q, g, _ = self.closure_terms(Q)
        out = np.zeros_like(Q)
        out[:, 2] = rho * T**1.5 * q
        out[:, 3:] = u[:, None] * Q[:, 3:] + (rho * np.sqrt(T))[:, None] * g
        return out

    def wave_speeds(self, Q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        _, u, T = primitive(Q, self.gamma)
        c = self.speed_factor * np.sqrt(3.0 * np.maximum(T, 0.0))
        return u - c, u + c

    def _ddx(self, a: np.ndarray) -> np.ndarray:
        """Centred ``∂x`` of ``a`` ``(B, m)`` on the cell array (:func:`centred_ddx`)."""
        return centred_ddx(a, self.length, self.bc)

    def source(self, Q: np.ndarray, ddx=None) -> np.ndarray:
        """``R`` of the ρW rows, ``(B, M, m)``; ``ddx``: the solver's ghost-aware centred
        difference (:meth:`~.fv.FVSolver.rhs_padded`), default :meth:`_ddx` over ``Q``."""
        d = self._ddx if ddx is None else ddx
        rho, _, T = primitive(Q, self.gamma)
        q, _, y = self.closure_terms(Q)
        sq = np.sqrt(T)
        ds = d(sq)
        a0 = d(rho * T) / (rho * sq)
        a1 = d(rho * T**1.5 * q) / (rho * T)
        frame = a0[:, None] * y[:, 0] + a1[:, None] * y[:, 1] - ds[:, None] * y[:, 2]
        tau = self.kn.reshape(-1, 1, 1) if self.kn.ndim else self.kn
        return -Q[:, 3:] / tau + rho[:, None] * (frame - self.A[None, :, None] * ds[:, None])

    def stiffness(self, Q: np.ndarray) -> np.ndarray:
        return np.broadcast_to(1.0 / self.kn.reshape(-1, 1), Q[:, 0].shape).copy()

    def __repr__(self) -> str:
        return f"MLMomentClosure(M={self.M}, kn={self.kn!r}, bc={self.bc!r})"
