"""MUSCLE3 lifting mapper: latent (from macro) -> observable state (to micro) by the
decoder; particles sampled from the mixture density.  Stateless between windows."""

from __future__ import annotations

from libmuscle import InstanceFlags, Message
from ymmsl import Operator

from ..core import Lift
from ..engine import load, members_of, n_particles
from .common import open_instance, received, run_guarded


def main() -> None:
    box: list = [None]

    def body() -> None:
        ports = {Operator.F_INIT: ["in"], Operator.O_F: ["out"]}
        instance, settings = open_instance(ports, InstanceFlags.KEEPS_NO_STATE_FOR_NEXT_USE, box)
        # set up before the first message arrives (settings come with the registration)
        members = members_of(settings.ensemble, 0, 1)
        lift = Lift(load(settings), settings.seed, members, n_particles(settings))
        while instance.reuse_instance():
            msg = instance.receive("in")
            instance.send("out", Message(msg.timestamp, None, lift.handle(received(msg))))

    run_guarded("lift", body, box)


if __name__ == "__main__":
    main()
