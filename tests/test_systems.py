"""The system registry: a system declared in a test, metric suites, monitors, symmetries."""

import functools
import json
import math
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ledmus import solvers, systems
from ledmus.cli import main
from ledmus.solvers.base import Solver, check_positive
from ledmus.systems import LAYOUTS, Evaluation, Monitor, Protocol, Split, SystemSpec
from ledmus.trajectory import read_trajectory

BUILTIN = ("fhn", "ks", "ad1d", "ad3d", "rw")


# --------------------------------------------------------------------- a toy system
class Decay(Solver):
    """Exact linear decay ``u_t = -rate u`` of one channel on 16 nodes (deterministic)."""

    name = "decay"

    def __init__(self, *, rate: float = 1.0, dt: float = 0.1, dt_coarse: float = 0.5) -> None:
        super().__init__(dt=dt, dt_coarse=dt_coarse)
        self.rate = check_positive("rate", rate)
        self._factor = math.exp(-self.rate * self.dt)

    @property
    def state_shape(self):
        return (1, 16)

    @property
    def x(self):
        return np.arange(16) / 16

    def params(self):
        return {"rate": self.rate, "dt": self.dt, "dt_coarse": self.dt_coarse}

    def ic_names(self):
        return ("random", "ones")

    def _named_ic(self, name, batch, rng):
        if name == "ones":
            return np.ones((batch, 1, 16))
        return rng.uniform(0.5, 1.5, (batch, 1, 16))

    def _lift(self, obs, rng):
        return obs.copy()

    def _observe(self, u):
        return u.copy()

    def _step(self, u, t, rng):
        return u * self._factor


def toy_protocol(scale: str) -> Protocol:
    n = 4 if scale == "small" else 40
    return Protocol(
        "toy",
        "toy decay",
        {"train": Split("random", 2, n * 0.5), "test": Split("ones", 1, n * 0.5, windows=2,
                                                            window_length=3)},
    )  # fmt: skip


def positive(states):
    return (np.asarray(states) > 0).all(axis=(-2, -1))


@pytest.fixture
def toy():
    spec = systems.register(
        SystemSpec(
            "toy", Decay, "grid", "exact decay (test)", preset={"rate": 2.0}, channels=("q",),
            coordinates=lambda s: s.x, dataset=toy_protocol, evaluation=Evaluation(2, None),
            monitors=(Monitor("positive", positive),),
        )
    )  # fmt: skip
    yield spec
    systems.unregister("toy")


def test_toy_system_runs_through_make_simulate_and_dataset(toy, tmp_path, capsys):
    assert "toy" in systems.names() and systems.get("toy") is toy
    solver = solvers.make("toy")  # ledmus.solvers sees the registered system
    assert isinstance(solver, Decay) and solver.rate == 2.0 and solver.system == "toy"
    assert toy.make(rate=3.0).rate == 3.0
    with pytest.raises(ValueError, match="unknown parameter.*speed.*allowed: rate, dt"):
        toy.make(speed=1)

    out = tmp_path / "toy.h5"
    args = ["-q", "simulate", "toy", "--ic", "ones", "--t-end", "1", "--out", str(out),
            "--param", "rate=1"]  # fmt: skip
    assert main(args) == 0
    traj = read_trajectory(out)
    assert traj.system == "toy" and traj.params["rate"] == 1.0
    np.testing.assert_allclose(traj.states[0, :, 0, 0], np.exp(-traj.t), rtol=1e-12)

    assert main(["-q", "dataset", "toy", "--out", str(tmp_path / "d"), "--scale", "small"]) == 0
    manifest = json.loads((tmp_path / "d" / "manifest.json").read_text())
    assert manifest["splits"]["train"]["shape"] == [2, 5, 1, 16]
    test = read_trajectory(tmp_path / "d" / "test.h5")
    assert len(test.extra["offsets"]) == 2 and test.params["rate"] == 2.0
    assert toy.monitors[0].check(test.states[0]).all()

    assert main(["systems"]) == 0
    row = [line for line in capsys.readouterr().out.splitlines() if line.startswith("toy ")]
    assert len(row) == 1 and "grid" in row[0] and "(1, 16)" in row[0] and "exact decay" in row[0]

    from ledmus.datasets import with_dataset

    assert systems.get("toy").dataset is toy_protocol and "toy" in with_dataset()


