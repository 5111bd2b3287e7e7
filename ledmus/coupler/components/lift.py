"""MUSCLE3 lifting mapper: macro state (from macro) -> observable state (to micro) by the
macro model's decoder (MacroModel.decode); stochastic decoders sampled per member.  With online training its
weights come from the macro component on ``weights`` before each window (after a resume
the macro resends them, so the mapper needs no snapshot)."""

from __future__ import annotations

# the watchdog starts before the imports below, which take seconds (torch, libmuscle)
from .watchdog import start_watchdog

if __name__ == "__main__":  # notice a manager killed while this process starts
    start_watchdog("lift")

from libmuscle import InstanceFlags, Message
from ymmsl import Operator

from ..messages import Weights, WindowRequest
from ..run import load, members_of, new_decoder
from ..trainer import MapperWeights
from .common import open_instance, received, run_guarded


def main() -> None:
    box: list = [None]

    def body() -> None:
        # weights: online training (the macro component sends them before each window)
        ports = {Operator.F_INIT: ["in", "weights"], Operator.O_F: ["out"]}
        instance, settings = open_instance(ports, InstanceFlags.KEEPS_NO_STATE_FOR_NEXT_USE, box)
        # set up before the first message arrives (settings come with the registration)
        model = load(settings)
        decoder = new_decoder(settings, model, members_of(settings.micro.ensemble, 0, 1))
        weights = MapperWeights(model)
        while instance.reuse_instance():
            if instance.is_connected("weights"):
                update = received(instance.receive("weights"))
                weights.apply(Weights.from_payload(update, "lift: message on port weights"), "lift")
            msg = instance.receive("in")
            request = WindowRequest.from_payload(received(msg), "lift: message on port in")
            instance.send("out", Message(msg.timestamp, None, decoder.handle(request).to_payload()))

    run_guarded("lift", body, box)


if __name__ == "__main__":
    main()
