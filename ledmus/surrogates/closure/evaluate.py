"""Accuracy of moment closures against the BGK solver (the closure acceptance protocol).

Held-out initial profiles, all in local equilibrium ``f0 = M[ρ0, u0, T0]`` (the moment
models start from ``U0`` and ``W0 = 0``, which is exact for a Maxwellian):

- ``smooth0`` … ``smooth9``: periodic two-mode profiles of :func:`.train.profiles`
  (seeds 1000–1009; the training data are BGK ``waves``/``shocks`` profiles, a
  different family and generator);
- ``sod``: ``(ρ, u, T) = (1, 0, 1)`` left of ``L/2``, ``(0.125, 0, 0.8)`` right
  (the BGK ``sod`` initial condition), outflow ends;
- ``colliding``: ``ρ = T = 1``, ``u = +1`` left, ``-1`` right (two shocks running apart
  from the centre, the BGK ``colliding`` initial condition), outflow;
- ``colliding_asym``: ``(1, 0.75, 1)`` left, ``(0.6, -0.5, 1.25)`` right, outflow.

For each ``ε`` (the BGK relaxation time ``τ = ε``) the BGK solver and each moment
model run to ``t_end`` (0.1) on the same ``nx`` cells of ``[0, 1)``; the error of a
field ``a ∈ {ρ, u, T}`` is ``‖a_model - a_BGK‖₂ / ‖a_BGK‖₂`` over the cells at
``t_end``.  A model whose run breaks down (non-finite or non-positive state) gets
``inf`` and the reason.
"""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np

from ... import solvers
from .classical import Euler, NavierStokes
from .fv import FVSolver, MomentClosure, conserved, primitive
from .train import profiles

EPS_GRID = (1e-3, 1e-2, 1e-1, 1.0, 10.0)
MODELS = ("ml", "euler", "ns")
FIELDS = ("rho", "u", "T")
N_SMOOTH = 10


def cases(nx: int) -> list[tuple[str, str, tuple[np.ndarray, ...]]]:
    """``(name, bc, (ρ, u, T))`` of the held-out profiles, each field ``(1, nx)``."""
    out = [(f"smooth{i}", "periodic", profiles(nx, 1000 + i)) for i in range(N_SMOOTH)]
    x = (np.arange(nx) + 0.5) / nx
    left = (x < 0.5)[None]
    for name, lv, rv in (
        ("sod", (1.0, 0.0, 1.0), (0.125, 0.0, 0.8)),
        ("colliding", (1.0, 1.0, 1.0), (1.0, -1.0, 1.0)),
        ("colliding_asym", (1.0, 0.75, 1.0), (0.6, -0.5, 1.25)),
    ):
        out.append(
            (name, "outflow", tuple(np.where(left, a, b) for a, b in zip(lv, rv, strict=True)))
        )
    return out


def closures(
    net: Any, eps: float, bc: str, models: tuple[str, ...] = MODELS
) -> dict[str, MomentClosure]:
    """The ``models`` at ``ε``: ``ml`` (``net`` a :class:`.ml.MomentNet`; left out when
    ``net`` is None), ``euler``, ``ns``."""
    bad = [m for m in models if m not in MODELS]
    if bad:
        raise ValueError(f"unknown model {bad[0]!r}; allowed: {', '.join(MODELS)}")
    out: dict[str, MomentClosure] = {}
    if net is not None and "ml" in models:
        from .ml import MLMomentClosure

        out["ml"] = MLMomentClosure(net, eps, bc=bc)
    if "euler" in models:
        out["euler"] = Euler()
    if "ns" in models:
        out["ns"] = NavierStokes(eps)
    return out


def group_by_bc(items: list) -> dict[str, tuple[list[str], tuple[np.ndarray, ...]]]:
    """Cases batched by boundary condition: ``bc -> (names, (ρ, u, T) (B, nx))``."""
    groups: dict[str, tuple[list[str], list]] = {}
    for name, bc, prim in items:
        names, fields = groups.setdefault(bc, ([], []))
        names.append(name)
        fields.append(prim)
    return {
        bc: (n, tuple(np.concatenate(c) for c in zip(*f, strict=True)))
        for bc, (n, f) in groups.items()
    }


def run_case_group(
    net: Any,
    eps: float,
    bc: str,
    prim: tuple[np.ndarray, ...],
    *,
    nx: int,
    t_end: float,
    times: tuple[float, ...] = (),
    models: tuple[str, ...] = MODELS,
) -> dict[str, Any]:
    """:func:`run_closures` for the named ``models`` (:func:`closures`) at ``ε``."""
    return run_closures(
        closures(net, eps, bc, models), eps, bc, prim, nx=nx, t_end=t_end, times=times
    )