def test_unregister_and_system_without_dataset(toy):
    from ledmus.datasets import make_dataset

    systems.register(SystemSpec("nodata", Decay, "grid"))
    try:
        with pytest.raises(ValueError, match="no dataset protocol for 'nodata'; allowed: "
                                             "fhn, ks, ad1d, ad3d, rw, boltzmann, toy$"):  # fmt: skip
            make_dataset("nodata", "unused")
    finally:
        systems.unregister("nodata")
    assert "nodata" not in solvers.REGISTRY
    with pytest.raises(ValueError, match="unknown system 'nodata'"):
        solvers.make("nodata")


def test_unknown_system_lists_names(capsys):
    with pytest.raises(
        ValueError,
        match=r"unknown system 'lb'; allowed: fhn, ks, ad1d, ad3d, rw, bgk, boltzmann, boltzmann3d$",
    ):
        systems.get("lb")
    assert main(["simulate", "lb", "--t-end", "1", "--out", "x.h5"]) == 2
    assert "unknown system 'lb'; allowed: fhn, ks" in capsys.readouterr().err
    assert systems.names()[:5] == BUILTIN


def test_register_validates_layout_name_and_preset():
    # "kind" names a model family only: a system declares the layout of its states
    assert systems.get("fhn").layout == "grid" and not hasattr(systems.get("fhn"), "kind")
    with pytest.raises(ValueError, match="layout='mesh' unknown; allowed: " + ", ".join(LAYOUTS)):
        systems.register(SystemSpec("bad", Decay, "mesh"))
    with pytest.raises(ValueError, match="preset has unknown parameter.*speed"):
        SystemSpec("bad", Decay, "grid", preset={"speed": 1})
    with pytest.raises(ValueError, match="subclass of ledmus.solvers.base.Solver"):
        SystemSpec("bad", dict, "grid")
    with pytest.raises(ValueError, match="'fhn' is already registered"):
        systems.register(SystemSpec("fhn", Decay, "grid"))
    assert "bad" not in systems.names()
    fhn = systems.get("fhn")
    try:
        systems.register(SystemSpec("fhn", Decay, "grid"), replace=True)
        assert isinstance(solvers.make("fhn"), Decay)
    finally:
        systems.register(fhn, replace=True)
    assert solvers.make("fhn").state_shape == (2, 101)


def test_builtin_declarations():
    fhn, ks, rw = systems.get("fhn"), systems.get("ks"), systems.get("rw")
    assert fhn.channels == ("u", "v") and ks.channels == ("u",) and rw.channels == ("density",)
    assert (
        systems.get("ad3d").channels == ("x", "y", "z")
        and systems.get("ad1d").layout == "particles"
    )
    np.testing.assert_allclose(fhn.coordinates(fhn.make())[[0, 1, -1]], [0.0, 0.2, 20.0])
    np.testing.assert_allclose(ks.coordinates(ks.make())[[1, -1]], [22 / 64, 22 * 63 / 64])
    np.testing.assert_allclose(rw.coordinates(rw.make())[[0, -1]], [-0.96, 0.96])
    assert fhn.evaluation == Evaluation(60, 8000, (451,)) and ks.lyapunov == 0.048
    for name in BUILTIN:  # presets are those of ledmus.solvers
        spec = systems.get(name)
        assert solvers.REGISTRY[name] == (spec.solver, dict(spec.preset))
        assert spec.dataset("small").system == name
        copy = pickle.loads(pickle.dumps(spec))  # specs travel (MPI, subprocesses)
        assert copy.make().params() == spec.make().params() and copy.channels == spec.channels


def test_surrogates_do_not_import_the_solvers():
    root = Path(__file__).resolve().parents[1]
    code = ("import sys, ledmus.atomic, ledmus.trajectory; "
            "print([m for m in sys.modules if m.startswith(('ledmus.solvers', 'ledmus.systems'))])")  # fmt: skip
    # the full check (torch: seconds) once surrogates/checkpoint.py imports ledmus.atomic
    if "from ..data import" not in (root / "ledmus/surrogates/checkpoint.py").read_text():
        code = code.replace("ledmus.trajectory;", "ledmus.trajectory, ledmus.surrogates;")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# ---------------------------------------------------------------------------- suites
