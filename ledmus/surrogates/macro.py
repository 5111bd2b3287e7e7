"""The macro-model protocol: everything the coupler may ask of a macro model.

The coupler and the MUSCLE3 components know only :class:`MacroModel`; each model family
(LED, the PCA baseline, later moment closures and virtual-observable models) implements
it and registers its class under the ``kind`` recorded in its checkpoint.

Shapes (``B`` ensemble members, ``T`` coarse steps, ``d`` macro dimension)::

    restrict(states (B, T, *state_shape))            -> macro states (B, T, d)   macro_dtype
    decode(m (B, d) or (B, T, d), generators)        -> states (B, [T,] *state_shape) float64
    assimilate(m_seq (B, T, d))                      teacher forcing on restricted micro states
                                                     (or the innovation: set_assimilation)
    propagate(n)                                     -> (B, n, d), uncertainty (B, n) or None
    assimilate_members / propagate_members / revert_members    the same for a subset of members
    snapshot() / restore(snap)                       the propagation state (numpy arrays)
    get_weights() / set_weights(state_dict)          replace the weights while a run goes on
    bind_micro(solver, backend=, comm=)              the run's micro solver (a closure's ε, grid)

Call order: a model propagates only what it was given, so :meth:`propagate` (and
:meth:`propagate_members`, :meth:`revert_members`) before the first :meth:`assimilate`
(or after :meth:`reset`) is a ``RuntimeError``.  The base class checks this once for every model (each subclass's
methods are wrapped when the class is created; the flag travels in :meth:`snapshot`), so
no model repeats the check.

Propagation state: after :meth:`propagate` the last returned macro state is *pending*: it
has not yet been fed to the propagator.  The next :meth:`assimilate` feeds the pending
state first, then the restricted micro states (Vlachas et al. SI §6.6: the last latent of a
macro phase and the micro window's latents teacher-force the RNN).  ``propagate`` starts
from the prediction made by the last ``assimilate`` (or continues after a pending state).

Assimilation (:data:`ASSIMILATIONS`, :meth:`MacroModel.set_assimilation`): the paper
teacher-forces the restricted micro states.  ``innovation`` keeps the propagator on its
own trajectory and corrects it: the model runs free over the window from where it was
(``z_t``, the shadow), and feeds ``z_t + g (E(x_t) - E(D(z_t)))``: only what the micro
solver did differently from the decoded shadow enters, through the same encoder, so the
encoder's and the free run's systematic offsets cancel and a restart does not kick the
phase of a travelling wave.  ``g = 1 - exp(-a / tau)``, ``a`` the member's free-run steps
since its last assimilation plus the window's.
"""

from __future__ import annotations

import functools
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import numpy as np

#: how restricted micro states enter a model's propagator (setting ``assimilation``);
#: a model lists those it has in :attr:`MacroModel.assimilations`
ASSIMILATIONS = {
    "teacher_forcing": "feed the restricted micro states E(x_t) to the propagator "
    "(Vlachas et al. SI §6.6)",
    "innovation": "feed the propagator's own free run over the window z_t plus the gain "
    "g = 1 - exp(-a/tau) times the innovation E(x_t) - E(D(z_t)); a: the member's "
    "free-run steps before and in the window, tau: setting assimilation_time",
}

#: the message of a propagation before any assimilation (one for every model)
NO_STATE = "propagate before any assimilate: no state to start from"
#: the snapshot entry of the call-order flag
ASSIMILATED = "assimilated"


def _guard(name: str, method: Callable[..., Any]) -> Callable[..., Any]:
    """``method`` with the protocol's call-order rule around it (see the module)."""

    @functools.wraps(method)
    def guarded(self: MacroModel, *args: Any, **kwargs: Any) -> Any:
        if name in NEEDS_STATE and not self.__dict__.get("_assimilated", False):
            raise RuntimeError(NO_STATE)
        out = method(self, *args, **kwargs)
        if name.startswith("assimilate"):
            self._assimilated = True
        elif name == "reset":
            self._assimilated = False
        elif name == "restore":  # a snapshot from before the flag existed: taken in a run
            snap = args[0] if args else next(iter(kwargs.values()))
            self._assimilated = bool(snap.get(ASSIMILATED, True))
        elif name == "snapshot":
            out = {**out, ASSIMILATED: self.__dict__.get("_assimilated", False)}
        return out

    return guarded


#: the methods that need an assimilated state
NEEDS_STATE = ("propagate", "propagate_members", "revert_members")
#: the methods whose call order the base class checks or records
GUARDED = (*NEEDS_STATE, "reset", "assimilate", "assimilate_members", "snapshot", "restore")


