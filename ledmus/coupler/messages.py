"""Typed messages between the parts of a coupled run.

The engines pass these dataclasses between the parts; the MUSCLE3 components turn them
into plain dicts of numbers and numpy arrays (:meth:`to_payload`) only at the port and
back (:meth:`from_payload`, which names a missing or ill-typed field).  Times are in the
solver's time unit; ``steps`` counts coarse steps ``dt_coarse``::

    macro -> lift       WindowRequest   window, t0, steps, include_initial, m (B, d) | None,
                                        members (b,) | None, lift (l,) | None
    lift -> micro       MicroRequest    window, t0, steps, include_initial, state (B, *shape) | None,
                                        members, lift
    micro -> restrict   MicroResult     window, states (B, n, *shape), micro_s, lift_s, micro_ranks,
                                        lift_stats
    restrict -> macro   Restricted      the MicroResult fields + m (B, n, d), restrict_s
    macro -> trainer    TrainRequest    window, start, states (b, n, *shape) | None, members (b,),
                                        regime
    trainer -> macro    TrainReply      window, version, weights | None, updates, failures, train_s,
                                        buffered
    macro -> lift,      Weights         version, weights | None (each window, online training)
      restrict
    hybrid -> kinetic   KineticRequest  step, t0, duration, start (s,), size (s,), ends (s, 2),
                                        f (nv, n_k), ghosts (s, 2, 2, nv, 2)
    kinetic -> hybrid   KineticResult   step, f (nv, n_k), phi (s, 3, 2), micro_s

``KineticRequest``/``KineticResult`` are the kinetic-cells format of the cell-local hybrid
(:mod:`ledmus.coupler.hybrid`, docs/guide/foreign_components.md): the ``s`` runs of
kinetic cells, run ``k`` the cells ``start[k] … start[k] + size[k] - 1`` (modulo ``nx``
on a periodic box), their ``f`` side by side in run order; ``ghosts[k, side, time]`` the
two cells beyond the run's left (side 0) or right (side 1) end, in ``x`` order, at the
start (time 0) and the end (time 1) of ``duration``; ``ends[k, side] = 1`` where that side
is a domain end (its ghosts are ignored and the solver's boundary fills them).  The reply:
``f`` after ``duration``, and ``phi[k]`` the time integrals ``∫ F dt`` of the mass,
momentum and energy fluxes through the run's left and right end faces.

``MicroRequest``/``MicroResult`` are the micro component's public format
(docs/guide/foreign_components.md): a request asks for ``steps`` coarse steps from time ``t0``,
starting from ``state`` (lifted) or, when it is None, from the micro solver's own state (its
initial condition at the first request); ``n = steps + include_initial`` states come back.

Member subsets (the ``adaptive`` schedule): ``members`` lists the positions (in this
process's block of the ensemble) of the members that run, ``lift`` those of them that start
from a lifted state; ``m`` and ``state`` then hold only the lifted members' rows (in the
order of ``lift``) and ``states``/``m`` come back for ``members`` only.  None: every member
(and, with ``m``/``state`` given, every member lifted).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np

M = TypeVar("M", bound="Message")


class Message:
    """Conversion to and from MUSCLE3 payloads (dicts)."""

    def to_payload(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    @classmethod
    def from_payload(cls: type[M], data: Any, where: str = "message") -> M:
        if not isinstance(data, dict):
            raise ValueError(f"{where}: expected a dict of fields, got {type(data).__name__}")
        values = {}
        for f in dataclasses.fields(cls):
            if f.name not in data:
                if f.default is not dataclasses.MISSING:
                    continue
                raise ValueError(f"{where}: {cls.__name__} lacks field {f.name!r}")
            values[f.name] = _convert(cls.__name__, f.name, f.type, data[f.name], where)
        return cls(**values)


def _convert(cls: str, name: str, annotation: Any, value: Any, where: str) -> Any:
    annotation = str(annotation)

    def bad(expected: str) -> ValueError:
        # built only on error: the repr of a state array costs about a millisecond
        return ValueError(f"{where}: {cls}.{name} must be {expected}, got {value!r:.60}")

    if annotation.startswith("np.ndarray"):
        if value is None:
            if "None" in annotation:
                return None
            raise bad("an array")
        arr = np.array(value)  # received arrays are read-only: copy
        if arr.dtype.kind not in "fiu":
            raise bad("a numeric array")
        return arr
    if annotation == "int":
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise bad("an integer")
        return int(value)
    if annotation == "float":
        if isinstance(value, bool) or not isinstance(value, (int, float, np.number)):
            raise bad("a number")
        return float(value)
    if annotation == "bool":
        if not isinstance(value, (bool, np.bool_)):
            raise bad("true or false")
        return bool(value)
    return value


#: entries of the ``lift_stats`` vector of :class:`MicroResult` and :class:`Restricted`:
#: the solver lift that started the window (lifts = 1; iterations, micro steps spent,
#: final residual, 1 when the iteration cap stopped it, seconds)
LIFT_STATS = ("lifts", "iterations", "steps", "residual", "not_converged", "seconds")


def lift_stats(report: Any) -> np.ndarray:
    """A :class:`~ledmus.solvers.lifting.LiftReport` as the ``lift_stats`` vector."""
    return np.array(
        [
            1.0,
            report.iterations,
            report.steps,
            report.residual,
            0.0 if report.converged else 1.0,
            report.seconds,
        ]
    )


class LiftTally:
    """The lifts of a run, summed from the windows' ``lift_stats``."""

    def __init__(self) -> None:
        self.lifts = self.iterations = self.steps = self.not_converged = 0
        self.iterations_max = 0
        self.residual_max = self.seconds = 0.0

    def add(self, stats: np.ndarray | None) -> None:
        if stats is None:
            return
        s = dict(zip(LIFT_STATS, np.asarray(stats, dtype=np.float64).tolist(), strict=True))
        self.lifts += int(s["lifts"])
        self.iterations += int(s["iterations"])
        self.iterations_max = max(self.iterations_max, int(s["iterations"]))
        self.steps += int(s["steps"])
        self.not_converged += int(s["not_converged"])
        self.residual_max = max(self.residual_max, s["residual"])
        self.seconds += s["seconds"]

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> LiftTally:
        """A tally from :func:`vars` of one (a snapshot); unknown keys are refused."""
        tally = cls()
        for key, value in values.items():
            if key not in vars(tally):
                raise ValueError(f"lifting snapshot: unknown field {key!r}")
            setattr(tally, key, type(getattr(tally, key))(value))
        return tally

    def summary(self) -> dict[str, Any]:
        return {
            "lifts": self.lifts,
            "iterations_mean": self.iterations / self.lifts if self.lifts else 0.0,
            "iterations_max": self.iterations_max,
            "micro_steps": self.steps,
            "residual_max": self.residual_max,
            "not_converged": self.not_converged,
            "seconds": self.seconds,
        }


