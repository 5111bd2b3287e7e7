"""Where the kinetic solver must run: the per-cell switching criteria of the cell-local
hybrid (:mod:`ledmus.coupler.hybrid`) and the decision from their scores.

Each criterion gives every cell a score ``s >= 0`` and is compared with its threshold
``θ`` (a setting).  A closure cell becomes a kinetic *core* cell when an *entry*
criterion reaches ``s >= θ``; a core cell stays one while any criterion keeps
``s >= h θ`` (``h`` the ``hysteresis`` factor in ``(0, 1]``: it must fall clearly below
where it came in, so that cells do not flicker).  ``noneq`` is an *exit* criterion
(Filbet & Rey 2015): it is measured on kinetic cells only and keeps a kinetic cell (core
or buffer) kinetic while ``‖f - M[f]‖₁/ρ >= θ``.  The kinetic region is the core grown
by ``buffer`` cells at each side (the hybrid makes it at least the cells a wave crosses
in one coupling step); a closure gap shorter than two cells between kinetic
cells is made kinetic too (every kinetic run then sees two closure ghost cells).

Criteria (:data:`CRITERIA`):

- ``deviation``: the ensemble deviation of the closures at the cell,
  :func:`~ledmus.surrogates.closure.learn.cell_deviation` (the concurrent-learning
  signal: the closures disagree where they were not trained);
- ``realisability``: ``inf`` where the moments admit no distribution (non-finite,
  ``ρ <= 0`` or ``T <= 0``), else 0;
- ``kn_gll``: Boyd's gradient-length Knudsen number ``λ max(|∂xρ|/ρ, |∂xT|/T,
  |∂xu|/c)`` with the mean free path ``λ`` and the sound speed ``c = √(γT)`` of the
  system (BGK: ``λ = ε √T``, ``τ = ε`` times the thermal speed, ``γ = 3``; Boltzmann:
  ``λ = (ε/ρ) √T``, the collision frequency of Maxwell molecules being ``ρ/ε``, ``γ =
  2``); centred differences (one-sided at outflow ends);
- ``jump``: the largest relative jump to a neighbouring cell, ``max(Δρ/ρ, ΔT/T, Δu/c)``
  with ``Δa = max(|a_i - a_{i-1}|, |a_{i+1} - a_i|)``, times ``min(1, λ/dx)``: a front
  that is sharp on the grid where the mean free path ``λ`` is a cell or more.  At large
  ``ε`` the kinetic solution has smooth fans where the moment system forms fronts (and
  ``kn_gll`` flags every gradient there, a smooth profile's too); where ``λ`` is well
  below a cell the kinetic shock is as thin as the moment system's;
- ``noneq`` (exit only): ``Σ_v |f - M[f]| dv / ρ`` on kinetic cells.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class CellView:
    """What the criteria look at, one state: ``Q`` ``(3+M, nx)`` the moments of every
    cell (closure cells' own, kinetic cells' restricted), ``f`` ``(nv, nx)`` valid on the
    ``kinetic`` cells ``(nx,)``, and the kinetic ``side`` (:mod:`.hybrid_systems`: the
    solver's grid, ε, the closure ensemble, ``γ``); ``cells``: which cells ``Q``'s
    columns are when it holds some of them (``deviation`` on the undecided cells)."""

    Q: np.ndarray
    f: np.ndarray
    kinetic: np.ndarray
    side: Any
    cells: np.ndarray | None = None  # the cells of Q's columns (None: every cell, in order)


@dataclass(frozen=True)
class Criterion:
    """A switching criterion: ``score(view) -> (nx,)``; ``exit_only``: it keeps kinetic
    cells kinetic but sends no closure cell to the kinetic solver."""

    name: str
    score: Callable[[CellView], np.ndarray]
    exit_only: bool = False
    doc: str = ""


CRITERIA: dict[str, Criterion] = {}


def register_criterion(criterion: Criterion) -> Criterion:
    """Add a criterion to :data:`CRITERIA` (its name must be new)."""
    if criterion.name in CRITERIA:
        raise ValueError(f"switching criterion {criterion.name!r} is already registered")
    CRITERIA[criterion.name] = criterion
    return criterion


def get_criterion(name: str) -> Criterion:
    """The criterion ``name``; ``ValueError`` listing the registered names."""
    if name not in CRITERIA:
        raise ValueError(
            f"unknown switching criterion {name!r}; allowed: {', '.join(sorted(CRITERIA))}"
        )
    return CRITERIA[name]


def _ddx(a: np.ndarray, dx: float, periodic: bool) -> np.ndarray:
    """Centred ``∂x`` of ``a`` ``(nx,)`` (periodic, or one-sided at the ends)."""
    if periodic:
        return (np.roll(a, -1) - np.roll(a, 1)) / (2.0 * dx)
    return np.gradient(a, dx)


def deviation_score(view: CellView) -> np.ndarray:
    return view.side.deviation(view.Q, view.cells)


def realisability_score(view: CellView) -> np.ndarray:
    with np.errstate(all="ignore"):
        rho, u, T = view.side.primitive(view.Q)
        ok = np.isfinite(view.Q).all(axis=0) & (rho > 0) & (T > 0)
    return np.where(ok, 0.0, np.inf)


def kn_gll_score(view: CellView) -> np.ndarray:
    side = view.side
    s = side.solver
    rho, u, T = side.primitive(view.Q)
    T = np.maximum(T, 1e-300)
    periodic = s.bc == "periodic"
    grad = np.maximum.reduce(
        [
            np.abs(_ddx(rho, s.dx, periodic)) / rho,
            np.abs(_ddx(T, s.dx, periodic)) / T,
            np.abs(_ddx(u, s.dx, periodic)) / side.sound_speed(T),
        ]
    )
    return side.mean_free_path(rho, T) * grad


def _jump(a: np.ndarray, periodic: bool) -> np.ndarray:
    """``max(|a_i - a_{i-1}|, |a_{i+1} - a_i|)`` per cell (no difference beyond an
    outflow end)."""
    p = np.pad(a, 1, mode="wrap" if periodic else "edge")
    return np.maximum(np.abs(p[1:-1] - p[:-2]), np.abs(p[2:] - p[1:-1]))


def jump_score(view: CellView) -> np.ndarray:
    side = view.side
    periodic = side.solver.bc == "periodic"
    rho, u, T = side.primitive(view.Q)
    T = np.maximum(T, 1e-300)
    jump = np.maximum.reduce(
        [
            _jump(rho, periodic) / rho,
            _jump(T, periodic) / T,
            _jump(u, periodic) / side.sound_speed(T),
        ]
    )
    return jump * np.minimum(1.0, side.mean_free_path(rho, T) / side.solver.dx)


def noneq_score(view: CellView) -> np.ndarray:
    out = np.zeros(view.kinetic.shape)
    k = np.flatnonzero(view.kinetic)
    if k.size:
        out[k] = view.side.noneq(view.f[:, k])
    return out


register_criterion(
    Criterion("deviation", deviation_score, doc="ensemble deviation of the closures")
)
register_criterion(
    Criterion("realisability", realisability_score, doc="finite moments with rho, T > 0")
)
register_criterion(Criterion("kn_gll", kn_gll_score, doc="gradient-length Knudsen number"))
register_criterion(Criterion("jump", jump_score, doc="relative jump to a neighbour cell"))
register_criterion(
    Criterion("noneq", noneq_score, exit_only=True, doc="|f - M[f]|_1 / rho (kinetic exit)")
)


# ----------------------------------------------------------------------------- decision
def grow(mask: np.ndarray, cells: int, periodic: bool) -> np.ndarray:
    """``mask`` ``(nx,)`` grown by ``cells`` cells at each side of every run."""
    out = mask.copy()
    for k in range(1, min(cells, mask.size) + 1):
        if periodic:
            out |= np.roll(mask, k) | np.roll(mask, -k)
        else:
            out[k:] |= mask[:-k]
            out[:-k] |= mask[k:]
    return out


def runs(mask: np.ndarray, periodic: bool) -> list[np.ndarray]:
    """The runs of ``True`` cells of ``mask`` ``(nx,)`` as index arrays in ``x`` order; on
    a periodic box a run may wrap (``[nx-2, nx-1, 0, 1]``); all ``True``: one run
    ``0 … nx-1``."""
    n = mask.size
    idx = np.flatnonzero(mask)
    if idx.size == 0:
        return []
    if idx.size == n:
        return [np.arange(n)]
    cuts = np.flatnonzero(np.diff(idx) > 1) + 1
    parts = np.split(idx, cuts)
    if periodic and len(parts) > 1 and parts[0][0] == 0 and parts[-1][-1] == n - 1:
        parts = [np.concatenate([parts[-1], parts[0]]), *parts[1:-1]]
    return parts


def fill_gaps(kinetic: np.ndarray, periodic: bool, shortest: int = 2) -> np.ndarray:
    """``kinetic`` with every closure run shorter than ``shortest`` cells that lies between
    kinetic cells made kinetic (a run at an outflow end stays)."""
    out = kinetic.copy()
    n = kinetic.size
    for r in runs(~kinetic, periodic):
        if r.size < shortest and (periodic or (r[0] > 0 and r[-1] < n - 1)):
            out[r] = True
    return out


def decide(
    scores: Mapping[str, np.ndarray],
    thresholds: Mapping[str, float],
    core: np.ndarray,
    kinetic: np.ndarray,
    *,
    hysteresis: float,
    buffer: int,
    periodic: bool,
) -> tuple[np.ndarray, np.ndarray]:
    """The new ``(core, kinetic)`` masks ``(nx,)`` from the criteria ``scores`` (name ->
    ``(nx,)``), their ``thresholds``, the previous ``core`` and ``kinetic`` masks, the
    ``hysteresis`` factor, the ``buffer`` width (see the module)."""
    enter = np.zeros(core.shape, dtype=bool)
    stay = np.zeros(core.shape, dtype=bool)
    keep = np.zeros(core.shape, dtype=bool)
    for name, s in scores.items():
        theta = thresholds[name]
        if get_criterion(name).exit_only:
            keep |= kinetic & (s >= theta)
        else:
            enter |= s >= theta
            stay |= s >= hysteresis * theta
    new_core = enter | (core & stay) | keep
    return new_core, fill_gaps(grow(new_core, buffer, periodic), periodic)
