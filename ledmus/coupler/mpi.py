"""MPI helpers: the pooled restriction of particles split over ranks
(:func:`ledmus.solvers.cells.split_slice` gives each rank its block of members or
particles), and a bcast whose waiting ranks sleep.

With particles split over ranks, ``z = g(mean_i phi(x_i))`` needs only the per-rank sums
``sum_{i on rank} phi(x_i)``: one ``Allreduce`` of a ``(B, T, d_p)`` array, whatever the
number of particles.
"""

from __future__ import annotations

import os
import time
from typing import Any

import numpy as np

from ..surrogates.macro import MacroModel

#: environment variables a launcher sets to the number of processes (MPICH/Hydra, Open MPI)
_SIZE_VARIABLES = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MPI_LOCALNRANKS")
#: ... and to this process's rank
_RANK_VARIABLES = ("PMI_RANK", "OMPI_COMM_WORLD_RANK")


def _launcher_value(names: tuple[str, ...], default: int) -> int:
    values = [int(os.environ[k]) for k in names if os.environ.get(k, "").isdigit()]
    return max(values) if values else default


def launcher_size() -> int:
    """The number of processes ``mpiexec``/``mpirun`` started, from its environment (1
    without a launcher); mpi4py is not imported."""
    return _launcher_value(_SIZE_VARIABLES, 1)


def launcher_rank() -> int:
    """This process's rank from the launcher's environment (0 without a launcher)."""
    return _launcher_value(_RANK_VARIABLES, 0)


def world_comm() -> Any:
    """``MPI.COMM_WORLD`` when this process was started by ``mpiexec``/``mpirun`` with
    more than one process, else None (mpi4py is then not even imported)."""
    if launcher_size() <= 1:
        return None
    from mpi4py import MPI

    return MPI.COMM_WORLD if MPI.COMM_WORLD.Get_size() > 1 else None


def distributed_restrict(
    model: MacroModel, local: np.ndarray, n_total: int, comm: Any
) -> np.ndarray:
    """Macro states ``(..., d)`` of particle states whose particles are split over the
    ranks of ``comm``: ``local`` ``(..., N_rank, d_x)`` holds this rank's particles,
    ``n_total`` the particle count of the whole state.  Equals ``model.restrict`` of the
    full state (to float rounding of the sum)."""
    from mpi4py import MPI

    if not model.pooled:
        raise ValueError("distributed_restrict needs a model with a pooled restriction")
    part = model.pool_features(local)
    total = np.empty_like(part)
    comm.Allreduce(part, total, op=MPI.SUM)
    return model.restrict_pooled(total / n_total)


LAZY_TAG = 7301


def lazy_bcast(comm: Any, obj: Any = None, poll_s: float = 1e-3) -> Any:
    """``comm.bcast(obj, root=0)`` whose waiting ranks sleep between polls.

    MPICH's blocking collectives spin; a component's worker ranks wait most of the run
    for rank 0 (which waits for MUSCLE3), and spinning would take the cores the other
    components need.  Rank 0 sends point-to-point; the others poll ``Iprobe``.
    """
    if comm.Get_rank() == 0:
        for dest in range(1, comm.Get_size()):
            comm.send(obj, dest=dest, tag=LAZY_TAG)
        return obj
    while not comm.Iprobe(source=0, tag=LAZY_TAG):
        time.sleep(poll_s)
    return comm.recv(source=0, tag=LAZY_TAG)
