"""Cell-local hybrid of the ML closure ensemble and BGK (issue 26): error, kinetic
fraction and speed-up per case and ε, beside the closure alone, Euler and Navier–Stokes.

Cases (nx = 100 cells of [0, 1), t = 0 … 0.1, all from local equilibrium): the held-out
smooth periodic profiles ``smooth0`` … ``smooth2`` of the closure acceptance protocol,
Sod, the colliding streams and the asymmetric colliding streams (outflow).  For each
ε in {1e-3, 1e-2, 0.1, 1, 10}: the BGK run (the reference and the solver the hybrid
replaces), the hybrid with the shipped ensemble ``models/closure_bgk_hmm.pt`` at the
default settings (criteria deviation, realisability, kn_gll; buffer 2; hysteresis 0.5),
the closure alone (member 0 on every cell), Euler and NS.  Error: the fair metric of the
acceptance protocol (:func:`~ledmus.surrogates.closure.evaluate.fair_errors`: relative
L2 of ρ and T, u over the sound speed's norm), the largest of the three, at t = 0.1.
S = BGK wall / hybrid wall, side by side in one process at one thread, best of
``--repeat``; the cost model ``1/(f_k + (1 - f_k)/S_c)`` with the mean kinetic fraction
``f_k`` and the closure alone's measured ``S_c``; the conservation error of the hybrid
(relative drift of total mass, momentum, energy with the outflow accounted).  The ε(x)
case needs the Boltzmann solver, whose closure is not trained yet: it is not here.

    OMP_NUM_THREADS=1 python benchmarks/hybrid.py      # about 6 minutes on one core
    OMP_NUM_THREADS=1 python benchmarks/hybrid.py --repeat 1 \
        --set criteria=deviation,realisability \
        --out benchmarks/out/hybrid_bgk_deviation_only.json   # the ensemble signal alone
    OMP_NUM_THREADS=1 python benchmarks/hybrid.py --nx 400 --repeat 1 \
        --cases sod,colliding --eps 0.01,0.1,1 \
        --out benchmarks/out/hybrid_bgk_nx400.json    # the cost model on a finer grid

Plots (ρ over x and t with the kinetic region) for Sod and the colliding streams at
ε = 1e-3, 0.1 and 10 go beside the JSON, named after it.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from _hybrid_rows import CLOSURE_ONLY, hybrid_row, timed
from _hybrid_rows import summary as common_summary
from _provenance import ROOT, write_result

from ledmus import solvers
from ledmus.coupler.hybrid import HybridRun, plot_kinetic_region
from ledmus.coupler.hybrid_settings import HybridSettings
from ledmus.surrogates.checkpoint import load_model
from ledmus.surrogates.closure.evaluate import (
    GAMMA_BGK,
    cases,
    closures,
    fair_errors,
    run_closures,
)

EPS = (1e-3, 1e-2, 0.1, 1.0, 10.0)
CASES = ("smooth0", "smooth1", "smooth2", "sod", "colliding", "colliding_asym")
T_END = 0.1


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=str(ROOT / "models" / "closure_bgk_hmm.pt"))
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--nx", type=int, default=100, help="cells (the acceptance protocol: 100)")
    ap.add_argument("--cases", default=",".join(CASES))
    ap.add_argument("--eps", default=",".join(f"{e:g}" for e in EPS))
    ap.add_argument("--set", action="append", default=[], help="hybrid setting name=value")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "out" / "hybrid_bgk.json"))
    args = ap.parse_args()
    torch.set_num_threads(1)
    ens, _ = load_model(args.model)
    over = {}
    for item in args.set:
        k, _, v = item.partition("=")
        over[k] = v.split(",") if k == "criteria" else float(v) if k != "lift_ghosts" else v
    settings = HybridSettings.parse(over)
    closure_only = HybridSettings.parse({**CLOSURE_ONLY, "record": False})
    wanted = args.cases.split(",")
    rows, t_start = [], time.perf_counter()
    out_dir = Path(args.out).parent
    nx = args.nx
    for name, bc, prim in cases(nx):
        if name not in wanted:
            continue
        for eps in (float(e) for e in args.eps.split(",")):
            bgk = solvers.make("bgk", kn=eps, nx=nx, bc=bc)
            f0 = bgk.maxwellian(*prim)
            w_bgk, traj = timed(lambda b=bgk, f=f0: b.rollout(f, T_END)[1], args.repeat)
            ref = bgk.primitives(traj[:, -1])[0]

            def hybrid(s: HybridSettings, b=bgk, f=f0) -> HybridRun:
                run = HybridRun(b, ens, f[0], s)
                run.run(T_END)
                return run

            w_hyb, run = timed(lambda: hybrid(settings), args.repeat)
            w_cl, alone = timed(lambda: hybrid(closure_only), args.repeat)
            classical = run_closures(
                closures(None, eps, bc, ("euler", "ns")), eps, bc, prim, nx=nx, t_end=T_END
            )
            errors = {
                m: float(fair_errors(classical[m]["final"][0], ref).max()) for m in ("euler", "ns")
            }
            walls = {"kinetic": w_bgk, "hybrid": w_hyb, "closure": w_cl}
            row = hybrid_row(name, eps, run, alone, ref, errors, walls, "bgk", GAMMA_BGK)
            s_c = row["speedup_closure"]
            rows.append(row)
            if name in ("sod", "colliding") and eps in (1e-3, 0.1, 10.0):
                plot_kinetic_region(run, out_dir / f"{Path(args.out).stem}_{name}_eps{eps:g}.png")
            print(
                f"{name:15s} eps {eps:<6g} hybrid {row['error_hybrid'] * 100:6.2f}%  closure "
                f"{row['error_closure'] * 100:6.2f}%  euler {row['error_euler'] * 100:6.2f}%  "
                f"ns {row['error_ns'] * 100:7.2f}%  f_k {row['kinetic_fraction_mean']:.2f}"
                f"  S {row['speedup']:.2f} (model {row['speedup_model']:.2f}, closure "
                f"{s_c:.2f})  cons {row['conservation_error']:.1e}",
                flush=True,
            )
    summary = {
        **common_summary(rows),
        "speedup_closure_max": max(r["speedup_closure"] for r in rows),
    }
    write_result(
        args.out,
        {
            "rows": rows,
            "summary": summary,
            "settings": {**settings.__dict__, "thresholds": dict(settings.thresholds)},
            "model": args.model,
            "t_end": T_END,
            "nx": nx,
            "repeat": args.repeat,
            "threads": torch.get_num_threads(),
            "wall_s_total": time.perf_counter() - t_start,
        },
    )
    print(summary)


if __name__ == "__main__":
    main()
