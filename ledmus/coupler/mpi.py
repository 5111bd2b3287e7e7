"""MPI helpers: splitting an ensemble or a particle set over ranks, and the
permutation-invariant restriction of distributed particles.

With particles split over ranks, ``z = g(mean_i phi(x_i))`` needs only the per-rank sums
``sum_{i on rank} phi(x_i)``: one ``Allreduce`` of a ``(B, T, d_p)`` array, whatever the
number of particles.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ..surrogates.led import LED


def split_slice(n: int, rank: int, size: int) -> slice:
    """Contiguous block of ``range(n)`` owned by ``rank`` (as ``numpy.array_split``)."""
    base, extra = divmod(n, size)
    start = rank * base + min(rank, extra)
    return slice(start, start + base + (1 if rank < extra else 0))


@torch.no_grad()
def distributed_encode(model: LED, local: np.ndarray, n_total: int, comm: Any) -> np.ndarray:
    """Latents ``(..., d_z)`` of particle states whose particles are split over the ranks
    of ``comm``: ``local`` ``(..., N_rank, d)`` holds this rank's particles, ``n_total``
    the particle count of the whole state.  Equals ``model.encode`` of the full state."""
    from mpi4py import MPI

    if not model.particles:
        raise ValueError("distributed_encode needs a particle (permutation-invariant) model")
    encoder = model.autoencoder.encoder
    x = model.scaler.transform(model.as_tensor(local))
    part = encoder.phi(x).sum(dim=-2).cpu().double().numpy()
    total = np.empty_like(part)
    comm.Allreduce(part, total, op=MPI.SUM)
    out = encoder.g(torch.as_tensor(total / n_total).to(model.device, model.dtype))
    if model.autoencoder.variational:
        out = out.chunk(2, dim=-1)[0]
    return out.cpu().numpy()


LAZY_TAG = 7301


def lazy_bcast(comm: Any, obj: Any = None, poll_s: float = 1e-3) -> Any:
    """``comm.bcast(obj, root=0)`` whose waiting ranks sleep between polls.

    MPICH's blocking collectives spin; a component's worker ranks wait most of the run
    for rank 0 (which waits for MUSCLE3), and spinning would take the cores the other
    components need.  Rank 0 sends point-to-point; the others poll ``Iprobe``.
    """
    import time

    if comm.Get_rank() == 0:
        for dest in range(1, comm.Get_size()):
            comm.send(obj, dest=dest, tag=LAZY_TAG)
        return obj
    while not comm.Iprobe(source=0, tag=LAZY_TAG):
        time.sleep(poll_s)
    return comm.recv(source=0, tag=LAZY_TAG)
