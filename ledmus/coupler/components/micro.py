"""MUSCLE3 micro component: any registered solver in a reuse loop, usable on its own.

Settings: ``system`` (or a ``model`` whose system it takes), ``param_<name>``,
``ensemble``, ``ic``, ``t_transient``, ``seed``, ``lifting``, ``lifting_tol``,
``lifting_max_iter``; every other setting is left to the other
components.  Each use receives a :class:`~ledmus.coupler.messages.MicroRequest` on
``init`` (F_INIT) and sends a :class:`~ledmus.coupler.messages.MicroResult` on ``final``
(O_F); docs/guide/foreign_components.md documents the fields.  The internal state (LB
populations, particles) is kept between uses and saved in MUSCLE3 snapshots.

Under MPI (``execution_model: intelmpi``) rank 0 holds the Instance and broadcasts;
particle systems split every member's particles over the ranks (each rank its own random
stream), other systems split the ensemble members; states are gathered on rank 0.
"""

from __future__ import annotations

# the watchdog starts before the imports below, which take seconds (torch, libmuscle)
from .watchdog import start_watchdog

if __name__ == "__main__":  # notice a manager killed while this process starts
    start_watchdog("micro")

from typing import Any

import numpy as np
from libmuscle import InstanceFlags, Message
from ymmsl import Operator

from ... import systems
from ...solvers.cells import split_slice
from ..messages import MicroRequest
from ..micro import Micro, initial_condition
from ..mpi import lazy_bcast, world_comm
from ..run import members_of
from .common import open_instance, received, run_guarded


class MicroComponent:
    """The micro side of one process (one MPI rank of the component)."""

    def __init__(self, comm: Any) -> None:
        self.comm = comm
        self.rank, self.size = (0, 1) if comm is None else (comm.Get_rank(), comm.Get_size())

    def bcast(self, value: Any) -> Any:
        return value if self.comm is None else lazy_bcast(self.comm, value)

    def setup(self, settings: Any) -> None:
        """This rank's share: all members' particles in part, or some members whole."""
        solver, rank, size = settings.solver, self.rank, self.size
        self.particles = systems.get(settings.system).particles and size > 1
        self.members = np.arange(settings.ensemble)
        self.member_cut = slice(None)
        if size > 1 and not self.particles:
            self.members = members_of(settings.ensemble, rank, size)
            self.member_cut = split_slice(settings.ensemble, rank, size)
            if len(self.members) == 0:
                raise ValueError(
                    f"setting ensemble={settings.ensemble} is smaller than {size} MPI ranks"
                )
        ic = initial_condition(
            solver, settings.ic, settings.seed, self.members, settings.t_transient
        )
        self.cut = split_slice(ic.shape[1], rank, size) if self.particles else slice(None)
        if self.particles:  # a solver for this rank's share of every member's particles
            local_n = self.cut.stop - self.cut.start
            solver = systems.get(settings.system).make(
                **{**settings.params, "n_particles": local_n}
            )
        stream = rank if self.particles else None
        if size > 1 and settings.schedule_solvers:
            raise ValueError(
                "setting param_schedule: not supported with an MPI micro "
                "component (run it with one process)"
            )
        self.micro = Micro(
            solver,
            ic[:, self.cut],
            settings.seed,
            self.members,
            stream,
            lifting=settings.lifter,
            schedule=settings.param_changes,
        )
        # split axes: particles of the internal state (B, N, d) and of a window's states
        # (B, n, N, d); else members, axis 0 of both
        self.axis, self.states_axis = (1, 2) if self.particles else (0, 0)

    def local(self, full: np.ndarray) -> np.ndarray:
        """This rank's part of a whole-ensemble state ``(B, ...)``."""
        return full[:, self.cut] if self.particles else full[self.member_cut]

    def restore(self, snap: dict[str, Any]) -> None:
        state = dict(snap)
        if state.get("started"):
            state["internal"] = self.local(np.array(state["internal"]))
        self.micro.restore(state)

    def handle(self, request: MicroRequest) -> tuple[Any, dict[str, Any]]:
        """Run the window on every rank; rank 0 gets the whole result and snapshot."""
        if request.members is not None and self.size > 1 and not self.particles:
            raise ValueError(
                "member-subset windows (schedule adaptive) need a micro "
                "component with one process or particles split over ranks"
            )
        if request.state is not None:
            request.state = self.local(np.asarray(request.state))
        result = self.micro.handle(request)
        snap = self.micro.snapshot()
        if self.comm is not None:
            from mpi4py import MPI

            parts = self.comm.gather(result.states, root=0)
            internals = self.comm.gather(snap.get("internal"), root=0)
            result.micro_s = self.comm.allreduce(result.micro_s, op=MPI.MAX)
            stats = [s for s in self.comm.allgather(result.lift_stats) if s is not None]
            if stats:  # the slowest rank's lift
                result.lift_stats = np.max(stats, axis=0)
            if self.rank == 0:
                result.states = np.concatenate(parts, axis=self.states_axis)
                snap["internal"] = np.concatenate(internals, axis=self.axis)
        result.micro_ranks = self.size
        return result, snap

    def run(self, instance: Any) -> None:
        """The reuse loop (rank 0 talks to MUSCLE3, every rank computes)."""
        root = self.rank == 0
        while self.bcast(instance.reuse_instance() if root else None):
            snap = received(instance.load_snapshot()) if root and instance.resuming() else None
            snap = self.bcast(snap)
            if snap is not None:
                self.restore(snap)
            msg = request = None
            if root:
                instance.should_init()  # libmuscle's API order (F_INIT is always received)
                msg = instance.receive("init")
                request = MicroRequest.from_payload(received(msg), "micro: message on port init")
            result, internal = self.handle(self.bcast(request))
            if root:
                instance.send("final", Message(msg.timestamp, None, result.to_payload()))
                if instance.should_save_final_snapshot():
                    instance.save_final_snapshot(Message(msg.timestamp, None, internal))


def main() -> None:
    box: list = [None]
    component = MicroComponent(world_comm())

    def body() -> None:
        ports = {Operator.F_INIT: ["init"], Operator.O_F: ["final"]}
        flags = InstanceFlags.USES_CHECKPOINT_API
        instance, settings = open_instance(ports, flags, box, component.comm, micro_only=True)
        component.setup(settings)
        component.run(instance)

    run_guarded("micro", body, box)


if __name__ == "__main__":
    main()