class MacroModel(ABC):
    """A macro model driven by the coupler (one instance per process, ``B`` members)."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for name in GUARDED:
            owner = next((k for k in cls.__mro__ if name in vars(k)), None)
            if owner is None:  # an ability the class does not have (member subsets)
                continue
            # wrap what this class or a mixin (the RNN propagation state) defines; a
            # MacroModel subclass wrapped its own, the base's defaults stay as they are
            if owner is cls or not issubclass(owner, MacroModel):
                setattr(cls, name, _guard(name, vars(owner)[name]))

    #: the family's kind, equal to the ``kind`` in the model's checkpoint
    kind: ClassVar[str] = ""

    #: name of the system the model was trained for
    system: str
    #: observable state shape of one member, ``(C, N)`` grids or ``(N, d)`` particles
    state_shape: tuple[int, ...]
    #: macro (latent) dimension ``d``
    macro_dim: int
    #: whether :meth:`decode` samples (needs one generator per member)
    stochastic_decode: bool = False
    #: particle models accept any particle count; only the spatial dimension must match
    particles: bool = False
    #: dtype of the macro states (recorded latents, messages)
    macro_dtype: ClassVar[type] = np.float32
    #: values of the ``backend`` setting the model runs on (its own solver's backend;
    #: any but ``numpy`` splits the model's grid over the MPI ranks of an embedded run,
    #: and every rank then runs every member)
    backends: ClassVar[tuple[str, ...]] = ("numpy",)
    #: micro-solver parameters that are inputs of the model (set per run, never "out of
    #: training"; a moment closure takes ``kn`` = ε as an input)
    input_params: ClassVar[tuple[str, ...]] = ()
    #: the :data:`ASSIMILATIONS` the model has (setting ``assimilation``)
    assimilations: ClassVar[tuple[str, ...]] = ("teacher_forcing",)
    #: the assimilation in use and its gain time in coarse steps (:meth:`set_assimilation`)
    assimilation: str = "teacher_forcing"
    assimilation_tau: float = 0.0

    @classmethod
    @abstractmethod
    def from_network(cls, net: Any) -> MacroModel:
        """Wrap the network rebuilt from a checkpoint of this kind."""

    @classmethod
    def trained_state(cls, spec: dict[str, Any]) -> tuple[tuple[int, ...], bool]:
        """``(state_shape, particles)`` of a checkpoint's ``spec``, read without building
        the model (settings are checked before any compute)."""
        return tuple(spec["state_shape"]), bool(spec.get("particles", False))

    def bind_micro(self, solver: Any, *, backend: str = "numpy", comm: Any = None) -> None:
        """Called once after loading with the run's micro solver (its parameters and
        grids), the ``backend`` setting and the MPI communicator a space-parallel backend
        splits its grid over (None: one process).  A moment closure takes ε, the grid and
        the boundary from it; latent models need nothing."""
        return None

    @classmethod
    def check_assimilation(cls, mode: str) -> None:
        """``ValueError`` naming the setting unless the model has ``mode``."""
        if mode not in cls.assimilations:
            raise ValueError(
                f"setting assimilation={mode!r}: a {cls.kind!r} model assimilates by "
                f"{', '.join(cls.assimilations)}"
            )

    def set_assimilation(self, mode: str, tau: float = 0.0) -> None:
        """How :meth:`assimilate` takes restricted micro states: one of
        :attr:`assimilations` (:data:`ASSIMILATIONS`); ``tau``: the innovation gain's
        time in coarse steps (0: gain 1)."""
        self.check_assimilation(mode)
        if not tau >= 0:
            raise ValueError(f"setting assimilation_time must be >= 0, got {tau!r}")
        self.assimilation, self.assimilation_tau = mode, float(tau)

    # ------------------------------------------------------------------ mappers
    @abstractmethod
    def restrict(self, states: np.ndarray) -> np.ndarray:
        """Observed states ``(..., *state_shape)`` -> macro states ``(..., d)``
        (:attr:`macro_dtype`)."""

    @abstractmethod
    def decode(
        self,
        m: np.ndarray,
        generators: Sequence[Any] | None = None,
        n_particles: int | None = None,
    ) -> np.ndarray:
        """Macro states ``(B, d)`` or ``(B, T, d)`` -> float64 observable states
        ``(B, [T,] *state_shape)``; ``generators``: one per member (stochastic decoders)."""

    @property
    def pooled(self) -> bool:
        """Whether the model has the pooled restriction (:class:`PooledRestriction`, an
        ability of its own: particles split over MPI ranks are restricted together)."""
        return isinstance(self, PooledRestriction)

    # ------------------------------------------------------------------ propagation
    def use_generators(self, generators: Sequence[Any]) -> None:
        """Random streams for a stochastic :meth:`propagate`, one per member in member
        order (the coupler keys them by run seed and global member, so a run split over
        MPI ranks draws what the serial run draws); deterministic models ignore them."""
        return None

    @abstractmethod
    def reset(self) -> None:
        """Forget the propagation state (a fresh run)."""

    @abstractmethod
    def assimilate(self, m_seq: np.ndarray) -> None:
        """Teacher-force the propagator with restricted micro states ``(B, T, d)``
        (after the pending state of the last :meth:`propagate`, if any)."""

    @abstractmethod
    def propagate(self, n: int) -> tuple[np.ndarray, np.ndarray | None]:
        """``n`` macro steps: states ``(B, n, d)`` and an uncertainty per member and
        step ``(B, n)`` (None when the model has no uncertainty estimate)."""

    @abstractmethod
    def snapshot(self) -> dict[str, Any]:
        """The propagation state as numpy arrays and numbers (for checkpoints)."""

    @abstractmethod
    def restore(self, snap: dict[str, Any]) -> None:
        """Undo to a :meth:`snapshot`."""

    # ------------------------------------------------------------------ member subsets
    @property
    def member_subsets(self) -> bool:
        """Whether the model has the member-subset operations (:class:`MemberSubsets`,
        an ability of its own; the ``adaptive`` schedule decides per member and needs
        it)."""
        return isinstance(self, MemberSubsets)

    # ------------------------------------------------------------------ weights
    @abstractmethod
    def get_weights(self) -> dict[str, Any]:
        """The weights (a ``state_dict``)."""

    @abstractmethod
    def set_weights(self, state_dict: dict[str, Any]) -> None:
        """Replace the weights while a run goes on (the propagation state is kept)."""


class MemberSubsets(ABC):
    """An optional ability of a macro model: the operations on a subset of its members
    (the ``adaptive`` schedule decides per member).  A model that has it derives from
    this class too (``class M(MacroModel, MemberSubsets)``); the base class checks their
    call order as it does the whole-ensemble ones."""

    @abstractmethod
    def assimilate_members(self, m_seq: np.ndarray, members: np.ndarray) -> None:
        """:meth:`MacroModel.assimilate` for the members with indices ``members`` only
        (``m_seq`` ``(len(members), T, d)``); the others keep their state."""

    @abstractmethod
    def propagate_members(
        self, n: int, members: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """:meth:`MacroModel.propagate` for ``members`` only: ``(len(members), n, d)``
        and ``(len(members), n)`` or None."""

    @abstractmethod
    def revert_members(self, snap: dict[str, Any], members: np.ndarray) -> None:
        """Put ``members`` back to their state in ``snap`` (a :meth:`MacroModel.snapshot`)."""


class PooledRestriction(ABC):
    """An optional ability of a particle macro model: a permutation-invariant
    restriction ``z = g((1/N) Σ_i φ(x_i))``, so that the particles of a state split over
    MPI ranks are restricted together (each rank sums ``φ`` over its share, an
    ``Allreduce`` adds the sums, :meth:`restrict_pooled` maps the mean).  A model that
    has it derives from this class too (``class M(MacroModel, PooledRestriction)``)."""

    @abstractmethod
    def pool_features(self, local: np.ndarray) -> np.ndarray:
        """Sum over this rank's particles ``(..., n, d)`` of the per-particle features
        ``(..., d_p)``."""

    @abstractmethod
    def restrict_pooled(self, mean_features: np.ndarray) -> np.ndarray:
        """Macro states ``(..., d)`` from the particle mean of the features ``(..., d_p)``."""


def macro_model_class(kind: str) -> type[MacroModel]:
    """The macro-model class of the family ``kind``
    (:func:`ledmus.surrogates.family.get_family`); ``ValueError`` listing the families
    that can be coupled."""
    from .family import FAMILIES

    macro = FAMILIES[kind].macro if kind in FAMILIES else None
    if macro is None:
        coupled = sorted(k for k, f in FAMILIES.items() if f.macro is not None)
        raise ValueError(f"unknown macro-model kind {kind!r}; allowed: {', '.join(coupled)}")
    return macro


def load_macro_model(path: Any, *, system: str | None = None, device: Any = "cpu") -> MacroModel:
    """The macro model stored in checkpoint ``path`` (its ``kind`` picks the class)."""
    from .checkpoint import checkpoint_kind, load_model

    net, payload = load_model(path, system=system, device=device)
    return macro_model_class(checkpoint_kind(payload)).from_network(net)
