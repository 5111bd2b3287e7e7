"""Concurrent learning of the Boltzmann closure (``ledmus learn``, issues 25 and 26), judged
in the coupled loop it serves: the cell-local hybrid with the Boltzmann solver.

1. **Hybrid data**: the shipped ensemble's hybrid (``configs/hybrid_boltzmann.ymmsl``
   settings, 100 cells, N = 48, to t = 0.1) on four Riemann problems that are not test
   cases (:data:`VARIANTS`: weaker and stronger colliding streams, a Sod-like tube, a
   shear of streams) at ε = 0.1, 1, 10; their labelled kinetic cells
   (``kinetic_cells.npz``) go to a temporary folder.
2. **Learning**: ``learn()`` with the ``learn:`` section of ``configs/closure_boltzmann.
   yaml`` twice, both strategies each: ``closure data`` (the closure's own training cells
   and the loop's labels) and ``with hybrid cells`` (the same plus step 1's cells,
   ``learn.hybrid_data``).  Per iteration: test error (fair metric, member 0 alone on
   smooth0, Sod and the colliding streams at ε = 1e-3, 0.1, 10), held-out accurate
   ratio, labels, cells.
3. **Judged in the hybrid**: the shipped ensemble and each learned one on Sod and the
   colliding streams at ε = 0.01, 0.1, 1, 10 (the test cases): hybrid error, closure-alone
   error, mean kinetic fraction, S against the Boltzmann solver side by side (best of
   ``--repeat``, one thread).

    OMP_NUM_THREADS=1 python benchmarks/learn_boltzmann.py    # about 12 minutes on one core

Needs ``data/boltzmann/train.h5`` (``ledmus dataset boltzmann --out data/boltzmann``).
Writes ``benchmarks/out/learn_boltzmann.json`` and one ``learn_boltzmann_<run>.png`` per
learning run (held-out accurate ratio and test error per iteration).
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import yaml
from _hybrid_rows import CLOSURE_ONLY, timed
from _provenance import ROOT, write_result
from hybrid_boltzmann import settings_from

from ledmus import solvers
from ledmus.atomic import atomic_path
from ledmus.coupler.hybrid import HybridRun
from ledmus.coupler.hybrid_settings import HybridSettings
from ledmus.surrogates.checkpoint import load_model
from ledmus.surrogates.closure.boltzmann_ml import GAMMA
from ledmus.surrogates.closure.evaluate import fair_errors
from ledmus.surrogates.closure.evaluate_boltzmann import cases
from ledmus.surrogates.closure.learn_boltzmann import learn

#: left | right states (ρ, u, T) of the hybrid runs whose kinetic cells are the data
VARIANTS = {
    "colliding_0.7": ((1.0, 0.7, 1.0), (1.0, -0.7, 1.0)),
    "colliding_1.3": ((0.8, 1.3, 1.1), (1.2, -1.3, 0.9)),
    "sod_like": ((1.0, 0.0, 1.2), (0.2, 0.0, 0.7)),
    "streams": ((1.0, 0.5, 1.0), (0.5, -0.9, 1.2)),
}
HYBRID_EPS = (0.1, 1.0, 10.0)
JUDGE_EPS = (0.01, 0.1, 1.0, 10.0)
JUDGE_CASES = ("sod", "colliding")
NX, N, T_END = 100, 48, 0.1


def hybrid_data(
    ens, settings: HybridSettings, folder: Path, eps_values: tuple[float, ...] = HYBRID_EPS
) -> tuple[list[str], list[dict]]:
    """Step 1: the kinetic cells of the variants' hybrid runs at each ``eps_values``, one
    file per run."""
    x = (np.arange(NX) + 0.5) / NX
    left = (x < 0.5)[None]
    paths, rows = [], []
    for name, (lv, rv) in VARIANTS.items():
        prim = tuple(np.where(left, a, b) for a, b in zip(lv, rv, strict=True))
        for eps in eps_values:
            kin = solvers.make("boltzmann", eps=eps, nx=NX, N=N, bc="outflow", dt_coarse=0.005)
            run = HybridRun(kin, ens, kin.maxwellian(*prim)[0], settings)
            run.run(T_END)
            cells = run.labelled_cells()
            path = folder / f"{name}_eps{eps:g}.npz"
            with atomic_path(path) as part, open(part, "wb") as fh:
                np.savez(fh, **cells)
            paths.append(str(path))
            m = run.metrics()
            rows.append(
                {
                    "case": name,
                    "eps": eps,
                    "kinetic_cells": int(cells["f"].shape[1]),
                    "kinetic_fraction_mean": m["kinetic_fraction_mean"],
                }
            )
            print(f"hybrid data {name:14s} eps {eps:<4g} {cells['f'].shape[1]} cells", flush=True)
    return paths, rows


def judge(ensembles: dict[str, Path], settings: HybridSettings, repeat: int) -> list[dict]:
    """Step 3: each ensemble's hybrid and closure alone against the Boltzmann solver."""
    alone_settings = HybridSettings.parse({**CLOSURE_ONLY, "record": False})
    loaded = {k: load_model(p, kind="closure_boltzmann_hmm")[0] for k, p in ensembles.items()}
    rows = []
    for name, bc, prim in cases(NX):
        if name not in JUDGE_CASES:
            continue
        for eps in JUDGE_EPS:
            kin = solvers.make("boltzmann", eps=eps, nx=NX, N=N, bc=bc, dt_coarse=0.005)
            f0 = kin.maxwellian(*prim)
            w_kin, traj = timed(lambda kin=kin, f0=f0: kin.rollout(f0, T_END)[1], repeat)
            ref = kin.primitives(traj[:, -1])[0][[0, 1, 3]]
            for label, ens in loaded.items():

                def hybrid(s, kin=kin, f0=f0, ens=ens) -> HybridRun:
                    run = HybridRun(kin, ens, f0[0], s)
                    run.run(T_END)
                    return run

                w_hyb, run = timed(lambda: hybrid(settings), repeat)
                alone = hybrid(alone_settings)
                m = run.metrics()
                row = {
                    "ensemble": label,
                    "case": name,
                    "eps": eps,
                    "error_hybrid": float(fair_errors(run.primitives(), ref, GAMMA).max()),
                    "error_closure": float(fair_errors(alone.primitives(), ref, GAMMA).max()),
                    "kinetic_fraction_mean": m["kinetic_fraction_mean"],
                    "speedup": w_kin / w_hyb,
                }
                rows.append(row)
                print(
                    f"judge {label:22s} {name:9s} eps {eps:<5g} hybrid "
                    f"{row['error_hybrid'] * 100:5.2f}%  closure {row['error_closure'] * 100:5.2f}%"
                    f"  f_k {row['kinetic_fraction_mean']:.3f}  S {row['speedup']:.1f}",
                    flush=True,
                )
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default=str(ROOT / "configs" / "closure_boltzmann.yaml"))
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "out" / "learn_boltzmann.json"))
    ap.add_argument(
        "--hybrid-dir",
        default=None,
        help="keep step 1's kinetic_cells files in this folder (default: a temporary one)",
    )
    ap.add_argument(
        "--hybrid-only",
        action="store_true",
        help="stop after step 1 (the training config's data.hybrid_data comes from it)",
    )
    ap.add_argument(
        "--ensemble",
        default=None,
        help="the ensemble whose hybrid runs give step 1's cells and that learning starts "
        "from (default: the config's learn.ensemble)",
    )
    ap.add_argument(
        "--eps",
        type=float,
        nargs="+",
        default=list(HYBRID_EPS),
        help=f"Knudsen numbers of step 1's hybrid runs (default: {HYBRID_EPS})",
    )
    args = ap.parse_args()
    if not args.eps or min(args.eps) <= 0:
        ap.error(f"--eps: Knudsen numbers must be > 0, got {args.eps}")
    torch.set_num_threads(1)
    t_start = time.perf_counter()
    config = yaml.safe_load(Path(args.config).read_text())
    base = config.get("learn", {})
    shipped = ROOT / (args.ensemble or base.get("ensemble", "models/closure_boltzmann_hmm.pt"))
    ens = load_model(shipped, kind="closure_boltzmann_hmm")[0]
    settings = settings_from([])
    out = Path(args.out)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        keep = Path(args.hybrid_dir) if args.hybrid_dir else tmp
        keep.mkdir(parents=True, exist_ok=True)
        paths, data_rows = hybrid_data(ens, settings, keep, tuple(args.eps))
        if args.hybrid_only:
            return
        runs, ensembles = {}, {"shipped": shipped}
        for run_name, extra in (("closure_data", []), ("with_hybrid_cells", paths)):
            cfg = {**config, "learn": {**base, "ensemble": str(shipped), "hybrid_data": extra}}
            folder = tmp / run_name
            result = learn(cfg, folder, progress=False)
            runs[run_name] = result
            shutil.copy(folder / "learn.png", out.parent / f"{out.stem}_{run_name}.png")
            for strategy in result["runs"]:
                key = f"{run_name}/{strategy}"
                ensembles[key] = folder / f"ensemble_{strategy}.pt"
                r = result["runs"][strategy]
                errs = " ".join(f"{e['test_error']:.4f}" for e in r["iterations"])
                print(
                    f"learn {key:30s} test error {r['initial']['test_error']:.4f} -> {errs}",
                    flush=True,
                )
        judged = judge(ensembles, settings, args.repeat)
    for r in runs.values():
        for strategy in r["runs"].values():
            for e in strategy["iterations"]:
                e.pop("test_cases", None)  # the per-case errors: in the learn logs only
    summary = {}
    for key in ensembles:
        rows = [r for r in judged if r["ensemble"] == key]
        summary[key] = {
            "max_error_hybrid": max(r["error_hybrid"] for r in rows),
            "max_error_closure": max(r["error_closure"] for r in rows),
            "mean_kinetic_fraction": float(np.mean([r["kinetic_fraction_mean"] for r in rows])),
            "min_speedup": min(r["speedup"] for r in rows),
        }
    payload = {
        "config": args.config,
        "ensemble": str(shipped.relative_to(ROOT) if shipped.is_relative_to(ROOT) else shipped),
        "hybrid_eps": list(args.eps),
        "variants": {k: {"left": v[0], "right": v[1]} for k, v in VARIANTS.items()},
        "hybrid_data": data_rows,
        "learn": {
            k: {"setup_wall_s": v["setup_wall_s"], "config": v["config"], "runs": v["runs"]}
            for k, v in runs.items()
        },
        "judged": judged,
        "summary": summary,
        "threads": torch.get_num_threads(),
        "wall_s_total": time.perf_counter() - t_start,
    }
    print(f"wrote {write_result(out, payload)}")


if __name__ == "__main__":
    main()
