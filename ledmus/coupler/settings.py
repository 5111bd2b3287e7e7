"""Settings of a coupled run, validated before any compute.

They live in the ``settings:`` section of a yMMSL v0.2 file and are read the same way by
both engines (MUSCLE3 components through ``Instance.get_setting``, the embedded engine
from the file)::

    model: models/led_fhn.pt   # macro-model checkpoint (its system picks the micro solver)
    system: fhn                # the micro system (optional with a model: then a check)
    t_warm: 60.0               # warm-up on the micro solver, model teacher-forced  [time]
    t_macro: 50.0              # T_m: macro propagation per cycle                     [time]
    t_micro: 10.0              # T_mu: micro solver per cycle (0: pure macro)          [time]
    t_end: 2000.0              # end of the run; coarse states at 0, dt, ..., t_end    [time]
    ensemble: 1                # B, ensemble members run side by side
    ic: y05                    # initial condition: a name of the solver or a .npy file
    t_transient: 0.0           # micro run from the IC before t = 0, not recorded      [time]
    seed: 0                    # RNG seed (micro noise, stochastic lifting, random ICs)
    lifting: constrained_runs  # solver lifting of observed fields (default: the system's)
    lifting_tol: 1.0e-10       # iterative liftings: max change of the unobserved part
    lifting_max_iter: 200      # iterative liftings: iteration cap (then a warning)
    device: cpu                # cpu, cuda, cuda:N or auto (the macro model)
    compare: true              # also run the micro solver alone: speed-up and errors
    plots: true                # write field.png / error_vs_time.png
    schedule: fixed            # schedule policy (fixed: T_warm / T_m / T_mu)
    record: states             # states, or latents (macro states only; `ledmus decode`)
    backend: numpy             # the macro model's own solver: numpy, or petsc (closures)
    assimilation: teacher_forcing  # how micro windows enter the propagator (or innovation)
    assimilation_time: 0.0     # innovation: tau of the gain 1 - exp(-t_free / tau)  [time]
    param_<name>: value        # micro-solver parameter <name> (default: the paper's)

All times are multiples of the solver's coarse step ``dt_coarse``.  Numbers may be written
as people do (``1e-9``, ``1E-9``, ``.5``, ``5.``, ``1e6``) in the yMMSL file and in
``--set``, whose mappings need no extra quotes (``--set 'param_schedule={500: {d_u: 1.5}}'``).  The micro component
alone needs only ``system`` (or ``model``), ``param_*``, ``ensemble``, ``ic``,
``t_transient``, ``seed`` and the ``lifting*`` settings (:func:`validate_micro`) and
ignores the rest.  ``lifting`` is one of the strategies the system's solver declares
(:mod:`ledmus.solvers.lifting`: equilibrium, chapman_enskog, constrained_runs,
newton_krylov); it lifts every state a window starts from, the initial condition too.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .. import systems
from ..solvers import Solver
from ..solvers.base import steps_in
from ..solvers.lifting import STRATEGIES, Lifting
from ..surrogates.macro import ASSIMILATIONS
from ..validation import (
    Field,
    as_bool,
    as_choice,
    as_int,
    as_number,
    as_str,
    as_time,
    parse_fields,
    plain_numbers,
)
from .adaptive_settings import (
    ADAPTIVE_FIELDS,
    AdaptiveSettings,
    check_adaptive,
    check_online,
    out_of_training,
    parse_adaptive,
    parse_param_schedule,
)
from .paths import read_ymmsl_settings as read_ymmsl_settings
from .paths import resolve_file
from .policies import schedules

PARAM_PREFIX = "param_"


def as_schedule_text(label: str, value: Any) -> str:
    """``param_schedule`` as YAML text: a string as written, or a mapping (``--set
    param_schedule={500: {d_u: 1.5}}`` arrives parsed) written back as one line."""
    if isinstance(value, Mapping):
        import yaml

        return yaml.safe_dump(dict(value), default_flow_style=True).strip()
    return as_str(label, value)


RECORDS = ("states", "latents")
BACKENDS = ("numpy", "petsc")
MICRO_FIELDS = (
    Field("system", as_str, "", "the micro system (registry name)"),
    Field("ensemble", as_int(1), 1, "integer >= 1"),
    Field("ic", as_str, "", "initial-condition name or .npy file"),
    Field("t_transient", as_time, 0.0, "time >= 0 run before t = 0, not recorded"),
    Field("seed", as_int(0), 0, "integer >= 0"),
    Field("lifting", as_str, "", f"one of {', '.join(STRATEGIES)} (default: the system's)"),
    Field("lifting_tol", as_number(0.0, strict=True), 1e-10, "number > 0"),
    Field("lifting_max_iter", as_int(1), 200, "integer >= 1"),
    Field(
        "param_schedule", as_schedule_text, "", "YAML mapping time -> {parameter: value} (micro)"
    ),
)
RUN_FIELDS = (
    Field("model", as_str, doc="path of a macro-model checkpoint (.pt), or none (cold start)"),
    Field("training", as_str, "", "training config (.yaml) of a cold start (model: none)"),
    Field("t_warm", as_time, doc="time >= 0"),
    Field("t_macro", as_time, doc="time >= 0"),
    Field("t_micro", as_time, doc="time >= 0"),
    Field("t_end", as_time, doc="time > t_warm"),
    Field("device", as_str, "cpu", "cpu, cuda, cuda:N or auto"),
    Field("compare", as_bool, False, "true or false"),
    Field("plots", as_bool, True, "true or false"),
    Field("schedule", as_choice(schedules()), "fixed", f"one of {', '.join(schedules())}"),
    Field("record", as_choice(RECORDS), "states", "states or latents"),
    Field("overwrite", as_bool, False, "true or false: replace the outputs of an earlier run"),
    Field(
        "backend",
        as_choice(BACKENDS),
        "numpy",
        "numpy or petsc: the macro model's own solver (petsc: moment closures, MPI)",
    ),
    Field(
        "assimilation",
        as_choice(ASSIMILATIONS),
        "teacher_forcing",
        f"one of {', '.join(ASSIMILATIONS)}: how micro windows enter the propagator",
    ),
    Field(
        "assimilation_time",
        as_time,
        0.0,
        "time >= 0: tau of the innovation gain 1 - exp(-t_free / tau) (0: gain 1)",
    ),
)
#: setting name -> description (both groups)
SETTINGS = {f.name: f.doc for f in (*RUN_FIELDS, *MICRO_FIELDS, *ADAPTIVE_FIELDS)}


#: the cached properties of :class:`MicroSettings` built from its values
BUILT = ("solver", "schedule_solvers")


@dataclass(frozen=True)
class MicroSettings:
    """What the micro side needs: the system, its parameters and the ensemble."""

    system: str
    ensemble: int
    ic: str
    t_transient: float
    seed: int
    lifting: str = "equilibrium"
    lifting_tol: float = 1e-10
    lifting_max_iter: int = 200
    param_schedule: str = ""
    params: dict[str, Any] = field(default_factory=dict)

    # The record holds plain values only; the solvers are built from them where they
    # are used (and cached on the instance, never pickled: an MPI rank that receives
    # the settings builds its own).
    @functools.cached_property
    def solver(self) -> Solver:
        """The micro solver: the system's preset with ``params``."""
        return systems.get(self.system).make(**self.params)

    @functools.cached_property
    def schedule_solvers(self) -> tuple[tuple[float, Solver], ...]:
        """``((t, solver), ...)`` of ``param_schedule`` (each change on top of ``params``)."""
        make = systems.get(self.system).make
        return tuple(
            (t, make(**{**self.params, **dict(entry)}))
            for t, entry in parse_param_schedule(self.param_schedule)
        )

    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k not in BUILT}

    @property
    def param_changes(self) -> Any:
        """The :class:`~ledmus.coupler.micro.ParamSchedule`, or None without changes."""
        from .micro import ParamSchedule

        return (
            ParamSchedule(self.solver, list(self.schedule_solvers))
            if self.schedule_solvers
            else None
        )

    @property
    def lifter(self) -> Lifting:
        """The :class:`~ledmus.solvers.lifting.Lifting` these settings choose."""
        return Lifting(self.lifting, self.lifting_tol, self.lifting_max_iter)


