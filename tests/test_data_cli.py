"""HDF5 contract, atomic writes, datasets and the command line."""

import json
import subprocess
import sys

import h5py
import numpy as np
import pytest

from ledmus import __version__, solvers
from ledmus.cli import main
from ledmus.datasets import make_dataset
from ledmus.trajectory import read_trajectory, write_trajectory


def test_unknown_system_lists_valid_names():
    with pytest.raises(ValueError, match="unknown system 'lb'.*fhn, ks, ad1d, ad3d, rw"):
        solvers.make("lb")
    with pytest.raises(ValueError, match="unknown parameter.*D_u.*allowed: .*d_u"):
        solvers.make("fhn", D_u=1.0)


def test_t_end_and_ic_shape_errors_name_the_field(rng):
    solver = solvers.make("fhn")
    with pytest.raises(ValueError, match="t_end=2.5 is not a multiple of dt_coarse=1.0"):
        solver.rollout(solvers.load_fhn_ic("y00"), 2.5)
    with pytest.raises(ValueError, match=r"ic has shape \(3, 101\)"):
        solver.initial_condition(np.zeros((3, 101)), 1, rng)
    with pytest.raises(ValueError, match="ic='y09'.*y00, y01"):
        solver.initial_condition("y09", 1, rng)
    with pytest.raises(ValueError, match="NaN"):
        solver.lift(np.full((2, 101), np.nan))


def test_simulate_cli_writes_the_contract(tmp_path):
    out = tmp_path / "y05.h5"
    assert main(["-q", "simulate", "fhn", "--ic", "y05", "--t-end", "100", "--out", str(out)]) == 0
    with h5py.File(out) as h5:
        assert h5["states"].shape == (1, 101, 2, 101)  # includes t = 0 and t = t_end
        np.testing.assert_array_equal(h5["t"][()], np.arange(101.0))
        assert h5.attrs["system"] == "fhn"
        assert json.loads(h5.attrs["params"])["d_v"] == 4.0
        assert h5.attrs["dt_coarse"] == 1.0 and h5.attrs["dt_micro"] == 0.005
        assert h5.attrs["seed"] == 0 and h5.attrs["ledmus_version"] == __version__
        np.testing.assert_allclose(h5["states"][0, 0], solvers.load_fhn_ic("y05"))
    assert [p.name for p in tmp_path.iterdir()] == ["y05.h5"]  # no temporary left behind


def test_simulate_cli_lifts_the_initial_condition_as_asked(tmp_path):
    out = tmp_path / "cr.h5"
    args = ["-q", "simulate", "fhn", "--ic", "y05", "--t-end", "5", "--out", str(out)]
    assert main([*args, "--lifting", "constrained_runs"]) == 0
    solver = solvers.make("fhn")
    _, cr = solver.rollout(solvers.load_fhn_ic("y05"), 5.0, lifting="constrained_runs")
    _, eq = solver.rollout(solvers.load_fhn_ic("y05"), 5.0)
    np.testing.assert_array_equal(read_trajectory(out).states, cr)
    assert np.abs(cr - eq).max() > 1e-4  # the lift is visible after 5 time units


def test_simulate_cli_npy_ic_params_and_batch(tmp_path):
    ic = np.zeros((4, 1000, 3))
    np.save(tmp_path / "ic.npy", ic)
    out = tmp_path / "ad.h5"
    args = ["-q", "simulate", "ad3d", "--ic", str(tmp_path / "ic.npy"), "--batch", "4",
            "--t-end", "1", "--out", str(out), "--seed", "3", "--param", "amplitude=[0, 0, 0]"]  # fmt: skip
    assert main(args) == 0
    traj = read_trajectory(out)
    assert traj.states.shape == (4, 3, 1000, 3) and traj.seed == 3
    assert traj.params["amplitude"] == [0.0, 0.0, 0.0]
    assert np.all(np.abs(traj.states) <= 0.5)


@pytest.mark.parametrize(
    ("args", "message"),
    [(["simulate", "fhn", "--t-end", "2.5"], "t_end=2.5 is not a multiple"),
     (["simulate", "lbm", "--t-end", "1"], "unknown system 'lbm'"),
     (["simulate", "fhn", "--t-end", "1", "--param", "d_u=-1"], "d_u must be"),
     (["simulate", "fhn", "--t-end", "1", "--ic", "nope.npy"], "--ic file"),
     (["simulate", "ks", "--t-end", "1", "--param", "n_nodes"], "name=value"),
     (["simulate", "ks", "--t-end", "1", "--lifting", "constrained_runs"],
      "lifting='constrained_runs' is not available for the 'ks' solver; allowed: equilibrium"),
     (["simulate", "fhn", "--t-end", "1", "--lifting", "cr"], "lifting='cr' unknown; allowed"),
     (["dataset", "fhn", "--scale", "small", "--seed", "-1"], "seed")],
)  # fmt: skip
def test_cli_errors_are_one_line_without_traceback(tmp_path, args, message):
    out = ["--out", str(tmp_path / ("x.h5" if args[0] == "simulate" else "d"))]
    proc = subprocess.run(
        [sys.executable, "-m", "ledmus", *args, *out], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.startswith("ledmus: error:")]
    assert len(lines) == 1 and message in lines[0], proc.stderr
    assert not (tmp_path / "x.h5").exists()


