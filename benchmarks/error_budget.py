"""Where the coupled FHN error is made: the NAD of u per step of the shipped job
(configs/led_fhn.ymmsl, y05, 2000 Δt) split into its increments during macro steps and
during micro steps, for each T_m and each lifting strategy.

    OMP_NUM_THREADS=1 python benchmarks/error_budget.py --out benchmarks/out/error_budget.json

Per run: MNAD u; the sum and the mean of the NAD-u increments over macro steps (and over
the first five steps of each macro phase, and the later ones) and over micro steps; the
same split of the phase lag (time units, negative: behind the micro-only run) and the
final lag, mean lag and shape NAD (the NAD left after the best time shift), which say
how much of the error is phase and how much is shape.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import h5py
import numpy as np
import torch
from _provenance import write_result

from ledmus.coupler.engine import run_embedded
from ledmus.coupler.settings import read_ymmsl_settings, validate


def budget(nad_u: np.ndarray, source: np.ndarray, prefix: str = "") -> dict[str, float]:
    """Increments of ``nad_u`` (the steps after the warm-up; or of another per-step
    series, keys prefixed by ``prefix``) by the source of the step."""
    step = np.diff(nad_u)
    src = source[-len(nad_u) :][1:]
    run = np.zeros(len(src), dtype=int)  # position of each macro step in its phase
    for i, s in enumerate(src):
        run[i] = run[i - 1] + 1 if s == 1 and i > 0 else int(s == 1)
    macro, micro = src == 1, src == 0
    out = {
        "macro_sum": float(step[macro].sum()), "macro_mean": float(step[macro].mean()),
        "macro_first5_mean": float(step[macro & (run <= 5)].mean()),
        "macro_later_mean": float(step[macro & (run > 5)].mean()),
        "micro_sum": float(step[micro].sum()), "micro_mean": float(step[micro].mean()),
    }  # fmt: skip
    return {prefix + k: v for k, v in out.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ymmsl", default="configs/led_fhn.ymmsl")
    ap.add_argument("--t-macro", type=float, nargs="+", default=[10.0, 50.0])
    ap.add_argument("--liftings", nargs="+", default=["equilibrium", "chapman_enskog",
                                                      "constrained_runs"])  # fmt: skip
    ap.add_argument("--out", default="benchmarks/out/error_budget.json")
    args = ap.parse_args()
    torch.set_num_threads(1)
    raw = read_ymmsl_settings(args.ymmsl)
    rows = []
    for t_macro in args.t_macro:
        for lifting in args.liftings:
            settings = validate({**raw, "t_macro": t_macro, "lifting": lifting, "plots": False,
                                 "compare": True})  # fmt: skip
            with tempfile.TemporaryDirectory() as tmp:
                result = run_embedded(settings, tmp)
                with h5py.File(Path(tmp) / "trajectory.h5") as h5:
                    nad_u = h5["errors/nad_t/u"][()].reshape(-1)
                    lag = h5["errors/lag_t"][()].reshape(-1)
                    source = h5["source"][()].reshape(-1)
            row = {"t_macro": t_macro, "t_micro": settings.schedule.t_micro, "lifting": lifting,
                   "mnad_u": result["errors"]["mnad_u"], "mnad_v": result["errors"]["mnad_v"],
                   **budget(nad_u, source), **budget(lag, source, "lag_"),
                   **{k: result["errors"][k] for k in ("lag_final", "lag_mean", "shape_mnad")}}  # fmt: skip
            rows.append(row)
            print(row, flush=True)
    write_result(Path(args.out), {"ymmsl": args.ymmsl, "runs": rows})


if __name__ == "__main__":
    main()
