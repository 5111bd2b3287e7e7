"""Seed 003 on the lattice random walk: the shipped configuration and its ablations.

Trains the virtual-observable model (configs/vo_rw.yaml) on 8, 16 and 64 of the training
sequences, and on 64 without virtual observables, each evaluated on the test run exactly as
``ledmus evaluate`` does (inference of the first T + 1 states, Algorithm 1 to the end):
relative L2 error of the predictive mean against the micro run and the PDE (eq 16) at 15,
20, 25, 35 Δt, 95 % coverage, inferred and predicted mass error, training wall time.

    OMP_NUM_THREADS=1 python benchmarks/vo_ablation.py --data data/rw --out benchmarks/out/vo_rw.json
"""

from __future__ import annotations

import argparse
import copy
import tempfile
from pathlib import Path

import torch
import yaml
from _provenance import write_result

from ledmus.evaluation import evaluate
from ledmus.surrogates.training import train_from_config

VARIANTS = [
    ("64 sequences (shipped)", {}),
    ("32 sequences", {"train_vo": {"sequences": 32}}),
    ("16 sequences", {"train_vo": {"sequences": 16}}),
    ("8 sequences", {"train_vo": {"sequences": 8}}),
    ("64 sequences, no virtual observables", {"vo": {"virtual_observables": False}}),
]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="configs/vo_rw.yaml")
    ap.add_argument("--data", default="data/rw")
    ap.add_argument("--out", default="benchmarks/out/vo_rw.json")
    args = ap.parse_args()
    torch.set_num_threads(1)
    base = yaml.safe_load(Path(args.config).read_text())
    base["data"] = args.data
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, (label, change) in enumerate(VARIANTS):
            cfg = copy.deepcopy(base)
            for section, values in change.items():
                cfg[section] = {**cfg.get(section, {}), **values}
            path = Path(tmp) / f"vo_{i}.pt"
            train_from_config(cfg, path, progress=False)
            result = evaluate(path, Path(args.data) / "test.h5", plots=False)
            row = {"label": label, "change": change, **result}
            rows.append(row)
            print({k: row[k] for k in ("label", "rel_l2", "coverage95", "mass_error_inferred",
                                       "mass_error_predicted", "train_wall_s")}, flush=True)  # fmt: skip
    write_result(Path(args.out), {"config": args.config, "data": args.data, "runs": rows})


if __name__ == "__main__":
    main()
