"""Boltzmann solver (2-D velocity, fast spectral): cost per step and per run, and the BKW
spectral convergence table.

Cost: ``nx`` cells (default 100), Sod initial condition, the default solver (eps = 0.01,
ARS(2,2,2), 4 directions, v_support 4) at N = 16, 32, 48: seconds per micro step (mean
over the run) and seconds per run to ``t = 0.1`` (one ensemble member).  Run it with
``OMP_NUM_THREADS=1`` for the one-thread figures (torch's intra-op threads are set to 1
too).  BKW: relative L-inf error of the space-homogeneous solver (RK4, dt = 0.05) against
the exact 2-D Maxwell-molecule BKW solution at t = 1 and t = 5, N = 16, 24, 32, 48.

    OMP_NUM_THREADS=1 python benchmarks/boltzmann.py [--nx 100] [--t-end 0.1]
                                                     [--json benchmarks/out/boltzmann_cost.json]
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np
import torch
from _provenance import add_json_option, write_result

from ledmus.solvers.boltzmann import Boltzmann


def bkw(v: np.ndarray, t: float) -> np.ndarray:
    """Exact BKW solution, b = 1/(2 pi), rho = T = 1 (see the solver's module docstring)."""
    K = 1.0 - math.exp(-t / 8.0) / 2.0
    vx, vy = np.meshgrid(v, v, indexing="ij")
    r2 = vx**2 + vy**2
    return np.exp(-r2 / (2 * K)) / (2 * np.pi * K**2) * (2 * K - 1 + (1 - K) * r2 / (2 * K))


def cost(N: int, nx: int, t_end: float) -> dict:
    s = Boltzmann(N=N, nx=nx, dt_coarse=t_end)
    f = s.lift(s.initial_condition("sod", 1, np.random.default_rng(0)))
    s._step(f, 0.0, None)  # warm-up (allocations, FFT plans)
    start = time.perf_counter()
    s.advance(f, 0.0, t_end)
    run = time.perf_counter() - start
    n = s.steps_per_coarse
    return {
        "N": N,
        "nx": nx,
        "t_end": t_end,
        "dt": s.dt,
        "steps": n,
        "n_directions": s.n_directions,
        "s_per_step": run / n,
        "s_per_run": run,
    }


def bkw_table() -> list[dict]:
    rows = []
    for N in (16, 24, 32, 48):
        s = Boltzmann(N=N, nx=4)
        f1 = s.relax(bkw(s.v, 0.0), 1.0, 0.05)
        f5 = s.relax(f1, 4.0, 0.05)
        err = [
            float(np.abs(f - bkw(s.v, t)).max() / bkw(s.v, t).max())
            for f, t in ((f1, 1.0), (f5, 5.0))
        ]
        rows.append({"N": N, "v_box": s.v_box, "h": s.h, "err_t1": err[0], "err_t5": err[1]})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--nx", type=int, default=100)
    ap.add_argument("--t-end", type=float, default=0.1)
    ap.add_argument("--sizes", type=int, nargs="+", default=[16, 32, 48])
    add_json_option(ap, "benchmarks/out/boltzmann_cost.json")
    args = ap.parse_args()
    torch.set_num_threads(1)
    print(f"# torch {torch.__version__}, {torch.get_num_threads()} thread(s), float64, CPU")
    print("| N | directions | dt | steps | s/step | s/run |")
    print("|---|---|---|---|---|---|")
    costs = []
    for N in args.sizes:
        c = cost(N, args.nx, args.t_end)
        costs.append(c)
        print(
            f"| {N} | {c['n_directions']} | {c['dt']:.3g} | {c['steps']} | "
            f"{c['s_per_step']:.4f} | {c['s_per_run']:.2f} |",
            flush=True,
        )
    print("\n| N | h | BKW err t=1 | BKW err t=5 |\n|---|---|---|---|")
    table = bkw_table()
    for r in table:
        print(f"| {r['N']} | {r['h']:.3f} | {r['err_t1']:.2e} | {r['err_t5']:.2e} |")
    out = write_result(
        args.json, {"benchmark": "boltzmann", "threads": 1, "cost": costs, "bkw": table}
    )
    print(f"# wrote {out}")


if __name__ == "__main__":
    main()
