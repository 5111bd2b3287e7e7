"""What the surrogate networks share: their dtype and device, and conversion of inputs."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn


class TensorModule(nn.Module):
    """An ``nn.Module`` whose inputs are converted to its parameters' dtype and device."""

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
