"""Cell-local hybrid of the Boltzmann closure ensemble and the 2-D-velocity Boltzmann
solver (issues 25 and 26): error, kinetic fraction and speed-up per case and ε, beside
the closure alone, Euler and Navier–Stokes.

Cases (nx = 100 cells of [0, 1), t = 0 … 0.1, all from local equilibrium): the held-out
periodic profiles ``smooth0`` … ``smooth3`` and ``sod`` and ``colliding`` (outflow) of
the closure's acceptance protocol (:func:`~ledmus.surrogates.closure.evaluate_boltzmann.
cases`).  For each ε in {1e-3, 1e-2, 0.1, 1, 10}: the Boltzmann run at N = 48 (the
reference and the solver the hybrid replaces), the hybrid with the shipped ensemble
``models/closure_boltzmann_hmm.pt`` (settings: the defaults of ``configs/
hybrid_boltzmann.ymmsl``, or ``--set``), the closure alone (the hybrid with no kinetic
cell: member 0 on every cell), Euler (γ = 2) and NS (ε ≤ 0.1).  Error: the fair metric
(relative L2 of ρ and T, u over the norm of the sound speed √(2T)), the largest of the
three, at t = 0.1.  S = Boltzmann wall / hybrid wall, side by side in one process at one
thread, best of ``--repeat``; the cost model ``1/(f_k + (1 - f_k)/S_c)`` with the mean
kinetic fraction ``f_k`` and the closure alone's measured ``S_c``; the conservation
error of the hybrid.  The ε(x) case: ``smooth0`` and ``sod`` with ε rising from 1e-3 to
10 across the box (``eps="transition"``; key ``transition`` of the JSON; NS does not run).

    OMP_NUM_THREADS=1 python benchmarks/hybrid_boltzmann.py     # about 7.5 minutes on one core
    OMP_NUM_THREADS=1 python benchmarks/hybrid_boltzmann.py --repeat 1 \
        --cases sod,colliding --eps 0.1,1,10 --no-transition \
        --set criteria=deviation,realisability \
        --out benchmarks/out/hybrid_boltzmann_deviation_only.json   # the ensemble signal alone
    OMP_NUM_THREADS=1 python benchmarks/hybrid_boltzmann.py --repeat 1 \
        --cases smooth0,smooth1,smooth2,smooth3 --eps 1,10 --no-transition \
        --set criteria=deviation,realisability,kn_gll --set threshold_kn_gll=0.2 \
        --out benchmarks/out/hybrid_boltzmann_kn_gll.json   # kn_gll on smooth profiles

Plots (ρ over x and t with the kinetic region) for Sod and the colliding streams at
ε = 1e-3, 0.1 and 10 go beside the JSON, named after it.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from _hybrid_rows import CLOSURE_ONLY, hybrid_row, timed
from _hybrid_rows import summary as common_summary
from _provenance import ROOT, write_result

from ledmus import solvers
from ledmus.coupler.hybrid import HybridRun, plot_kinetic_region
from ledmus.coupler.hybrid_settings import HybridSettings
from ledmus.surrogates.checkpoint import load_model
from ledmus.surrogates.closure.boltzmann_ml import GAMMA
from ledmus.surrogates.closure.classical import relaxation_rates
from ledmus.surrogates.closure.evaluate import fair_errors
from ledmus.surrogates.closure.evaluate_boltzmann import NS_EPS_MAX, cases, model_solver
from ledmus.surrogates.closure.fv import conserved, primitive

EPS = (1e-3, 1e-2, 0.1, 1.0, 10.0)
CASES = ("smooth0", "smooth1", "smooth2", "smooth3", "sod", "colliding")
T_END = 0.1
N = 48
#: the cases also run with ε(x) rising from 1e-3 to 10 (the seed's transition)
TRANSITION_CASES = ("smooth0", "sod")


def settings_from(items: list[str]) -> HybridSettings:
    """The hybrid settings of ``configs/hybrid_boltzmann.ymmsl`` with ``--set`` on top."""
    import yaml

    raw = yaml.safe_load((ROOT / "configs" / "hybrid_boltzmann.ymmsl").read_text())["settings"]
    names = {
        "criteria",
        "buffer",
        "hysteresis",
        "lift_ghosts",
        *(k for k in raw if k.startswith("threshold_")),
    }
    over = {k: v for k, v in raw.items() if k in names}
    for item in items:
        k, _, v = item.partition("=")
        over[k] = v
    return HybridSettings.parse(over)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=str(ROOT / "models" / "closure_boltzmann_hmm.pt"))
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--nx", type=int, default=100, help="cells (the acceptance protocol: 100)")
    ap.add_argument("--cases", default=",".join(CASES))
    ap.add_argument("--eps", default=",".join(f"{e:g}" for e in EPS))
    ap.add_argument("--set", action="append", default=[], help="hybrid setting name=value")
    ap.add_argument(
        "--no-transition", dest="transition", action="store_false", help="skip the ε(x) runs"
    )
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "out" / "hybrid_boltzmann.json"))
    args = ap.parse_args()
    torch.set_num_threads(1)
    ens, _ = load_model(args.model, kind="closure_boltzmann_hmm")
    settings = settings_from(args.set)
    closure_only = HybridSettings.parse({**CLOSURE_ONLY, "record": False})
    rates = relaxation_rates(solvers.make("boltzmann", N=N, nx=4))
    wanted = args.cases.split(",")
    rows, t_start = [], time.perf_counter()
    out_dir = Path(args.out).parent
    nx = args.nx

    def one(name: str, bc: str, prim: tuple, eps) -> dict:
        kin = solvers.make("boltzmann", eps=eps, nx=nx, N=N, bc=bc, dt_coarse=0.005)
        f0 = kin.maxwellian(*prim)
        w_kin, traj = timed(lambda: kin.rollout(f0, T_END)[1], args.repeat)
        ref = kin.primitives(traj[:, -1])[0][[0, 1, 3]]

        def hybrid(s: HybridSettings) -> HybridRun:
            run = HybridRun(kin, ens, f0[0], s)
            run.run(T_END)
            return run

        w_hyb, run = timed(lambda: hybrid(settings), args.repeat)
        w_cl, alone = timed(lambda: hybrid(closure_only), args.repeat)
        errors = {}
        for model in ("euler", "ns"):
            if model == "ns" and (isinstance(eps, str) or eps > NS_EPS_MAX):
                errors[model] = None
                continue
            fv = model_solver(model, None, eps, bc, nx, rates)
            Q = conserved(*prim, np.zeros((1, fv.closure.n_moments - 3, nx)), GAMMA)
            final = np.stack(primitive(fv.advance(Q, T_END), GAMMA), axis=1)[0]
            errors[model] = float(fair_errors(final, ref, GAMMA).max())
        walls = {"kinetic": w_kin, "hybrid": w_hyb, "closure": w_cl}
        row = hybrid_row(name, eps, run, alone, ref, errors, walls, "boltzmann", GAMMA)
        s_c = row["speedup_closure"]
        label = eps if isinstance(eps, str) else f"{eps:g}"
        if name in ("sod", "colliding") and label in ("0.001", "0.1", "10", "transition"):
            plot_kinetic_region(run, out_dir / f"{Path(args.out).stem}_{name}_eps{label}.png")
        ns = "   -   " if row["error_ns"] is None else f"{row['error_ns'] * 100:6.2f}%"
        print(
            f"{name:10s} eps {label:<10s} hybrid {row['error_hybrid'] * 100:6.2f}%  closure "
            f"{row['error_closure'] * 100:6.2f}%  euler {row['error_euler'] * 100:6.2f}%  "
            f"ns {ns}  f_k {row['kinetic_fraction_mean']:.3f}"
            f"  S {row['speedup']:.1f} (model {row['speedup_model']:.1f}, closure "
            f"{s_c:.1f})  cons {row['conservation_error']:.1e}",
            flush=True,
        )
        return row

    every = cases(nx)
    for name, bc, prim in every:
        if name in wanted:
            for eps in (float(e) for e in args.eps.split(",") if e):
                rows.append(one(name, bc, prim, eps))
    transition = [
        one(name, bc, prim, "transition")
        for name, bc, prim in every
        if name in wanted and name in TRANSITION_CASES and args.transition
    ]
    rows_all = rows + transition
    riemann = [r for r in rows if r["case"] in ("sod", "colliding")]
    summary = {
        **common_summary(rows_all),
        "speedup_min_eps_le_0.01": min(
            (r["speedup"] for r in rows if r["eps"] <= 0.01), default=None
        ),
        "speedup_min_riemann_eps_ge_0.1": min(
            (r["speedup"] for r in riemann if r["eps"] >= 0.1), default=None
        ),
        "speedup_closure_range": [
            min(r["speedup_closure"] for r in rows_all),
            max(r["speedup_closure"] for r in rows_all),
        ],
    }
    write_result(
        args.out,
        {
            "rows": rows,
            "transition": transition,
            "summary": summary,
            "settings": {**settings.__dict__, "thresholds": dict(settings.thresholds)},
            "model": args.model,
            "N": N,
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