def test_grid_mnad_is_normalised_by_the_reference_range():
    rng = np.random.default_rng(0)
    ref = rng.integers(0, 2, (2, 7, 2, 16)).astype(float)  # range 1 in every member, channel
    ref[:, 0, :, 0], ref[:, 0, :, 1] = 0.0, 1.0
    pred = 3.0 * ref  # |error| = 2 ref; the prediction's range is 3
    expect = 2.0 * ref.mean(axis=(1, 3)).mean(axis=0)  # per channel
    fhn = systems.get("fhn")
    err = fhn.errors(ref, pred, 1.0)
    np.testing.assert_allclose([err["mnad_u"], err["mnad_v"]], expect, rtol=1e-12)
    ev = fhn.evaluate(ref, pred, 1.0)
    np.testing.assert_allclose([ev["mnad_u"], ev["mnad_v"]], expect, rtol=1e-12)
    np.testing.assert_allclose(ev["mnad_u_451"], expect[0], rtol=1e-12)
    ks = systems.get("ks").evaluate(ref[:, :, :1], pred[:, :, :1], 0.25)
    np.testing.assert_allclose(ks["mnad"], expect[0], rtol=1e-12)
    assert set(ks) >= {"valid_time_lyapunov", "wasserstein", "l1_histogram", "power_spectrum_error"}


@pytest.mark.parametrize("name", ["ks", "fhn"])
def test_chunked_grid_evaluation_equals_the_metrics_on_all_windows(name):
    """``ledmus evaluate`` feeds the suite chunks of windows; the result must equal the
    metrics computed directly on all windows at once (ledmus.metrics, not the suite)."""
    from ledmus import metrics

    rng = np.random.default_rng(4)
    spec = systems.get(name)
    c = len(spec.channels)
    ref = rng.normal(size=(7, 30, c, 16))
    pred = ref + 0.3 * rng.normal(size=ref.shape) * np.linspace(0, 1, 30)[None, :, None, None]
    ev = spec.evaluator(0.25)
    for i in (0, 3, 4):  # chunks of 3, 1 and 3 windows
        ev.add(ref[i : i + (3 if i != 3 else 1)], pred[i : i + (3 if i != 3 else 1)])
    out = ev.result()
    nad = metrics.nad(ref.transpose(0, 2, 1, 3), pred.transpose(0, 2, 1, 3))  # (W, C, T)
    key = "mnad" if c == 1 else "mnad_u"
    # rtol 1e-12: the same sums, grouped by chunk
    assert out[key] == pytest.approx(nad[:, 0].mean(), rel=1e-12)
    if spec.lyapunov is not None:
        vpt = metrics.valid_prediction_time(nad[:, 0], 0.25, 0.1, spec.lyapunov)
        assert out["valid_time_lyapunov_per_ic"] == pytest.approx(vpt.tolist(), rel=1e-12)
        assert out["wasserstein"] == pytest.approx(
            metrics.wasserstein(ref.ravel(), pred.ravel()), rel=1e-12
        )
        assert out["l1_histogram"] == pytest.approx(
            metrics.l1_histogram(ref.ravel(), pred.ravel()), rel=1e-12
        )
        assert out["power_spectrum_error"] == pytest.approx(
            metrics.power_spectrum_error(ref[:, :, 0], pred[:, :, 0]), rel=1e-12
        )
    with pytest.raises(ValueError, match="no windows"):
        spec.evaluator(0.25).result()


def test_particle_wasserstein_of_shifted_samples():
    rng = np.random.default_rng(1)
    ref = rng.uniform(-0.4, 0.4, (2, 5, 300, 3))
    err = systems.get("ad3d").errors(ref, ref + 0.05, 0.5)
    for key in ("wasserstein_all", "wasserstein_last", "m1_mae"):
        assert err[key] == pytest.approx(0.05, rel=1e-9)
    assert err["m2_mae"] < 1e-12 and np.allclose(err["wasserstein_t"], 0.05)
    ev = systems.get("ad3d").evaluate(ref, ref + 0.05, 0.5)
    assert ev["m1_wasserstein"] == pytest.approx(0.05, rel=1e-9) and len(ev) == 7


