"""The ML moment closure as a :class:`~ledmus.surrogates.macro.MacroModel`: the macro
component of the HMM coupling with the BGK micro solver.

**Macro state** of a member: the moments ``Q = (ρ, ρu, E, ρW_1..ρW_M)`` of every cell,
``(3+M, nx)`` flattened to ``d = (3+M)·nx`` (channel-major), float64.
**Restrict** ``f (nv, nx) -> Q``: grid moments and the encoder's ``W`` (:func:`.lift.
restrict`).  **Decode** ``Q -> f``: the decoder ``h(v; U, W)`` (:func:`.lift.lift`;
positive, the grid moments of ``U`` to rounding).
**Propagate**: member 0 of the :class:`~.hmm.ClosureEnsemble` closes the moment system,
solved by the finite-volume scheme of :mod:`.fv` (MUSCL, HLL, SSP-RK3; ``backend``
``numpy`` or ``petsc``, :func:`.petsc_fv.make_fv_solver`) over one coarse step
``dt_coarse`` of the micro solver per macro step.  **Uncertainty** of each macro state:
the ensemble deviation, the largest over cells of the std across the ``K`` closures of
``(q̃, g̃, y)/s(ε)`` (:func:`.learn.deviation`, the score of concurrent learning).

With ``schedule: adaptive`` and ``max_uncertainty`` set to the trust level, the coupler
(which knows only the protocol) runs a block of the macro model per member while the
deviation stays below it; a block where it goes above is thrown away, and the BGK
solver runs it instead from the lifted state (lift conduit), its states restricted back
(restrict conduit) and used in place of the closure's for that member; after ``t_micro``
of BGK the closure is tried again in a comparison window.  ε (``kn``), the grid, the box
length and the boundary come from the run's micro solver (:meth:`ClosureMacro.
bind_micro`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
import torch

from ..macro import MacroModel, MemberSubsets
from .hmm import ClosureEnsemble, check_spec
from .lift import lift, restrict
from .ml import MLMomentClosure

log = logging.getLogger(__name__)


class ClosureMacro(MacroModel, MemberSubsets):
    """A :class:`~.hmm.ClosureEnsemble` driven by the coupler (see the module)."""

    kind = "closure_hmm"
    backends: ClassVar[tuple[str, ...]] = ("numpy", "petsc")
    input_params: ClassVar[tuple[str, ...]] = ("kn",)
    macro_dtype: ClassVar[type] = np.float64

    def __init__(self, net: ClosureEnsemble) -> None:
        if next(net.parameters()).device.type != "cpu":
            log.info("the closure_hmm model runs on the CPU (float64 numpy moment solver)")
        self.net = net.cpu().eval()
        self.system = net.system
        self.state_shape = tuple(net.state_shape)
        self.M = net.M
        self.nx = self.state_shape[1]
        self.macro_dim = (3 + self.M) * self.nx
        self.bgk: Any = None
        self.backend, self.comm = "numpy", None
        self._fv: Any = None
        self.reset()

    @classmethod
    def from_network(cls, net: torch.nn.Module) -> ClosureMacro:
        return cls(net)

    @classmethod
    def trained_state(cls, spec: dict[str, Any]) -> tuple[tuple[int, ...], bool]:
        return tuple(check_spec(spec)["state_shape"]), False

    def bind_micro(self, solver: Any, *, backend: str = "numpy", comm: Any = None) -> None:
        if getattr(solver, "name", None) != "bgk":
            raise ValueError(
                f"the closure_hmm model couples to the bgk solver, not "
                f"{getattr(solver, 'name', solver)!r}"
            )
        if tuple(solver.state_shape) != self.state_shape:
            raise ValueError(
                f"the closure_hmm model was built for BGK states {self.state_shape}"
                f", the solver has {solver.state_shape}"
            )
        if backend not in self.backends:
            raise ValueError(f"setting backend={backend!r}; allowed: {', '.join(self.backends)}")
        self.bgk, self.eps, self.backend, self.comm = solver, float(solver.kn), backend, comm
        self._fv = None  # made at the first propagation (PETSc only where it propagates)

    # ------------------------------------------------------------------ helpers
    def _micro(self) -> Any:
        if self.bgk is None:
            raise RuntimeError("ClosureMacro: bind_micro(solver) first (ε and the grid)")
        return self.bgk

    def _q(self, m: np.ndarray) -> np.ndarray:
        return np.asarray(m, dtype=np.float64).reshape(-1, 3 + self.M, self.nx)

    @property
    def fv(self) -> Any:
        if self._fv is None:
            from .petsc_fv import make_fv_solver

            bgk = self._micro()
            closure = MLMomentClosure(self.net.members[0], self.eps, length=bgk.L, bc=bgk.bc)
            self._fv = make_fv_solver(
                closure, backend=self.backend, comm=self.comm, nx=bgk.nx, length=bgk.L, bc=bgk.bc
            )
        return self._fv

    # ------------------------------------------------------------------ mappers
    def restrict(self, states: np.ndarray) -> np.ndarray:
        f = np.asarray(states, dtype=np.float64)
        lead = f.shape[:-2]
        Q = restrict(self.net.members[0], f.reshape(-1, *self.state_shape), self._micro())
        return Q.reshape(*lead, self.macro_dim)

    def decode(
        self,
        m: np.ndarray,
        generators: Sequence[torch.Generator] | None = None,
        n_particles: int | None = None,
    ) -> np.ndarray:
        m = np.asarray(m)
        f = lift(self.net.decoder, self._q(m), self._micro(), self.eps)
        return f.reshape(*m.shape[:-1], *self.state_shape)

    # ------------------------------------------------------------------ propagation
    def reset(self) -> None:
        self.Q: np.ndarray | None = None

    def assimilate(self, m_seq: np.ndarray) -> None:
        self.Q = self._q(np.asarray(m_seq)[:, -1]).copy()

    def _march(self, Q: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
        """``n`` coarse steps of the states ``Q`` ``(b, 3+M, nx)``: states ``(b, n, d)``
        and deviations ``(b, n)``; a member whose state breaks down keeps its last state
        with deviation ``inf`` from there on (the coupler then rejects the block)."""
        from .learn import deviation  # (learn imports the solvers: only when propagating)

        b, dt = Q.shape[0], self._micro().dt_coarse
        out = np.empty((b, n, self.macro_dim))
        dev = np.full((b, n), np.inf)
        alive = np.ones(b, dtype=bool)
        for j in range(n):
            rows = np.flatnonzero(alive)
            try:
                Q[rows] = self.fv.advance(Q[rows], dt)
            except (FloatingPointError, ValueError):
                for r in rows:  # find the member(s) that broke down
                    try:
                        Q[r] = self.fv.advance(Q[r : r + 1], dt)[0]
                    except (FloatingPointError, ValueError):
                        alive[r] = False
                rows = np.flatnonzero(alive)
            out[:, j] = Q.reshape(b, -1)
            if rows.size:
                dev[rows, j] = deviation(list(self.net.members), Q[rows], self.eps)
        return out, dev

    def propagate(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        return self._march(self.Q, n)

    def snapshot(self) -> dict[str, Any]:
        return {"Q": np.empty(0) if self.Q is None else self.Q.copy()}

    def restore(self, snap: dict[str, Any]) -> None:
        Q = np.asarray(snap["Q"], dtype=np.float64)
        self.Q = None if Q.size == 0 else Q.copy()

    # ------------------------------------------------------------------ member subsets
    def assimilate_members(self, m_seq: np.ndarray, members: np.ndarray) -> None:
        Q, rows = self._q(np.asarray(m_seq)[:, -1]), np.asarray(members)
        if self.Q is None:  # the first assimilation must cover every member
            if not np.array_equal(rows, np.arange(len(Q))):
                raise RuntimeError("ClosureMacro: assimilate all members first")
            self.Q = np.empty_like(Q)
        self.Q[rows] = Q

    def propagate_members(self, n: int, members: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        rows = np.asarray(members)
        Q = self.Q[rows].copy()
        out, dev = self._march(Q, n)
        self.Q[rows] = Q
        return out, dev

    def revert_members(self, snap: dict[str, Any], members: np.ndarray) -> None:
        rows = np.asarray(members)
        self.Q[rows] = np.asarray(snap["Q"], dtype=np.float64)[rows]

    # ------------------------------------------------------------------ weights
    def get_weights(self) -> dict[str, torch.Tensor]:
        return self.net.state_dict()

    def set_weights(self, state_dict: dict[str, torch.Tensor]) -> None:
        self.net.load_state_dict(state_dict)
        self._fv = None
