"""Issue 23, "nothing lost, nothing silent": numbers as users write them, run directories
that ``--overwrite`` cannot empty of the user's files, reruns of MUSCLE3 jobs that stop
at once instead of hanging, and one-line errors for untrusted checkpoints.

Design (documented in docs/guide/muscle3_operations.md): every run writes ``.ledmus-run.json``
first into its run directory; ``--overwrite`` removes only what a ledmus run wrote (the
outputs its marker names and the known outputs of both engines) and refuses a non-empty
folder without a marker; files no ledmus run wrote inside a marked run directory are kept
and named in a warning.
"""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from test_muscle3_ops import BIN, muscle3, ymmsl_copy
from test_muscle3_ops import env as muscle3_env

from ledmus.cli import main, parse_settings
from ledmus.rundir import MARKER, prepare_run_dir
from ledmus.validation import as_int, as_number, as_time, load_yaml, number_from_text

ROOT = Path(__file__).resolve().parents[1]
FHN_YMMSL = ROOT / "configs" / "led_fhn.ymmsl"
FHN_MODEL = ROOT / "models" / "led_fhn.pt"
SHORT = ["--set", "t_end=120", "--set", "plots=false", "--set", "compare=false"]

SPELLINGS = [
    ("1e-9", 1e-9),
    ("1E-9", 1e-9),
    (".5", 0.5),
    ("5.", 5.0),
    ("1e6", 1e6),
    ("-.5", -0.5),
    ("+1e3", 1e3),
    ("1.0e-9", 1e-9),
    ("2", 2),
]


# ------------------------------------------------------------ numbers
@pytest.mark.parametrize(("text", "number"), SPELLINGS)
def test_every_spelling_of_a_number_is_a_number(text, number):
    assert load_yaml(text) == number and not isinstance(load_yaml(text), str)
    assert number_from_text(text) == number
    assert parse_settings([f"lifting_tol={text}"]) == {"lifting_tol": number}
    if number >= 0:
        assert as_time("setting t_end", text) == number
        assert as_number(0)("setting max_error", text) == number
    assert number_from_text("abc") == "abc" and number_from_text("1.2.3") == "1.2.3"
    assert as_int(0)("setting seed", "1e3") == 1000


def test_mappings_in_set_need_no_inner_quotes_and_bad_yaml_says_how():
    got = parse_settings(["param_schedule={500: {d_u: 1e6}}"])
    assert got == {"param_schedule": {500: {"d_u": 1e6}}}
    with pytest.raises(ValueError) as exc:
        parse_settings(["param_schedule={500: {d_u: 1.5}"])
    assert "--set 'param_schedule={500: {d_u: 1.5}}'" in str(exc.value)
    assert "\n" not in str(exc.value)


def test_run_settings_accept_every_spelling_and_echo_numbers():
    from ledmus.coupler.settings import read_ymmsl_settings, validate

    raw = read_ymmsl_settings(FHN_YMMSL)
    raw.update(
        parse_settings(
            [
                "lifting_tol=1e-9",
                "t_end=1e3",
                "param_d_u=1e6",
                "param_schedule={500: {d_v: 5.}}",
                "max_error=.5",
            ]
        )
    )
    raw["model"] = str(FHN_MODEL)
    s = validate(raw)
    assert (s.micro.lifting_tol, s.schedule.t_end) == (1e-9, 1000.0)
    assert s.schedule.adaptive.max_error == 0.5
    assert s.micro.params == {"d_u": 1e6}
    assert s.macro.out_of_training["d_u"]["run"] == [1e6]  # a number, not ['1e6']
    changes = s.micro.schedule_solvers
    assert changes[0][0] == 500.0 and changes[0][1].d_v == 5.0
    # a yMMSL quoted value and a PyYAML-read config value reach the parsers as text
    raw.update({"lifting_tol": "1E-9", "param_d_u": "1e6", "param_schedule": ""})
    s = validate(raw)
    assert s.micro.lifting_tol == 1e-9 and s.micro.params == {"d_u": 1e6}


