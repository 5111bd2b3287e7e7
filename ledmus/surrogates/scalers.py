"""Data scalers stored inside the model (as buffers), fitted on training data.

``x_scaled = (x - shift) / scale``, with statistics per channel: for grids
``(B, C, N)`` over batch and nodes of each channel, for particles ``(B, N, d)`` over
batch and particles of each axis.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

SCALER_METHODS = ("standard", "minmax", "none")


class Scaler(nn.Module):
    """Affine per-channel scaler: ``standard`` (zero mean, unit variance, the paper's
    N(0, 1)), ``minmax`` (to [0, 1]) or ``none``.

    ``channel_axis`` is the axis of the state (after the batch axis) that holds the
    channels: 0 for grids ``(C, N)``, 1 (= last) for particles ``(N, d)``.
    """

    def __init__(self, method: str, n_channels: int, channel_axis: int) -> None:
        super().__init__()
        if method not in SCALER_METHODS:
            raise ValueError(f"scaler={method!r} unknown; allowed: {', '.join(SCALER_METHODS)}")
        self.method = method
        self.channel_axis = channel_axis
        self.register_buffer("shift", torch.zeros(n_channels, dtype=torch.float64))
        self.register_buffer("scale", torch.ones(n_channels, dtype=torch.float64))

    def fit(self, data: np.ndarray, low: float | None = None, high: float | None = None) -> Scaler:
        """Fit on samples ``(S, *state_shape)``.  For ``minmax`` a known range (a box)
        can be given as ``low``/``high`` instead of the data's."""
        axis = 1 + self.channel_axis
        reduce = tuple(i for i in range(data.ndim) if i != axis)
        if self.method == "standard":
            shift, scale = data.mean(axis=reduce), data.std(axis=reduce)
        elif self.method == "minmax":
            lo = data.min(axis=reduce) if low is None else np.full(data.shape[axis], low)
            hi = data.max(axis=reduce) if high is None else np.full(data.shape[axis], high)
            shift, scale = lo, hi - lo
        else:
            return self
        scale = np.where(scale > 1e-12, scale, 1.0)
        self.shift.copy_(torch.as_tensor(shift, dtype=torch.float64))
        self.scale.copy_(torch.as_tensor(scale, dtype=torch.float64))
        return self

    def _view(self, t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        # every state is 2-D, (C, N) grids or (N, d) particles, after any leading axes
        shape = [1] * x.ndim
        shape[x.ndim - 2 + self.channel_axis] = -1
        return t.to(dtype=x.dtype, device=x.device).view(shape)

    def transform(self, x: torch.Tensor) -> torch.Tensor:
        """Physical -> scaled; ``x`` is ``(..., *state_shape)``."""
        return (x - self._view(self.shift, x)) / self._view(self.scale, x)

    def inverse(self, x: torch.Tensor) -> torch.Tensor:
        """Scaled -> physical."""
        return x * self._view(self.scale, x) + self._view(self.shift, x)
