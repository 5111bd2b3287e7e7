"""Operating MUSCLE3 runs: SIGTERM stops the whole run within seconds without leaving
results that look complete (the component watchdog, the launch wrapper), settings errors
are one line without a traceback, and a finished run says where its outputs are.

The watchdog tests at the top need no MUSCLE3 (a fake ``muscle_manager`` parent or a
fake manager port); the others start real runs of ``configs/led_fhn.ymmsl``.
``muscle_manager`` 0.11 has no option for its port: it takes 9000 or, if that is busy, a
free one, so runs do not collide; every test here kills what is left of its run at the
end, so no process outlives it to disturb later tests.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

psutil = pytest.importorskip("psutil")  # a dependency of muscle3

from ledmus.coupler.components import watchdog  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
FHN_MODEL = ROOT / "models" / "led_fhn.pt"
FHN_YMMSL = ROOT / "configs" / "led_fhn.ymmsl"
BIN = Path(sys.executable).parent
COMPONENTS = ("macro", "lift", "micro", "restrict")

# the same condition as tests/test_coupler.py
muscle3 = pytest.mark.skipif(
    not any(Path("/sys/class/net").glob("e*")) and not os.environ.get("LEDMUS_FORCE_MUSCLE3"),
    reason="MUSCLE3 needs a non-loopback network interface (see docs/getting_started.md)",
)

#: seconds from SIGTERM until no process of the run may remain: the watchdog looks every
#: 0.5 s, the main thread unwinds in well under a second, the watchdog's own fallback
#: ends a stuck process after 3 s and the wrapper SIGKILLs after 5 s; 10 s leaves room
#: for a loaded machine (these tests ran on 2 cores busy with two training jobs)
STOP_WITHIN_S = 10.0
#: seconds a run may take to start its four components and register them: ~10 s on the
#: loaded 2-core machine above (torch imports), generous for slower CI hosts
START_WITHIN_S = 180.0


def env() -> dict[str, str]:
    """The components' ``python`` is this one; one thread each, as in test_coupler."""
    return dict(os.environ, OMP_NUM_THREADS="1", PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}")


def ymmsl_copy(tmp_path: Path, name: str = "run.ymmsl", **settings) -> Path:
    """configs/led_fhn.ymmsl with an absolute model path and ``settings`` overridden."""
    doc = yaml.safe_load(FHN_YMMSL.read_text())
    doc["settings"].update(
        {"model": str(FHN_MODEL), "compare": False, "plots": False, **settings}
    )  # fmt: skip
    path = tmp_path / name
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def alive(proc: psutil.Process) -> bool:
    """Running and not a zombie (an exited process whose parent, possibly init, has not
    reaped it yet holds no resources)."""
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def run_processes(run_dir: Path, ymmsl: Path) -> list[psutil.Process]:
    """Processes of a run: a command line naming the run directory or the yMMSL file
    (manager, its forked instantiator, the wrapper), or a working directory inside the
    run directory (the agent in ``logs/``, the components in ``instances/*/workdir``)."""
    found = []
    for proc in psutil.process_iter(["cmdline", "cwd"]):
        if proc.pid == os.getpid() or not alive(proc):
            continue
        cmd = " ".join(proc.info["cmdline"] or [])
        cwd = proc.info["cwd"] or ""
        if str(run_dir) in cmd or str(ymmsl) in cmd or cwd.startswith(str(run_dir)):
            found.append(proc)
    return found


@pytest.fixture
def leftovers() -> Iterator[list]:
    """``(run_dir, ymmsl)`` pairs and processes to SIGKILL at the end whatever happened
    (a failing test must not leave a run computing beside the next tests)."""
    runs: list = []
    yield runs
    for item in runs:
        procs = run_processes(*item) if isinstance(item, tuple) else [item]
        for proc in procs:
            try:
                proc.kill()
            except (psutil.Error, OSError):
                pass


def wait_for(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.1)


def registered(run_dir: Path) -> int:
    try:
        return (run_dir / "muscle3_manager.log").read_text().count("Registered instance")
    except FileNotFoundError:
        return 0


def stop_and_time(target: subprocess.Popen, run_dir: Path, ymmsl: Path) -> float:
    """SIGTERM ``target``; seconds until no process of the run is left (the tracked
    descendants of ``target`` and anything :func:`run_processes` finds)."""
    tracked = psutil.Process(target.pid).children(recursive=True)
    assert len(tracked) >= 4, [p.cmdline() for p in tracked]
    start = time.monotonic()
    target.send_signal(signal.SIGTERM)
    deadline = start + STOP_WITHIN_S
    while time.monotonic() < deadline:
        target.poll()  # reap it once it has exited
        left = [p for p in tracked if alive(p)] + run_processes(run_dir, ymmsl)
        if target.returncode is not None and not left:
            return time.monotonic() - start
        time.sleep(0.1)
    left = [p for p in tracked if alive(p)] + run_processes(run_dir, ymmsl)
    raise AssertionError(
        f"{len(left)} process(es) of the run still there {STOP_WITHIN_S} s after SIGTERM: "
        + "; ".join(" ".join(p.cmdline())[:120] for p in left)
    )


