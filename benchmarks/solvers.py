"""Micro-solver throughput: micro steps/s at batch 1 and 64, and peak memory.

Each solver runs at its paper parameters from its default initial condition; the state is
advanced ``--seconds`` of wall time (after one warm-up coarse step) and the rate is
micro steps per second of the whole batch (one step = every member advanced by dt).
Member-steps/s = steps/s x batch.  Peak memory is the state plus what numpy allocates in one
chunk of steps (tracemalloc, measured in a separate untimed pass).

    python benchmarks/solvers.py [--seconds 2] [--batches 1 64] [--systems fhn ks ad3d rw bgk]
                                 [--json benchmarks/out/solvers.json]

The boltzmann solver keeps its state in torch (tracemalloc does not see torch's memory, so
its peak is the state alone); its cost at N = 16, 32, 48 and its BKW convergence table are
in ``benchmarks/boltzmann.py`` (``benchmarks/out/boltzmann_cost.json``).

The 3-D-velocity solver (``boltzmann3d``, hard spheres, default 2 polar nodes, 100 cells)
is timed as ``benchmarks/boltzmann.py`` times the 2-D one, at N = 16 and 24 (``RUNS``):
one ensemble member from the Sod state (the default initial condition) run to ``t = 0.1``
(``--run-t-end``) with ``dt_coarse = t_end`` (the CFL time step), on one torch thread,
after a warm-up step; ``--batches`` and ``--seconds`` do not apply.  Its rows add
``params``, ``t_end``, ``steps``, ``s_per_step`` and ``s_per_run`` to the fields below
(``steps_per_s = 1/s_per_step``, batch 1).  Only those rows, in their own file:

    OMP_NUM_THREADS=1 python benchmarks/solvers.py --systems boltzmann3d \
        --json benchmarks/out/solvers_boltzmann3d.json

Writes the table's numbers to ``--json``: ``cases`` (one per system and batch:
``system``, ``batch``, ``steps_per_s``, ``member_steps_per_s``, ``peak_mib``,
``target_steps_per_s``, ``target_met``, ``dt``, ``label``), ``seconds``, ``provenance``.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
import tracemalloc

import numpy as np
from _provenance import add_json_option, write_result

from ledmus.solvers import make, names

TARGETS = {"fhn": 20_000, "ks": 10_000, "ad3d": 10_000, "rw": 500}  # steps/s at batch 1
LABELS = {
    "rw": "rw (250k particles)",
    "bgk": "bgk (64 v x 100 cells)",
    "boltzmann": "boltzmann (32x32 v x 100 cells)",
}  # README names
#: systems timed per step and per run to ``--run-t-end`` (one member), one row per
#: parameter set: (parameters over the system's defaults, label)
RUNS = {
    "boltzmann3d": (
        ({"N": 16}, "boltzmann3d (16^3 v x 100 cells)"),
        ({"N": 24}, "boltzmann3d (24^3 v x 100 cells)"),
    ),
}


def measure(system: str, batch: int, seconds: float) -> tuple[float, float]:
    solver = make(system)
    rng = np.random.default_rng(0)
    state = solver.lift(solver.initial_condition(None, batch, rng), rng)
    state = solver.advance(state, 0.0, solver.dt_coarse, rng)  # warm-up
    chunk = max(1, solver.steps_per_coarse // 10)
    steps, t = 0, solver.dt_coarse
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        state = solver.advance(state, t, chunk * solver.dt, rng)
        steps += chunk
        t += chunk * solver.dt
    elapsed = time.perf_counter() - start
    # memory in a separate pass: tracemalloc slows small-array numpy calls several-fold
    tracemalloc.start()
    state = solver.advance(state, t, chunk * solver.dt, rng)
    peak = tracemalloc.get_traced_memory()[1] + _nbytes(state)
    tracemalloc.stop()
    return steps / elapsed, peak / 2**20


def measure_run(system: str, params: dict, t_end: float) -> dict:
    """Seconds per micro step and per run to ``t_end`` of one member from the default
    initial condition, ``dt_coarse = t_end``, one torch thread (as benchmarks/boltzmann.py)."""
    import torch

    torch.set_num_threads(1)
    solver = make(system, **params, dt_coarse=t_end)
    rng = np.random.default_rng(0)
    state = solver.lift(solver.initial_condition(None, 1, rng), rng)
    solver.advance(state, 0.0, solver.dt, rng)  # warm-up (allocations, FFT plans)
    start = time.perf_counter()
    state = solver.advance(state, 0.0, t_end, rng)
    run = time.perf_counter() - start
    steps = solver.steps_per_coarse
    return {"params": params, "t_end": t_end, "dt": solver.dt, "steps": steps,
            "s_per_step": run / steps, "s_per_run": run, "peak_mib": _nbytes(state) / 2**20}  # fmt: skip


def _nbytes(state) -> int:
    return sum(a.nbytes for a in state) if isinstance(state, tuple) else state.nbytes


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--seconds", type=float, default=2.0, help="timed wall time per case")
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 64])
    ap.add_argument("--systems", nargs="+", default=list(names()), choices=names())
    ap.add_argument("--run-t-end", type=float, default=0.1,
                    help="end time of the per-run rows (RUNS: boltzmann3d)")  # fmt: skip
    add_json_option(ap, "benchmarks/out/solvers.json")
    args = ap.parse_args()
    print(
        f"# {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"numpy {np.__version__}, python {platform.python_version()}"
    )
    print("| system | batch | micro steps/s | member-steps/s | peak MiB | target (batch 1) |")
    print("|---|---|---|---|---|---|")
    cases, runs = [], []
    for system in args.systems:
        for params, label in RUNS.get(system, ()):
            r = measure_run(system, params, args.run_t_end)
            rate = 1.0 / r["s_per_step"]
            print(
                f"| {label} | 1 | {rate:,.1f} | {rate:,.1f} | {r['peak_mib']:.2f} | |", flush=True
            )
            runs.append((label, r))
            cases.append({"system": system, "label": label, "batch": 1, **r,
                          "steps_per_s": rate, "member_steps_per_s": rate,
                          "target_steps_per_s": None, "target_met": None})  # fmt: skip
        for batch in args.batches if system not in RUNS else ():
            rate, peak = measure(system, batch, args.seconds)
            target = TARGETS.get(system) if batch == 1 else None
            verdict = ""
            if target:
                verdict = f">= {target:,}: {'met' if rate >= target else 'MISSED'}"
            print(
                f"| {system} | {batch} | {rate:,.0f} | {rate * batch:,.0f} | {peak:.2f} | {verdict} |",
                flush=True,
            )
            cases.append({"system": system, "label": LABELS.get(system, system), "batch": batch,
                          "dt": make(system).dt, "steps_per_s": rate,
                          "member_steps_per_s": rate * batch, "peak_mib": peak,
                          "target_steps_per_s": target,
                          "target_met": None if target is None else rate >= target})  # fmt: skip
    if runs:
        print(f"\n| system | dt | steps to t = {args.run_t_end:g} | s/step | s/run |")
        print("|---|---|---|---|---|")
        for label, r in runs:
            print(f"| {label} | {r['dt']:.3g} | {r['steps']} | {r['s_per_step']:.4f} | "
                  f"{r['s_per_run']:.2f} |")  # fmt: skip
    out = write_result(args.json, {"benchmark": "solvers", "seconds": args.seconds,
                                   "batches": args.batches, "run_t_end": args.run_t_end,
                                   "cases": cases})  # fmt: skip
    print(f"# wrote {out}")


if __name__ == "__main__":
    main()
