"""Demonstration (c) of issue 9: initial conditions the shipped FHN model never saw.

Four kinds built from the test state y05 (the model was trained on y00-y02): its mirror
image x -> L - x (the pulse travels the other way), y05 rolled by a quarter of the domain
(the pulse elsewhere, its tail cut at the wall), y05 with the recovery variable v halved,
and the rest state with a Gaussian bump in u at the centre (two pulses leave it).  For
each, side by side in one process against the micro-only run: fixed rho = 5 (T_m = 50,
T_mu = 10) with the frozen model, the adaptive schedule with the frozen model, and the
adaptive schedule with deterministic online training (configs/online_fhn.ymmsl settings).

    OMP_NUM_THREADS=1 python benchmarks/ood_fhn.py --out benchmarks/out/ood_fhn.json
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import torch
from _provenance import ROOT, write_result
from _settings import add_set_option, overrides
from adaptive_fhn import blocks, run

from ledmus import solvers
from ledmus.coupler.run import micro_reference
from ledmus.coupler.settings import read_ymmsl_settings, validate


def kinds() -> dict[str, np.ndarray]:
    """The out-of-distribution initial conditions, each ``(2, 101)`` (u, v)."""
    y = np.asarray(solvers.load_fhn_ic("y05"), dtype=np.float64).reshape(2, 101)
    rest = np.stack([np.full(101, y[0].min()), np.full(101, y[1].min())])
    x = np.arange(101)
    bump = rest.copy()
    bump[0] += 2.0 * np.exp(-(((x - 50) / 4.0) ** 2))
    halved = y.copy()
    halved[1] *= 0.5
    return {"mirror": y[..., ::-1].copy(), "rolled": np.roll(y, 25, axis=-1),
            "v_halved": halved, "centre_bump": bump}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks/out/ood_fhn.json")
    ap.add_argument("--t-end", type=float, default=3000.0)
    ap.add_argument("--error-budget", type=float, default=0.0, help="error_budget setting")
    add_set_option(ap)
    args = ap.parse_args()
    over = overrides(ap, args.set)
    torch.set_num_threads(1)
    frozen = read_ymmsl_settings(ROOT / "configs/adaptive_fhn.ymmsl")
    online = read_ymmsl_settings(ROOT / "configs/online_fhn.ymmsl")
    model = str(ROOT / frozen["model"])
    out = {"t_end": args.t_end, "error_budget": args.error_budget, "settings_overrides": over,
           "cases": {}}  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        for name, ic in kinds().items():
            path = Path(tmp) / f"{name}.npy"
            np.save(path, ic)
            common = dict(t_end=args.t_end, param_schedule="", compare=False, plots=False,
                          model=model, ic=str(path), error_budget=args.error_budget)  # fmt: skip
            common.update(over)
            runs = {
                "fixed_rho5": (validate({**frozen, **common, "schedule": "fixed",
                                         "t_macro": 50.0, "t_micro": 10.0}), True),
                "adaptive": (validate({**frozen, **common}), False),
                "online": (validate({**online, **common, "online": "deterministic"}), False),
            }  # fmt: skip
            members = np.arange(1)
            ref, ref_wall = micro_reference(runs["adaptive"][0], members)
            case = {"micro_only_wall_s": ref_wall}
            for run_name, (settings, plain) in runs.items():
                coord, wall = run(settings, members, plain=plain)
                rec = coord.recorder
                _, _, total = blocks(
                    rec.states, ref, rec.source, settings.schedule.n_warm + 1, 1000
                )
                case[run_name] = {"mnad_u": total, "speedup": ref_wall / wall,
                                  "macro_fraction": float((rec.source == 1).mean())}  # fmt: skip
                print(f"{name} {run_name}: MNAD u {total:.4f}, macro "
                      f"{case[run_name]['macro_fraction']:.2f}, S {ref_wall / wall:.2f}", flush=True)  # fmt: skip
            out["cases"][name] = case
    write_result(args.out, out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