def assert_no_results(run_dir: Path) -> None:
    """Nothing that looks like a finished run, and no temporary file."""
    assert not (run_dir / "output" / "metrics.json").exists()
    assert not (run_dir / "output" / "trajectory.h5").exists()
    assert not (run_dir / "output" / "summary.txt").exists()
    assert not list(run_dir.rglob("*.part")), list(run_dir.rglob("*.part"))


# ------------------------------------------------------------ watchdog (no MUSCLE3)
COMPONENT = """
import sys, time
from pathlib import Path
from ledmus.atomic import atomic_path
from ledmus.coupler.components.common import run_guarded

out, swallow = Path(sys.argv[1]), sys.argv[2] == "swallow"

def body():
    with atomic_path(out / "metrics.json") as tmp:  # stopped in the middle of a write
        tmp.write_text("half")
        (out / "ready").write_text("")
        while True:
            try:
                time.sleep(600)
            except SystemExit:
                if not swallow:
                    raise  # "swallow": a main thread that does not unwind

run_guarded("fake", body, [None], cleanup=[out])
"""

FAKE_MANAGER = """#!{python}
# named muscle_manager, like the real one: the watchdog finds it among its ancestors
import subprocess, sys, time
subprocess.Popen([sys.executable, *sys.argv[1:]], stderr=open(sys.argv[2] + "/stderr.txt", "w"))
time.sleep(600)
"""


def start_fake_component(tmp_path: Path, mode: str, manager: bool = True, **env_over):
    """The component script under a fake ``muscle_manager`` parent (or directly, for the
    TCP mode); returns the parent's Popen and the output folder."""
    (tmp_path / "component.py").write_text(COMPONENT)
    out = tmp_path / "out"
    out.mkdir()
    args = [str(tmp_path / "component.py"), str(out), mode]
    if manager:
        fake = tmp_path / "muscle_manager"
        fake.write_text(FAKE_MANAGER.format(python=sys.executable))
        fake.chmod(0o755)
        proc = subprocess.Popen([str(fake), *args], env=dict(env(), **env_over))
    else:
        proc = subprocess.Popen([sys.executable, *args], env=dict(env(), **env_over),
                                stderr=open(out / "stderr.txt", "w"))  # fmt: skip
    # the component imports little before it starts writing: seconds even when loaded
    wait_for(lambda: (out / "ready").exists(), 60, "the fake component")
    return proc, out


def test_watchdog_stops_a_component_whose_manager_is_gone_and_removes_its_temp_file(
    tmp_path, leftovers
):
    manager, out = start_fake_component(tmp_path, "unwind")
    (component,) = psutil.Process(manager.pid).children()
    leftovers += [manager, component]
    assert list(out.glob(".metrics.json.*.part"))  # the write is under way
    start = time.monotonic()
    manager.send_signal(signal.SIGTERM)
    manager.wait()
    # 0.5 s watchdog period plus unwinding; 5 s leaves room for a loaded machine but is
    # shorter than the 3 s fallback + period, so this checks the unwinding path
    wait_for(lambda: not alive(component), 5.0, "the component to stop")
    took = time.monotonic() - start
    assert not list(out.glob("*.part")) and not (out / "metrics.json").exists()
    stderr = (out / "stderr.txt").read_text()
    assert "fake: the MUSCLE3 manager (pid" in stderr and "is gone" in stderr
    print(f"component gone {took:.2f} s after its manager")


def test_watchdog_ends_a_component_that_does_not_unwind_and_removes_its_temp_file(
    tmp_path, leftovers
):
    manager, out = start_fake_component(tmp_path, "swallow")
    (component,) = psutil.Process(manager.pid).children()
    leftovers += [manager, component]
    start = time.monotonic()
    manager.send_signal(signal.SIGTERM)
    manager.wait()
    # watchdog period 0.5 s + GRACE_S 3 s; 5 s more for a loaded machine
    wait_for(lambda: not alive(component), watchdog.GRACE_S + 5.5, "the component to end")
    took = time.monotonic() - start
    assert took >= watchdog.GRACE_S  # it did wait for the main thread first
    assert not list(out.glob("*.part")) and not (out / "metrics.json").exists()
    assert "did not stop within 3 s" in (out / "stderr.txt").read_text()


