"""The floor of a MUSCLE3 coupling loop: what libmuscle itself costs per exchange on this
machine, with no ledmus code in the loop.

Four bare libmuscle components in the topology of ``configs/led_fhn.ymmsl`` (macro ->
lift -> micro -> restrict -> macro, O_I/S on the macro, F_INIT/O_F on the three others)
pass numpy arrays of the FHN job's message sizes round the ring.  Each component spends a
fixed time in a busy loop per exchange instead of the job's computations (``--work``:
macro, lift, micro, restrict in ms; the default is what libmuscle's own profile of the FHN
job at T_m = T_mu = 10 shows between receive and send, see ``docs/guide/performance.md``),
so the time per exchange minus the summed work is libmuscle's transport, process wake-ups
included.  The idle ring (no work) is measured beside it.

    python benchmarks/libmuscle_floor.py [--exchanges 100] [--repeats 3]
                                         [--work 2.7 0.6 35 0.8] [--json PATH]

Writes ``rows`` (``label``, ``work_ms`` per component, ``exchange_ms`` best of
``--repeats`` and ``exchange_ms_all`` every repeat, ``overhead_ms`` = best exchange -
summed work, ``overhead_max_ms`` the same of the slowest repeat, ``ratio`` = best exchange
/ summed work) to ``--json`` (default ``benchmarks/out/libmuscle_floor.json``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROLES = ("macro", "lift", "micro", "restrict")
#: float64 entries of the message each role sends (the FHN job's sizes: 287 B, 1.9 kB,
#: 16.5 kB and 16.9 kB encoded)
SIZES = {"macro": 16, "lift": 202, "micro": 2020, "restrict": 2070}


def busy(ms: float) -> None:
    """Spin for ``ms`` milliseconds (numpy work, like a component computing)."""
    import numpy as np

    start, a = time.perf_counter(), np.ones((6, 101))
    while (time.perf_counter() - start) * 1e3 < ms:
        a = np.roll(a, 1, axis=1) * 0.999 + 0.001


def component(role: str) -> None:
    """One ring member (started by muscle_manager with ``--role``)."""
    import numpy as np
    from libmuscle import Instance, InstanceFlags, Message
    from ymmsl import Operator

    work = json.loads(os.environ["FLOOR_WORK"])[role]
    out = np.zeros(SIZES[role])
    if role == "macro":
        instance = Instance({Operator.O_I: ["out"], Operator.S: ["in"]})
        while instance.reuse_instance():
            n = instance.get_setting("exchanges")
            start = time.perf_counter()
            for k in range(n):
                busy(work)
                instance.send("out", Message(float(k), None, out))
                np.array(instance.receive("in").data.array)  # a writable copy, as ledmus does
            Path(os.environ["FLOOR_RESULT"]).write_text(str(time.perf_counter() - start))
        return
    flags = InstanceFlags.KEEPS_NO_STATE_FOR_NEXT_USE if role != "micro" else InstanceFlags(0)
    instance = Instance({Operator.F_INIT: ["in"], Operator.O_F: ["out"]}, flags)
    while instance.reuse_instance():
        msg = instance.receive("in")
        np.array(msg.data.array)
        busy(work)
        instance.send("out", Message(msg.timestamp, None, out))


def ring(tmp: Path, exchanges: int) -> Path:
    comps = {
        r: {"description": r, "ports": {"o_i": "out", "s": "in"} if r == "macro" else
            {"f_init": "in", "o_f": "out"}, "implementation": r}
        for r in ROLES
    }  # fmt: skip
    doc = {
        "ymmsl_version": "v0.2",
        "models": {"ring": {"components": comps, "conduits": {
            "macro.out": "lift.in", "lift.out": "micro.in", "micro.out": "restrict.in",
            "restrict.out": "macro.in"}}},
        "settings": {"exchanges": exchanges, "muscle_profile_level": "none"},
        "programs": {r: {"description": r, "executable": sys.executable,
                         "args": [str(Path(__file__).resolve()), "--role", r]} for r in ROLES},
        "resources": {f"ring.{r}": {"threads": 1} for r in ROLES},
    }  # fmt: skip
    import yaml

    path = tmp / "ring.ymmsl"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def measure(tmp: Path, job: Path, work: dict[str, float], repeats: int, n: int) -> list[float]:
    """The time per exchange (ms) of each of ``repeats`` runs of the ring."""
    bindir = Path(sys.executable).parent
    times = []
    for _ in range(repeats):
        run_dir = tmp / f"run{time.monotonic_ns()}"
        run_dir.mkdir()
        result = tmp / "result.txt"
        env = dict(os.environ, OMP_NUM_THREADS="1", FLOOR_WORK=json.dumps(work),
                   FLOOR_RESULT=str(result), PATH=f"{bindir}{os.pathsep}{os.environ['PATH']}")  # fmt: skip
        cmd = [str(bindir / "muscle_manager"), "--start-all", str(job), "--run-dir", str(run_dir)]
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
        if proc.returncode:
            raise SystemExit(f"ring failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
        times.append(1e3 * float(result.read_text()) / n)
    return times


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--role", choices=ROLES, help=argparse.SUPPRESS)
    ap.add_argument("--exchanges", type=int, default=100)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--work", type=float, nargs=4, default=[2.7, 0.6, 35.0, 0.8],
                    metavar=("MACRO", "LIFT", "MICRO", "RESTRICT"),
                    help="busy time per exchange of each component (ms)")  # fmt: skip
    ap.add_argument("--json", default="benchmarks/out/libmuscle_floor.json")
    args = ap.parse_args()
    if args.role:
        component(args.role)
        return
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from _provenance import write_result

    tmp = Path(tempfile.mkdtemp())
    job = ring(tmp, args.exchanges)
    rows = []
    for label, work in (("idle ring", [0.0] * 4), ("FHN job's work (T_m = 10)", args.work)):
        per_role = dict(zip(ROLES, work, strict=True))
        times = measure(tmp, job, per_role, args.repeats, args.exchanges)
        exchange, total = min(times), sum(work)
        rows.append({"label": label, "work_ms": per_role, "exchange_ms": exchange,
                     "overhead_ms": exchange - total,
                     "overhead_max_ms": max(times) - total,
                     "exchange_ms_all": times,
                     "ratio": exchange / total if total else None})  # fmt: skip
        print(json.dumps(rows[-1]))
    out = write_result(args.json, {"benchmark": "libmuscle_floor", "rows": rows,
                                   "settings": {"exchanges": args.exchanges,
                                                "repeats": args.repeats, "omp_num_threads": 1}})  # fmt: skip
    print(f"# wrote {out}")


if __name__ == "__main__":
    main()
