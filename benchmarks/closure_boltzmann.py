"""The ML moment closure of the 2-D-velocity Boltzmann gas against the Boltzmann solver
(issue 25 acceptance).

Held-out cases (four smooth periodic profiles, Sod, colliding shocks; the ``transition``
case with ε(x) from 1e-3 to 10; ledmus/surrogates/closure/evaluate_boltzmann.py) at ε =
1e-3 … 10 on 100 cells to t = 0.1: the fair error (relative L2 of ρ and T, u error over
the sound speed's norm) of the ML closure (models/closure_boltzmann.pt), Euler and
Navier–Stokes against the Boltzmann solver at N = 48 (the seed's velocity grid), and
the wall time of each model against the solver over the same batch of profiles, side
by side in one process, one thread.

    python benchmarks/closure_boltzmann.py          # about 9 minutes on one core
    python benchmarks/closure_boltzmann.py --model models/closure_boltzmann_wide.pt \
        --repeat 2 --json benchmarks/out/closure_boltzmann_wide.json

``--repeat R`` runs R rounds per case group and keeps each one's best: a round runs the
solver once and then each model back to back for ``--min-time`` seconds (default 2; their
mean wall), so a model's 0.3 s run does not catch one fast or slow moment of a machine
whose speed drifts, and the two walls are sampled over the same stretch of time (the runs
are deterministic, so only the wall times change).

Also the Galilean check (evaluate_boltzmann.galilean): the error of a smooth case and of
the same case boosted by u + 0.5 at ε = 0.01 and 1.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")  # before numpy: one thread, as documented

import argparse  # noqa: E402
import time  # noqa: E402

import torch  # noqa: E402
from _provenance import ROOT, add_json_option, write_result  # noqa: E402

from ledmus.surrogates.checkpoint import load_model  # noqa: E402
from ledmus.surrogates.closure.evaluate_boltzmann import (  # noqa: E402
    MIN_TIMED_S,
    evaluate,
    galilean,
)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--model", default=str(ROOT / "models/closure_boltzmann.pt"))
    ap.add_argument("--N", type=int, default=48, help="velocities per axis of the reference")
    ap.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="rounds per case group (solver once, then each model for --min-time); best kept",
    )
    ap.add_argument(
        "--min-time",
        type=float,
        default=MIN_TIMED_S,
        help="seconds of back-to-back runs each model's wall is the mean of, per round",
    )
    add_json_option(ap, "benchmarks/out/closure_boltzmann.json")
    args = ap.parse_args()
    if args.repeat < 1:
        ap.error(f"--repeat must be >= 1, got {args.repeat}")
    if not args.min_time >= 0:
        ap.error(f"--min-time must be >= 0 seconds, got {args.min_time}")
    torch.set_num_threads(1)
    net, payload = load_model(args.model, kind="closure_boltzmann")
    start = time.perf_counter()
    res = evaluate(net, N=args.N, progress=True, repeat=args.repeat, min_time=args.min_time)
    res["galilean"] = galilean(net, N=args.N)
    res["wall_s_total"] = time.perf_counter() - start
    res["model"] = {"path": os.path.relpath(args.model, ROOT), "config": payload.get("config")}
    fair = res["fair"]["ml"]
    res["summary"] = {
        "ml_max_fair": max(res["fair_max"]["ml"].values()),
        "ml_max_fair_smooth": max(
            max(v) for c in fair.values() for k, v in c.items() if k.startswith("smooth")
        ),
        "ml_max_fair_shocks": max(
            max(c[k]) for k2, c in fair.items() if k2 != "transition" for k in ("sod", "colliding")
        ),
        "ml_max_fair_transition": max(max(v) for v in fair["transition"].values()),
        "ml_speedup_min": min(res["speedup"]["ml"].values()),
        "galilean_max_difference": max(
            abs(v["difference"]) for v in res["galilean"]["eps"].values()
        ),
    }
    print(res["summary"])
    print("| ε | " + " | ".join(f"{m} err | {m} S" for m in res["models"]) + " |")
    for key in res["eps"]:
        cells = []
        for m in res["models"]:
            e, s = res["fair_max"][m].get(key), res["speedup"][m].get(key)
            cells += ["–" if e is None else f"{100 * e:.2f} %", "–" if s is None else f"{s:.0f}"]
        print(f"| {key} | " + " | ".join(cells) + " |")
    write_result(args.json, {**res, "threads": 1})
    print(f"# wrote {args.json}")


if __name__ == "__main__":
    main()
