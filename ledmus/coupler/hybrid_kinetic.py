"""The kinetic side of the cell-local hybrid (:mod:`ledmus.coupler.hybrid`): the ghost
cells of a run of cells, the work of one :class:`~.messages.KineticRequest` (the MUSCLE3
kinetic component's and the in-process backend's), and the backend protocol."""

from __future__ import annotations

import time
from typing import Any, Protocol

import numpy as np

from .messages import KineticRequest, KineticResult


def ghost_cells(run: np.ndarray, nx: int, periodic: bool) -> tuple[Any, Any]:
    """The two cells beyond each end of ``run`` (index arrays), or ``None`` at a domain
    end (outflow); on a periodic box that the run covers wholly, both ``None``."""
    if periodic:
        if run.size == nx:
            return None, None
        return (np.array([run[0] - 2, run[0] - 1]) % nx, np.array([run[-1] + 1, run[-1] + 2]) % nx)
    left = None if run[0] == 0 else np.clip([run[0] - 2, run[0] - 1], 0, nx - 1)
    right = None if run[-1] == nx - 1 else np.clip([run[-1] + 1, run[-1] + 2], 0, nx - 1)
    return left, right


def advance_kinetic(solver: Any, request: KineticRequest) -> KineticResult:
    """Run every kinetic run of ``request`` (the kinetic component's work, and the in-process
    backend's) in one :meth:`~ledmus.solvers.bgk.BGK.advance_runs` call; ``ValueError``
    naming the field of a request whose arrays do not fit together."""
    t0 = time.perf_counter()
    n, nv = len(request.size), solver.nv
    checks = (
        ("start", np.shape(request.start) == (n,)),
        ("size", n > 0 and np.all(np.asarray(request.size) > 0)),
        ("ends", np.shape(request.ends) == (n, 2)),
        ("f", np.shape(request.f) == (nv, int(np.sum(request.size)))),
        ("ghosts", np.shape(request.ghosts) == (n, 2, 2, nv, 2)),
    )
    for name, ok in checks:
        if not ok:
            raise ValueError(
                f"KineticRequest.{name} does not fit: {n} runs of sizes {np.asarray(request.size).tolist()}, "
                f"nv={nv}; start (s,), ends (s, 2), f (nv, sum of sizes), ghosts (s, 2, 2, nv, 2)"
            )
    work, at = [], 0
    for k, m in enumerate(np.asarray(request.size, dtype=int)):
        g = request.ghosts[k]
        left, right = (
            None if request.ends[k, i] else (g[i, 0][None], g[i, 1][None]) for i in (0, 1)
        )
        work.append((request.f[None, :, at : at + m], left, right))
        at += m
    cells = [
        (int(a) + np.arange(int(m))) % solver.nx
        for a, m in zip(request.start, request.size, strict=True)
    ]
    done = solver.advance_runs(work, request.duration, cells=cells)
    f_out = np.concatenate([f[0] for f, _ in done], axis=-1)
    phi = np.stack([p[0] for _, p in done])
    return KineticResult(request.step, f_out, phi, time.perf_counter() - t0)


class KineticBackend(Protocol):
    """Where the kinetic cells run: ``advance(request) -> result``."""

    def advance(self, request: KineticRequest) -> KineticResult: ...


class InProcess:
    """The kinetic cells in this process (the embedded engine)."""

    def __init__(self, solver: Any) -> None:
        self.solver = solver

    def advance(self, request: KineticRequest) -> KineticResult:
        return advance_kinetic(self.solver, request)
