"""What the shipped checkpoints record about themselves: size, kind, system, architecture,
training wall time per stage, RNN restarts and the chosen one, threads (when recorded).

Reads ``models/*.pt`` with ``ledmus.surrogates.checkpoint.read_checkpoint`` (the
history stored in the checkpoint; ``models/<stem>_history.json`` is the same history
written beside it) and writes ``benchmarks/out/models.json``: ``models``, one per file,
with ``file``, ``kb``, ``shipped`` (tracked by git), ``kind``, ``system``, ``latent_dim``, ``rnn`` (cell, hidden,
residual), ``training_wall_s`` (per stage, and ``total``), ``restarts``,
``chosen_restart``, ``free_run_val``, ``restart_free_run_val``, with the restart objective
``restart_val``, ``score``, ``restart_nad``, ``restart_lag_end`` (and the rest of the
chosen run's restart scores) and ``restart_restart_val``, ``best_epoch`` per stage,
``device``, ``threads`` (the config's or the history's, if recorded; else null),
``config_restarts``, ``ledmus_version``, ``torch_version``, ``fingerprint``; plus
``provenance``.

    python benchmarks/model_card.py [MODEL ...] [--json benchmarks/out/models.json]
"""

from __future__ import annotations

import argparse
import subprocess
from pathlib import Path
from typing import Any

from _provenance import ROOT, add_json_option, write_result

from ledmus.surrogates.checkpoint import checkpoint_kind, read_checkpoint


def shipped(path: Path) -> bool | None:
    """Whether git tracks the file (a shipped model); None outside git."""
    try:
        proc = subprocess.run(["git", "ls-files", "--error-unmatch", str(path.resolve())],
                              capture_output=True, cwd=ROOT)  # fmt: skip
    except OSError:
        return None
    return proc.returncode == 0


def card(path: Path) -> dict[str, Any]:
    payload = read_checkpoint(path)
    history = payload.get("history") or {}
    config = payload.get("config") or {}
    spec = payload.get("spec") or {}
    rnn_hist = history.get("rnn") or {}
    restarts = rnn_hist.get("restarts") or []
    wall = {k: float(v) for k, v in (history.get("wall_time_s") or {}).items()}
    if wall:
        wall["total"] = sum(wall.values())
    latent = (spec.get("autoencoder") or {}).get("latent_dim") or (spec.get("pca") or {}).get(
        "components"
    )
    best = {stage: h["best_epoch"][0] for stage, h in history.items()
            if isinstance(h, dict) and h.get("best_epoch")}  # fmt: skip
    return {
        "file": str(path),
        "kb": path.stat().st_size / 1000,
        "shipped": shipped(path),
        "kind": checkpoint_kind(payload),
        "system": payload.get("system"),
        "latent_dim": latent,
        "rnn": {
            k: (spec.get("rnn") or {}).get(k) for k in ("cell", "hidden", "layers", "residual")
        },
        "training_wall_s": wall,
        "restarts": len(restarts) if restarts else None,
        "chosen_restart": rnn_hist.get("chosen_restart"),
        "free_run_val": rnn_hist.get("free_run_val"),
        "restart_free_run_val": [r.get("free_run_val") for r in restarts],
        # the restart objective's scores (train_rnn.restart): the error after teacher-forced
        # restarts (latent MSE; physical NAD and phase lag of u) and the selection score
        **{
            key: rnn_hist.get(key)
            for key in (
                "restart_val",
                "score",
                "restart_nad",
                "restart_nad_end",
                "restart_lag_end",
                "restart_lag_end_std",
                "restart_shape_nad",
            )
            if key in rnn_hist
        },
        "restart_restart_val": [r.get("restart_val") for r in restarts],
        "best_epoch": best,
        "device": history.get("device"),
        "pca": {k: v for k, v in (history.get("pca") or {}).items() if not isinstance(v, list)},
        "threads": config.get("threads", history.get("threads")),
        "config_restarts": (config.get("train_rnn") or {}).get("restarts"),
        "ledmus_version": payload.get("ledmus_version"),
        "torch_version": payload.get("torch_version"),
        "fingerprint": payload.get("fingerprint"),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("models", nargs="*", help="checkpoints (default: models/*.pt)")
    add_json_option(ap, "benchmarks/out/models.json")
    args = ap.parse_args()
    paths = [Path(m) for m in args.models] or sorted(Path("models").glob("*.pt"))
    cards = [card(p) for p in paths]
    print("| model | kB | kind | system | training s (stages) | restarts (chosen) |")
    print("|---|---|---|---|---|---|")
    for c in cards:
        stages = ", ".join(f"{k} {v:.0f}" for k, v in c["training_wall_s"].items() if k != "total")
        total = c["training_wall_s"].get("total", float("nan"))
        print(f"| {c['file']} | {c['kb']:.0f} | {c['kind']} | {c['system']} | {total:.0f} "
              f"({stages}) | {c['restarts']} ({c['chosen_restart']}) |")  # fmt: skip
    out = write_result(args.json, {"benchmark": "model_card", "models": cards})
    print(f"# wrote {out}")


if __name__ == "__main__":
    main()
