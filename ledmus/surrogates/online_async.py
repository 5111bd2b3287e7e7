"""Weight transport between components and the background online trainer.

Weights travel as plain arrays, never pickled objects (MUSCLE3 messages carry dicts of
numbers, strings and numpy arrays): :func:`pack_weights` / :func:`unpack_weights`.
:class:`AsyncTrainer` runs an :class:`~.online.OnlineTrainer` in a thread and publishes
packed weights; the deterministic mode does not use it (the coordinator calls
``OnlineTrainer.train(buffer, steps)`` itself at fixed window counts).
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from .online import OnlineTrainer, ReplayBuffer

log = logging.getLogger(__name__)


def _checksum(version: int, names: Sequence[str], arrays: Sequence[np.ndarray]) -> str:
    """SHA-256 hex over the version and, per tensor, ``name|shape|dtype`` and its bytes."""
    h = hashlib.sha256(f"ledmus-weights {int(version)}\n".encode())
    for name, arr in zip(names, arrays, strict=True):
        h.update(f"{name}|{tuple(arr.shape)}|{arr.dtype.str}\n".encode())
        h.update(np.ascontiguousarray(arr).tobytes())
    return h.hexdigest()


def pack_weights(state_dict: Mapping[str, torch.Tensor], version: int) -> dict[str, Any]:
    """``state_dict`` as plain data: ``version`` (int), ``names`` (the tensor names joined
    by ``"\\n"``), ``w0``, ``w1``, … (one numpy array per tensor, in order, dtype kept)
    and ``checksum`` (:func:`_checksum`: version, names, shapes, dtypes and bytes)."""
    names = list(state_dict)
    if any("\n" in name for name in names):
        raise ValueError("pack_weights: tensor names must not contain a newline")
    arrays = [np.ascontiguousarray(t.detach().cpu().numpy()).copy() for t in state_dict.values()]
    payload: dict[str, Any] = {"version": int(version), "names": "\n".join(names)}
    payload.update((f"w{i}", arr) for i, arr in enumerate(arrays))
    payload["checksum"] = _checksum(version, names, arrays)
    return payload


def _numpy_dtype(t: torch.Tensor) -> np.dtype:
    return torch.empty(0, dtype=t.dtype).numpy().dtype


def unpack_weights(
    payload: Mapping[str, Any], like: Mapping[str, torch.Tensor], last_version: int
) -> dict[str, torch.Tensor]:
    """The tensors of a :func:`pack_weights` payload, on the devices of ``like`` (the
    receiver's state dict).  ValueError, naming the problem, when the version is not
    newer than ``last_version``, when names, shapes or dtypes differ from ``like`` or
    when the checksum does not match (corrupted in transit)."""
    version = payload["version"]
    if isinstance(version, (bool, float)) or int(version) != version:
        raise ValueError(f"weights version must be an integer, got {version!r}")
    if version <= last_version:
        raise ValueError(f"stale weights version {version} <= {last_version}")
    names = payload["names"]
    names = (names.split("\n") if names else []) if isinstance(names, str) else list(names)
    if names != list(like):
        missing = [n for n in like if n not in names]
        extra = [n for n in names if n not in like]
        raise ValueError(
            f"weights version {version}: tensor names differ from the model's "
            f"(missing {missing}, unexpected {extra}, or another order)"
        )
    arrays = []
    for i, name in enumerate(names):
        arr = np.asarray(payload.get(f"w{i}"))
        want_shape, want_dtype = tuple(like[name].shape), _numpy_dtype(like[name])
        if arr.shape != want_shape:
            raise ValueError(
                f"weights version {version}: tensor {name!r} has shape "
                f"{arr.shape}, the model's is {want_shape}"
            )
        if arr.dtype != want_dtype:
            raise ValueError(
                f"weights version {version}: tensor {name!r} has dtype "
                f"{arr.dtype}, the model's is {want_dtype}"
            )
        arrays.append(arr)
    if _checksum(version, names, arrays) != payload["checksum"]:
        raise ValueError(f"weights version {version}: checksum mismatch (corrupted in transit)")
    return {
        name: torch.from_numpy(arr.copy()).to(like[name].device)
        for name, arr in zip(names, arrays, strict=True)
    }


class AsyncTrainer:
    """A background thread training ``trainer`` on ``buffer``: while the buffer holds at
    least ``min_sequences`` sequences it runs chunks of ``chunk_steps`` steps and after
    each publishes ``pack_weights(model.state_dict(), version)`` with ``version`` one
    more than the last (the first is 1).

    One lock guards the buffer and the published weights: :meth:`submit` feeds the
    buffer under it, the thread draws each minibatch under it and trains outside it,
    and :meth:`latest` only reads the published payload, so neither waits for a
    training step.  An exception in training (a non-finite loss included) is logged as
    a warning and appended to :attr:`failures`; the thread then stops training, the
    last good weights stay published and no newer version appears (the model's weights
    may be half-updated).  Not deterministic (thread timing); the deterministic mode
    calls ``trainer.train`` directly.
    """

    def __init__(
        self,
        trainer: OnlineTrainer,
        buffer: ReplayBuffer,
        min_sequences: int,
        chunk_steps: int = 20,
    ) -> None:
        if chunk_steps < 1:
            raise ValueError(f"AsyncTrainer: chunk_steps must be >= 1, got {chunk_steps}")
        self.trainer, self.buffer = trainer, buffer
        self.min_sequences, self.chunk_steps = max(1, int(min_sequences)), int(chunk_steps)
        self.failures: list[str] = []
        self.version = 0  #: version of the published weights (0: none yet)
        self._published: dict[str, Any] | None = None
        self._cond = threading.Condition()
        self._step_lock = threading.Lock()  # held by the thread for each training step
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="ledmus-online", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------ caller side
    def submit(self, member: int, start_index: int, states: np.ndarray, regime: int) -> int:
        """:meth:`ReplayBuffer.feed` under the lock; the number of sequences added."""
        with self._cond:
            added = self.buffer.feed(member, start_index, states, regime)
            self._cond.notify_all()
        return added

    def latest(self, last_version: int) -> dict[str, Any] | None:
        """The published payload when its version is newer than ``last_version``, else
        None; never waits for training."""
        with self._cond:
            packed = self._published
        return None if packed is None or packed["version"] <= last_version else dict(packed)

    @property
    def stats(self) -> dict[str, Any]:
        """:attr:`OnlineTrainer.stats` plus ``version``, ``failures`` and ``running``."""
        with self._cond:
            return {
                **self.trainer.stats,
                "version": self.version,
                "failures": list(self.failures),
                "running": self._thread.is_alive(),
            }

    def between_steps(self, fn: Any) -> Any:
        """``fn()`` while no training step runs and the buffer is not fed: a consistent
        point for a snapshot of the trainer and the buffer."""
        with self._step_lock, self._cond:
            return fn()

    def stop(self, timeout: float | None = None) -> None:
        """Ask the thread to stop (after the step in progress) and join it."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        self._thread.join(timeout)

    def __enter__(self) -> AsyncTrainer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ thread side
    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._stopping and len(self.buffer) < self.min_sequences:
                    self._cond.wait()
                if self._stopping:
                    return
            try:
                done = self._chunk()
            except Exception as exc:  # any failure: keep the last good weights
                msg = (
                    f"online training failed at update {self.trainer.updates}: "
                    f"{type(exc).__name__}: {exc}"
                )
                log.warning("%s (the last good weights, version %d, stay)", msg, self.version)
                with self._cond:
                    self.failures.append(msg)
                return
            if done:
                packed = pack_weights(self.trainer.model.state_dict(), self.version + 1)
                with self._cond:
                    self.version, self._published = self.version + 1, packed

    def _chunk(self) -> int:
        """Up to ``chunk_steps`` steps (fewer when stopping); the number done."""
        for done in range(self.chunk_steps):
            with self._cond:
                if self._stopping:
                    return done
                batch = self.trainer.draw(self.buffer)
            with self._step_lock:
                self.trainer.update(batch)
        return self.chunk_steps
