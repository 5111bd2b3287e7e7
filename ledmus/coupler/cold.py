"""Cold start: ``model: none`` plus ``training: <config.yaml>``.

The run starts without a trained model: every process (macro, lift, restrict, trainer;
or the one embedded process) builds the same untrained LED from the training config,
with weights drawn from the run's ``seed`` and the scaler fitted on the members'
initial conditions (:func:`~ledmus.surrogates.online.fresh_led`).  The comparison
window refuses it at first, so the run is micro-only while the online trainer learns
from the micro windows; it switches to macro where the acceptance test passes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import yaml

from .paths import resolve_file


def cold_header(values: dict[str, Any], search: list[Path]) -> tuple[Path, dict, dict]:
    """``model: none``: the training config's system as the header; the config itself."""
    if not values["training"]:
        raise ValueError(
            "setting model: none (cold start) needs setting training: a training "
            "config (.yaml), e.g. configs/fhn.yaml"
        )
    path = resolve_file(values["training"], "training", search)
    config = yaml.safe_load(path.read_text())
    if not isinstance(config, dict):
        raise ValueError(f"setting training: {path} is not a YAML mapping")
    system = values["system"] or config.get("system", "")
    if config.get("system", system) != system:
        raise ValueError(
            f"setting training: {path} is for system {config['system']!r}, "
            f"but setting system={system!r}"
        )
    config = {k: v for k, v in config.items() if k != "data"}
    return Path("none"), {"system": system, "kind": "led", "spec": None}, config


def cold_model(settings: Any) -> Any:
    """The untrained LED of a cold start as a macro model (same in every process)."""
    from ..surrogates.macro import macro_model_class
    from ..surrogates.online import fresh_led
    from .micro import initial_condition

    members = np.arange(settings.micro.ensemble)
    ic = initial_condition(
        settings.micro.solver,
        settings.micro.ic,
        settings.micro.seed,
        members,
        settings.micro.t_transient,
    )
    net = fresh_led(settings.macro.cold_config, ic, settings.micro.system, settings.micro.seed)
    return macro_model_class("led").from_network(net)