def test_training_config_numbers_as_written():
    from ledmus.surrogates.config import resolve

    base = yaml.safe_load((ROOT / "configs" / "fhn.yaml").read_text())
    base["train_autoencoder"]["lr"] = "1e-3"  # what PyYAML makes of `lr: 1e-3`
    base["train_autoencoder"]["weight_decay"] = "1E-5"
    resolved = resolve(base)["train_autoencoder"]
    assert (resolved["lr"], resolved["weight_decay"]) == (1e-3, 1e-5)


def test_yaml_loader_is_safe():
    with pytest.raises(yaml.YAMLError):
        load_yaml("!!python/object/apply:os.system ['true']")


# ------------------------------------------------------------ run directories
def run(*args: str) -> int:
    return main(["-q", "run", str(FHN_YMMSL), *args])


def foreign_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "thesis"
    (folder / "sub").mkdir(parents=True)
    (folder / "thesis.tex").write_text("\\documentclass{article}")
    (folder / "sub" / "data.csv").write_text("1,2\n")
    return folder


def test_overwrite_refuses_a_folder_no_ledmus_run_wrote(tmp_path, capsys):
    folder = foreign_folder(tmp_path)
    assert run("--run-dir", str(folder), *SHORT, "--overwrite") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("ledmus: error: run directory ")
    assert str(folder) in err and "no ledmus run wrote (sub, thesis.tex; it has no " in err
    assert (folder / "thesis.tex").read_text() == "\\documentclass{article}"
    assert (folder / "sub" / "data.csv").read_text() == "1,2\n"
    assert sorted(p.name for p in folder.rglob("*")) == ["data.csv", "sub", "thesis.tex"]


def test_the_working_directory_is_never_a_run_directory(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "keep.txt").write_text("x")
    for where in (".", str(tmp_path), ".."):
        assert run("--run-dir", where, *SHORT, "--overwrite") == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "give a folder of its own" in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.txt"]


def test_overwrite_replaces_a_previous_run_and_keeps_foreign_files(tmp_path, capsys):
    folder = tmp_path / "r"
    assert run("--run-dir", str(folder), *SHORT) == 0
    marker = json.loads((folder / MARKER).read_text())
    assert marker["complete"] and marker["outputs"] == ["metrics.json", "trajectory.h5"]
    (folder / "notes.txt").write_text("mine")
    (folder / "field.png").write_bytes(b"stale")  # a known output of an earlier run
    capsys.readouterr()
    assert run("--run-dir", str(folder), *SHORT, "--overwrite") == 0
    assert "kept 1 entry that no ledmus run wrote: notes.txt" in capsys.readouterr().err
    assert not (folder / "field.png").exists() and (folder / "notes.txt").read_text() == "mine"
    again = json.loads((folder / MARKER).read_text())
    assert again["run_id"] != marker["run_id"] and again["kept"] == ["notes.txt"]
    assert again["outputs"] == ["metrics.json", "trajectory.h5"]  # notes.txt is not ours


def test_an_unreadable_marker_proves_nothing(tmp_path):
    folder = foreign_folder(tmp_path)
    (folder / MARKER).write_text("{not json")
    with pytest.raises(ValueError, match="its marker cannot be read"):
        prepare_run_dir(folder, overwrite=True)
    assert (folder / "thesis.tex").exists() and (folder / "sub" / "data.csv").exists()


def bad_ic(tmp_path: Path, kind: str) -> Path:
    path = tmp_path / f"{kind}.npy"
    ic = np.zeros((1, 2, 101)) if kind == "nan" else np.zeros((1, 3, 7))
    if kind == "nan":
        ic[0, 0, 5] = np.nan
    np.save(path, ic)
    return path


@pytest.mark.parametrize("kind", ["shape", "nan"])
def test_a_run_that_fails_leaves_no_directory_it_created(tmp_path, capsys, kind):
    folder = tmp_path / "new" / "r"
    ic = bad_ic(tmp_path, kind)
    assert run("--run-dir", str(folder), *SHORT, "--set", f"ic={ic}") == 2
    err = capsys.readouterr().err
    assert err.startswith("ledmus: error: ") and err.count("\n") == 1, err
    assert not (tmp_path / "new").exists()
    # an existing (empty) folder stays, empty: the marker is removed too
    (tmp_path / "mine").mkdir()
    assert run("--run-dir", str(tmp_path / "mine"), *SHORT, "--set", f"ic={ic}") == 2
    assert not list((tmp_path / "mine").iterdir())


