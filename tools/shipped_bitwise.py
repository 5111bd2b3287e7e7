"""Fingerprints of every shipped job, to show a refactor changes no bit.

Runs each ``configs/*.ymmsl`` of a checkout with the embedded engine on one thread,
shortened to the warm-up, two cycles and one more micro window (``compare`` and
``plots`` off), and writes the SHA-256 of every dataset of ``trajectory.h5`` (and of
the hybrid's ``.npz`` outputs) per job to a JSON.  Run it in two checkouts (``git
worktree add /tmp/old <commit>``) and diff the JSONs::

    PYTHONPATH=/tmp/old python tools/shipped_bitwise.py /tmp/old /tmp/old.json
    python tools/shipped_bitwise.py . /tmp/new.json && diff /tmp/old.json /tmp/new.json
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import h5py
import numpy as np
import yaml


def short_settings(settings: dict) -> list[str]:
    """``--set`` values: no reference, no plots, ``t_end`` after two cycles."""
    sets = ["compare=false", "plots=false"]
    if settings.get("coupling") == "hybrid":  # its own short t_end
        return sets
    tw, tm, tu = (float(settings.get(k, 0)) for k in ("t_warm", "t_macro", "t_micro"))
    if tm + tu > 0:
        sets.append(f"t_end={min(float(settings['t_end']), tw + 2 * (tm + tu) + tu):g}")
    return sets


def fingerprint(run: Path) -> str:
    h = hashlib.sha256()
    for path in sorted(run.rglob("trajectory.h5")):
        with h5py.File(path) as h5:
            for key in sorted(k for k in h5 if isinstance(h5[k], h5py.Dataset)):
                h.update(key.encode())
                h.update(np.ascontiguousarray(h5[key][()]).tobytes())
    for path in sorted(run.rglob("*.npz")):
        with np.load(path) as data:
            for key in sorted(data.files):
                h.update(key.encode())
                h.update(np.ascontiguousarray(data[key]).tobytes())
    return h.hexdigest()


def main(checkout: str, out: str) -> None:
    root, results = Path(checkout).resolve(), {}
    env = dict(os.environ, OMP_NUM_THREADS="1")
    with tempfile.TemporaryDirectory() as tmp:
        for cfg in sorted((root / "configs").glob("*.ymmsl")):
            settings = yaml.safe_load(cfg.read_text())["settings"]
            run = Path(tmp) / cfg.stem
            sets = sum((["--set", s] for s in short_settings(settings)), [])
            cmd = [sys.executable, "-m", "ledmus", "-q", "run", str(cfg), "--run-dir", str(run)]
            proc = subprocess.run([*cmd, *sets], cwd=root, capture_output=True, text=True, env=env)
            results[cfg.stem] = (
                fingerprint(run) if proc.returncode == 0 else f"failed: {proc.stderr[-300:]}"
            )
            print(cfg.stem, results[cfg.stem][:16], flush=True)
    Path(out).write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    main(sys.argv[1], sys.argv[2])
