"""Runs of cells of a larger domain, advanced with given ghost cells: what the cell-local
hybrid asks of a kinetic solver (:mod:`ledmus.coupler.hybrid`).

:class:`CellWindows` gives a solver with an ``advance_runs(runs, duration, *, cells)``
its one-run form :meth:`~CellWindows.advance_cells`; :func:`check_run` and
:func:`check_ghosts` are the argument checks every such method shares (BGK, Boltzmann
and the moment closure's finite volumes); ``ARS_G`` and ``ARS_D`` the coefficients of
the IMEX Runge–Kutta ARS(2,2,2) step both the Boltzmann solver and the closure take.
Neither solvers nor surrogates, so both import it (the surrogates import no solver).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

#: ARS(2,2,2) (Ascher, Ruuth & Spiteri 1997): ``g = 1 - 1/√2``, ``d = 1 - 1/(2g)``
ARS_G = 1.0 - 1.0 / math.sqrt(2.0)
ARS_D = 1.0 - 1.0 / (2.0 * ARS_G)


def check_ghosts(shape: tuple[int, ...], left: Any, right: Any, bc: str) -> None:
    """``ValueError`` unless a periodic box gives both ghost ends or neither and each given
    end is two arrays ``(B, C, 2)`` (``shape``: ``(B, C)`` of the run)."""
    if bc == "periodic" and (left is None) != (right is None):
        raise ValueError("periodic bc: give both ghost ends or neither (the whole box)")
    ghost = (*shape, 2)
    for name, g in (("left", left), ("right", right)):
        if g is not None and (len(g) != 2 or any(np.shape(a) != ghost for a in g)):
            raise ValueError(f"{name} ghosts must be two arrays {ghost}")


def check_run(f: Any, left: Any, right: Any, *, nv: int, nx: int, bc: str) -> np.ndarray:
    """A kinetic solver's run ``f`` ``(B, nv, m)`` as float64, checked with its ghosts:
    ``ValueError`` naming what does not fit (a periodic run without ghosts must be the
    whole box of ``nx`` cells)."""
    f = np.asarray(f, dtype=np.float64)
    if f.ndim != 3 or f.shape[1] != nv or f.shape[2] < 1:
        raise ValueError(f"f must have shape (B, {nv}, m), got {f.shape}")
    if bc == "periodic" and left is None and right is None and f.shape[2] != nx:
        raise ValueError(f"periodic bc without ghosts needs all nx={nx} cells")
    check_ghosts(f.shape[:2], left, right, bc)
    return f


class CellWindows:
    """:meth:`advance_cells` for a solver with ``advance_runs``."""

    def advance_cells(
        self,
        f: np.ndarray,
        duration: float,
        *,
        left: tuple[np.ndarray, np.ndarray] | None = None,
        right: tuple[np.ndarray, np.ndarray] | None = None,
        cells: Any = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Advance the ``m`` contiguous cells ``f`` ``(B, nv, m)`` of a larger domain over
        ``duration`` (a multiple of ``dt``) with their neighbours as ghost cells: ``left``
        and ``right`` are ``(g0, g1)``, the two cells ``(B, nv, 2)`` beyond each end (in
        ``x`` order) at the start and at the end of ``duration``, linear in time between
        (each stage takes them at its own time); ``None``: a domain end, filled by ``bc``
        (``periodic`` needs both ends ``None`` and the cells the whole box).  ``cells``:
        the indices of the ``m`` cells in the solver's grid (for a parameter per cell;
        default: the first ``m``).  The cell-local hybrid runs its kinetic cells this way
        (``advance_runs``: several at once).

        Returns ``(f_new, phi)``: ``phi`` ``(B, 3, 2)`` the moments ``∫ F dt`` of the face
        fluxes through the left and the right end face (mass, momentum, energy flux,
        positive in ``+x``) integrated over ``duration`` with the scheme's stage weights,
        so that ``Σ_cells U dx`` changed by exactly ``phi[..., 0] - phi[..., 1]`` (to
        rounding) and a neighbour that uses ``phi`` as its face flux conserves with it.
        """
        runs = [(f, left, right)]
        return self.advance_runs(runs, duration, cells=[cells])[0]  # type: ignore[attr-defined]


__all__ = ["ARS_D", "ARS_G", "CellWindows", "check_ghosts", "check_run"]
