"""MUSCLE3 hybrid component: the cell-local hybrid's decisions and closure cells
(:mod:`ledmus.coupler.hybrid`); the kinetic cells run in the kinetic component, one
request per coupling step (``cells_out`` -> kinetic ``init``, kinetic ``final`` ->
``cells_in``).  Settings and outputs are those of :mod:`ledmus.coupler.hybrid_run`
(``<run dir>/output``); the same settings under ``ledmus run`` give the same run
bitwise in one process.
"""

from __future__ import annotations

# the watchdog starts before the imports below, which take seconds (torch, libmuscle)
from .watchdog import start_watchdog

if __name__ == "__main__":  # notice a manager killed while this process starts
    start_watchdog("hybrid")

from pathlib import Path
from typing import Any

from libmuscle import Instance, Message
from ymmsl import Operator

from ...plugins import load_plugins
from ...rundir import claim_muscle3_run_dir, prepare_run_dir
from ..hybrid_run import run_hybrid
from ..messages import KineticRequest, KineticResult
from .common import raw_settings, received, run_guarded
from .macro import output_dir, run_dir


class Muscle3Kinetic:
    """The kinetic backend that asks the kinetic component (one round trip per step)."""

    def __init__(self, instance: Any) -> None:
        self.instance = instance

    def advance(self, request: KineticRequest) -> KineticResult:
        self.instance.send("cells_out", Message(request.t0, None, request.to_payload()))
        msg = self.instance.receive("cells_in")
        return KineticResult.from_payload(received(msg), "hybrid: message on port cells_in")


def main() -> None:
    box: list = [None]

    def body() -> None:
        ports = {Operator.O_I: ["cells_out"], Operator.S: ["cells_in"]}
        instance = Instance(ports)
        box[0] = instance
        load_plugins()
        while instance.reuse_instance():
            raw = raw_settings(instance)
            out, root = output_dir(), run_dir()
            run_id = claim_muscle3_run_dir(root) if root is not None else None
            prepare_run_dir(
                out,
                overwrite=bool(raw.get("overwrite", False)),
                what="output folder",
                option="the setting overwrite: true",
                engine="muscle3",
                run_id=run_id,
            )
            run_hybrid(raw, out, search=[Path.cwd()], kinetic=Muscle3Kinetic(instance))

    run_guarded("hybrid", body, box, cleanup=[output_dir()])


if __name__ == "__main__":
    main()