def test_histogram_l1_and_mass():
    p = np.full((1, 2, 1, 4), 0.25)
    q = p.copy()
    q[0, 1, 0] = [0.5, 0.0, 0.25, 0.25]
    err = systems.get("rw").errors(p, q, 4.0)
    assert err["l1_density"] == pytest.approx(0.25)  # (0 + 0.5) / 2 time steps
    assert err["mnad_density"] == pytest.approx(0.0625)  # reference range 0: normalised by 1
    assert err["mass_error"] == 0.0 and err["nad_t"]["density"] == [0.0, 0.125]
    assert systems.get("rw").errors(p, 1.1 * p, 4.0)["mass_error"] == pytest.approx(0.1)
    assert systems.get("rw").evaluate(p, q, 4.0) == err


def test_suites_check_shapes():
    with pytest.raises(ValueError, match="must match"):
        systems.get("fhn").errors(np.zeros((1, 3, 2, 5)), np.zeros((1, 3, 2, 4)), 1.0)
    with pytest.raises(ValueError, match="declares channels u, v but the states have 1"):
        systems.get("fhn").errors(np.zeros((1, 3, 1, 5)), np.zeros((1, 3, 1, 5)), 1.0)


# ------------------------------------------------------------- monitors and symmetries
@functools.lru_cache
def typical_states(name: str) -> tuple[Solver, np.ndarray]:
    """A solver of the system and a few of its typical states ``(B, *shape)`` (read-only)."""
    rng = np.random.default_rng(3)
    if name == "fhn":
        s = solvers.make("fhn")
        states = s.rollout(s.initial_condition("y05", 1, rng), 20.0, rng)[1][0]
    elif name == "ks":
        s = solvers.make("ks")
        _, run = s.rollout(s.initial_condition("random", 2, rng), 10.0, rng, discard=100.0)
        states = np.concatenate([run[:, -1], run[:, 0]])
    elif name == "rw":
        s = solvers.make("rw", n_particles=5000, dt_coarse=0.5)
        states = s.rollout(s.initial_condition("random", 3, rng), 0.5, rng)[1][:, -1]
    else:
        s = solvers.make(name, n_particles=200)
        states = s.rollout(s.initial_condition("random", 3, rng), 2.0, rng)[1][:, -1]
    states.flags.writeable = False
    return s, states


def plant_violation(name: str, monitor: str, x: np.ndarray) -> tuple[np.ndarray, list[int]]:
    """``x`` with violations planted, and the members that violate."""
    x = x.copy()
    if name == "fhn":
        x[1, 0, 50] = 1.7  # u beyond the envelope
        x[2, 1, 3] = np.nan
        return x, [1, 2]
    if name == "ks":
        x[1] *= 4.0  # energy x16
        x[0] = 0.0  # collapse to the zero state
        return x, [0, 1]
    if name == "rw" and monitor == "mass":
        x[1, 0, 3] += 1e-6
    elif name == "rw":
        x[1, 0, 3], x[1, 0, 4] = -0.01, x[1, 0, 4] + x[1, 0, 3] + 0.01  # mass kept
    else:
        x[1, 17, -1] = 0.51  # outside the box
    return x, [1]


@pytest.mark.parametrize("name", BUILTIN)
def test_builtin_monitors_accept_typical_states_and_reject_violations(name):
    spec = systems.get(name)
    _, states = typical_states(name)
    assert spec.monitors
    for monitor in spec.monitors:
        ok = monitor.check(states)
        assert ok.shape == (states.shape[0],) and ok.all(), monitor.name
        planted, members = plant_violation(name, monitor.name, states)
        expect = np.ones(states.shape[0], dtype=bool)
        expect[members] = False
        np.testing.assert_array_equal(monitor.check(planted), expect, err_msg=monitor.name)


