"""Moment-closure macro models of the 1V BGK kinetic model (W. E, "Machine learning based
multi-scale modeling: how can we construct interpretable and truly reliable models using
concurrent learning?", lecture, §5).

- :mod:`.fv`: conservative second-order finite-volume solver :class:`FVSolver` for
  ``∂tU + ∂x[F0(U) + F̃] = 0``, ``∂tW + ∂xG = R`` with a pluggable
  :class:`MomentClosure` (the interface a learned closure implements).
- :mod:`.classical`: :class:`Euler` (``q = 0``), :class:`NavierStokes` (Chapman–Enskog
  ``q = -(3/2) τ ρ T ∂xT`` of the 1V BGK model) and :class:`NavierStokes2V` (the
  2-D-velocity Boltzmann gas: viscous stress and heat flux).
- :mod:`.riemann`: exact Riemann solver of the Euler equations for any γ.
- :mod:`.petsc_fv` (the ``petsc`` extra, imported lazily): :class:`PetscFVSolver`, the
  same solver on a PETSc DMDA over MPI ranks with PETSc TS steps;
  :func:`make_fv_solver` picks ``backend="numpy"`` or ``"petsc"``.
- :mod:`.ml` (torch, import it explicitly; importing it registers the
  checkpoint kind ``closure``): the machine-learned moment closure
  :class:`~.ml.MomentNet` and its :class:`~.ml.MLMomentClosure` adapter;
  :mod:`.train`: :func:`~.train.train_closure` on in-process BGK data.
- :mod:`.lift` (torch): the decoder ``h(v; U, W)`` (:class:`~.lift.MomentDecoder`,
  checkpoint kind ``closure_decoder``), ``lift`` (moments -> f, positive and
  conservative) and ``restrict`` (f -> moments).
- :mod:`.evaluate`: the acceptance protocol against BGK (``ledmus evaluate``).
- :mod:`.boltzmann_ml` (torch): the closure of the 2-D-velocity Boltzmann gas
  (Galilean-invariant moments, checkpoint kind ``closure_boltzmann``) and
  :class:`~.classical.NavierStokes2V`; :mod:`.train_boltzmann` trains it on a
  ``ledmus dataset boltzmann`` split, :mod:`.evaluate_boltzmann` is its acceptance
  protocol against the Boltzmann solver.

Numpy only (no torch import here).
"""

from .classical import KAPPA_COEFF, Euler, NavierStokes, NavierStokes2V
from .fv import (
    FVSolver,
    MomentClosure,
    check_state,
    conserved,
    euler_flux,
    primitive,
)
from .petsc_fv import PetscFVSolver, make_fv_solver, petsc_backend_available
from .riemann import StarState, exact_solution, sample, star_state

__all__ = [
    "KAPPA_COEFF",
    "Euler",
    "FVSolver",
    "MomentClosure",
    "NavierStokes",
    "NavierStokes2V",
    "PetscFVSolver",
    "StarState",
    "check_state",
    "conserved",
    "euler_flux",
    "exact_solution",
    "make_fv_solver",
    "petsc_backend_available",
    "primitive",
    "sample",
    "star_state",
]
