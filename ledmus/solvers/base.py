"""Base class of every micro solver.

The base class owns validation, batching and the time loop; a concrete system only
supplies its physics (``_step``) and its two maps between the observable state and its
internal representation (``_lift`` and ``_observe``).  State is explicit (an array the
caller holds) and randomness comes in through a ``numpy.random.Generator``, so a
checkpoint is just the internal state plus the generator's state.

Shapes: every observable carries a leading ensemble axis, ``(B, *state_shape)``.
Grids are ``(B, channels, N)``; particle systems ``(B, N_particles, d)``.
"""

from __future__ import annotations

import logging
import math
from abc import ABC, ABCMeta, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from ..progress import progress_bar
from .lifting import Lifting

log = logging.getLogger("ledmus.solvers")
_WARNED: set[str] = set()  # lines already logged in this process (warn once)


def warn_once(message: str, key: str | None = None) -> None:
    """Log ``message`` as one warning line, the first time only (per process) that
    ``key`` (default: the message) comes."""
    key = message if key is None else key
    if key not in _WARNED:
        _WARNED.add(key)
        log.warning(message)


@dataclass(frozen=True)
class Validated:
    """The range ``lo <= value <= hi`` in which a solver quantity (a parameter, or one
    derived from several: an LB relaxation rate) is validated; ``why``: the test or
    measurement that validates it; ``params``: the parameters it depends on (named in the
    warning).  Outside it the solver still runs, with one logged warning: unstable values
    are refused in the solver's ``__init__`` (``ValueError`` naming the parameter)."""

    lo: float
    hi: float
    why: str
    params: tuple[str, ...] = ()


def check_stable(name: str, value: float, lo: float, hi: float, why: str) -> float:
    """``value``, or ``ValueError`` naming ``name`` and the stable range ``(lo, hi]``."""
    if not lo < value <= hi:
        raise ValueError(
            f"{name}={value:g} is outside the stable range; allowed: "
            f"{lo:g} < {name} <= {hi:g} ({why})"
        )
    return value


class _CheckedSolver(ABCMeta):
    """Checks the validated ranges once the solver's ``__init__`` is done (one line of
    warning per quantity outside its range), so a solver only declares them."""

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        obj = super().__call__(*args, **kwargs)
        obj.check_validated()
        return obj


def check_positive(name: str, value: float, *, allow_zero: bool = False) -> float:
    """Return ``float(value)`` or raise ``ValueError`` naming the parameter."""
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be finite and {bound}, got {value!r}")
    return value


def check_int(name: str, value: Any, *, minimum: int) -> int:
    """Return ``value`` as an int >= ``minimum`` or raise ``ValueError`` naming it (also
    for a value that is not a number)."""
    try:
        whole = float(value).is_integer()
    except (TypeError, ValueError):
        whole = False
    if isinstance(value, bool) or not whole:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    value = int(value)
    if value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value}")
    return value


def cfl_time_step(
    dt: float | None, dt_coarse: float, dt_max: float, formula: str, where: str
) -> float:
    """The micro step of an explicit transport scheme: ``dt`` checked against the CFL
    bound ``dt_max`` (named ``formula``, its symbols explained by ``where`` in the error),
    or, when None, the largest step ``<= dt_max`` that divides ``dt_coarse``."""
    if dt is None:
        dt = dt_coarse / math.ceil(dt_coarse / dt_max - 1e-9)
    dt = check_positive("dt", dt)
    if dt > dt_max * (1 + 1e-12):
        raise ValueError(
            f"dt={dt!r} is above the transport CFL bound; allowed: 0 < dt <= "
            f"{formula} = {dt_max:.6g} ({where})"
        )
    return dt


def steps_in(duration: float, step: float, name: str, step_name: str) -> int:
    """Number of steps of length ``step`` in ``duration``; it must be a whole multiple.

    Raises ``ValueError`` naming ``name`` when ``duration`` is negative or not an
    integer multiple of ``step`` (to a relative tolerance of 1e-9, which absorbs the
    binary representation of decimals such as 0.025 but no real mismatch).
    """
    duration = float(duration)
    if not math.isfinite(duration) or duration < 0:
        raise ValueError(f"{name} must be finite and >= 0, got {duration!r}")
    ratio = duration / step
    n = round(ratio)
    if abs(ratio - n) > 1e-9 * max(1.0, ratio):
        raise ValueError(
            f"{name}={duration!r} is not a multiple of {step_name}={step!r}; "
            f"allowed: k*{step!r} for integer k >= 0"
        )
    return n