def test_a_blow_up_leaves_no_directory(tmp_path, capsys, monkeypatch):
    from ledmus.coupler.driver import Coordinator

    def blow_up(*args, **kwargs):
        raise FloatingPointError("overflow in the micro solver")

    monkeypatch.setattr(Coordinator, "run", blow_up)
    assert run("--run-dir", str(tmp_path / "r"), *SHORT) == 2
    assert "overflow in the micro solver" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


# ------------------------------------------------------------ checkpoints
def corrupt(tmp_path: Path, kind: str) -> Path:
    path = tmp_path / f"{kind}.pt"
    if kind == "random":
        path.write_bytes(np.random.default_rng(0).bytes(4096))
    elif kind == "pickle":
        path.write_bytes(pickle.dumps({"format": "ledmus-led"}))
    elif kind == "foreign":
        torch.save({"a": 1}, path)
    elif kind == "objects":  # a torch file whose pickle names a class: never unpickled
        torch.save({"a": np.random.default_rng(0)}, path)
    elif kind == "truncated":
        data = FHN_MODEL.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    elif kind == "empty":
        path.write_bytes(b"")
    return path


KINDS = ["random", "pickle", "foreign", "objects", "truncated", "empty", "missing"]


@pytest.mark.parametrize("kind", KINDS)
def test_an_untrusted_checkpoint_is_one_safe_line(tmp_path, capsys, kind):
    path = corrupt(tmp_path, kind)
    assert run("--run-dir", str(tmp_path / "r"), *SHORT, "--set", f"model={path}") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert err.startswith("ledmus: error: setting model: ")
    if kind == "missing":  # the setting's file lookup answers first
        assert "does not exist" in err
    else:
        assert f"{path} is not a ledmus checkpoint (" in err
    assert "weights_only" not in err and "arbitrary code" not in err
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("kind", KINDS)
def test_read_checkpoint_names_the_file_and_a_short_reason(tmp_path, kind):
    from ledmus.surrogates.checkpoint import read_checkpoint

    path = corrupt(tmp_path, kind)
    with pytest.raises(ValueError) as exc:
        read_checkpoint(path)
    text = str(exc.value)
    assert text.startswith(f"{path} is not a ledmus checkpoint (") and "\n" not in text
    assert len(text) < 200 + len(str(path)) and "weights_only" not in text


# ------------------------------------------------------------ MUSCLE3 reruns
#: a short MUSCLE3 run (warm-up 60 + one cycle) took 15-25 s on 2 loaded cores (imports of
#: torch in four components); 150 s so that a hang (a rerun muscle_manager waits forever)
#: fails the test, with room for a slower machine
RUN_TIMEOUT_S = 150
#: a refused rerun: the wrapper's check runs before any process starts (well under a
#: second); 20 s allows a loaded machine's Python start-up
REFUSE_WITHIN_S = 20.0


def short_ymmsl(tmp_path: Path, **settings) -> Path:
    """The main job for 120 time units (warm-up 60 and one cycle), no comparison or plots."""
    return ymmsl_copy(tmp_path, **{"t_end": 120.0, **settings})


