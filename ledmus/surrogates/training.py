"""Training drivers: a config in, a checkpoint plus ``<stem>_loss.png`` and
``<stem>_history.json`` out.  LED (Vlachas et al. §6.6) trains in two stages, the autoencoder
then the RNN (:mod:`.fitting`; an ensemble propagator, ``rnn.ensemble`` > 1, is trained once:
:func:`.fitting.train_ensemble`); the PCA baseline fits its components by SVD, then the
same RNN stage.  The stage functions themselves live in :mod:`.fitting`.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..atomic import write_json
from ..device import resolve_device
from ..trajectory import Trajectory, fingerprint, read_trajectory
from .checkpoint import save_checkpoint
from .config import resolve
from .family import FAMILIES, TrainOptions
from .fitting import (
    encode_sequences,
    train_autoencoder,
    train_rnn_restarts,
)
from .led import LED
from .pca import PCA
from .restart import restart_scores
from .training_plots import plot_history

__all__ = ["load_training_data", "train_from_config", "train_led", "train_pca"]

log = logging.getLogger(__name__)


def _samples(traj: Trajectory) -> np.ndarray:
    return traj.states.reshape(-1, *traj.states.shape[2:])


def train_from_config(
    raw_config: dict[str, Any],
    out: str | Path,
    *,
    device: str = "cpu",
    progress: bool = True,
    base_dir: Path | None = None,
) -> Path:
    """Train the model ``raw_config`` describes with its family's ``train``
    (:mod:`ledmus.surrogates.family`; ``kind``, default ``led``) and write the checkpoint ``out`` (plus
    whatever the family writes beside it: ``<out stem>_loss.png`` and
    ``<out stem>_history.json`` for LED, PCA and VO).  The config is checked before any
    compute."""
    resolve(raw_config)
    out = Path(out)
    if not out.parent.is_dir():
        raise ValueError(f"--out folder {str(out.parent)!r} does not exist")
    train = FAMILIES[raw_config.get("kind", "led")].need("train", "ledmus train")
    return Path(train(raw_config, out, TrainOptions(device, progress, base_dir)))


def load_training_data(
    cfg: dict[str, Any], base_dir: Path | None = None
) -> tuple[Trajectory, Trajectory]:
    """The training and validation runs of a resolved config (``data``: a folder of
    ``train.h5`` and, optionally, ``val.h5``; relative to ``base_dir`` when it is not
    found as given)."""
    data_dir = Path(cfg["data"])
    if not data_dir.is_absolute() and base_dir is not None and not data_dir.exists():
        data_dir = base_dir / data_dir
    train_traj = read_trajectory(data_dir / "train.h5")
    val_path = data_dir / "val.h5"
    val_traj = read_trajectory(val_path) if val_path.exists() else train_traj
    if train_traj.system != cfg["system"]:
        raise ValueError(
            f"data in {data_dir} is for system {train_traj.system!r}, config says {cfg['system']!r}"
        )
    return train_traj, val_traj


def train_led(raw_config: dict[str, Any], out: Path, options: TrainOptions) -> Path:
    """The LED family's ``train``: the autoencoder, then the latent RNN (Vlachas et al.
    §6.6)."""
    cfg = resolve(raw_config)
    dev, progress = resolve_device(options.device), options.progress
    train_traj, val_traj = load_training_data(cfg, options.base_dir)
    torch.manual_seed(cfg["seed"])
    gen = torch.Generator().manual_seed(cfg["seed"])
    spec = _spec(cfg, train_traj, "autoencoder")
    model = LED(spec).to(dtype=getattr(torch, cfg["dtype"]))
    model.scaler.to(torch.float64)
    samples = _samples(train_traj)
    if model.particles:
        half = float(spec["box"]) / 2
        model.scaler.fit(samples, low=-half, high=half)
    else:
        model.scaler.fit(samples)
    model.to(dev)

    t0 = time.perf_counter()
    hist_ae = train_autoencoder(
        model, samples, _samples(val_traj), cfg["train_autoencoder"], progress, gen
    )
    t_ae = time.perf_counter() - t0
    model.eval()
    hist_rnn, t_rnn = _train_propagator(cfg, model, train_traj, val_traj, progress)
    history = {
        "autoencoder": hist_ae,
        "rnn": hist_rnn,
        "wall_time_s": {"autoencoder": t_ae, "rnn": t_rnn},
        "device": str(dev),
        "threads": torch.get_num_threads(),
    }
    _write_outputs(out, model, raw_config, fingerprint(train_traj, val_traj), history)
    log.info(
        "trained %s in %.0f s (autoencoder %.0f s, rnn %.0f s): %s",
        cfg["system"],
        t_ae + t_rnn,
        t_ae,
        t_rnn,
        out,
    )
    return out


def _train_propagator(
    cfg: dict[str, Any],
    model: torch.nn.Module,
    train: Trajectory,
    val: Trajectory,
    progress: bool,
) -> tuple[dict[str, Any], float]:
    """The RNN stage on the encoded train and validation runs
    (:func:`.fitting.train_rnn_restarts`, each restart scored by
    :func:`_restart_evaluator`): its history and wall time."""
    z_tr = encode_sequences(model, train.states)
    z_va = encode_sequences(model, val.states)
    t0 = time.perf_counter()
    hist = train_rnn_restarts(
        model,
        z_tr,
        z_va,
        cfg["train_rnn"],
        cfg["seed"],
        progress,
        _restart_evaluator(cfg, model, val),
    )
    seconds = time.perf_counter() - t0
    model.eval()
    return hist, seconds


def _restart_evaluator(cfg: dict[str, Any], model: torch.nn.Module, val: Trajectory):
    """With a ``train_rnn.restart`` subsection and a grid model: a callback scoring each
    trained propagator by the physical NAD (and, for travelling waves, the phase lag) after
    teacher-forced restarts on the validation runs (:func:`.restart.restart_scores`)."""
    rcfg = cfg["train_rnn"].get("restart")
    if rcfg is None or getattr(model, "particles", False) or val.states.ndim != 4:
        return None
    from .. import systems

    spec = systems.get(cfg["system"]) if cfg["system"] in systems.names() else None
    phase = bool(spec is not None and spec.travelling_wave)
    dt = float(val.t[1] - val.t[0]) if len(val.t) > 1 else 1.0

    def evaluate(m: torch.nn.Module) -> dict[str, float]:
        return restart_scores(m, val.states, rcfg, dt, phase)

    return evaluate


def _spec(cfg: dict[str, Any], traj: Trajectory, stage: str) -> dict[str, Any]:
    """The model's constructor spec: system, state shape, box, the ``stage`` section
    (``autoencoder`` or ``pca``) and the ``rnn`` section, in that order."""
    return {
        "system": cfg["system"],
        "state_shape": list(traj.states.shape[2:]),
        "box": traj.params.get("box"),
        stage: cfg[stage],
        "rnn": cfg["rnn"],
    }


def _write_outputs(
    out: Path,
    model: torch.nn.Module,
    raw_config: dict[str, Any],
    fp: str,
    history: dict[str, Any],
) -> None:
    """Checkpoint, ``<stem>_loss.png`` and ``<stem>_history.json``."""
    save_checkpoint(out, model.cpu(), config=raw_config, fingerprint=fp, history=history)
    plot_history(history, out.with_name(out.stem + "_loss.png"))
    write_json(out.with_name(out.stem + "_history.json"), history)


def train_pca_config(raw_config: dict[str, Any], out: Path, options: TrainOptions) -> Path:
    """The PCA family's ``train`` (:func:`train_pca` on the config's data)."""
    cfg = resolve(raw_config)
    train_traj, val_traj = load_training_data(cfg, options.base_dir)
    dev = resolve_device(options.device)
    return train_pca(cfg, raw_config, out, dev, train_traj, val_traj, options.progress)


def train_pca(
    cfg: dict[str, Any],
    raw_config: dict[str, Any],
    out: Path,
    dev: torch.device,
    train_traj: Trajectory,
    val_traj: Trajectory,
    progress: bool = True,
) -> Path:
    """The PCA baseline (``kind: pca``): stage 1 fits the scaler and the principal
    components (SVD, no gradient), stage 2 trains the latent RNN on the PCA
    coefficients exactly as for LED (:func:`train_rnn_restarts`)."""
    torch.manual_seed(cfg["seed"])
    spec = _spec(cfg, train_traj, "pca")
    model = PCA(spec).to(dtype=getattr(torch, cfg["dtype"]))
    model.scaler.to(torch.float64)
    t0 = time.perf_counter()
    ratio = model.fit_pca(_samples(train_traj))
    t_pca = time.perf_counter() - t0
    model.to(dev).eval()
    hist_pca = {
        "explained_variance_ratio": ratio.tolist(),
        "explained_variance_total": float(ratio.sum()),
        "reconstruction_mse_train": model.scaled_reconstruction_mse(_samples(train_traj)),
        "reconstruction_mse_val": model.scaled_reconstruction_mse(_samples(val_traj)),
    }
    log.info(
        "pca: %d components explain %.6f of the variance (validation MSE %.3e)",
        model.latent_dim,
        hist_pca["explained_variance_total"],
        hist_pca["reconstruction_mse_val"],
    )
    hist_rnn, t_rnn = _train_propagator(cfg, model, train_traj, val_traj, progress)
    history = {
        "pca": hist_pca,
        "rnn": hist_rnn,
        "wall_time_s": {"pca": t_pca, "rnn": t_rnn},
        "device": str(dev),
        "threads": torch.get_num_threads(),
    }
    _write_outputs(out, model, raw_config, fingerprint(train_traj, val_traj), history)
    log.info(
        "trained pca %s in %.0f s (pca %.1f s, rnn %.0f s): %s",
        cfg["system"],
        t_pca + t_rnn,
        t_pca,
        t_rnn,
        out,
    )
    return out
