"""Demonstration (b) of issue 9: an FHN run with no model at all (cold start).

``model: none`` with ``training: configs/fhn.yaml``: the run starts micro-only from y05;
the online trainer (in this process, ``--online`` mode) builds its data from the micro
windows and fine-tunes a fresh LED; the adaptive schedule switches to macro wherever the
comparison window accepts it.  Measured side by side in one process: the micro solver
alone (the reference) and the cold-start run.  Per block of 1000 Δt: macro utilisation
and MNAD u against the micro-only run; overall MNAD u and S = reference wall / run wall
(training included: it runs in this process).  Plot: cold_start_fhn.png beside the JSON.

    OMP_NUM_THREADS=1 python benchmarks/cold_start_fhn.py --out benchmarks/out/cold_start_fhn.json
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from _provenance import ROOT, write_result
from _settings import add_set_option, overrides
from adaptive_fhn import blocks, plot, run

from ledmus.coupler.run import micro_reference
from ledmus.coupler.settings import read_ymmsl_settings, validate


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks/out/cold_start_fhn.json")
    ap.add_argument("--t-end", type=float, default=20000.0)
    ap.add_argument("--online", default="deterministic", choices=("deterministic", "asynchronous"))
    ap.add_argument(
        "--lr", type=float, default=1e-3, help="online_lr (fresh weights: the offline rate)"
    )
    ap.add_argument("--max-error", type=float, default=0.01)
    ap.add_argument("--error-budget", type=float, default=0.0, help="error_budget setting")
    add_set_option(ap, "setting of the run")
    args = ap.parse_args()
    over = overrides(ap, args.set)
    torch.set_num_threads(1)
    raw = read_ymmsl_settings(ROOT / "configs/online_fhn.ymmsl")
    raw.update(t_end=args.t_end, param_schedule="", compare=False, plots=False, model="none",
               training=str(ROOT / "configs/fhn.yaml"), online=args.online, online_lr=args.lr,
               max_error=args.max_error, error_budget=args.error_budget)  # fmt: skip
    raw.update(over)
    settings = validate(raw)
    members = np.arange(1)
    ref, ref_wall = micro_reference(settings, members)
    out = {"t_end": args.t_end, "online": args.online, "online_lr": args.lr,
           "max_error": args.max_error, "error_budget": args.error_budget,
           "settings_overrides": over, "micro_only_wall_s": ref_wall, "runs": {}}  # fmt: skip
    coord, wall = run(settings, members)
    rec = coord.recorder
    frac, err, total = blocks(
        rec.states,
        ref,
        rec.source,
        settings.schedule.n_warm + 1,
        round(1000 / settings.schedule.dt),
    )
    out["runs"]["cold_start"] = {
        "wall_s": wall, "speedup": ref_wall / wall, "mnad_u": total,
        "macro_fraction": float((rec.source == 1).mean()),
        "macro_fraction_blocks": frac, "mnad_u_blocks": err,
        "interventions": dict(coord.interventions), "comparisons": dict(coord.comparisons),
        "trainer": coord.learning.summary(), "restart_error": coord.restart_report(),
    }  # fmt: skip
    print(f"cold start: S {ref_wall / wall:.2f}, MNAD u {total:.4f}, macro "
          f"{out['runs']['cold_start']['macro_fraction']:.3f}", flush=True)  # fmt: skip
    write_result(args.out, out)
    plot(out, args.out.with_suffix(".png"), changes=())
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
