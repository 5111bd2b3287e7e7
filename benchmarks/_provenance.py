"""What every benchmark JSON records about where it was measured.

``provenance()`` describes the checkout (commit, uncommitted changes), the command line,
the time, the machine and the library versions; ``write_result(path, payload)`` writes a
benchmark's numbers with that block under ``"provenance"``, atomically.
``docs/tables.py`` builds the documentation tables and their source lines from these
files.
"""

from __future__ import annotations

import os
import platform
import shlex
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def git_commit() -> str:
    """HEAD of the checkout the benchmark runs in ("unknown" outside git)."""
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                              check=True, cwd=ROOT).stdout.strip()  # fmt: skip
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def git_dirty() -> bool | None:
    """Whether tracked files differ from HEAD (None outside git)."""
    try:
        out = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                             capture_output=True, text=True, check=True, cwd=ROOT).stdout  # fmt: skip
    except (OSError, subprocess.CalledProcessError):
        return None
    return bool(out.strip())


def command_line(argv: list[str] | None = None) -> str:
    """The command as typed from the repository root: ``python benchmarks/x.py --a 1``."""
    argv = list(sys.argv if argv is None else argv)
    if argv:
        script = Path(argv[0])
        if script.is_absolute():
            try:
                argv[0] = str(script.relative_to(ROOT))
            except ValueError:
                pass
    return shlex.join(["python", *argv])


def _threads() -> int | None:
    """torch's intra-op thread count when torch is in use (imported), else None."""
    torch = sys.modules.get("torch")
    return int(torch.get_num_threads()) if torch is not None else None


def provenance(argv: list[str] | None = None) -> dict[str, Any]:
    """Commit, dirty flag, command line, UTC date, machine, threads and versions."""
    import numpy as np

    torch = sys.modules.get("torch")
    return {
        "commit": git_commit(),
        "dirty": git_dirty(),
        "command": command_line(argv),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": platform.node(),
        "processor": platform.processor() or platform.machine(),
        "arch": platform.machine(),
        "cpu_count": os.cpu_count(),
        "threads": _threads(),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "torch": str(torch.__version__) if torch is not None else None,
    }


def jsonable(value: Any) -> Any:
    """``value`` with numpy scalars and arrays, tuples and paths turned into JSON types."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "tolist") and callable(value.tolist):  # numpy arrays and scalars
        return jsonable(value.tolist())
    return value


def write_result(
    path: str | os.PathLike, payload: dict[str, Any], argv: list[str] | None = None
) -> Path:
    """Write ``payload`` plus ``"provenance"`` as JSON to ``path`` (folders made),
    atomically; returns the path."""
    from ledmus.atomic import write_json

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json(path, jsonable({**payload, "provenance": provenance(argv)}))
    return path


def add_json_option(parser, default: str) -> None:
    """The ``--json PATH`` option every benchmark has."""
    parser.add_argument("--json", default=default, metavar="PATH",
                        help=f"where to write the results (default {default})")  # fmt: skip