def test_watchdog_probes_a_manager_that_is_no_ancestor_over_tcp(tmp_path, leftovers):
    """A component on another node (or started by hand) has no manager among its
    ancestors: the watchdog probes the manager's port and stops once it is refused."""
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]
    component, out = start_fake_component(
        tmp_path, "unwind", manager=False, MUSCLE_MANAGER=f"tcp:127.0.0.1:{port}"
    )
    leftovers.append(component)
    server.settimeout(30)  # the first probe comes REMOTE_POLL_S = 2 s after the start
    server.accept()[0].close()  # the probe: the manager has been seen alive
    server.close()  # the manager is gone: connections are refused from now on
    start = time.monotonic()
    # REMOTE_REFUSALS (3) probes REMOTE_POLL_S (2 s) apart, then the unwinding; 6 s more
    # for a loaded machine
    limit = watchdog.REMOTE_REFUSALS * watchdog.REMOTE_POLL_S + 6.0
    component.wait(timeout=limit)
    took = time.monotonic() - start
    assert component.returncode == 128 + signal.SIGTERM
    assert took >= (watchdog.REMOTE_REFUSALS - 1) * watchdog.REMOTE_POLL_S  # not at once
    assert not list(out.glob("*.part")) and not (out / "metrics.json").exists()
    assert (
        f"the MUSCLE3 manager at tcp:127.0.0.1:{port} is gone" in (out / "stderr.txt").read_text()
    )


def test_probe_tells_refused_from_unknown():
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]
    assert watchdog.probe_manager(f"tcp:127.0.0.1:{port}") is True
    server.close()
    assert watchdog.probe_manager(f"tcp:127.0.0.1:{port}") is False
    assert watchdog.probe_manager("unix:/nowhere") is None


# ------------------------------------------------------------ SIGTERM, real runs
@muscle3
@pytest.mark.parametrize("when", ["starting", "computing"])
def test_sigterm_to_muscle_manager_stops_the_whole_run(tmp_path, leftovers, when):
    """The plain ``muscle_manager --start-all`` gets SIGTERM while its components start
    (import, register) or compute: the components, the manager's forked instantiator
    and the agent are gone within seconds, and no result was written."""
    ymmsl = ymmsl_copy(tmp_path, t_end=40000.0)  # minutes of compute: still running
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    leftovers.append((run_dir, ymmsl))
    with open(tmp_path / "manager.out", "w") as out:
        manager = subprocess.Popen(
            [str(BIN / "muscle_manager"), "--start-all", str(ymmsl), "--run-dir", str(run_dir)],
            stdout=out, stderr=subprocess.STDOUT, cwd=ROOT, env=env(),
        )  # fmt: skip
    if when == "starting":
        wait_for(lambda: len(list(run_dir.glob("instances/*/stderr.txt"))) == 4,
                 START_WITHIN_S, "the components to be started")  # fmt: skip
        time.sleep(0.5)  # the agent has spawned them; they are importing
    else:
        wait_for(lambda: registered(run_dir) == 4, START_WITHIN_S, "the components to register")
        time.sleep(1.0)  # the first windows are computed
    took = stop_and_time(manager, run_dir, ymmsl)
    print(f"{when}: nothing of the run left {took:.2f} s after SIGTERM to muscle_manager")
    assert_no_results(run_dir)
    if when == "computing":
        for name in COMPONENTS:
            assert "manager (pid" in (run_dir / "instances" / name / "stderr.txt").read_text()


@muscle3
def test_sigterm_to_the_launch_wrapper_stops_the_whole_run(tmp_path, leftovers):
    ymmsl = ymmsl_copy(tmp_path, t_end=40000.0)
    run_dir = tmp_path / "run" / "nested"  # the wrapper creates it
    leftovers.append((run_dir, ymmsl))
    err = tmp_path / "wrapper.err"
    with open(err, "w") as stderr:
        wrapper = subprocess.Popen(
            [sys.executable, "-m", "ledmus.coupler.launch", str(ymmsl), "--run-dir", str(run_dir)],
            stdout=subprocess.DEVNULL, stderr=stderr, cwd=ROOT, env=env(),
        )  # fmt: skip
    leftovers.append(psutil.Process(wrapper.pid))
    wait_for(lambda: registered(run_dir) == 4, START_WITHIN_S, "the components to register")
    time.sleep(1.0)
    took = stop_and_time(wrapper, run_dir, ymmsl)
    print(f"wrapper: nothing of the run left {took:.2f} s after SIGTERM")
    assert wrapper.returncode == 128 + signal.SIGTERM
    assert "ledmus: SIGTERM: stopped the MUSCLE3 run" in err.read_text()
    assert_no_results(run_dir)
    for name in COMPONENTS:  # they unwound (forwarded SIGTERM), none was SIGKILLed
        text = (run_dir / "instances" / name / "stderr.txt").read_text()
        assert f"{name}: stopped by SIGTERM" in text or "is gone" in text, (name, text)


