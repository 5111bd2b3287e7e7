"""PETSc backend of the finite-volume moment solver (the ``petsc`` extra).

:class:`PetscFVSolver` solves the same semi-discrete system as :class:`~.fv.FVSolver`, ::

    dQ_i/dt = -(F_{i+½} - F_{i-½})/dx + (0, R_i),       Q: (B, n_moments, nx), float64,

with the same MUSCL reconstruction, Riemann fluxes, boundaries and step choice (the
spatial operator *is* :meth:`~.fv.FVSolver.rhs_padded`), but on an x-axis distributed
over the MPI ranks of ``comm`` (default ``PETSc.COMM_WORLD``):

- **Decomposition**: one 1-D PETSc DMDA of ``nx`` cells with ``dof = B·n_moments`` (all
  members and moments of a cell interleaved; a rank's local array is ``(m, B, n)`` for
  its ``m`` owned cells :attr:`owned`, PETSc's default split), stencil width 2 (face
  ``i+½`` needs cells ``i-1..i+2``).  ``bc="periodic"``: ``DM.BoundaryType.PERIODIC``;
  ``"outflow"``: ``GHOSTED``, the two ghost cells past the box filled zero-gradient on the
  end ranks (numpy's ``edge`` padding).  Every right-hand side starts with
  ``globalToLocal``, the ghost exchange; a source with x-derivatives (the ML closure) is
  given centred differences over those ghosts.  Needs ``nx >= 2·ranks``.
- **Time stepping**: a PETSc ``TS`` of type ``RK`` (TSAdapt ``none``), one ``TSStep`` per
  step, with stages mathematically identical to the numpy solver's Shu–Osher forms:
  ``ssprk2`` → PETSc's ``2a`` (Heun, ``A = [[0,0],[1,0]]``, ``b = (½,½)``:
  ``Q + dt/2 (F(Q) + F(Q1)) = ½(Q + Q1 + dt F(Q1))``, ``Q1 = Q + dt F(Q)``);
  ``ssprk3`` → the Butcher tableau ``A = [[0,0,0],[1,0,0],[¼,¼,0]]``, ``b = (⅙,⅙,⅔)``
  registered as ``"ledmus_ssprk3"`` with PETSc's ``TSRKRegister`` (public C API that
  petsc4py does not wrap: called through ctypes).  ``TSSSP`` has no 3-stage third-order
  scheme (its ``rks3`` needs ``n² >= 4`` stages, another method); its ``rks2`` with 2
  stages is SSP-RK2 too, but petsc4py cannot set the stage count (an option renamed in
  PETSc 3.26), so ``2a`` is used.  Only the rounding
  differs from numpy (sums in another order): ≤ 4.1e-15 of ``max |Q|`` measured.
- **Steps**: :meth:`dt_max` is the MPI min over ranks of the local bound (an exact
  reduction, so it equals the numpy value at the same state and every rank takes the
  same steps); the running check is collective, so every rank raises together.
- **I/O**: :meth:`advance`, :meth:`rollout`, :meth:`rhs`, :meth:`step` take the full
  ``(B, n_moments, nx)`` array on every rank (each rank copies its slab in) and return
  the full array on every rank (a VecScatter to all); ``advance(..., gather=False)``
  returns only the owned slab ``(B, n_moments, m)``, without the gather.

Usage (``mpiexec -n 4 python script.py``; ``U0`` the same on every rank)::

    solver = make_fv_solver(Euler(), backend="petsc", nx=200, bc="outflow")
    U = solver.advance(U0, 0.1)                  # == FVSolver(...).advance(U0, 0.1)
"""

from __future__ import annotations

import ctypes
import itertools
import os
from typing import Any

import numpy as np

from .fv import FVSolver, MomentClosure, check_state

BACKENDS = ("numpy", "petsc")
SSPRK3_NAME = "ledmus_ssprk3"
_PREFIXES = itertools.count()
_registered: dict[str, str | None] = {}


