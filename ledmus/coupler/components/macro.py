"""MUSCLE3 macro component: the macro model and the schedule policy (the coordinator).

Sends window requests on ``state_out`` (O_I) and receives the restricted micro trajectory
on ``state_in`` (S).  Writes the run's ``trajectory.h5``, ``metrics.json`` and plots into
``<run dir>/output``, then ``summary.txt`` (where the outputs are, speed-up and MNAD per
channel; also printed to this component's stdout).  A run that is stopped or fails while
writing leaves no outputs.  Saves a snapshot (position, model state, recorded trajectory)
whenever the yMMSL checkpoint rules ask.
"""

from __future__ import annotations

# the watchdog starts before the imports below, which take seconds (torch, libmuscle)
from .watchdog import start_watchdog

if __name__ == "__main__":  # notice a manager killed while this process starts
    start_watchdog("macro")

from pathlib import Path
from typing import Any

from libmuscle import InstanceFlags, Message
from ymmsl import Operator

from ...atomic import atomic_path
from ...rundir import (
    claim_muscle3_run_dir,
    discard_run,
    finish_run,
    prepare_run_dir,
    read_marker,
)
from ..messages import Restricted, TrainReply, TrainRequest, Weights, WindowRequest
from ..micro import identical_members_warning
from ..output import write_run
from ..run import CoupledRun, load, members_of
from .common import log, open_instance, received, run_guarded


def run_dir() -> Path | None:
    """The MUSCLE3 run directory (components run in ``<run dir>/instances/<name>/workdir``),
    or None when started elsewhere (by hand)."""
    cwd = Path.cwd()
    if cwd.name == "workdir" and cwd.parent.parent.name == "instances":
        return cwd.parent.parent.parent
    return None


def output_dir() -> Path:
    """``<run dir>/output`` (``./output`` when started by hand)."""
    return (run_dir() or Path.cwd()) / "output"


def summary_text(result: dict[str, Any], out: Path) -> str:
    """What ``summary.txt`` says: the headline numbers of a finished run (wall time,
    speed-up and the MNAD per channel when the micro-only reference was run) and where
    its outputs are."""
    parts = [f"wall {result['wall_s']:.2f} s", f"{result['windows']} micro windows"]
    if result.get("speedup") is not None:
        parts.append(f"speed-up {result['speedup']:.2f}")
    errors = {
        k: v
        for k, v in (result.get("errors") or {}).items()
        if isinstance(v, (int, float)) and not isinstance(v, bool)
    }
    headline = {k: v for k, v in errors.items() if k.startswith("mnad")} or errors
    parts += [f"{k} {v:.4g}" for k, v in headline.items()]
    if "speedup" not in result:
        parts.append("no speed-up or errors (setting compare: false)")
    files = sorted(p.name for p in out.iterdir() if not p.name.startswith("."))
    files = sorted({*files, "summary.txt"})
    return (
        f"ledmus: MUSCLE3 run of {result['system']} finished: {', '.join(parts)}\n"
        f"ledmus: outputs in {out.resolve()}: {', '.join(files)}\n"
    )


class MuscleLink:
    """The trainer component on the other end of ``train_out`` / ``weights_in`` (online
    training); the mappers' weights go out on ``lift_weights`` / ``restrict_weights``."""

    shares_model = False

    def __init__(self, instance: Any, coord: Any = None) -> None:
        self.instance, self.coord = instance, coord
        missing = [p for p in ("train_out", "weights_in") if not instance.is_connected(p)]
        if missing:
            raise ValueError(
                "setting online needs the trainer component: connect "
                "macro.train_out -> trainer.train_in and trainer.weights_out -> "
                f"macro.weights_in (not connected: {', '.join(missing)})"
            )

    def post(self, request: TrainRequest, mapper_weights: Weights) -> None:
        t = self.coord.time
        for port in ("lift_weights", "restrict_weights"):
            if self.instance.is_connected(port):
                self.instance.send(port, Message(t, None, mapper_weights.to_payload()))
        self.instance.send("train_out", Message(t, None, request.to_payload()))

    def collect(self) -> TrainReply:
        msg = received(self.instance.receive("weights_in"))
        return TrainReply.from_payload(msg, "macro: message on port weights_in")

    def snapshot(self) -> dict[str, Any]:
        return {}  # the trainer component saves its own state

    def restore(self, snap: dict[str, Any]) -> None:
        pass

    def close(self) -> None:
        pass


def main() -> None:
    box: list = [None]

    def body() -> None:
        ports = {
            Operator.O_I: ["state_out", "train_out", "lift_weights", "restrict_weights"],
            Operator.S: ["state_in", "weights_in"],
        }
        instance, settings = open_instance(ports, InstanceFlags.USES_CHECKPOINT_API, box)
        out, root = output_dir(), run_dir()
        # before any compute: refuse a run directory holding an earlier run (a rerun of
        # muscle_manager into it), refuse an earlier run's outputs, check we can write (a
        # resumed run gets a new run directory from muscle_manager, so this holds there too)
        run_id = claim_muscle3_run_dir(root) if root is not None else None
        prepare_run_dir(
            out,
            overwrite=settings.output.overwrite,
            what="output folder",
            option="the setting overwrite: true",
            engine="muscle3",
            run_id=run_id,
        )
        warning = identical_members_warning(
            settings.micro.solver, settings.micro.ic, settings.micro.seed, settings.micro.ensemble
        )
        if warning:  # WARNING reaches the manager log
            log.warning(warning)
        try:  # a stop (SIGTERM, the manager gone) or failure before the run finished
            # its outputs leaves none of them (files the folder kept stay)
            while instance.reuse_instance():
                model = load(settings)
                members = members_of(settings.micro.ensemble, 0, 1)
                link = MuscleLink(instance) if settings.schedule.adaptive.online != "off" else None
                if link is None and instance.is_connected("train_out"):
                    raise ValueError(
                        "macro.train_out is connected (a trainer component) but "
                        "setting online is off; allowed: asynchronous, deterministic"
                    )
                run = CoupledRun.build(settings, members, model=model, trainer_link=link)
                if link is not None:
                    link.coord = run.coord
                if instance.resuming():
                    run.restore(received(instance.load_snapshot()))
                instance.should_init()  # libmuscle's API order; no F_INIT ports to receive on

                def exchange(request: WindowRequest, coord=run.coord) -> Restricted:
                    instance.send("state_out", Message(coord.time, None, request.to_payload()))
                    answer = received(instance.receive("state_in"))
                    return Restricted.from_payload(answer, "macro: message on port state_in")

                def save(run: CoupledRun) -> None:  # a workflow snapshot when one is due
                    if instance.should_save_snapshot(run.coord.time):
                        instance.save_snapshot(Message(run.coord.time, None, run.snapshot()))

                run.run(exchange, after_cycle=save)
                result, reference = run.finish("muscle3")
                write_run(out, settings, run.coord.recorder, result, reference)
                summary = summary_text(result, out)
                with atomic_path(out / "summary.txt") as tmp:
                    tmp.write_text(summary)
                finish_run(out)
                if root is not None:
                    finish_run(root)
                print(summary, end="", flush=True)
                if instance.should_save_final_snapshot():
                    instance.save_final_snapshot(Message(run.coord.time, None, run.snapshot()))
        except BaseException:
            if not (read_marker(out) or {}).get("complete"):
                discard_run(out, keep_folders=True)
            raise

    run_guarded("macro", body, box, cleanup=[output_dir()])


if __name__ == "__main__":
    main()