def run_closures(
    named: dict[str, MomentClosure],
    eps: float,
    bc: str,
    prim: tuple[np.ndarray, ...],
    *,
    nx: int,
    t_end: float,
    times: tuple[float, ...] = (),
) -> dict[str, Any]:
    """BGK and every closure of ``named`` from the profiles ``prim`` (batched ``(B, nx)``):
    primitives at ``t_end`` (``(B, 3, nx)``; NaN for a run that broke down), at ``times``
    (``(len(times), B, 3, nx)``), wall seconds, and the failure reason (``None``) per
    closure; key ``bgk`` for the reference."""
    rho, u, T = prim
    bgk = solvers.make("bgk", kn=eps, nx=nx, bc=bc)
    t0 = time.perf_counter()
    _, f = bgk.rollout(bgk.maxwellian(rho, u, T), t_end)
    wall = time.perf_counter() - t0
    snap = [round(t / bgk.dt_coarse) for t in times]
    out = {
        "bgk": {
            "final": bgk.primitives(f[:, -1]),
            "wall_s": wall,
            "error": None,
            "snapshots": np.stack([bgk.primitives(f[:, k]) for k in snap]) if snap else None,
        }
    }
    for name, cl in named.items():
        fv = FVSolver(cl, nx=nx, bc=bc)
        Q = conserved(rho, u, T, np.zeros((rho.shape[0], cl.n_moments - 3, nx)))
        t0 = time.perf_counter()
        res: dict[str, Any] = {"error": None, "snapshots": None}
        try:
            marks = sorted({0.0, *times, t_end})
            shots = {0.0: Q}
            for a, b in zip(marks[:-1], marks[1:], strict=True):
                Q = fv.advance(Q, b - a)
                shots[b] = Q
            res["final"] = np.stack(primitive(Q), axis=1)
            if times:
                res["snapshots"] = np.stack([np.stack(primitive(shots[t]), 1) for t in times])
        except (FloatingPointError, ValueError) as exc:
            res["final"], res["error"] = np.full((rho.shape[0], 3, nx), np.nan), str(exc)
        res["wall_s"] = time.perf_counter() - t0
        out[name] = res
    return out


