"""Demonstration (a) of issue 9: an FHN regime change, frozen model vs online training.

From y05 over ``t_end`` Δt, the micro parameter d_u changes from 1 to ``--d-u`` at
t = t_end/4 and back at 3 t_end/4 (``param_schedule``).  Runs side by side in one
process: the micro solver alone (the reference, timed), the fixed ρ = 5 run (T_m = 50,
T_mu = 10) and the ``adaptive`` run with the frozen shipped model
(configs/adaptive_fhn.ymmsl), then the adaptive run with online training, asynchronous
(the default) and deterministic (configs/online_fhn.ymmsl; the trainer runs in this
process, so its time is in the wall time and in S).  Per block of 1000 Δt: macro
utilisation and MNAD u against the micro-only run; overall MNAD u, S = reference wall /
run wall, and a plot of both per block (adaptive_fhn.png beside the JSON).

    OMP_NUM_THREADS=1 python benchmarks/adaptive_fhn.py --out benchmarks/out/adaptive_fhn.json

``--as-shipped``: the two configs as they are (their own ``t_end`` and ``param_schedule``,
t_end 6000 through the first change), for the figures of the shipped jobs:

    OMP_NUM_THREADS=1 python benchmarks/adaptive_fhn.py --as-shipped \
        --out benchmarks/out/adaptive_fhn_shipped.json

Each adaptive run also reports its drift estimate beside the true error (``drift``:
:func:`ledmus.coupler.run.drift_report`).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from _provenance import ROOT, write_result
from _settings import add_set_option, overrides

from ledmus.coupler.driver import Coordinator
from ledmus.coupler.engine import build
from ledmus.coupler.run import drift_report, micro_reference, new_coordinator
from ledmus.coupler.schedule import FixedSchedule
from ledmus.coupler.settings import read_ymmsl_settings, validate


def run(settings, members: np.ndarray, plain: bool = False) -> tuple[object, float]:
    """A coupled run; ``plain``: the fixed alternation even where the parameters leave
    the training values (the frozen-model baseline; ``ledmus run`` would gate it)."""
    parts = build(settings, members)
    coord = new_coordinator(settings, parts.model, parts.decoder, len(members))
    learning = getattr(coord, "learning", None)
    if plain:
        policy = FixedSchedule(
            settings.schedule.n_warm, settings.schedule.n_macro, settings.schedule.n_micro
        )
        coord = Coordinator(parts.model, parts.decoder, policy, n_total=settings.schedule.n_total,
                            dt=settings.schedule.dt, recorder=coord.recorder)  # fmt: skip
    start = time.perf_counter()
    try:
        coord.run(parts.exchange)
    finally:
        if learning is not None:
            learning.close()
    return coord, time.perf_counter() - start


def blocks(states: np.ndarray, ref: np.ndarray, source: np.ndarray, start: int,
           size: int) -> tuple[list[float], list[float], float]:  # fmt: skip
    """Per block of ``size`` indices: macro fraction and MNAD u (range: the whole
    reference run after the warm-up, as ``ledmus run`` does); and the overall MNAD u."""
    u, u_ref = states[0, :, 0], ref[0, :, 0]
    rng = np.ptp(u_ref[start:])
    nad = np.abs(u - u_ref).mean(axis=-1) / rng
    frac = [float((source[0, a : a + size] == 1).mean()) for a in range(0, len(nad), size)]
    err = [float(nad[max(a, start) : a + size].mean()) for a in range(0, len(nad), size)]
    return frac, err, float(nad[start:].mean())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks/out/adaptive_fhn.json")
    ap.add_argument("--t-end", type=float, default=20000.0)
    ap.add_argument("--d-u", type=float, default=1.5)
    ap.add_argument("--as-shipped", action="store_true",
                    help="keep the configs' t_end and param_schedule")  # fmt: skip
    add_set_option(ap)
    args = ap.parse_args()
    over = overrides(ap, args.set)
    torch.set_num_threads(1)
    raw = read_ymmsl_settings(ROOT / "configs/adaptive_fhn.ymmsl")
    if args.as_shipped:
        t_end, schedule = float(raw["t_end"]), raw["param_schedule"]
    else:
        t_end = args.t_end
        change = {t_end / 4: {"d_u": args.d_u}, 3 * t_end / 4: {"d_u": 1.0}}
        schedule = "{" + ", ".join(f"{t:g}: {{d_u: {p['d_u']}}}" for t, p in change.items()) + "}"
    raw.update(t_end=t_end, param_schedule=schedule, compare=False, plots=False)
    raw["model"] = str(ROOT / raw["model"])
    raw.update(over)
    adaptive = validate(raw)
    fixed = validate({**raw, "schedule": "fixed", "t_macro": 50.0, "t_micro": 10.0})
    online = read_ymmsl_settings(ROOT / "configs/online_fhn.ymmsl")
    online.update(t_end=t_end, param_schedule=schedule, compare=False, plots=False,
                  model=raw["model"])  # fmt: skip
    online.update(over)
    runs = {"fixed_rho5": fixed, "adaptive": adaptive,
            "online_async": validate(online),
            "online_deterministic": validate({**online, "online": "deterministic"})}  # fmt: skip
    members = np.arange(1)
    ref, ref_wall = micro_reference(adaptive, members)
    out = {"t_end": t_end, "param_schedule": schedule, "settings_overrides": over,
           "micro_only_wall_s": ref_wall, "runs": {}}  # fmt: skip
    size = round(1000 / adaptive.schedule.dt)
    for name, settings in runs.items():
        coord, wall = run(settings, members, plain=name == "fixed_rho5")
        rec = coord.recorder
        frac, err, total = blocks(rec.states, ref, rec.source, settings.schedule.n_warm + 1, size)
        out["runs"][name] = {
            "wall_s": wall, "speedup": ref_wall / wall, "mnad_u": total,
            "macro_fraction": float((rec.source == 1).mean()),
            "macro_fraction_blocks": frac, "mnad_u_blocks": err,
            "interventions": dict(getattr(coord, "interventions", {})),
            "comparisons": dict(getattr(coord, "comparisons", {})),
        }  # fmt: skip
        if getattr(coord, "learning", None) is not None:
            out["runs"][name]["trainer"] = coord.learning.summary()
        if name != "fixed_rho5" and hasattr(coord, "drift_total"):
            out["runs"][name]["drift"] = drift_report(coord, ref, settings.schedule.n_warm + 1)
            out["runs"][name]["restart_error"] = coord.restart_report()
        print(f"{name}: S {ref_wall / wall:.2f}, MNAD u {total:.4f}, macro "
              f"{out['runs'][name]['macro_fraction']:.3f}", flush=True)  # fmt: skip
    write_result(args.out, out)
    changes = tuple(t for t, _ in adaptive.micro.schedule_solvers if t < t_end)
    plot(out, args.out.with_suffix(".png"), changes)
    print(f"wrote {args.out}")


def plot(out: dict, path: Path, changes: tuple | None = None) -> None:
    """Macro share and MNAD u per block of every run (``changes``: times of the dashed
    lines, default the regime changes at t_end/4 and 3 t_end/4)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(2, 1, figsize=(8, 6), sharex=True)
    for name, r in out["runs"].items():
        x = 1000 * (np.arange(len(r["macro_fraction_blocks"])) + 0.5)
        a.plot(x, r["macro_fraction_blocks"], marker="o", label=name)
        b.semilogy(x, np.maximum(r["mnad_u_blocks"], 1e-5), marker="o", label=name)
    for ax in (a, b):
        for t in (out["t_end"] / 4, 3 * out["t_end"] / 4) if changes is None else changes:
            ax.axvline(t, color="grey", ls="--", lw=0.8)
    a.set_ylabel("macro share per 1000 Δt")
    b.set_ylabel("MNAD u per 1000 Δt")
    b.set_xlabel("t (d_u changes at the dashed lines)")
    a.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


if __name__ == "__main__":
    main()
