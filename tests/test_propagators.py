"""LatentRNN's functional recurrence is bit for bit the module-call algorithm it replaced."""

from __future__ import annotations

import itertools

import pytest
import torch

from ledmus.surrogates.propagators import LatentRNN

GRID = list(
    itertools.product(
        ("lstm", "gru"), (1, 2), (False, True), (torch.float32, torch.float64), (1, 100)
    )
)


def old_forward(rnn: LatentRNN, z, hidden):
    """``LatentRNN.forward`` before the change: the modules called."""
    h, hidden = rnn.rnn(z, hidden)
    out = rnn.readout(h)
    return (z + out if rnn.residual else out), hidden


def old_free_run(rnn: LatentRNN, z_next, hidden, steps):
    """``LatentRNN.free_run`` before the change: ``rnn(z[:, None], hidden)`` a step."""
    out = [z_next]
    z = z_next
    for _ in range(steps - 1):
        pred, hidden = old_forward(rnn, z[:, None, :], hidden)
        z = pred[:, 0]
        out.append(z)
    return torch.stack(out, dim=1), hidden


def same(a, b) -> bool:
    if isinstance(a, tuple):
        return isinstance(b, tuple) and all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
    return torch.is_tensor(b) and torch.equal(a, b)


def make(cell, layers, residual, dtype, batch, seed=0):
    torch.manual_seed(seed)
    rnn = LatentRNN(4, 16, cell, layers, residual).to(dtype).eval()
    z_warm = torch.randn(batch, 3, 4, dtype=dtype)
    return rnn, z_warm


@pytest.mark.parametrize("cell,layers,residual,dtype,batch", GRID)
def test_free_run_bitwise(cell, layers, residual, dtype, batch):
    rnn, z_warm = make(cell, layers, residual, dtype, batch)
    with torch.no_grad():
        pred, hidden = old_forward(rnn, z_warm, None)
        z_next = pred[:, -1]  # a strided view, as LED.warmup hands it over
        ref_z, ref_h = old_free_run(rnn, z_next, hidden, 40)
        z, h = rnn.free_run(z_next, hidden, 40)
    assert z.shape == (batch, 40, 4) and z.dtype == dtype
    assert same(ref_z, z)
    assert same(ref_h, h)
    assert not z.is_inference() and not (h[0] if cell == "lstm" else h).is_inference()
    z.add_(1.0)  # ordinary tensors: in-place use outside inference mode is allowed


@pytest.mark.parametrize("cell,layers,residual,dtype,batch", GRID[::3])
def test_forward_bitwise(cell, layers, residual, dtype, batch):
    rnn, z_warm = make(cell, layers, residual, dtype, batch)
    with torch.no_grad():
        ref_pred, ref_h = old_forward(rnn, z_warm, None)
        pred, h = rnn(z_warm, None)
        assert same(ref_pred, pred) and same(ref_h, h)
        ref_pred, ref_h = old_forward(rnn, z_warm[:, :1], ref_h)
        pred, h = rnn(z_warm[:, :1], h)
        assert same(ref_pred, pred) and same(ref_h, h)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_free_run_grad_mode_and_training(cell):
    """Grad mode on (train mode, as in free-run validation): same values, and a graph."""
    rnn, z_warm = make(cell, 2, True, torch.float32, 5)
    rnn.train()
    pred, hidden = old_forward(rnn, z_warm, None)
    ref_z, ref_h = old_free_run(rnn, pred[:, -1], hidden, 12)
    z, h = rnn.free_run(pred[:, -1], hidden, 12)
    assert same(ref_z, z) and same(ref_h, h)
    z.sum().backward()
    assert rnn.readout.weight.grad is not None and rnn.rnn.weight_hh_l0.grad is not None


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_free_run_edge_cases(cell):
    rnn, z_warm = make(cell, 1, False, torch.float32, 3)
    z_next = torch.randn(3, 4)
    with torch.no_grad():
        ref = old_free_run(rnn, z_next, None, 7)  # hidden None: zero state
        got = rnn.free_run(z_next, None, 7)
        assert same(ref[0], got[0]) and same(ref[1], got[1])
        _, hidden = rnn(z_warm, None)
        z1, h1 = rnn.free_run(z_next, hidden, 1)
        assert torch.equal(z1, z_next[:, None]) and h1 is hidden
        bad = hidden[:, :2] if cell == "gru" else tuple(x[:, :2] for x in hidden)
        with pytest.raises(RuntimeError, match="Expected hidden"):
            rnn.free_run(z_next, bad, 5)
        # chunks of a free run continue bit for bit
        whole, h_whole = rnn.free_run(z_next, hidden, 20)
        a, h_a = rnn.free_run(z_next, hidden, 10)
        _, h_step = rnn(a[:, -1:], h_a)
        b, h_b = rnn.free_run(rnn(a[:, -1:], h_a)[0][:, 0], h_step, 10)
        assert torch.equal(whole, torch.cat([a, b], dim=1)) and same(h_whole, h_b)
