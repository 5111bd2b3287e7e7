"""Torch device selection from a setting string."""

from __future__ import annotations

import torch


def resolve_device(name: str) -> torch.device:
    """``cpu``, ``cuda``, ``cuda:N`` or ``auto`` (CUDA when available)."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ValueError(
                f"device={name!r} requested but CUDA is not available; allowed here: cpu, auto"
            )
        return torch.device(name)
    raise ValueError(f"device={name!r} unknown; allowed: cpu, cuda, cuda:N, auto")
