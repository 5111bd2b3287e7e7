"""Latent propagators (seed 001 eqs 13–19): an LSTM or GRU cell and a linear read-out.

    h_t = H(z_t, h_{t-Δt}),   z~_{t+Δt} = W_{z,h} h_t          (eqs 13, 16)

Stateful: ``forward`` takes and returns the hidden state, so teacher-forced warm-up,
truncated BPTT across chunks and free-running forecasting all use the same call.
"""

from __future__ import annotations

import torch
from torch import nn

Hidden = torch.Tensor | tuple[torch.Tensor, torch.Tensor]
CELLS = ("lstm", "gru")


class LatentRNN(nn.Module):
    """``cell`` in {lstm, gru}; ``layers`` stacked cells of ``hidden`` units; read-out
    ``W_{z,h}`` without bias (eq 16).  ``residual=True`` predicts the increment instead,
    ``z~_{t+Δt} = z_t + W_{z,h} h_t`` (an option; the paper's form is the default)."""

    def __init__(
        self,
        latent_dim: int,
        hidden: int = 50,
        cell: str = "lstm",
        layers: int = 1,
        residual: bool = False,
    ) -> None:
        super().__init__()
        if cell not in CELLS:
            raise ValueError(f"cell={cell!r} unknown; allowed: {', '.join(CELLS)}")
        rnn = nn.LSTM if cell == "lstm" else nn.GRU
        self.cell = cell
        self.residual = bool(residual)
        self.rnn = rnn(latent_dim, hidden, num_layers=layers, batch_first=True)
        self.readout = nn.Linear(hidden, latent_dim, bias=False)

    def forward(self, z: torch.Tensor, hidden: Hidden | None = None) -> tuple[torch.Tensor, Hidden]:
        """``z`` ``(B, T, d_z)`` -> predictions of the next latents ``(B, T, d_z)``."""
        h, hidden = self.rnn(z, hidden)
        out = self.readout(h)
        return (z + out if self.residual else out), hidden

    @staticmethod
    def detach(hidden: Hidden) -> Hidden:
        """The hidden state cut from the graph (truncated BPTT)."""
        if isinstance(hidden, tuple):
            return tuple(h.detach() for h in hidden)
        return hidden.detach()

    def free_run(
        self, z_next: torch.Tensor, hidden: Hidden, steps: int
    ) -> tuple[torch.Tensor, Hidden]:
        """Iterate ``steps`` times feeding each prediction back: returns the latents
        ``(B, steps, d_z)`` starting with ``z_next`` (the warm-up's last prediction)."""
        out = [z_next]
        z = z_next
        for _ in range(steps - 1):
            pred, hidden = self(z[:, None, :], hidden)
            z = pred[:, 0]
            out.append(z)
        return torch.stack(out, dim=1), hidden
