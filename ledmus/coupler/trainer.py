"""Online training in a coupled run: the trainer service and the
coordinator's side of it.

Once per micro window the coordinator posts a :class:`~.messages.TrainRequest` with the
micro states of the *previous* window (MUSCLE3 0.11 wants every O_I port sent before
an S port receives, so the data of window ``w`` can only leave with window ``w + 1``)
and collects a :class:`~.messages.TrainReply`.  New weights are applied at the end of
the block (after the acceptance test of the block, which decoded with the old ones):
a macro phase runs on the weights its comparison accepted, so new weights wait until no
member is in a macro phase (at most ``t_macro``; after that the phases still running
end, counted as intervention ``weights_update``).  They are refused (intervention
``weights_rejected``) when their autoencoder reconstructs the last ``n_warm`` recorded
states worse than both the current one and ``max_error`` (comparison NAD).  Otherwise the
macro model takes them and, since the autoencoder changed, its RNN context is
re-encoded: the propagation state is reset and teacher-forced over those states (the
recorded latent of the last index is re-encoded too, so a lift
from it decodes with the new decoder).  Under MUSCLE3 the lift and restrict mappers get
the weights before the next window (:class:`~.messages.Weights`).

:class:`TrainerService` is the trainer (in process for the embedded engine, the body
of the MUSCLE3 ``trainer`` component): a :class:`~ledmus.surrogates.replay.ReplayBuffer`
fed per member and an :class:`~ledmus.surrogates.online.OnlineTrainer` fine-tuning its
own copy of the network.  Modes: ``deterministic``: ``online_steps`` steps every
``online_every`` requests once the buffer holds ``online_min_sequences`` sequences,
blocking, so a run is reproducible (bitwise at one torch thread, MUSCLE3 = embedded);
``asynchronous``: an :class:`~ledmus.surrogates.online_async.AsyncTrainer` thread trains
all the time and each reply carries the newest published weights (never waits).  A
failed training round (a non-finite loss, an exception) is logged, counted in
``failures`` and ends training; the run goes on with the last good weights.
"""

from __future__ import annotations

import copy
import logging
from typing import Any

import numpy as np
import torch

from ..surrogates.online import OnlineTrainer
from ..surrogates.online_async import AsyncTrainer, pack_weights, unpack_weights
from ..surrogates.replay import ReplayBuffer
from .messages import TrainReply, TrainRequest, Weights
from .streams import RNG_RECORD

log = logging.getLogger(__name__)

#: purposes of the trainer's seeds (buffer replacement, minibatches and noise)
SEED_BUFFER, SEED_TRAINER = 11, 12
#: buffer member ids of symmetry images: member + k * IMAGE_OFFSET for the k-th symmetry
IMAGE_OFFSET = 1 << 20


def derived_seed(seed: int, purpose: int) -> int:
    return int(np.random.SeedSequence([int(seed), purpose]).generate_state(1)[0])


