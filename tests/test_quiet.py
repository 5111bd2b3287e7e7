"""``-q`` is quiet: no progress bars, INFO lines or summary on success, in every command;
bars only on a terminal unless ``LEDMUS_PROGRESS=1`` (:mod:`ledmus.progress`)."""

from __future__ import annotations

import ast
import io
import logging
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from ledmus import progress

ROOT = Path(__file__).resolve().parents[1]
FHN_YMMSL = ROOT / "configs" / "led_fhn.ymmsl"
SIMULATE = ["simulate", "fhn", "--ic", "y05", "--t-end", "100"]
TIMEOUT_S = 300  # seconds per ledmus process (each takes ~3 s): a hang fails, not stalls
BAR = "fhn:"  # the rollout bar's label (tqdm "fhn:  40%|████ | 40/100 ...")


def ledmus(*args: str, env: dict[str, str], tty: bool = False) -> tuple[int, str, str]:
    """``python -m ledmus ARGS`` in the checkout: (status, stdout, stderr).  ``tty``:
    stderr is a pseudo-terminal 100 columns wide (tqdm draws nothing at 0 columns)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", **env}
    env = {k: v for k, v in env.items() if v is not None}
    cmd = [sys.executable, "-m", "ledmus", *args]
    if not tty:
        proc = subprocess.run(
            cmd, capture_output=True, text=True, cwd=ROOT, env=env, timeout=TIMEOUT_S
        )
        return proc.returncode, proc.stdout, proc.stderr
    pty = pytest.importorskip("pty")
    import fcntl
    import struct
    import termios

    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 100, 0, 0))
    chunks: list[bytes] = []

    def drain() -> None:  # keep the pty buffer from filling up
        while True:
            try:
                data = os.read(master, 4096)
            except OSError:  # EIO: the child closed the terminal
                return
            if not data:
                return
            chunks.append(data)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    try:
        proc = subprocess.run(
            cmd,
            stdout=subprocess.PIPE,
            stderr=slave,
            text=True,
            cwd=ROOT,
            env=env,
            timeout=TIMEOUT_S,
        )
    finally:
        os.close(slave)
    reader.join(timeout=10)  # seconds: the child has exited; only buffered bytes are left
    os.close(master)
    return proc.returncode, proc.stdout, b"".join(chunks).decode(errors="replace")


# ------------------------------------------------------------------ the command line
def test_quiet_simulate_prints_nothing_even_on_a_terminal_or_asked_for_bars(tmp_path):
    """-q wins over a terminal and over LEDMUS_PROGRESS=1: nothing on stdout or stderr."""
    for i, (tty, env) in enumerate([(True, {}), (False, {progress.ENV: "1"})]):
        out = tmp_path / f"x{i}.h5"
        rc, stdout, stderr = ledmus("-q", *SIMULATE, "--out", str(out), env=env, tty=tty)
        assert rc == 0 and out.is_file(), stderr
        assert stdout == "" and stderr.strip() == "", (tty, stdout, stderr)


def test_quiet_dataset_prints_nothing(tmp_path):
    """``dataset`` asks its rollouts for bars (progress=True); only the policy keeps -q
    quiet (before it, ``ledmus -q dataset`` drew a bar per split)."""
    args = ["-q", "dataset", "fhn", "--scale", "small", "--out", str(tmp_path / "d")]
    rc, stdout, stderr = ledmus(*args, env={progress.ENV: "1"})
    assert rc == 0 and (tmp_path / "d" / "test.h5").is_file(), stderr
    assert stdout == "" and stderr == "", (stdout, stderr)


def test_bars_on_a_terminal_or_when_asked_and_not_in_a_pipe(tmp_path):
    """The checks above can fail: without -q the same command draws its bar on a terminal
    and, asked by LEDMUS_PROGRESS=1, into a pipe; in a pipe by default it does not."""
    rc, _, stderr = ledmus(*SIMULATE, "--out", str(tmp_path / "a.h5"), env={}, tty=True)
    assert rc == 0 and BAR in stderr and "%|" in stderr, stderr
    rc, _, stderr = ledmus(*SIMULATE, "--out", str(tmp_path / "b.h5"), env={progress.ENV: "1"})
    assert rc == 0 and BAR in stderr and "%|" in stderr, stderr
    env = {progress.ENV: None}  # stderr is a pipe, nothing asks for bars
    rc, _, stderr = ledmus(*SIMULATE, "--out", str(tmp_path / "c.h5"), env=env)
    assert rc == 0 and "%|" not in stderr and "\r" not in stderr, stderr
    assert stderr.startswith("ledmus: wrote "), stderr  # the INFO line is still there


def test_quiet_embedded_run_prints_nothing(tmp_path):
    """``ledmus -q run`` of a short coupled run (warm-up 60 + one cycle, no reference run):
    no bar, no INFO line, no JSON summary (metrics.json holds it)."""
    sets = ["--set", "t_end=120", "--set", "plots=false", "--set", "compare=false"]
    args = ["-q", "run", str(FHN_YMMSL), "--run-dir", str(tmp_path / "r"), *sets]
    rc, stdout, stderr = ledmus(*args, env={progress.ENV: "1"})
    assert rc == 0, stderr
    assert stdout == "" and stderr == "", (stdout, stderr)
    assert (tmp_path / "r" / "metrics.json").is_file()


def test_tqdm_is_used_only_through_the_policy():
    """Every bar goes through ledmus.progress: no other module imports tqdm."""
    found = []
    for path in sorted((ROOT / "ledmus").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            if any(n.split(".")[0] == "tqdm" for n in names):
                found.append(str(path.relative_to(ROOT)))
    assert found == ["ledmus/progress.py"], found


# ------------------------------------------------------------------ the policy
class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture
def policy(monkeypatch):
    """A clean policy: no env var, no explicit setting, the ledmus logger unset."""
    monkeypatch.delenv(progress.ENV, raising=False)
    logger = logging.getLogger("ledmus")
    level = logger.level
    logger.setLevel(logging.NOTSET)
    progress.set_quiet(None)
    yield
    progress.set_quiet(None)
    logger.setLevel(level)


def test_policy(policy, monkeypatch):
    tty, pipe = Terminal(), io.StringIO()
    assert progress.show_progress(True, tty) and not progress.show_progress(True, pipe)
    assert not progress.show_progress(False, tty)  # progress=False always turns bars off
    monkeypatch.setenv(progress.ENV, "1")
    assert progress.show_progress(True, pipe) and not progress.show_progress(False, pipe)
    monkeypatch.setenv(progress.ENV, "0")
    assert not progress.show_progress(True, tty)
    monkeypatch.setenv(progress.ENV, "1")
    logging.getLogger("ledmus").setLevel(logging.WARNING)  # what -q does
    assert progress.is_quiet() and not progress.show_progress(True, tty)
    logging.getLogger("ledmus").setLevel(logging.INFO)
    assert progress.show_progress(True, tty)
    progress.set_quiet(True)  # explicit: wins over the logger and the env var
    assert not progress.show_progress(True, tty)


def test_policy_ignores_an_unknown_value_with_one_warning(policy, monkeypatch, caplog):
    monkeypatch.setenv(progress.ENV, "maybe")
    with caplog.at_level(logging.INFO, logger="ledmus"):  # INFO: not quiet
        assert progress.show_progress(True, Terminal())
        assert not progress.show_progress(True, io.StringIO())
    assert [r.message for r in caplog.records].count(
        "LEDMUS_PROGRESS='maybe' is neither 1 nor 0; ignored (bars only on a terminal)"
    ) == 1


def test_a_disabled_bar_still_iterates_and_updates(policy):
    bar = progress.progress_bar(range(3), enabled=False)
    assert list(bar) == [0, 1, 2]
    with progress.progress_bar(total=2, enabled=True, file=io.StringIO()) as bar:
        bar.update()  # a pipe: disabled, update is a no-op
        bar.set_postfix(loss=1.0)
