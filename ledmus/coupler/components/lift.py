"""MUSCLE3 lifting mapper: latent (from macro) -> observable state (to micro) by the
decoder; particles sampled from the mixture density.  Stateless between windows."""

from __future__ import annotations

from libmuscle import Instance, InstanceFlags, Message
from ymmsl import Operator

from ..core import Lift
from ..engine import load, members_of, n_particles
from .common import received, run_guarded, settings_from


def main() -> None:
    box: list = [None]

    def body() -> None:
        instance = Instance({Operator.F_INIT: ["in"], Operator.O_F: ["out"]},
                            InstanceFlags.KEEPS_NO_STATE_FOR_NEXT_USE)  # fmt: skip
        box[0] = instance
        # set up before the first message arrives (settings come with the registration)
        settings = settings_from(instance)
        members = members_of(settings.ensemble, 0, 1)
        lift = Lift(load(settings), settings.seed, members, n_particles(settings))
        while instance.reuse_instance():
            msg = instance.receive("in")
            instance.send("out", Message(msg.timestamp, None, lift.handle(received(msg))))

    run_guarded("lift", body, box)


if __name__ == "__main__":
    main()
