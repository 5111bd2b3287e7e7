"""Autoencoder reconstruction error versus latent dimension, next to PCA (seed 001
Fig. 30 for FHN: d_z = 8 suffices; SI §8.4.2 for KS: LED reconstructs better than PCA-8).

For each d_z an autoencoder with the config's architecture is trained (two-stage
training's first stage only) on ``DATA/train.h5`` with early stopping on
``DATA/val.h5``; the MSE is measured on ``DATA/test.h5`` in the scaled (N(0,1)) units
the networks see, and for PCA with the same number of modes fitted on the training set.

    python benchmarks/reconstruction.py configs/fhn.yaml --data data/fhn --dims 1 2 4 8 16
    python benchmarks/reconstruction.py configs/ks.yaml --data data/ks --dims 8

Writes ``system``, ``config``, ``data``, ``train_shape``, ``test_shape``, ``epochs``,
``rows`` (one per d_z: ``latent_dim``, ``ae_mse``, ``pca_mse``, ``ae_epochs``,
``ae_wall_s``) and ``provenance`` to ``--json`` (default
``benchmarks/out/reconstruction_<system>.json``).
"""

from __future__ import annotations

import argparse
import copy
import time

import numpy as np
import torch
from _provenance import write_result

from ledmus.surrogates.config import load_config, resolve
from ledmus.surrogates.fitting import train_autoencoder
from ledmus.surrogates.led import LED
from ledmus.trajectory import read_trajectory


def pca_mse(train: np.ndarray, test: np.ndarray, modes: int) -> float:
    mean = train.mean(axis=0)
    _, _, vt = np.linalg.svd(train - mean, full_matrices=False)
    basis = vt[:modes]
    rec = (test - mean) @ basis.T @ basis + mean
    return float(np.mean((rec - test) ** 2))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("config")
    ap.add_argument("--data", help="dataset folder (default: the config's)")
    ap.add_argument("--dims", type=int, nargs="+", default=[1, 2, 4, 8, 16])
    ap.add_argument("--epochs", type=int, help="override train_autoencoder.epochs")
    ap.add_argument("--test-samples", type=int, default=20_000, help="evenly spaced test samples")
    ap.add_argument("--json", metavar="PATH",
                    help="where to write the results (default benchmarks/out/reconstruction_<system>.json)")  # fmt: skip
    args = ap.parse_args()
    raw = load_config(args.config)
    if args.data:
        raw["data"] = args.data
    if args.epochs:
        raw.setdefault("train_autoencoder", {})["epochs"] = args.epochs
    cfg = resolve(raw)
    trajs = {s: read_trajectory(f"{cfg['data']}/{s}.h5") for s in ("train", "val", "test")}
    flat = {s: t.states.reshape(-1, *t.states.shape[2:]) for s, t in trajs.items()}
    step = max(1, len(flat["test"]) // args.test_samples)
    flat["test"] = flat["test"][::step]
    print(f"# {cfg['system']}: train {flat['train'].shape}, test {flat['test'].shape}; "
          f"MSE in scaled units (test set)")  # fmt: skip
    print("| d_z | autoencoder MSE | PCA MSE (same modes) | AE epochs | AE wall s |")
    print("|---|---|---|---|---|")
    rows = []
    for dim in args.dims:
        spec = {"system": cfg["system"], "state_shape": list(flat["train"].shape[1:]), "box": None,
                "autoencoder": {**copy.deepcopy(cfg["autoencoder"]), "latent_dim": dim}, "rnn": cfg["rnn"]}  # fmt: skip
        torch.manual_seed(cfg["seed"])
        model = LED(spec)
        model.scaler.fit(flat["train"])
        start = time.perf_counter()
        hist = train_autoencoder(model, flat["train"], flat["val"], cfg["train_autoencoder"], progress=True,
                                 generator=torch.Generator().manual_seed(cfg["seed"]))  # fmt: skip
        wall = time.perf_counter() - start
        model.eval()
        with torch.no_grad():
            x = model.scaler.transform(model.as_tensor(flat["test"])).to(model.dtype)
            rec = model.autoencoder.decode(model.autoencoder.encode(x))
            mse = float(torch.mean((rec - x) ** 2))
            scaled = {
                s: model.scaler.transform(torch.as_tensor(flat[s])).numpy()
                for s in ("train", "test")
            }
        n = flat["train"][0].size
        pca = pca_mse(scaled["train"].reshape(-1, n), scaled["test"].reshape(-1, n), dim)
        print(f"| {dim} | {mse:.3e} | {pca:.3e} | {len(hist['train'])} | {wall:.0f} |", flush=True)
        rows.append({"latent_dim": dim, "ae_mse": mse, "pca_mse": pca,
                     "ae_epochs": len(hist["train"]), "ae_wall_s": wall})  # fmt: skip
    out = write_result(args.json or f"benchmarks/out/reconstruction_{cfg['system']}.json", {
        "benchmark": "reconstruction", "system": cfg["system"], "config": args.config,
        "data": cfg["data"], "train_shape": flat["train"].shape, "test_shape": flat["test"].shape,
        "epochs": cfg["train_autoencoder"].get("epochs"), "rows": rows})  # fmt: skip
    print(f"# wrote {out}")


if __name__ == "__main__":
    main()
