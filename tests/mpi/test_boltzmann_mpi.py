"""MPI: the Boltzmann solver's cells split over ranks (contiguous blocks, a two-cell halo
exchanged per transport stage) give the one-process run on the whole domain.

Run with ``PATH=.venv/bin:$PATH mpiexec -n 2 python -m pytest --with-mpi
tests/mpi/test_boltzmann_mpi.py`` (pytest-mpi).  Every rank also runs the one-process
solver; each metric is reduced over the ranks (or computed on rank 0 and broadcast)
before it is asserted, so all ranks pass or fail together.  ``nx = 21`` splits unevenly
(11 + 10 cells on 2 ranks); the Knudsen number varies per cell.  The 3-D-velocity solver
(:class:`~ledmus.solvers.boltzmann3d.Boltzmann3D`) inherits the split: the last tests run
it the same way and check that the ranks agree on its collision settings."""

from __future__ import annotations

import functools
import re
from collections.abc import Callable

import numpy as np
import pytest
import torch

from ledmus.solvers.boltzmann import Boltzmann
from ledmus.solvers.boltzmann3d import Boltzmann3D

NX, N, T_END = 21, 12, 0.03  # dt = 2.5e-3: 12 ARS(2,2,2) steps, 24 halo exchanges
#: boundary condition -> (initial condition, per-cell eps)
CASES = {
    "outflow": ("sod", "transition"),  # eps from 1e-3 to 10
    "periodic": ("waves", np.geomspace(1e-3, 1.0, NX)),
    "specular": ("colliding", 0.05 * (1.5 + np.sin(2 * np.pi * np.arange(NX) / NX))),
}
#: a split run does the same arithmetic per cell as one process; only the batched matrix
#: products (moments) and FFTs over 11 or 10 cells instead of 21 round differently in the
#: last bits (an even split, nx = 20, measured bitwise equal).  Measured max |split -
#: serial| / max f on 2 ranks: outflow 5.9e-15, periodic 3.4e-15, specular 5.9e-16.  A
#: wrong halo changes f by O(dt/dx * jump): the planted faults (zero, one-cell, stale,
#: reordered or boundary-condition ghosts at the rank edge, no periodic wrap, unsliced
#: eps) measured 9e-3 to 0.39; 1e-12 is far from both.
TOL = 1e-12


def comm():
    from mpi4py import MPI

    return MPI.COMM_WORLD


def worst(x: float) -> float:
    """The largest ``x`` over the ranks (every rank gets it)."""
    from mpi4py import MPI

    return comm().allreduce(float(x), op=MPI.MAX)


def on_all(ok: bool) -> bool:
    """Whether ``ok`` holds on every rank (every rank gets the answer)."""
    return worst(0.0 if ok else 1.0) == 0.0


def raised(make: Callable[[], object]) -> list[str]:
    """The ``ValueError`` message of ``make()`` on each rank ("" where none was raised)."""
    try:
        make()
    except ValueError as e:
        return comm().allgather(str(e))
    return comm().allgather("")


def solver(bc: str, split: bool) -> Boltzmann:
    eps = CASES[bc][1]
    return Boltzmann(nx=NX, N=N, bc=bc, eps=eps, dt_coarse=0.01, comm=comm() if split else None)


@functools.cache
def runs(bc: str) -> tuple[Boltzmann, np.ndarray, np.ndarray]:
    """``(split solver, its local states, the serial states (B, T, N*N, NX))``: the
    global initial condition on rank 0 scattered, run split and run on one process."""
    torch.set_num_threads(1)
    ic = CASES[bc][0]
    s, ref = solver(bc, True), solver(bc, False)
    f0 = ref.initial_condition(ic, 2, np.random.default_rng(4))
    local0 = s.scatter_cells(f0 if comm().Get_rank() == 0 else None)
    _, local = s.rollout(local0, T_END)
    _, serial = ref.rollout(f0, T_END)
    return s, local, serial


@pytest.mark.mpi(min_size=2)
@pytest.mark.parametrize("bc", list(CASES))
def test_split_run_equals_the_one_process_run(bc):
    s, local, serial = runs(bc)
    sizes = comm().allgather(s.nx)
    assert on_all(s.nx_global == NX and local.shape == (2, 4, N * N, s.nx)) and sum(sizes) == NX
    whole = s.gather_cells(local)
    err = None
    if comm().Get_rank() == 0:
        err = float(np.abs(whole - serial).max() / np.abs(serial).max())
        print(f"\n{bc}: max |split - serial| / max f = {err:.2g}")
    assert on_all(whole is None or whole.shape == serial.shape)
    assert on_all(comm().Get_rank() == 0 or whole is None)
    assert comm().bcast(err, root=0) <= TOL
    # every rank gets the same global field from allgather_cells
    everywhere = s.allgather_cells(local)
    assert worst(np.abs(everywhere - serial).max() / np.abs(serial).max()) <= TOL


@pytest.mark.mpi(min_size=2)
@pytest.mark.parametrize("bc", list(CASES))
def test_split_totals_equal_the_serial_totals(bc):
    """Domain totals of mass, momentum (x, y) and energy: per-rank sums, Allreduce."""
    from mpi4py import MPI

    s, local, serial = runs(bc)
    part = s.dx * s.moments(local).sum(axis=-1)  # (B, T, 4) over this rank's cells
    total = np.empty_like(part)
    comm().Allreduce(part, total, op=MPI.SUM)
    expect = s.dx * s.moments(serial).sum(axis=-1)
    # summed in two parts instead of one: reassociation of 21 terms; measured <= 4.1e-16
    assert worst(np.abs(total - expect).max() / np.abs(expect).max()) <= 1e-13
    if bc == "periodic":  # and they are conserved: all four
        assert worst(np.abs(total - total[:, :1]).max() / np.abs(total).max()) <= 1e-12


