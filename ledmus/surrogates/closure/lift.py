"""Decoder ``h(v; U, W)`` of the ML moment closure, lift and restrict (W. E's concurrent-learning
lecture, §5).

The lecture's autoencoder: the encoder is ``W = (1/ρ) ∫ w(ξ)(f - M[f]) dv`` of
:class:`.ml.MomentNet` (kept frozen: the closure was trained on its ``W``); the decoder
rebuilds ``f`` from ``(U, W)``::

    f_j = exp(a · (1, v_j, v_j²/2) + s(ξ_j; Ŵ, log10 ε)),     ξ_j = (v_j - u)/√T,
    s(ξ; Ŵ, e) = σ(ξ, Ŵ, e) - σ(ξ, 0, e),                      Ŵ = W/s_ε(ε)

with ``σ`` an MLP and ``a`` (3 numbers per cell) fixed by Newton so that the grid moments
of ``f`` are ``U = (ρ, ρu, E)`` exactly (:class:`ledmus.solvers.bgk_maxwellian.
DiscreteMaxwellian` with a ``shape``): the lifted ``f`` is positive, conserves mass,
momentum and energy to rounding, and is the discrete Maxwellian for ``W = 0``.
``s_ε(ε) = ε/(1 + ε/eps_ref)`` is :func:`.ml.eps_scale`.  The shape is a function of
``ξ`` and ``W`` only (Galilean and scale invariant, like ``W``).

**Entropy term** (the lecture's ``λ_η (η(f) - h_η(U, W))²``): ``η_rel = (1/ρ) Σ_j f_j
log(f_j/M_j) dv ≥ 0`` (the relative entropy to the discrete Maxwellian ``M[f]``,
dimensionless), predicted as ``h_η = s_ε² [τ(Ŵ, e) - τ(0, e)]`` by a second MLP.

**Training** (:func:`train_decoder`): on BGK snapshots, with the encoder frozen, Adam on ::

    L = mean_cells ‖f - M[f] e^{s}‖² / ‖f‖² + λ_η mean_cells ((η_rel - h_η)/s_ε²)²
        + λ_W mean_cells |W(M[f] e^{s}) - W|² / s_ε²

(the last term makes restrict ∘ lift return ``W``: the encoder of the decoded state)

(the moment-fixing Newton is applied at lifting only; the fit makes it a small change).
The decoder is its own checkpoint kind ``closure_decoder`` (its config names the closure
checkpoint and that checkpoint's fingerprint; :func:`load_decoder` refuses another).
"""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np
import torch
from torch import nn

from .ml import MomentNet, _apply, _mlp, _numpy_layers, eps_scale, numpy_encoder
from .train import adam_fit, bgk_runs, cells, kinetic_frame

SPEC_DEFAULTS: dict[str, Any] = {"n_moments": 4, "width": 48, "depth": 3, "eps_ref": 0.1}


class MomentDecoder(nn.Module):
    """``σ(ξ, Ŵ, e)`` (shape) and ``τ(Ŵ, e)`` (entropy) MLPs; see the module docstring."""

    kind = "closure_decoder"
    system = "bgk"

    def __init__(self, spec: dict[str, Any] | None = None) -> None:
        super().__init__()
        unknown = sorted(set(spec or {}) - set(SPEC_DEFAULTS))
        if unknown:
            raise ValueError(
                f"unknown decoder spec field {unknown[0]!r}; allowed: {', '.join(SPEC_DEFAULTS)}"
            )
        self.spec = {**SPEC_DEFAULTS, **(spec or {})}
        M, w, d = self.spec["n_moments"], self.spec["width"], self.spec["depth"]
        self.M = M
        self.shape_net = _mlp(M + 2, w, d, 1)
        self.entropy_net = _mlp(M + 1, w, d, 1)

    @property
    def dtype(self) -> torch.dtype:
        return self.shape_net[0].weight.dtype

    def shape(self, xi: torch.Tensor, W: torch.Tensor, log_eps: torch.Tensor) -> torch.Tensor:
        """``s(ξ; W, ε)`` ``(N, nv)`` from ``xi`` ``(N, nv)``, ``W`` ``(N, M)``, ``log_eps``
        ``(N,)``; zero at ``W = 0``."""
        s = eps_scale(log_eps, self.spec["eps_ref"])[:, None]
        nv = xi.shape[1]
        feats = torch.cat(
            [(W / s)[:, None, :].expand(-1, nv, -1), log_eps[:, None, None].expand(-1, nv, 1)], -1
        )
        x = xi[..., None]
        out = self.shape_net(torch.cat([x, feats], -1)) - self.shape_net(
            torch.cat([x, torch.zeros_like(feats[..., :-1]), feats[..., -1:]], -1)
        )
        return out[..., 0]

    def entropy(self, W: torch.Tensor, log_eps: torch.Tensor) -> torch.Tensor:
        """``h_η`` ``(N,)``: predicted relative entropy ``(1/ρ) Σ f log(f/M) dv``."""
        s = eps_scale(log_eps, self.spec["eps_ref"])[:, None]
        e = log_eps[:, None]
        t = self.entropy_net(torch.cat([W / s, e], 1)) - self.entropy_net(
            torch.cat([torch.zeros_like(W), e], 1)
        )
        return (s * s * t)[:, 0]


