"""What a coupled run keeps: coarse states, macro states and, per member, the source
(micro or macro) of every recorded index."""

from __future__ import annotations

from typing import Any

import numpy as np

SOURCES = {"micro": 0, "macro": 1}


def resident(shape: tuple[int, ...], value: float, dtype: type = np.float64) -> np.ndarray:
    """An array filled with ``value`` now, so that its pages are in memory before any
    clock starts (``np.zeros`` defers them to the first write, which on a large record
    costs a few per cent of a run; the micro-only reference gets the same treatment)."""
    arr = np.empty(shape, dtype=dtype)
    arr.fill(value)
    return arr


def source_runs(source: np.ndarray) -> list[tuple[int, int, int]]:
    """Runs of equal source in ``source`` ``(N,)``: ``(start, stop, source)``."""
    edges = np.flatnonzero(np.diff(source)) + 1
    starts, stops = np.r_[0, edges], np.r_[edges, len(source)]
    return [(int(a), int(b), int(source[a])) for a, b in zip(starts, stops, strict=True)]


class Recorder:
    """States ``(B, N, *shape)`` (when ``keep_states``), macro states ``(B, N, d)``, the
    source of every member and index ``(B, N)`` (0 micro, 1 macro, -1 not yet) and the
    macro model's uncertainty ``(B, N)`` (NaN where it gave none: micro indices, models
    without an estimate).

    ``grid_reference`` ``(B, N, C, N_x)``: also accumulate the spatial mean absolute
    error per member, index and channel, so grid errors need not keep the coupled states
    (the sweep runs 100 x 8060 FHN states this way).  ``decode_macro=False`` leaves the
    macro indices of ``states`` at NaN (the run records macro states only; ``ledmus
    decode`` fills them from the trajectory file).
    """

    def __init__(
        self,
        n_members: int,
        n_total: int,
        state_shape: tuple[int, ...],
        macro_dim: int,
        *,
        keep_states: bool = True,
        decode_macro: bool = True,
        grid_reference: np.ndarray | None = None,
        latent_dtype: type = np.float32,
    ) -> None:
        self.n_members, self.n_total = n_members, n_total
        self.state_shape = tuple(state_shape)
        self.decode_macro = decode_macro
        blank = 0.0 if decode_macro else np.nan
        self.states = resident((n_members, n_total, *state_shape), blank) if keep_states else None
        self.latents = resident((n_members, n_total, macro_dim), 0.0, latent_dtype)
        self.source = np.full((n_members, n_total), -1, dtype=np.int32)  # MUSCLE3: no int8
        self.uncertainty = resident((n_members, n_total), np.nan, np.float32)
        self.reference = grid_reference
        self.abs_err = None
        if grid_reference is not None:
            self.abs_err = resident((n_members, n_total, state_shape[0]), 0.0)

    @property
    def needs_states(self) -> bool:
        """Whether macro phases must decode their states for the record."""
        return self.decode_macro and (self.states is not None or self.abs_err is not None)

    def add(
        self,
        index: int,
        states: np.ndarray | None,
        latents: np.ndarray,
        source: str,
        members: np.ndarray | None = None,
        uncertainty: np.ndarray | None = None,
    ) -> None:
        """Record indices ``index … index + T - 1`` of ``members`` (a boolean mask; None:
        all) from ``latents`` ``(b, T, d)``, ``states`` ``(b, T, *shape)`` and the macro
        model's ``uncertainty`` ``(b, T)``."""
        stop = index + latents.shape[1]
        if stop > self.n_total:
            raise ValueError(f"record of indices {index}..{stop - 1} beyond N = {self.n_total}")
        rows = slice(None) if members is None else np.flatnonzero(members)
        self.latents[rows, index:stop] = latents
        self.source[rows, index:stop] = SOURCES[source]
        if uncertainty is not None:
            self.uncertainty[rows, index:stop] = uncertainty
        if states is not None:
            self.put_states(index, states, members)

    def put_states(self, index: int, states: np.ndarray, members: np.ndarray | None = None) -> None:
        """Store (and accumulate the errors of) states ``(b, T, *shape)`` from ``index``."""
        stop = index + states.shape[1]
        rows = slice(None) if members is None else np.flatnonzero(members)
        if self.states is not None:
            self.states[rows, index:stop] = states
        if self.abs_err is not None:
            diff = np.subtract(states, self.reference[rows, index:stop])
            self.abs_err[rows, index:stop] = np.abs(diff, out=diff).mean(-1)

    def common_source(self) -> np.ndarray:
        """Source per index ``(N,)`` where all members agree, 2 where they differ."""
        same = (self.source == self.source[:1]).all(axis=0)
        return np.where(same, self.source[0], 2).astype(np.int32)

    def snapshot(self) -> dict[str, Any]:
        snap = {"latents": self.latents, "source": self.source, "uncertainty": self.uncertainty}
        if self.states is not None:
            snap["states"] = self.states
        if self.abs_err is not None:
            snap["abs_err"] = self.abs_err
        return snap

    def restore(self, snap: dict[str, Any]) -> None:
        self.latents = np.array(snap["latents"])
        self.source = np.array(snap["source"])
        if "uncertainty" in snap:  # snapshots of earlier releases have none
            self.uncertainty = np.array(snap["uncertainty"])
        if "states" in snap:
            self.states = np.array(snap["states"])
        if "abs_err" in snap:
            self.abs_err = np.array(snap["abs_err"])
