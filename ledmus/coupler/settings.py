"""Run settings of a coupled LED run, validated before any compute.

The settings live in the ``settings:`` section of a yMMSL v0.2 file and are read the
same way by both engines (MUSCLE3 components through ``Instance.get_setting``, the
embedded engine from the file)::

    model: models/led_fhn.pt   # LED checkpoint (its system picks the micro solver)
    system: fhn                # optional: refuse a model trained for another system
    t_warm: 60.0               # warm-up on the micro solver, RNN teacher-forced   [time]
    t_macro: 50.0              # T_m: latent propagation per cycle                 [time]
    t_micro: 10.0              # T_mu: micro solver per cycle (0: pure latent)     [time]
    t_end: 2000.0              # end of the run; coarse states at 0, dt, ..., t_end [time]
    ensemble: 1                # B, ensemble members run side by side
    ic: y05                    # initial condition: a name of the solver or a .npy file
    t_transient: 0.0           # micro run from the IC before t = 0, not recorded   [time]
    seed: 0                    # RNG seed (micro noise, MDN sampling, random ICs)
    device: cpu                # cpu, cuda, cuda:N or auto (RNN, decoder, encoder)
    compare: true              # also run the micro solver alone: speed-up and errors
    param_<name>: value        # micro-solver parameter <name> (default: the paper's)

All times are multiples of the solver's coarse step ``dt_coarse``.  ``t_macro = 0`` is
the pure micro solver, ``t_micro = 0`` pure latent propagation ("Latent").
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..solvers import Solver, make
from ..solvers.base import steps_in

#: setting name -> (type description, default or REQUIRED)
REQUIRED = object()
SETTINGS: dict[str, tuple[str, Any]] = {
    "model": ("path of an LED checkpoint (.pt)", REQUIRED),
    "system": ("the model's system (optional check)", ""),
    "t_warm": ("time >= 0", REQUIRED),
    "t_macro": ("time >= 0", REQUIRED),
    "t_micro": ("time >= 0", REQUIRED),
    "t_end": ("time > t_warm", REQUIRED),
    "ensemble": ("integer >= 1", 1),
    "ic": ("initial-condition name or .npy file", ""),
    "t_transient": ("time >= 0 run before t = 0, not recorded", 0.0),
    "seed": ("integer >= 0", 0),
    "device": ("cpu, cuda, cuda:N or auto", "cpu"),
    "compare": ("true or false", False),
    "plots": ("true or false", True),
}
PARAM_PREFIX = "param_"


def resolve_file(value: str, setting: str, search: list[Path]) -> Path:
    """An existing file for ``value``: as given when absolute, else the first of
    ``search`` (then the ``LEDMUS_BASE_DIR`` environment variable, then the source
    checkout holding the ``ledmus`` package) that holds it; else ``ValueError``."""
    path = Path(os.path.expanduser(value))
    if path.is_absolute():
        if path.is_file():
            return path
        raise ValueError(f"setting {setting}: file {value!r} does not exist")
    roots = list(search)
    if os.environ.get("LEDMUS_BASE_DIR"):
        roots.append(Path(os.environ["LEDMUS_BASE_DIR"]))
    roots.append(Path(__file__).resolve().parents[2])
    for root in roots:
        if (root / path).is_file():
            return (root / path).resolve()
    looked = ", ".join(str(r) for r in roots)
    raise ValueError(f"setting {setting}: file {value!r} not found (looked in: {looked})")


@dataclass
class RunSettings:
    """Validated settings; ``solver`` and the step counts are derived from them."""

    model: Path
    system: str
    t_warm: float
    t_macro: float
    t_micro: float
    t_end: float
    t_transient: float
    ensemble: int
    ic: str
    seed: int
    device: str
    compare: bool
    plots: bool
    params: dict[str, Any] = field(default_factory=dict)
    solver: Solver | None = field(default=None, repr=False)

    # coarse-step counts (dt_coarse of the solver)
    @property
    def dt(self) -> float:
        return self.solver.dt_coarse

    @property
    def n_warm(self) -> int:
        return round(self.t_warm / self.dt)

    @property
    def n_macro(self) -> int:
        return round(self.t_macro / self.dt)

    @property
    def n_micro(self) -> int:
        return round(self.t_micro / self.dt)

    @property
    def n_total(self) -> int:
        """Number of recorded coarse states, ``t_end/dt + 1``."""
        return round(self.t_end / self.dt) + 1

    def as_dict(self) -> dict[str, Any]:
        out = {k: getattr(self, k) for k in SETTINGS}
        out["model"] = str(self.model)
        out.update({PARAM_PREFIX + k: v for k, v in self.params.items()})
        return out


def _bool(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    raise ValueError(f"setting {name} must be true or false, got {value!r}")


def _int(name: str, value: Any, minimum: int) -> int:
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not float(value).is_integer()
    ):
        raise ValueError(f"setting {name} must be an integer >= {minimum}, got {value!r}")
    if int(value) < minimum:
        raise ValueError(f"setting {name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _time(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"setting {name} must be a number (a time), got {value!r}")
    value = float(value)
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"setting {name} must be finite and >= 0, got {value!r}")
    return value


def validate(raw: Mapping[str, Any], *, search: list[Path] | None = None) -> RunSettings:
    """Check every setting and return :class:`RunSettings`; raises ``ValueError`` naming
    the offending setting.  Reads the checkpoint header (not the weights' use) to learn
    the system, builds the micro solver and checks the device."""
    from ..surrogates.checkpoint import read_checkpoint
    from ..surrogates.training import resolve_device

    raw = {k: v for k, v in raw.items() if not str(k).startswith("muscle_")}  # libmuscle's own
    params = {k[len(PARAM_PREFIX) :]: raw.pop(k) for k in list(raw) if k.startswith(PARAM_PREFIX)}
    unknown = sorted(set(raw) - set(SETTINGS))
    if unknown:
        raise ValueError(
            f"unknown setting(s) {', '.join(unknown)}; allowed: {', '.join(SETTINGS)} "
            f"and {PARAM_PREFIX}<solver parameter>"
        )
    missing = [k for k, (_, d) in SETTINGS.items() if d is REQUIRED and k not in raw]
    if missing:
        raise ValueError(f"missing setting(s): {', '.join(missing)}")
    values = {k: raw.get(k, d) for k, (_, d) in SETTINGS.items()}

    if not isinstance(values["model"], str) or not values["model"]:
        raise ValueError(f"setting model must be a file path, got {values['model']!r}")
    model = resolve_file(values["model"], "model", search or [Path.cwd()])
    try:
        payload = read_checkpoint(model)
    except ValueError as exc:
        raise ValueError(f"setting model: {exc}") from None
    system = payload["system"]
    if values["system"] and values["system"] != system:
        raise ValueError(
            f"setting model: {model} was trained for system {system!r}, "
            f"but setting system={values['system']!r}"
        )
    try:
        solver = make(system, **params)
    except ValueError as exc:
        raise ValueError(f"micro solver for the model's system {system!r}: {exc}") from None
    trained = tuple(payload["spec"]["state_shape"])
    particles = payload["spec"]["autoencoder"].get("kind") == "particles"
    # particle models take any particle count N; only the dimension d must match
    if (trained[-1:] if particles else trained) != (
        solver.state_shape[-1:] if particles else solver.state_shape
    ):
        raise ValueError(
            f"setting model: {model} was trained on states {trained} but the {system!r} "
            f"solver with these parameters has {solver.state_shape}"
        )
    times = {
        k: _time(k, values[k]) for k in ("t_warm", "t_macro", "t_micro", "t_end", "t_transient")
    }
    for k, v in times.items():
        steps_in(v, solver.dt_coarse, f"setting {k}", "the solver's dt_coarse")
    if times["t_end"] <= times["t_warm"]:
        raise ValueError(f"setting t_end={times['t_end']:g} must be > t_warm={times['t_warm']:g}")
    if times["t_macro"] == 0 and times["t_micro"] == 0:
        raise ValueError("settings t_macro and t_micro are both 0; at least one must be > 0")
    device = values["device"]
    if not isinstance(device, str):
        raise ValueError(f"setting device must be a string, got {device!r}")
    try:
        resolve_device(device)
    except ValueError as exc:
        raise ValueError(f"setting {exc}") from None
    ic = values["ic"]
    if not isinstance(ic, str):
        raise ValueError(f"setting ic must be a name or a .npy path, got {ic!r}")
    if ic.endswith(".npy"):
        ic = str(resolve_file(ic, "ic", search or [Path.cwd()]))
    elif ic and ic not in solver.ic_names():
        raise ValueError(
            f"setting ic={ic!r} is not an initial condition of {system!r}; "
            f"allowed: {', '.join(solver.ic_names())} or a .npy file"
        )
    return RunSettings(
        model=model,
        system=system,
        ensemble=_int("ensemble", values["ensemble"], 1),
        ic=ic,
        seed=_int("seed", values["seed"], 0),
        device=device,
        compare=_bool("compare", values["compare"]),
        plots=_bool("plots", values["plots"]),
        params=params,
        solver=solver,
        **times,
    )


def read_ymmsl_settings(path: str | os.PathLike) -> dict[str, Any]:
    """The ``settings`` section of a yMMSL file as a plain dict (instance-specific
    names such as ``micro.seed`` are folded onto the global name)."""
    import ymmsl

    path = Path(path)
    if not path.is_file():
        raise ValueError(f"yMMSL file {str(path)!r} does not exist")
    try:
        config = ymmsl.load(path)
    except Exception as exc:  # ymmsl raises yatiml's RecognitionError and friends
        raise ValueError(f"{path}: not a valid yMMSL file: {exc}") from None
    out: dict[str, Any] = {}
    for key, value in (config.settings or {}).items():
        name = str(key).split(".")[-1]
        out[name] = list(value) if isinstance(value, list) else value
    return out