@dataclass(frozen=True)
class MacroSettings:
    """What the macro side needs: the checkpoint, where and on what it runs.

    ``out_of_training``: ``{parameter: {"run": value, "trained": value}}`` where the run
    leaves the model's training parameters (``param_*`` or ``param_schedule``);
    ``training``/``cold_config``: a cold start's (``model: none``) training config path
    and the config the fresh LED is built from."""

    model: Path
    device: str = "cpu"
    backend: str = "numpy"
    assimilation: str = "teacher_forcing"
    assimilation_time: float = 0.0  # the solver's time unit
    out_of_training: dict[str, Any] = field(default_factory=dict)
    training: str = ""
    cold_config: dict[str, Any] | None = field(default=None, repr=False, compare=False)


@dataclass(frozen=True)
class ScheduleSettings:
    """The time line of a run: T_warm, T_m, T_mu and t_end (the solver's time unit),
    the coarse step ``dt`` they are multiples of, the policy (setting ``schedule``) and
    the adaptive schedule's and online trainer's settings."""

    t_warm: float
    t_macro: float
    t_micro: float
    t_end: float
    dt: float
    policy: str = "fixed"
    adaptive: AdaptiveSettings = field(default_factory=AdaptiveSettings)

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

    @property
    def rho(self) -> float | None:
        """``T_m / T_mu`` (None without micro windows)."""
        return self.t_macro / self.t_micro if self.t_micro > 0 else None


