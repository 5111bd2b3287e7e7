"""Launch a MUSCLE3 run so that one signal stops all of it: for batch systems.

``muscle_manager`` dies at once on SIGTERM but leaves its forked instantiator, the
libmuscle agent and the components behind (the components stop by themselves within
seconds through :class:`ledmus.coupler.components.watchdog.ManagerWatchdog`, but only
ledmus components have one).  This wrapper starts ::

    muscle_manager --start-all X.ymmsl [more.ymmsl ...] --run-dir D

in a process group of its own and, on SIGTERM, SIGINT or SIGHUP, sends SIGTERM to the
whole group (manager, instantiator, agent, components and their ``mpirun``), waits up to
:data:`GRACE_S` seconds for them to end, SIGKILLs what is left (the group, and any
descendant that left it) and exits with 128 + the signal number.  A second signal during
the wait SIGKILLs at once.  After a successful run it prints ``output/summary.txt`` (not with ``-q``). ::

    python -m ledmus.coupler.launch configs/led_fhn.ymmsl --run-dir runs/x
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

#: seconds the run gets to stop after SIGTERM before it is SIGKILLed: ledmus components
#: unwind (remove temporary files) in well under a second, their watchdog gives them 3 s
GRACE_S = 5.0
#: the signals that stop the run
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


def muscle_manager_command() -> str:
    """``muscle_manager`` beside this Python (the venv's), else the one on ``PATH``."""
    here = Path(sys.executable).parent / "muscle_manager"
    found = str(here) if here.exists() else shutil.which("muscle_manager")
    if found is None:
        raise FileNotFoundError("muscle_manager not found (pip install muscle3)")
    return found


def _group_alive(pgid: int) -> bool:
    """Whether a process of group ``pgid`` still runs.  Zombies do not count: an exited
    instantiator is reparented to init, which may reap it only later."""
    try:
        import psutil
    except ImportError:  # pragma: no cover - psutil comes with muscle3
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return False
        return True
    for proc in psutil.process_iter():
        try:
            if os.getpgid(proc.pid) == pgid and proc.status() != psutil.STATUS_ZOMBIE:
                return True
        except (OSError, psutil.Error):
            continue
    return False


def _descendants(pid: int) -> list[Any]:
    """The processes below ``pid`` (``psutil``), to catch any that left the group."""
    try:
        import psutil

        return psutil.Process(pid).children(recursive=True)
    except Exception:
        return []


class _Run:
    """The manager's process group and what happened to it."""

    def __init__(self) -> None:
        self.proc: subprocess.Popen | None = None
        self.signum = 0
        self.stopped_at = 0.0
        self.tracked: list[Any] = []

    def on_signal(self, signum: int, frame: object) -> None:
        if self.signum:  # a second signal: no more waiting
            self.kill()
            return
        self.signum, self.stopped_at = signum, time.monotonic()
        self.forward()

    def forward(self) -> None:
        """SIGTERM to the whole group (the components turn it into a clean exit)."""
        if self.proc is None:
            return
        self.tracked += _descendants(self.proc.pid)
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass

    def kill(self) -> None:
        """SIGKILL to the group and to every tracked descendant still running."""
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        for proc in self.tracked:
            try:
                if proc.is_running():
                    proc.kill()
            except Exception:
                pass

    def wait_stopped(self, grace: float) -> None:
        """Wait until the manager is reaped and its group and tracked descendants are
        gone; SIGKILL them ``grace`` seconds after the stop began."""
        assert self.proc is not None
        deadline = self.stopped_at + grace
        while (
            self.proc.poll() is None
            or _group_alive(self.proc.pid)
            or any(_is_running(p) for p in self.tracked)
        ):
            if time.monotonic() >= deadline:
                self.kill()
                self.proc.wait()
                return
            time.sleep(0.1)


def _is_running(proc: Any) -> bool:
    try:
        import psutil

        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except Exception:
        return False


def launch(
    ymmsl: Path,
    run_dir: Path,
    *,
    extra_args: Sequence[str] = (),
    grace: float = GRACE_S,
    overwrite: bool = False,
    quiet: bool = False,
) -> int:
    """Run ``muscle_manager --start-all ymmsl *extra_args --run-dir run_dir`` (extra yMMSL
    files, e.g. a snapshot to resume from, and manager options go in ``extra_args``) in
    its own process group; return its exit status, or 128 + signal number when stopped
    by a signal (the whole run is then gone).  The components find this Python's
    ``python`` first on ``PATH``.

    Before the manager starts, ``run_dir`` is prepared (:func:`ledmus.rundir.
    prepare_muscle3_run_dir`): created, or taken when empty; a folder holding an earlier
    run is refused (``ValueError``: a rerun into it would make muscle_manager hang on the
    existing instance folders and mix the two runs' records), or with ``overwrite``
    cleared of what that ledmus run wrote; the new run's marker is written and its id
    handed to the components."""
    from ..rundir import RUN_ID_ENV, prepare_muscle3_run_dir

    run_dir = Path(run_dir)
    run_id = prepare_muscle3_run_dir(run_dir, overwrite=overwrite)
    env = dict(os.environ)
    env[RUN_ID_ENV] = run_id
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    cmd = [
        muscle_manager_command(),
        "--start-all",
        str(ymmsl),
        *map(str, extra_args),
        "--run-dir",
        str(run_dir),
    ]
    run = _Run()
    previous = {s: signal.signal(s, run.on_signal) for s in STOP_SIGNALS}
    try:
        # a signal between here and Popen's return is recorded and forwarded just after;
        # the child starts with default handlers (exec resets caught signals)
        run.proc = subprocess.Popen(cmd, env=env, start_new_session=True)
        if run.signum:
            run.forward()
        while run.proc.poll() is None:
            time.sleep(0.1)
            if run.signum and time.monotonic() >= run.stopped_at + grace:
                run.kill()  # the manager itself did not stop
        leftovers = _group_alive(run.proc.pid)
        if leftovers and not run.signum:  # orphans of a manager that ended (or crashed)
            run.stopped_at = time.monotonic()
            run.forward()
        if run.signum or leftovers:
            run.wait_stopped(grace)
        if leftovers and not run.signum:
            print(
                "ledmus: processes of the run outlived muscle_manager; stopped them",
                file=sys.stderr,
            )
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        if run.proc is not None and run.proc.poll() is None:  # an exception in here
            run.kill()
            run.proc.wait()
    if run.signum:
        took = time.monotonic() - run.stopped_at
        name = signal.Signals(run.signum).name
        done = (run_dir / "output" / "metrics.json").exists()  # written before the signal
        outcome = "its outputs were complete before" if done else "no results were written"
        print(
            f"ledmus: {name}: stopped the MUSCLE3 run in {took:.1f} s; {outcome} (see {run_dir})",
            file=sys.stderr,
        )
        return 128 + run.signum
    summary = run_dir / "output" / "summary.txt"
    if run.proc.returncode == 0 and summary.is_file():
        if not quiet:
            print(summary.read_text(), end="", flush=True)
    elif run.proc.returncode != 0:
        manager_log = run_dir / "muscle3_manager.log"
        lines = reported_errors(manager_log) or first_to_quit(manager_log)
        for line in lines:
            print(f"ledmus: error: {line}", file=sys.stderr)
    return run.proc.returncode


def first_to_quit(manager_log: Path) -> list[str]:
    """For a run whose components reported no error (one was killed, e.g. ``kill -9`` or
    the out-of-memory killer): which instance quit first and how, as one line.

    muscle_manager lists the instances in the order it saw them end, and stops the rest
    (SIGKILL) after the first failure, so each ends with ``exit code -9``: only the first
    line of its list tells the cause from the consequences."""
    try:
        lines = manager_log.read_text(errors="replace").splitlines()
    except OSError:
        return []
    quits = []
    for line in lines:
        _, sep, rest = line.partition(": Instance ")
        name, sep2, code = rest.partition(" quit with exit code ")
        if sep and sep2 and code.strip().lstrip("-").isdigit():
            quits.append((name, int(code)))
    if not quits:
        return []
    (name, code), others = quits[0], [n for n, _ in quits[1:]]
    if code < 0:
        try:
            how = f"killed by {signal.Signals(-code).name}"
        except ValueError:
            how = f"killed by signal {-code}"
    else:
        how = f"exit code {code}"
    then = f"; muscle_manager then stopped {', '.join(others)}" if others else ""
    return [f"component {name} died first ({how}){then} (see {manager_log})"]


def reported_errors(manager_log: Path) -> list[str]:
    """The errors the components reported (``Instance.error_shutdown``: CRITICAL lines
    of the manager log), one line per distinct message naming the instances that sent
    it: ``macro, lift: ValueError: unknown setting(s) t_marco; ...``."""
    try:
        lines = manager_log.read_text(errors="replace").splitlines()
    except OSError:
        return []
    senders: dict[str, list[str]] = {}
    for line in lines:
        # "<instance> <date> <time> CRITICAL <instance>: <message>"
        head, sep, rest = line.partition(" CRITICAL ")
        if not sep or not head or head.startswith("muscle_manager"):
            continue
        instance, _, message = rest.partition(": ")
        senders.setdefault(message, []).append(instance)
    return [f"{', '.join(names)}: {message}" for message, names in senders.items()]


def overwrite_setting(files: Sequence[Path]) -> bool:
    """The setting ``overwrite`` of the yMMSL files (later files override earlier ones),
    checked as the components check it."""
    from ..validation import as_bool
    from .paths import read_ymmsl_settings

    value: object = False
    for path in files:
        value = read_ymmsl_settings(path).get("overwrite", value)
    return as_bool("setting overwrite", value)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m ledmus.coupler.launch X.ymmsl [more.ymmsl ...] [--run-dir D]
    [--log-level L]``."""
    parser = argparse.ArgumentParser(
        prog="ledmus launch",
        description="Run muscle_manager --start-all so that SIGTERM/SIGINT stop the whole run.",
    )
    parser.add_argument(
        "ymmsl",
        nargs="+",
        type=Path,
        help="yMMSL file(s), as for muscle_manager (later ones override)",
    )
    parser.add_argument(
        "--run-dir",
        type=Path,
        default=None,
        help="run directory (created; default runs/<first file>_<time>)",
    )
    parser.add_argument("--log-level", default=None, help="muscle_manager --log-level")
    parser.add_argument(
        "-q", "--quiet", action="store_true", help="only errors: no summary at the end"
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace an earlier ledmus run in --run-dir (what it wrote "
        "only; as the setting overwrite: true)",
    )
    args = parser.parse_args(argv)
    missing = [str(p) for p in args.ymmsl if not p.is_file()]
    if missing:
        from .paths import missing_hint

        print(
            f"ledmus: error: yMMSL file(s) not found: {', '.join(missing)}{missing_hint(missing)}",
            file=sys.stderr,
        )
        return 2
    try:
        overwrite = args.overwrite or overwrite_setting(args.ymmsl)
    except ValueError as exc:
        print(f"ledmus: error: {exc}", file=sys.stderr)
        return 2
    run_dir = args.run_dir or Path(f"runs/{args.ymmsl[0].stem}_{time.strftime('%Y%m%d_%H%M%S')}")
    extra = [str(p) for p in args.ymmsl[1:]]
    if args.log_level:
        extra += ["--log-level", args.log_level]
    try:
        return launch(
            args.ymmsl[0], run_dir, extra_args=extra, overwrite=overwrite, quiet=args.quiet
        )
    except (FileNotFoundError, OSError, ValueError) as exc:
        print(f"ledmus: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
