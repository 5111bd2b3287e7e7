"""The micro component used on its own by a foreign macro code (examples/foreign_macro,
docs/guide/foreign_components.md): settings, message format and the reuse loop under MUSCLE3."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from ledmus import solvers
from ledmus.coupler.components.micro import MicroComponent
from ledmus.coupler.messages import MicroRequest
from ledmus.coupler.settings import validate_micro

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "foreign_macro"
YMMSL = EXAMPLE / "foreign_fhn.ymmsl"
WHERE = "micro: message on port init"

muscle3 = pytest.mark.skipif(
    not any(Path("/sys/class/net").glob("e*")) and not os.environ.get("LEDMUS_FORCE_MUSCLE3"),
    reason="MUSCLE3 needs a non-loopback network interface (see docs/getting_started.md)",
)


def smooth(state: np.ndarray) -> np.ndarray:
    """The example macro's own state: (1, 2, 1)/4 along x, end points kept."""
    out = state.copy()
    out[..., 1:-1] = (state[..., :-2] + 2.0 * state[..., 1:-1] + state[..., 2:]) / 4.0
    return out


def run_from(solver: solvers.Solver, internal, t0: float, steps: int) -> np.ndarray:
    """``steps`` coarse states after ``internal`` at ``t0``: ``(B, steps, *shape)``."""
    out = []
    for j in range(steps):
        internal = solver.advance(internal, t0 + j * solver.dt_coarse, solver.dt_coarse)
        out.append(solver.observe(internal))
    return np.stack(out, axis=1)


# ----------------------------------------------------------------- in process
def test_validate_micro_ignores_settings_of_other_components():
    s = validate_micro({"system": "fhn", "t_stop": 3, "foo": "bar", "param_eps": 0.006})
    assert (s.system, s.ensemble, s.ic, s.t_transient, s.seed) == ("fhn", 1, "", 0.0, 0)
    assert s.params == {"eps": 0.006} and s.solver.state_shape == (2, 101)


def test_validate_micro_without_a_system_says_so():
    with pytest.raises(ValueError, match=r"^missing setting system \(the micro system's name\)"):
        validate_micro({"t_stop": 3, "foo": "bar"})


def test_micro_request_names_a_missing_or_ill_typed_field():
    with pytest.raises(ValueError) as err:
        MicroRequest.from_payload({"window": 0, "t0": 0.0, "include_initial": True}, WHERE)
    assert str(err.value) == "micro: message on port init: MicroRequest lacks field 'steps'"
    with pytest.raises(ValueError, match=r"MicroRequest\.include_initial must be true or false"):
        MicroRequest.from_payload({"window": 0, "t0": 0.0, "steps": 2, "include_initial": 1})
    req = MicroRequest.from_payload({"window": 0, "t0": 0.0, "steps": 2, "extra": "ignored"})
    assert (req.include_initial, req.state, req.lift_s) == (False, None, 0.0)


def test_micro_component_in_process_follows_the_contract():
    """The example's three windows through the component class, without MUSCLE3."""
    solver = solvers.make("fhn")
    component = MicroComponent(None)
    component.setup(validate_micro({"system": "fhn", "ic": "y05", "t_stop": 15.0}))
    ic = solvers.load_fhn_ic("y05")[None]
    _, ref = solver.rollout(ic, 10.0)
    first, _ = component.handle(MicroRequest(0, 0.0, 5, include_initial=True))
    second, snap = component.handle(MicroRequest(1, 5.0, 5))
    assert first.states.shape == (1, 6, 2, 101) and first.micro_ranks == 1
    np.testing.assert_array_equal(np.concatenate([first.states, second.states], 1), ref)
    assert snap["started"] and snap["t"] == 10.0
    with pytest.raises(ValueError, match="asked to continue at t=7 but its state is at t=10"):
        component.handle(MicroRequest(2, 7.0, 5))
    lifted = smooth(ref[:, -1])
    third, _ = component.handle(MicroRequest(2, 10.0, 5, state=lifted))
    np.testing.assert_array_equal(third.states, run_from(solver, solver.lift(lifted), 10.0, 5))


# ----------------------------------------------------------------- MUSCLE3
def muscle(ymmsl: Path, run_dir: Path) -> subprocess.CompletedProcess:
    run_dir.mkdir(parents=True)
    env = dict(os.environ, OMP_NUM_THREADS="1", FOREIGN_MACRO_DIR=str(EXAMPLE))
    bindir = Path(sys.executable).parent
    env["PATH"] = f"{bindir}{os.pathsep}{env['PATH']}"  # the programs' "python" is this one
    return subprocess.run(
        [str(bindir / "muscle_manager"), "--start-all", str(ymmsl), "--run-dir", str(run_dir)],
        capture_output=True, text=True, cwd=ROOT, env=env, timeout=600,
    )  # fmt: skip


@muscle3
def test_foreign_macro_example_gets_the_micro_solver_windows(tmp_path):
    proc = muscle(YMMSL, tmp_path / "run")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = tmp_path / "run" / "instances" / "macro" / "workdir"
    states, t, lifted = (np.load(out / f"{n}.npy") for n in ("states", "t", "lifted"))
    np.testing.assert_array_equal(t, np.arange(16.0))
    assert states.shape == (1, 16, 2, 101) and lifted.shape == (1, 1, 2, 101)
    solver = solvers.make("fhn")
    # windows 0 and 1: the IC, then a continuation of the internal LB state = one rollout
    _, ref = solver.rollout(solvers.load_fhn_ic("y05")[None], 10.0)
    np.testing.assert_array_equal(states[:, :11], ref)
    # window 2: the macro's smoothed state, lifted by the solver's own lift
    np.testing.assert_array_equal(lifted[0], smooth(states[:, 10]))
    expected = run_from(solver, solver.lift(lifted[0]), 10.0, 5)
    np.testing.assert_array_equal(states[:, 11:], expected)
    assert not np.array_equal(states[:, 11:], run_from(solver, solver.lift(ref[:, -1]), 10.0, 5))


BAD_MACRO = """
from libmuscle import Instance, Message
from ymmsl import Operator

instance = Instance({Operator.O_I: ["request"], Operator.S: ["result"]})
while instance.reuse_instance():
    instance.send("request", Message(0.0, None, {"window": 0, "t0": 0.0}))
    instance.receive("result")
"""


@muscle3
def test_malformed_request_stops_the_run_with_a_one_line_message(tmp_path):
    (tmp_path / "bad_macro.py").write_text(BAD_MACRO)
    doc = yaml.safe_load(YMMSL.read_text())
    doc["programs"]["foreign_macro"]["args"] = [str(tmp_path / "bad_macro.py")]
    ymmsl = tmp_path / "bad.ymmsl"
    ymmsl.write_text(yaml.safe_dump(doc, sort_keys=False))
    proc = muscle(ymmsl, tmp_path / "run")
    assert proc.returncode != 0
    log = (tmp_path / "run" / "muscle3_manager.log").read_text()
    assert f"micro: ValueError: {WHERE}: MicroRequest lacks field 'steps'" in log
