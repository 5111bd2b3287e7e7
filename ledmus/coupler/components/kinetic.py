"""MUSCLE3 kinetic-cells component of the cell-local hybrid: the kinetic solver on the
cells a request names, usable on its own by a foreign hybrid driver.

Settings: ``system`` (``bgk``) and ``param_<name>`` (the solver's parameters); the other
settings are left to the hybrid component.  Each use receives a
:class:`~ledmus.coupler.messages.KineticRequest` on ``init`` (F_INIT: the runs of kinetic
cells, their ``f`` and ghost cells) and sends a :class:`~ledmus.coupler.messages.
KineticResult` on ``final`` (O_F: ``f`` after the step and the end-face flux integrals);
docs/guide/foreign_components.md documents the fields.  ``f`` comes with every request,
so the component keeps no state between uses.
"""

from __future__ import annotations

# the watchdog starts before the imports below, which take seconds (torch, libmuscle)
from .watchdog import start_watchdog

if __name__ == "__main__":  # notice a manager killed while this process starts
    start_watchdog("kinetic")

from libmuscle import Instance, InstanceFlags, Message
from ymmsl import Operator

from ...plugins import load_plugins
from ..hybrid_kinetic import advance_kinetic
from ..hybrid_run import kinetic_solver
from ..messages import KineticRequest
from .common import raw_settings, received, run_guarded


def main() -> None:
    box: list = [None]

    def body() -> None:
        ports = {Operator.F_INIT: ["init"], Operator.O_F: ["final"]}
        instance = Instance(ports, InstanceFlags.KEEPS_NO_STATE_FOR_NEXT_USE)
        box[0] = instance
        load_plugins()
        solver = kinetic_solver(raw_settings(instance))
        while instance.reuse_instance():
            msg = instance.receive("init")
            request = KineticRequest.from_payload(received(msg), "kinetic: message on port init")
            result = advance_kinetic(solver, request)
            instance.send("final", Message(msg.timestamp, None, result.to_payload()))

    run_guarded("kinetic", body, box)


if __name__ == "__main__":
    main()
