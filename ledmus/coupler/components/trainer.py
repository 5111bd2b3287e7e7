"""MUSCLE3 trainer component (online training): each use receives a
:class:`~ledmus.coupler.messages.TrainRequest` on ``train_in`` (F_INIT: the micro states
of a window) and sends a :class:`~ledmus.coupler.messages.TrainReply` on ``weights_out``
(O_F: versioned weights when newer ones exist).  The replay buffer and the trainer
(weights, optimisers, generators) are kept between uses and saved in MUSCLE3 snapshots.
The training itself is :class:`ledmus.coupler.trainer.TrainerService`; settings are the
run's (``online``, ``online_*``, ``model``, ``seed``).
"""

from __future__ import annotations

# the watchdog starts before the imports below, which take seconds (torch, libmuscle)
from .watchdog import start_watchdog

if __name__ == "__main__":  # notice a manager killed while this process starts
    start_watchdog("trainer")

from libmuscle import InstanceFlags, Message
from ymmsl import Operator

from ..messages import TrainRequest
from ..run import load
from ..trainer import TrainerService
from .common import open_instance, portable, received, run_guarded


def main() -> None:
    box: list = [None]

    def body() -> None:
        ports = {Operator.F_INIT: ["train_in"], Operator.O_F: ["weights_out"]}
        instance, settings = open_instance(ports, InstanceFlags.USES_CHECKPOINT_API, box)
        if settings.schedule.adaptive.online == "off":
            raise ValueError(
                "the trainer component needs setting online: asynchronous or "
                "deterministic (it is off)"
            )
        service = TrainerService(
            load(settings).net, settings.schedule.adaptive, settings.micro.seed
        )
        try:
            while instance.reuse_instance():
                if instance.resuming():
                    service.restore(received(instance.load_snapshot()))
                instance.should_init()  # libmuscle's API order (F_INIT is always received)
                msg = instance.receive("train_in")
                request = TrainRequest.from_payload(
                    received(msg), "trainer: message on port train_in"
                )
                reply = service.handle(request)
                instance.send("weights_out", Message(msg.timestamp, None, reply.to_payload()))
                if instance.should_save_final_snapshot():
                    snap = portable(service.snapshot())  # generator states are uint64
                    instance.save_final_snapshot(Message(msg.timestamp, None, snap))
        finally:
            service.close()

    run_guarded("trainer", body, box)


if __name__ == "__main__":
    main()
