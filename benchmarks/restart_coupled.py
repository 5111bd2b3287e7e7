"""The phase lag coupled FHN runs collect per restart, by assimilation.

    OMP_NUM_THREADS=1 python benchmarks/restart_coupled.py --data data/fhn \
        --out benchmarks/out/restart_coupled_fhn.json

``benchmarks/restart.py`` restarts the RNN from the true trajectory; in a coupled run each
restart starts from what the run made of the last macro phase, and on a travelling pulse
whatever phase a restart adds stays (the micro window keeps the lag it is handed).  Here
the shipped ensemble runs ``--n-ics`` test initial conditions for ``--horizon`` coarse
steps after a warm-up of 60 states, at T_mu = 10 and each T_m, with teacher forcing (the
paper) and with assimilation by innovation.  Per run: MNAD u against the micro-only run,
the phase lag of u per member (:func:`ledmus.metrics.phase_shape`, ±``--window`` steps,
negative: behind the micro-only run) read 20 steps before the end, and that lag divided by
the number of restarts: mean, median and spread over the members.  A Latent run (no
restart after the warm-up) gives the lag of the free run alone.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import torch
from _provenance import write_result
from multiscale_sweep import assimilation, initial_conditions

from ledmus import metrics
from ledmus.coupler.engine import build
from ledmus.coupler.run import micro_reference, new_coordinator
from ledmus.coupler.settings import validate

WARM = 60  # coarse states of the warm-up (the sweep's T_warm)


def run(base: dict, t_m: float | None, how: dict, reference: np.ndarray, t_end: float,
        window: int) -> dict:  # fmt: skip
    """One coupled run (``t_m`` None: Latent, no restart after the warm-up)."""
    t_macro, t_micro = (t_end, 0.0) if t_m is None else (t_m, 10.0)
    s = validate({**base, **how, "t_warm": WARM - 1.0, "t_macro": t_macro, "t_micro": t_micro,
                  "t_end": t_end})  # fmt: skip
    members = np.arange(s.micro.ensemble)
    parts = build(s, members)
    coord = new_coordinator(s, parts.model, parts.decoder, len(members), keep_states=True,
                            grid_reference=None)  # fmt: skip
    coord.run(parts.exchange)
    u = coord.recorder.states[:, WARM:, 0]
    ref = reference[:, WARM:, 0]
    mnad = float(metrics.mnad(ref, u).mean())  # eqs 22-23 per member, then their mean
    # a restart: a micro window after a macro phase (the warm-up is the start)
    restarts = int((np.diff(coord.recorder.source[0, WARM - 1 :]) == -1).sum())
    last = u.shape[1] - 20  # where the ±window search can still look ahead
    lags = np.array([
        metrics.phase_shape(ref[k], u[k, last : last + 1], 1.0, window, np.array([last]))[0][0]
        for k in range(len(u))
    ])  # fmt: skip
    row = {"t_macro": t_m, **how, "restarts": restarts, "mnad_u": mnad,
           "lag_final_mean": float(lags.mean()), "lag_final_median": float(np.median(lags))}  # fmt: skip
    per = lags / max(restarts, 1)
    for key, value in (("mean", per.mean()), ("median", np.median(per)), ("std", per.std())):
        row[f"lag_per_restart_{key}"] = float(value) if restarts else None
    return row


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--data", default="data/fhn", help="folder with test.h5")
    p.add_argument("--model", default="models/led_fhn_ens.pt")
    p.add_argument("--n-ics", type=int, default=20)
    p.add_argument("--horizon", type=int, default=4000)
    p.add_argument("--t-macro", type=float, nargs="+", default=[10.0, 50.0])
    p.add_argument("--assimilations", nargs="+", default=["teacher_forcing", "innovation:70"])
    p.add_argument("--window", type=int, default=20, help="reference steps searched either side")
    p.add_argument("--out", default="benchmarks/out/restart_coupled_fhn.json")
    args = p.parse_args()
    torch.set_num_threads(1)
    ics = initial_conditions(Path(args.data), args.n_ics)
    tmp = Path(tempfile.mkdtemp())
    np.save(tmp / "ics.npy", ics)
    base = {"model": args.model, "ensemble": len(ics), "ic": str(tmp / "ics.npy"), "plots": False}
    t_end = WARM - 1.0 + args.horizon
    ref_settings = validate({**base, "t_warm": WARM - 1.0, "t_macro": 0.0, "t_micro": 1.0,
                             "t_end": t_end})  # fmt: skip
    reference, _ = micro_reference(ref_settings, np.arange(len(ics)))
    rows = [run(base, None, assimilation("teacher_forcing"), reference, t_end, args.window)]
    print(rows[0], flush=True)
    for t_m in args.t_macro:
        for text in args.assimilations:
            row = run(base, t_m, assimilation(text), reference, t_end, args.window)
            rows.append(row)
            print(row, flush=True)
    write_result(Path(args.out), {"benchmark": "restart_coupled", "model": args.model,
                                  "n_ics": len(ics), "horizon": args.horizon, "t_micro": 10.0,
                                  "window": args.window, "rows": rows})  # fmt: skip


if __name__ == "__main__":
    main()