@dataclass(frozen=True)
class OutputSettings:
    """What a run writes: the micro-only comparison, plots, the recorded states
    (``states`` or ``latents``) and whether an earlier run's outputs may be replaced."""

    compare: bool = False
    plots: bool = True
    record: str = "states"
    overwrite: bool = False


@dataclass(frozen=True)
class RunSettings:
    """Validated settings of a whole run, one record per part; each part holds plain
    values, and the code of a part receives only its record (the micro solver is built
    from ``micro`` where it is used)."""

    micro: MicroSettings
    macro: MacroSettings
    schedule: ScheduleSettings
    output: OutputSettings

    def as_dict(self) -> dict[str, Any]:
        """The settings by their yMMSL names (``metrics.json``)."""
        out = {k: v for k, v in asdict(self.micro).items() if k in SETTINGS}
        out.update({k: v for k, v in asdict(self.macro).items() if k in SETTINGS})
        out["model"] = str(self.macro.model)
        sched = self.schedule
        out.update({k: getattr(sched, k) for k in ("t_warm", "t_macro", "t_micro", "t_end")})
        out["schedule"] = sched.policy
        out.update(asdict(self.output))
        out.update(sched.adaptive.as_dict())
        out.update({PARAM_PREFIX + k: v for k, v in self.micro.params.items()})
        return out