def test_interrupted_write_leaves_no_file(tmp_path):
    solver = solvers.make("ks")

    states = np.zeros((1, 3, 1, 64))
    write_trajectory(tmp_path / "ok.h5", states, np.arange(3.0), solver, 0)
    with pytest.raises(ValueError, match="do not match"):
        write_trajectory(tmp_path / "bad.h5", states, np.arange(4.0), solver, 0)
    # h5py fails half-way through the file (after states and t are written)
    with pytest.raises(TypeError):
        write_trajectory(tmp_path / "ok.h5", states + 1, np.arange(3.0), solver, 0,
                         extra={"x": np.array([object()])})  # fmt: skip
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ok.h5"]  # old file intact
    np.testing.assert_array_equal(read_trajectory(tmp_path / "ok.h5").states, states)


@pytest.mark.parametrize("system", ["fhn", "ks", "ad1d", "ad3d", "rw"])
def test_small_datasets_follow_the_protocol(tmp_path, system):
    manifest = make_dataset(system, tmp_path, scale="small", seed=5, progress=False)
    assert json.loads((tmp_path / "manifest.json").read_text()) == manifest
    solver = solvers.make(system, **manifest["params"])
    for name, split in manifest["splits"].items():
        traj = read_trajectory(tmp_path / split["file"])
        assert list(traj.states.shape) == split["shape"]
        assert traj.seed == split["seed"] == 5 + {"train": 0, "val": 1, "test": 2}[name]
        assert traj.attrs["split"] == name
        assert traj.states.shape[2:] == solver.state_shape
        assert traj.params == solver.params()
        if "windows" in split:
            off = traj.extra["offsets"]
            assert len(off) == split["windows"]
            assert np.all(off + split["window_length"] <= traj.states.shape[1])
    if system == "fhn":
        train = read_trajectory(tmp_path / "train.h5")
        assert train.t[0] == 2.0  # the relaxation transient of 2 time units is dropped
        assert train.states.shape[:2] == (3, 41)
    if system == "ks":
        assert read_trajectory(tmp_path / "train.h5").t[0] == 100.0


def test_dataset_is_reproducible_from_its_seed(tmp_path):
    a = make_dataset("ad1d", tmp_path / "a", scale="small", seed=9, progress=False)
    b = make_dataset("ad1d", tmp_path / "b", scale="small", seed=9, progress=False)
    assert a["splits"] == b["splits"]
    for split in ("train", "test"):
        np.testing.assert_array_equal(
            read_trajectory(tmp_path / "a" / f"{split}.h5").states,
            read_trajectory(tmp_path / "b" / f"{split}.h5").states,
        )


def test_runs_sets_the_train_and_validation_runs(tmp_path):
    """``runs``: that many independent runs in train and val, each from its own random
    initial condition; the test split and the first run's seed stream are the protocol's."""
    one = make_dataset("ks", tmp_path / "one", scale="small", seed=3, progress=False)
    many = make_dataset("ks", tmp_path / "many", scale="small", seed=3, runs=3, progress=False)
    assert one["runs"] == {"train": 1, "val": 1, "test": 1}
    assert many["runs"] == {"train": 3, "val": 3, "test": 1}
    for split in ("train", "val"):
        states = read_trajectory(tmp_path / "many" / f"{split}.h5").states
        assert states.shape[:2] == (3, one["splits"][split]["shape"][1])
        # distinct initial conditions: no two runs alike (chaotic KS after the transient)
        assert min(np.abs(states[i] - states[j]).max() for i, j in ((0, 1), (0, 2), (1, 2))) > 0.1
    np.testing.assert_array_equal(
        read_trajectory(tmp_path / "one" / "test.h5").states,
        read_trajectory(tmp_path / "many" / "test.h5").states,
    )


@pytest.mark.parametrize(
    ("system", "runs", "match"),
    [
        ("ks", 0, "runs must be an integer >= 1, got 0"),
        ("ks", 2.5, "runs must be an integer >= 1, got 2.5"),
        ("fhn", 2, r"runs: the train split of 'fhn' starts from named initial conditions"),
    ],
)
def test_runs_refuses_what_it_cannot_do(tmp_path, system, runs, match):
    with pytest.raises(ValueError, match=match):
        make_dataset(system, tmp_path, scale="small", runs=runs, progress=False)
    assert not (tmp_path / "train.h5").exists()


def test_dataset_cli_takes_runs(tmp_path):
    main(["dataset", "ks", "--out", str(tmp_path), "--scale", "small", "--runs", "2", "-q"])
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["runs"]["train"] == 2
    assert read_trajectory(tmp_path / "val.h5").states.shape[0] == 2
