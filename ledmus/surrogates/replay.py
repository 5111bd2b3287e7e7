"""The replay buffer of online training: micro windows cut into sequences
``(L, *state_shape)`` and kept as a bounded, regime-aware sample; snapshots are plain
numpy arrays (the PCG64 state as ``uint64`` words, :func:`generator_state`)."""

from __future__ import annotations

from typing import Any

import numpy as np

_MASK64 = (1 << 64) - 1


def generator_state(gen: np.random.Generator) -> np.ndarray:
    """The state of a PCG64 generator as ``uint64`` ``(6,)``: state (high, low word),
    increment (high, low), ``has_uint32``, ``uinteger``."""
    st = gen.bit_generator.state
    s, inc = st["state"]["state"], st["state"]["inc"]
    words = [s >> 64, s & _MASK64, inc >> 64, inc & _MASK64, st["has_uint32"], st["uinteger"]]
    return np.array(words, dtype=np.uint64)


def set_generator_state(gen: np.random.Generator, words: np.ndarray) -> None:
    """Inverse of :func:`generator_state`."""
    w = [int(x) for x in np.asarray(words, dtype=np.uint64)]
    gen.bit_generator.state = {
        "bit_generator": "PCG64",
        "state": {"state": (w[0] << 64) | w[1], "inc": (w[2] << 64) | w[3]},
        "has_uint32": w[4],
        "uinteger": w[5],
    }


