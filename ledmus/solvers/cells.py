"""Cells of a 1-D-in-x solver split over MPI ranks: contiguous blocks, a two-cell halo.

Rank ``r`` of ``P`` owns the contiguous block :func:`split_slice` ``(nx, r, P)`` of the
``nx`` global cells (``numpy.array_split`` sizes: the first ``nx mod P`` ranks hold one
cell more).  :class:`CellSplit` moves arrays ``(..., nx)`` between the global domain and
the blocks (``Scatterv``, ``Gatherv``, ``Allgatherv``) and exchanges the two edge cells
with the neighbouring ranks (``Sendrecv``); a periodic domain wraps the first and last
rank.  mpi4py is imported only where a communicator is used.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .base import check_int


def split_slice(n: int, rank: int, size: int) -> slice:
    """Contiguous block of ``range(n)`` owned by ``rank`` (as ``numpy.array_split``)."""
    base, extra = divmod(n, size)
    start = rank * base + min(rank, extra)
    return slice(start, start + base + (1 if rank < extra else 0))


def checked_cells(comm: Any, nx: Any) -> int:
    """``nx`` checked on every rank of ``comm`` together (collective): the same value on
    every rank, an integer ``>= max(4, 2 * ranks)``; else the same ``ValueError`` on
    every rank."""
    if not all(hasattr(comm, a) for a in ("Get_rank", "Get_size", "allgather", "Sendrecv")):
        raise ValueError(f"comm must be an mpi4py communicator or None, got {comm!r}")
    every = comm.allgather(repr(nx))
    if any(v != every[0] for v in every):
        raise ValueError(
            f"nx differs between the ranks of comm ({every}); allowed: the same number of "
            "global cells on every rank"
        )
    n = check_int("nx", nx, minimum=1)
    size = comm.Get_size()
    if n < max(4, 2 * size):
        raise ValueError(
            f"nx={n} cannot be split over {size} MPI ranks; allowed: nx >= max(4, 2 * ranks) "
            f"= {max(4, 2 * size)} (contiguous blocks of at least 2 cells per rank, the width "
            "of the two-cell halo)"
        )
    return n


class CellSplit:
    """This rank's block of ``nx_global`` cells (``comm`` None: one rank holding all).

    Attributes: ``comm``, ``rank``, ``size``, ``nx_global``, ``counts`` (cells per rank),
    ``cells`` (this rank's slice of the global cells), ``nx`` (its cell count)."""

    def __init__(self, comm: Any, nx_global: int, periodic: bool) -> None:
        self.comm, self.nx_global = comm, nx_global
        self.rank, self.size = (0, 1) if comm is None else (comm.Get_rank(), comm.Get_size())
        blocks = [split_slice(nx_global, r, self.size) for r in range(self.size)]
        self.counts = [b.stop - b.start for b in blocks]
        self.cells = blocks[self.rank]
        self.nx = self.counts[self.rank]
        self.left = self.right = None  # neighbouring ranks of the halo (None: a boundary)
        if comm is not None:
            wrap, last = periodic, self.size - 1
            self.left = (self.rank - 1) % self.size if wrap or self.rank > 0 else None
            self.right = (self.rank + 1) % self.size if wrap or self.rank < last else None

    def _check(self, shape: tuple[int, ...], n: int, what: str) -> None:
        if not shape or shape[-1] != n:
            raise ValueError(f"{what} must be an array (..., nx) with nx={n} cells, got {shape}")

    def _displacements(self, m: int) -> list:
        counts = [c * m for c in self.counts]
        return [counts, list(np.cumsum([0, *counts[:-1]]))]

    def scatter(self, a: Any, root: int = 0) -> np.ndarray:
        """This rank's block ``a[..., cells]`` (float64) of a global array ``a`` ``(...,
        nx_global)`` given on ``root`` (the other ranks may pass None); collective.
        Without ``comm``: a float64 copy of ``a``."""
        if self.comm is None:
            a = np.array(a, dtype=np.float64)
            self._check(a.shape, self.nx, "scatter_cells: a")
            return a
        from mpi4py import MPI

        head: Any = None
        if self.rank == root:
            a = np.asarray(a, dtype=np.float64)
            head = a.shape
            if not a.shape or a.shape[-1] != self.nx_global:
                head = (
                    f"scatter_cells: a on rank {root} has shape {a.shape}; allowed: (..., nx) "
                    f"with nx={self.nx_global} (the global cells)"
                )
        head = self.comm.bcast(head, root=root)
        if isinstance(head, str):
            raise ValueError(head)
        lead = tuple(head[:-1])
        send = None
        if self.rank == root:  # cells first: each rank's block is contiguous
            flat = np.ascontiguousarray(np.moveaxis(a, -1, 0))
            send = [flat, *self._displacements(math.prod(lead)), MPI.DOUBLE]
        out = np.empty((self.nx, *lead))
        self.comm.Scatterv(send, out, root=root)
        return np.ascontiguousarray(np.moveaxis(out, 0, -1))

    def gather(self, a: Any, root: int | None = 0) -> np.ndarray | None:
        """The global array ``(..., nx_global)`` (float64) from every rank's block ``a``
        ``(..., nx)`` (same leading axes on every rank): on ``root``, None on the other
        ranks; ``root=None``: on every rank.  Collective.  Without ``comm``: a float64
        copy of ``a``."""
        a = np.asarray(a, dtype=np.float64)
        if self.comm is None:
            self._check(a.shape, self.nx, "a")
            return a.copy()
        from mpi4py import MPI

        shapes = self.comm.allgather(a.shape)
        lead = tuple(shapes[0][:-1])
        if any(
            not s or s[:-1] != lead or s[-1] != n for s, n in zip(shapes, self.counts, strict=True)
        ):
            raise ValueError(
                f"the blocks to gather must be (..., nx) with the same leading axes on every "
                f"rank and nx = the rank's cells {self.counts}; got shapes {shapes}"
            )
        full = np.empty((self.nx_global, *lead)) if root in (None, self.rank) else None
        recv = None if full is None else [full, *self._displacements(math.prod(lead)), MPI.DOUBLE]
        send = np.ascontiguousarray(np.moveaxis(a, -1, 0))
        if root is None:
            self.comm.Allgatherv(send, recv)
        else:
            self.comm.Gatherv(send, recv, root=root)
        return None if full is None else np.ascontiguousarray(np.moveaxis(full, 0, -1))

    def exchange(
        self, first: np.ndarray, last: np.ndarray
    ) -> tuple[np.ndarray | None, np.ndarray | None]:
        """Send this block's ``first`` and ``last`` edge cells to the neighbours; returns
        the left neighbour's last cells and the right neighbour's first cells (None at a
        boundary of the global domain).  Collective between neighbours."""
        from mpi4py import MPI

        first, last = np.ascontiguousarray(first), np.ascontiguousarray(last)
        null = MPI.PROC_NULL
        left = null if self.left is None else self.left
        right = null if self.right is None else self.right
        from_left, from_right = np.empty_like(last), np.empty_like(first)
        # rightward: my last cells are the right neighbour's left ghosts; then leftward
        self.comm.Sendrecv(last, right, 1, from_left, left, 1)
        self.comm.Sendrecv(first, left, 2, from_right, right, 2)
        return (
            None if self.left is None else from_left,
            None if self.right is None else from_right,
        )
