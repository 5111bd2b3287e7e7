"""What a new user and an operator see: quiet logs, safe run directories, no temporary
files after SIGTERM, metrics.json of scalars, warnings about identical members."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from ledmus.cli import main

ROOT = Path(__file__).resolve().parents[1]
FHN_YMMSL = ROOT / "configs" / "led_fhn.ymmsl"
SHORT = ["--set", "t_end=120", "--set", "plots=false"]  # warm-up 60 + one cycle


def ledmus(*args: str, **kw) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "ledmus", *args], capture_output=True,
                          text=True, cwd=ROOT, env=env, timeout=300, **kw)  # fmt: skip


def test_a_run_logs_only_ledmus_lines(tmp_path):
    proc = ledmus("run", str(FHN_YMMSL), "--run-dir", str(tmp_path / "r"), *SHORT)
    assert proc.returncode == 0, proc.stderr
    lines = [ln for ln in proc.stderr.replace("\r", "\n").splitlines() if ln.strip()]
    progress = [ln for ln in lines if ln.startswith("ledmus run:")]  # tqdm refreshes
    rest = [ln for ln in lines if ln not in progress]
    # the run directory line and the closing summary; before the fix yatiml added ~123
    assert len(rest) == 2, rest
    assert rest[0].startswith("ledmus: led_fhn.ymmsl: fhn, run directory")
    assert rest[1].startswith(f"ledmus: outputs in {tmp_path / 'r'}: wall ")
    assert "mnad_u" in rest[1] and "speed-up" in rest[1]
    assert not [ln for ln in lines if "yatiml" in ln]
    quiet = ledmus("run", str(FHN_YMMSL), "--run-dir", str(tmp_path / "q"), *SHORT, "-q")
    assert quiet.returncode == 0 and quiet.stderr == "", quiet.stderr  # -q after the command


def test_run_directory_policy(tmp_path, capsys):
    run = tmp_path / "r"
    assert main(["-q", "run", str(FHN_YMMSL), "--run-dir", str(run), *SHORT]) == 0
    (run / "field.png").write_bytes(b"old")  # an output of an earlier run with plots
    (run / "notes.txt").write_text("mine")  # the user's own file in the run directory
    before = (run / "metrics.json").stat().st_mtime_ns
    capsys.readouterr()
    assert main(["-q", "run", str(FHN_YMMSL), "--run-dir", str(run), *SHORT]) == 2
    err = capsys.readouterr().err
    assert "is not empty (holds an earlier ledmus run field.png, metrics.json, notes.txt, " in err
    assert "--overwrite" in err and (run / "metrics.json").stat().st_mtime_ns == before
    assert main(["-q", "run", str(FHN_YMMSL), "--run-dir", str(run), *SHORT, "--overwrite"]) == 0
    # the stale plot is gone; the user's file is kept, and named in a warning
    names = sorted(p.name for p in run.iterdir())
    assert names == [".ledmus-run.json", "metrics.json", "notes.txt", "trajectory.h5"]
    assert (run / "notes.txt").read_text() == "mine"
    assert "kept 1 entry that no ledmus run wrote: notes.txt" in capsys.readouterr().err
    for bad, message in [(run / "metrics.json", "is a file; give a folder"),
                         (run / "metrics.json" / "x", "lies inside the file")]:  # fmt: skip
        assert main(["-q", "run", str(FHN_YMMSL), "--run-dir", str(bad), *SHORT]) == 2
        assert message in capsys.readouterr().err


def test_run_directory_is_checked_before_computing(tmp_path, capsys):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        if os.access(locked, os.W_OK):
            pytest.skip("running as a user who can write anywhere (root)")
        start = time.perf_counter()
        assert main(["-q", "run", str(FHN_YMMSL), "--run-dir", str(locked / "r"), *SHORT]) == 2
        assert "cannot be created" in capsys.readouterr().err
        assert time.perf_counter() - start < 5  # refused at once, not after the run (~3 s)
    finally:
        locked.chmod(0o700)


def test_a_read_only_run_directory_is_refused_before_computing(tmp_path, monkeypatch, capsys):
    """The writability probe (works for root too, where permissions do not bind)."""
    from ledmus import rundir

    def read_only(*args, **kwargs):
        raise OSError(30, "Read-only file system")

    monkeypatch.setattr(rundir.tempfile, "mkstemp", read_only)
    assert main(["-q", "run", str(FHN_YMMSL), "--run-dir", str(tmp_path / "r"), *SHORT]) == 2
    assert "is not writable: Read-only file system" in capsys.readouterr().err


def test_simulate_out_policy(tmp_path, capsys):
    out = tmp_path / "a.h5"
    args = ["-q", "simulate", "fhn", "--t-end", "2", "--out", str(out)]
    assert main(args) == 0
    assert main(args) == 2
    assert "exists; choose a new name or pass --overwrite" in capsys.readouterr().err
    assert main([*args, "--overwrite"]) == 0
    assert main(["-q", "simulate", "fhn", "--t-end", "2", "--out", str(out / "b.h5")]) == 2
    err = capsys.readouterr().err
    assert "is a file, not a folder" in err and "does not exist" not in err
    assert main(["-q", "simulate", "fhn", "--t-end", "2", "--out", str(tmp_path)]) == 2
    assert "is a folder; give a file name" in capsys.readouterr().err


def test_set_without_equals_names_set(tmp_path, capsys):
    assert main(["-q", "run", str(FHN_YMMSL), "--set", "t_end"]) == 2
    assert "--set 't_end' must look like name=value" in capsys.readouterr().err


# A final write that takes long (os.replace delayed): SIGTERM arrives while the complete
# temporary file sits beside the target.
SLOW_WRITE = """
import os, sys, time
real = os.replace
def slow(src, dst):
    if str(dst).endswith(sys.argv[1]):
        print("WRITING", flush=True)
        time.sleep(60)
    real(src, dst)