@pytest.mark.mpi(min_size=2)
def test_named_initial_condition_is_the_block_of_the_global_one():
    # drawn on the global cells and sliced: the same random fields ("shocks" scales its
    # waves by their maximum over all cells: drawn on a block alone they would differ);
    # the Maxwellians of 11 or 10 cells round as above (measured 2.4e-21 of max f)
    s, ref = solver("periodic", True), solver("periodic", False)
    a = s.initial_condition("shocks", 3, np.random.default_rng(9))
    b = ref.initial_condition("shocks", 3, np.random.default_rng(9))[..., s.cells]
    assert on_all(a.shape == b.shape == (3, N * N, s.nx))
    assert on_all(np.array_equal(s.x, ref.x[s.cells]))
    assert on_all(np.array_equal(s.eps_cells, ref.eps_cells[s.cells]))
    assert worst(np.abs(a - b).max() / b.max()) <= TOL
    assert on_all(s.params() == ref.params())  # the settings are global


@pytest.mark.mpi(min_size=2)
def test_bad_split_raises_the_same_error_on_every_rank():
    size, rank = comm().Get_size(), comm().Get_rank()
    nx = max(3, 2 * size - 1)  # a rank would hold fewer than 2 cells (or nx < 4)
    cases = [
        (lambda: Boltzmann(nx=nx, N=8, comm=comm()),
         rf"nx={nx} cannot be split over {size} MPI ranks; allowed: nx >= max\(4, 2 \* ranks\) = {max(4, 2 * size)}"),
        (lambda: Boltzmann(nx=16 + rank, N=8, comm=comm()), "nx differs between the ranks"),
        (lambda: Boltzmann(nx=16, N=8, eps=0.01 * (1 + rank), comm=comm()),
         "eps differ between the ranks"),
        (lambda: Boltzmann(nx=16, N=8, comm=comm()).scatter_cells(np.ones((1, 64, 8)) if rank == 0 else None),
         r"scatter_cells: a on rank 0 has shape \(1, 64, 8\); allowed: \(\.\.\., nx\) with nx=16"),
    ]  # fmt: skip
    for make, pattern in cases:
        messages = raised(make)
        assert all(re.search(pattern, m) for m in messages), messages


# ------------------------------------------------------------ 3-D velocity space
#: boundary condition -> initial condition of the 3-D runs (N = 12, 8 directions; eps as
#: CASES); N = 8 is too coarse for the sod and shocks data (h = 2.2: NaN in a few steps)
CASES_3D = {"outflow": "sod", "specular": "colliding"}


def solver_3d(bc: str, split: bool, **kw) -> Boltzmann3D:
    eps = CASES[bc][1]
    return Boltzmann3D(
        nx=NX, N=N, bc=bc, eps=eps, dt_coarse=0.01, comm=comm() if split else None, **kw
    )


@pytest.mark.mpi(min_size=2)
@pytest.mark.parametrize("bc", list(CASES_3D))
def test_split_3d_run_equals_the_one_process_run(bc):
    # measured max |split - serial| / max f on 2 ranks: outflow 1.1e-14, specular 7.8e-16
    # (N = 12, 4 steps to t = 0.01); the collisions' blocks and FFT batches differ
    torch.set_num_threads(1)
    s, ref = solver_3d(bc, True), solver_3d(bc, False)
    f0 = ref.initial_condition(CASES_3D[bc], 2, np.random.default_rng(4))
    local0 = s.scatter_cells(f0 if comm().Get_rank() == 0 else None)
    _, local = s.rollout(local0, 0.01)
    _, serial = ref.rollout(f0, 0.01)
    assert on_all(local.shape == (2, 2, N**3, s.nx)) and sum(comm().allgather(s.nx)) == NX
    whole = s.allgather_cells(local)
    err = np.abs(whole - serial).max() / np.abs(serial).max()
    if comm().Get_rank() == 0:
        print(f"\n3-D {bc}: max |split - serial| / max f = {err:.2g}")
    assert worst(err) <= TOL
    assert on_all(s.params() == ref.params())


@pytest.mark.mpi(min_size=2)
def test_3d_collision_settings_that_differ_raise_on_every_rank():
    rank = comm().Get_rank()
    for kw, name in (
        ({"equilibrium_preserving": rank == 0}, "equilibrium_preserving"),
        ({"n_directions": 1 + rank}, "n_directions"),
        ({"conservative": rank == 0}, "conservative"),
    ):
        messages = raised(lambda kw=kw: Boltzmann3D(nx=16, N=8, comm=comm(), **kw))
        pattern = rf"^{name} differ between the ranks of comm; allowed: every rank constructs "
        assert all(re.search(pattern + "Boltzmann3D", m) for m in messages), messages
    # the 2-D solver's settings are still checked (after the 3-D ones)
    messages = raised(lambda: Boltzmann3D(nx=16, N=8, eps=0.01 * (1 + rank), comm=comm()))
    assert all("eps differ between the ranks" in m for m in messages), messages
