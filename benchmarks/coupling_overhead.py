"""Coupling overhead: the same FHN job under MUSCLE3 (four processes, messages over TCP)
and embedded (one process), side by side in one run.

For each window size the job is ``configs/led_fhn.ymmsl`` (batch 1, y05, T_mu = 10,
t_end 2000, no micro-only reference) with ``t_macro`` set; both engines report the wall
time of the coupled loop in ``metrics.json`` (start-up of the processes excluded; also
printed: the whole command's wall time).  The engines alternate run by run (best of
``--repeats`` each).  Per-exchange cost = (MUSCLE3 loop - embedded loop) / number of micro
windows; each window is one round trip macro -> lift -> micro -> restrict -> macro.

    python benchmarks/coupling_overhead.py [--t-macro 10 50 200] [--repeats 2] [--ensemble B]
                                           [--model PT] [--profile all|none] [--json PATH]

Writes ``rows`` (one per T_m: ``ensemble``, ``t_macro``, ``t_micro``, ``windows``,
``embedded_loop_s``, ``muscle3_loop_s``, ``ratio``, ``per_exchange_ms``,
``embedded_command_s``, ``muscle3_command_s``, and ``embedded_parts_s`` /
``muscle3_parts_s``: the split of the best loop into macro, lift, micro, restrict,
coupling and recording time; ``per_exchange_outside_micro_ms``: the same per-exchange
difference with each loop's micro-solver time taken out; ``embedded_loops_s`` /
``muscle3_loops_s``: every repeat), ``settings`` and ``provenance`` to
``--json`` (default ``benchmarks/out/coupling_overhead.json`` for ensemble 1,
``benchmarks/out/coupling_overhead_ens<B>.json`` otherwise, so both README runs are kept).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml
from _provenance import write_result

ROOT = Path(__file__).resolve().parents[1]


JOB = ROOT / "configs" / "led_fhn.ymmsl"
#: the wall-time split of ``metrics.json`` kept per engine (from the best loop): the same
#: computations take longer in a component process that slept while the others worked
PARTS = ("macro_s", "lift_s", "micro_s", "restrict_s", "coupling_s", "record_s")


def job(tmp: Path, name: str, settings: dict) -> Path:
    """``configs/led_fhn.ymmsl`` with ``settings`` overridden, written to ``tmp``."""
    doc = yaml.safe_load(JOB.read_text())
    doc["settings"].update(settings)
    path = tmp / f"{name}.ymmsl"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def run(cmd: list[str], env: dict) -> float:
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env)
    if proc.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--t-macro", type=float, nargs="+", default=[10, 50, 200])
    ap.add_argument("--t-end", type=float, default=2000.0)
    ap.add_argument("--ensemble", type=int, default=1)
    ap.add_argument("--model", help="checkpoint instead of the job's (e.g. models/led_fhn.pt)")
    ap.add_argument("--repeats", type=int, default=2, help="best of N for each engine")
    ap.add_argument(
        "--profile",
        choices=("all", "none"),
        default="all",
        help="libmuscle's muscle_profile_level (profiling events to the manager)",
    )
    ap.add_argument("--json", metavar="PATH",
                    help="where to write the results (default benchmarks/out/coupling_overhead"
                         ".json, or coupling_overhead_ens<B>.json for an ensemble B > 1)")  # fmt: skip
    args = ap.parse_args()
    if args.json is None:
        suffix = "" if args.ensemble == 1 else f"_ens{args.ensemble}"
        args.json = f"benchmarks/out/coupling_overhead{suffix}.json"
    bindir = Path(sys.executable).parent
    env = dict(os.environ, OMP_NUM_THREADS="1", PATH=f"{bindir}{os.pathsep}{os.environ['PATH']}")
    tmp = Path(tempfile.mkdtemp())
    model = args.model or yaml.safe_load(JOB.read_text())["settings"]["model"]
    rows = []
    for t_m in args.t_macro:
        over = dict(t_macro=float(t_m), t_end=float(args.t_end), compare=False, plots=False,
                    ensemble=args.ensemble, muscle_profile_level=args.profile)  # fmt: skip
        path = job(tmp, f"tm{t_m:g}", {**over, "model": model})
        runs: dict[str, list[tuple[float, float, dict]]] = {"embedded": [], "muscle3": []}
        # the engines alternate, so a drift of the machine's speed hits both alike
        for k in range(args.repeats):
            for engine in ("embedded", "muscle3"):
                run_dir = tmp / f"{engine}_{t_m:g}_{k}"
                run_dir.mkdir()
                if engine == "muscle3":
                    cmd = [str(bindir / "muscle_manager"), "--start-all", str(path),
                           "--run-dir", str(run_dir)]  # fmt: skip
                    metrics_file = run_dir / "output" / "metrics.json"
                else:
                    cmd = [sys.executable, "-m", "ledmus", "-q", "run", str(path),
                           "--run-dir", str(run_dir)]  # fmt: skip
                    metrics_file = run_dir / "metrics.json"
                total = run(cmd, env)
                m = json.loads(metrics_file.read_text())
                runs[engine].append((m["wall_s"], total, {k: m[k] for k in PARTS}))
                windows = m["windows"]
        (emb, _, emb_parts), (m3, _, m3_parts) = (min(runs[e], key=lambda r: r[0]) for e in runs)
        emb_total, m3_total = (min(r[1] for r in runs[e]) for e in runs)
        # the same difference without the micro solver's own time, whose run-to-run spread
        # on this machine (a few per cent of the loop) is larger than the coupling's cost
        outside = (m3 - m3_parts["micro_s"]) - (emb - emb_parts["micro_s"])
        rows.append({"ensemble": args.ensemble, "t_macro": t_m, "t_micro": 10.0, "windows": windows, "embedded_loop_s": emb,
                     "muscle3_loop_s": m3, "ratio": m3 / emb, "per_exchange_ms": 1e3 * (m3 - emb) / windows,
                     "per_exchange_outside_micro_ms": 1e3 * outside / windows,
                     "embedded_loops_s": [r[0] for r in runs["embedded"]],
                     "muscle3_loops_s": [r[0] for r in runs["muscle3"]],
                     "embedded_command_s": emb_total, "muscle3_command_s": m3_total,
                     "embedded_parts_s": emb_parts, "muscle3_parts_s": m3_parts})  # fmt: skip
        print(json.dumps(rows[-1]))
    print(
        "\n| T_m / T_mu | windows | embedded loop (s) | MUSCLE3 loop (s) | ratio | per exchange (ms) | whole command: embedded / MUSCLE3 (s) |"
    )
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['t_macro']:g} / 10 | {r['windows']} | {r['embedded_loop_s']:.2f} | {r['muscle3_loop_s']:.2f} "
              f"| {r['ratio']:.3f} | {r['per_exchange_ms']:.1f} | {r['embedded_command_s']:.1f} / {r['muscle3_command_s']:.1f} |")  # fmt: skip
    out = write_result(args.json, {"benchmark": "coupling_overhead", "rows": rows,
                                   "settings": {"t_macro": args.t_macro, "t_end": args.t_end,
                                                "ensemble": args.ensemble, "repeats": args.repeats,
                                                "profile": args.profile, "omp_num_threads": 1,
                                                "model": model}})  # fmt: skip
    print(f"# wrote {out}")


if __name__ == "__main__":
    main()
