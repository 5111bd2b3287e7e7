"""The error a coupled run makes at each restart: phase lag and NAD after free steps
from teacher-forced restarts on the FHN test run, per model.

    OMP_NUM_THREADS=1 python benchmarks/restart.py --data data/fhn \
        --models models/led_fhn.pt models/led_fhn_ens.pt --out benchmarks/out/restart_fhn.json

A coupled run restarts the latent RNN after every micro window: it teacher-forces the
restricted micro states, then runs free for T_m steps.  Here the restarts start from the
true test trajectory (``--restarts`` starts spread evenly over ``test.h5``): the encoded
true states ``z_{s..s+W-1}`` are teacher-forced from a zero hidden state (``W`` =
``--warmups``: T_mu and T_warm of the main job), the RNN runs free for ``--horizon`` steps
(T_m), and the decoded u field is compared with the truth.  Per model and warm-up: the
phase lag (:func:`ledmus.metrics.phase_shape`, negative: the forecast lags behind; time
units) and the NAD of u after 1, 5, 10 and ``horizon`` free steps, mean and standard
deviation over the restarts, and the shape NAD left after the shift.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from _provenance import write_result

from ledmus import metrics
from ledmus.surrogates import load_model
from ledmus.surrogates.restart import forecast_after
from ledmus.trajectory import read_trajectory


@torch.no_grad()
def restart_errors(
    net, states: np.ndarray, dt: float, starts: np.ndarray, warmup: int, horizon: int, window: int
) -> dict:
    """Lag and NAD of u per restart and free step: ``(R, horizon)`` arrays."""
    z = net.encode(states).reshape(len(states), -1)[None]  # (1, T, d)
    u = states[:, 0]  # (T, N)
    span = u.max() - u.min()
    lags, nads, shapes, speeds = [], [], [], []
    rate = np.abs(np.diff(u, axis=0)).mean(axis=-1) / span / dt  # (T-1,) NAD per time unit
    for s in starts:
        zf = forecast_after(net.rnn, z[:, s : s + warmup], horizon)
        x = np.asarray(net.decode_sequence(zf), dtype=np.float64)[0, :, 0]  # (H, N)
        idx = np.arange(s + warmup, s + warmup + horizon)
        lag, shape = metrics.phase_shape(u, x, dt, window, idx)
        lags.append(lag)
        shapes.append(shape)
        nads.append(np.abs(x - u[idx]).mean(axis=-1) / span)
        speeds.append(rate[np.minimum(idx, len(rate) - 1)])
    return {
        "lag": np.array(lags),
        "nad": np.array(nads),
        "shape": np.array(shapes),
        "speed": np.array(speeds),
    }


def summarise(err: dict, steps: list[int], min_speed: float) -> dict:
    """Per free step ``k``: lag mean, median and std over all restarts, and the mean over
    the restarts whose reference moves at least ``min_speed`` (NAD per time unit) there:
    where the field barely changes a time shift is ill-determined (a lag of several time
    units fits a nearly stationary state as well as none)."""
    out = {}
    for k in steps:
        lag, nad = err["lag"][:, k - 1], err["nad"][:, k - 1]
        moving = err["speed"][:, k - 1] >= min_speed
        out[f"after_{k}"] = {
            "lag_mean": float(lag.mean()),
            "lag_median": float(np.median(lag)),
            "lag_std": float(lag.std()),
            "lag_mean_moving": float(lag[moving].mean()) if moving.any() else None,
            "moving": int(moving.sum()),
            "nad_mean": float(nad.mean()),
            "nad_std": float(nad.std()),
        }
    out["shape_nad_mean"] = float(err["shape"].mean())
    out["nad_mean"] = float(err["nad"].mean())
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", default="data/fhn", help="folder with test.h5")
    p.add_argument("--models", nargs="+", default=["models/led_fhn.pt"])
    p.add_argument("--labels", nargs="*", default=None, help="one label per model")
    p.add_argument("--restarts", type=int, default=100)
    p.add_argument("--warmups", type=int, nargs="+", default=[10, 60])
    p.add_argument("--horizon", type=int, default=50)
    p.add_argument("--window", type=int, default=20, help="reference steps searched either side")
    p.add_argument(
        "--min-speed",
        type=float,
        default=0.003,
        help="NAD per time unit the reference must change for lag_mean_moving",
    )
    p.add_argument("--out", default="benchmarks/out/restart_fhn.json")
    args = p.parse_args()
    torch.set_num_threads(1)
    traj = read_trajectory(Path(args.data) / "test.h5")
    states = traj.states[0]
    dt = float(traj.t[1] - traj.t[0])
    n_t = len(states)
    labels = args.labels or args.models
    if len(labels) != len(args.models):
        p.error("--labels needs one label per model")
    rows = []
    steps = sorted({1, 5, 10, args.horizon} & set(range(1, args.horizon + 1)))
    for label, path in zip(labels, args.models, strict=True):
        net = load_model(path)[0].eval()
        for w in args.warmups:
            last = n_t - w - args.horizon - args.window
            starts = np.linspace(args.window, last, args.restarts).round().astype(int)
            err = restart_errors(net, states, dt, starts, w, args.horizon, args.window)
            row = {
                "model": label,
                "path": str(path),
                "warmup": w,
                "horizon": args.horizon,
                "restarts": len(starts),
                "min_speed": args.min_speed,
                **summarise(err, steps, args.min_speed),
            }
            rows.append(row)
            h = row[f"after_{args.horizon}"]
            print(
                f"{label:20s} W={w:3d}  lag after {args.horizon}: {h['lag_mean']:+.4f} "
                f"± {h['lag_std']:.4f} (median {h['lag_median']:+.4f}, moving "
                f"{h['lag_mean_moving']:+.4f}, n={h['moving']})  NAD u {h['nad_mean']:.5f}  "
                f"(after 1: lag {row['after_1']['lag_mean']:+.4f})"
            )
    write_result(
        args.out,
        {"benchmark": "restart", "data": args.data, "dt": dt, "rows": rows, "window": args.window},
    )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
