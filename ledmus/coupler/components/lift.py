"""MUSCLE3 lifting mapper: macro state (from macro) -> observable state (to micro) by the
macro model's lift; stochastic lifts sampled per member.  Stateless between windows."""

from __future__ import annotations

# the watchdog starts before the imports below, which take seconds (torch, libmuscle)
from .watchdog import start_watchdog

if __name__ == "__main__":  # notice a manager killed while this process starts
    start_watchdog("lift")

from libmuscle import InstanceFlags, Message
from ymmsl import Operator

from ..engine import load, members_of, new_lift
from ..messages import WindowRequest
from .common import open_instance, received, run_guarded


def main() -> None:
    box: list = [None]

    def body() -> None:
        ports = {Operator.F_INIT: ["in"], Operator.O_F: ["out"]}
        instance, settings = open_instance(ports, InstanceFlags.KEEPS_NO_STATE_FOR_NEXT_USE, box)
        # set up before the first message arrives (settings come with the registration)
        lift = new_lift(settings, load(settings), members_of(settings.ensemble, 0, 1))
        while instance.reuse_instance():
            msg = instance.receive("in")
            request = WindowRequest.from_payload(received(msg), "lift: message on port in")
            instance.send("out", Message(msg.timestamp, None, lift.handle(request).to_payload()))

    run_guarded("lift", body, box)


if __name__ == "__main__":
    main()
