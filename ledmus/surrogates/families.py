"""The registration records of the LED, PCA and virtual-observable families
(:mod:`ledmus.surrogates.family`; the moment closures register theirs in :mod:`.closure.family`).
Importing :mod:`ledmus.surrogates` registers them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .config import PCA_SECTIONS, SECTIONS, VO_SECTIONS, resolve_sections
from .family import EvaluateOptions, Family, TrainOptions, register_family
from .led import LED
from .led_macro import LEDMacro
from .pca import PCA, PCAMacro
from .training import load_training_data, train_led, train_pca_config
from .vo import VirtualObservableCG
from .vo_macro import VOMacro


def resolve_led(raw: dict[str, Any]) -> dict[str, Any]:
    return resolve_sections(raw, SECTIONS)


def resolve_pca(raw: dict[str, Any]) -> dict[str, Any]:
    return resolve_sections(raw, PCA_SECTIONS)


def resolve_vo(raw: dict[str, Any]) -> dict[str, Any]:
    return resolve_sections(raw, VO_SECTIONS)


def evaluate_forecast(
    payload: dict[str, Any], model_path: str | Path, data: Any, options: EvaluateOptions
) -> dict[str, Any]:
    """The LED and PCA families' ``evaluate``: the system's latent-forecast protocol
    (:func:`.forecast.evaluate_forecast`; imported here, on use, so that importing
    :mod:`ledmus.surrogates` does not import the solvers)."""
    from .forecast import evaluate_forecast as forecast

    return forecast(payload, model_path, data, options)


def train_vo(raw_config: dict[str, Any], out: Path, options: TrainOptions) -> Path:
    """The VO family's ``train``: the model is float64 on the CPU (``options.device`` is
    not used)."""
    from .vo_training import train_vo_from_config

    cfg = resolve_vo(raw_config)
    train_traj, _ = load_training_data(cfg, options.base_dir)
    return train_vo_from_config(cfg, raw_config, out, train_traj, options.progress)


def evaluate_vo_checkpoint(
    payload: dict[str, Any], model_path: str | Path, data: Any, options: EvaluateOptions
) -> dict[str, Any]:
    """The VO family's ``evaluate``: the seed-003 protocol
    (:func:`.vo_evaluation.evaluate_vo`, on the CPU in float64; the forecast options
    ``t_warm``, ``horizon``, ``n_ics`` and ``device`` do not apply)."""
    from ..atomic import write_json
    from .checkpoint import model_from_payload
    from .vo_evaluation import evaluate_vo

    model = model_from_payload(payload, model_path)
    out_dir = options.out_dir
    result = evaluate_vo(model, payload, model_path, data, out_dir=out_dir, plots=options.plots)
    if out_dir is not None:
        write_json(out_dir / "metrics.json", result)
    return result


LED_FAMILY = register_family(
    Family(
        "led",
        network=LED,
        macro=LEDMacro,
        resolve=resolve_led,
        train=train_led,
        evaluate=evaluate_forecast,
        online=True,
        description="autoencoder + latent RNN (Vlachas et al.)",
    )
)
PCA_FAMILY = register_family(
    Family(
        "pca",
        network=PCA,
        macro=PCAMacro,
        resolve=resolve_pca,
        train=train_pca_config,
        evaluate=evaluate_forecast,
        description="PCA + latent RNN (the LED paper's baseline)",
    )
)
VO_FAMILY = register_family(
    Family(
        "vo",
        network=VirtualObservableCG,
        macro=VOMacro,
        resolve=resolve_vo,
        train=train_vo,
        evaluate=evaluate_vo_checkpoint,
        description="probabilistic coarse-graining with virtual observables (Kaltenbach et al.)",
    )
)
