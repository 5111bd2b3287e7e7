"""Training configs (YAML): load, fill defaults, validate before any compute."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

DEFAULTS: dict[str, Any] = {
    "seed": 0,
    "dtype": "float32",
    "autoencoder": {"kind": "mlp", "latent_dim": 8, "layers": 3, "width": 100,
                    "activation": "tanh", "variational": False, "scaler": "standard"},
    "rnn": {"cell": "lstm", "hidden": 50, "layers": 1, "residual": False},
    "train_autoencoder": {"epochs": 1000, "batch_size": 32, "lr": 1e-3, "weight_decay": 0.0,
                          "noise": 0.0, "kl_weight": 1e-3, "patience": 100, "min_lr": 1e-6,
                          "subsample": 0},
    "train_rnn": {"epochs": 1000, "batch_size": 32, "lr": 1e-3, "weight_decay": 0.0,
                  "sequence_length": 30, "hidden_propagation": 300, "noise": 0.0,
                  "patience": 100, "min_lr": 1e-6, "validation": "teacher_forced",
                  "restarts": 1},
    "pca": {"components": 8},
}  # fmt: skip
SECTIONS = ("autoencoder", "rnn", "train_autoencoder", "train_rnn")
TOP_KEYS = ("system", "data", "seed", "dtype", *SECTIONS)
#: model family (``kind``, default ``led``) -> its config sections
KIND_SECTIONS = {"led": SECTIONS, "pca": ("pca", "rnn", "train_rnn")}
DTYPES = ("float32", "float64")
VALIDATIONS = ("teacher_forced", "free_run")


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in over.items():
        out[key] = _merge(out[key], value) if isinstance(out.get(key), dict) else value
    return out


def load_config(path: str | Path) -> dict[str, Any]:
    """The YAML file as written (this is what a checkpoint records)."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"config file {str(path)!r} does not exist")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ValueError(f"config {path}: not valid YAML ({exc})") from None
    if not isinstance(raw, dict):
        raise ValueError(f"config {path}: expected a mapping at the top level")
    return raw


def resolve(raw: dict[str, Any]) -> dict[str, Any]:
    """Defaults filled in and every field checked; raises ValueError naming the field.
    ``kind`` (``led``, the default, or ``pca``) picks the model family and its sections;
    the resolved config records it."""
    kind = raw.get("kind", "led")
    if not isinstance(kind, str) or kind not in KIND_SECTIONS:
        raise ValueError(f"config: kind={kind!r} unknown; allowed: {', '.join(KIND_SECTIONS)}")
    sections = KIND_SECTIONS[kind]
    top_keys = ("kind", "system", "data", "seed", "dtype", *sections)
    unknown = sorted(set(raw) - set(top_keys))
    if unknown:
        raise ValueError(
            f"config: unknown key(s) {', '.join(unknown)} for kind {kind}; "
            f"allowed: {', '.join(top_keys)}"
        )
    for key in ("system", "data"):
        if key not in raw:
            raise ValueError(f"config: missing required key {key!r}")
    for section in sections:
        extra = raw.get(section, {})
        if not isinstance(extra, dict):
            raise ValueError(f"config: {section} must be a mapping")
        allowed = set(DEFAULTS[section]) | (
            {"channels", "kernel", "components", "d_p", "md_width"}
            if section == "autoencoder"
            else set()
        )
        bad = sorted(set(extra) - allowed)
        if bad:
            raise ValueError(
                f"config: unknown key(s) {', '.join(bad)} in {section}; allowed: {', '.join(sorted(allowed))}"
            )
    cfg = _merge({k: v for k, v in DEFAULTS.items() if k in top_keys}, raw)
    cfg["kind"] = kind
    if cfg["dtype"] not in DTYPES:
        raise ValueError(f"config: dtype={cfg['dtype']!r}; allowed: {', '.join(DTYPES)}")
    for section in [s for s in ("train_autoencoder", "train_rnn") if s in cfg]:
        for key in ("epochs", "batch_size", "patience") + (
            ("restarts",) if section == "train_rnn" else ()
        ):
            value = cfg[section][key]
            if not isinstance(value, int) or value < (0 if key == "epochs" else 1):
                raise ValueError(
                    f"config: {section}.{key} must be a positive integer, got {value!r}"
                )
        for key in ("lr", "weight_decay", "noise", "min_lr"):
            value = cfg[section][key]
            if not isinstance(value, (int, float)) or value < 0:
                raise ValueError(f"config: {section}.{key} must be a number >= 0, got {value!r}")
    tr = cfg["train_rnn"]
    if tr["validation"] not in VALIDATIONS:
        raise ValueError(
            f"config: train_rnn.validation={tr['validation']!r}; allowed: {', '.join(VALIDATIONS)}"
        )
    if tr["hidden_propagation"] < tr["sequence_length"]:
        raise ValueError(
            "config: train_rnn.hidden_propagation must be >= train_rnn.sequence_length"
        )
    if kind == "pca":
        d = cfg["pca"]["components"]
        if isinstance(d, bool) or not isinstance(d, int) or d < 1:
            raise ValueError(f"config: pca.components must be an integer >= 1, got {d!r}")
        return cfg
    if int(cfg["autoencoder"]["latent_dim"]) < 1:
        raise ValueError("config: autoencoder.latent_dim must be >= 1")
    return cfg
