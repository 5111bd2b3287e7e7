"""Installed from a wheel (``pip install .``, not editable), ``ledmus`` works: the wheel
holds every file of the package (the FHN initial conditions included), the commands run
from anywhere, the shipped models are found next to a yMMSL file of the checkout, and a
config or model that is not there is one line saying where the shipped ones are.

The installs are slow (a clean venv with torch and the package's dependencies: ~1.5-2.5
min with a warm pip cache): ``pytest -m slow tests/test_wheel.py``; the messages are also
checked fast, in process."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FHN_YMMSL = ROOT / "configs" / "led_fhn.ymmsl"
#: what the wheel is built from (pyproject.toml names README.md as the readme)
SOURCES = ("pyproject.toml", "README.md", "ledmus")
#: seconds for one pip step (torch alone is ~200 MB to unpack; ~70 s measured here)
PIP_TIMEOUT_S = 600
#: seconds for one ledmus command (each takes 2-4 s)
RUN_TIMEOUT_S = 300
#: a short coupled run: warm-up 60 + one cycle, no micro-only reference, no plots
SHORT = ["--set", "t_end=120", "--set", "plots=false", "--set", "compare=false"]
HINT = "clone it and run from its root"


def sh(cmd: list[str], cwd: Path, timeout: float) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "LEDMUS_BASE_DIR")}
    env["OMP_NUM_THREADS"] = "1"
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """(bin folder of a clean venv holding the wheel and torch, a folder outside the
    checkout, the wheel); the venv (~1 GB) is removed afterwards."""
    import torch

    if "+cpu" not in torch.__version__:  # e.g. 2.13.0+cpu from the CPU index or a local wheel
        pytest.skip(
            f"torch {torch.__version__} is not a CPU build: installing it into a clean venv "
            "would download the CUDA build (several GB)"
        )
    tmp = tmp_path_factory.mktemp("wheel")
    timings: dict[str, float] = {}
    start = time.perf_counter()
    src = tmp / "src"  # a copy: the build writes build/ and *.egg-info next to its sources
    src.mkdir()
    for name in SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(ROOT / name, src / name)
    pip = [sys.executable, "-m", "pip"]
    build = [*pip, "wheel", ".", "--no-deps", "--no-build-isolation", "-w", str(tmp / "dist")]
    proc = sh(build, src, PIP_TIMEOUT_S)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    (wheel,) = (tmp / "dist").glob("ledmus-*.whl")
    timings["build wheel"] = time.perf_counter() - start

    venv = tmp / "venv"
    proc = sh([sys.executable, "-m", "venv", str(venv)], tmp, PIP_TIMEOUT_S)
    assert proc.returncode == 0, proc.stderr[-3000:]
    bin_dir = venv / "bin"
    timings["venv"] = time.perf_counter() - start - sum(timings.values())
    torch_spec = f"torch=={torch.__version__}"  # the local version label keeps it a CPU build
    proc = sh([str(bin_dir / "pip"), "install", "--only-binary", ":all:", torch_spec], tmp, PIP_TIMEOUT_S)  # fmt: skip
    if proc.returncode != 0:
        shutil.rmtree(venv, ignore_errors=True)
        pytest.skip(f"{torch_spec} cannot be installed here: {proc.stderr.strip()[-300:]}")
    timings["torch"] = time.perf_counter() - start - sum(timings.values())
    proc = sh([str(bin_dir / "pip"), "install", str(wheel)], tmp, PIP_TIMEOUT_S)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    timings["wheel + dependencies"] = time.perf_counter() - start - sum(timings.values())
    print("timings [s]:", {k: round(v, 1) for k, v in timings.items()})
    elsewhere = tmp / "elsewhere"
    elsewhere.mkdir()
    yield bin_dir, elsewhere, wheel
    shutil.rmtree(venv, ignore_errors=True)


@pytest.mark.slow
def test_the_wheel_holds_every_file_of_the_package(installed):
    _, _, wheel = installed
    tree = {
        p.relative_to(ROOT).as_posix()
        for p in (ROOT / "ledmus").rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    }
    names = set(zipfile.ZipFile(wheel).namelist())
    assert not sorted(tree - names), f"not in the wheel: {sorted(tree - names)}"
    assert "ledmus/resources/fhn_initial_conditions/y05u.txt" in names


@pytest.mark.slow
def test_the_installed_package_runs_from_elsewhere(installed):
    bin_dir, elsewhere, _ = installed
    proc = sh([str(bin_dir / "python"), "-c", "import ledmus; print(ledmus.__file__)"], elsewhere, RUN_TIMEOUT_S)  # fmt: skip
    assert proc.returncode == 0 and "site-packages" in proc.stdout, proc.stdout + proc.stderr
    proc = sh([str(bin_dir / "ledmus"), "systems"], elsewhere, RUN_TIMEOUT_S)
    assert proc.returncode == 0, proc.stderr
    listed = {line.split()[0] for line in proc.stdout.splitlines()[1:] if line.strip()}
    assert {"fhn", "ks", "ad1d", "ad3d", "rw", "bgk"} <= listed, proc.stdout
    # a named initial condition comes from the package data
    out = elsewhere / "x.h5"
    cmd = [str(bin_dir / "ledmus"), "-q", "simulate", "fhn", "--ic", "y05", "--t-end", "10"]
    proc = sh([*cmd, "--out", str(out)], elsewhere, RUN_TIMEOUT_S)
    assert proc.returncode == 0 and out.is_file(), proc.stderr
    assert proc.stdout == proc.stderr == ""


@pytest.mark.slow
def test_shipped_models_next_to_the_config_and_one_line_when_missing(installed, tmp_path):
    bin_dir, elsewhere, _ = installed
    ledmus = str(bin_dir / "ledmus")
    # the checkout's yMMSL from elsewhere: its model is found beside it (../models)
    run = [ledmus, "-q", "run", str(FHN_YMMSL), *SHORT, "--run-dir"]
    proc = sh([*run, str(tmp_path / "a")], elsewhere, RUN_TIMEOUT_S)
    assert proc.returncode == 0 and proc.stdout == proc.stderr == "", proc.stderr
    assert (tmp_path / "a" / "metrics.json").is_file()
    # run from the checkout: the relative config and model resolve there, as before
    rel = [ledmus, "-q", "run", "configs/led_fhn.ymmsl", *SHORT, "--run-dir", str(tmp_path / "b")]
    proc = sh(rel, ROOT, RUN_TIMEOUT_S)
    assert proc.returncode == 0, proc.stderr
    # elsewhere: no such config, or no such model: one line that says where they are
    proc = sh([ledmus, "run", "configs/led_fhn.ymmsl"], elsewhere, RUN_TIMEOUT_S)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
    assert proc.stderr.startswith("ledmus: error: yMMSL file 'configs/led_fhn.ymmsl' does not ")
    assert f"working directory {elsewhere}" in proc.stderr and HINT in proc.stderr
    missing = [*run, str(tmp_path / "c"), "--set", "model=models/nonexistent.pt"]
    proc = sh(missing, elsewhere, RUN_TIMEOUT_S)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
    assert proc.stderr.startswith(
        "ledmus: error: setting model: file 'models/nonexistent.pt' not found (looked in: "
    )
    assert HINT in proc.stderr and "LEDMUS_BASE_DIR" in proc.stderr
    assert not (tmp_path / "c").exists()


# ------------------------------------------------------------------ fast, in process
def test_a_missing_shipped_file_says_where_the_shipped_ones_are(monkeypatch, tmp_path):
    from ledmus.coupler import paths

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("LEDMUS_BASE_DIR", raising=False)
    # from the checkout (this test run): the shipped model is found, as before
    assert paths.resolve_file("models/led_fhn.pt", "model", [tmp_path]) == (
        ROOT / "models" / "led_fhn.pt"
    )
    with pytest.raises(ValueError, match="the shipped models and configs are in ") as exc:
        paths.read_ymmsl_settings("configs/led_fhn.ymmsl")
    assert f"{ROOT / 'configs'}" in str(exc.value) and f"directory {tmp_path}" in str(exc.value)
    # installed from a wheel: no checkout holds the package
    monkeypatch.setattr(paths, "source_checkout", lambda: None)
    with pytest.raises(ValueError) as exc:
        paths.resolve_file("models/led_fhn.pt", "model", [tmp_path])
    message = str(exc.value)
    assert "\n" not in message and HINT in message and str(ROOT) not in message, message
    with pytest.raises(ValueError) as exc:  # the user's own file: no word of the shipped ones
        paths.resolve_file("mine.pt", "model", [tmp_path])
    assert HINT not in str(exc.value)
    with pytest.raises(ValueError, match=HINT):
        paths.read_ymmsl_settings("configs/led_fhn.ymmsl")
