"""Latent propagators (Vlachas et al. eqs 13–19): an LSTM or GRU cell and a linear read-out. ::

    h_t = H(z_t, h_{t-Δt}),   z~_{t+Δt} = W_{z,h} h_t          (eqs 13, 16)

Stateful: ``forward`` takes and returns the hidden state, so teacher-forced warm-up,
truncated BPTT across chunks and free-running forecasting all use the same call.

Speed: the recurrences call the functional ops that ``nn.LSTM`` / ``nn.GRU`` call
(``torch._VF.lstm`` / ``torch._VF.gru`` with the module's flat weights and flags) and
``F.linear`` for the read-out, skipping ``nn.Module.__call__`` and the modules' Python
bookkeeping; the arithmetic, hence every bit of the results, is that of the modules.
Module hooks registered on ``rnn`` / ``readout`` are therefore not run.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import _VF, nn

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
        """``z`` ``(B, T, d_z)`` -> predictions of the next latents ``(B, T, d_z)``.

        Same result as ``readout(rnn(z, hidden))`` bit for bit, without the module calls
        (``hidden=None`` and inputs that are not ``(B, T, d_z)`` go through ``rnn``)."""
        if hidden is None or z.dim() != 3:
            h, hidden = self.rnn(z, hidden)
        else:
            self._prepare(z, hidden)
            h, hidden = self._recur(z, hidden)
        out = F.linear(h, self.readout.weight, self.readout.bias)
        return (z + out if self.residual else out), hidden

    @staticmethod
    def detach(hidden: Hidden) -> Hidden:
        """The hidden state cut from the graph (truncated BPTT)."""
        if isinstance(hidden, tuple):
            return tuple(h.detach() for h in hidden)
        return hidden.detach()

    # ------------------------------------------------------------------ functional recurrence
    def _prepare(self, z: torch.Tensor, hidden: Hidden) -> None:
        """What ``nn.LSTM/GRU.forward`` does before its op: refresh the flat weights
        (``functional_call``, ``.to``) and check input and hidden; anything unusual goes
        to the module's own checks, which raise its error messages."""
        m = self.rnn
        m._update_flat_weights()
        expected = (m.num_layers, z.shape[0], m.hidden_size)
        if self.cell == "lstm":
            ok = len(hidden) == 2 and hidden[0].shape == expected == hidden[1].shape
        else:
            ok = hidden.shape == expected
        if not ok or z.shape[-1] != m.input_size or z.dtype != m._flat_weights[0].dtype:
            m.check_forward_args(z, hidden, None)

    def _op_args(self) -> tuple:
        """The arguments after ``(input, hx)`` with which ``nn.LSTM/GRU.forward`` calls
        its sequence op ``_VF.lstm`` / ``_VF.gru`` (batch first, no projections)."""
        m = self.rnn
        return (
            m._flat_weights,
            m.bias,
            m.num_layers,
            float(m.dropout),
            m.training,
            m.bidirectional,
            True,
        )

    def _recur(self, z: torch.Tensor, hidden: Hidden) -> tuple[torch.Tensor, Hidden]:
        """``self.rnn(z, hidden)`` for batch-first ``z`` and a given ``hidden``: the op
        and arguments of ``nn.LSTM/GRU.forward`` (no PackedSequence, no projections)."""
        if self.cell == "lstm":
            out = _VF.lstm(z, hidden, *self._op_args())
            return out[0], out[1:]
        out = _VF.gru(z, hidden, *self._op_args())
        return out[0], out[1]

    def _zero_hidden(self, z_next: torch.Tensor) -> Hidden:
        """The zero state ``nn.LSTM/GRU`` start from when given ``hx=None``."""
        m = self.rnn
        h0 = torch.zeros(
            m.num_layers, z_next.shape[0], m.hidden_size, dtype=z_next.dtype, device=z_next.device
        )
        return (h0, torch.zeros_like(h0)) if self.cell == "lstm" else h0

    def _steps(self, z: torch.Tensor, hidden: Hidden, steps: int) -> tuple[list, Hidden]:
        """The free-run loop: ``z`` ``(B, 1, d_z)`` -> list of ``steps`` such latents."""
        W, b = self.readout.weight, self.readout.bias
        args = self._op_args()
        residual = self.residual
        out = [z]
        if self.cell == "lstm":
            lstm = _VF.lstm
            for _ in range(steps - 1):
                y, h, c = lstm(z, hidden, *args)
                hidden = (h, c)
                p = F.linear(y, W, b)
                z = z + p if residual else p
                out.append(z)
        else:
            gru = _VF.gru
            for _ in range(steps - 1):
                y, hidden = gru(z, hidden, *args)
                p = F.linear(y, W, b)
                z = z + p if residual else p
                out.append(z)
        return out, hidden

    def free_run(
        self, z_next: torch.Tensor, hidden: Hidden | None, steps: int
    ) -> tuple[torch.Tensor, Hidden]:
        """Iterate ``steps`` times feeding each prediction back: returns the latents
        ``(B, steps, d_z)`` starting with ``z_next`` (the warm-up's last prediction) and
        the hidden state after the last step (``hidden`` itself when ``steps <= 1``).

        Bit for bit the loop ``pred, hidden = self(z[:, None], hidden)`` (module calls
        included), at a fraction of its per-step cost: one direct call of the sequence op
        a step (see the module docstring), results collected in a list and concatenated
        once; with grad mode off the loop runs under ``torch.inference_mode`` (the
        returned tensors are ordinary ones).  Differentiable when grad mode is on.

        ``torch.lstm_cell`` / ``torch.gru_cell`` are not used: float32 LSTM on CPU runs
        through oneDNN, and even where the cells share kernels with the sequence op
        (GRU, float64) their results differ in the last bits for some shapes and strides.
        """
        if steps <= 1:
            return torch.stack([z_next], dim=1), hidden
        if hidden is None:
            hidden = self._zero_hidden(z_next)
        z = z_next[:, None, :]
        self._prepare(z, hidden)
        grad = torch.is_grad_enabled()
        with torch.inference_mode(not grad):
            out, hidden = self._steps(z, hidden, steps)
        # outside inference mode: new tensors are ordinary (in-place use allowed later)
        z = torch.cat(out, dim=1)
        if not grad:
            hidden = tuple(h.clone() for h in hidden) if self.cell == "lstm" else hidden.clone()
        return z, hidden
