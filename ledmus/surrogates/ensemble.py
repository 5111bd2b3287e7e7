"""Ensembles of latent propagators with an uncertainty estimate (deep ensembles, as AdaLED).

``K`` propagators of the :class:`~.propagators.LatentRNN` form run as ONE block-diagonal
LatentRNN (``core``): input ``K d`` (member ``k`` reads block ``k``, a copy of ``z``),
hidden ``K H`` (member ``k`` owns block ``k`` of every gate chunk), read-out
``W = diag(W_1 … W_K)`` ``(K d, K H)``, so training and propagation call the fused
``_VF.lstm`` / ``_VF.gru`` op once for all members::

    h_t = H(tile_K(z_t), h_{t-Δt}),   pred_{k,t} = [z_t +] W_k h_{k,t}   (B, T, K, d)
    pred_t = mean_k pred_{k,t}                                            (B, T, d)

Off-block weights are exactly zero: zeroed at init, gradients multiplied by the block mask
(hooks; under Adam, with or without weight decay, a zero weight with zero gradient stays
zero).  Member ``k`` starts as ``LatentRNN(d, H, …)`` after ``manual_seed(seed + k)``.

Uncertainty of a prediction (``B`` rows, per time step), ``v`` = :attr:`latent_var` ``(d,)``
(the training latents' variance per dimension), population variances over members::

    point head:     u = mean_j Var_k(pred_{k,j}) / v_j
    gaussian head:  u = mean_j [mean_k σ²_{k,j} + Var_k(μ_{k,j})] / v_j   (total variance)

With ``head="gaussian"`` a second block-diagonal read-out gives each member's log-variance
``log σ²_k = V_k h_k + b_k`` and training minimises the Gaussian NLL of ``μ_k``.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import _VF, nn

from .propagators import Hidden, LatentRNN

HEADS = ("point", "gaussian")


class _BlockMask:
    """Gradient hook: ``grad * mask`` (the mask follows the gradient's device and dtype)."""

    def __init__(self, mask: torch.Tensor) -> None:
        self.mask = mask

    def __call__(self, grad: torch.Tensor) -> torch.Tensor:
        if self.mask.device != grad.device or self.mask.dtype != grad.dtype:
            self.mask = self.mask.to(grad)
        return grad * self.mask


class EnsembleRNN(nn.Module):
    """``members`` LatentRNN propagators (``cell``, ``hidden``, ``layers``, ``residual``
    as :class:`~.propagators.LatentRNN`) in one block-diagonal LatentRNN ``core``;
    ``head`` in {point, gaussian}; ``seed``: member ``k`` starts as a LatentRNN built after
    ``torch.manual_seed(seed + k)`` (None: drawn from the global generator)."""

    def __init__(
        self,
        latent_dim: int,
        hidden: int = 50,
        cell: str = "lstm",
        layers: int = 1,
        residual: bool = False,
        members: int = 5,
        head: str = "point",
        seed: int | None = None,
    ) -> None:
        super().__init__()
        if head not in HEADS or members < 1:
            raise ValueError(f"head={head!r} (allowed: {', '.join(HEADS)}), members={members} >= 1")
        self.latent_dim, self.hidden, self.layers = int(latent_dim), int(hidden), int(layers)
        self.members, self.head = int(members), head
        self.cell, self.residual = cell, bool(residual)
        k_, d, h = self.members, self.latent_dim, self.hidden
        self.core = LatentRNN(k_ * d, k_ * h, cell, layers, residual)
        self.logvar = nn.Linear(k_ * h, k_ * d) if head == "gaussian" else None
        self.register_buffer("latent_var", torch.ones(d))
        self.last_spread = self._last_z = None  # last prediction's uncertainty (B,), it (B, d)
        seed = int(torch.randint(0, 2**31 - k_, ())) if seed is None else seed
        with torch.no_grad():
            for p in self.parameters():
                p.zero_()
            for k in range(k_):
                with torch.random.fork_rng(devices=[]):
                    torch.manual_seed(seed + k)
                    one = LatentRNN(d, h, cell, layers, residual)
                    lv = nn.Linear(h, d) if head == "gaussian" else None
                self._put(k, one, lv)
        self._register_hooks()

    # ------------------------------------------------------------------ block structure
    def _blocks(self) -> list[tuple[str, nn.Parameter, int, int, int | None]]:
        """``(name, parameter, gates, row block, column block or None)`` of every weight."""
        g = 4 if self.cell == "lstm" else 3
        d, h = self.latent_dim, self.hidden
        out = []
        for name, p in self.core.rnn.named_parameters():
            cols = None if name.startswith("bias") else (d if name == "weight_ih_l0" else h)
            out.append((f"rnn.{name}", p, g, h, cols))
        out.append(("readout.weight", self.core.readout.weight, 1, d, h))
        if self.logvar is not None:
            out += [
                ("logvar.weight", self.logvar.weight, 1, d, h),
                ("logvar.bias", self.logvar.bias, 1, d, None),
            ]
        return out

    def _index(self, k: int, gates: int, size: int, cols: int | None) -> tuple:
        """Index of member ``k``'s block: its rows in each of ``gates`` chunks of
        ``K size`` rows, its ``cols`` columns (None: a bias)."""
        base = torch.arange(k * size, (k + 1) * size)
        rows = torch.cat([g * self.members * size + base for g in range(gates)])
        if cols is None:
            return (rows,)
        return rows[:, None], torch.arange(k * cols, (k + 1) * cols)[None, :]

    @staticmethod
    def _named(one: LatentRNN, logvar: nn.Linear | None = None) -> dict[str, torch.Tensor]:
        """A standalone member's weights under the names of :meth:`_blocks`."""
        out = {f"rnn.{n}": p for n, p in one.rnn.named_parameters()}
        out["readout.weight"] = one.readout.weight
        if logvar is not None:
            out["logvar.weight"], out["logvar.bias"] = logvar.weight, logvar.bias
        return out

    def _put(self, k: int, one: LatentRNN, logvar: nn.Linear | None) -> None:
        """Copy the standalone member ``one`` (and its log-variance read-out) into block k."""
        src = self._named(one, logvar)
        for name, p, *blk in self._blocks():
            p.data[self._index(k, *blk)] = src[name].data.to(p)

    def block_masks(self) -> dict[str, torch.Tensor]:
        """Name -> 0/1 mask of the entries a member owns (shape of the weight)."""
        masks = {}
        for name, p, *blk in self._blocks():
            mask = torch.zeros(p.shape, dtype=torch.bool)
            for k in range(self.members):
                mask[self._index(k, *blk)] = True
            masks[name] = mask
        return masks

    def _register_hooks(self) -> None:
        masks = self.block_masks()
        for name, p, *_ in self._blocks():
            p.register_hook(_BlockMask(masks[name].to(p)))

    def __setstate__(self, state: dict[str, Any]) -> None:
        """Copies (``copy.deepcopy``, pickling) get fresh parameters: hook them again."""
        super().__setstate__(state)
        self._register_hooks()

    def member(self, k: int) -> LatentRNN:
        """Member ``k`` as a standalone :class:`LatentRNN` (the mean read-out only)."""
        one = LatentRNN(self.latent_dim, self.hidden, self.cell, self.layers, self.residual)
        dst = self._named(one.to(self.core.readout.weight))
        with torch.no_grad():
            for name, p, *blk in self._blocks():
                if name in dst:
                    dst[name].copy_(p[self._index(k, *blk)])
        return one.train(self.training)

    # ------------------------------------------------------------------ recurrence
    def _tile(self, z: torch.Tensor) -> torch.Tensor:
        """``(..., d)`` -> ``(..., K d)``: every member's input block is ``z``."""
        return z if self.members == 1 else z.repeat(*([1] * (z.dim() - 1)), self.members)

    def _members(self, z: torch.Tensor, hidden: Hidden | None) -> tuple:
        """``z`` ``(B, T, d)`` -> member means ``(B, T, K, d)``, log-variances (None for
        the point head), hidden: the block recurrence as in LatentRNN.forward."""
        zz = self._tile(z)
        if hidden is None or zz.dim() != 3:
            h, hidden = self.core.rnn(zz, hidden)
        else:
            self.core._prepare(zz, hidden)
            h, hidden = self.core._recur(zz, hidden)
        return *self._heads(zz, h), hidden

    def _heads(self, zz: torch.Tensor, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Member means ``(B, T, K, d)`` and log-variances of tiled inputs ``zz`` and
        hidden outputs ``h`` ``(B, T, K H)``."""
        mu = F.linear(h, self.core.readout.weight)
        if self.residual:
            mu = zz + mu
        shape = (*h.shape[:-1], self.members, self.latent_dim)
        lv = None if self.logvar is None else F.linear(h, self.logvar.weight, self.logvar.bias)
        return mu.view(shape), (None if lv is None else lv.view(shape))

    def spread(self, mu: torch.Tensor, logvar: torch.Tensor | None = None) -> torch.Tensor:
        """Uncertainty ``u`` ``(...)`` of member predictions ``mu`` ``(..., K, d)`` (and
        log-variances, gaussian head): the module docstring's equation."""
        var = mu.var(dim=-2, correction=0)
        if logvar is not None:
            var = var + logvar.exp().mean(dim=-2)
        return (var / self.latent_var.to(var)).mean(dim=-1)

    def _remember(self, z: torch.Tensor, u: torch.Tensor) -> None:
        self._last_z, self.last_spread = z.detach().clone(), u.detach().clone()

    def forward_members(
        self, z: torch.Tensor, hidden: Hidden | None = None
    ) -> tuple[torch.Tensor, Hidden]:
        """``z`` ``(B, T, d)`` -> every member's predictions ``(B, T, K, d)``, hidden."""
        mu, _, hidden = self._members(z, hidden)
        return mu, hidden

    def forward_spread(
        self, z: torch.Tensor, hidden: Hidden | None = None
    ) -> tuple[torch.Tensor, Hidden, torch.Tensor]:
        """``z`` ``(B, T, d)`` -> ensemble mean ``(B, T, d)``, hidden, uncertainty ``(B, T)``."""
        mu, lv, hidden = self._members(z, hidden)
        pred, u = mu.mean(dim=-2), self.spread(mu, lv)
        self._remember(pred[..., -1, :], u[..., -1])
        return pred, hidden, u

    def forward(self, z: torch.Tensor, hidden: Hidden | None = None) -> tuple[torch.Tensor, Hidden]:
        """``z`` ``(B, T, d)`` -> ensemble-mean predictions of the next latents ``(B, T, d)``
        (every member reads the same ``z``), hidden; keeps the last step's spread."""
        mu, lv, hidden = self._members(z, hidden)
        pred = mu.mean(dim=-2)
        last_lv = None if lv is None else lv[..., -1, :, :]
        self._remember(pred[..., -1, :], self.spread(mu[..., -1, :, :], last_lv))
        return pred, hidden

    def member_loss(
        self,
        inp: torch.Tensor,
        target: torch.Tensor,
        hidden: Hidden | None,
        weights: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, Hidden]:
        """Sum over members of each member's loss (so each member's gradient is its
        standalone one): MSE ``sum_k mean((μ_k - target)²)``, or the Gaussian NLL.
        ``weights`` ``(B, K)``: member ``k`` weighs sequence ``b`` by ``w_bk`` (a
        bootstrap resample's counts), ``sum_k sum_b w_bk l_bk / sum_b w_bk``."""
        mu, lv, hidden = self._members(inp, hidden)
        tgt = target.unsqueeze(-2).expand_as(mu)
        if weights is not None:
            per = (
                (mu - tgt) ** 2
                if lv is None
                else F.gaussian_nll_loss(mu, tgt, lv.exp(), reduction="none")
            )
            return member_weighted(per, weights), hidden
        loss = F.mse_loss(mu, tgt) if lv is None else F.gaussian_nll_loss(mu, tgt, lv.exp())
        return loss * self.members, hidden

    @staticmethod
    def detach(hidden: Hidden) -> Hidden:
        """The hidden state cut from the graph (truncated BPTT)."""
        return LatentRNN.detach(hidden)

    def _zero_hidden(self, z_next: torch.Tensor) -> Hidden:
        return self.core._zero_hidden(z_next)

    # ------------------------------------------------------------------ free run
    def _steps(
        self, z: torch.Tensor, hidden: Hidden, steps: int, mean: bool, every: bool
    ) -> tuple[list, list, Hidden]:
        """Free-run loop from ``z`` ``(B, 1, d)`` (``mean=False``: ``(B, 1, K d)``, each
        member fed its own prediction): latents, and spreads (every step or the last)."""
        args = self.core._op_args()
        op = _VF.lstm if self.cell == "lstm" else _VF.gru
        out, spreads = [z], []
        for s in range(steps - 1):
            zz = self._tile(z) if mean else z
            if self.cell == "lstm":
                y, h, c = op(zz, hidden, *args)
                hidden = (h, c)
            else:
                y, hidden = op(zz, hidden, *args)
            mu, lv = self._heads(zz, y)
            if mean:
                z = mu.mean(dim=-2)
                if every or s == steps - 2:
                    spreads.append(self.spread(mu, lv))
            else:
                z = mu.flatten(-2)
            out.append(z)
        return out, spreads, hidden

    def _run(
        self, z0: torch.Tensor, hidden: Hidden | None, steps: int, mean: bool, every: bool = True
    ) -> tuple[torch.Tensor, Hidden, torch.Tensor | None]:
        if hidden is None:
            hidden = self._zero_hidden(z0)
        z = z0[:, None, :]
        self.core._prepare(self._tile(z) if mean else z, hidden)
        grad, onednn = torch.is_grad_enabled(), torch._C._get_mkldnn_enabled()
        torch._C._set_mkldnn_enabled(False)  # see free_run
        try:
            with torch.inference_mode(not grad):
                out, spreads, hidden = self._steps(z, hidden, steps, mean, every)
        finally:
            torch._C._set_mkldnn_enabled(onednn)
        z = torch.cat(out, dim=1)
        u = torch.cat(spreads, dim=1) if spreads else None
        if not grad:
            hidden = tuple(h.clone() for h in hidden) if self.cell == "lstm" else hidden.clone()
            u = None if u is None else u.clone()
        return z, hidden, u

    def free_run_spread(
        self, z_next: torch.Tensor, hidden: Hidden | None, steps: int
    ) -> tuple[torch.Tensor, Hidden, torch.Tensor]:
        """:meth:`free_run` plus the uncertainty ``(B, steps)`` of each returned latent;
        column 0 is that of ``z_next`` when it is the last prediction this module made
        (:attr:`last_spread`), else NaN."""
        b = z_next.shape[0]
        first = torch.full((b, 1), float("nan"), dtype=z_next.dtype, device=z_next.device)
        if self._last_z is not None and self._last_z.shape == z_next.shape:
            if torch.equal(self._last_z.to(z_next), z_next.detach()):
                first = self.last_spread.to(z_next)[:, None]
        if steps <= 1:
            return torch.stack([z_next], dim=1), hidden, first[:, :steps]
        z, hidden, u = self._run(z_next, hidden, steps, mean=True)
        self._remember(z[:, -1], u[:, -1])
        return z, hidden, torch.cat([first, u], dim=1)

    def free_run(
        self, z_next: torch.Tensor, hidden: Hidden | None, steps: int
    ) -> tuple[torch.Tensor, Hidden]:
        """Iterate ``steps`` times feeding the ensemble mean back to every member: the
        latents ``(B, steps, d)`` starting with ``z_next``, and the last hidden state
        (``hidden`` itself when ``steps <= 1``), as :meth:`LatentRNN.free_run`.  Native
        kernel, not oneDNN (which re-lays out the weights every one-step call: 2.5 times
        slower at K = 5, B = 2): equal to ``self(z[:, None], hidden)`` loops to rounding."""
        if steps <= 1:
            return torch.stack([z_next], dim=1), hidden
        z, hidden, u = self._run(z_next, hidden, steps, mean=True, every=False)
        self._remember(z[:, -1], u[:, -1])
        return z, hidden

    def free_run_members(
        self, z_next: torch.Tensor, hidden: Hidden | None, steps: int
    ) -> tuple[torch.Tensor, Hidden]:
        """Each member on its own predictions (independent forecasts): ``z_next``
        ``(B, K, d)`` -> ``(B, steps, K, d)`` and the last hidden state."""
        if steps <= 1:
            return z_next[:, None], hidden
        z, hidden, _ = self._run(z_next.flatten(-2), hidden, steps, mean=False)
        return z.unflatten(-1, (self.members, self.latent_dim)), hidden


def is_ensemble(cfg: dict[str, Any]) -> bool:
    """Whether an ``rnn`` config section asks for an :class:`EnsembleRNN` (``ensemble`` > 1
    or ``head`` gaussian; both absent: a plain LatentRNN, as before they existed)."""
    return int(cfg.get("ensemble", 1)) > 1 or cfg.get("head", "point") != "point"


def build_rnn(latent_dim: int, cfg: dict[str, Any], seed: int | None = None) -> nn.Module:
    """The propagator of an ``rnn`` config section (:func:`is_ensemble`): a
    :class:`LatentRNN` or an :class:`EnsembleRNN` (members seeded ``seed + k``)."""
    cfg = dict(cfg)
    members, head = int(cfg.pop("ensemble", 1)), cfg.pop("head", "point")
    if not is_ensemble({"ensemble": members, "head": head}):
        return LatentRNN(latent_dim, **cfg)
    return EnsembleRNN(latent_dim, members=members, head=head, seed=seed, **cfg)


def member_weighted(per: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Per-element losses ``(B, T, K, d)`` and sequence weights per member ``(B, K)`` ->
    ``sum_k sum_b w_bk mean_{t,d}(per_btkd) / sum_b w_bk`` (all weights 1: the members'
    summed means)."""
    per_seq = per.mean(dim=(1, 3))  # (B, K)
    w = weights.to(per_seq.dtype)
    return ((w * per_seq).sum(dim=0) / w.sum(dim=0).clamp_min(1e-12)).sum()


def prediction_loss(
    rnn: nn.Module,
    inp: torch.Tensor,
    target: torch.Tensor,
    hidden: Hidden | None,
    weights: torch.Tensor | None = None,
) -> tuple[torch.Tensor, Hidden]:
    """One-step loss of ``rnn`` on ``inp`` ``(B, T, d)`` against ``target`` ``(B, T, d)``:
    LatentRNN ``mean((pred - target)²)``; EnsembleRNN :meth:`EnsembleRNN.member_loss`
    (the sum of the members' losses; ``weights`` ``(B, K)``: per-member sequence
    weights, ignored by a single propagator).  Returns ``(loss, hidden)``."""
    if isinstance(rnn, EnsembleRNN):
        return rnn.member_loss(inp, target, hidden, weights)
    pred, hidden = rnn(inp, hidden)
    return torch.mean((pred - target) ** 2), hidden
