"""The restart objective: train and score a latent propagator for the way a coupled run
uses it.

A coupled run (T_warm, then cycles of T_m macro steps and T_mu micro time) never asks the
RNN for one-step predictions from true inputs: after every micro window it teacher-forces
the restricted micro states and then runs free for T_m steps.  Errors made in the first
free steps of each restart accumulate (for a travelling wave as a phase lag the micro
window keeps).  The restart loss imitates that use on true latent sequences ``z``::

    W ~ U{w_min, ..., w_max}                    (teacher-forced warm-up, T_mu .. T_warm)
    ẑ_W, h_W = rnn(z_{0:W})                      (prediction after the last forced state)
    ẑ_{W+k} = rnn(ẑ_{W+k-1}; h)   k = 1..H-1     (free run)
    L_restart = mean_{b, k} |ẑ_{W+k} - z_{W+k}|²,  k = 0..H-1

With ``schedule: joint`` the restart loss enters from the first epoch (one extra Adam
step a epoch); with ``finetune`` the propagator is first trained on the one-step loss
alone to its early stop and then fine-tuned on both (``finetune_lr``,
``finetune_epochs``, early stopping on the coupled score): a curriculum that keeps the
long free-run skill the one-step stage learns.

An ensemble propagator: each member runs free on its own predictions and the members'
losses are summed (each member's gradient is its standalone one, as in
:meth:`~.ensemble.EnsembleRNN.member_loss`).  Settings: the ``train_rnn.restart``
config subsection (:data:`RESTART_FIELDS`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..validation import Field, as_choice, as_int, as_int_list, as_number, parse_fields
from .ensemble import EnsembleRNN, member_weighted

#: when the restart loss enters training (``schedule``)
SCHEDULES = ("joint", "finetune")
RESTART_FIELDS = (
    Field(
        "weight",
        as_number(0),
        1.0,
        "weight of the restart loss beside the one-step loss, number >= 0",
    ),
    Field(
        "warmup",
        as_int_list(1),
        [10, 60],
        "[min, max] teacher-forced steps before the free run (T_mu .. T_warm), integers >= 1",
    ),
    Field("horizon", as_int(1), 50, "free-run steps H with the loss (at least T_m), integer >= 1"),
    Field(
        "curriculum",
        as_int(0),
        0,
        "epochs over which H grows linearly from 1 to horizon (0: H from the start)",
    ),
    Field("batch_size", as_int(1), 32, "restart windows per epoch, integer >= 1"),
    Field(
        "select_weight",
        as_number(0),
        1.0,
        "weight of the restart validation error in selection and early stopping, number >= 0",
    ),
    Field(
        "schedule",
        as_choice(SCHEDULES),
        "joint",
        "joint (restart loss from the first epoch) or finetune (one-step training to its "
        "early stop, then the restart loss from those weights)",
    ),
    Field("finetune_epochs", as_int(1), 400, "finetune: epochs of the second stage, integer >= 1"),
    Field(
        "finetune_lr",
        as_number(0, strict=True),
        1e-4,
        "finetune: Adam learning rate of the second stage, number > 0",
    ),
    Field(
        "finetune_patience",
        as_int(1),
        100,
        "finetune: early-stopping epochs of the second stage, integer >= 1",
    ),
)
#: restart settings and their defaults (the ``train_rnn.restart`` subsection)
RESTART_DEFAULTS: dict[str, Any] = {f.name: f.default for f in RESTART_FIELDS}


def as_restart(label: str, value: Any) -> dict[str, Any]:
    """Parse a ``restart`` subsection (a mapping of :data:`RESTART_FIELDS`)."""
    if not isinstance(value, Mapping):
        raise ValueError(f"{label} must be a mapping of {', '.join(RESTART_DEFAULTS)}")
    out = parse_fields(RESTART_FIELDS, value, what=label)
    lo_hi = list(out["warmup"])
    if len(lo_hi) != 2 or lo_hi[0] > lo_hi[1]:
        raise ValueError(f"{label} warmup must be [min, max] with min <= max, got {lo_hi!r}")
    out["warmup"] = lo_hi
    return out


def forecast_after(rnn: torch.nn.Module, warm: torch.Tensor, horizon: int) -> torch.Tensor:
    """Teacher-force ``warm`` ``(B, W, d)`` from a zero hidden state, then run free:
    the ``horizon`` latents ``(B, horizon, d)`` that follow the last forced state (the
    first is the prediction after it).  Differentiable when grad mode is on."""
    pred, hidden = rnn(warm)
    return rnn.free_run(pred[:, -1], hidden, horizon)[0]


def restart_loss(
    rnn: torch.nn.Module,
    warm: torch.Tensor,
    target: torch.Tensor,
    weights: torch.Tensor | None = None,
) -> torch.Tensor:
    """The restart loss (module docstring) of warm-up inputs ``warm`` ``(B, W, d)`` and the
    true latents of the free run ``target`` ``(B, H, d)`` (``target[:, 0]`` follows the
    last warm-up input).  Differentiable when grad mode is on.  ``weights`` ``(B, K)``:
    an ensemble member's sequence weights (:func:`~.ensemble.member_weighted`)."""
    h = target.shape[1]
    if isinstance(rnn, EnsembleRNN):
        mu, hidden = rnn.forward_members(warm)  # (B, W, K, d)
        z, _ = rnn.free_run_members(mu[:, -1], hidden, h)  # (B, H, K, d)
        if weights is not None:
            return member_weighted((z - target[:, :, None]) ** 2, weights)
        return F.mse_loss(z, target[:, :, None].expand_as(z)) * rnn.members
    return torch.mean((forecast_after(rnn, warm, h) - target) ** 2)