def test_fhn_reflection_maps_trajectories_to_trajectories():
    (sym,) = systems.get("fhn").symmetries
    s = solvers.make("fhn")
    y05 = solvers.load_fhn_ic("y05")
    _, a = s.rollout(y05, 10.0)
    _, b = s.rollout(sym.apply(y05), 10.0)
    np.testing.assert_allclose(sym.apply(a), b, rtol=0, atol=1e-12)
    assert np.abs(sym.apply(a) - a).max() > 0.1  # y05 is not symmetric itself


def test_ks_reflection_and_translation_commute_with_the_etdrk4_step():
    s, u0 = typical_states("ks")
    syms = {sym.name: sym.apply for sym in systems.get("ks").symmetries}
    assert set(syms) == {"reflection", "translation"}
    _, a = s.rollout(u0, 2.0)
    for name, g in syms.items():
        _, b = s.rollout(g(u0), 2.0)
        np.testing.assert_allclose(g(a), b, rtol=0, atol=1e-10, err_msg=name)
        assert np.abs(g(a) - a).max() > 0.1
    u = u0[0, 0]  # reflection is u(x) -> -u(-x): node j -> -(node -j mod N)
    np.testing.assert_array_equal(syms["reflection"](u0)[0, 0], -u[(-np.arange(64)) % 64])


class MirroredNoise(np.random.Generator):
    """The same random stream with the normal draws of one axis negated."""

    def __init__(self, seed: int, axis: int) -> None:
        super().__init__(np.random.PCG64(seed))
        self.axis = axis

    def standard_normal(self, *args, **kwargs):
        z = super().standard_normal(*args, **kwargs)
        z[..., self.axis] *= -1
        return z


@pytest.mark.parametrize("name", ["ad1d", "ad3d"])
def test_particle_reflections_map_driftless_paths_to_paths(name):
    # Euler-Maruyama with wall mirroring is odd in (x, noise) axis by axis: the reflected
    # initial state with the mirrored noise gives the reflected path, step by step.
    s = solvers.make(name, n_particles=100, amplitude=0.0)
    x0 = s.initial_condition("uniform", 2, np.random.default_rng(0))
    _, a = s.rollout(x0, 2.0, np.random.default_rng(7))
    assert np.abs(a).max() > 0.45  # particles met the walls
    assert len(systems.get(name).symmetries) == s.dim
    for k, sym in enumerate(systems.get(name).symmetries):
        _, b = s.rollout(sym.apply(x0), 2.0, MirroredNoise(7, k))
        np.testing.assert_allclose(sym.apply(a), b, rtol=0, atol=1e-12, err_msg=sym.name)
        assert np.abs(sym.apply(a) - a).max() > 0.1


def test_the_run_plot_is_declared_by_the_system_and_defaults_by_layout(monkeypatch, tmp_path):
    """``SystemSpec.run_plot`` picks the painter of a coupled run's ``field.png``; by
    layout when not given, and a system may choose another (no branch in the coupler)."""
    from ledmus.coupler import output
    from ledmus.solvers.fhn import FitzHughNagumoLB

    assert [systems.get(n).run_plot for n in ("fhn", "rw", "bgk", "ad1d")] == [
        "field", "field", "profiles", "means"]  # fmt: skip
    spec = systems.SystemSpec("fhn-means", FitzHughNagumoLB, "grid", run_plot="means")
    assert spec.run_plot == "means"
    with pytest.raises(
        ValueError, match=r"run_plot='map' unknown; allowed: field, profiles, means"
    ):
        systems.SystemSpec("fhn-map", FitzHughNagumoLB, "grid", run_plot="map")
    called = []
    monkeypatch.setitem(
        output.RUN_PANELS, "means", lambda *a: called.append("means") or (None,) * 2
    )
    monkeypatch.setattr(systems, "get", lambda name: spec)

    micro = type("M", (), {"solver": FitzHughNagumoLB(), "system": "fhn-means"})()
    settings = type("S", (), {"micro": micro})()
    recorder = type("R", (), {"n_total": 3, "source": np.zeros((1, 3), int), "states": None})()
    with pytest.raises(AttributeError):  # the painter ran; the stub figure stops the rest
        output.plot_run(tmp_path, settings, recorder, {}, None)
    assert called == ["means"]
