"""The closure acceptance protocol (issue 10): held-out cases, the error table and
``ledmus evaluate models/closure_bgk.pt --json``."""

from __future__ import annotations

import functools
import json
from pathlib import Path

import numpy as np
import pytest

from ledmus import solvers
from ledmus.cli import main
from ledmus.surrogates.closure import evaluate as ev
from ledmus.surrogates.closure.evaluate import (
    cases,
    evaluate_closure,
    fair_errors,
    rel_l2,
    run_case_group,
)

MODEL = Path(__file__).resolve().parents[1] / "models" / "closure_bgk.pt"


def test_the_held_out_cases_are_ten_smooth_profiles_sod_and_two_colliding_pairs():
    got = cases(40)
    assert [n for n, _, _ in got] == [f"smooth{i}" for i in range(10)] + [
        "sod", "colliding", "colliding_asym"
    ]  # fmt: skip
    assert {bc for n, bc, _ in got if n.startswith("smooth")} == {"periodic"}
    assert {bc for n, bc, _ in got if not n.startswith("smooth")} == {"outflow"}
    # Sod is the BGK solver's own sod initial condition (an independent definition)
    bgk = solvers.make("bgk", kn=0.01, nx=40, bc="outflow")
    sod = bgk.primitives(bgk.initial_condition("sod", 1, np.random.default_rng(0)))
    mine = np.stack(dict((n, p) for n, _, p in got)["sod"], axis=1)
    np.testing.assert_allclose(mine, sod, rtol=1e-12, atol=1e-15)  # u: 2e-17 rounding
    # the smooth profiles differ from each other (held-out seeds, not one profile ten times)
    smooth = np.stack([np.concatenate(p) for n, _, p in got if n.startswith("smooth")])
    assert np.min(np.abs(smooth[:, None] - smooth[None]).sum((2, 3))[~np.eye(10, dtype=bool)]) > 1


def test_rel_l2_is_inf_for_a_broken_run_and_zero_for_the_reference():
    ref = np.array([[1.0, 2.0, 2.0]])
    assert rel_l2(ref, ref)[0] == 0.0
    np.testing.assert_allclose(rel_l2(ref + [[0.0, 0.0, 3.0]], ref), [1.0])  # |3| / |(1,2,2)|
    assert rel_l2(np.full_like(ref, np.nan), ref)[0] == np.inf


def test_the_fair_metric_scales_the_velocity_error_by_the_sound_speed():
    # a gas at rest (u_ref = 0, as on most of a Riemann problem's domain) with T_ref = 4/3:
    # c_ref = sqrt(3 * 4/3) = 2 in every cell; a prediction off by 0.1 in u everywhere
    nx = 8
    ref = np.stack([np.full(nx, 2.0), np.zeros(nx), np.full(nx, 4.0 / 3.0)])[None]
    pred = ref + np.stack([np.zeros(nx), np.full(nx, 0.1), np.full(nx, 0.1)])[None]
    got = fair_errors(pred, ref)[0]
    np.testing.assert_allclose(got, [0.0, 0.1 / 2.0, 0.1 / (4.0 / 3.0)], rtol=1e-12)
    assert rel_l2(pred, ref)[0, 1] == np.inf  # the relative L2 of u has nothing to divide by
    assert fair_errors(np.full_like(pred, np.nan), ref)[0].tolist() == [np.inf] * 3
    # the sound speed of the reference, not of the prediction: doubling T_pred changes only T
    hot = pred.copy()
    hot[0, 2] *= 2.0
    assert fair_errors(hot, ref)[0, 1] == got[1]


def test_navier_stokes_beats_euler_at_small_eps_and_fails_at_large_eps():
    # the classical picture the ML closure must improve on (seed 002 §5)
    res = evaluate_closure(None, eps_grid=(1e-2, 1.0), nx=32, models=("euler", "ns"))
    assert res["models"] == ["euler", "ns"] and res["failures"] == []
    small, large = res["rel_l2_mean"], res["rel_l2"]
    # measured (mean over cases, nx 32, eps 1e-2) u: Euler 0.100, NS 0.021
    assert small["ns"]["0.01"]["u"] < 0.6 * small["euler"]["0.01"]["u"]
    # measured (max over cases, eps 1) u: Euler 0.65, NS 1.66: NS's heat flux explodes
    assert large["ns"]["1"]["u"] > 1.0
    assert set(res["rel_l2_cases"]["ns"]["1"]) == set(res["cases"])
    # the fair metric beside it, per case and summarised the same way
    assert set(res["fair_cases"]["ns"]["1"]) == set(res["cases"])
    assert set(res["fair"]["euler"]["0.01"]) == {"rho", "u_over_c", "T", "max"}
    for m in ("euler", "ns"):  # ρ and T are the same numbers under both metrics
        for key in ("0.01", "1"):
            for case, errs in res["fair_cases"][m][key].items():
                old = res["rel_l2_cases"][m][key][case]
                assert errs[0] == old[0] and errs[2] == old[2]


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # the planted blow-up's NaNs
def test_a_model_that_breaks_down_is_reported_not_raised(monkeypatch):
    class Blowup(ev.Euler):
        def closure_flux(self, Q):  # a heat flux that drives T negative at once
            out = np.zeros_like(Q)
            out[:, 2] = 1e6 * np.sin(np.arange(Q.shape[-1]))
            return out

    monkeypatch.setattr(ev, "Euler", Blowup)
    rho, u, T = (np.ones((1, 16)),) * 3
    res = run_case_group(None, 0.1, "periodic", (rho, u * 0, T), nx=16, t_end=0.01,
                         models=("euler",))  # fmt: skip
    assert "unphysical" in res["euler"]["error"] and np.isnan(res["euler"]["final"]).all()
    with pytest.raises(ValueError, match="unknown model 'grad13'; allowed: ml, euler, ns"):
        evaluate_closure(None, models=("grad13",))


def test_ledmus_evaluate_writes_rel_l2_per_eps_for_ml_euler_and_ns(tmp_path, monkeypatch):
    small = functools.partial(ev.evaluate_closure, eps_grid=(1e-2, 1.0), nx=32)
    monkeypatch.setattr(ev, "evaluate_closure", small)  # the CLI's full grid takes minutes
    out = tmp_path / "out.json"
    assert main(["-q", "evaluate", str(MODEL), "--json", str(out), "--out-dir",
                 str(tmp_path / "ev")]) == 0  # fmt: skip
    got = json.loads(out.read_text())
    assert got["models"] == ["ml", "euler", "ns"] and got["eps"] == [0.01, 1.0]
    for m in ("ml", "euler", "ns"):
        for key in ("0.01", "1"):
            assert set(got["rel_l2"][m][key]) == {"rho", "u", "T", "max"}
    # the seed's claim at eps = 1 (measured max over cases, nx 32: ML 0.066, Euler 0.65, NS 1.66)
    assert got["rel_l2"]["ml"]["1"]["max"] < 0.2 * got["rel_l2"]["euler"]["1"]["max"]
    assert (tmp_path / "ev" / "rel_l2.png").is_file() and (
        tmp_path / "ev" / "weights.png"
    ).is_file()
    assert main(["-q", "evaluate", str(MODEL), "--data", str(out)]) == 2
