"""MUSCLE3 macro component: the LED RNN and the T_warm / T_m / T_mu scheduler.

Sends window requests on ``state_out`` (O_I) and receives the restricted micro trajectory
on ``state_in`` (S).  Writes the run's ``trajectory.h5``, ``metrics.json`` and plots into
its working directory's run folder (``<run dir>/output``).  Saves a snapshot (scheduler,
RNN state, recorded trajectory) whenever the yMMSL checkpoint rules ask.
"""

from __future__ import annotations

import time
from pathlib import Path

from libmuscle import InstanceFlags, Message
from ymmsl import Operator

from ..core import Lift
from ..engine import load, members_of, micro_reference, n_particles, new_macro, summarize
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
        while instance.reuse_instance():
            model = load(settings)
            members = members_of(settings.ensemble, 0, 1)
            lift = Lift(model, settings.seed, members, n_particles(settings))
            macro = new_macro(settings, model, lift, len(members))
            elapsed = 0.0
            if instance.resuming():
                snap = received(instance.load_snapshot())
                macro.restore(snap["macro"])
                elapsed = float(snap["elapsed"])
            if instance.should_init():
                pass  # no F_INIT ports: the initial condition is the micro's setting

            def exchange(msg: dict, macro=macro) -> dict:
                instance.send("state_out", Message(macro.time, None, msg))
                return received(instance.receive("state_in"))

            start = time.perf_counter()
            while not macro.done:
                macro.cycle(exchange)
                if instance.should_save_snapshot(macro.time):
                    snap = {
                        "macro": macro.snapshot(),
                        "elapsed": elapsed + time.perf_counter() - start,
                    }
                    instance.save_snapshot(Message(macro.time, None, snap))
            wall = elapsed + time.perf_counter() - start
            reference = ref_wall = None
            if settings.compare:
                reference, ref_wall = micro_reference(settings, members)
            result = summarize(settings, macro, wall, "muscle3", reference, ref_wall)
            out = output_dir()
            out.mkdir(parents=True, exist_ok=True)
            write_run(out, settings, macro.recorder, result, reference)
            if instance.should_save_final_snapshot():
                snap = {"macro": macro.snapshot(), "elapsed": wall}
                instance.save_final_snapshot(Message(macro.time, None, snap))

    run_guarded("macro", body, box)


if __name__ == "__main__":
    main()