def _numpy_shape(decoder: MomentDecoder) -> Any:
    """:meth:`MomentDecoder.shape` at one ``log10 ε`` in numpy for a float64 decoder with a
    plain Linear/Tanh ``shape_net``; ``None`` otherwise."""
    layers = _numpy_layers(decoder.shape_net)
    if layers is None:
        return None
    eps_ref = decoder.spec["eps_ref"]

    def shape(xi: np.ndarray, W: np.ndarray, log_eps: float) -> np.ndarray:
        s = float(eps_scale(torch.tensor([log_eps], dtype=torch.float64), eps_ref)[0])
        N, nv = xi.shape
        x = np.empty((N, nv, W.shape[1] + 2))
        x[..., 0] = xi
        x[..., 1:-1] = (W / s)[:, None, :]
        x[..., -1] = log_eps
        with_w = _apply(layers, x)
        x[..., 1:-1] = 0.0
        return (with_w - _apply(layers, x))[..., 0]

    return shape


# ------------------------------------------------------------------------- lift / restrict
def restrict(net: MomentNet, f: np.ndarray, bgk: Any, frame: dict | None = None) -> np.ndarray:
    """Moments ``Q = (ρ, ρu, E, ρW)`` ``(B, 3+M, nx)`` of ``f`` ``(B, nv, nx)`` (the encoder
    ``W`` of ``net``); ``frame``: :func:`.train.kinetic_frame` of ``f`` if already made."""
    f = np.asarray(f, dtype=np.float64)
    fr = kinetic_frame(bgk, f) if frame is None else frame
    rho = fr["rho"]
    gdv = (f - fr["M"]) * bgk.dv / rho[:, None]
    fast = numpy_encoder(net)
    if fast is not None:  # the same sums in numpy (the torch call's overhead is most of it)
        W = fast(cells(fr["xi"]), cells(gdv))
    else:
        dt = net.dtype
        with torch.no_grad():
            W = net.encode(
                torch.from_numpy(cells(fr["xi"])).to(dt), torch.from_numpy(cells(gdv)).to(dt)
            )[0]
        W = W.double().numpy()
    W = np.moveaxis(W.reshape(f.shape[0], -1, net.M), 2, 1)
    return np.concatenate([fr["U"], rho[:, None] * W], axis=1)


def lift(decoder: MomentDecoder, Q: np.ndarray, bgk: Any, eps: float) -> np.ndarray:
    """``f`` ``(B, nv, nx)`` from ``Q = (ρ, ρu, E, ρW)`` ``(B, 3+M, nx)``: positive, with
    grid moments ``Q[:, :3]`` to rounding; the discrete Maxwellian where ``W = 0``."""
    Q = np.asarray(Q, dtype=np.float64)
    if Q.ndim != 3 or Q.shape[1] != 3 + decoder.M:
        raise ValueError(f"Q must have shape (B, {3 + decoder.M}, nx), got {Q.shape}")
    if not (math.isfinite(eps) and eps > 0):
        raise ValueError(f"eps must be finite and > 0, got {eps!r}")
    B, _, nx = Q.shape
    rho = Q[:, 0]
    u = Q[:, 1] / rho
    T = 2.0 * Q[:, 2] / rho - u * u
    if not (np.all(rho > 0) and np.all(T > 0)):
        raise ValueError("Q has cells with rho <= 0 or T <= 0: nothing to lift")
    xi = (bgk.v[None, :, None] - u[:, None]) / np.sqrt(T)[:, None]
    W = Q[:, 3:] / rho[:, None]
    fast = _numpy_shape(decoder)
    if fast is not None:  # the same arithmetic in numpy (the torch call's overhead dominates)
        s = fast(cells(xi), cells(W), math.log10(eps))
    else:
        dt = decoder.dtype
        with torch.no_grad():
            s = decoder.shape(
                torch.from_numpy(cells(xi)).to(dt),
                torch.from_numpy(cells(W)).to(dt),
                torch.full((B * nx,), math.log10(eps), dtype=dt),
            )
        s = s.double().numpy()
    s = np.moveaxis(s.reshape(B, nx, -1), 2, 1)
    return bgk.maxwellian_of_moments(Q[:, :3], shape=s)