class Solver(ABC, metaclass=_CheckedSolver):
    """A batched, reproducible micro solver.

    Subclasses set :attr:`name`, call ``super().__init__(dt=..., dt_coarse=...)`` and
    implement :meth:`_step`, :meth:`_lift`, :meth:`_observe` and :attr:`state_shape`.
    """

    #: registry name of the system
    name: ClassVar[str] = ""
    #: whether ``advance`` draws random numbers
    stochastic: ClassVar[bool] = False
    #: lifting strategies this solver implements (:mod:`ledmus.solvers.lifting`);
    #: ``chapman_enskog`` needs :meth:`_lift_chapman_enskog`, the iterative ones
    #: :meth:`_unobserved` and :meth:`_with_unobserved`
    liftings: ClassVar[tuple[str, ...]] = ("equilibrium",)
    #: quantity -> the range it is validated in (:class:`Validated`); the value is the
    #: attribute of that name (a property for derived quantities)
    validated: ClassVar[dict[str, Validated]] = {}

    def __init__(self, *, dt: float, dt_coarse: float) -> None:
        self.system = self.name  # registry name; make() sets presets such as "ad3d"
        self.dt = check_positive("dt", dt)
        self.dt_coarse = check_positive("dt_coarse", dt_coarse)
        self.steps_per_coarse = steps_in(self.dt_coarse, self.dt, "dt_coarse", "dt")
        if self.steps_per_coarse < 1:
            raise ValueError(f"dt_coarse={dt_coarse!r} must be >= dt={dt!r}")

    def check_validated(self) -> list[str]:
        """The quantities outside their validated range, each logged once as one line
        (``ledmus.solvers: fhn: omega_u=5e-06 (d_u=1e+06, dt=0.005) is outside ...``)."""
        outside = []
        for name, rng in self.validated.items():
            value = float(getattr(self, name))
            if rng.lo <= value <= rng.hi:
                continue
            outside.append(name)
            deps = [p for p in rng.params if p != name]
            via = f" ({', '.join(f'{p}={getattr(self, p):g}' for p in deps)})" if deps else ""
            warn_once(
                f"{self.system}: {name}={value:.3g}{via} is outside the range the solver "
                f"is validated in, {rng.lo:g} <= {name} <= {rng.hi:g} ({rng.why}); "
                "the results are not validated"
            )
        return outside

    # ----------------------------------------------------------------- physics hooks
    @property
    @abstractmethod
    def state_shape(self) -> tuple[int, ...]:
        """Shape of one ensemble member's observable state."""

    @abstractmethod
    def params(self) -> dict[str, Any]:
        """The physical and numerical parameters (JSON-serialisable) of this solver."""

    @abstractmethod
    def _lift(self, obs: np.ndarray, rng: np.random.Generator | None) -> Any:
        """Map a validated float64 observable ``(B, *state_shape)`` to the internal state."""

    @abstractmethod
    def _observe(self, internal: Any) -> np.ndarray:
        """Map the internal state to the observable ``(B, *state_shape)``."""

    def _lift_chapman_enskog(self, obs: np.ndarray) -> Any:
        """Equilibrium plus the first-order Chapman–Enskog non-equilibrium part."""
        raise NotImplementedError(f"{self.name!r} has no Chapman–Enskog lifting")

    def _unobserved(self, internal: Any) -> np.ndarray:
        """The unobserved part ``w`` of the internal state, ``(B, C, ...)``."""
        raise NotImplementedError(f"{self.name!r} has no unobserved moments")

    def _with_unobserved(self, obs: np.ndarray, w: np.ndarray) -> Any:
        """The internal state whose observable is ``obs`` and unobserved part ``w``."""
        raise NotImplementedError(f"{self.name!r} has no unobserved moments")

    @abstractmethod
    def _step(self, internal: Any, t: float, rng: np.random.Generator | None) -> Any:
        """Advance the internal state by one micro step ``dt`` starting at time ``t``."""

    def initial_condition(
        self, ic: str | np.ndarray | None, batch: int, rng: np.random.Generator
    ) -> np.ndarray:
        """Observable initial condition ``(batch, *state_shape)``.

        ``ic`` is an array (one state, or a batch of ``batch`` states), ``None`` for the
        system's default, or a name from :meth:`ic_names`.
        """
        batch = check_int("batch", batch, minimum=1)
        if ic is None:
            ic = self.ic_names()[0]
        if isinstance(ic, str):
            if ic not in self.ic_names():
                raise ValueError(
                    f"ic={ic!r} is not an initial condition of {self.name!r}; "
                    f"allowed: {', '.join(self.ic_names())} or a .npy file"
                )
            return self._named_ic(ic, batch, rng)
        obs = self.check_observable(ic, name="ic")
        if obs.shape[0] == 1 and batch > 1:
            obs = np.repeat(obs, batch, axis=0)
        if obs.shape[0] != batch:
            raise ValueError(f"ic holds {obs.shape[0]} states but batch={batch}")
        return obs

    def ic_names(self) -> tuple[str, ...]:
        """Names accepted by :meth:`initial_condition`; the first is the default."""
        return ("random",)

    def _named_ic(self, name: str, batch: int, rng: np.random.Generator) -> np.ndarray:
        raise NotImplementedError  # only reached for names the subclass lists

    # ----------------------------------------------------------------- public API
    def check_observable(self, obs: Any, *, name: str = "state") -> np.ndarray:
        """Validate an observable and return it as float64 ``(B, *state_shape)``.

        A single state of shape ``state_shape`` gets an ensemble axis of length 1.
        """
        arr = np.asarray(obs, dtype=np.float64)
        if arr.shape == self.state_shape:
            arr = arr[None]
        if arr.ndim != len(self.state_shape) + 1 or arr.shape[1:] != self.state_shape:
            raise ValueError(
                f"{name} has shape {arr.shape}; {self.name!r} needs "
                f"{self.state_shape} or (B, {', '.join(map(str, self.state_shape))})"
            )
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"{name} contains NaN or infinite values")
        return arr

    def lift(
        self,
        obs: Any,
        rng: np.random.Generator | None = None,
        *,
        lifting: Any = None,
        t: float = 0.0,
    ) -> Any:
        """Observable ``(B, *state_shape)`` -> internal representation.

        ``lifting``: a strategy name from :attr:`liftings` or a
        :class:`~ledmus.solvers.lifting.Lifting` (default: equilibrium); ``t`` is the
        time the micro steps of an iterative lifting run at.
        """
        if not isinstance(lifting, Lifting):
            lifting = Lifting(lifting or "equilibrium")
        return lifting.lift(self, obs, rng, t)[0]

    def observe(self, internal: Any) -> np.ndarray:
        """Internal representation -> observable ``(B, *state_shape)`` (float64)."""
        return self._observe(internal)

    def _need_rng(self, rng: np.random.Generator | None) -> np.random.Generator | None:
        if self.stochastic and not isinstance(rng, np.random.Generator):
            raise ValueError(
                f"rng must be a numpy.random.Generator for the stochastic system "
                f"{self.name!r}, got {type(rng).__name__}"
            )
        return rng

    def advance(
        self,
        internal: Any,
        t0: float,
        duration: float,
        rng: np.random.Generator | None = None,
    ) -> Any:
        """Advance ``internal`` from time ``t0`` by ``duration`` (a multiple of ``dt``).

        The time of micro step ``k`` is ``t0 + k*dt`` (never accumulated), so a run
        split into pieces gives the same drift phases as one uninterrupted run.
        """
        rng = self._need_rng(rng)
        n = steps_in(duration, self.dt, "duration", "dt")
        errors: list[str] = []
        # numpy's floating-point warnings (overflow in u^3, ...) would print once per
        # source line with its path; here they become one ledmus line per solver and error
        with np.errstate(
            over="call",
            invalid="call",
            divide="call",
            under="ignore",
            call=lambda error, flag: errors.append(error),
        ):
            for k in range(n):
                internal = self._step(internal, t0 + k * self.dt, rng)
        if errors:
            warn_once(
                f"{self.system}: floating-point {errors[0]} in the time loop (first at "
                f"t = {t0:g} ... {t0 + n * self.dt:g}); the state may hold inf or NaN "
                f"(parameters {self.params()})",
                key=f"{self.system} {errors[0]} {self.params()}",
            )
        return internal

    def rollout(
        self,
        obs: Any,
        t_end: float,
        rng: np.random.Generator | None = None,
        *,
        t0: float = 0.0,
        discard: float = 0.0,
        progress: bool = False,
        lifting: Any = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Run from the observable ``obs`` at ``t0``; record from ``t0 + discard`` on.

        The first ``discard`` time units (a multiple of ``dt_coarse``) are a transient
        run on the internal state and not recorded.  Returns ``(t, states)`` with ``t``
        shaped ``(T,)`` and ``states`` shaped ``(B, T, *state_shape)``, sampled every
        ``dt_coarse`` from ``t0 + discard`` to ``t0 + discard + t_end`` inclusive:
        ``T = t_end/dt_coarse + 1``.  ``lifting``: how ``obs`` is lifted (see
        :meth:`lift`).
        """
        n_coarse = steps_in(t_end, self.dt_coarse, "t_end", "dt_coarse")
        n_skip = steps_in(discard, self.dt_coarse, "discard", "dt_coarse")
        rng = self._need_rng(rng)
        obs = self.check_observable(obs)
        internal = self.lift(obs, rng, lifting=lifting, t=t0)
        states = np.empty((obs.shape[0], n_coarse + 1, *self.state_shape))
        bar = progress_bar(
            total=n_skip + n_coarse, enabled=progress, desc=self.system, unit="Δt", leave=False
        )
        with bar:
            for j in range(n_skip + n_coarse + 1):
                if j > 0:
                    internal = self.advance(
                        internal, t0 + (j - 1) * self.dt_coarse, self.dt_coarse, rng
                    )
                    bar.update()
                if j >= n_skip:
                    state = self.observe(internal)
                    if not np.all(np.isfinite(state)):
                        raise FloatingPointError(
                            f"{self.system}: state became non-finite at t={t0 + j * self.dt_coarse:g}"
                        )
                    states[:, j - n_skip] = state
        t = t0 + self.dt_coarse * np.arange(n_skip, n_skip + n_coarse + 1)
        return t, states

    def __repr__(self) -> str:
        inner = ", ".join(f"{k}={v!r}" for k, v in self.params().items())
        return f"{type(self).__name__}({inner})"