def petsc_backend_available(n_ranks: int = 1) -> str | None:
    """``None`` when the PETSc backend can run on ``n_ranks`` processes, else the reason:
    petsc4py missing (install the ``petsc`` extra), or a PETSc built without MPI (MPI-uni,
    as ``pip install petsc`` gives when no ``mpicc`` is on the PATH) for ``n_ranks > 1``."""
    from ...solvers.lifting import petsc_available

    why = petsc_available()
    if why is not None or n_ranks <= 1:
        return why
    import petsc4py

    cfg = petsc4py.get_config()
    for sub in (cfg.get("PETSC_ARCH") or "", ""):
        path = os.path.join(cfg["PETSC_DIR"], sub, "include", "petscconf.h")
        if os.path.exists(path):
            with open(path) as f:
                if "PETSC_HAVE_MPIUNI" in f.read():
                    return (
                        f"PETSc at {cfg['PETSC_DIR']} is built without MPI (MPI-uni): "
                        "reinstall the petsc extra with mpicc on the PATH (the mpi extra)"
                    )
            break
    return None


def _petsc() -> Any:
    """The ``petsc4py.PETSc`` module; ``ValueError`` naming the petsc extra if missing."""
    from ...solvers.lifting import petsc_available

    if why := petsc_available():
        raise ValueError(f"backend='petsc': {why}")
    try:
        from petsc4py import PETSc
    except Exception as exc:  # PETSc.Error at initialisation, e.g. MPI-uni under mpiexec
        raise RuntimeError(
            f"backend='petsc': PETSc failed to initialise ({exc}); "
            f"{petsc_backend_available(2) or 'see the PETSc error above'}"
        ) from exc
    return PETSc


def register_ssprk3(PETSc: Any) -> str | None:
    """Register Shu–Osher SSP-RK3 as the TSRK tableau :data:`SSPRK3_NAME` (once per
    process); ``None`` on success, else why it could not be."""
    if SSPRK3_NAME in _registered:
        return _registered[SSPRK3_NAME]
    why = None
    if PETSc.RealType != np.float64 or PETSc.ScalarType != np.float64:
        why = "PETSc is not built with real double precision"
    else:
        try:  # the extension module's handle also finds the symbols of libpetsc it loaded
            fn = ctypes.CDLL(PETSc.__file__).TSRKRegister
        except (OSError, AttributeError) as exc:
            fn, why = None, f"TSRKRegister is not reachable ({exc})"
        if fn is not None:
            Int = ctypes.c_int64 if np.dtype(PETSc.IntType).itemsize == 8 else ctypes.c_int32
            Real = ctypes.POINTER(ctypes.c_double)
            fn.argtypes = [ctypes.c_char_p, Int, Int, Real, Real, Real, Real, Int, Real]
            fn.restype = ctypes.c_int
            A = np.array([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.25, 0.25, 0.0]])
            b = np.array([1.0 / 6.0, 1.0 / 6.0, 2.0 / 3.0])
            ptr = [a.ctypes.data_as(Real) for a in (A, b)]
            err = fn(SSPRK3_NAME.encode(), 3, 3, *ptr, None, None, 0, None)
            why = f"TSRKRegister returned error {err}" if err else None
    _registered[SSPRK3_NAME] = why
    return why


