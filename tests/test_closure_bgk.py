"""The classical closures against the BGK micro solver (issue 10 item 2): at small
Knudsen number the Navier-Stokes closure with the BGK Chapman-Enskog heat flux is closer
to the kinetic solution than Euler; at kn = 0.1 it is not (the expansion breaks down)."""

from __future__ import annotations

import numpy as np
import pytest

from ledmus import solvers
from ledmus.surrogates.closure import Euler, FVSolver, NavierStokes
from ledmus.surrogates.closure.fv import conserved, primitive

NX = 64


def errors(kn: float) -> dict[str, np.ndarray]:
    """Relative L2 errors of (rho, u, T) at t = 0.1 against BGK, from a smooth periodic
    local Maxwellian (a density, velocity and temperature wave)."""
    bgk = solvers.make("bgk", kn=kn, nx=NX, bc="periodic")
    x = bgk.x
    rho = 1 + 0.2 * np.sin(2 * np.pi * x)
    u = 0.1 * np.sin(2 * np.pi * x + 1)
    T = 1 + 0.2 * np.cos(2 * np.pi * x)
    _, f = bgk.rollout(bgk.maxwellian(rho[None], u[None], T[None]), 0.1)
    ref = bgk.primitives(f[:, -1])[0]
    out = {}
    for name, closure in (("euler", Euler()), ("ns", NavierStokes(kn))):
        q = FVSolver(closure, nx=NX, bc="periodic").advance(
            conserved(rho[None], u[None], T[None]), 0.1
        )
        p = np.stack(primitive(q), axis=1)[0]
        out[name] = np.linalg.norm(p - ref, axis=-1) / np.linalg.norm(ref, axis=-1)
    return out


@pytest.mark.parametrize("kn,gain", [(1e-3, 2.0), (1e-2, 4.0)])
def test_navier_stokes_is_closer_to_bgk_than_euler_at_small_knudsen(kn, gain):
    e = errors(kn)
    # measured (rho, u, T): kn 1e-3 Euler 3.7e-4, 4.2e-3, 1.1e-3 / NS 3.3e-4, 1.2e-3, 3.8e-4;
    # kn 1e-2 Euler 9.6e-4, 3.4e-2, 9.6e-3 / NS 3.0e-4, 5.8e-3, 5.5e-4.  NS keeps the
    # scheme's own error (about 3e-4 on 64 cells), so the gain shows in u and T.
    assert (e["ns"] < e["euler"]).all()
    assert e["euler"][1] > gain * e["ns"][1]  # u: measured 3.4x and 5.9x


def test_navier_stokes_velocity_error_breaks_down_at_kn_0_1():
    e = errors(0.1)
    # measured u errors: Euler 0.115, NS 0.189 (first-order CE overshoots)
    assert e["ns"][1] > e["euler"][1]
