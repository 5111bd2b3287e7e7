"""FHN propagator ablation: retrain only the RNN of a trained FHN LED with variants of
the read-out (eq 16's ``z = W h`` or the increment ``z + W h``), input noise, the
validation criterion and the seed, then measure the 8000-step latent MNAD on the test
windows (100 ICs, T_warm = 60), all with the checkpoint's autoencoder.

    python benchmarks/fhn_rnn_ablation.py --model models/led_fhn.pt --data data/fhn \\
        --variant paper:residual=0,noise=0 --variant resid:residual=1,noise=0 \\
        --variant resid_n01_fr:residual=1,noise=0.01,validation=free_run --seeds 0 1

Writes ``model``, ``data``, ``epochs``, ``horizon``, ``rows`` (one per variant and seed:
``variant``, ``seed``, ``overrides``, ``residual``, ``noise``, ``validation``,
``best_epoch``, ``free_run_val_mse``, ``mnad_u``, ``mnad_v``, ``mnad_u_451``,
``train_wall_s``) and ``provenance`` to ``--json``
(default ``benchmarks/out/fhn_rnn_ablation.json``).
"""

from __future__ import annotations

import argparse
import copy
import time

import torch
import yaml
from _provenance import add_json_option, write_result

from ledmus import metrics
from ledmus.surrogates.checkpoint import load_model
from ledmus.surrogates.config import resolve
from ledmus.surrogates.fitting import encode_sequences, free_run_loss, train_rnn
from ledmus.surrogates.forecast import _windows, window_array
from ledmus.surrogates.led import LED
from ledmus.trajectory import read_trajectory


def parse_variant(text: str) -> tuple[str, dict, dict]:
    name, _, body = text.partition(":")
    rnn, train = {}, {}
    for item in filter(None, body.split(",")):
        key, _, value = item.partition("=")
        value = yaml.safe_load(value)
        if key == "residual":
            rnn[key] = bool(value)
        else:
            train[key] = value
    return name, rnn, train


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--model", default="models/led_fhn.pt")
    ap.add_argument("--data", default="data/fhn")
    ap.add_argument("--variant", action="append", required=True, help="name:key=value,...")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--epochs", type=int, default=4000)
    ap.add_argument("--horizon", type=int, default=8000)
    add_json_option(ap, "benchmarks/out/fhn_rnn_ablation.json")
    args = ap.parse_args()

    base, payload = load_model(args.model, system="fhn")
    tr, va = (read_trajectory(f"{args.data}/{s}.h5") for s in ("train", "val"))
    test = read_trajectory(f"{args.data}/test.h5")
    index, horizon = _windows(test, 60, args.horizon, None)
    windows = window_array(test, index, 0, 60 + horizon)
    z_tr, z_va = encode_sequences(base, tr.states), encode_sequences(base, va.states)
    print(
        f"| variant | seed | best epoch | free-run val MSE | MNAD u ({horizon} steps) | MNAD v | MNAD u (451) | train s |"
    )
    print("|---|---|---|---|---|---|---|---|")
    rows = []
    for text in args.variant:
        name, rnn_over, train_over = parse_variant(text)
        for seed in args.seeds:
            spec = copy.deepcopy(base.spec)
            spec["rnn"].update(rnn_over)
            model = LED(spec).to(base.dtype)
            model.scaler.to(torch.float64)
            torch.manual_seed(seed)
            model.rnn = type(model.rnn)(model.latent_dim, **spec["rnn"])
            state = {k: v for k, v in base.state_dict().items() if not k.startswith("rnn.")}
            model.load_state_dict(state, strict=False)
            cfg = resolve({"system": "fhn", "data": "-", "train_rnn": {
                **payload["config"].get("train_rnn", {}), "epochs": args.epochs, **train_over}})["train_rnn"]  # fmt: skip
            start = time.perf_counter()
            hist = train_rnn(model, z_tr, z_va, cfg, False, torch.Generator().manual_seed(seed))
            wall = time.perf_counter() - start
            model.eval()
            z = model.forecast_latent(windows[:, :60], horizon)
            pred = model.decode_sequence(z)
            nad = metrics.nad(windows[:, 60:].transpose(0, 2, 1, 3), pred.transpose(0, 2, 1, 3))
            row = {"variant": name, "seed": seed, "overrides": {**rnn_over, **train_over},
                   "residual": bool(spec["rnn"].get("residual", False)), "noise": cfg.get("noise"),
                   "validation": cfg.get("validation"), "best_epoch": hist["best_epoch"][0],
                   "free_run_val_mse": free_run_loss(model, z_va, 30),
                   "mnad_u": float(nad[:, 0].mean()), "mnad_v": float(nad[:, 1].mean()),
                   "mnad_u_451": float(nad[:, 0, :451].mean()), "train_wall_s": wall}  # fmt: skip
            rows.append(row)
            print(f"| {name} | {seed} | {row['best_epoch']} | {row['free_run_val_mse']:.2e} | "
                  f"{row['mnad_u']:.4f} | {row['mnad_v']:.4f} | {row['mnad_u_451']:.4f} | {wall:.0f} |",
                  flush=True)  # fmt: skip
    out = write_result(args.json, {"benchmark": "fhn_rnn_ablation", "model": args.model,
                                   "data": args.data, "epochs": args.epochs,
                                   "horizon": horizon, "n_windows": len(index), "warm": 60,
                                   "rows": rows})  # fmt: skip
    print(f"# wrote {out}")


if __name__ == "__main__":
    main()
