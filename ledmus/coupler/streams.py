"""Random streams of a coupled run: one per ensemble member, window and purpose.

``SeedSequence([seed, member, window, purpose(, stream)])`` keys every draw, so a run
split over MPI ranks draws exactly what the serial run draws, and the mappers keep no
state between windows.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

# purposes of the per-member random streams
RNG_LIFT_SOLVER, RNG_MICRO, RNG_IC, RNG_MDN, RNG_RECORD, RNG_TRANSIENT = 0, 1, 2, 3, 4, 5
RNG_MACRO = 6  # a stochastic macro model's propagation (one stream per member for the run)


def member_rng(
    seed: int, member: int, window: int, purpose: int, stream: int | None = None
) -> np.random.Generator:
    """The generator of one ensemble member for one window and purpose (``stream``: a
    further split, e.g. the MPI rank holding part of a member's particles)."""
    key = [seed, member, window, purpose] + ([] if stream is None else [stream])
    return np.random.default_rng(key)


def member_torch_generator(
    seed: int, member: int, window: int, device: Any, purpose: int = RNG_MDN
) -> torch.Generator:
    """A torch generator keyed like :func:`member_rng` (mixture-density sampling)."""
    seq = np.random.SeedSequence([seed, member, window, purpose])
    return torch.Generator(device=device).manual_seed(int(seq.generate_state(1, np.uint64)[0] >> 1))