class PetscFVSolver(FVSolver):
    """:class:`~.fv.FVSolver` on a PETSc DMDA with PETSc TS stepping (module docstring).

    Parameters as :class:`~.fv.FVSolver`, plus ``comm`` (an mpi4py or PETSc communicator;
    default ``PETSc.COMM_WORLD``).  ``ValueError`` when petsc4py is missing (naming the
    ``petsc`` extra), when ``nx < 2·ranks``, or for ``time_stepper="ssprk3"`` where the
    tableau cannot be registered (naming the allowed ``ssprk2``).
    """

    def __init__(self, closure: MomentClosure, *, comm: Any = None, **options: Any) -> None:
        super().__init__(closure, **options)  # nx, length, bc, cfl, ... as FVSolver
        PETSc = self._PETSc = _petsc()
        self.comm = PETSc.COMM_WORLD if comm is None else PETSc.Comm(comm)
        self.size = self.comm.getSize()
        if self.nx < 2 * self.size:
            raise ValueError(
                f"nx={self.nx} is too small for {self.size} ranks: the DMDA stencil "
                "width 2 needs at least 2 cells per rank"
            )
        if self.time_stepper == "ssprk3" and (why := register_ssprk3(PETSc)):
            raise ValueError(f"time_stepper 'ssprk3' has no PETSc TS here ({why}); allowed: ssprk2")
        self._rk_type = SSPRK3_NAME if self.time_stepper == "ssprk3" else "2a"
        self._bt = getattr(
            PETSc.DM.BoundaryType, "PERIODIC" if self.bc == "periodic" else "GHOSTED"
        )
        da = self._dmda(1)
        ((xs, xe),) = da.getRanges()
        da.destroy()
        self.owned = slice(xs, xe)
        """The cells this rank owns (the DMDA split, the same for every ``B``)."""
        self._B: int | None = None
        self._red = PETSc.Vec().createMPI((1, PETSc.DECIDE), comm=self.comm)

    def _dmda(self, dof: int) -> Any:
        return self._PETSc.DMDA().create(
            dim=1,
            sizes=(self.nx,),
            dof=dof,
            stencil_width=2,
            boundary_type=(self._bt,),
            stencil_type=self._PETSc.DMDA.StencilType.BOX,
            comm=self.comm,
        )

    def _setup(self, B: int) -> None:
        """DMDA, vectors, TS and scatter-to-all for ``B`` ensemble members (cached)."""
        if self._B == B:
            return
        PETSc = self._PETSc
        self._da = da = self._dmda(B * self.closure.n_moments)
        self._X, self._F, self._L = da.createGlobalVec(), da.createGlobalVec(), da.createLocalVec()
        ts = self._ts = PETSc.TS().create(comm=self.comm)
        prefix = f"ledmus_fv{next(_PREFIXES)}_"
        ts.setOptionsPrefix(prefix)
        ts.setDM(da)
        ts.setProblemType(PETSc.TS.ProblemType.NONLINEAR)
        ts.setType(PETSc.TS.Type.RK)
        ts.setRKType(self._rk_type)
        opts = PETSc.Options(prefix)
        opts["ts_adapt_type"] = "none"  # petsc4py has no TSAdapt API; a fixed dt per step
        ts.setFromOptions()
        opts.delValue("ts_adapt_type")
        ts.setRHSFunction(self._ts_rhs, self._F.duplicate())
        ts.setExactFinalTime(PETSc.TS.ExactFinalTime.STEPOVER)
        ts.setMaxSteps(int(np.iinfo(PETSc.IntType).max) - 1)  # the loop is ours (FVSolver)
        ts.setSolution(self._X)
        ts.setUp()
        self._toall, self._all = PETSc.Scatter.toAll(self._X)
        self._B = B

    # ---------------------------------------------------------------- layout helpers
    def _slab_of(self, Q: np.ndarray) -> np.ndarray:
        """The owned slab of ``Q``: ``Q`` is the full ``(B, n, nx)`` array or already a slab."""
        return Q[:, :, self.owned] if Q.shape[-1] == self.nx else Q

    def _load(self, Q: np.ndarray) -> None:
        self._setup(Q.shape[0])
        self._X.setArray(np.asarray(self._slab_of(Q), np.float64).transpose(2, 0, 1).ravel())

    def _local(self, V: Any) -> np.ndarray:
        """The owned slab of the global Vec ``V``, ``(B, n, m)``."""
        a = V.getArray(readonly=True).reshape(-1, self._B, self.closure.n_moments)
        return a.transpose(1, 2, 0).copy()

    def _gather(self, V: Any) -> np.ndarray:
        """The full ``(B, n, nx)`` array of the global Vec ``V`` on every rank."""
        PETSc = self._PETSc
        self._toall.scatter(V, self._all, PETSc.InsertMode.INSERT_VALUES, PETSc.ScatterMode.FORWARD)
        return self._local(self._all)

    def _ts_rhs(self, ts: Any, t: float, X: Any, F: Any) -> None:
        """The TS right-hand side: ghost exchange, boundary fill, the numpy operator."""
        self._da.globalToLocal(X, self._L)
        P = self._local(self._L)  # (B, n, m + 4)
        if self.bc == "outflow":
            if self.owned.start == 0:
                P[:, :, :2] = P[:, :, 2:3]
            if self.owned.stop == self.nx:
                P[:, :, -2:] = P[:, :, -3:-2]
        F.setArray(self.rhs_padded(P).transpose(2, 0, 1).ravel())

    def _allmin(self, x: float) -> float:
        """``min`` of ``x`` over the ranks (exact)."""
        if self.size == 1:
            return x
        self._red.set(x)
        return float(self._red.min()[1])

    # ------------------------------------------------------------------- public API
    def rhs(self, Q: np.ndarray) -> np.ndarray:
        """``dQ/dt`` of the full ``Q`` ``(B, n_moments, nx)``, full on every rank."""
        self._load(Q)
        self._ts.computeRHSFunction(0.0, self._X, self._F)
        return self._gather(self._F)

    def dt_max(self, Q: np.ndarray) -> float:
        """:meth:`FVSolver.dt_max` of the full ``Q`` (or this rank's slab), the min over ranks."""
        return self._allmin(super().dt_max(self._slab_of(Q)))

    def step(self, Q: np.ndarray, dt: float) -> np.ndarray:
        """One ``TSStep`` of size ``dt`` from ``Q`` (full, or this rank's slab: the
        same extent is returned)."""
        self._load(Q)
        self._ts.setTimeStep(dt)
        self._ts.step()
        return self._gather(self._X) if Q.shape[-1] == self.nx else self._local(self._X)

    def _check_running(self, Q: np.ndarray, t: float) -> None:
        try:
            super()._check_running(Q, t)
            ok = 1.0
        except FloatingPointError:
            ok = 0.0
        if self._allmin(ok) == 0.0:  # every rank raises, not only the one that saw it
            raise FloatingPointError(
                f"state became unphysical at t={t:g} (non-finite, density or temperature "
                "<= 0 on some rank)"
            )

    def advance(
        self, U: np.ndarray, duration: float, *, dt: float | None = None, gather: bool = True
    ) -> np.ndarray:
        """:meth:`FVSolver.advance` (same arguments, errors and steps); ``U`` the full
        array on every rank; returns the full array, or with ``gather=False`` this rank's
        slab ``(B, n_moments, owned)``."""
        Q = check_state(U, self.closure, self.nx)
        self._setup(Q.shape[0])
        Q = self._march(np.ascontiguousarray(Q[:, :, self.owned]), duration, dt)
        self._load(Q)
        return self._gather(self._X) if gather else Q

    def __repr__(self) -> str:
        return (
            f"PetscFVSolver({self.closure!r}, nx={self.nx}, bc={self.bc!r}, "
            f"time_stepper={self.time_stepper!r}, ranks={self.size})"
        )


def make_fv_solver(
    closure: MomentClosure, *, backend: str = "numpy", comm: Any = None, **kw: Any
) -> FVSolver:
    """The finite-volume solver of ``backend``: ``"numpy"`` (:class:`~.fv.FVSolver`; every
    rank solves the whole box, ``comm`` is ignored) or ``"petsc"`` (:class:`PetscFVSolver`
    over ``comm``); ``kw`` as :class:`~.fv.FVSolver`.  Both take and return full arrays."""
    if backend == "numpy":
        return FVSolver(closure, **kw)
    if backend == "petsc":
        return PetscFVSolver(closure, comm=comm, **kw)
    raise ValueError(f"unknown backend {backend!r}; allowed: {', '.join(BACKENDS)}")
