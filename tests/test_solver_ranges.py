"""Physically valid parameters (issue 23 item 8): each solver refuses what is unstable
(``ValueError`` naming the parameter and the allowed range) and warns once, in one line,
outside the range it is validated in; numpy floating-point warnings of a run become one
ledmus line."""

from __future__ import annotations

import subprocess
import sys
import warnings

import numpy as np
import pytest

from ledmus import solvers
from ledmus.solvers import base


@pytest.fixture(autouse=True)
def fresh_warnings():
    base._WARNED.clear()  # "once" is per process: every test starts from none
    yield
    base._WARNED.clear()


def solver_lines(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "ledmus.solvers"]


@pytest.mark.parametrize("name", ["fhn", "ks", "bgk"])
def test_the_paper_parameters_are_inside_the_validated_ranges(name, caplog):
    assert solvers.make(name).check_validated() == []
    assert solver_lines(caplog) == []


def test_fhn_dt_half_is_warned_once_naming_the_relaxation_rates(caplog):
    for _ in range(3):
        s = solvers.make("fhn", dt=0.5)
    # omega_u 0.052, omega_v 0.013 (measured MNAD u 0.22 against dt = 0.005): both below
    # the validated 0.2
    assert s.check_validated() == ["omega_u", "omega_v"]
    lines = solver_lines(caplog)
    assert len(lines) == 2, lines  # one per rate, not one per construction
    assert lines[0].startswith("fhn: omega_u=0.0519 (d_u=1, dt=0.5, dx=0.2) is outside")
    assert "0.2 <= omega_u <= 1.97" in lines[0] and "\n" not in lines[0]


def test_fhn_d_u_1e6_warns_once(caplog):
    solvers.make("fhn", d_u=1e6)
    solvers.make("fhn", d_u=1e6)
    lines = solver_lines(caplog)
    assert len(lines) == 1 and lines[0].startswith("fhn: omega_u=5.33e-06 (d_u=1e+06"), lines


@pytest.mark.parametrize(
    "name, params, quantity",
    [
        ("fhn", {"d_u": 0.01}, "omega_u"),  # omega_u 1.993: above the 1.97 tested
        ("fhn", {"d_v": 32.0}, "omega_v"),  # omega_v 2/13 = 0.154 < 0.2
        ("ks", {"dt": 0.5, "dt_coarse": 0.5}, "dt"),
        ("ks", {"n_nodes": 16}, "dx"),  # 22/16 = 1.375 > 0.8
        ("bgk", {"v_max": 4.0}, "v_max"),
        ("bgk", {"nv": 16}, "dv"),  # 20/16 = 1.25 > 0.625
    ],
)
def test_outside_the_validated_range_is_one_warning(name, params, quantity, caplog):
    s = solvers.make(name, **params)
    assert s.check_validated() == [quantity]
    assert len(solver_lines(caplog)) == 1


def test_an_unstable_fhn_time_step_is_refused_naming_the_range():
    # explicit Euler reaction at u = +-1: factor 1 - 2 dt per step, unstable for dt > 1
    with pytest.raises(ValueError, match=r"dt=2 is outside the stable range; allowed: 0 < dt <= 1"):
        solvers.make("fhn", dt=2.0, dt_coarse=2.0)
    solvers.make("fhn", dt=1.0)  # the edge is allowed (and warned: omega_v 0.0066)


def test_numpy_overflow_in_a_run_is_one_ledmus_line(caplog):
    s = solvers.make("fhn")
    f = s.lift(np.full((1, 2, 101), 1e120))  # u^3 overflows
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a numpy RuntimeWarning would raise here
        for k in range(3):
            f = s.advance(f, float(k), 1.0)
    lines = solver_lines(caplog)
    assert len(lines) == 1 and lines[0].startswith("fhn: floating-point overflow"), lines


def test_cli_quiet_shows_one_line_per_warning(tmp_path):
    args = [
        "-q",
        "simulate",
        "fhn",
        "--t-end",
        "2",
        "--param",
        "d_u=1e6",
        "--out",
        str(tmp_path / "x.h5"),
    ]
    proc = subprocess.run(
        [sys.executable, "-m", "ledmus", *args], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("ledmus.solvers: fhn: omega_u=5.33e-06 (d_u=1e+06"), lines
