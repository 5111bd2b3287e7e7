"""Settings of concurrent learning: the ``adaptive`` schedule, physics safeguards,
parameter schedules and online training (all in the yMMSL ``settings:`` section)::

    schedule: adaptive         # decide per member from uncertainty, error and monitors
    t_micro: 10.0              # block: micro window and comparison window length     [time]
    t_macro: 200.0             # cap of one macro phase (upper end of the draw)        [time]
    t_macro_min: 100.0         # lower end of the cap's uniform draw (0: = t_macro)    [time]
    t_micro_min: auto          # shortest micro stretch between macro phases (0: one block;
                               # auto: from the restart errors the run measures)       [time]
    max_uncertainty: 0.05      # ensemble variance / latent variance; 0: not used      [1]
    max_error: 0.02            # comparison NAD (|macro - micro| / channel range); 0: not used
    error_budget: 0.0          # NAD a macro phase may accumulate: cap <= budget / block NAD; 0: off
    max_drift: 0.0             # drift estimate (NAD) since the last micro window; 0: off
    monitors: true             # the system's constraint monitors on every macro state
    t_report: 1000.0           # block length of macro_fraction_blocks in metrics.json [time]
    param_schedule: "{5000: {d_u: 1.5}, 15000: {d_u: 1.0}}"   # micro parameters from a time on
    online: asynchronous       # online training: off, asynchronous or deterministic
    online_capacity: 2000      # replay buffer, sequences of online_seq_len states
    online_seq_len: 31         # states per training sequence (30 one-step predictions)
    online_keep: 0.25          # buffer share kept for earlier param_schedule regimes   [1]
    online_steps: 20           # training steps per round (asynchronous: between publications)
    online_every: 1            # deterministic: a round every this many micro windows
    online_min_sequences: 16   # no training before the buffer holds this many
    online_lr: 1.0e-4          # Adam learning rate of the fine-tuning
    online_batch_size: 16      # sequences per training step
    online_augment: false      # also buffer each window's images under the system's symmetries
    online_restart_weight: 1.0 # weight of the restart loss (teacher-forced, then free run)
    online_restart_warmup: 10  # teacher-forced states of a sequence before its free run
    online_bootstrap: true     # ensemble members train on their own bootstrap resamples

The acceptance test runs in the comparison window: the block of micro steps that
follows a macro phase (from the lifted last macro state) or continues a micro stretch;
the macro model propagates the same block side by side.  A member is accepted when the
largest uncertainty of that block is below ``max_uncertainty`` and the comparison error
below ``max_error``; it then runs macro for a cap drawn uniformly (per member and window)
among the multiples of ``t_micro`` in ``[t_macro_min, t_macro]``, checked every block.
With ``error_budget`` > 0 the cap is also at most ``error_budget / NAD`` blocks (NAD: the
accepted comparison's): errors made in a macro phase stay in the trajectory (the micro
solver restarts from the lifted macro state), and a model whose block error is small but
not zero, e.g. a pulse a little too fast, accumulates about NAD per block.
``max_drift`` bounds the same estimate across the macro phases and restarts since the
member's last micro window, raised where the ensemble's spread grows
(:mod:`ledmus.coupler.adaptive`).

``t_micro_min`` is the shortest micro stretch a member runs between two macro phases: a
comparison that passes earlier does not open a phase (cause ``min_window``).  0 (the
default) is one block: the comparison after a macro phase may open the next at once,
although it measured the model's drift from the lifted state and not the restart that
follows.  ``auto`` takes the minimum from the restart errors the run measures: a
comparison of a member that has run ``k`` micro blocks since its last macro phase is a
restart test (the model was re-synchronised on those blocks, then ran free for one).  Per
member, a ``k`` whose tests (at least
:data:`~ledmus.coupler.adaptive.RESTART_SAMPLES`) average above ``max_error`` is known
bad, at most ``max_error`` known good; the minimum is the smallest ``k`` not known bad,
and two blocks until one block is known good (``k`` counted up to ``t_warm / t_micro``).
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import yaml

from .. import systems
from ..surrogates.family import FAMILIES
from ..validation import (
    Field,
    as_bool,
    as_choice,
    as_int,
    as_number,
    as_time,
    load_yaml,
    number_from_text,
    plain_numbers,
)

#: online training modes (``online`` setting)
ONLINE_MODES = ("off", "asynchronous", "deterministic")


def as_micro_min(label: str, value: Any) -> float | str:
    """``t_micro_min``: a time >= 0 or ``auto``."""
    if isinstance(value, str) and value.strip() == "auto":
        return "auto"
    try:
        return as_time(label, value)
    except ValueError:
        raise ValueError(f"{label} must be a time >= 0 or auto, got {value!r}") from None


ADAPTIVE_FIELDS = (
    Field("t_macro_min", as_time, 0.0, "time >= 0: lower end of the macro cap (0: t_macro)"),
    Field(
        "t_micro_min",
        as_micro_min,
        0.0,
        "time >= 0 or auto: shortest micro stretch between macro phases (0: one block)",
    ),
    Field(
        "max_uncertainty",
        as_number(0),
        0.0,
        "number >= 0: ensemble variance / latent variance (0: not used)",
    ),
    Field(
        "max_error",
        as_number(0),
        0.02,
        "number >= 0: comparison NAD |macro - micro| / range (0: not used)",
    ),
    Field(
        "error_budget",
        as_number(0),
        0.0,
        "number >= 0: NAD a macro phase may accumulate (0: not used)",
    ),
    Field(
        "max_drift",
        as_number(0),
        0.0,
        "number >= 0: NAD estimate since the last micro window (0: not used)",
    ),
    Field("monitors", as_bool, True, "true or false: the system's constraint monitors"),
    Field("t_report", as_time, 1000.0, "time > 0: block of macro_fraction_blocks"),
    Field("online", as_choice(ONLINE_MODES), "off", "off, asynchronous or deterministic"),
    Field("online_capacity", as_int(1), 2000, "integer >= 1: replay buffer sequences"),
    Field("online_seq_len", as_int(2), 31, "integer >= 2: states per training sequence"),
    Field("online_keep", as_number(0), 0.25, "number in [0, 1]: share kept for earlier regimes"),
    Field("online_steps", as_int(1), 20, "integer >= 1: training steps per round"),
    Field("online_every", as_int(1), 1, "integer >= 1: micro windows between rounds"),
    Field("online_min_sequences", as_int(1), 16, "integer >= 1: sequences before training"),
    Field("online_lr", as_number(0, strict=True), 1e-4, "number > 0: Adam learning rate"),
    Field("online_batch_size", as_int(1), 16, "integer >= 1: sequences per training step"),
    Field("online_augment", as_bool, False, "true or false: buffer symmetry images too"),
    Field(
        "online_restart_weight",
        as_number(0),
        0.0,
        "number >= 0: weight of the restart loss in online training (0: one-step loss only)",
    ),
    Field(
        "online_restart_warmup",
        as_int(1),
        10,
        "integer >= 1: teacher-forced states before the restart loss's free run",
    ),
    Field(
        "online_bootstrap",
        as_bool,
        True,
        "true or false: each ensemble member trains on its own bootstrap resample",
    ),
)


@dataclass(frozen=True)
class AdaptiveSettings:
    """The validated concurrent-learning settings (see the module docstring)."""

    t_macro_min: float = 0.0
    t_micro_min: float | str = 0.0
    max_uncertainty: float = 0.0
    max_error: float = 0.02
    error_budget: float = 0.0
    max_drift: float = 0.0
    monitors: bool = True
    t_report: float = 1000.0
    online: str = "off"
    online_capacity: int = 2000
    online_seq_len: int = 31
    online_keep: float = 0.25
    online_steps: int = 20
    online_every: int = 1
    online_min_sequences: int = 16
    online_lr: float = 1e-4
    online_batch_size: int = 16
    online_augment: bool = False
    online_restart_weight: float = 0.0
    online_restart_warmup: int = 10
    online_bootstrap: bool = True

    def as_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in ADAPTIVE_FIELDS}


def parse_param_schedule(text: str) -> tuple[tuple[float, tuple[tuple[str, Any], ...]], ...]:
    """``"{5000: {d_u: 1.5}, 15000: {d_u: 1.0}}"`` -> ``((5000.0, (("d_u", 1.5),)), ...)``
    sorted by time; ``ValueError`` naming the setting and the allowed form."""
    form = "a YAML mapping time -> {parameter: value}, e.g. '{5000: {d_u: 1.5}}'"
    if not text:
        return ()
    try:
        raw = load_yaml(text)  # 1e6 is a number, as in yMMSL
    except yaml.YAMLError as exc:
        raise ValueError(f"setting param_schedule: not YAML ({exc}); allowed: {form}") from None
    if not isinstance(raw, Mapping) or not raw:
        raise ValueError(f"setting param_schedule={text!r}; allowed: {form}")
    out = []
    for t, params in raw.items():
        t = number_from_text(t)
        if isinstance(t, bool) or not isinstance(t, (int, float)) or t <= 0:
            raise ValueError(f"setting param_schedule: time {t!r} must be a number > 0")
        if not isinstance(params, Mapping) or not params:
            raise ValueError(f"setting param_schedule: entry {t!r} is {params!r}; allowed: {form}")
        entry = ((str(k), plain_numbers(v)) for k, v in params.items())
        out.append((float(t), tuple(sorted(entry))))
    return tuple(sorted(out))


def parse_adaptive(values: Mapping[str, Any]) -> AdaptiveSettings:
    """The :class:`AdaptiveSettings` from parsed field values."""
    if values["t_report"] <= 0:
        raise ValueError(f"setting t_report={values['t_report']:g} must be > 0")
    if values["online_keep"] > 1:
        raise ValueError(f"setting online_keep={values['online_keep']:g} must be in [0, 1]")
    return AdaptiveSettings(**{f.name: values[f.name] for f in ADAPTIVE_FIELDS})


def check_adaptive(times: dict[str, float], adaptive: AdaptiveSettings, dt: float) -> None:
    if times["t_micro"] <= 0:
        raise ValueError(
            "setting t_micro must be > 0 with schedule adaptive (it is the "
            "length of a micro and comparison window)"
        )
    block = round(times["t_micro"] / dt)
    names = ["t_macro", "t_macro_min"] + ([] if adaptive.t_micro_min == "auto" else ["t_micro_min"])
    for name in names:
        value = times.get(name, getattr(adaptive, name, 0.0))
        if round(value / dt) % block:
            raise ValueError(
                f"setting {name}={value:g} must be a multiple of t_micro="
                f"{times['t_micro']:g} with schedule adaptive"
            )
    if adaptive.t_micro_min == "auto" and adaptive.max_error <= 0:
        raise ValueError(
            "setting t_micro_min=auto compares restart errors with max_error: it needs "
            f"max_error > 0, got max_error={adaptive.max_error:g}"
        )
    if adaptive.t_macro_min > times["t_macro"]:
        raise ValueError(
            f"setting t_macro_min={adaptive.t_macro_min:g} must be <= t_macro={times['t_macro']:g}"
        )


def check_online(values: Mapping[str, Any], kind: str, particles: bool) -> None:
    """Online training needs the adaptive schedule (its comparison windows decide when
    the retrained model is used), recorded states (the RNN context is re-encoded from
    them after an autoencoder update) and an LED checkpoint of a grid system."""
    if values["online"] == "off":
        return
    need = {"schedule": "adaptive", "record": "states"}
    for name, want in need.items():
        if values[name] != want:
            raise ValueError(
                f"setting online={values['online']} needs {name}: {want}, got "
                f"{name}={values[name]!r}"
            )
    online = FAMILIES[kind].online if kind in FAMILIES else False
    if not online or particles:
        what = f"a particle {kind}" if online else f"a {kind!r} checkpoint"
        able = ", ".join(k for k, f in FAMILIES.items() if f.online)
        raise ValueError(
            f"setting online={values['online']}: online training fine-tunes "
            f"a model of a grid system of a family with online training ({able}); "
            f"setting model is {what}"
        )


def trained_params(system: str, payload: dict[str, Any]) -> dict[str, Any]:
    """The solver parameters the model's training data had: the checkpoint's
    ``trained_params`` when it records them, else the system's preset with its paper
    dataset protocol's parameters."""
    if isinstance(payload.get("trained_params"), dict):
        return dict(payload["trained_params"])
    spec = systems.get(system)
    params = dict(spec.preset)
    if spec.dataset is not None:
        params.update(spec.dataset("paper").params)
    return params


