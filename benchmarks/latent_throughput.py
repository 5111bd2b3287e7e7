"""LED latent propagation throughput: latent steps/s at batch 1 and 1024 (CPU, and CUDA
when available), next to the micro solver it replaces, measured in the same run.

A latent step is one RNN step of every ensemble member (one coarse Δt); the micro
reference is the solver advancing every member by one Δt (FHN: 200 LB steps).

    python benchmarks/latent_throughput.py [--model models/led_fhn.pt] [--seconds 2]
                                           [--json benchmarks/out/latent_throughput.json]

Writes ``model``, ``system``, ``seconds``, ``rows`` (one per batch and device: ``batch``,
``device``, ``latent_steps_per_s``, ``led_member_dt_per_s``, ``micro_batch``,
``micro_member_dt_per_s``, ``ratio``), ``devices`` and ``provenance`` to ``--json``.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from _provenance import add_json_option, write_result

from ledmus.solvers import make
from ledmus.surrogates.checkpoint import load_model


def latent_rate(model, batch: int, device: str, seconds: float) -> float:
    model = model.to(device)
    z = torch.zeros(batch, model.latent_dim, device=device, dtype=model.dtype)
    with torch.no_grad():
        _, hidden = model.rnn(z[:, None])
        steps, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            zs, hidden = model.rnn.free_run(z, hidden, 100)
            z = zs[:, -1]
            steps += 100
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        return steps / (time.perf_counter() - start)


def micro_rate(system: str, batch: int, seconds: float) -> float:
    solver = make(system)
    rng = np.random.default_rng(0)
    state = solver.lift(solver.initial_condition(None, batch, rng), rng)
    steps, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        state = solver.advance(state, 0.0, solver.dt_coarse, rng)
        steps += 1
    return steps / (time.perf_counter() - start)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--model", default="models/led_fhn.pt")
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 1024])
    add_json_option(ap, "benchmarks/out/latent_throughput.json")
    args = ap.parse_args()
    model, payload = load_model(args.model)
    system = payload["system"]
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    print(f"# {system}: torch {torch.__version__}, {torch.get_num_threads()} CPU threads; "
          f"devices {', '.join(devices)}")  # fmt: skip
    print("| batch | device | latent steps/s | member-Δt/s LED | member-Δt/s micro (CPU) | ratio |")
    print("|---|---|---|---|---|---|")
    rows = []
    for batch in args.batches:
        micro = micro_rate(system, min(batch, 64), args.seconds) * min(batch, 64)
        for dev in devices:
            rate = latent_rate(model, batch, dev, args.seconds)
            print(f"| {batch} | {dev} | {rate:,.0f} | {rate * batch:,.0f} | {micro:,.0f} | "
                  f"{rate * batch / micro:,.0f} |", flush=True)  # fmt: skip
            rows.append({"batch": batch, "device": dev, "latent_steps_per_s": rate,
                         "led_member_dt_per_s": rate * batch, "micro_batch": min(batch, 64),
                         "micro_member_dt_per_s": micro, "ratio": rate * batch / micro})  # fmt: skip
    print("micro: the solver at batch min(B, 64) (its most efficient measured batch), CPU")
    out = write_result(args.json, {"benchmark": "latent_throughput", "model": args.model,
                                   "system": system, "seconds": args.seconds,
                                   "devices": devices, "rows": rows})  # fmt: skip
    print(f"# wrote {out}")


if __name__ == "__main__":
    main()