def _split_params(raw: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    raw = {k: v for k, v in raw.items() if not str(k).startswith("muscle_")}  # libmuscle's own

    def is_param(k: str) -> bool:
        return k.startswith(PARAM_PREFIX) and k != "param_schedule"

    # "1e6" (PyYAML, a quoted value) is the number 1e6: checked and echoed as a number
    params = {k[len(PARAM_PREFIX) :]: plain_numbers(v) for k, v in raw.items() if is_param(k)}
    return {k: v for k, v in raw.items() if not is_param(k)}, params


def _model_header(value: Any, search: list[Path]) -> tuple[Path, dict[str, Any]]:
    from ..surrogates.checkpoint import read_checkpoint

    if not isinstance(value, str) or not value:
        raise ValueError(f"setting model must be a file path, got {value!r}")
    path = resolve_file(value, "model", search)
    try:
        return path, read_checkpoint(path)
    except ValueError as exc:
        raise ValueError(f"setting model: {exc}") from None


def _micro(values: dict[str, Any], params: dict[str, Any], search: list[Path]) -> dict[str, Any]:
    system = values["system"]
    try:
        solver = systems.get(system).make(**params)
    except ValueError as exc:
        raise ValueError(f"micro solver for system {system!r}: {exc}") from None
    steps_in(
        values["t_transient"], solver.dt_coarse, "setting t_transient", "the solver's dt_coarse"
    )
    lifting = values["lifting"] or systems.get(system).lifting
    try:
        Lifting(lifting, values["lifting_tol"], values["lifting_max_iter"]).check(solver)
    except ValueError as exc:
        raise ValueError(f"setting {exc}") from None
    values = {**values, "lifting": lifting}
    changes = []
    for t, entry in parse_param_schedule(values["param_schedule"]):
        steps_in(t, solver.dt_coarse, "setting param_schedule time", "the solver's dt_coarse")
        try:
            other = systems.get(system).make(**{**params, **dict(entry)})
        except ValueError as exc:
            raise ValueError(f"setting param_schedule at t={t:g}: {exc}") from None
        if other.state_shape != solver.state_shape or other.dt_coarse != solver.dt_coarse:
            raise ValueError(
                f"setting param_schedule at t={t:g}: the parameters change the "
                "state shape or dt_coarse; only physical parameters may change"
            )
        changes.append((t, other))
    ic = values["ic"]
    if ic.endswith(".npy"):
        ic = str(resolve_file(ic, "ic", search))
    elif ic and ic not in solver.ic_names():
        raise ValueError(
            f"setting ic={ic!r} is not an initial condition of {system!r}; "
            f"allowed: {', '.join(solver.ic_names())} or a .npy file"
        )
    built = {"solver": solver, "schedule_solvers": tuple(changes)}  # checked: cached
    return {**values, "ic": ic, "params": params}, built


def _with_built(settings: Any, built: dict[str, Any]) -> Any:
    """``settings`` with the solvers validation built put in its cache (the same
    objects its properties would build)."""
    settings.__dict__.update(built)
    return settings


def validate_micro(raw: Mapping[str, Any], *, search: list[Path] | None = None) -> MicroSettings:
    """Settings of a micro component used on its own: ``system`` (or a ``model`` whose
    system it takes), ``param_*``, ``ensemble``, ``ic``, ``t_transient``, ``seed``;
    settings meant for other components are ignored."""
    search = search or [Path.cwd()]
    rest, params = _split_params(raw)
    values = parse_fields(MICRO_FIELDS, rest, unknown="ignore")
    if not values["system"]:
        if "model" not in rest:
            raise ValueError("missing setting system (the micro system's name) or model")
        values["system"] = _model_header(rest["model"], search)[1]["system"]
    micro, built = _micro(values, params, search)
    return _with_built(MicroSettings(**micro), built)


def validate(raw: Mapping[str, Any], *, search: list[Path] | None = None) -> RunSettings:
    """Check every setting of a run; ``ValueError`` naming the offending setting.  Reads
    the checkpoint header (not the weights) for the system and the trained state shape,
    builds the micro solver and checks the device."""
    from ..device import resolve_device
    from ..surrogates.checkpoint import checkpoint_kind
    from ..surrogates.macro import macro_model_class

    search = search or [Path.cwd()]
    rest, params = _split_params(raw)
    fields = (*RUN_FIELDS, *MICRO_FIELDS, *ADAPTIVE_FIELDS)
    values = parse_fields(fields, rest, extra=f"{PARAM_PREFIX}<solver parameter>")
    cold = None
    if values["model"] == "none":
        from .cold import cold_header

        model, payload, cold = cold_header(values, search)
    else:
        model, payload = _model_header(values["model"], search)
    system = payload["system"]
    if values["system"] and values["system"] != system:
        raise ValueError(
            f"setting model: {model} was trained for system {system!r}, "
            f"but setting system={values['system']!r}"
        )
    micro_values = {f.name: values[f.name] for f in MICRO_FIELDS}
    micro, built = _micro({**micro_values, "system": system}, params, search)
    solver = built["solver"]
    try:
        cls = macro_model_class(checkpoint_kind(payload))
    except ValueError as exc:
        raise ValueError(f"setting model: {exc}") from None
    if cold is None:
        trained, particles = cls.trained_state(payload["spec"])
    else:  # built for the solver's states
        trained, particles = solver.state_shape, systems.get(system).particles
    # particle models take any particle count N; only the dimension d must match
    if (trained[-1:] if particles else trained) != (
        solver.state_shape[-1:] if particles else solver.state_shape
    ):
        raise ValueError(
            f"setting model: {model} was trained on states {trained} but the {system!r} "
            f"solver with these parameters has {solver.state_shape}"
        )
    times = {k: values[k] for k in ("t_warm", "t_macro", "t_micro", "t_end")}
    for k, v in times.items():
        steps_in(v, solver.dt_coarse, f"setting {k}", "the solver's dt_coarse")
    if times["t_end"] <= times["t_warm"]:
        raise ValueError(f"setting t_end={times['t_end']:g} must be > t_warm={times['t_warm']:g}")
    if times["t_macro"] == 0 and times["t_micro"] == 0:
        raise ValueError("settings t_macro and t_micro are both 0; at least one must be > 0")
    try:
        resolve_device(values["device"])
    except ValueError as exc:
        raise ValueError(f"setting {exc}") from None
    cls.check_assimilation(values["assimilation"])
    if values["backend"] not in cls.backends:
        raise ValueError(
            f"setting backend={values['backend']!r}: a {cls.kind!r} model runs on "
            f"{', '.join(cls.backends)}"
        )
    adaptive = parse_adaptive(values)
    check_online(values, checkpoint_kind(payload), particles)
    if cold is not None and values["online"] == "off":
        raise ValueError(
            "setting model: none (cold start) needs setting online: "
            "asynchronous or deterministic (the model is trained during the run)"
        )
    if values["schedule"] == "adaptive":
        check_adaptive(times, adaptive, solver.dt_coarse)
    entries = [dict(e) for _, e in parse_param_schedule(micro["param_schedule"])]
    fixed = sorted({k for e in entries for k in e} & set(cls.input_params))
    if fixed:
        raise ValueError(
            f"setting param_schedule changes {fixed[0]}, an input of the "
            f"{cls.kind!r} model fixed at the start of a run; set it with "
            f"param_{fixed[0]} instead"
        )
    outside = out_of_training(system, payload, params, entries)
    outside = {k: v for k, v in outside.items() if k not in cls.input_params}
    return RunSettings(
        micro=_with_built(MicroSettings(**micro), built),
        macro=MacroSettings(
            model=model,
            device=values["device"],
            backend=values["backend"],
            assimilation=values["assimilation"],
            assimilation_time=values["assimilation_time"],
            out_of_training=outside if cold is None else {},
            training=values["training"],
            cold_config=cold,
        ),
        schedule=ScheduleSettings(
            **times, dt=solver.dt_coarse, policy=values["schedule"], adaptive=adaptive
        ),
        output=OutputSettings(
            **{k: values[k] for k in ("compare", "plots", "record", "overwrite")}
        ),
    )
