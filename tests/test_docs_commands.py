"""The documentation's runnable blocks run: every fenced ``bash`` or ``python`` block in
README.md and docs/**/*.md that follows a line ``<!-- runnable -->`` (or
``<!-- runnable: t_end=T -->``) is run as written, in a scratch folder that holds the
checkout's ``models/`` and ``examples/`` and a copy of ``configs/`` (with ``t_end`` set to
``T`` in every yMMSL file when the marker gives one, so that the coupled runs stay short).

A block passes when it exits with status 0 and every file it names with ``--out`` and every
run directory it names with ``--run-dir`` exists afterwards (a run directory with its
``metrics.json``)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from test_docs_tables import rt
from test_muscle3_ops import BIN, muscle3
from test_muscle3_ops import env as muscle3_env

ROOT = Path(__file__).resolve().parents[1]
MARKER = re.compile(r"^<!-- runnable(?::\s*t_end=(?P<t_end>[0-9.]+))? -->$")
FENCE = re.compile(r"^```(?P<lang>bash|python)\s*$")
#: seconds one block may take: the slowest, the main job under MUSCLE3 at t_end = 300
#: with its micro-only reference, takes about 15 s here; MUSCLE3 start-up on a loaded
#: 2-core CI host has taken up to a minute
BLOCK_TIMEOUT_S = 300

pytestmark = pytest.mark.slow


@dataclass(frozen=True)
class Block:
    page: str  # relative to the repository
    line: int  # of the marker, 1-based
    lang: str
    code: str
    t_end: float | None

    @property
    def id(self) -> str:
        return f"{self.page}:{self.line}"


def blocks_in(path: Path) -> list[Block]:
    """The runnable blocks of one page; a marker not followed by a bash or python fence
    is an error (a typo would otherwise silently stop a block from being tested)."""
    lines = path.read_text().splitlines()
    found = []
    for i, line in enumerate(lines):
        m = MARKER.match(line.strip())
        if not m:
            continue
        rel = path.relative_to(ROOT).as_posix()
        fence = FENCE.match(lines[i + 1]) if i + 1 < len(lines) else None
        if fence is None:
            raise AssertionError(f"{rel}:{i + 1}: runnable marker not followed by ```bash/python")
        end = next(j for j in range(i + 2, len(lines)) if lines[j].startswith("```"))
        t_end = float(m.group("t_end")) if m.group("t_end") else None
        code = "\n".join(lines[i + 2 : end]) + "\n"
        found.append(Block(rel, i + 1, fence.group("lang"), code, t_end))
    return found


BLOCKS = [b for p in rt.pages() for b in blocks_in(p)]


def test_the_readme_and_the_guides_have_runnable_blocks():
    """Guards the collector: the main job, the embedded run, the command-line examples and
    the plug-in examples must be found (a broken marker pattern finds nothing)."""
    pages_with_blocks = {b.page for b in BLOCKS}
    assert {
        "README.md",
        "docs/getting_started.md",
        "docs/guide/command_line.md",
        "docs/develop/add_solver.md",
        "docs/develop/add_model_family.md",
    } <= pages_with_blocks
    assert any("muscle_manager" in b.code for b in BLOCKS if b.page == "README.md")


def workspace(tmp_path: Path, t_end: float | None) -> Path:
    work = tmp_path / "work"
    work.mkdir()
    for name in ("models", "examples"):
        (work / name).symlink_to(ROOT / name, target_is_directory=True)
    shutil.copytree(ROOT / "configs", work / "configs")
    if t_end is not None:
        for ymmsl in (work / "configs").glob("*.ymmsl"):
            text = ymmsl.read_text()
            new, n = re.subn(r"(?m)^(\s+)t_end: .*$", rf"\g<1>t_end: {t_end}", text)
            assert n == 1, f"{ymmsl.name}: expected one t_end setting, found {n}"
            ymmsl.write_text(new)
    return work


def outputs_named(code: str) -> list[tuple[str, str]]:
    """(option, path) for every ``--out`` and ``--run-dir`` in a shell block."""
    return re.findall(r"(--out|--run-dir)[ =](\S+)", code)


def needs_muscle3(code: str) -> bool:
    return "muscle_manager" in code or "ledmus launch" in code


@pytest.mark.parametrize("block", BLOCKS, ids=[b.id for b in BLOCKS])
def test_runnable_block(block: Block, tmp_path: Path):
    (no_network,) = muscle3.args  # the MUSCLE3 tests' own skip condition and reason
    if needs_muscle3(block.code) and no_network:
        pytest.skip(muscle3.kwargs["reason"])
    if "mpiexec" in block.code and shutil.which("mpiexec", path=str(BIN)) is None:
        pytest.skip("mpiexec not installed (the mpi extra)")
    work = workspace(tmp_path, block.t_end)
    env = dict(muscle3_env(), MPLBACKEND="Agg")  # this python first on PATH, one thread
    if block.lang == "bash":
        cmd = ["bash", "-euo", "pipefail", "-c", block.code]
    else:
        script = work / "block.py"
        script.write_text(block.code)
        cmd = [sys.executable, str(script)]
    proc = subprocess.run(
        cmd, cwd=work, env=env, capture_output=True, text=True, timeout=BLOCK_TIMEOUT_S
    )
    assert proc.returncode == 0, (
        f"{block.id} exited {proc.returncode}\n--- stdout\n{proc.stdout[-3000:]}"
        f"\n--- stderr\n{proc.stderr[-3000:]}"
    )
    for option, path in outputs_named(block.code) if block.lang == "bash" else []:
        target = work / path
        if option == "--out":
            assert target.exists(), f"{block.id}: {path} was not written"
        else:
            metrics = [target / "metrics.json", target / "output" / "metrics.json"]
            assert any(m.is_file() for m in metrics), f"{block.id}: no metrics.json in {path}"