#: numerical parameters (resolution, sample size) that do not change the physics the
#: model learned; a run may set them freely
NUMERICAL = ("dt", "dt_coarse", "n_particles")


def out_of_training(
    system: str, payload: dict[str, Any], params: dict[str, Any], entries: list[dict[str, Any]]
) -> dict[str, Any]:
    """Parameters of the run (``param_*`` and the ``param_schedule`` entries) that differ
    from those the model was trained with: ``{name: {"run": [values], "trained": v}}``
    (a parameter without a known training value counts as the solver's default;
    :data:`NUMERICAL` parameters are not compared)."""
    trained = trained_params(system, payload)
    defaults = {
        k: p.default
        for k, p in inspect.signature(systems.get(system).solver.__init__).parameters.items()
        if p.default is not inspect.Parameter.empty
    }
    out: dict[str, Any] = {}
    for run in [params] + [{**params, **e} for e in entries]:
        for name, value in run.items():
            if name in NUMERICAL:
                continue
            base = trained.get(name, defaults.get(name))
            if base is None or _same(value, base):
                continue
            entry = out.setdefault(name, {"run": [], "trained": base})
            if value not in entry["run"]:
                entry["run"].append(value)
    return out


def _same(a: Any, b: Any) -> bool:
    try:
        return abs(float(a) - float(b)) <= 1e-12 * max(1.0, abs(float(b)))
    except (TypeError, ValueError):
        return a == b
