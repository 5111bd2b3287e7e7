"""Shared by the PETSc tests under MPI: the world communicator and the skip marker
(petsc4py absent, or PETSc built without MPI for this many ranks)."""

from __future__ import annotations

import pytest

from ledmus.surrogates.closure.petsc_fv import petsc_backend_available


def comm():
    from mpi4py import MPI

    return MPI.COMM_WORLD


def n_ranks() -> int:
    try:
        return comm().Get_size()
    except ImportError:
        return 1


WHY = petsc_backend_available(n_ranks())
#: ``pytestmark = needs_petsc`` in a test module
needs_petsc = pytest.mark.skipif(WHY is not None, reason=f"PETSc backend unavailable: {WHY}")
