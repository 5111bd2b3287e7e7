"""MUSCLE3 micro component: any registered solver (the model's system) in a reuse loop.

Each use receives a window request on ``init`` (a lifted state or none: continue), runs
it and sends the observed coarse states on ``final``.  The internal state (LB
populations, particles) is kept between uses and saved in MUSCLE3 snapshots.

Under MPI (``execution_model: intelmpi``) rank 0 holds the Instance and broadcasts;
particle systems split every member's particles over the ranks (each rank its own random
stream), grid systems split the ensemble members; states are gathered on rank 0.
"""

from __future__ import annotations

import numpy as np
from libmuscle import InstanceFlags, Message
from ymmsl import Operator

from ...solvers import make
from ..core import Micro, initial_condition
from ..engine import members_of
from ..mpi import lazy_bcast, split_slice
from .common import mpi_comm, open_instance, received, run_guarded


def main() -> None:
    box: list = [None]
    comm = mpi_comm()
    rank, size = (0, 1) if comm is None else (comm.Get_rank(), comm.Get_size())

    def bcast(value):
        return value if comm is None else lazy_bcast(comm, value)

    def body() -> None:
        ports = {Operator.F_INIT: ["init"], Operator.O_F: ["final"]}
        instance, settings = open_instance(ports, InstanceFlags.USES_CHECKPOINT_API, box, comm)
        solver = settings.solver
        particles = solver.stochastic and len(solver.state_shape) == 2 and size > 1
        members = np.arange(settings.ensemble)
        if size > 1 and not particles:
            members = members_of(settings.ensemble, rank, size)
            if len(members) == 0:
                raise ValueError(
                    f"setting ensemble={settings.ensemble} is smaller than {size} MPI ranks"
                )
        ic = initial_condition(solver, settings.ic, settings.seed, members, settings.t_transient)
        cut = split_slice(ic.shape[1], rank, size) if particles else slice(None)
        if particles:  # this rank's share of every member's particles
            local_n = cut.stop - cut.start
            solver = make(settings.system, **{**settings.params, "n_particles": local_n})
        micro = Micro(
            solver, ic[:, cut], settings.seed, members, stream=rank if particles else None
        )
        axis = 1 if particles else 0  # of the internal state; +1 for trajectories

        while True:
            go = bcast(instance.reuse_instance() if rank == 0 else None)
            if not go:
                break
            snap = None
            if rank == 0 and instance.resuming():
                snap = received(instance.load_snapshot())
            snap = bcast(snap)
            if snap is not None:
                state = dict(snap)
                if state.get("started"):
                    full = np.array(state["internal"])
                    state["internal"] = (
                        full[:, cut] if particles else full[_member_slice(settings, rank, size)]
                    )
                micro.restore(state)
            msg = None
            if rank == 0 and instance.should_init():
                msg = instance.receive("init")
            data = bcast(None if msg is None else received(msg))
            if data.get("state") is not None:
                full = np.asarray(data["state"])
                data["state"] = (
                    full[:, cut] if particles else full[_member_slice(settings, rank, size)]
                )
            out = micro.handle(data)
            internal = micro.snapshot()
            if comm is not None:
                parts = comm.gather(out["states"], root=0)
                internals = comm.gather(internal.get("internal"), root=0)
                out["micro_s"] = comm.allreduce(out["micro_s"], op=_max())
                if rank == 0:
                    out["states"] = np.concatenate(parts, axis=axis + 1)
                    internal["internal"] = np.concatenate(internals, axis=axis)
            if rank == 0:
                out["micro_ranks"] = size
                instance.send("final", Message(msg.timestamp, None, out))
                if instance.should_save_final_snapshot():
                    instance.save_final_snapshot(Message(msg.timestamp, None, internal))

    run_guarded("micro", body, box)


def _member_slice(settings, rank: int, size: int) -> slice:
    return split_slice(settings.ensemble, rank, size)


def _max():
    from mpi4py import MPI

    return MPI.MAX


if __name__ == "__main__":
    main()