# ------------------------------------------------------------ errors and summary
@muscle3
@pytest.mark.parametrize(
    ("launcher", "setting", "value", "message"),
    [
        ("muscle_manager", "t_marco", 50.0, "ValueError: unknown setting(s) t_marco; allowed:"),
        ("wrapper", "t_macro", "abc", "ValueError: setting t_macro must be a number"),
    ],
)
def test_a_settings_error_under_muscle3_is_one_line_without_traceback(
    tmp_path, leftovers, launcher, setting, value, message
):
    ymmsl = ymmsl_copy(tmp_path, t_end=260.0, **{setting: value})
    run_dir = tmp_path / "run"
    leftovers.append((run_dir, ymmsl))
    if launcher == "muscle_manager":
        run_dir.mkdir()
        cmd = [str(BIN / "muscle_manager"), "--start-all", str(ymmsl), "--run-dir", str(run_dir)]
    else:
        cmd = [sys.executable, "-m", "ledmus.coupler.launch", str(ymmsl), "--run-dir", str(run_dir)]
    # timeout: a few tens of seconds normally; 600 s only to never hang the suite
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env(), timeout=600)
    terminal = proc.stdout + proc.stderr
    log = (run_dir / "muscle3_manager.log").read_text()
    assert proc.returncode != 0
    assert "Traceback" not in terminal and "Traceback" not in log
    # each component that checks the settings reports it in one CRITICAL line
    reports = [line for line in log.splitlines() if " CRITICAL " in line]
    assert reports and all(message in line for line in reports), reports
    assert any(message in line for line in terminal.splitlines())
    if launcher == "wrapper":  # ... and the wrapper ends with them as one line
        last = proc.stderr.strip().splitlines()[-1]
        assert last.startswith("ledmus: error: ") and message in last, last
    # the traceback is kept in the reporting components' own logs, at DEBUG
    own = [p.read_text() for p in run_dir.glob("instances/*/ledmus.log")]
    assert any("DEBUG" in text and "Traceback" in text for text in own)
    assert not (run_dir / "output" / "metrics.json").exists()


@muscle3
def test_a_finished_run_writes_and_prints_a_summary(tmp_path, leftovers):
    ymmsl = ymmsl_copy(tmp_path, t_end=260.0, compare=True)
    run_dir = tmp_path / "run"
    leftovers.append((run_dir, ymmsl))
    proc = subprocess.run(
        [sys.executable, "-m", "ledmus.coupler.launch", str(ymmsl), "--run-dir", str(run_dir)],
        capture_output=True, text=True, cwd=ROOT, env=env(), timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = run_dir / "output"
    summary = (out / "summary.txt").read_text()
    metrics = json.loads((out / "metrics.json").read_text())
    assert f"speed-up {metrics['speedup']:.2f}" in summary
    for channel in ("u", "v"):
        assert f"mnad_{channel} {metrics['errors'][f'mnad_{channel}']:.4g}" in summary
    (where,) = [line for line in summary.splitlines() if f"outputs in {out.resolve()}:" in line]
    assert all(name in where for name in ("metrics.json", "summary.txt", "trajectory.h5"))
    assert proc.stdout.endswith(summary)  # the wrapper prints it last
    assert summary in (run_dir / "instances" / "macro" / "stdout.txt").read_text()
    assert not list(run_dir.rglob("*.part"))


def test_launch_wrapper_refuses_a_missing_ymmsl(tmp_path, capsys):
    from ledmus.coupler.launch import main

    assert main([str(tmp_path / "nope.ymmsl"), "--run-dir", str(tmp_path / "run")]) == 2
    assert "not found" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_reported_errors_merge_identical_messages(tmp_path):
    from ledmus.coupler.launch import reported_errors

    log = tmp_path / "muscle3_manager.log"
    log.write_text(textwrap.dedent("""\
        muscle_manager 2026-01-01 10:00:00,000 INFO    libmuscle.manager.mmp_server: Registered instance lift
        lift           2026-01-01 10:00:01,000 CRITICAL lift: ValueError: bad t_macro
        macro          2026-01-01 10:00:01,100 CRITICAL macro: ValueError: bad t_macro
        micro          2026-01-01 10:00:01,200 CRITICAL micro: FloatingPointError: overflow
        muscle_manager 2026-01-01 10:00:02,000 ERROR   libmuscle.manager.instance_manager: Instance lift quit with exit code 1
        """))  # fmt: skip
    assert reported_errors(log) == [
        "lift, macro: ValueError: bad t_macro",
        "micro: FloatingPointError: overflow",
    ]
