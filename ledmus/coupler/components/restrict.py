"""MUSCLE3 restriction mapper: micro trajectory -> latents by the encoder.

Started with several MPI processes (``execution_model: intelmpi``) for a particle
system, rank 0 holds the Instance, the particles of every state are split over the ranks
and the permutation-invariant encoder pools them with an ``Allreduce`` of per-rank sums
(:func:`ledmus.coupler.mpi.distributed_encode`)."""

from __future__ import annotations

import time

from libmuscle import InstanceFlags, Message
from ymmsl import Operator

from ..core import Restrict
from ..engine import load
from ..mpi import distributed_encode, lazy_bcast, split_slice
from .common import mpi_comm, open_instance, received, run_guarded


def main() -> None:
    box: list = [None]
    comm = mpi_comm()
    rank = 0 if comm is None else comm.Get_rank()

    def body() -> None:
        ports = {Operator.F_INIT: ["in"], Operator.O_F: ["out"]}
        instance, settings = open_instance(
            ports, InstanceFlags.KEEPS_NO_STATE_FOR_NEXT_USE, box, comm
        )
        model = load(settings)
        restrict = Restrict(model)
        distributed = comm is not None and model.particles
        while True:
            go = instance.reuse_instance() if rank == 0 else None
            if comm is not None:
                go = lazy_bcast(comm, go)
            if not go:
                break
            msg = instance.receive("in") if rank == 0 else None
            if not distributed:
                if rank == 0:
                    instance.send(
                        "out", Message(msg.timestamp, None, restrict.handle(received(msg)))
                    )
                continue
            start = time.perf_counter()
            states = lazy_bcast(comm, received(msg)["states"] if rank == 0 else None)
            n = states.shape[2]
            local = states[:, :, split_slice(n, rank, comm.Get_size())]
            z = distributed_encode(model, local, n, comm)
            if rank == 0:
                out = received(msg)
                out.update(z=z, restrict_s=time.perf_counter() - start)
                instance.send("out", Message(msg.timestamp, None, out))

    run_guarded("restrict", body, box)


if __name__ == "__main__":
    main()
