"""Wall time of dataset generation (``ledmus dataset SYSTEM``) per system, one thread.

Each system's train/val/test splits are generated with ``ledmus.datasets.make_dataset``
into a temporary folder (removed afterwards; ``--keep data`` writes ``data/<system>``
instead and keeps it, what the other benchmarks read) and timed as a whole.  ``OMP_NUM_THREADS``
is set to 1 before numpy is imported unless it is already set (the recorded provenance
says which).

    python benchmarks/dataset_times.py [--systems fhn ks ad1d ad3d] [--scale paper] [--keep DIR]
                                       [--json benchmarks/out/dataset_times.json]

Writes ``scale``, ``seed``, ``systems`` (one per system: ``system``, ``wall_s``,
``splits`` with their shapes, ``bytes``) and ``provenance`` to ``--json``.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")  # before numpy: one thread, as documented

import argparse  # noqa: E402
import shutil  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

from _provenance import add_json_option, write_result  # noqa: E402

from ledmus.datasets import make_dataset  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--systems", nargs="+", default=["fhn", "ks", "ad1d", "ad3d"])
    ap.add_argument("--scale", default="paper", help="paper (the README's figures) or small")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--keep", metavar="DIR",
                    help="generate into DIR/<system> and keep it (default: a temporary folder)")  # fmt: skip
    add_json_option(ap, "benchmarks/out/dataset_times.json")
    args = ap.parse_args()
    print(f"# OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}, scale {args.scale}")
    print("| system | wall s | splits |\n|---|---|---|")
    rows = []
    for system in args.systems:
        if args.keep:
            tmp = Path(args.keep) / system
            tmp.mkdir(parents=True, exist_ok=True)
        else:
            tmp = Path(tempfile.mkdtemp(prefix=f"ledmus_{system}_"))
        try:
            start = time.perf_counter()
            manifest = make_dataset(system, tmp, scale=args.scale, seed=args.seed, progress=False)
            wall = time.perf_counter() - start
            size = sum(f.stat().st_size for f in tmp.iterdir() if f.is_file())
        finally:
            if not args.keep:
                shutil.rmtree(tmp, ignore_errors=True)
        splits = {name: info.get("shape") for name, info in manifest["splits"].items()}
        rows.append({"system": system, "wall_s": wall, "splits": splits, "bytes": size,
                     "kept_in": str(tmp) if args.keep else None})  # fmt: skip
        print(f"| {system} | {wall:.1f} | {', '.join(f'{k} {v}' for k, v in splits.items())} |",
              flush=True)  # fmt: skip
    out = write_result(args.json, {"benchmark": "dataset_times", "scale": args.scale,
                                   "seed": args.seed, "systems": rows})  # fmt: skip
    print(f"# wrote {out}")


if __name__ == "__main__":
    main()