# ------------------------------------------------------------------------------ training
def snapshots(
    runs: int,
    batch: int,
    nx: int,
    eps_range: tuple[float, float],
    t_end: float,
    every: int,
    seed: int,
) -> list[tuple[float, np.ndarray]]:
    """BGK snapshots ``(ε, f (K, nv, nx))`` made as the default closure training data are
    (:func:`.train.bgk_runs`: ICs ``waves``/``shocks`` alternating, periodic; the closure
    config's ``data.ics`` does not reach them)."""
    rng = np.random.default_rng(seed)
    return [(eps, f) for eps, _, f in bgk_runs(runs, batch, nx, *eps_range, t_end, every, rng)]


def relative_entropy(f: np.ndarray, M: np.ndarray, dv: float, rho: np.ndarray) -> np.ndarray:
    """``η_rel = (1/ρ) Σ_j f_j log(f_j/M_j) dv`` per cell, flattened ``(K·nx,)``, of ``f``
    and its Maxwellian ``M`` ``(K, nv, nx)`` (``f log f`` is 0 where ``f = 0``)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        log_ratio = np.where(f > 0, np.log(np.maximum(f, 1e-300) / M), 0.0)
    return ((f * log_ratio).sum(1) * dv / rho).reshape(-1)


def cell_targets(net: MomentNet, snaps: list[tuple[float, np.ndarray]]) -> dict[str, np.ndarray]:
    """Per cell: ``xi``, ``f/ρ·√T`` (dimensionless), ``M/ρ·√T``, ``W``, ``eta`` (``η_rel``),
    ``log_eps`` and ``w`` (the encoder's ``w(ξ_j) dξ``, ``(N, nv, M)``); each ``(N, ...)``."""
    from ... import solvers

    bgk = solvers.make("bgk", nx=snaps[0][1].shape[-1], bc="periodic")
    parts: dict[str, list] = {k: [] for k in ("xi", "f", "m", "W", "eta", "log_eps", "w")}
    for eps, f in snaps:
        fr = kinetic_frame(bgk, f)
        Q = restrict(net, f, bgk, fr)
        rho, T, M = fr["rho"], fr["T"], fr["M"]
        norm = (np.sqrt(T) / rho)[:, None]
        parts["xi"].append(cells(fr["xi"]))
        parts["f"].append(cells(f * norm))
        parts["m"].append(cells(M * norm))
        parts["W"].append(cells(Q[:, 3:] / rho[:, None]))
        parts["eta"].append(relative_entropy(f, M, bgk.dv, rho))
        parts["log_eps"].append(np.full(rho.size, math.log10(eps)))
        xi = torch.from_numpy(parts["xi"][-1]).to(net.dtype)
        with torch.no_grad():  # encoder weights times dξ = dv/√T: W = Σ w (f - M)/ρ·√T dξ
            w = net.weights(xi)[0].double().numpy()
        parts["w"].append(w * (bgk.dv / np.sqrt(T)).reshape(-1)[:, None, None])
    return {k: np.concatenate(v) for k, v in parts.items()}


#: what :func:`decoder_loss` returns, in order (the training history's keys)
DECODER_TERMS = ("loss", "reconstruction", "entropy", "consistency")


def decoder_loss(
    dec: MomentDecoder, b: dict[str, torch.Tensor], lambda_eta: float, lambda_w: float = 1.0
) -> tuple:
    """``(loss, reconstruction, entropy, consistency)`` on a batch of cells (module
    docstring; consistency: ``mean |W(f̂) - W|²/s_ε²``, the encoder of the decoded state)."""
    fhat = b["m"] * torch.exp(dec.shape(b["xi"], b["W"], b["log_eps"]))
    rec = (((fhat - b["f"]) ** 2).sum(1) / (b["f"] ** 2).sum(1)).mean()
    s2 = eps_scale(b["log_eps"], dec.spec["eps_ref"]) ** 2
    ent = (((dec.entropy(b["W"], b["log_eps"]) - b["eta"]) / s2) ** 2).mean()
    w_hat = torch.einsum("njm,nj->nm", b["w"], fhat - b["m"])
    con = (((w_hat - b["W"]) ** 2).sum(1) / s2).mean()
    return rec + lambda_eta * ent + lambda_w * con, rec, ent, con


def train_decoder(
    net: MomentNet,
    data: dict[str, np.ndarray],
    *,
    steps: int = 3000,
    batch_size: int = 256,
    lr: float = 2e-3,
    lambda_eta: float = 0.1,
    lambda_w: float = 0.1,
    spec: dict[str, Any] | None = None,
    seed: int = 0,
) -> tuple[MomentDecoder, dict]:
    """Fit a :class:`MomentDecoder` to ``data`` (:func:`cell_targets`); returns it and the
    history ``{"loss", "reconstruction", "entropy", "consistency", "wall_s"}``."""
    torch.manual_seed(seed)
    spec = {**(spec or {}), "n_moments": net.M, "eps_ref": net.spec["eps_ref"]}
    dec = MomentDecoder(spec).to(torch.float64)
    tens = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in data.items()}
    t0 = time.perf_counter()
    hist: dict[str, Any] = adam_fit(
        dec.parameters(),
        tens,
        lambda b: decoder_loss(dec, b, lambda_eta, lambda_w),
        steps=steps,
        batch_size=batch_size,
        lr=lr,
        seed=seed,
        names=DECODER_TERMS,
    )
    hist["wall_s"] = time.perf_counter() - t0
    return dec.eval(), hist


