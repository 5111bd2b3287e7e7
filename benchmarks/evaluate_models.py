"""Latent-forecast evaluation of the shipped models (``ledmus evaluate``, paper protocol)
with provenance: writes ``benchmarks/out/<model stem>_evaluate.json`` per model, the
scalars ``ledmus evaluate MODEL --json`` writes (``mnad_u``, ``mnad_u_451``,
``valid_time_lyapunov``, ``wasserstein``, ``l1_histogram``, ``power_spectrum_error``,
``wasserstein_all``, ``wasserstein_last``, ``l1_histogram_all``, ``m1_mae``, ``m2_mae``,
``forecast_wall_s``, … as the system's suite gives) plus ``provenance``.

    python benchmarks/evaluate_models.py [MODEL ...] [--out-dir benchmarks/out]
        [--data TEST.h5] [--t-warm T] [--n-ics N] [--horizon H]

Default models: models/led_fhn.pt models/pca_fhn.pt models/led_ks.pt models/led_ad3d.pt.
The test data is the model config's ``data``/test.h5, generated first when missing (as
``ledmus evaluate`` does); ``--data``, ``--t-warm``, ``--n-ics``, ``--horizon`` apply to
every model given (smoke tests; the defaults are the system's evaluation protocol).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from _provenance import write_result

from ledmus.atomic import split_series
from ledmus.evaluation import evaluate
from ledmus.systems import get as get_system

MODELS = ["models/led_fhn.pt", "models/pca_fhn.pt", "models/led_ks.pt", "models/led_ad3d.pt"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("models", nargs="*", default=MODELS)
    ap.add_argument("--out-dir", default="benchmarks/out", help="folder for <stem>_evaluate.json")
    ap.add_argument("--data", help="test split (default: the model config's)")
    ap.add_argument("--t-warm", type=int)
    ap.add_argument("--n-ics", type=int)
    ap.add_argument("--horizon", type=int)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    for model in args.models:
        start = time.perf_counter()
        result = evaluate(model, args.data, t_warm=args.t_warm, n_ics=args.n_ics,
                          horizon=args.horizon, device=args.device, plots=False)  # fmt: skip
        wall = time.perf_counter() - start
        scalars = split_series(result)[0]
        scalars["evaluate_wall_s"] = wall
        lam = get_system(scalars["system"]).lyapunov
        if lam is not None:
            scalars["lyapunov_exponent"] = lam  # the valid time's unit
        out = write_result(Path(args.out_dir) / f"{Path(model).stem}_evaluate.json", scalars)
        shown = {k: v for k, v in scalars.items() if isinstance(v, float)}
        print(f"{model}: " + ", ".join(f"{k} {v:.4g}" for k, v in shown.items()))
        print(f"# wrote {out} (torch threads {torch.get_num_threads()})", flush=True)


if __name__ == "__main__":
    main()
