"""MUSCLE3 restriction mapper: micro trajectory -> macro states by the model's restrict.

Started with several MPI processes (``execution_model: intelmpi``) for a model with a
pooled (permutation-invariant) restriction, rank 0 holds the Instance, the particles of
every state are split over the ranks and pooled with an ``Allreduce`` of per-rank sums
(:func:`ledmus.coupler.mpi.distributed_restrict`)."""

from __future__ import annotations

# the watchdog starts before the imports below, which take seconds (torch, libmuscle)
from .watchdog import start_watchdog

if __name__ == "__main__":  # notice a manager killed while this process starts
    start_watchdog("restrict")

from libmuscle import InstanceFlags, Message
from ymmsl import Operator

from ...solvers.cells import split_slice
from ..mappers import Restrict
from ..messages import MicroResult, Weights
from ..mpi import distributed_restrict, lazy_bcast, world_comm
from ..run import load
from ..trainer import MapperWeights
from .common import open_instance, received, run_guarded


def main() -> None:
    box: list = [None]
    comm = world_comm()
    rank = 0 if comm is None else comm.Get_rank()

    def body() -> None:
        # weights: online training (the macro component sends them before each window)
        ports = {Operator.F_INIT: ["in", "weights"], Operator.O_F: ["out"]}
        flags = InstanceFlags.KEEPS_NO_STATE_FOR_NEXT_USE
        instance, settings = open_instance(ports, flags, box, comm)
        model = load(settings)
        restrict = Restrict(model)
        weights = MapperWeights(model)  # online training: the macro component sends them
        distributed = comm is not None and model.pooled
        while True:
            go = instance.reuse_instance() if rank == 0 else None
            if comm is not None:
                go = lazy_bcast(comm, go)
            if not go:
                break
            msg = result = update = None
            if rank == 0 and instance.is_connected("weights"):
                update = received(instance.receive("weights"))
                update = Weights.from_payload(update, "restrict: message on port weights")
            if comm is not None:
                update = lazy_bcast(comm, update)
            if update is not None:
                weights.apply(update, "restrict")
            if rank == 0:
                msg = instance.receive("in")
                result = MicroResult.from_payload(received(msg), "restrict: message on port in")
            m = None
            if distributed:  # every rank pools its share of the particles
                states = lazy_bcast(comm, result.states if rank == 0 else None)
                local = states[:, :, split_slice(states.shape[2], rank, comm.Get_size())]
                m = distributed_restrict(model, local, states.shape[2], comm)
            if rank == 0:
                out = restrict.handle(result, m)
                instance.send("out", Message(msg.timestamp, None, out.to_payload()))

    run_guarded("restrict", body, box)


if __name__ == "__main__":
    main()
