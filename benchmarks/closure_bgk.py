"""Moment closures of the 1V BGK gas against the kinetic solver (issue 10 acceptance).

Held-out profiles (10 smooth periodic, Sod, two colliding-shock pairs; see
ledmus/surrogates/closure/evaluate.py) at ε = 1e-3 … 10: relative L2 error of ρ, u, T at
t = 0.1 for the ML closure (models/closure_bgk.pt), Euler and Navier–Stokes, and the
wall time of each model against the BGK solver over the same span and cases (one
thread, all cases of one boundary condition batched in one run).  Writes
``benchmarks/out/closure_bgk.json`` and, beside it, ``closure_bgk_errors.png``,
``closure_bgk_profiles_{case}_eps{ε}.png`` (ρ, u, T at t = 0, 0.05, 0.1 for BGK and the
three models) and ``closure_bgk_weights.png`` (the learned w(ξ)).

``speedup_bound``: BGK over the ML moment system with its network replaced by zeros
(:class:`FreeClosure`, timed side by side with a fresh BGK run): the finite-volume work
alone, so the largest S any closure of this size can reach on this scheme and grid.

    python benchmarks/closure_bgk.py            # about 7 minutes on one core
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from _provenance import ROOT, write_result

from ledmus.surrogates.checkpoint import load_model
from ledmus.surrogates.closure.evaluate import (
    EPS_GRID,
    cases,
    evaluate_closure,
    group_by_bc,
    run_case_group,
    run_closures,
)
from ledmus.surrogates.closure.ml import MLMomentClosure
from ledmus.surrogates.closure.plots import plot_errors, plot_profiles, plot_weights

TIMES = (0.0, 0.05, 0.1)


class FreeClosure(MLMomentClosure):
    """The ML moment system (same moments, wave speeds, stiffness and source form) with
    ``q̃ = g̃ = y = 0`` and no network call per step: the finite-volume work alone, for
    timing, not a model."""

    def closure_terms(self, Q: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        B, _, m = Q.shape
        return np.zeros((B, m)), np.zeros((B, self.M, m)), np.zeros((B, 3, self.M, m))


def speedup_bound(net, nx: int) -> dict[str, dict[str, float]]:
    """Per ε: wall seconds of BGK and of :class:`FreeClosure` (a fresh BGK run beside it),
    summed over the case groups."""
    out = {}
    for eps in EPS_GRID:
        bgk = free = 0.0
        for bc, (_, prim) in group_by_bc(cases(nx)).items():
            cl = FreeClosure(net, eps, bc=bc)
            res = run_closures({"free": cl}, eps, bc, prim, nx=nx, t_end=TIMES[-1])
            bgk, free = bgk + res["bgk"]["wall_s"], free + res["free"]["wall_s"]
        out[f"{eps:g}"] = {"bgk": bgk, "free": free}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=str(ROOT / "models" / "closure_bgk.pt"))
    ap.add_argument("--nx", type=int, default=100)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "out" / "closure_bgk.json"))
    args = ap.parse_args()
    torch.set_num_threads(1)
    net, payload = load_model(args.model)
    t0 = time.perf_counter()
    res = evaluate_closure(net, nx=args.nx, progress=True)
    speedup = {key: {m: w["bgk"] / w[m] for m in res["models"]} for key, w in res["wall_s"].items()}
    bound_walls = speedup_bound(net, args.nx)
    bound = {k: w["bgk"] / w["free"] for k, w in bound_walls.items()}
    out_dir = ROOT / "benchmarks" / "out"
    plot_errors(res, out_dir / "closure_bgk_errors.png")
    plot_weights(net, out_dir / "closure_bgk_weights.png")
    x = (np.arange(args.nx) + 0.5) / args.nx
    shown = []
    for name, bc, prim in cases(args.nx):
        if name not in ("sod", "smooth0"):
            continue
        for eps in (EPS_GRID[0], EPS_GRID[-1]):
            runs = run_case_group(net, eps, bc, prim, nx=args.nx, t_end=TIMES[-1], times=TIMES)
            path = out_dir / f"closure_bgk_profiles_{name}_eps{eps:g}.png"
            snaps = {k: r["snapshots"][:, 0] for k, r in runs.items() if r["snapshots"] is not None}
            plot_profiles(x, snaps, TIMES, f"{name}, ε = {eps:g}", path)
            shown.append(path.name)
    ml = res["rel_l2"].get("ml", {})
    summary = {
        "ml_max_rel_l2": max((r["max"] for r in ml.values()), default=None),
        "ml_meets_2pct_at_every_eps": bool(ml) and all(r["max"] <= 0.02 for r in ml.values()),
        "ml_speedup_min": min(s["ml"] for s in speedup.values()) if ml else None,
        "ml_max_fair": max((r["max"] for r in res["fair"].get("ml", {}).values()), default=None),
    }
    payload_out = {**res, "speedup": speedup, "speedup_bound": bound,
                   "speedup_bound_wall_s": bound_walls, "summary": summary, "plots": shown,
                   "model": {"path": args.model, "spec": payload.get("spec"),
                             "config": payload.get("config")},
                   "threads": torch.get_num_threads(),
                   "wall_s_total": time.perf_counter() - t0}  # fmt: skip
    write_result(args.out, payload_out)
    for m in res["models"]:
        row = "  ".join(f"{k}: {r['max'] * 100:6.2f}%" for k, r in res["rel_l2"][m].items())
        print(f"{m:6s} max rel. L2 over cases  {row}")
        fair = "  ".join(f"{k}: {r['max'] * 100:6.2f}%" for k, r in res["fair"][m].items())
        print(f"{m:6s} max fair metric         {fair}")
    for key, s in speedup.items():
        print(
            f"eps {key:>6s}: BGK/model wall time " + "  ".join(f"{m} {v:.2f}" for m, v in s.items())
        )
    print(
        "S bound (network replaced by zeros): "
        + "  ".join(f"{k}: {v:.2f}" for k, v in bound.items())
    )
    print(summary)


if __name__ == "__main__":
    main()