def bounded(cmd: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run ``cmd``; after :data:`RUN_TIMEOUT_S` kill it and every process below it (the
    manager, its instantiator, the agent, the components) and fail: a hang."""
    psutil = pytest.importorskip("psutil")
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env=env or muscle3_env(),
    )
    try:
        out, err = proc.communicate(timeout=RUN_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        for child in psutil.Process(proc.pid).children(recursive=True):
            try:
                child.kill()
            except psutil.Error:
                pass
        proc.kill()
        out, err = proc.communicate()
        raise AssertionError(f"{cmd[:4]} hung for {RUN_TIMEOUT_S} s: {err[-500:]}") from None
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def launch(ymmsl: Path, run_dir: Path, *extra: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "ledmus", "launch", str(ymmsl), "--run-dir", str(run_dir)]
    return bounded([*cmd, *extra])


def records(run_dir: Path) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in run_dir.iterdir() if p.is_file()}


def fake_previous_run(run_dir: Path) -> None:
    """What a finished MUSCLE3 run leaves (the files that matter here)."""
    from ledmus.rundir import MUSCLE3_OUTPUTS, new_marker, write_marker

    for name in ("macro", "micro"):
        (run_dir / "instances" / name / "workdir").mkdir(parents=True)
    (run_dir / "output").mkdir()
    (run_dir / "output" / "metrics.json").write_text("{}")
    (run_dir / "configuration.ymmsl").write_text("old")
    (run_dir / "muscle3_manager.log").write_text("old")
    write_marker(run_dir, new_marker("muscle3", outputs=MUSCLE3_OUTPUTS))


def test_the_macro_component_tells_its_run_from_an_earlier_one(tmp_path, monkeypatch):
    from ledmus.rundir import RUN_ID_ENV, claim_muscle3_run_dir, prepare_muscle3_run_dir

    monkeypatch.delenv(RUN_ID_ENV, raising=False)
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    run_id = claim_muscle3_run_dir(fresh)  # a plain muscle_manager run: writes the marker
    assert json.loads((fresh / MARKER).read_text())["run_id"] == run_id
    with pytest.raises(ValueError, match="holds an earlier MUSCLE3 run .ledmus run "):
        claim_muscle3_run_dir(fresh)  # a rerun into it
    launched = prepare_muscle3_run_dir(tmp_path / "launched")
    monkeypatch.setenv(RUN_ID_ENV, launched)
    assert claim_muscle3_run_dir(tmp_path / "launched") == launched  # its launcher's marker
    monkeypatch.setenv(RUN_ID_ENV, "another")
    with pytest.raises(ValueError, match="ledmus launch X.ymmsl --run-dir DIR --overwrite"):
        claim_muscle3_run_dir(tmp_path / "launched")
    monkeypatch.delenv(RUN_ID_ENV)  # `ledmus run-dir D && muscle_manager ...`
    prepared = prepare_muscle3_run_dir(tmp_path / "prepared", for_muscle_manager=True)
    assert claim_muscle3_run_dir(tmp_path / "prepared") == prepared  # taken once
    with pytest.raises(ValueError, match="holds an earlier MUSCLE3 run"):
        claim_muscle3_run_dir(tmp_path / "prepared")  # the next run finds it claimed


@muscle3
@pytest.mark.slow  # two short MUSCLE3 runs: ~50 s on 2 cores
def test_launch_refuses_a_rerun_at_once_and_overwrite_replaces_it(tmp_path):
    ymmsl, run_dir = short_ymmsl(tmp_path), tmp_path / "fhn"
    first = launch(ymmsl, run_dir)
    assert first.returncode == 0, first.stdout + first.stderr
    assert json.loads((run_dir / MARKER).read_text())["complete"]
    before = records(run_dir)
    start = time.monotonic()
    again = launch(ymmsl, run_dir)
    took = time.monotonic() - start
    assert again.returncode == 2 and took < REFUSE_WITHIN_S
    assert again.stdout == "" and again.stderr.count("\n") == 1, again.stderr
    assert again.stderr.startswith("ledmus: error: run directory ")
    assert "is not empty (holds an earlier ledmus run " in again.stderr
    assert records(run_dir) == before  # configuration, log, database untouched
    (run_dir / "notes.txt").write_text("mine")
    third = launch(ymmsl, run_dir, "--overwrite")
    assert third.returncode == 0, third.stdout + third.stderr
    assert "kept 1 entry that no ledmus run wrote: notes.txt" in third.stderr
    assert (run_dir / "notes.txt").read_text() == "mine"
    assert (run_dir / "output" / "summary.txt").is_file()
    assert sorted(p.name for p in (run_dir / "instances").iterdir()) == sorted(
        ["lift", "macro", "micro", "restrict"]
    )


def run_dir_then_manager(ymmsl: Path, run_dir: Path, *extra: str) -> subprocess.CompletedProcess:
    """The README's main job line: ``ledmus run-dir D && muscle_manager --start-all X
    --run-dir D`` (through a shell, as a user types it)."""
    manager = f"{BIN / 'muscle_manager'} --start-all {ymmsl} --run-dir {run_dir}"
    line = f"{BIN / 'ledmus'} run-dir {run_dir} {' '.join(extra)} && {manager}"
    env = muscle3_env()
    env.pop("LEDMUS_RUN_ID", None)  # a plain muscle_manager run, not ledmus launch
    return bounded(["bash", "-c", line], env)


@muscle3
@pytest.mark.slow  # two short MUSCLE3 runs and one refused: ~30 s on 2 cores
def test_the_readme_main_job_rerun_stops_at_once_and_overwrite_replaces_it(tmp_path):
    """muscle_manager 0.11 hangs on a folder holding an earlier run's ``instances/`` before
    any ledmus code runs; ``ledmus run-dir`` before it refuses that folder in one line."""
    ymmsl, run_dir = short_ymmsl(tmp_path), tmp_path / "fhn"
    first = run_dir_then_manager(ymmsl, run_dir)
    assert first.returncode == 0, first.stdout + first.stderr
    marker = json.loads((run_dir / MARKER).read_text())
    assert marker["complete"] and not marker["unclaimed"]  # the macro component took it
    before = records(run_dir)
    summary = (run_dir / "output" / "summary.txt").read_text()
    start = time.monotonic()
    again = run_dir_then_manager(ymmsl, run_dir)
    assert again.returncode == 2 and time.monotonic() - start < REFUSE_WITHIN_S
    assert again.stderr.count("\n") == 1, again.stderr
    assert "is not empty (holds an earlier ledmus run " in again.stderr
    assert records(run_dir) == before  # the manager never started: nothing rewritten
    assert (run_dir / "output" / "summary.txt").read_text() == summary
    (run_dir / "notes.txt").write_text("mine")
    third = run_dir_then_manager(ymmsl, run_dir, "--overwrite")
    assert third.returncode == 0, third.stdout + third.stderr
    assert (run_dir / "notes.txt").read_text() == "mine"
    assert json.loads((run_dir / MARKER).read_text())["run_id"] != marker["run_id"]
    assert (run_dir / "output" / "summary.txt").is_file()


def test_run_dir_command_creates_refuses_and_replaces(tmp_path, capsys):
    """``ledmus run-dir``: a new folder is created with an unclaimed marker; an earlier
    run's folder and a foreign folder are refused in one line; ``--overwrite`` replaces
    the earlier run only."""
    run_dir = tmp_path / "a" / "fhn"
    assert main(["-q", "run-dir", str(run_dir)]) == 0
    marker = json.loads((run_dir / MARKER).read_text())
    assert (
        marker["unclaimed"] and marker["engine"] == "muscle3" and "instances" in marker["outputs"]
    )
    assert main(["-q", "run-dir", str(run_dir)]) == 0  # empty but for the marker: taken
    fake_previous_run(tmp_path / "old")
    assert main(["-q", "run-dir", str(tmp_path / "old")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "is not empty (holds an earlier ledmus run " in err
    assert (tmp_path / "old" / "configuration.ymmsl").read_text() == "old"
    (tmp_path / "old" / "notes.txt").write_text("mine")
    assert main(["-q", "run-dir", str(tmp_path / "old"), "--overwrite"]) == 0
    assert sorted(p.name for p in (tmp_path / "old").iterdir()) == [MARKER, "notes.txt"]
    assert "kept 1 entry that no ledmus run wrote: notes.txt" in capsys.readouterr().err
    folder = foreign_folder(tmp_path)
    assert main(["-q", "run-dir", str(folder), "--overwrite"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "holds files that no ledmus run wrote" in err
    assert sorted(p.name for p in folder.rglob("*")) == ["data.csv", "sub", "thesis.tex"]