class TrainerService:
    """The trainer of one run (module docstring); ``net``: the LED it starts from (a
    copy is trained), ``settings``: the run's :class:`~.adaptive_settings.AdaptiveSettings`."""

    def __init__(self, net: torch.nn.Module, settings: Any, seed: int) -> None:
        a = settings
        self.mode = a.online
        self.net = copy.deepcopy(net)
        self.buffer = ReplayBuffer(
            a.online_capacity,
            a.online_seq_len,
            tuple(net.state_shape),
            a.online_keep,
            derived_seed(seed, SEED_BUFFER),
        )
        cfg = {
            "lr": a.online_lr,
            "batch_size": a.online_batch_size,
            "restart_weight": a.online_restart_weight,
            "restart_warmup": a.online_restart_warmup,
            "bootstrap": a.online_bootstrap,
        }
        self.trainer = OnlineTrainer(self.net, cfg, derived_seed(seed, SEED_TRAINER))
        self.steps, self.every, self.min_sequences = (
            a.online_steps,
            a.online_every,
            a.online_min_sequences,
        )
        self.version = 0  # of the newest weights
        self.sent = 0  # newest version sent to the macro side
        self.requests = 0
        self.failures: list[str] = []
        #: with online_augment, the system's symmetries (each window is buffered as is and
        #: as its image under each of them, a stream of its own per member)
        self.symmetries = ()
        if a.online_augment:
            from .. import systems

            self.symmetries = tuple(s.apply for s in systems.get(net.system).symmetries)
        self.worker: AsyncTrainer | None = None
        if self.mode == "asynchronous":
            self.worker = AsyncTrainer(self.trainer, self.buffer, self.min_sequences, self.steps)

    def handle(self, request: TrainRequest) -> TrainReply:
        """Feed the request's states, train (deterministic) and reply."""
        if request.states is not None:
            feed = self.worker.submit if self.worker is not None else self.buffer.feed
            for k, member in enumerate(np.asarray(request.members)):
                feed(int(member), request.start, request.states[k], request.regime)
                for j, image in enumerate(self.symmetries, start=1):
                    feed(
                        int(member) + j * IMAGE_OFFSET,
                        request.start,
                        image(request.states[k]),
                        request.regime,
                    )
        self.requests += 1
        if self.worker is None:
            self._round()
            packed = None
            if self.version > self.sent:
                packed = pack_weights(self.net.state_dict(), self.version)
        else:
            packed = self.worker.latest(self.sent)
            if packed is not None:
                self.version = int(packed["version"])
            self.failures = list(self.worker.failures)
        if packed is not None:
            self.sent = self.version
        return TrainReply(
            window=request.window,
            version=self.version,
            weights=packed,
            updates=self.trainer.updates,
            failures=len(self.failures),
            train_s=self.trainer.seconds,
            buffered=len(self.buffer),
        )

    def _round(self) -> None:
        ready = len(self.buffer) >= self.min_sequences and self.requests % self.every == 0
        if not ready or self.failures:
            return
        good = copy.deepcopy(self.net.state_dict())
        try:
            self.trainer.train(self.buffer, self.steps)
        except Exception as exc:  # keep the last good weights, stop training
            self.net.load_state_dict(good)
            msg = f"online training failed at update {self.trainer.updates}: {type(exc).__name__}: {exc}"
            log.warning("%s (the weights of version %d stay; training stops)", msg, self.version)
            self.failures.append(msg)
            return
        self.version += 1

    # ------------------------------------------------------------------ checkpoints
    def snapshot(self) -> dict[str, Any]:
        """Buffer, trainer (weights, optimisers, generators), versions and counters, taken
        between training steps."""

        def take() -> dict[str, Any]:
            return {
                "buffer": self.buffer.snapshot(),
                "trainer": self.trainer.snapshot(),
                "version": self.version,
                "sent": self.sent,
                "requests": self.requests,
                "failures": list(self.failures),
            }

        return take() if self.worker is None else self.worker.between_steps(take)

    def restore(self, snap: dict[str, Any]) -> None:
        """Continue from :meth:`snapshot` (deterministic: bitwise as the run would have)."""

        def put() -> None:
            self.buffer.restore(snap["buffer"])
            self.trainer.restore(snap["trainer"])
            self.version, self.sent = int(snap["version"]), int(snap["sent"])
            self.requests = int(snap["requests"])
            self.failures = [str(f) for f in snap["failures"]]

        if self.worker is None:
            put()
        else:
            self.worker.between_steps(put)
            self.worker.version = self.version

    def close(self) -> None:
        if self.worker is not None:
            self.worker.stop()


class LocalLink:
    """The embedded engine's trainer: :class:`TrainerService` in this process (the
    request is handled when collected, after the micro window, as under MUSCLE3)."""

    shares_model = True  # lift and restrict use the macro model object itself

    def __init__(self, service: TrainerService) -> None:
        self.service = service
        self._request: TrainRequest | None = None

    def post(self, request: TrainRequest, mapper_weights: Weights) -> None:
        self._request = request

    def collect(self) -> TrainReply:
        request, self._request = self._request, None
        return self.service.handle(request)

    def snapshot(self) -> dict[str, Any]:
        return {"service": self.service.snapshot()}

    def restore(self, snap: dict[str, Any]) -> None:
        self.service.restore(snap["service"])

    def close(self) -> None:
        self.service.close()


