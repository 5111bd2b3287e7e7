"""The README's main job, end to end: the FHN LED coupled run under MUSCLE3 and embedded.

    mkdir -p RUN && muscle_manager --start-all configs/led_fhn.ymmsl --run-dir RUN
    ledmus run configs/led_fhn.ymmsl --run-dir RUN2 -q

(RUN, RUN2 temporary folders).  The whole command's wall time is measured (MUSCLE3: the
manager and the four component processes, start-up included); the coupled loop's wall
time, the speed-up against the micro-only run and the MNAD of u and v come from the run's
``metrics.json``.  The environment is passed on as it is (the README's command sets no
thread count).

    python benchmarks/quickstart.py [--ymmsl configs/led_fhn.ymmsl] [--engines muscle3 embedded]
                                    [--set t_end=200 ...] [--json benchmarks/out/quickstart.json]

``--set name=value`` runs a copy of the yMMSL with those settings changed (smoke tests).
Writes ``ymmsl``, ``settings_overrides``, ``runs`` (one per engine: ``engine``,
``command``, ``command_wall_s``, ``speedup``, ``wall_s``, ``micro_only_wall_s``,
``mnad_u``, ``mnad_v``, ``micro_s``, ``macro_s``, ``coupling_s``, ``metrics``: the scalars
of ``metrics.json``) and ``provenance`` to ``--json``.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml
from _provenance import add_json_option, write_result
from _settings import add_set_option, overrides

ROOT = Path(__file__).resolve().parents[1]
KEYS = ("speedup", "wall_s", "micro_only_wall_s", "micro_s", "macro_s", "coupling_s")


def job_file(ymmsl: str, overrides: dict[str, Any], tmp: Path) -> str:
    """The yMMSL to run: the given one, or a copy in ``tmp`` with ``overrides`` applied."""
    if not overrides:
        return ymmsl
    doc = yaml.safe_load((ROOT / ymmsl).read_text())
    doc["settings"].update(overrides)
    path = tmp / Path(ymmsl).name
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return str(path)


def run_engine(engine: str, ymmsl: str, run_dir: Path, env: dict[str, str]) -> dict[str, Any]:
    bindir = Path(sys.executable).parent
    if engine == "muscle3":
        cmd = [str(bindir / "muscle_manager"), "--start-all", ymmsl, "--run-dir", str(run_dir)]
        metrics_file = run_dir / "output" / "metrics.json"
    else:
        cmd = [sys.executable, "-m", "ledmus", "run", ymmsl, "--run-dir", str(run_dir), "-q"]
        metrics_file = run_dir / "metrics.json"
    start = time.perf_counter()
    run_dir.mkdir(parents=True, exist_ok=True)  # the README's mkdir -p (embedded: harmless)
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env)
    wall = time.perf_counter() - start
    if proc.returncode:
        raise SystemExit(f"{shlex.join(cmd)} failed ({proc.returncode}):\n"
                         f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")  # fmt: skip
    metrics = json.loads(metrics_file.read_text())
    errors = metrics.get("errors", {})
    shown = ["muscle_manager", *cmd[1:]] if engine == "muscle3" else ["ledmus", *cmd[3:]]
    shown = ["RUN" if c == str(run_dir) else c for c in shown]
    return {"engine": engine, "command": shlex.join(shown), "command_wall_s": wall, **{k: metrics.get(k) for k in KEYS},
            "mnad_u": errors.get("mnad_u"), "mnad_v": errors.get("mnad_v"),
            "metrics": metrics}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--ymmsl", default="configs/led_fhn.ymmsl")
    ap.add_argument("--engines", nargs="+", default=["muscle3", "embedded"],
                    choices=["muscle3", "embedded"])  # fmt: skip
    add_set_option(ap, "setting (runs a modified copy of the yMMSL)")
    ap.add_argument("--keep", help="keep the run directories under this folder")
    add_json_option(ap, "benchmarks/out/quickstart.json")
    args = ap.parse_args()
    over = overrides(ap, args.set)
    bindir = Path(sys.executable).parent
    env = dict(os.environ, PATH=f"{bindir}{os.pathsep}{os.environ['PATH']}")
    tmp = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="ledmus_quickstart_"))
    tmp.mkdir(parents=True, exist_ok=True)
    try:
        ymmsl = job_file(args.ymmsl, over, tmp)
        runs = []
        for engine in args.engines:
            r = run_engine(engine, ymmsl, tmp / engine, env)
            runs.append(r)
            print(f"{engine}: command {r['command_wall_s']:.1f} s, loop {r['wall_s']:.2f} s, "
                  f"micro-only {r['micro_only_wall_s'] or float('nan'):.2f} s, speed-up "
                  f"{r['speedup'] or float('nan'):.2f}, MNAD u {r['mnad_u'] or float('nan'):.4f}, "
                  f"v {r['mnad_v'] or float('nan'):.4f}", flush=True)  # fmt: skip
    finally:
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    out = write_result(args.json, {"benchmark": "quickstart", "ymmsl": args.ymmsl,
                                   "settings_overrides": over, "runs": runs})  # fmt: skip
    print(f"# wrote {out}")


if __name__ == "__main__":
    main()
