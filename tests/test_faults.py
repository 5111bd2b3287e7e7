"""Operator faults of an embedded run (``ledmus run``), one table: each ends with one
``ledmus: error: ...`` line (or the stop line of a signal) and its exit status, leaves no
partial output and no folder the run created, and never touches a file it did not
write.  The MUSCLE3 faults (SIGTERM to the launcher or the manager, a rerun into a
MUSCLE3 run directory, a settings error in a component) are in tests/test_muscle3_ops.py
and tests/test_run_safety.py, where their runs are started."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from ledmus.cli import main

ROOT = Path(__file__).resolve().parents[1]
FHN_YMMSL = ROOT / "configs" / "led_fhn.ymmsl"
SHORT = ["--set", "t_end=120", "--set", "plots=false", "--set", "compare=false"]
FOREIGN = {"thesis.tex": "\\documentclass{article}", "sub/data.csv": "1,2\n"}


def plant_foreign(folder: Path) -> None:
    for name, text in FOREIGN.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text)


def foreign_intact(folder: Path) -> bool:
    return all((folder / n).read_text() == t for n, t in FOREIGN.items())


def fault_nonempty(tmp: Path) -> tuple[list[str], Path]:
    plant_foreign(tmp / "d")
    return ["--run-dir", str(tmp / "d")], tmp / "d"


def fault_overwrite_foreign(tmp: Path) -> tuple[list[str], Path]:
    plant_foreign(tmp / "d")
    return ["--run-dir", str(tmp / "d"), "--overwrite"], tmp / "d"


def fault_overwrite_setting_foreign(tmp: Path) -> tuple[list[str], Path]:
    plant_foreign(tmp / "d")
    return ["--run-dir", str(tmp / "d"), "--set", "overwrite=true"], tmp / "d"


def fault_run_dir_is_cwd(tmp: Path) -> tuple[list[str], Path]:
    return ["--run-dir", str(ROOT), "--overwrite"], tmp / "none"


def fault_corrupt_checkpoint(tmp: Path) -> tuple[list[str], Path]:
    (tmp / "m.pt").write_bytes(np.random.default_rng(0).bytes(1000))
    return ["--run-dir", str(tmp / "r"), "--set", f"model={tmp / 'm.pt'}"], tmp / "r"


def fault_wrong_shape_ic(tmp: Path) -> tuple[list[str], Path]:
    np.save(tmp / "ic.npy", np.zeros((1, 3, 7)))
    return ["--run-dir", str(tmp / "new" / "r"), "--set", f"ic={tmp / 'ic.npy'}"], tmp / "new"


def fault_nan_ic(tmp: Path) -> tuple[list[str], Path]:
    np.save(tmp / "ic.npy", np.full((1, 2, 101), np.nan))
    return ["--run-dir", str(tmp / "r"), "--set", f"ic={tmp / 'ic.npy'}"], tmp / "r"


def fault_typo(tmp: Path) -> tuple[list[str], Path]:
    return ["--run-dir", str(tmp / "r"), "--set", "t_marco=50"], tmp / "r"


def fault_not_a_number(tmp: Path) -> tuple[list[str], Path]:
    return ["--run-dir", str(tmp / "r"), "--set", "lifting_tol=1e-9x"], tmp / "r"


# fault, the text the one error line holds, whether the folder holds foreign files
FAULTS = [
    (fault_nonempty, "is not empty (holds sub, thesis.tex)", True),
    (fault_overwrite_foreign, "holds files that no ledmus run wrote (sub, thesis.tex;", True),
    (fault_overwrite_setting_foreign, "or the setting overwrite: true only replaces", True),
    (fault_run_dir_is_cwd, "is the current working directory", False),
    (fault_corrupt_checkpoint, "m.pt is not a ledmus checkpoint (not a PyTorch file", False),
    (fault_wrong_shape_ic, "ic.npy has shape (1, 3, 7); 'fhn' needs (2, 101)", False),
    (fault_nan_ic, "ic.npy contains NaN or infinite values", False),
    (fault_typo, "unknown setting(s) t_marco; allowed:", False),
    (fault_not_a_number, "setting lifting_tol must be a number > 0, got '1e-9x'", False),
]


@pytest.mark.parametrize(
    ("fault", "message", "foreign"), FAULTS, ids=[f.__name__[6:] for f, _, _ in FAULTS]
)
def test_an_operator_fault_is_one_line_and_leaves_nothing(
    tmp_path, capsys, monkeypatch, fault, message, foreign
):
    monkeypatch.chdir(ROOT)
    args, folder = fault(tmp_path)
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    assert main(["-q", "run", str(FHN_YMMSL), *SHORT, *args]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("ledmus: error: "), err
    assert message in err, err
    assert "Traceback" not in err and "weights_only" not in err
    # nothing written, nothing created, nothing removed
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before
    if foreign:
        assert foreign_intact(folder)
    assert not list(ROOT.glob(".ledmus-run.json"))


def test_a_read_only_run_directory_is_one_line(tmp_path, capsys, monkeypatch):
    from ledmus import rundir

    def read_only(*args, **kwargs):
        raise OSError(30, "Read-only file system")

    monkeypatch.setattr(rundir.tempfile, "mkstemp", read_only)
    assert main(["-q", "run", str(FHN_YMMSL), *SHORT, "--run-dir", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "is not writable: Read-only file system" in err


def test_sigterm_to_a_run_leaves_no_output_and_no_process(tmp_path):
    """SIGTERM while computing: exit 143, one line, no run directory left."""
    run_dir = tmp_path / "new" / "r"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "ledmus",
            "-q",
            "run",
            str(FHN_YMMSL),
            "--run-dir",
            str(run_dir),
            "--set",
            "t_end=40000",
            "--set",
            "plots=false",
            "--set",
            "compare=false",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    try:
        deadline = 120  # import of torch and the model on a loaded 2-core machine
        for _ in range(deadline * 10):
            if (run_dir / ".ledmus-run.json").exists():
                break
            time.sleep(0.1)
        assert (run_dir / ".ledmus-run.json").exists(), "the run did not start"
        time.sleep(1.0)  # computing now (the marker is written just before the model loads)
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=5)  # unwinding only: well under a second
    finally:
        proc.kill()
    err = proc.stderr.read()
    assert code == 128 + signal.SIGTERM
    assert err.strip() == "ledmus: terminated; no partial output was kept"
    assert not (tmp_path / "new").exists()