def load_decoder(path: Any, closure_payload: dict[str, Any]) -> MomentDecoder:
    """The decoder in ``path``; ``ValueError`` unless it was trained on the encoder of the
    closure checkpoint whose payload is ``closure_payload`` (same fingerprint)."""
    from ..checkpoint import load_model

    dec, payload = load_model(path, kind="closure_decoder")
    want = closure_payload.get("fingerprint")
    if payload["config"].get("closure_fingerprint") != want:
        raise ValueError(
            f"decoder {path} was trained for another closure checkpoint "
            f"({payload['config'].get('closure')!r}); retrain it for this one"
        )
    return dec


def arguments(ap: Any) -> None:
    """The arguments of ``ledmus closure lift`` (:func:`run`)."""
    ap.add_argument("closure", help="closure checkpoint (kind closure)")
    ap.add_argument("--out", required=True, help="decoder checkpoint to write")
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--lambda-eta", type=float, default=0.1)
    ap.add_argument("--lambda-w", type=float, default=0.1)
    ap.add_argument("--seed", type=int, default=1)


def run(args: Any) -> None:
    """``ledmus closure lift CLOSURE.pt --out DECODER.pt``: train the decoder on the
    frozen encoder of a closure checkpoint (BGK data made in process)."""
    from ..checkpoint import load_model, save_checkpoint

    torch.set_num_threads(1)
    net, payload = load_model(args.closure)
    data = cell_targets(net, snapshots(12, 4, 64, (1e-3, 10.0), 0.1, 4, seed=args.seed))
    dec, hist = train_decoder(
        net,
        data,
        steps=args.steps,
        lambda_eta=args.lambda_eta,
        lambda_w=args.lambda_w,
        seed=args.seed,
    )
    config = {
        "closure": str(args.closure),
        "closure_fingerprint": payload["fingerprint"],
        "steps": args.steps,
        "lambda_eta": args.lambda_eta,
        "lambda_w": args.lambda_w,
        "seed": args.seed,
        "data": {"runs": 12, "batch": 4, "nx": 64, "eps": [1e-3, 10.0], "t_end": 0.1, "every": 4},
        "dtype": "float64",
    }
    save_checkpoint(args.out, dec, config=config, fingerprint=payload["fingerprint"], history=hist)
    print(
        f"wrote {args.out}: reconstruction {hist['reconstruction'][-1]:.3g}, {hist['wall_s']:.0f} s"
    )


__all__ = [
    "MomentDecoder",
    "cell_targets",
    "decoder_loss",
    "lift",
    "load_decoder",
    "relative_entropy",
    "restrict",
    "snapshots",
    "train_decoder",
]
