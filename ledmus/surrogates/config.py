"""Training configs (YAML): load, fill defaults, validate before any compute.

Every section's fields are declared with :mod:`ledmus.validation` (the layer that also
checks the coupler's run settings); errors name the field as ``config <section>.<key>``.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import yaml

from ..validation import (
    REQUIRED,
    Field,
    as_bool,
    as_choice,
    as_int,
    as_int_list,
    as_number,
    as_path,
    as_str,
    parse_fields,
)
from .ensemble import HEADS
from .family import FAMILIES
from .led import AUTOENCODERS, OLD_ARCHITECTURE_KEY
from .networks import ACTIVATIONS
from .propagators import CELLS
from .restart import RESTART_DEFAULTS, as_restart
from .scalers import SCALER_METHODS

#: default of a field that has none: the key is in the resolved section only when given
OPTIONAL: Any = object()
DTYPES = ("float32", "float64")
VALIDATIONS = ("teacher_forced", "free_run", "coupled")


def _one_of(choices: Any) -> str:
    return f"one of {', '.join(choices)}"


TOP_FIELDS = (
    Field("kind", as_str, "led", "model family, a registered kind (ledmus.surrogates.family)"),
    Field("system", as_str, doc="the micro system the data belong to"),
    Field("data", as_path, doc="folder of train.h5 (and val.h5)"),
    Field("seed", as_int(0), 0, "integer >= 0"),
    Field("dtype", as_choice(DTYPES), "float32", _one_of(DTYPES)),
)
AUTOENCODER_FIELDS = (
    Field("architecture", as_choice(AUTOENCODERS), "mlp", _one_of(AUTOENCODERS)),
    Field("latent_dim", as_int(1), 8, "integer >= 1"),
    Field("layers", as_int(1), 3, "hidden layers, integer >= 1"),
    Field("width", as_int(1), 100, "units per hidden layer, integer >= 1"),
    Field("activation", as_choice(ACTIVATIONS), "tanh", _one_of(ACTIVATIONS)),
    Field("variational", as_bool, False, "true or false"),
    Field("scaler", as_choice(SCALER_METHODS), "standard", _one_of(SCALER_METHODS)),
    Field("channels", as_int_list(1), OPTIONAL, "conv: channels per block, integers >= 1"),
    Field("kernel", as_int(1), OPTIONAL, "conv: kernel size, integer >= 1"),
    Field("components", as_int(1), OPTIONAL, "particles: mixture kernels, integer >= 1"),
    Field("d_p", as_int(1), OPTIONAL, "particles: feature width, integer >= 1"),
    Field("md_width", as_int(1), OPTIONAL, "particles: decoder width, integer >= 1"),
)
RNN_FIELDS = (
    Field("cell", as_choice(CELLS), "lstm", _one_of(CELLS)),
    Field("hidden", as_int(1), 50, "integer >= 1"),
    Field("layers", as_int(1), 1, "integer >= 1"),
    Field("residual", as_bool, False, "true or false"),
    # optional so that configs without them resolve (and checkpoints record) as before;
    # absent means ensemble 1 and head point: a plain LatentRNN (ensemble.build_rnn)
    Field("ensemble", as_int(1), OPTIONAL, "propagators in the ensemble, integer >= 1 (default 1)"),
    Field("head", as_choice(HEADS), OPTIONAL, f"read-out, {_one_of(HEADS)} (default point)"),
)


# fields both training stages have
EPOCHS = Field("epochs", as_int(0), 1000, "integer >= 0")
BATCH_SIZE = Field("batch_size", as_int(1), 32, "integer >= 1")
LR = Field("lr", as_number(0, strict=True), 1e-3, "Adam learning rate, number > 0")
WEIGHT_DECAY = Field("weight_decay", as_number(0), 0.0, "number >= 0")
NOISE = Field("noise", as_number(0), 0.0, "input noise, number >= 0")
PATIENCE = Field("patience", as_int(1), 100, "early-stopping epochs, integer >= 1")
MIN_LR = Field("min_lr", as_number(0), 1e-6, "number >= 0")
TRAIN_AUTOENCODER_FIELDS = (
    EPOCHS,
    BATCH_SIZE,
    LR,
    WEIGHT_DECAY,
    NOISE,
    Field("kl_weight", as_number(0), 1e-3, "VAE KL weight, number >= 0"),
    PATIENCE,
    MIN_LR,
    Field("subsample", as_int(0), 0, "particles per sample (0: all), integer >= 0"),
)
TRAIN_RNN_FIELDS = (
    EPOCHS,
    BATCH_SIZE,
    LR,
    WEIGHT_DECAY,
    Field("sequence_length", as_int(1), 30, "BPTT steps, integer >= 1"),
    Field("hidden_propagation", as_int(1), 300, "window steps, integer >= sequence_length"),
    NOISE,
    PATIENCE,
    MIN_LR,
    Field("validation", as_choice(VALIDATIONS), "teacher_forced", _one_of(VALIDATIONS)),
    Field("restarts", as_int(1), 1, "independent RNN initialisations, integer >= 1"),
    Field(
        "restart",
        as_restart,
        OPTIONAL,
        "the restart objective, a mapping of " + ", ".join(RESTART_DEFAULTS),
    ),
)
PCA_FIELDS = (Field("components", as_int(1), 8, "principal components, integer >= 1"),)
VO_FIELDS = (
    Field("hidden", as_int(1), 25, "units per hidden layer of NN, integer >= 1"),
    Field("layers", as_int(1), 2, "hidden layers of NN, integer >= 1"),
    Field("sigma_c2", as_number(0, strict=True), 1e-9, "virtual-observable variance, number > 0"),
    Field("virtual_observables", as_bool, True, "true or false (false: the ablation)"),
    Field("samples", as_int(1), 100, "paths per member when coupled, integer >= 1"),
)
TRAIN_VO_FIELDS = (
    Field("steps", as_int(1), 20000, "Adam steps, integer >= 1"),
    LR,
    Field("mc_samples", as_int(1), 4, "Monte Carlo samples per step, integer >= 1"),
    Field("sequences", as_int(0), 0, "training sequences used (0: all), integer >= 0"),
    Field("infer_steps", as_int(1), 4000, "Adam steps to infer a test sequence, integer >= 1"),
)

#: section -> its fields, in the order of the resolved config
SECTION_FIELDS: dict[str, tuple[Field, ...]] = {
    "autoencoder": AUTOENCODER_FIELDS,
    "rnn": RNN_FIELDS,
    "train_autoencoder": TRAIN_AUTOENCODER_FIELDS,
    "train_rnn": TRAIN_RNN_FIELDS,
    "pca": PCA_FIELDS,
    "vo": VO_FIELDS,
    "train_vo": TRAIN_VO_FIELDS,
}
SECTIONS = ("autoencoder", "rnn", "train_autoencoder", "train_rnn")
TOP_KEYS = ("system", "data", "seed", "dtype", *SECTIONS)
PCA_SECTIONS = ("pca", "rnn", "train_rnn")
VO_SECTIONS = ("vo", "train_vo")
#: the defaults (fields with one), as a nested dict
DEFAULTS: dict[str, Any] = {
    "seed": 0,
    "dtype": "float32",
    **{
        section: {f.name: f.default for f in fields if f.default is not OPTIONAL}
        for section, fields in SECTION_FIELDS.items()
    },
}


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


def _check_keys(names: list[str], raw: dict[str, Any], where: str) -> None:
    """Unknown keys of ``raw`` raise, naming them and the allowed ones."""
    unknown = sorted(set(raw) - set(names))
    if unknown:
        raise ValueError(
            f"config: unknown key(s) {', '.join(unknown)}{where}; allowed: {', '.join(names)}"
        )


def parse_section(fields: tuple[Field, ...], raw: dict[str, Any], prefix: str) -> dict[str, Any]:
    """Each given value parsed and checked (labels ``config <prefix><key>``), defaults
    filled in, optional fields left out when not given.  Key order: the fields with a
    default as declared, then the optional ones as given (the order of the former
    merge of defaults and config, which checkpoints record in the model spec)."""
    parsed = parse_fields(
        [replace(f, name=prefix + f.name) for f in fields],
        {prefix + k: v for k, v in raw.items()},
        what="config",
    )
    out = {f.name: parsed[prefix + f.name] for f in fields if f.default is not OPTIONAL}
    out.update((k, parsed[prefix + k]) for k in raw if k not in out)
    return out


def resolve(raw: dict[str, Any]) -> dict[str, Any]:
    """The training config ``raw`` resolved by its family's ``resolve``: ``kind`` (default
    ``led``) picks the family (:func:`ledmus.surrogates.family.get_family`); ``ValueError`` naming the
    field, or listing the families for an unknown kind."""
    if not isinstance(raw, dict):
        raise ValueError(f"config: expected a mapping at the top level, got {raw!r}")
    kind = raw.get("kind", "led")
    if not isinstance(kind, str) or kind not in FAMILIES:
        raise ValueError(f"config kind={kind!r} unknown; allowed: {', '.join(FAMILIES)}")
    return FAMILIES[kind].need("resolve", "a training config")(raw)


#: ``(section, old key, new key)``: keys renamed, the old name still accepted
RENAMED = (("autoencoder", OLD_ARCHITECTURE_KEY, "architecture"),)


def _renamed(raw: dict[str, Any]) -> dict[str, Any]:
    """``raw`` with every old key of :data:`RENAMED` under its new name (both given: an
    error naming them)."""
    out = dict(raw)
    for section, old, new in RENAMED:
        part = out.get(section)
        if isinstance(part, dict) and old in part:
            if new in part:
                raise ValueError(
                    f"config: {section}.{new} and its old name {section}.{old} are both "
                    "given; keep one"
                )
            out[section] = {(new if k == old else k): v for k, v in part.items()}
    return out


def resolve_sections(raw: dict[str, Any], sections: tuple[str, ...]) -> dict[str, Any]:
    """The resolver of the LED, PCA and VO families: the top fields and ``sections`` (of
    :data:`SECTION_FIELDS`), defaults filled in and every field checked; raises
    ``ValueError`` naming the field.  The resolved config records ``kind``."""
    kind = as_str("config kind", raw.get("kind", "led"))
    _check_keys([*(f.name for f in TOP_FIELDS), *sections], raw, f" for kind {kind}")
    for field in TOP_FIELDS:
        if field.default is REQUIRED and field.name not in raw:
            raise ValueError(f"config: missing required key {field.name!r}")
    raw = _renamed(raw)
    for section in sections:
        if not isinstance(raw.get(section, {}), dict):
            raise ValueError(f"config: {section} must be a mapping")
        names = [f.name for f in SECTION_FIELDS[section]]
        _check_keys(names, raw.get(section, {}), f" in {section}")
    top = parse_section(TOP_FIELDS, {k: v for k, v in raw.items() if k not in sections}, "")
    parsed = {s: parse_section(SECTION_FIELDS[s], raw.get(s, {}), f"{s}.") for s in sections}
    tr = parsed.get("train_rnn", {"hidden_propagation": 1, "sequence_length": 1})
    if tr["hidden_propagation"] < tr["sequence_length"]:
        raise ValueError(
            "config: train_rnn.hidden_propagation must be >= train_rnn.sequence_length, got "
            f"{tr['hidden_propagation']} < {tr['sequence_length']}"
        )
    if tr.get("validation") == "coupled" and "restart" not in tr:
        raise ValueError(
            "config: train_rnn.validation=coupled scores restarts: it needs a "
            "train_rnn.restart subsection (e.g. restart: {warmup: [10, 60], horizon: 50})"
        )
    # key order of the former merge: the defaulted keys, then the others as given, kind last
    values = {**top, **parsed}
    order = [k for k in DEFAULTS if k in values] + [k for k in raw if k not in DEFAULTS]
    return {k: values[k] for k in dict.fromkeys([*order, "kind"])}
