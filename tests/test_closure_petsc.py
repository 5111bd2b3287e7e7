"""PETSc backend of the finite-volume moment solver on one rank (issue 10 item 6).

The multi-rank checks are in ``tests/mpi/test_closure_petsc.py`` (they reuse
:func:`case` from here).  Every tolerance states why and the value measured when it
was set (petsc4py 3.26.1, numpy 2, x86-64).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from ledmus.surrogates.closure import Euler, FVSolver, NavierStokes, conserved
from ledmus.surrogates.closure.petsc_fv import make_fv_solver, petsc_backend_available

MODEL = Path(__file__).resolve().parents[1] / "models" / "closure_bgk.pt"
needs_petsc = pytest.mark.skipif(
    petsc_backend_available() is not None, reason=str(petsc_backend_available())
)
_NET: list = []

# (closure, bc, solver options, duration, fixed dt) per case; dt None: adaptive
CASES = {
    "euler_sod_outflow": (
        "euler",
        "outflow",
        {"reconstruction": "characteristic", "limiter": "mc"},
        0.1,
        None,
    ),  # fmt: skip
    "euler_sod_outflow_fixed_dt": ("euler", "outflow", {"time_stepper": "ssprk2"}, 0.06, 0.002),
    "ns_periodic": ("ns", "periodic", {"riemann": "rusanov"}, 0.05, None),
    "ns_periodic_fixed_dt": ("ns", "periodic", {"time_stepper": "ssprk2"}, 0.012, 0.0004),
    "ml_eps0.01": ("ml0.01", "periodic", {}, 0.02, None),
    "ml_eps0.01_fixed_dt": ("ml0.01", "periodic", {}, 0.01, 0.001),
    "ml_eps1": ("ml1", "periodic", {}, 0.03, None),
    "ml_eps1_fixed_dt": ("ml1", "periodic", {"time_stepper": "ssprk2"}, 0.02, 0.002),
}


def case(name: str, nx: int):
    """``(closure, Q0 (2, n, nx), solver keywords, duration, dt)`` of :data:`CASES`:
    two members, Sod-like jumps (outflow) or smooth waves with, for the ML closure,
    a nonequilibrium ``ρW`` (periodic)."""
    kind, bc, opts, duration, dt = CASES[name]
    x = (np.arange(nx) + 0.5) / nx
    if bc == "outflow":  # Sod (γ = 3) and a moving jump at x = 0.3
        rho = np.stack([np.where(x < 0.5, 1.0, 0.125), np.where(x < 0.3, 1.0, 0.5)])
        u = np.stack([0 * x, np.where(x < 0.3, 0.5, 0.0)])
        T = np.stack([np.where(x < 0.5, 1.0, 0.8), np.where(x < 0.3, 1.0, 1.6)])
    else:
        rho = np.stack([1 + 0.2 * np.sin(2 * np.pi * x), 1 + 0.3 * np.cos(4 * np.pi * x)])
        u = np.stack([0.1 * np.sin(2 * np.pi * x + 1), 0.2 * np.cos(2 * np.pi * x)])
        T = np.stack([1 + 0.2 * np.cos(2 * np.pi * x), 1 - 0.3 * np.sin(2 * np.pi * x)])
    if kind == "euler":
        return Euler(), conserved(rho, u, T), {"bc": bc, **opts}, duration, dt
    if kind == "ns":
        return NavierStokes([0.01, 0.05]), conserved(rho, u, T), {"bc": bc, **opts}, duration, dt
    import torch

    from ledmus.surrogates.checkpoint import load_model
    from ledmus.surrogates.closure.ml import MLMomentClosure

    torch.set_num_threads(1)
    if not _NET:
        _NET.append(load_model(MODEL)[0])
    net = _NET[0]
    W = 0.02 * np.stack([np.sin(2 * np.pi * (k + 1) * x + k) for k in range(net.M)])
    closure = MLMomentClosure(net, float(kind[2:]), bc=bc)
    return closure, conserved(rho, u, T, W[None] * rho[:, None]), {"bc": bc, **opts}, duration, dt


def rel_diff(a: np.ndarray, b: np.ndarray) -> float:
    """``max |a - b| / max |a|``."""
    return float(np.abs(a - b).max() / np.abs(a).max())


@needs_petsc
@pytest.mark.parametrize("name", ["euler_sod_outflow", "ns_periodic_fixed_dt", "ml_eps0.01"])
def test_petsc_backend_equals_numpy_on_one_rank(name):
    closure, Q0, kw, duration, dt = case(name, 40)
    ref, sol = FVSolver(closure, nx=40, **kw), make_fv_solver(closure, backend="petsc", nx=40, **kw)
    assert sol.dt_max(Q0) == ref.dt_max(Q0)  # the same reduction of the same numbers
    # the spatial operator is numpy's own; measured 0 (the ML net sees 2 more cells)
    assert rel_diff(ref.rhs(Q0), sol.rhs(Q0)) < 1e-14
    full = sol.advance(Q0, duration, dt=dt)
    # TS stages sum in another order than numpy's Shu-Osher form: measured 1.5e-15
    assert rel_diff(ref.advance(Q0, duration, dt=dt), full) < 1e-12
    t, states = sol.rollout(Q0, duration, duration / 2, dt=dt)
    _, ref_states = ref.rollout(Q0, duration, duration / 2, dt=dt)
    assert states.shape == (2, 3, *Q0.shape[1:]) and rel_diff(ref_states, states) < 1e-12
    slab = sol.advance(Q0, duration, dt=dt, gather=False)
    assert sol.owned == slice(0, 40) and np.array_equal(slab, full)


@needs_petsc
def test_petsc_backend_conserves_mass_momentum_energy_on_a_periodic_box():
    closure, Q0, kw, _, _ = case("ns_periodic", 32)
    sol = make_fv_solver(closure, backend="petsc", nx=32, **kw)
    Q = sol.advance(Q0, 0.2)
    drift = np.abs(Q[:, :3].sum(-1) - Q0[:, :3].sum(-1)) / np.abs(Q0[:, :3]).sum(-1)
    # flux differences telescope: only summation rounding, measured 3.3e-16 (56 steps)
    assert drift.max() < 1e-13


@needs_petsc
def test_petsc_step_errors_match_numpy():
    closure, Q0, kw, _, _ = case("euler_sod_outflow", 16)
    sol = make_fv_solver(closure, backend="petsc", nx=16, **kw)
    with pytest.raises(ValueError, match="dt=0.5 exceeds the stability bound"):
        sol.advance(Q0, 1.0, dt=0.5)
    with pytest.raises(ValueError, match="not a multiple of dt"):
        sol.advance(Q0, 0.1, dt=0.03)
    with pytest.raises(ValueError, match="U must have shape"):
        sol.advance(Q0[:, :, :8], 0.1)


@needs_petsc
def test_ssprk3_without_a_registrable_tableau_names_the_allowed_stepper(monkeypatch):
    from ledmus.surrogates.closure import petsc_fv

    monkeypatch.setitem(petsc_fv._registered, petsc_fv.SSPRK3_NAME, "simulated")
    with pytest.raises(ValueError, match=r"ssprk3.*simulated.*allowed: ssprk2"):
        make_fv_solver(Euler(), backend="petsc", nx=16, time_stepper="ssprk3")
    assert make_fv_solver(Euler(), backend="petsc", nx=16, time_stepper="ssprk2")


def test_unknown_backend_lists_the_allowed_ones():
    with pytest.raises(ValueError, match="unknown backend 'cuda'; allowed: numpy, petsc"):
        make_fv_solver(Euler(), backend="cuda", nx=16)
    assert type(make_fv_solver(Euler(), nx=16)) is FVSolver


def test_missing_petsc4py_names_the_petsc_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "petsc4py", None)  # import petsc4py -> ImportError
    assert "petsc extra" in petsc_backend_available()
    with pytest.raises(ValueError, match="backend='petsc': petsc4py is not installed.*petsc extra"):
        make_fv_solver(Euler(), backend="petsc", nx=16)
