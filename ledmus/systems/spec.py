"""The declaration of one system: :class:`SystemSpec` and its parts.

A spec says everything the rest of ledmus needs to know about a system besides its
numerics: the solver class and preset, the layout of a state (a grid of channels, particles,
a histogram, a kinetic field), channel names and the physical coordinate of the last
state axis, the dataset and evaluation protocols, the metric suite (by layout, in
:mod:`ledmus.systems.suites`), constraint monitors and symmetries.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..solvers import construct, constructor_parameters
from ..solvers.base import Solver
from . import suites

#: layouts of a state: grid ``(C, N)`` (channels on nodes), particles ``(N_particles, d)``,
#: histogram ``(C, n_bins)`` (fractions summing to one per channel), kinetic
#: (a kinetic solver's observable moment fields on a grid, ``(C, N)``)
LAYOUTS = ("grid", "particles", "histogram", "kinetic")
#: the ways a coupled run plots member 0 (:attr:`SystemSpec.run_plot`)
RUN_PLOTS = ("field", "profiles", "means")
_LAYOUT_PLOTS = {"grid": "field", "histogram": "field", "kinetic": "profiles", "particles": "means"}


@dataclass(frozen=True)
class Monitor:
    """A physical constraint: ``check(states)`` with ``states`` ``(B, *state_shape)``
    returns a bool array ``(B,)``, True where the constraint holds (NaN fails)."""

    name: str
    check: Callable[[np.ndarray], np.ndarray]
    description: str = ""


@dataclass(frozen=True)
class Symmetry:
    """A map of states ``(..., *state_shape)`` that sends a trajectory of the system to
    another trajectory of the same system."""

    name: str
    apply: Callable[[np.ndarray], np.ndarray]
    description: str = ""


@dataclass(frozen=True)
class Evaluation:
    """Latent-forecast protocol: ``t_warm`` teacher-forced steps, then ``horizon`` steps
    (None: the rest of the test window); ``spans``: extra error spans (first n steps)."""

    t_warm: int = 60
    horizon: int | None = None
    spans: tuple[int, ...] = ()


@dataclass(frozen=True)
class Split:
    """One split of a dataset: ``batch`` runs from ``ic``, ``discard`` then ``t_end``."""

    ic: str | tuple[str, ...]
    batch: int
    t_end: float
    discard: float = 0.0
    #: test splits: number and length (coarse steps) of random evaluation windows
    windows: int = 0
    window_length: int = 0
    #: solver parameters drawn anew for every run, log-uniform: ``(name, low, high)``
    #: (e.g. the Knudsen number ``eps``); each run then has its own solver and a tuple
    #: ``ic`` is cycled over the ``batch`` runs; the values drawn are stored per run
    per_run: tuple[tuple[str, float, float], ...] = ()


@dataclass(frozen=True)
class Protocol:
    """A dataset recipe: solver parameters and the train/val/test splits."""

    system: str
    description: str
    splits: dict[str, Split]
    params: dict[str, Any] = field(default_factory=dict)


class FrozenMapping(Mapping[str, Any]):
    """A read-only mapping that, unlike ``MappingProxyType``, pickles."""

    def __init__(self, data: Mapping[str, Any]) -> None:
        self._data = dict(data)

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def __iter__(self):
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __repr__(self) -> str:
        return repr(self._data)


@dataclass(frozen=True)
class SystemSpec:
    """One system's declaration; register it with :func:`ledmus.systems.register`."""

    name: str
    solver: type
    #: the layout of a state (:data:`LAYOUTS`)
    layout: str
    description: str = ""
    #: keyword arguments for the solver class (the paper's values for this benchmark)
    preset: Mapping[str, Any] = field(default_factory=dict)
    #: grid/kinetic: channel names ("u", "v"); particles: axis names ("x", ...);
    #: histogram: ("density",)
    channels: tuple[str, ...] = ()
    #: physical coordinate of the last state axis (grid nodes, histogram bin centres)
    coordinates: Callable[[Solver], np.ndarray] | None = None
    coordinate_name: str = "x"
    #: scale ("paper" / "small") -> dataset Protocol
    dataset: Callable[[str], Protocol] | None = None
    evaluation: Evaluation = Evaluation()
    #: leading Lyapunov exponent: valid prediction time in Lyapunov times (and, for a
    #: chaotic system, the distribution metrics of the evaluation suite)
    lyapunov: float | None = None
    monitors: tuple[Monitor, ...] = ()
    symmetries: tuple[Symmetry, ...] = ()
    #: travelling waves (a phase is a neutral mode): runs and evaluations report the
    #: phase lag and the shape error (:func:`ledmus.metrics.phase_shape`) of channel 0
    travelling_wave: bool = False
    #: default lifting strategy of coupled runs (one of the solver's ``liftings``;
    #: empty: the first, ``equilibrium``)
    lifting: str = ""
    #: how a coupled run's ``field.png`` shows member 0 (:data:`RUN_PLOTS`): ``field``
    #: (channel 0 over the coordinate and time), ``profiles`` (kinetic: ρ, u, T
    #: profiles in ``profiles.png`` and the macro share over time), ``means`` (the mean of
    #: each channel or axis over time); empty: by layout (grids and histograms ``field``,
    #: kinetic ``profiles``, particles ``means``)
    run_plot: str = ""

    @property
    def liftings(self) -> tuple[str, ...]:
        """The lifting strategies the solver implements (:mod:`ledmus.solvers.lifting`)."""
        return tuple(self.solver.liftings)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip() or " " in self.name:
            raise ValueError(f"system name must be a non-empty word, got {self.name!r}")
        if self.layout not in LAYOUTS:
            raise ValueError(
                f"system {self.name!r}: layout={self.layout!r} unknown; "
                f"allowed: {', '.join(LAYOUTS)}"
            )
        if not (isinstance(self.solver, type) and issubclass(self.solver, Solver)):
            raise ValueError(
                f"system {self.name!r}: solver must be a subclass of ledmus.solvers.base.Solver,"
                f" got {self.solver!r}"
            )
        allowed = constructor_parameters(self.solver)
        unknown = sorted(set(self.preset) - set(allowed))
        if unknown:
            raise ValueError(
                f"system {self.name!r}: preset has unknown parameter(s) {', '.join(unknown)}; "
                f"allowed: {', '.join(allowed)}"
            )
        object.__setattr__(self, "preset", FrozenMapping(self.preset))
        for name, typ in (("channels", str), ("monitors", Monitor), ("symmetries", Symmetry)):
            value = tuple(getattr(self, name))
            bad = [v for v in value if not isinstance(v, typ)]
            if bad:
                raise ValueError(
                    f"system {self.name!r}: {name} must hold {typ.__name__} items, got {bad[0]!r}"
                )
            object.__setattr__(self, name, value)
        lifting = self.lifting or self.liftings[0]
        if lifting not in self.liftings:
            raise ValueError(
                f"system {self.name!r}: lifting={self.lifting!r} is not implemented by its "
                f"solver; allowed: {', '.join(self.liftings)}"
            )
        run_plot = self.run_plot or _LAYOUT_PLOTS[self.layout]
        if run_plot not in RUN_PLOTS:
            raise ValueError(
                f"system {self.name!r}: run_plot={self.run_plot!r} unknown; "
                f"allowed: {', '.join(RUN_PLOTS)}"
            )
        object.__setattr__(self, "run_plot", run_plot)
        object.__setattr__(self, "lifting", lifting)
        if not isinstance(self.evaluation, Evaluation):
            raise ValueError(f"system {self.name!r}: evaluation must be an Evaluation")
        if self.lyapunov is not None and not (math.isfinite(self.lyapunov) and self.lyapunov > 0):
            raise ValueError(f"system {self.name!r}: lyapunov must be > 0, got {self.lyapunov!r}")

    def make(self, **params: Any) -> Solver:
        """The solver with the preset overridden by ``params``.

        Raises ``ValueError`` for an unknown parameter (listing the solver's parameters)
        or an invalid value.
        """
        return construct(self.solver, self.preset, self.name, params)

    @property
    def particles(self) -> bool:
        """Whether a state is a particle cloud ``(N, d)`` (any particle count ``N``)."""
        return self.layout == "particles"

    @property
    def ranged(self) -> bool:
        """Whether comparison errors are normalised by each channel's micro range
        (grids, histograms, kinetic cells; not particles, compared in box units)."""
        return not self.particles

    def comparison_error(
        self, macro: np.ndarray, micro: np.ndarray, span: np.ndarray | None
    ) -> np.ndarray:
        """The adaptive schedule's comparison error per member of a block
        (:func:`.suites.comparison_error`)."""
        return suites.comparison_error(self, macro, micro, span)

    def step_errors(
        self, macro: np.ndarray, micro: np.ndarray, span: np.ndarray | None
    ) -> np.ndarray:
        """The comparison error of each step of a block (:func:`.suites.step_errors`)."""
        return suites.step_errors(self, macro, micro, span)

    def errors(self, reference: np.ndarray, prediction: np.ndarray, dt: float) -> dict[str, Any]:
        """Coupled-run errors of ``prediction`` against the micro-only ``reference``,
        both ``(B, T, *state_shape)`` after the warm-up, sampled every ``dt``."""
        return suites.errors(self, reference, prediction, dt)

    def evaluate(self, reference: np.ndarray, prediction: np.ndarray, dt: float) -> dict[str, Any]:
        """Latent-forecast metrics of ``prediction`` against ``reference``, both
        ``(W, T, *state_shape)`` (windows after the warm-up), sampled every ``dt``."""
        return suites.evaluate(self, reference, prediction, dt)

    def evaluator(self, dt: float) -> Any:
        """:meth:`evaluate` over windows given in chunks: ``add(reference, prediction)``
        per chunk, then ``result()`` (grids stream; other layouts collect the chunks)."""
        return suites.evaluator(self, dt)
