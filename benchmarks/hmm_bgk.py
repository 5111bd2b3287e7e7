"""HMM coupling of the ML moment closure with BGK (issue 10 item 5): accuracy, macro
share and cost against the trust level.

For each case (Sod and the colliding streams, outflow; four random periodic wave
profiles as one ensemble) at ε = 0.05 and 0.5, the coupled run of
``configs/hmm_bgk.ymmsl`` (embedded engine, one thread, t = 0 … 0.1, blocks of
t_micro = 0.01) at the trust levels ``max_uncertainty`` in :data:`TRUST` — from 0
(every block BGK; the coupled run is then bitwise the BGK run) to ∞ (the closure alone
after the first comparison window) — against the BGK run alone from the same initial
state: relative L2 over the cells of ρ, u and T at t = 0.1 (mean over members), the
macro share of the recorded states, and S = BGK wall time / coupled wall time.  Writes
``benchmarks/out/hmm_bgk.json``.

    python benchmarks/hmm_bgk.py            # about 2 minutes on one core
"""

from __future__ import annotations

import argparse
import time

import torch
from _provenance import ROOT, write_result

from ledmus.coupler.engine import run_embedded
from ledmus.coupler.settings import read_ymmsl_settings, validate

#: trust levels (ensemble deviation); 1e-12: nothing is trusted, 1e9: everything is
TRUST = (1e-12, 0.03, 0.1, 0.3, 1e9)
CASES = {
    "sod": {"ic": "sod"},
    "colliding": {"ic": "colliding"},
    "waves x4": {"ic": "waves", "param_bc": "periodic", "ensemble": 4},
}
EPS = (0.05, 0.5)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "out" / "hmm_bgk.json"))
    args = ap.parse_args()
    torch.set_num_threads(1)
    base = read_ymmsl_settings(ROOT / "configs" / "hmm_bgk.ymmsl")
    rows = []
    t0 = time.perf_counter()
    for case, over in CASES.items():
        for eps in EPS:
            for trust in TRUST:
                raw = {**base, **over, "param_kn": eps, "max_uncertainty": trust,
                       "plots": False, "compare": True}  # fmt: skip
                r = run_embedded(validate(raw, search=[ROOT]), None)
                e = r["errors"]
                row = {"case": case, "eps": eps, "trust": trust,
                       "macro_fraction": r["macro_fraction"], "speedup": r["speedup"],
                       "wall_s": r["wall_s"], "bgk_wall_s": r["micro_only_wall_s"],
                       "windows": r["windows"],
                       **{f"rel_l2_{m}": e[f"rel_l2_{m}_final"] for m in ("rho", "u", "T")}}  # fmt: skip
                rows.append(row)
                print(f"{case:10s} eps {eps:<5g} trust {trust:<8g} macro {row['macro_fraction']:.2f}"
                      f"  rho {row['rel_l2_rho']:.4f}  u {row['rel_l2_u']:.4f}"
                      f"  T {row['rel_l2_T']:.4f}  S {row['speedup']:.2f}", flush=True)  # fmt: skip
    settings = {k: base[k] for k in ("model", "t_warm", "t_macro", "t_macro_min", "t_micro",
                                     "t_end", "schedule", "max_error")}  # fmt: skip
    write_result(args.out, {"rows": rows, "trust": list(TRUST), "eps": list(EPS),
                            "settings": settings, "threads": torch.get_num_threads(),
                            "wall_s_total": time.perf_counter() - t0})  # fmt: skip


if __name__ == "__main__":
    main()