def horizon_at(cfg: Mapping[str, Any], epoch: int) -> int:
    """The free-run length at ``epoch`` (0-based): ``horizon``, or with a curriculum of
    ``c`` epochs ``1 + (horizon - 1) * min(1, epoch / c)`` rounded down."""
    if cfg["curriculum"] <= 0:
        return int(cfg["horizon"])
    frac = min(1.0, epoch / cfg["curriculum"])
    return 1 + int((cfg["horizon"] - 1) * frac)


def check_lengths(cfg: Mapping[str, Any], n_t: int, where: str) -> None:
    """Sequences of ``n_t`` steps must hold the longest warm-up plus the horizon."""
    need = cfg["warmup"][1] + cfg["horizon"]
    if n_t < need:
        raise ValueError(
            f"train_rnn.restart: {where} sequences have {n_t} steps; warmup max + horizon "
            f"= {need} are needed (lower restart.warmup or restart.horizon)"
        )


def train_windows(
    z: torch.Tensor,
    cfg: Mapping[str, Any],
    horizon: int,
    noise: float,
    scale: torch.Tensor | float,
    generator: torch.Generator | None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """A random batch for :func:`restart_loss` from sequences ``z`` ``(B, T, d)``: one
    warm-up length ``W`` for the batch, ``batch_size`` windows at random sequences and
    offsets; the warm-up inputs get Gaussian noise ``noise * scale``.  Returns
    ``(warm (b, W, d), target (b, horizon, d))``."""
    lo, hi = cfg["warmup"]
    w = int(torch.randint(lo, hi + 1, (1,), generator=generator))
    n_seq, n_t = z.shape[:2]
    b = cfg["batch_size"]
    seq = torch.randint(0, n_seq, (b,), generator=generator)
    start = torch.randint(0, n_t - w - horizon + 1, (b,), generator=generator)
    idx = start[:, None] + torch.arange(w + horizon)[None, :]
    win = z[seq[:, None].to(z.device), idx.to(z.device)]
    warm, target = win[:, :w], win[:, w:]
    if noise > 0:
        eps = torch.randn(warm.shape, generator=generator, dtype=warm.dtype).to(warm.device)
        warm = warm + noise * scale * eps
    return warm, target


def validation_windows(n_t: int, cfg: Mapping[str, Any], count: int = 8) -> list[tuple[int, int]]:
    """Deterministic ``(start, W)`` pairs for scoring restarts on sequences of ``n_t``
    steps: ``count`` starts spread evenly over the sequence, warm-ups cycling through
    ``count`` values evenly spaced in ``[w_min, w_max]``."""
    lo, hi = cfg["warmup"]
    h = cfg["horizon"]
    warm = np.linspace(lo, hi, count).round().astype(int)
    out = []
    for i, w in enumerate(warm):
        last = n_t - int(w) - h
        out.append((int(round(i * last / max(count - 1, 1))), int(w)))
    return out


@torch.no_grad()
def restart_val_loss(rnn: torch.nn.Module, z: torch.Tensor, cfg: Mapping[str, Any]) -> float:
    """Mean latent MSE of the ensemble-mean (or single) forecast over the ``horizon``
    free steps after teacher-forced restarts on validation sequences ``z`` ``(B, T, d)``
    (:func:`validation_windows`): the error a coupled run makes per restart."""
    h = cfg["horizon"]
    total = 0.0
    windows = validation_windows(z.shape[1], cfg)
    for start, w in windows:
        zf = forecast_after(rnn, z[:, start : start + w], h)
        total += float(torch.mean((zf - z[:, start + w : start + w + h]) ** 2))
    return total / len(windows)


@torch.no_grad()
def member_restart_val_loss(
    rnn: torch.nn.Module, z: torch.Tensor, cfg: Mapping[str, Any]
) -> list[float]:
    """:func:`restart_val_loss` of each member of an ensemble run on its own, ``(K,)``."""
    h = cfg["horizon"]
    windows = validation_windows(z.shape[1], cfg)
    total = torch.zeros(rnn.members, dtype=torch.float64)
    for start, w in windows:
        mu, hidden = rnn.forward_members(z[:, start : start + w])
        zf, _ = rnn.free_run_members(mu[:, -1], hidden, h)  # (B, H, K, d)
        err = (zf - z[:, start + w : start + w + h, None]) ** 2
        total += err.mean(dim=(0, 1, 3)).double().cpu()
    return (total / len(windows)).tolist()


@torch.no_grad()
def restart_scores(
    model: torch.nn.Module,
    states: np.ndarray,
    cfg: Mapping[str, Any],
    dt: float = 1.0,
    phase: bool = False,
    window: int = 10,
) -> dict[str, float]:
    """Physical scores of the restarts of :func:`restart_val_loss` for a grid LED/PCA
    ``model`` on sequences ``states`` ``(B, T, C, N)``: each window's true states are
    encoded, the first ``W`` teacher-forced, ``horizon`` steps run free and decoded, and
    channel 0 compared with the truth.  Returns ``restart_nad`` (NAD, eq 22 with the
    range of each whole sequence, mean over windows and free steps) and
    ``restart_nad_end`` (at the last free step); with ``phase``
    (:func:`ledmus.metrics.phase_shape`, ``window`` reference steps either side)
    ``restart_lag_end`` (mean lag at the last free step, time units, negative: behind),
    ``restart_lag_end_std`` and ``restart_shape_nad`` (NAD after the shift, mean)."""
    from ..metrics import phase_shape

    states = np.asarray(states, dtype=np.float64)
    b, n_t = states.shape[:2]
    h = cfg["horizon"]
    z = model.encode(states.reshape(b * n_t, *states.shape[2:])).reshape(b, n_t, -1)
    ref = states[:, :, 0]  # (B, T, N)
    span = ref.max(axis=(1, 2)) - ref.min(axis=(1, 2))
    span = np.where(span > 0, span, 1.0)
    nads, ends, lags, shapes = [], [], [], []
    for start, w in validation_windows(n_t, cfg):
        zf = forecast_after(model.rnn, z[:, start : start + w], h)
        x = np.asarray(model.decode_sequence(zf), dtype=np.float64)[:, :, 0]  # (B, H, N)
        truth = ref[:, start + w : start + w + h]
        nad_t = np.abs(x - truth).mean(axis=-1) / span[:, None]
        nads.append(nad_t.mean())
        ends.append(nad_t[:, -1].mean())
        if phase:
            idx = np.arange(start + w, start + w + h)
            for m in range(b):
                lag, shape = phase_shape(ref[m], x[m], dt, window, idx)
                lags.append(lag[-1])
                shapes.append(shape.mean())
    out = {"restart_nad": float(np.mean(nads)), "restart_nad_end": float(np.mean(ends))}
    if phase:
        out.update(
            restart_lag_end=float(np.mean(lags)),
            restart_lag_end_std=float(np.std(lags)),
            restart_shape_nad=float(np.mean(shapes)),
        )
    return out
