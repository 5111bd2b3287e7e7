"""MUSCLE3 macro component: the macro model and the schedule policy (the coordinator).

Sends window requests on ``state_out`` (O_I) and receives the restricted micro trajectory
on ``state_in`` (S).  Writes the run's ``trajectory.h5``, ``metrics.json`` and plots into
``<run dir>/output``.  Saves a snapshot (position, model state, recorded trajectory)
whenever the yMMSL checkpoint rules ask.
"""

from __future__ import annotations

import time
from pathlib import Path

from libmuscle import InstanceFlags, Message
from ymmsl import Operator

from ..engine import (
    compare_after_run,
    load,
    members_of,
    new_coordinator,
    new_lift,
    summarize,
)
from ..messages import Restricted, WindowRequest
from ...rundir import prepare_run_dir
from ..output import write_run
from .common import open_instance, received, run_guarded


def output_dir() -> Path:
    """``<run dir>/output`` (components run in ``<run dir>/instances/<name>/workdir``)."""
    cwd = Path.cwd()
    if cwd.name == "workdir" and cwd.parent.parent.name == "instances":
        return cwd.parent.parent.parent / "output"
    return cwd / "output"


def main() -> None:
    box: list = [None]

    def body() -> None:
        ports = {Operator.O_I: ["state_out"], Operator.S: ["state_in"]}
        instance, settings = open_instance(ports, InstanceFlags.USES_CHECKPOINT_API, box)
        out = output_dir()
        # before any compute: refuse an earlier run's outputs, check we can write (a resumed
        # run gets a new run directory from muscle_manager, so this holds there too)
        prepare_run_dir(out, overwrite=settings.overwrite, what="output folder",
                        option="the setting overwrite: true")  # fmt: skip
        while instance.reuse_instance():
            model = load(settings)
            members = members_of(settings.ensemble, 0, 1)
            lift = new_lift(settings, model, members)
            coord = new_coordinator(settings, model, lift, len(members))
            elapsed = 0.0
            if instance.resuming():
                snap = received(instance.load_snapshot())
                coord.restore(snap["coordinator"])
                elapsed = float(snap["elapsed"])
            instance.should_init()  # libmuscle's API order; no F_INIT ports to receive on

            def exchange(request: WindowRequest, coord=coord) -> Restricted:
                instance.send("state_out", Message(coord.time, None, request.to_payload()))
                answer = received(instance.receive("state_in"))
                return Restricted.from_payload(answer, "macro: message on port state_in")

            start = time.perf_counter()
            while not coord.done:
                coord.cycle(exchange)
                if instance.should_save_snapshot(coord.time):
                    snap = {"coordinator": coord.snapshot(),
                            "elapsed": elapsed + time.perf_counter() - start}  # fmt: skip
                    instance.save_snapshot(Message(coord.time, None, snap))
            wall = elapsed + time.perf_counter() - start
            reference, ref_wall = compare_after_run(settings, coord, lift, members)
            result = summarize(settings, coord, wall, "muscle3", reference, ref_wall)
            write_run(out, settings, coord.recorder, result, reference)
            if instance.should_save_final_snapshot():
                snap = {"coordinator": coord.snapshot(), "elapsed": wall}
                instance.save_final_snapshot(Message(coord.time, None, snap))

    run_guarded("macro", body, box)


if __name__ == "__main__":
    main()