os.replace = slow
from ledmus.cli import main
sys.exit(main(sys.argv[2:]))
"""


@pytest.mark.parametrize("command", ["simulate", "run"])
def test_sigterm_during_the_final_write_leaves_no_partial_file(tmp_path, command):
    if command == "simulate":
        target, args = "a.h5", ["simulate", "fhn", "--t-end", "5", "--out", str(tmp_path / "a.h5")]
    else:
        target = "trajectory.h5"
        args = ["run", str(FHN_YMMSL), "--run-dir", str(tmp_path / "r"), *SHORT]
    proc = subprocess.Popen([sys.executable, "-c", SLOW_WRITE, target, "-q", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=ROOT, env={**os.environ, "OMP_NUM_THREADS": "1"})  # fmt: skip
    try:
        assert proc.stdout.readline().strip() == "WRITING"
        assert list(tmp_path.rglob("*.part"))  # the temporary file exists now
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=10)  # ends at once (10 s: start-up of nothing, only unwinding)
    finally:
        proc.kill()
    assert code == 128 + signal.SIGTERM
    assert "ledmus: terminated; no partial output was kept" in proc.stderr.read()
    assert not list(tmp_path.rglob("*.part"))
    assert not list(tmp_path.rglob(target)) and not list(tmp_path.rglob("metrics.json"))


def test_metrics_json_holds_scalars_and_the_series_go_to_hdf5(tmp_path):
    run = tmp_path / "r"
    assert main(["-q", "run", str(FHN_YMMSL), "--run-dir", str(run), "--set", "t_end=400",
                 "--set", "plots=false"]) == 0  # fmt: skip
    text = (run / "metrics.json").read_text()
    metrics = json.loads(text)
    # measured 1.7 kB for any t_end (was 119 kB at t_end 2000: the NAD per step)
    assert len(text) < 3000

    def lists(x):
        if isinstance(x, dict):
            return [n for v in x.values() for n in lists(v)]
        return [len(x)] if isinstance(x, list) else []

    assert max(lists(metrics), default=0) <= 64
    assert metrics["series"] == {
        "file": "trajectory.h5",
        "datasets": ["errors/lag_t", "errors/nad_t/u", "errors/nad_t/v"],
    }
    assert {"lag_final", "lag_mean", "shape_mnad"} <= set(metrics["errors"])
    with h5py.File(run / "trajectory.h5") as h5:
        assert h5["errors/nad_t/u"].shape == (400 - 60,)  # t = 61 … 400 after the warm-up
        assert h5["errors/lag_t"].shape == (400 - 60,)
        nad_u = h5["errors/nad_t/u"][()]
    assert nad_u.mean() == pytest.approx(metrics["errors"]["mnad_u"], rel=1e-12)


def test_identical_members_are_reported(tmp_path, caplog):
    from ledmus.coupler.engine import run_embedded
    from ledmus.coupler.micro import identical_members_warning
    from ledmus.coupler.settings import read_ymmsl_settings, validate
    from ledmus.solvers import make

    fhn = make("fhn")
    assert "2 identical members" in identical_members_warning(fhn, "y05", 0, 2)
    assert identical_members_warning(fhn, "y05", 0, 1) is None  # one member
    assert "use a .npy file with one state per member" in identical_members_warning(
        fhn, "y05", 0, 2
    )  # FHN has no random initial condition
    ks = make("ks")
    np.save(tmp_path / "one.npy", ks.initial_condition("random", 1, np.random.default_rng(0)))
    assert "use ic: random" in identical_members_warning(ks, str(tmp_path / "one.npy"), 0, 3)
    assert identical_members_warning(make("ks"), "random", 0, 2) is None  # drawn per member
    two = np.stack([fhn.initial_condition(n, 1, None)[0] for n in ("y01", "y05")])
    np.save(tmp_path / "two.npy", two)
    assert identical_members_warning(fhn, str(tmp_path / "two.npy"), 0, 2) is None
    assert identical_members_warning(make("ad1d"), "origin", 0, 2) is None  # own noise each
    raw = {**read_ymmsl_settings(FHN_YMMSL), "ensemble": 2, "t_end": 70.0, "compare": False,
           "plots": False}  # fmt: skip
    raw["model"] = str(ROOT / raw["model"])
    with caplog.at_level("WARNING", logger="ledmus"):
        run_embedded(validate(raw), tmp_path / "r")
    assert "ensemble=2 runs 2 identical members" in caplog.text


def test_launch_subcommand_hands_its_arguments_to_the_wrapper(capsys, tmp_path):
    assert main(["launch", str(tmp_path / "nope.ymmsl")]) == 2
    assert "yMMSL file(s) not found" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:  # the wrapper's own --help, not ledmus's
        main(["launch", "--help"])
    assert exc.value.code == 0 and "usage: ledmus launch" in capsys.readouterr().out


def test_split_series_keeps_scalars_and_small_tables():
    from ledmus.atomic import split_series

    payload = {"wall_s": 1.5, "errors": {"mnad_u": 0.1, "nad_t": {"u": [0.0] * 65, "v": [1.0] * 65}},
               "per_ic": [1, 2, 3], "long": list(range(100))}  # fmt: skip
    scalars, series = split_series(payload)
    # 64 elements is the limit: a per-IC list of 100 windows moves, 3 values stay
    assert scalars == {"wall_s": 1.5, "errors": {"mnad_u": 0.1}, "per_ic": [1, 2, 3]}
    assert sorted(series) == ["errors/nad_t/u", "errors/nad_t/v", "long"]
    assert split_series({"a": list(range(65))}) == ({}, {"a": list(range(65))})