class ReplayBuffer:
    """Bounded store of float32 sequences ``(seq_len, *state_shape)``, each tagged with a
    regime id (an int), filled from micro windows (:meth:`feed`) or whole sequences
    (:meth:`add`).

    Replacement when full (one victim per added sequence, drawn with the buffer's own
    generator, PCG64 seeded ``seed``): let ``r`` be the newest regime (that of the
    sequence being added), ``n_old`` the number of stored sequences of other regimes and
    ``keep = floor(keep_fraction * capacity)``.  If ``n_old <= keep`` (and some stored
    sequence has regime ``r``) the victim is uniform among the sequences of regime ``r``,
    so earlier regimes keep their ``n_old`` sequences; otherwise it is uniform among all
    stored sequences.  After a regime change the earlier regimes thus shrink by random
    replacement to exactly ``keep`` sequences and stay there: the trainer keeps seeing
    a ``keep_fraction`` share of the past and does not forget it.
    """

    def __init__(
        self,
        capacity: int,
        seq_len: int,
        state_shape: tuple[int, ...],
        keep_fraction: float = 0.25,
        seed: int = 0,
    ) -> None:
        if capacity < 1 or seq_len < 2 or not 0.0 <= keep_fraction <= 1.0:
            raise ValueError(
                f"ReplayBuffer: capacity >= 1, seq_len >= 2, 0 <= keep_fraction <= 1 "
                f"needed, got {capacity}, {seq_len}, {keep_fraction}"
            )
        self.capacity, self.seq_len = int(capacity), int(seq_len)
        self.state_shape = tuple(int(s) for s in state_shape)
        self.keep_fraction = float(keep_fraction)
        self._data = np.zeros((self.capacity, self.seq_len, *self.state_shape), np.float32)
        self._tags = np.zeros(self.capacity, np.int64)
        self._size = 0
        self.seen = 0  #: sequences ever added
        self.newest: int | None = None  #: regime of the last added sequence
        self._rng = np.random.Generator(np.random.PCG64(seed))
        #: member -> (next expected coarse index, regime, pending states (k, *state_shape))
        self._pending: dict[int, tuple[int, int, np.ndarray]] = {}

    def __len__(self) -> int:
        return self._size

    def regimes(self) -> dict[int, int]:
        """Regime id -> number of stored sequences."""
        ids, counts = np.unique(self._tags[: self._size], return_counts=True)
        return dict(zip(ids.tolist(), counts.tolist(), strict=True))

    def _check(self, states: np.ndarray, lead: int, what: str) -> np.ndarray:
        states = np.asarray(states, dtype=np.float32)
        shape = (self.seq_len, *self.state_shape)[2 - lead :]
        if states.ndim != lead + len(self.state_shape) or states.shape[1:] != shape:
            raise ValueError(
                f"ReplayBuffer.{what}: shape (n, {', '.join(map(str, shape))}) "
                f"expected, got {states.shape}"
            )
        return states

    def feed(self, member: int, start_index: int, states: np.ndarray, regime: int) -> int:
        """Micro states ``(n, *state_shape)`` of ``member`` at coarse indices
        ``start_index … start_index + n - 1``.  They extend the member's pending segment
        when ``start_index`` is the next expected index and ``regime`` is the same, else
        the segment restarts with them.  Each time the segment holds ``seq_len`` states a
        sequence is added and the segment keeps its last state (stride ``seq_len - 1``).
        Returns the number of sequences added."""
        states = self._check(states, 1, "feed")
        member, start_index, regime = int(member), int(start_index), int(regime)
        following = start_index + len(states)
        pend = self._pending.get(member)
        if pend is not None and pend[0] == start_index and pend[1] == regime:
            states = np.concatenate([pend[2], states])
        out = []
        while len(states) >= self.seq_len:
            out.append(states[: self.seq_len])
            states = states[self.seq_len - 1 :]
        self._pending[member] = (following, regime, states.copy())
        if out:
            self.add(np.stack(out), regime)
        return len(out)

    def add(self, seqs: np.ndarray, regime: int) -> None:
        """Store sequences ``(n, seq_len, *state_shape)`` of ``regime``, one at a time
        (replacement rule: the class docstring)."""
        seqs, regime = self._check(seqs, 2, "add"), int(regime)
        for seq in seqs:
            self.newest = regime
            if self._size < self.capacity:
                slot, self._size = self._size, self._size + 1
            else:
                newest = np.flatnonzero(self._tags == regime)
                n_old = self.capacity - len(newest)
                if n_old <= int(self.keep_fraction * self.capacity) and len(newest):
                    slot = int(newest[self._rng.integers(len(newest))])
                else:
                    slot = int(self._rng.integers(self.capacity))
            self._data[slot], self._tags[slot] = seq, regime
            self.seen += 1

    def sample(self, n: int, generator: np.random.Generator) -> np.ndarray:
        """``n`` stored sequences drawn uniformly with replacement by ``generator``:
        a copy ``(n, seq_len, *state_shape)``."""
        if self._size == 0:
            raise ValueError("ReplayBuffer.sample: the buffer is empty")
        return self._data[generator.integers(0, self._size, n)]

    # ------------------------------------------------------------------ snapshot
    def snapshot(self) -> dict[str, Any]:
        """Everything as numpy arrays and ints: settings, stored sequences and tags (slot
        order), pending segments (concatenated, with member, next index, regime, length)
        and the generator state (:func:`generator_state`)."""
        members = sorted(self._pending)
        pend = [self._pending[m] for m in members]
        size, empty = self._size, np.zeros((0, *self.state_shape), np.float32)
        return {
            "capacity": self.capacity,
            "seq_len": self.seq_len,
            "seen": self.seen,
            "state_shape": np.array(self.state_shape, np.int64),
            "keep_fraction": np.array(self.keep_fraction),
            "data": self._data[:size].copy(),
            "tags": self._tags[:size].copy(),
            "newest": np.array([] if self.newest is None else [self.newest], np.int64),
            "pending_member": np.array(members, np.int64),
            "pending_next": np.array([p[0] for p in pend], np.int64),
            "pending_regime": np.array([p[1] for p in pend], np.int64),
            "pending_length": np.array([len(p[2]) for p in pend], np.int64),
            "pending_states": np.concatenate([empty, *(p[2] for p in pend)]),
            "rng_state": generator_state(self._rng),
        }

    def restore(self, snap: dict[str, Any]) -> None:
        """Become the buffer :meth:`snapshot` described (settings included): it then
        continues bitwise like the original."""
        shape = tuple(int(s) for s in snap["state_shape"])
        self.__init__(
            int(snap["capacity"]), int(snap["seq_len"]), shape, float(snap["keep_fraction"])
        )
        self._size = len(snap["tags"])
        self._data[: self._size], self._tags[: self._size] = snap["data"], snap["tags"]
        self.seen = int(snap["seen"])
        self.newest = int(snap["newest"][0]) if len(snap["newest"]) else None
        parts = np.split(np.asarray(snap["pending_states"]), np.cumsum(snap["pending_length"])[:-1])
        nxt, reg = snap["pending_next"].tolist(), snap["pending_regime"].tolist()
        for i, m in enumerate(snap["pending_member"].tolist()):
            self._pending[m] = (nxt[i], reg[i], np.array(parts[i], np.float32))
        set_generator_state(self._rng, snap["rng_state"])