def rel_l2(pred: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """``‖pred - ref‖₂/‖ref‖₂`` over the last axis; ``inf`` where ``pred`` is not finite."""
    err = np.linalg.norm(pred - ref, axis=-1) / np.linalg.norm(ref, axis=-1)
    return np.where(np.isfinite(err), err, np.inf)


#: fields of the fair metric (:func:`fair_errors`)
FAIR_FIELDS = ("rho", "u_over_c", "T")
#: adiabatic exponent of the 1-D-velocity BGK gas (E = rho u^2/2 + rho T/2)
GAMMA_BGK = 3.0


def fair_errors(pred: np.ndarray, ref: np.ndarray, gamma: float = GAMMA_BGK) -> np.ndarray:
    """The fair acceptance metric ``(..., 3)`` of primitives ``(..., 3, nx)`` (ρ, u, T)
    against a reference: ``‖ρ - ρ_ref‖/‖ρ_ref‖``, ``‖u - u_ref‖/‖c_ref‖`` with the
    reference sound speed ``c_ref = sqrt(γ T_ref)``, and ``‖T - T_ref‖/‖T_ref‖`` (L2 norms
    over the cells; ``inf`` where ``pred`` is not finite).  The relative L2 of ``u`` is
    unfair where ``u`` vanishes on most of the domain (a Riemann problem): its norm is
    small, so a converged kinetic solver itself scores about 9 % there; the sound speed
    is the velocity scale of the flow."""
    pred, ref = np.asarray(pred, dtype=np.float64), np.asarray(ref, dtype=np.float64)
    diff = np.linalg.norm(pred - ref, axis=-1)  # (..., 3)
    c = np.linalg.norm(np.sqrt(gamma * np.clip(ref[..., 2, :], 0.0, None)), axis=-1)
    scale = np.stack(
        [np.linalg.norm(ref[..., 0, :], axis=-1), c, np.linalg.norm(ref[..., 2, :], axis=-1)],
        axis=-1,
    )
    err = diff / scale
    return np.where(np.isfinite(err), err, np.inf)


def compare_to_bgk(
    named: dict[str, MomentClosure], eps: float, seed: int, *, nx: int = 64, t_end: float = 0.1
) -> dict[str, np.ndarray]:
    """Relative L2 errors of ``(ρ, u, T)`` ``(3,)`` at ``t_end`` against BGK for each
    ``name -> closure``, from the periodic smooth profile :func:`.train.profiles`
    ``(nx, seed)`` (``inf`` for a run that broke down)."""
    res = run_closures(named, eps, "periodic", profiles(nx, seed), nx=nx, t_end=t_end)
    ref = res["bgk"]["final"][0]
    return {name: rel_l2(res[name]["final"][0], ref) for name in named}


def evaluate_closure(
    net: Any,
    *,
    eps_grid: tuple[float, ...] = EPS_GRID,
    nx: int = 100,
    t_end: float = 0.1,
    models: tuple[str, ...] = MODELS,
    progress: bool = False,
) -> dict[str, Any]:
    """The acceptance table: per ``ε`` and model, the relative L2 error of ``ρ, u, T`` at
    ``t_end`` (the maximum and mean over the held-out cases, and per case), wall seconds
    of BGK and each model over all cases, and failures.  ``net=None`` leaves ``ml`` out.

    Returns ``{"eps": [...], "cases": [...], "nx", "t_end", "models",
    "rel_l2": {model: {eps_key: {"rho", "u", "T", "max"}}},`` (max over cases)
    ``"rel_l2_mean": {...}`` (same layout, mean over cases),
    ``"rel_l2_cases": {model: {eps_key: {case: [ρ, u, T]}}}``, the same three for the
    fair metric (:func:`fair_errors`: ``"fair"`` with ``{"rho", "u_over_c", "T", "max"}``,
    ``"fair_mean"``, ``"fair_cases"``),
    ``"wall_s": {eps_key: {"bgk": s, model: s}}, "failures": [...]}`` with
    ``eps_key = f"{ε:g}"``.
    """
    for e in eps_grid:
        if not (isinstance(e, (int, float)) and math.isfinite(e) and e > 0):
            raise ValueError(f"eps values must be finite and > 0, got {e!r}")
    closures(None, 1.0, "periodic", tuple(models))  # validates the names
    models = [m for m in models if m != "ml" or net is not None]
    groups = group_by_bc(cases(nx))
    names = [n for names, _ in groups.values() for n in names]
    out: dict[str, Any] = {
        "eps": list(eps_grid),
        "cases": names,
        "nx": nx,
        "t_end": t_end,
        "models": models,
        "rel_l2": {m: {} for m in models},
        "rel_l2_mean": {m: {} for m in models},
        "rel_l2_cases": {m: {} for m in models},
        "fair": {m: {} for m in models},
        "fair_mean": {m: {} for m in models},
        "fair_cases": {m: {} for m in models},
        "wall_s": {},
        "failures": [],
    }
    todo = [(e, bc) for e in eps_grid for bc in groups]
    if progress:
        from ...progress import progress_bar

        todo = progress_bar(todo, desc="closure evaluation", unit="run")
    for eps, bc in todo:
        key = f"{eps:g}"
        case_names, prim = groups[bc]
        res = run_case_group(net, eps, bc, prim, nx=nx, t_end=t_end, models=tuple(models))
        walls = out["wall_s"].setdefault(key, {})
        for name, r in res.items():
            walls[name] = walls.get(name, 0.0) + r["wall_s"]
        ref = res["bgk"]["final"]
        for m in models:
            for metric, err in (
                ("rel_l2", rel_l2(res[m]["final"], ref)),  # (B, 3)
                ("fair", fair_errors(res[m]["final"], ref)),
            ):
                per = out[f"{metric}_cases"][m].setdefault(key, {})
                per.update({n: [float(v) for v in e] for n, e in zip(case_names, err, strict=True)})
            if res[m]["error"] is not None:
                out["failures"].append(
                    {"model": m, "eps": eps, "bc": bc, "reason": res[m]["error"]}
                )
    for metric, fields in (("rel_l2", FIELDS), ("fair", FAIR_FIELDS)):
        for m in models:
            for key, per in out[f"{metric}_cases"][m].items():
                arr = np.array(list(per.values()))  # (cases, 3)
                mx, mean = arr.max(0), arr.mean(0)
                out[metric][m][key] = {
                    **dict(zip(fields, map(float, mx), strict=True)),
                    "max": float(mx.max()),
                }
                out[f"{metric}_mean"][m][key] = dict(zip(fields, map(float, mean), strict=True))
    return out


__all__ = [
    "EPS_GRID",
    "FAIR_FIELDS",
    "FIELDS",
    "GAMMA_BGK",
    "MODELS",
    "cases",
    "closures",
    "compare_to_bgk",
    "evaluate_closure",
    "fair_errors",
    "group_by_bc",
    "rel_l2",
    "run_case_group",
    "run_closures",
]
