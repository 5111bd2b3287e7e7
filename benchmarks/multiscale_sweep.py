"""Multiscale sweep (seed 001 Fig. 7 / 34 protocol): error and speed-up versus
rho = T_m / T_mu, measured side by side in one run against the micro solver alone.

FHN: 100 initial conditions from the test run (the windows' first states), warm-up
T_warm = 60 coarse states on the micro solver, horizon 8000, T_mu = 10, T_m in
{10, 50, 100, 200, 1000} and Latent (T_mu = 0).  The micro-only reference runs the
same 100 members batched (one numpy call per LB step for the whole ensemble, the
paper's dt = 0.005); its wall time is the denominator of every speed-up
S = T_micro / T_ledmus, and its states are the reference of the MNAD (eqs 22-23).

    python benchmarks/multiscale_sweep.py fhn --data data/fhn --out benchmarks/out/fhn_sweep
    python benchmarks/multiscale_sweep.py ks --model models/led_ks.pt --data data/ks \
        --t-micro 2 --t-macro 10 50 --horizon 400 --n-ics 20
    python benchmarks/multiscale_sweep.py ad3d --model models/led_ad3d.pt --data data/ad3d \
        --t-micro 25 --t-macro 125 225 --n-ics 10 --horizon 940

(KS: T_mu = 8 coarse steps of 0.25; AD-3D: T_mu = 50 coarse steps of 0.5, T_m = 250, 450
steps.)  Writes ``sweep.json`` (settings, ``micro_only_wall_s``, ``runs``: one row per
coupled run, and ``provenance``) and ``sweep.png`` into ``--out``.  Every S is printed
beside its bound, the inverse of the micro share of the coupled run's coarse steps
(the speed-up if the macro phases and the coupling cost nothing).  The Latent run is
measured twice: decoding every state (``record: states``) and keeping the macro states
only (``record: latents``; fields decoded on demand by ``ledmus decode``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from _provenance import git_commit, write_result

from ledmus import metrics
from ledmus.coupler.decode import fill_macro_states
from ledmus.coupler.engine import build
from ledmus.coupler.output import grid_errors
from ledmus.coupler.run import micro_reference, new_coordinator
from ledmus.coupler.settings import validate
from ledmus.systems import get as get_system
from ledmus.trajectory import read_trajectory

DEFAULT_MODEL = {"fhn": "models/led_fhn.pt", "ks": "models/led_ks.pt", "ad3d": "models/led_ad3d.pt"}


def initial_conditions(data: Path, n_ics: int) -> np.ndarray:
    traj = read_trajectory(data / "test.h5")
    if "offsets" in traj.extra:  # windows of one long run (FHN, KS)
        return traj.states[0, traj.extra["offsets"][:n_ics]]
    return traj.states[:n_ics, 0]  # independent runs (AD)


def assimilation(text: str) -> dict:
    """``teacher_forcing`` or ``innovation:TAU`` -> the run settings."""
    mode, _, tau = text.partition(":")
    return {"assimilation": mode, "assimilation_time": float(tau or 0.0)}


def run_one(settings, reference: np.ndarray) -> dict:
    """One coupled run; its wall time includes recording (keeping states, accumulating
    errors), as the reference's includes keeping its states.  With ``record: latents``
    the macro phases keep macro states only and the errors are computed after the clock
    (decoding the same states the run would have recorded)."""
    members = np.arange(settings.micro.ensemble)
    parts = build(settings, members)
    # grids: errors accumulated on the fly (100 x 8060 states need not be kept); KS and
    # particles keep the states for distribution distances (Wasserstein, L1 histogram)
    spec = get_system(settings.micro.system)
    grid = spec.layout == "grid" and spec.lyapunov is None
    coord = new_coordinator(settings, parts.model, parts.decoder, len(members),
                            keep_states=not grid, grid_reference=reference if grid else None)  # fmt: skip
    start = time.perf_counter()
    coord.run(parts.exchange, progress=True)
    wall = time.perf_counter() - start
    tm = coord.timings
    if settings.output.record == "latents":
        fill_macro_states(coord.recorder, parts.decoder)
    first = settings.schedule.n_warm + 1
    if grid:
        g = grid_errors(reference, coord.recorder.abs_err, first)
        err = {"mnad": [float(x) for x in g["mnad"]]}
    else:
        e = spec.errors(
            reference[:, first:], coord.recorder.states[:, first:], settings.schedule.dt
        )
        keys = ("mnad_u", "wasserstein", "l1_histogram", "valid_time_lyapunov") if settings.micro.system == "ks" else (
            "wasserstein_all", "wasserstein_last", "m1_mae", "m2_mae")  # fmt: skip
        err = {k: e[k] for k in keys}
    micro_fraction = float((coord.recorder.source == 0).mean())
    return {"wall_s": wall, "micro_s": tm["micro_s"], "macro_s": tm["macro_s"],
            "record_s": tm["record_s"], "lift_s": tm["lift_s"], "restrict_s": tm["restrict_s"],
            "coupling_s": wall - tm["micro_s"] - tm["macro_s"] - tm["record_s"],
            "micro_fraction": micro_fraction, "bound": 1.0 / micro_fraction,
            "record": settings.output.record, "lifting_stats": coord.lifting.summary(), **err}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("system", choices=sorted(DEFAULT_MODEL))
    ap.add_argument("--model")
    ap.add_argument("--data", required=True, help="dataset folder holding test.h5")
    ap.add_argument("--n-ics", type=int, default=100)
    ap.add_argument("--warm", type=int, default=60, help="warm-up coarse states (T_warm)")
    ap.add_argument("--horizon", type=int, default=8000, help="coarse steps after the warm-up")
    ap.add_argument("--t-micro", type=float, default=10.0, help="T_mu (time units)")
    ap.add_argument("--t-macro", type=float, nargs="+", default=[10, 50, 100, 200, 1000])
    ap.add_argument("--extra", nargs="*", default=[], metavar="LABEL=MODEL[@ASSIMILATION]",
                    help="further macro models (e.g. pca=models/pca_fhn.pt), run at --extra-t-macro and Latent; "
                         "@teacher_forcing or @innovation:TAU their assimilation (default teacher_forcing)")  # fmt: skip
    ap.add_argument("--assimilation", default="teacher_forcing", metavar="MODE[:TAU]",
                    help="the --model rows' assimilation: teacher_forcing (the paper) or innovation:TAU "
                         "(settings assimilation, assimilation_time)")  # fmt: skip
    ap.add_argument("--extra-t-macro", type=float, nargs="*", default=[50])
    ap.add_argument("--latents-t-macro", type=float, nargs="*", default=[200],
                    help="T_m values also run recording macro states only (plus Latent)")  # fmt: skip
    ap.add_argument("--liftings", nargs="+", default=[""], metavar="STRATEGY",
                    help="run every coupled T_m with each of these lifting strategies "
                    "(default: the system's; see ledmus.solvers.lifting)")  # fmt: skip
    ap.add_argument("--no-latent", action="store_true", help="skip the Latent runs")
    ap.add_argument("--windows", nargs="*", default=[], metavar="T_MU:T_M",
                    help="extra runs with their own micro window, e.g. 20:20 50:50 (the same "
                         "micro share as T_mu = T_m = 10 with fewer, longer windows)")  # fmt: skip
    ap.add_argument("--out", default="benchmarks/out/sweep")
    args = ap.parse_args()
    torch.set_num_threads(1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    ics = initial_conditions(Path(args.data), args.n_ics)
    tmp = Path(tempfile.mkdtemp())
    np.save(tmp / "ics.npy", ics)
    model = args.model or DEFAULT_MODEL[args.system]
    base = {"model": model, "ensemble": len(ics), "ic": str(tmp / "ics.npy"), "plots": False}
    probe = validate(
        {**base, "t_warm": 0.0, "t_macro": 1.0, "t_micro": 0.0, "t_end": 1.0}
    ).micro.solver
    dt = probe.dt_coarse
    t_warm = (args.warm - 1) * dt
    t_end = t_warm + args.horizon * dt
    ref_settings = validate(
        {**base, "t_warm": t_warm, "t_macro": 0.0, "t_micro": dt, "t_end": t_end}
    )
    print(f"{args.system}: {len(ics)} members, T_warm {args.warm} states, horizon {args.horizon}"
          f" x dt {dt:g}; micro solver dt {probe.dt:g}, batched over the ensemble")  # fmt: skip
    reference, t_micro_only = micro_reference(ref_settings, np.arange(len(ics)))
    print(f"micro solver alone: {t_micro_only:.1f} s")
    default = ref_settings.micro.lifting
    main = assimilation(args.assimilation)
    plan = [("led", model, t_m, "states", lift, args.t_micro, main)
            for t_m in args.t_macro for lift in args.liftings]  # fmt: skip
    for pair in args.windows:
        t_mu, t_m = (float(x) for x in pair.split(":"))
        plan += [("led", model, t_m, "states", "", t_mu, main)]
    plan += [("led", model, t_m, "latents", "", args.t_micro, main) for t_m in args.latents_t_macro]
    if not args.no_latent:
        plan += [("led", model, None, "states", "", 0.0, main),
                 ("led", model, None, "latents", "", 0.0, main)]  # fmt: skip
    for spec in args.extra:
        label, rest = spec.split("=", 1)
        path, _, how = rest.partition("@")
        how = assimilation(how or "teacher_forcing")
        plan += [(label, path, t_m, "states", "", args.t_micro, how) for t_m in args.extra_t_macro]
        plan += [(label, path, None, "states", "", 0.0, how)]
    rows = []
    for label, path, t_m, record, lifting, t_mu, how in plan:
        t_macro, t_micro = (t_end, 0.0) if t_m is None else (float(t_m), t_mu)
        s = validate({**base, "model": path, "t_warm": t_warm, "t_macro": t_macro,
                      "t_micro": t_micro, "t_end": t_end, "record": record,
                      "lifting": lifting, **how})  # fmt: skip
        r = run_one(s, reference)
        name = "Latent" if t_m is None else f"T_m={t_m:g}"
        if t_m is not None and t_mu != args.t_micro:
            name = f"T_mu={t_mu:g}, {name}"
        if record == "latents":
            name += " (latents recorded)"
        if s.micro.lifting != default:
            name += f" [{s.micro.lifting}]"
        r["lifting"] = s.micro.lifting
        r["assimilation"] = s.macro.assimilation
        r["assimilation_time"] = s.macro.assimilation_time
        r.update(label=name if label == "led" else f"{label} {name}", model=path,
                 rho=None if t_m is None else t_m / t_mu, t_micro=t_micro,
                 speedup=metrics.speedup(t_micro_only, r["wall_s"]))  # fmt: skip
        r["s_over_bound"] = r["speedup"] / r["bound"]
        rows.append(r)
        print(json.dumps({k: v for k, v in r.items()}, default=float))
    result = {"system": args.system, "n_ics": len(ics), "warm": args.warm, "horizon": args.horizon,
              "t_micro": args.t_micro, "dt_coarse": dt, "model": model,
              "micro_only_wall_s": t_micro_only, "runs": rows,
              "reference_lifting": default,
              "torch_threads": torch.get_num_threads(), "commit": git_commit(),
              "command": " ".join(sys.argv), "machine": platform.node(),
              "processor": platform.processor() or platform.machine(),
              "omp_num_threads": os.environ.get("OMP_NUM_THREADS")}  # fmt: skip
    write_result(out / "sweep.json", result)
    key = {"fhn": "mnad", "ks": "wasserstein", "ad3d": "wasserstein_all"}[args.system]
    print(f"\n| run | rho | micro fraction | {key} | S | bound 1/micro fraction | S / bound |"
          "\n|---|---|---|---|---|---|---|")  # fmt: skip
    for r in rows:
        err = r[key][0] if isinstance(r[key], list) else r[key]
        rho = "-" if r["rho"] is None else f"{r['rho']:g}"
        print(f"| {r['label']} | {rho} | {r['micro_fraction']:.3f} | {err:.4f} | "
              f"{r['speedup']:.1f} | {r['bound']:.1f} | {r['s_over_bound']:.2f} |")  # fmt: skip
    plot(
        [r for r in rows if r["model"] == model and r["record"] == "states"],
        key,
        out / "sweep.png",
        args.system,
    )


def plot(rows: list[dict], key: str, path: Path, system: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    latent = [r for r in rows if r["rho"] is None]
    kinds = list(dict.fromkeys(r.get("assimilation", "teacher_forcing") for r in rows))

    def err(r):
        return r[key][0] if isinstance(r[key], list) else r[key]

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for kind in kinds:  # one line per assimilation (teacher forcing, innovation)
        coupled = [r for r in rows if r["rho"] is not None
                   and r.get("assimilation", "teacher_forcing") == kind]  # fmt: skip
        rho = [r["rho"] for r in coupled]
        name = "multiscale" if len(kinds) == 1 else f"multiscale, {kind.replace('_', ' ')}"
        axes[0].plot(rho, [err(r) for r in coupled], "o-", label=name)
        axes[1].plot(rho, [r["speedup"] for r in coupled], "o-", label=name)
    if latent:
        axes[0].axhline(err(latent[0]), color="k", ls="--", label="Latent")
        axes[1].axhline(latent[0]["speedup"], color="k", ls="--", label="Latent")
    for ax, label in zip(axes, (key.upper(), "speed-up S"), strict=True):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("rho = T_m / T_mu")
        ax.set_ylabel(label)
        ax.legend()
    fig.suptitle(f"{system}: multiscale LED sweep")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


if __name__ == "__main__":
    main()
