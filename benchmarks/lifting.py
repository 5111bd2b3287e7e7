"""Lifting strategies on the FHN lattice Boltzmann solver (issue 13, tables a and b).

(a) Re-lift drift: an LB run from y05 that has run ``--pre`` time units is continued
    twice, once untouched and once re-lifted from its own (u, v) every ``--every`` Δt;
    NAD u (eq 22) between the two after 100 and 400 Δt, per strategy.  The same with the
    shipped autoencoder in the loop (u, v -> encoder -> decoder -> lift), the error a
    coupled run's lift starts from.
(b) Cost per lift: iterations, micro steps and wall time of the iterative strategies
    (functional iteration vs PETSc Newton-Krylov) for one member and for the sweep's 100,
    at the paper's parameters (omega_u = 1.45) and at d_u = 0.05 (omega_u = 1.96, where
    the functional iteration crawls), against one micro window (T_mu = 10 Δt) of the same
    batch measured in the same run.

    python benchmarks/lifting.py --out benchmarks/out/lifting.json   # + lifting.png

Table (c), the coupled sweep, is ``multiscale_sweep.py --liftings``.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np
import torch
from _provenance import write_result

from ledmus import solvers
from ledmus.metrics import nad
from ledmus.solvers.lifting import STRATEGIES, Lifting, petsc_available
from ledmus.surrogates.macro import load_macro_model

ROOT = Path(__file__).resolve().parents[1]


def on_manifold(solver, pre: float, batch: int = 1) -> np.ndarray:
    """LB populations after ``pre`` time units from y05 (``batch`` copies)."""
    f = solver.advance(solver.lift(solver.initial_condition("y05", 1, None)), 0.0, pre)
    return np.repeat(f, batch, axis=0)


def drift(solver, f0, t0: float, lift, every: int, horizon: int) -> np.ndarray:
    """NAD u per coarse step of the re-lifted run against the untouched one."""
    ref, out, g, h = [solver.observe(f0)], [solver.observe(f0)], f0, f0
    for k in range(horizon):
        g = solver.advance(g, t0 + k, 1.0)
        ref.append(solver.observe(g))
        if k % every == 0:
            h = lift(solver.observe(h), t0 + k)
        h = solver.advance(h, t0 + k, 1.0)
        out.append(solver.observe(h))
    return nad(np.stack(ref, 1)[:, :, 0], np.stack(out, 1)[:, :, 0])[0]


def table_a(args) -> list[dict]:
    solver = solvers.make("fhn")
    f0 = on_manifold(solver, args.pre)
    model = load_macro_model(ROOT / args.model, system="fhn")

    def autoencode(obs: np.ndarray) -> np.ndarray:
        return np.asarray(model.lift(model.restrict(obs[:, None])[:, 0]), dtype=np.float64)

    rows = []
    strategies = [s for s in STRATEGIES if s != "newton_krylov" or not petsc_available()]
    for through_ae in (False, True):
        for name in strategies:
            lifting = Lifting(name)

            def lift(obs, t, lifting=lifting, through_ae=through_ae):
                obs = autoencode(obs) if through_ae else obs
                return lifting.lift(solver, obs, None, t)[0]

            e = drift(solver, f0, args.pre, lift, args.every, 400)
            row = {"strategy": name, "autoencoder": through_ae,
                   "nad_u_100": float(e[100]), "nad_u_400": float(e[400])}  # fmt: skip
            print(row, flush=True)
            rows.append({**row, "nad_u": e.tolist()})
    return rows


def plot(rows: list[dict], path: Path, every: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 3.8))
    for r in rows:
        style = "--" if r["autoencoder"] else "-"
        label = r["strategy"] + (" (autoencoder in the loop)" if r["autoencoder"] else "")
        ax.semilogy(np.maximum(r["nad_u"], 1e-12), style, label=label)
    ax.set_xlabel("Δt after the first re-lift")
    ax.set_ylabel("NAD u against the untouched run")
    ax.set_title(f"FHN LB re-lifted every {every} Δt")
    ax.set_ylim(1e-9, 1e-2)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def timed(fn, repeats: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), out


def table_b(args) -> list[dict]:
    rows = []
    for params in ({}, {"d_u": 0.05}):
        solver = solvers.make("fhn", **params)
        for batch in (1, 100):
            f = on_manifold(solver, args.pre, batch)
            rho = solver.observe(f)
            window_s, _ = timed(lambda s=solver, f=f: s.advance(f, 0.0, 10.0), 3)
            strategies = ["chapman_enskog", "constrained_runs"]
            if not petsc_available():
                strategies.append("newton_krylov")
            for name in strategies:
                lifting = Lifting(name, tol=1e-10, max_iter=5000)
                wall, (g, rep) = timed(
                    lambda s=solver, r=rho, lf=lifting: lf.lift(s, r, None, 0.0), args.repeats
                )
                row = {"d_u": solver.d_u, "omega_u": float(solver.omega[0]), "batch": batch,
                       "strategy": name, "iterations": rep.iterations, "micro_steps": rep.steps,
                       "residual": rep.residual, "converged": rep.converged,
                       "lift_s": wall, "window_s": window_s, "lift_over_window": wall / window_s,
                       "max_err_vs_manifold": float(np.abs(g - f).max())}  # fmt: skip
                rows.append(row)
                print(row, flush=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="models/led_fhn.pt", help="autoencoder of table a")
    ap.add_argument("--pre", type=float, default=200.0, help="LB run before the test [time]")
    ap.add_argument("--every", type=int, default=10, help="re-lift period [Δt]")
    ap.add_argument("--repeats", type=int, default=5, help="timing repeats (median)")
    ap.add_argument("--out", default="benchmarks/out/lifting.json")
    args = ap.parse_args()
    torch.set_num_threads(1)
    result = {
        "pre": args.pre, "every": args.every, "model": args.model,
        "petsc": petsc_available() or "petsc4py available",
        "drift": table_a(args), "cost": table_b(args),
    }  # fmt: skip
    write_result(Path(args.out), result)
    plot(result["drift"], Path(args.out).with_suffix(".png"), args.every)


if __name__ == "__main__":
    main()
