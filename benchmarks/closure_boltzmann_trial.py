"""Several Boltzmann closures on issue 25's acceptance cases against one set of Boltzmann
runs: the closure-alone error of each model, for comparing training variants.

The cases, groups and metric are those of ``benchmarks/closure_boltzmann.py``
(:mod:`ledmus.surrogates.closure.evaluate_boltzmann`: four smooth periodic profiles, Sod
and the colliding streams as one batch each, ε = 1e-3 … 10 and the ε(x) case, 100 cells
to t = 0.1, the fair metric against the Boltzmann solver at N = 48), so each model's
errors here equal its errors there to the last bit; the solver runs once per group and
every model runs on its result.  No wall times: S needs the full benchmark, one model at
a time on a quiet machine.

    OMP_NUM_THREADS=1 python benchmarks/closure_boltzmann_trial.py \\
        --models models/closure_boltzmann.pt models/closure_boltzmann_round2.pt \\
        --labels shipped round2 --out benchmarks/out/closure_boltzmann_trial.json

About 7 minutes on one core for the solver's runs, and well under a second a model per
group.  Per model: its config (spec, data files, training) and ``fair[ε][case] = [ρ,
u/c, T]``, ``fair_max[ε]`` and the largest error of the smooth, shock and ε(x) cases.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")  # before numpy: one thread, as documented

import argparse  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
from _provenance import ROOT, write_result  # noqa: E402

from ledmus import solvers  # noqa: E402
from ledmus.surrogates.checkpoint import load_model  # noqa: E402
from ledmus.surrogates.closure.classical import relaxation_rates  # noqa: E402
from ledmus.surrogates.closure.evaluate import EPS_GRID, fair_errors  # noqa: E402
from ledmus.surrogates.closure.evaluate_boltzmann import (  # noqa: E402
    GAMMA,
    acceptance_jobs,
    model_solver,
)
from ledmus.surrogates.closure.fv import conserved, primitive  # noqa: E402

NX, N, T_END = 100, 48, 0.1


def summary(fair: dict) -> dict:
    def worst(pick) -> float:
        return max(max(v) for k, c in fair.items() for n, v in c.items() if pick(k, n))

    return {
        "max_fair": worst(lambda k, n: True),
        "max_fair_smooth": worst(lambda k, n: n.startswith("smooth")),
        "max_fair_shocks": worst(lambda k, n: k != "transition" and n in ("sod", "colliding")),
        "max_fair_transition": worst(lambda k, n: k == "transition"),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--models", nargs="+", required=True, help="closure_boltzmann checkpoints")
    ap.add_argument("--labels", nargs="*", default=None, help="one label per model")
    ap.add_argument("--out", default=str(ROOT / "benchmarks/out/closure_boltzmann_trial.json"))
    args = ap.parse_args()
    labels = args.labels or [os.path.basename(m) for m in args.models]
    if len(labels) != len(args.models):
        ap.error(f"--labels: {len(labels)} labels for {len(args.models)} models")
    torch.set_num_threads(1)
    nets = [load_model(m, kind="closure_boltzmann") for m in args.models]
    rates = relaxation_rates(solvers.make("boltzmann", N=N, nx=4))
    fair: list[dict] = [{} for _ in nets]
    start = time.perf_counter()
    for eps, bc, names, prim in acceptance_jobs(EPS_GRID, NX):
        key = eps if isinstance(eps, str) else f"{eps:g}"
        kin = solvers.make("boltzmann", eps=eps, nx=NX, N=N, bc=bc)
        t0 = time.perf_counter()
        ref = kin.primitives(kin.rollout(kin.maxwellian(*prim), T_END)[1][:, -1])[:, [0, 1, 3]]
        print(f"eps {key:10s} {bc:8s} Boltzmann {time.perf_counter() - t0:5.1f} s", flush=True)
        kn = kin.eps_cells if isinstance(eps, str) else eps
        for i, (net, _) in enumerate(nets):
            fv = model_solver("ml", net, kn, bc, NX, rates)
            rho, u, T = prim
            Q = conserved(rho, u, T, np.zeros((rho.shape[0], fv.closure.n_moments - 3, NX)), GAMMA)
            final = np.stack(primitive(fv.advance(Q, T_END), GAMMA), axis=1)
            err = fair_errors(final, ref, GAMMA)
            for j, name in enumerate(names):
                fair[i].setdefault(key, {})[name] = [float(e) for e in err[j]]
            print(f"    {labels[i]:24s} max {100 * err.max():5.2f} %", flush=True)
    rows = []
    for path, (_, payload), label, f in zip(args.models, nets, labels, fair, strict=True):
        fair_max = {k: max(max(v) for v in c.values()) for k, c in f.items()}
        rows.append(
            {
                "label": label,
                "path": os.path.relpath(path, ROOT),
                "config": payload.get("config"),
                "fair": f,
                "fair_max": fair_max,
                "summary": summary(f),
            }
        )
    payload = {
        "N": N,
        "nx": NX,
        "t_end": T_END,
        "eps": [*(f"{e:g}" for e in EPS_GRID), "transition"],
        "rows": rows,
        "threads": 1,
        "wall_s_total": time.perf_counter() - start,
    }
    print(f"# wrote {write_result(args.out, payload)}")


if __name__ == "__main__":
    main()