@dataclass
class WindowRequest(Message):
    """Macro -> lift: run a micro window (``m``: the macro state to lift, or None)."""

    window: int
    t0: float
    steps: int
    include_initial: bool
    m: np.ndarray | None = None
    members: np.ndarray | None = None
    lift: np.ndarray | None = None


@dataclass
class MicroRequest(Message):
    """lift component -> micro: ``steps`` coarse steps from ``t0``, from ``state`` or (None) the
    micro solver's own state; ``include_initial``: also return the starting state."""

    window: int
    t0: float
    steps: int
    include_initial: bool = False
    state: np.ndarray | None = None
    lift_s: float = 0.0
    members: np.ndarray | None = None
    lift: np.ndarray | None = None


@dataclass
class MicroResult(Message):
    """Micro -> restrict: the observed coarse states ``(B, n, *shape)``."""

    window: int
    states: np.ndarray
    micro_s: float = 0.0
    lift_s: float = 0.0
    micro_ranks: int = 1
    lift_stats: np.ndarray | None = None


@dataclass
class Restricted(Message):
    """Restrict -> macro: the micro states and their macro states ``(B, n, d)``."""

    window: int
    states: np.ndarray
    m: np.ndarray
    micro_s: float = 0.0
    lift_s: float = 0.0
    restrict_s: float = 0.0
    micro_ranks: int = 1
    lift_stats: np.ndarray | None = None


@dataclass
class TrainRequest(Message):
    """Macro -> trainer, once per micro window: the micro states of the previous window
    (one window late: MUSCLE3 sends every O_I port before the S receives) of global
    members ``members``, coarse indices ``start … start + n - 1``, parameter regime
    ``regime`` (changes of ``param_schedule`` before them); ``states`` None: no data."""

    window: int
    start: int = 0
    states: np.ndarray | None = None
    members: np.ndarray | None = None
    regime: int = 0


@dataclass
class TrainReply(Message):
    """Trainer -> macro: ``weights`` (a :func:`~ledmus.surrogates.online_async.pack_weights`
    payload) when a version newer than the last one sent exists, else None; the trainer's
    counters (``failures``: failed training rounds; training stops at the first)."""

    window: int
    version: int = 0
    weights: dict | None = None
    updates: int = 0
    failures: int = 0
    train_s: float = 0.0
    buffered: int = 0


@dataclass
class Weights(Message):
    """Macro -> lift and restrict before each window: the weights version the window
    uses and, when the mapper has not had it yet, the packed weights."""

    version: int
    weights: dict | None = None


@dataclass
class KineticRequest(Message):
    """Hybrid -> kinetic cells: advance the runs of kinetic cells over ``duration``."""

    step: int
    t0: float
    duration: float
    start: np.ndarray
    size: np.ndarray
    ends: np.ndarray
    f: np.ndarray
    ghosts: np.ndarray


@dataclass
class KineticResult(Message):
    """Kinetic cells -> hybrid: ``f`` after the step and the end-face flux integrals."""

    step: int
    f: np.ndarray
    phi: np.ndarray
    micro_s: float = 0.0
