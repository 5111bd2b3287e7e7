"""Cost of the numpy closure network per row: chunked through the whole stack
(``ledmus.surrogates.closure.ml._apply``) against layer by layer over the whole batch,
side by side in one run at one thread.

Three ways to run the stack, each giving the same values to rounding (the largest
difference to the chunked one is recorded):

- ``chunked``: ``_apply``, chunks of rows through every layer, each product below
  OpenBLAS's threading threshold (results independent of ``OMP_NUM_THREADS``);
- ``blocked``: layer by layer over the whole batch, each product cut into row blocks
  below the same threshold (the implementation before ``_apply`` was chunked: also
  independent of the thread count); ``ratio`` is its time over the chunked one's;
- ``whole``: layer by layer, one product per layer (the fastest where the batch fits the
  cache, but a threaded BLAS splits its sums by the thread count).

The network is the closure network ``h`` of a Boltzmann closure checkpoint (default the
width-64 ``models/closure_boltzmann_wide.pt``).  Row counts: those of one closure call of
the acceptance protocol's batches (3 rows per point: ``Ŵ``, ``0`` and the reflected
``Ŵ``; face calls ``2·101`` points per profile, cell calls ``102``): 1 profile (the ε(x)
case), 2 (Sod and the colliding streams) and 4 (the smooth profiles).

    OMP_NUM_THREADS=1 python benchmarks/closure_apply.py    # about 20 s
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")  # before numpy: one thread, as documented

import argparse  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
from _provenance import ROOT, add_json_option, write_result  # noqa: E402

from ledmus.surrogates.checkpoint import load_model  # noqa: E402
from ledmus.surrogates.closure.ml import _apply, _matmul_into, _numpy_layers  # noqa: E402


def whole(layers: list, h: np.ndarray) -> np.ndarray:
    """The stack on all rows at once, one product per layer."""
    for p in layers:
        h = np.tanh(h) if p is None else h @ p[0] + p[1]
    return h


def blocked(layers: list, h: np.ndarray) -> np.ndarray:
    """The stack layer by layer on all rows, each product in row blocks below
    ``SERIAL_GEMM`` (``ml._matmul_into``)."""
    for p in layers:
        if p is None:
            h = np.tanh(h)
            continue
        out = np.empty((h.shape[0], p[0].shape[1]))
        _matmul_into(h, p[0], out)
        h = out + p[1]
    return h


def per_row_us(fn, h: np.ndarray, seconds: float) -> float:
    """Best mean µs per row over rounds of back-to-back calls lasting ``seconds``."""
    best = np.inf
    for _ in range(5):
        count, t0 = 0, time.perf_counter()
        while count == 0 or time.perf_counter() - t0 < seconds / 5:
            fn(h)
            count += 1
        best = min(best, (time.perf_counter() - t0) / count)
    return 1e6 * best / h.shape[0]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=str(ROOT / "models" / "closure_boltzmann_wide.pt"))
    ap.add_argument("--seconds", type=float, default=1.0, help="timing per variant and size")
    add_json_option(ap, "benchmarks/out/closure_apply.json")
    args = ap.parse_args()
    torch.set_num_threads(1)
    net, _ = load_model(args.model, kind="closure_boltzmann")
    layers = _numpy_layers(net.hnet)
    if layers is None:
        raise SystemExit(f"{args.model}: the closure network is not a float64 Linear/Tanh stack")
    rng = np.random.default_rng(0)
    n_in = layers[0][0].shape[0]
    rows = []
    for profiles in (1, 2, 4):
        for call, points in (("faces", 2 * 101), ("cells", 102)):
            n = 3 * points * profiles
            h = rng.normal(scale=0.5, size=(n, n_in))
            variants = {
                "chunked": lambda x: _apply(layers, x),
                "blocked": lambda x: blocked(layers, x),
                "whole": lambda x: whole(layers, x),
            }
            ref = _apply(layers, h)
            row = {"profiles": profiles, "call": call, "rows": n}
            for name, fn in variants.items():
                row[f"{name}_us_per_row"] = per_row_us(fn, h, args.seconds)
                row[f"{name}_max_difference"] = float(np.abs(fn(h) - ref).max())
            row["ratio"] = row["blocked_us_per_row"] / row["chunked_us_per_row"]
            rows.append(row)
            print(
                f"{profiles} profile(s), {call:5s} {n:5d} rows: "
                + ", ".join(f"{k} {row[f'{k}_us_per_row']:.2f}" for k in variants)
                + f" µs/row; blocked/chunked {row['ratio']:.2f}",
                flush=True,
            )
    widths = [p[0].shape for p in layers if p is not None]
    write_result(
        args.json,
        {
            "model": os.path.relpath(args.model, ROOT),
            "layers": [list(w) for w in widths],
            "seconds": args.seconds,
            "rows": rows,
            "threads": torch.get_num_threads(),
        },
    )


if __name__ == "__main__":
    main()
