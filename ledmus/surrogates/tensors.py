"""What the surrogate networks share: dtype, device and input conversion; teacher-forced
warm-up and iterated latent forecasting for networks with ``encode`` and ``rnn``."""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import torch
from torch import nn


class TensorModule(nn.Module):
    """An ``nn.Module`` whose inputs are converted to its parameters' dtype and device."""

    def keep_spec(self, spec: dict[str, Any]) -> None:
        """Keep a copy of the constructor ``spec`` (what a checkpoint records) and its
        ``system`` and ``state_shape``."""
        self.spec = copy.deepcopy(spec)
        self.system = spec["system"]
        self.state_shape = tuple(spec["state_shape"])

    @property
    def dtype(self) -> torch.dtype:
        return next(self.parameters()).dtype

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def as_tensor(self, x: Any) -> torch.Tensor:
        """``x`` (numpy or torch) as a tensor of the model's dtype on its device."""
        return torch.as_tensor(np.asarray(x) if not torch.is_tensor(x) else x).to(
            self.device, self.dtype
        )


class Forecaster(TensorModule):
    """A network with ``encode`` (states -> latents) and a latent ``rnn``."""

    def warmup(self, states: Any, hidden: Any = None) -> tuple[torch.Tensor, Any]:
        """Teacher-force the RNN with the encoded sequence ``(B, T_warm, *state_shape)``;
        returns the prediction of the latent one step after the last state and the
        hidden state."""
        pred, hidden = self.rnn(self.encode(states), hidden)
        return pred[:, -1], hidden

    @torch.no_grad()
    def forecast_latent(self, states_warm: Any, horizon: int) -> torch.Tensor:
        """Iterative latent forecast: latents ``(B, horizon, d_z)`` for the ``horizon``
        steps following the warm-up sequence ``(B, T_warm, *state_shape)``."""
        z_next, hidden = self.warmup(states_warm)
        return self.rnn.free_run(z_next, hidden, horizon)[0]
