"""The two LED training stages (Vlachas et al. §6.6): the autoencoder first, then the RNN on the
encoded sequences with truncated BPTT, with independent RNN restarts.

Both stages: Adam, optional input noise and weight decay, validation-based early
stopping (best weights restored) and learning-rate reduction on plateau; progress bars.
The drivers that read the data and write the outputs are in :mod:`.training`.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from ..progress import progress_bar
from .ensemble import build_rnn, is_ensemble, prediction_loss
from .led import LED
from .networks import kl_standard_normal, reparameterise
from .restart import (
    check_lengths,
    forecast_after,
    horizon_at,
    member_restart_val_loss,
    restart_loss,
    restart_val_loss,
    train_windows,
)

log = logging.getLogger(__name__)


class EarlyStopping:
    """Track the best validation loss; keep its weights; tell when patience ran out."""

    def __init__(self, module: torch.nn.Module, patience: int) -> None:
        self.module, self.patience = module, patience
        self.best, self.best_epoch, self.state = float("inf"), -1, None

    def update(self, loss: float, epoch: int) -> bool:
        """Record ``loss``; True when training should stop."""
        if loss < self.best:
            self.best, self.best_epoch = loss, epoch
            self.state = copy.deepcopy(self.module.state_dict())
        return epoch - self.best_epoch >= self.patience

    def restore(self) -> None:
        if self.state is not None:
            self.module.load_state_dict(self.state)


def _fit(
    name: str,
    params: list[torch.nn.Parameter],
    module: torch.nn.Module,
    cfg: dict[str, Any],
    train_epoch: Callable[[torch.optim.Optimizer], float],
    val_loss: Callable[[], float],
    progress: bool,
) -> dict[str, list[float]]:
    opt = torch.optim.Adam(params, lr=cfg["lr"], weight_decay=cfg["weight_decay"])
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(
        opt, factor=0.5, patience=max(1, cfg["patience"] // 4), min_lr=cfg["min_lr"]
    )
    stopper = EarlyStopping(module, cfg["patience"])
    history: dict[str, list[float]] = {"train": [], "val": [], "lr": []}
    bar = progress_bar(range(cfg["epochs"]), enabled=progress, desc=name, unit="epoch")
    for epoch in bar:
        module.train()
        train = train_epoch(opt)
        module.eval()
        with torch.no_grad():
            val = val_loss()
        history["train"].append(train)
        history["val"].append(val)
        history["lr"].append(opt.param_groups[0]["lr"])
        sched.step(val)
        bar.set_postfix(
            train=f"{train:.3e}", val=f"{val:.3e}", lr=f"{opt.param_groups[0]['lr']:.0e}"
        )
        if not np.isfinite(train):
            raise FloatingPointError(f"{name}: training loss became non-finite at epoch {epoch}")
        if stopper.update(val, epoch):
            log.info("%s: early stop at epoch %d (best %d)", name, epoch, stopper.best_epoch)
            break
    stopper.restore()
    history["best_epoch"] = [stopper.best_epoch]
    log.info("%s: best validation loss %.4e at epoch %d", name, stopper.best, stopper.best_epoch)
    return history


# ------------------------------------------------------------------ stage 1: autoencoder
def autoencoder_loss(model: LED, x: torch.Tensor, noise: float, kl_weight: float) -> torch.Tensor:
    """Loss on scaled states ``x`` ``(S, *state_shape)``: MSE (+ KL for a VAE) for grids,
    negative mixture log-likelihood per particle (+ KL) for particles."""
    ae = model.autoencoder
    x_in = x + noise * torch.randn_like(x) if noise > 0 else x
    mu, logvar = ae.encode_dist(x_in)
    z = reparameterise(mu, logvar) if model.training else mu
    if model.particles:
        loss = -ae.decoder.log_prob(z, x).mean()
    else:
        loss = torch.mean((ae.decode(z) - x) ** 2)
    if logvar is not None:
        loss = loss + kl_weight * kl_standard_normal(mu, logvar).mean() / mu.shape[-1]
    return loss


def train_autoencoder(
    model: LED,
    train: np.ndarray,
    val: np.ndarray,
    cfg: dict[str, Any],
    progress: bool = True,
    generator: torch.Generator | None = None,
) -> dict[str, list[float]]:
    """Fit the autoencoder on samples ``(S, *state_shape)`` (already physical units)."""
    x_tr = model.scaler.transform(model.as_tensor(train)).to(model.dtype)
    x_va = model.scaler.transform(model.as_tensor(val)).to(model.dtype)
    bs = cfg["batch_size"]

    def epoch(opt: torch.optim.Optimizer) -> float:
        perm = torch.randperm(x_tr.shape[0], generator=generator).to(x_tr.device)
        total = 0.0
        for i in range(0, x_tr.shape[0], bs):
            batch = x_tr[perm[i : i + bs]]
            if model.particles and 0 < cfg["subsample"] < batch.shape[1]:
                # a random subset of particles: an unbiased estimate of the mean feature
                # and of the per-particle likelihood, at a fraction of the cost
                keep = torch.randperm(batch.shape[1], generator=generator)[: cfg["subsample"]]
                batch = batch[:, keep.to(batch.device)]
            opt.zero_grad()
            loss = autoencoder_loss(model, batch, cfg["noise"], cfg["kl_weight"])
            loss.backward()
            opt.step()
            total += loss.item() * batch.shape[0]
        return total / x_tr.shape[0]

    def val_loss() -> float:
        return float(
            sum(
                autoencoder_loss(model, x_va[i : i + 1024], 0.0, cfg["kl_weight"]).item()
                * len(x_va[i : i + 1024])
                for i in range(0, len(x_va), 1024)
            )
            / len(x_va)
        )

    params = list(model.autoencoder.parameters())
    return _fit("autoencoder", params, model.autoencoder, cfg, epoch, val_loss, progress)


# ------------------------------------------------------------------ stage 2: RNN
@torch.no_grad()
def encode_sequences(model: LED, states: np.ndarray, chunk: int = 2048) -> torch.Tensor:
    """Latent sequences ``(B, T, d_z)`` of physical sequences ``(B, T, *state_shape)``."""
    b, t = states.shape[:2]
    flat = states.reshape(b * t, *states.shape[2:])
    z = torch.cat([model.encode(flat[i : i + chunk]) for i in range(0, b * t, chunk)])
    return z.reshape(b, t, -1)


def rnn_sequence_loss(
    model: LED, z: torch.Tensor, cfg: dict[str, Any], opt=None, scale: torch.Tensor | float = 1.0
) -> float:
    """Truncated BPTT over windows ``z`` ``(B, L+1, d_z)``: sub-sequences of
    ``sequence_length`` with the hidden state carried (detached) between them; one
    optimiser step per sub-sequence when ``opt`` is given.  In training, Gaussian noise
    of ``noise * scale`` (``scale``: the latents' standard deviation per dimension) is
    added to the inputs, so the learned dynamics pull perturbed latents back.  Returns
    the mean MSE of the one-step predictions (an ensemble: the members' mean loss,
    :func:`~.ensemble.prediction_loss` divided by the number of members)."""
    seq = cfg["sequence_length"]
    hidden, total, count = None, 0.0, 0
    length = z.shape[1] - 1
    for start in range(0, length, seq):
        stop = min(start + seq, length)
        inp, target = z[:, start:stop], z[:, start + 1 : stop + 1]
        if opt is not None and cfg["noise"] > 0:
            inp = inp + cfg["noise"] * scale * torch.randn_like(inp)
        loss, hidden = prediction_loss(model.rnn, inp, target, hidden)
        if opt is not None:
            opt.zero_grad()
            loss.backward()
            opt.step()
        hidden = model.rnn.detach(hidden)
        total += loss.item() * (stop - start)
        count += stop - start
    return total / count / getattr(model.rnn, "members", 1)


@torch.no_grad()
def free_run_loss(model: LED, z: torch.Tensor, warmup: int) -> float:
    """Latent forecast error on whole sequences ``z`` ``(B, T, d_z)``: teacher-force the
    first ``warmup`` steps, then iterate the RNN on its own predictions to the end and
    return the mean squared error of the forecast (the long-horizon skill that
    one-step validation does not see)."""
    warmup = min(warmup, z.shape[1] - 1)
    forecast = forecast_after(model.rnn, z[:, :warmup], z.shape[1] - warmup)
    return float(torch.mean((forecast - z[:, warmup:]) ** 2))


@torch.no_grad()
def member_free_run_loss(model: LED, z: torch.Tensor, warmup: int) -> list[float]:
    """:func:`free_run_loss` of each member of an ensemble propagator run on its own
    (fed its own predictions: :meth:`~.ensemble.EnsembleRNN.free_run_members`), ``(K,)``."""
    warmup = min(warmup, z.shape[1] - 1)
    pred, hidden = model.rnn.forward_members(z[:, :warmup])
    forecast, _ = model.rnn.free_run_members(pred[:, -1], hidden, z.shape[1] - warmup)
    err = (forecast - z[:, warmup:, None]) ** 2  # (B, T, K, d)
    return err.mean(dim=(0, 1, 3)).tolist()


def train_rnn(
    model: LED,
    z_train: torch.Tensor,
    z_val: torch.Tensor,
    cfg: dict[str, Any],
    progress: bool = True,
    generator: torch.Generator | None = None,
) -> dict[str, list[float]]:
    """Fit the propagator on latent sequences ``(B, T, d_z)``: each epoch draws
    ``batch_size`` windows of ``hidden_propagation + 1`` steps at random offsets.

    With a ``restart`` subsection (:mod:`.restart`) each epoch then takes one more Adam
    step on ``weight * L_restart`` of ``restart.batch_size`` teacher-forced-then-free
    windows (the history adds ``train_restart``), and validation ``coupled`` stops early
    on :func:`coupled_score` (long free run plus ``select_weight`` times the restart
    error)."""
    hp = min(cfg["hidden_propagation"], z_train.shape[1] - 1)
    if hp < 1:
        raise ValueError("train_rnn: training sequences need at least 2 time steps")
    n_seq, n_t = z_train.shape[:2]
    scale = z_train.std(dim=(0, 1))
    rcfg = cfg.get("restart")
    if rcfg is not None and rcfg.get("schedule", "joint") == "finetune":
        return _train_rnn_finetune(model, z_train, z_val, cfg, progress, generator)
    if rcfg is not None:
        check_lengths(rcfg, n_t, "training")
        check_lengths(rcfg, z_val.shape[1], "validation")
    restart_hist: list[float] = []

    def epoch(opt: torch.optim.Optimizer) -> float:
        seq_idx = torch.randint(0, n_seq, (cfg["batch_size"],), generator=generator)
        start = torch.randint(0, n_t - hp, (cfg["batch_size"],), generator=generator)
        idx = start[:, None] + torch.arange(hp + 1)[None, :]
        windows = z_train[seq_idx[:, None].to(z_train.device), idx.to(z_train.device)]
        loss = rnn_sequence_loss(model, windows, cfg, opt, scale)
        if rcfg is not None and rcfg["weight"] > 0:
            h = horizon_at(rcfg, len(restart_hist))
            warm, target = train_windows(z_train, rcfg, h, cfg["noise"], scale, generator)
            opt.zero_grad()
            r = restart_loss(model.rnn, warm, target)
            (rcfg["weight"] * r).backward()
            opt.step()
            restart_hist.append(r.item() / getattr(model.rnn, "members", 1))
        return loss

    def val_loss() -> float:
        if cfg["validation"] == "coupled":
            return coupled_score(model, z_val, cfg)[0]
        if cfg["validation"] == "free_run":
            return free_run_loss(model, z_val, cfg["sequence_length"])
        return rnn_sequence_loss(model, z_val, cfg)

    hist = _fit("rnn", list(model.rnn.parameters()), model.rnn, cfg, epoch, val_loss, progress)
    if rcfg is not None:
        hist["train_restart"] = restart_hist
    return hist


def _train_rnn_finetune(
    model: LED,
    z_train: torch.Tensor,
    z_val: torch.Tensor,
    cfg: dict[str, Any],
    progress: bool,
    generator: torch.Generator | None,
) -> dict[str, Any]:
    """``restart.schedule: finetune``: the one-step stage as without a restart subsection
    (validation ``coupled`` read as ``free_run``), then the joint objective from its best
    weights; the history is the first stage's with the second under ``finetune``."""
    rcfg = cfg["restart"]
    check_lengths(rcfg, z_train.shape[1], "training")
    check_lengths(rcfg, z_val.shape[1], "validation")
    first = {k: v for k, v in cfg.items() if k != "restart"}
    if first["validation"] == "coupled":
        first["validation"] = "free_run"
    hist = train_rnn(model, z_train, z_val, first, progress, generator)
    second = {
        **cfg,
        "epochs": rcfg["finetune_epochs"],
        "lr": rcfg["finetune_lr"],
        "patience": rcfg["finetune_patience"],
        "validation": "coupled",
        "restart": {**rcfg, "schedule": "joint"},
    }
    fine = train_rnn(model, z_train, z_val, second, progress, generator)
    return {**hist, "train_restart": fine.pop("train_restart"), "finetune": fine}


@torch.no_grad()
def coupled_score(model: LED, z_val: torch.Tensor, cfg: dict[str, Any]) -> tuple[float, dict]:
    """The selection score of a trained propagator on validation sequences ``z_val``:
    ``free_run_val + select_weight * restart_val`` (both latent MSEs: the long free run
    after a ``sequence_length`` warm-up, :func:`free_run_loss`, and the forecast after
    teacher-forced restarts, :func:`.restart.restart_val_loss`); without a ``restart``
    subsection the free-run error alone.  Returns ``(score, parts)``."""
    parts = {"free_run_val": free_run_loss(model, z_val, cfg["sequence_length"])}
    rcfg = cfg.get("restart")
    if rcfg is None:
        return parts["free_run_val"], parts
    parts["restart_val"] = restart_val_loss(model.rnn, z_val, rcfg)
    return parts["free_run_val"] + rcfg["select_weight"] * parts["restart_val"], parts


def train_rnn_restarts(
    model: LED,
    z_train: torch.Tensor,
    z_val: torch.Tensor,
    cfg: dict[str, Any],
    seed: int,
    progress: bool = True,
    evaluate: Callable[[LED], dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Train ``cfg["restarts"]`` propagators from independent initialisations (seeds
    ``seed + r``) and keep the one with the lowest :func:`coupled_score` on the
    validation sequences: the free-running validation error (:func:`free_run_loss`),
    plus, with a ``restart`` subsection, ``select_weight`` times the error after
    teacher-forced restarts: long latent rollouts are sensitive to the initialisation,
    and a coupled run uses the model only through restarts.  ``evaluate(model)`` adds
    scores of each restart to its history entry (e.g. the physical NAD and phase lag
    after restarts).  An ensemble propagator (``rnn.ensemble`` > 1):
    :func:`train_ensemble` instead."""
    if is_ensemble(model.spec["rnn"]):
        return train_ensemble(model, z_train, z_val, cfg, seed, progress, evaluate)
    chosen, best_state, runs = 0, None, []
    for r in range(cfg["restarts"]):
        torch.manual_seed(seed + r)
        model.rnn = build_rnn(model.latent_dim, model.spec["rnn"]).to(model.device, model.dtype)
        hist = train_rnn(
            model, z_train, z_val, cfg, progress, torch.Generator().manual_seed(seed + r)
        )
        model.eval()
        score, parts = coupled_score(model, z_val, cfg)
        extra = evaluate(model) if evaluate is not None else {}
        runs.append({"seed": seed + r, **parts, "score": score, **extra, **hist})
        log.info(
            "rnn restart %d: score %.4e (%s)",
            r,
            score,
            ", ".join(f"{k} {v:.4e}" for k, v in parts.items()),
        )
        if score < runs[chosen]["score"] or best_state is None:
            chosen, best_state = r, copy.deepcopy(model.rnn.state_dict())
    model.rnn.load_state_dict(best_state)
    return {**runs[chosen], "chosen_restart": chosen, "restarts": runs}


def train_ensemble(
    model: LED,
    z_train: torch.Tensor,
    z_val: torch.Tensor,
    cfg: dict[str, Any],
    seed: int,
    progress: bool = True,
    evaluate: Callable[[LED], dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Train an :class:`~.ensemble.EnsembleRNN` once (member ``k`` initialised from seed
    ``seed + k``; the members are the restarts, ``cfg["restarts"]`` is ignored), with
    ``latent_var`` set to the training latents' variance per dimension.  Early stopping
    follows ``cfg["validation"]`` (free_run: the ensemble mean's forecast).  The history
    adds ``member_free_run_val`` ``(K,)``, each member's own free-run validation MSE."""
    if cfg["restarts"] > 1:
        log.info("rnn: ensemble propagator, restarts=%d ignored", cfg["restarts"])
    torch.manual_seed(seed)
    model.rnn = build_rnn(model.latent_dim, model.spec["rnn"], seed).to(model.device, model.dtype)
    model.rnn.latent_var.copy_(z_train.var(dim=(0, 1)))
    hist = train_rnn(model, z_train, z_val, cfg, progress, torch.Generator().manual_seed(seed))
    model.eval()
    score, parts = coupled_score(model, z_val, cfg)
    members = member_free_run_loss(model, z_val, cfg["sequence_length"])
    log.info(
        "rnn ensemble of %d: free-run validation MSE %.4e (members %s)",
        len(members),
        parts["free_run_val"],
        ", ".join(f"{m:.3e}" for m in members),
    )
    run = {"seed": seed, **parts, "score": score, "member_free_run_val": members}
    if cfg.get("restart") is not None:
        run["member_restart_val"] = member_restart_val_loss(model.rnn, z_val, cfg["restart"])
    run.update(evaluate(model) if evaluate is not None else {})
    run.update(hist)
    return {**run, "chosen_restart": 0, "restarts": [run]}
