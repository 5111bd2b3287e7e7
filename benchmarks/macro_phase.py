"""Cost of a macro phase of the coupled FHN run at one CPU thread: the latent free run
(old module-call loop vs ``LatentRNN.free_run``, side by side, with a bitwise check) and
the decoding of the latents (``LED.decode_sequence`` chunk sizes, and where the time goes).

    OMP_NUM_THREADS=1 python benchmarks/macro_phase.py [--model models/led_fhn.pt]

Prints tables and writes ``benchmarks/out/macro_phase.json`` (with ``provenance``).
Timings are the minimum over ``--reps`` repetitions, old and new interleaved (shared
machines are noisy).
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np
import torch
import torch.nn.functional as F
from _provenance import git_commit, write_result

from ledmus.solvers import make
from ledmus.surrogates import LatentRNN, load_model


class OldLatentRNN(LatentRNN):
    """``LatentRNN`` with ``forward`` and ``free_run`` as they were before the change
    (module calls a step, then ``torch.stack``); same parameters, same call overheads."""

    def forward(self, z, hidden=None):
        h, hidden = self.rnn(z, hidden)
        out = self.readout(h)
        return (z + out if self.residual else out), hidden

    def free_run(self, z_next, hidden, steps):
        out = [z_next]
        z = z_next
        for _ in range(steps - 1):
            pred, hidden = self(z[:, None, :], hidden)
            z = pred[:, 0]
            out.append(z)
        return torch.stack(out, dim=1), hidden


def old_copy(rnn: LatentRNN) -> OldLatentRNN:
    m = rnn.rnn
    old = OldLatentRNN(m.input_size, m.hidden_size, rnn.cell, m.num_layers, rnn.residual)
    old.load_state_dict(rnn.state_dict())
    return old.to(next(rnn.parameters()).dtype).train(rnn.training)


def same(a, b) -> bool:
    if isinstance(a, tuple):
        return all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
    return torch.equal(a, b)


def start_state(model, batch: int):
    """Latent and hidden state after one teacher-forced step from FHN initial conditions."""
    solver = make(model.system)
    states = solver.initial_condition(None, batch, np.random.default_rng(0))
    with torch.no_grad():
        z = model.encode(states)
        pred, hidden = model.rnn(z[:, None], None)
    return pred[:, -1], hidden


def bench_free_run(model, batch: int, steps: int, reps: int) -> dict:
    rnn, old = model.rnn, old_copy(model.rnn)
    z_next, hidden = start_state(model, batch)
    best = {"old": float("inf"), "new": float("inf")}
    runs = {"old": lambda: old.free_run(z_next, hidden, steps),
            "new": lambda: rnn.free_run(z_next, hidden, steps)}  # fmt: skip
    results = {}
    with torch.no_grad():  # as in LED.forecast_latent and the coupler's macro phase
        old.free_run(z_next, hidden, 50)  # warm-up (allocator, oneDNN primitive cache)
        rnn.free_run(z_next, hidden, 50)
        for _ in range(reps):
            for name, fn in runs.items():
                t0 = time.perf_counter()
                results[name] = fn()
                best[name] = min(best[name], time.perf_counter() - t0)
    bitwise = same(results["old"][0], results["new"][0]) and same(
        results["old"][1], results["new"][1]
    )
    us = {k: v / (steps - 1) * 1e6 for k, v in best.items()}
    return {"batch": batch, "steps": steps, "old_us_per_step": us["old"],
            "new_us_per_step": us["new"], "speedup": us["old"] / us["new"],
            "old_s": best["old"], "new_s": best["new"], "bitwise": bitwise,
            "latents": results["new"][0]}  # fmt: skip


def bench_forward(model, batch: int, calls: int, reps: int) -> dict:
    """Single-step teacher forcing (``rnn(z[:, None], hidden)``), as in the coupler."""
    rnn, old = model.rnn, old_copy(model.rnn)
    z, hidden = start_state(model, batch)
    z = z[:, None]
    best = {"old": float("inf"), "new": float("inf")}
    fns = {"old": lambda: old(z, hidden), "new": lambda: rnn(z, hidden)}
    with torch.no_grad():
        ok = all(same(a, b) for a, b in zip(fns["old"](), fns["new"](), strict=True))
        for _ in range(reps):
            for name, fn in fns.items():
                t0 = time.perf_counter()
                for _ in range(calls):
                    fn()
                best[name] = min(best[name], (time.perf_counter() - t0) / calls)
    return {"batch": batch, "old_us_per_call": best["old"] * 1e6,
            "new_us_per_call": best["new"] * 1e6, "speedup": best["old"] / best["new"],
            "bitwise": ok}  # fmt: skip


def bench_decode_chunks(model, z: torch.Tensor, chunks: list[int], reps: int) -> list[dict]:
    n = z.shape[0] * z.shape[1]
    rows = []
    for chunk in chunks:
        best = float("inf")
        for _ in range(reps):
            t0 = time.perf_counter()
            model.decode_sequence(z, chunk=chunk)
            best = min(best, time.perf_counter() - t0)
        rows.append({"chunk": chunk, "states": n, "s": best, "us_per_state": best / n * 1e6})
    return rows


def decode_breakdown(model, z: torch.Tensor, chunk: int) -> dict:
    """``decode_sequence`` re-enacted op by op with timers (same ops, FHN MLP decoder)."""
    mlp = model.autoencoder.decoder
    lin = [mlp.inp[0], *(b[0] for b in mlp.blocks), mlp.out]
    scale = model.scaler._view(model.scaler.scale, torch.empty(1, *model.state_shape))
    shift = model.scaler._view(model.scaler.shift, torch.empty(1, *model.state_shape))
    b, t, d = z.shape
    flat = z.reshape(b * t, d)
    tm = dict.fromkeys(("gemm", "tanh", "residual_add", "scaler", "to_numpy", "concatenate"), 0.0)
    flops = 0.0

    def clock(key, fn, *args):
        t0 = time.perf_counter()
        r = fn(*args)
        tm[key] += time.perf_counter() - t0
        return r

    t_all = time.perf_counter()
    with torch.no_grad():
        parts = []
        for i in range(0, b * t, chunk):
            x = flat[i : i + chunk]
            h = clock("tanh", torch.tanh, clock("gemm", F.linear, x, lin[0].weight, lin[0].bias))
            for layer in lin[1:-1]:
                a = clock("tanh", torch.tanh, clock("gemm", F.linear, h, layer.weight, layer.bias))
                h = clock("residual_add", torch.add, h, a)
            y = clock("gemm", F.linear, h, lin[-1].weight, lin[-1].bias)
            y = y.unflatten(-1, model.state_shape)
            y = clock("scaler", lambda v: v * scale + shift, y)
            parts.append(clock("to_numpy", lambda v: v.cpu().numpy(), y))
            flops += 2.0 * x.shape[0] * sum(m.weight.numel() for m in lin)
        states = clock(
            "concatenate", lambda p: np.concatenate(p).reshape(b, t, *model.state_shape), parts
        )
    total = time.perf_counter() - t_all
    n_check = min(b, 4)  # the re-enactment computes what decode_sequence computes
    same_bits = np.array_equal(states[:n_check], model.decode_sequence(z[:n_check], chunk=chunk))
    n = b * t
    return {"chunk": chunk, "states": n, "total_s": total,
            "us_per_state": {k: v / n * 1e6 for k, v in tm.items()},
            "fraction": {k: v / total for k, v in tm.items()},
            "gemm_gflops": flops / tm["gemm"] / 1e9, "matches_decode_sequence": same_bits}  # fmt: skip


def sgemm_rate(dtype=torch.float32) -> dict:
    """Reference one-thread GEMM rates: a large square product and the decoder's shapes."""
    out = {}
    for name, (m, k, n) in {"1024x1024x1024": (1024, 1024, 1024),
                            "4096x100x100": (4096, 100, 100),
                            "4096x100x202": (4096, 100, 202),
                            "4096x8x100": (4096, 8, 100)}.items():  # fmt: skip
        a, w = torch.randn(m, k, dtype=dtype), torch.randn(n, k, dtype=dtype)
        reps = max(3, int(2e9 / (2 * m * k * n)) // 10)
        best = float("inf")
        for _ in range(3):
            t0 = time.perf_counter()
            for _ in range(reps):
                F.linear(a, w)
            best = min(best, (time.perf_counter() - t0) / reps)
        out[name] = 2 * m * k * n / best / 1e9
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--model", default="models/led_fhn.pt")
    ap.add_argument("--steps", type=int, default=8000, help="free-run steps at batch 100")
    ap.add_argument("--steps1", type=int, default=2000, help="free-run steps at batch 1")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument(
        "--decode-states",
        type=int,
        default=800_000,
        help="latents decoded per chunk-size run (from the batch-100 free run; 800k: all of it)",
    )
    ap.add_argument("--chunks", type=int, nargs="+", default=[512, 1024, 4096, 16384, 65536])
    ap.add_argument("--out", default="benchmarks/out/macro_phase.json")
    args = ap.parse_args()  # fmt: skip
    torch.set_num_threads(1)
    if os.environ.get("OMP_NUM_THREADS") != "1":
        print("# warning: OMP_NUM_THREADS is not 1")
    model, _ = load_model(args.model)
    model.eval()
    print(f"# {args.model}: {model.rnn.cell} hidden {model.rnn.rnn.hidden_size}, "
          f"latent {model.latent_dim}, {model.dtype}; torch {torch.__version__}, "
          f"{torch.get_num_threads()} thread; {platform.node()} {platform.processor()}")  # fmt: skip

    free = [bench_free_run(model, 1, args.steps1, args.reps),
            bench_free_run(model, 100, args.steps, args.reps)]  # fmt: skip
    print("\n| free run | steps | old µs/step | new µs/step | old/new | bitwise |")
    print("|---|---|---|---|---|---|")
    for r in free:
        print(f"| batch {r['batch']} | {r['steps']} | {r['old_us_per_step']:.1f} | "
              f"{r['new_us_per_step']:.1f} | {r['speedup']:.2f} | {r['bitwise']} |")  # fmt: skip
    fwd = [bench_forward(model, b, 2000, args.reps) for b in (1, 100)]
    print("\n| teacher-forced step (T=1) | old µs/call | new µs/call | old/new | bitwise |")
    print("|---|---|---|---|---|")
    for r in fwd:
        print(f"| batch {r['batch']} | {r['old_us_per_call']:.1f} | {r['new_us_per_call']:.1f} | "
              f"{r['speedup']:.2f} | {r['bitwise']} |")  # fmt: skip

    z = free[1].pop("latents")
    free[0].pop("latents")
    n_t = max(1, min(z.shape[1], args.decode_states // z.shape[0]))
    zd = z[:, :n_t].contiguous()
    chunks = bench_decode_chunks(model, zd, args.chunks, max(1, args.reps - 1))
    print("\n| decode_sequence chunk | states | s | µs/state |\n|---|---|---|---|")
    for r in chunks:
        print(f"| {r['chunk']} | {r['states']} | {r['s']:.3f} | {r['us_per_state']:.3f} |")
    breakdown = [decode_breakdown(model, zd, c) for c in (4096, 65536)]
    gemm = sgemm_rate()
    for br in breakdown:
        print(f"\n# decode breakdown, chunk {br['chunk']}: {br['total_s']:.3f} s, "
              f"GEMM {br['gemm_gflops']:.1f} GFLOP/s")  # fmt: skip
        print("| stage | µs/state | fraction |\n|---|---|---|")
        for k, v in br["us_per_state"].items():
            print(f"| {k} | {v:.3f} | {br['fraction'][k]:.2f} |")
    print("\n# one-thread float32 GEMM (F.linear) GFLOP/s: "
          + ", ".join(f"{k} {v:.1f}" for k, v in gemm.items()))  # fmt: skip

    result = {"model": args.model, "commit": git_commit(), "torch": torch.__version__,
              "threads": torch.get_num_threads(),
              "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
              "machine": platform.node(), "processor": platform.processor(), "arch": platform.machine(),
              "free_run": free, "teacher_forced_step": fwd, "decode_chunks": chunks,
              "decode_breakdown": breakdown, "sgemm_gflops": gemm}  # fmt: skip
    out = write_result(args.out, result)
    print(f"\n# wrote {out}")


if __name__ == "__main__":
    main()