class Learning:
    """The coordinator's side (module docstring): ``link`` has ``post(request,
    mapper_weights)``, ``collect() -> TrainReply``, ``snapshot``, ``restore``, ``close``
    and ``shares_model``; ``members``: global member ids of the coordinator's rows."""

    def __init__(self, link: Any, members: np.ndarray, change_times: np.ndarray, dt: float) -> None:
        self.link, self.members = link, np.asarray(members, dtype=np.int64)
        self.change_times, self.dt = np.asarray(change_times, dtype=np.float64), float(dt)
        self.version = 0  # weights the macro model has
        self.mapper_version = 0  # weights the mappers have (-1: unknown, after a resume)
        self.queued: dict[str, Any] | None = None
        self.incoming: TrainReply | None = None
        self.waited = 0  # coarse steps the incoming weights have waited
        self.rejected = 0  # versions refused: their autoencoder reconstructs worse
        self.reply = TrainReply(window=-1)
        self.applied = 0

    def queue(self, rows: np.ndarray, start: int, states: np.ndarray) -> None:
        """The micro states of this window's rows (coarse indices from ``start``)."""
        t0 = (start - 1) * self.dt
        regime = int(np.sum(self.change_times <= t0 + 1e-9 * max(1.0, abs(t0))))
        self.queued = {
            "start": int(start),
            "states": np.asarray(states, np.float32),
            "members": self.members[rows],
            "regime": regime,
        }

    def post(self, window: int, model: Any) -> None:
        """Before window ``window``'s exchange: the queued data to the trainer and, under
        MUSCLE3, the weights version (and weights, when new to them) to the mappers."""
        request = TrainRequest(window=window, **(self.queued or {}))
        self.queued = None
        packed = None
        if not self.link.shares_model and self.mapper_version != self.version:
            packed = pack_weights(model.get_weights(), self.version)
        self.link.post(request, Weights(version=self.version, weights=packed))
        self.mapper_version = self.version

    def collect(self, window: int) -> None:
        reply = self.link.collect()
        if reply.window != window:
            raise RuntimeError(
                f"macro: expected the trainer's reply to window {window}, got {reply.window}"
            )
        if reply.failures > self.reply.failures:
            log.warning(
                "online training failed (%d); the run goes on with weights version %d",
                reply.failures,
                self.version,
            )
        self.reply = reply
        if reply.weights is not None:
            if self.incoming is None:
                self.waited = 0
            self.incoming = reply

    def _context(self, coord: Any) -> np.ndarray:
        """The last ``n_warm`` recorded states ``(B, c, *shape)``."""
        i = coord.index
        return coord.recorder.states[:, i - max(1, min(coord.schedule.n_warm, i)) : i]

    def acceptable(self, coord: Any) -> bool:
        """Whether the waiting weights reconstruct the context no worse than the current
        ones or than ``max_error``; if not they are dropped (``weights_rejected``)."""
        model, reply = coord.model, self.incoming
        old = model.get_weights()
        state = unpack_weights(reply.weights, old, self.version)
        ctx = self._context(coord)
        before = self._reconstruction(coord, ctx)
        model.set_weights(state)
        after = self._reconstruction(coord, ctx)
        model.set_weights(old)
        if np.all(after <= np.maximum(coord.schedule.max_error, before)):
            return True
        self.incoming, self.rejected = None, self.rejected + 1
        coord._count("weights_rejected")
        log.info(
            "weights version %d rejected: reconstruction NAD %.3g > %.3g",
            reply.version,
            after.max(),
            max(coord.schedule.max_error, before.max()),
        )
        return False

    def apply(self, coord: Any) -> None:
        """At the end of a block: new weights into the model, the RNN context re-encoded."""
        reply, self.incoming = self.incoming, None
        if reply is None:
            return
        model, rec, i = coord.model, coord.recorder, coord.index
        model.set_weights(unpack_weights(reply.weights, model.get_weights(), self.version))
        self.version, self.applied = reply.version, self.applied + 1
        m = model.restrict(self._context(coord))
        model.reset()
        model.assimilate(m)
        rec.latents[:, i - 1] = m[:, -1]

    @staticmethod
    def _reconstruction(coord: Any, ctx: np.ndarray) -> np.ndarray:
        """Per member: the comparison NAD of decode(encode(ctx)) against ``ctx``."""
        decoded = coord.decoder.decode(coord.model.restrict(ctx), 0, RNG_RECORD)
        return coord.comparison_error(np.arange(len(ctx)), decoded, ctx)

    def summary(self) -> dict[str, Any]:
        r = self.reply
        return {
            "version": self.version,
            "applied": self.applied,
            "rejected": self.rejected,
            "updates": r.updates,
            "failures": r.failures,
            "train_s": r.train_s,
            "buffered": r.buffered,
        }

    def snapshot(self, model: Any) -> dict[str, Any]:
        snap = {
            "version": self.version,
            "applied": self.applied,
            "waited": self.waited,
            "rejected": self.rejected,
            "weights": pack_weights(model.get_weights(), self.version),
            "queued": dict(self.queued) if self.queued else {},
            "reply": self.reply.to_payload(),
            "link": self.link.snapshot(),
        }
        if self.incoming is not None:
            snap["incoming"] = self.incoming.to_payload()
        return snap

    def restore(self, snap: dict[str, Any], model: Any) -> None:
        model.set_weights(unpack_weights(snap["weights"], model.get_weights(), -1))
        self.version, self.applied = int(snap["version"]), int(snap["applied"])
        self.waited, self.rejected = int(snap["waited"]), int(snap["rejected"])
        self.mapper_version = -1  # a resumed run's mappers start from the checkpoint file
        self.queued = dict(snap["queued"]) or None
        self.reply = TrainReply.from_payload(snap["reply"], "snapshot: trainer reply")
        inc = snap.get("incoming")
        self.incoming = None if inc is None else TrainReply.from_payload(inc, "snapshot")
        self.link.restore(snap["link"])

    def close(self) -> None:
        self.link.close()


class MapperWeights:
    """A MUSCLE3 mapper's side (lift, restrict): applies the :class:`~.messages.Weights`
    the macro component sends before each window to the mapper's own model."""

    def __init__(self, model: Any) -> None:
        self.model, self.version = model, 0

    def apply(self, msg: Weights, who: str) -> None:
        if msg.weights is not None:
            # any version: the macro decides (a resumed run resends its current weights)
            self.model.set_weights(unpack_weights(msg.weights, self.model.get_weights(), -1))
            self.version = msg.version
        elif msg.version != self.version:
            raise RuntimeError(
                f"{who}: the window needs weights version {msg.version}, this "
                f"mapper has {self.version} and none came"
            )
