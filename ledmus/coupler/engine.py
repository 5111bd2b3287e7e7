"""The embedded engine, and what both engines share: building the parts from the
settings, the micro-only reference run and the run summary.

``mpiexec -n P ledmus run X.ymmsl`` splits the ensemble over ranks (members
``array_split(range(B), P)[rank]``); each rank runs its members' coupled run, the results
are gathered on rank 0, which writes the run directory.  Per-member random streams make
the split run equal to the serial one.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .. import metrics
from ..surrogates.checkpoint import load_model
from ..surrogates.led import LED
from ..surrogates.training import resolve_device
from .core import Lift, Macro, Micro, Restrict, initial_condition
from .mpi import split_slice
from .output import CHANNELS, Recorder, errors, grid_errors, write_run
from .settings import RunSettings

log = logging.getLogger(__name__)


def members_of(ensemble: int, rank: int, size: int) -> np.ndarray:
    """Global member indices handled by ``rank`` of ``size`` (the block of
    :func:`~ledmus.coupler.mpi.split_slice`, which the MPI components use too)."""
    return np.arange(ensemble)[split_slice(ensemble, rank, size)]


def n_particles(settings: RunSettings) -> int | None:
    return getattr(settings.solver, "n_particles", None)


@dataclass
class Parts:
    model: LED
    lift: Lift
    micro: Micro
    restrict: Restrict

    def exchange(self, msg: dict[str, Any]) -> dict[str, Any]:
        """One micro window in process: lift -> micro -> restrict (the conduits)."""
        return self.restrict.handle(self.micro.handle(self.lift.handle(msg)))


def load(settings: RunSettings) -> LED:
    model, _ = load_model(
        settings.model, system=settings.system, device=resolve_device(settings.device)
    )
    return model


def new_micro(settings: RunSettings, members: np.ndarray) -> Micro:
    """The micro side for ``members``, at its initial condition (after the transient)."""
    ic = initial_condition(
        settings.solver, settings.ic, settings.seed, members, settings.t_transient
    )
    return Micro(settings.solver, ic, settings.seed, members)


def build(settings: RunSettings, members: np.ndarray, model: LED | None = None) -> Parts:
    model = model or load(settings)
    return Parts(
        model=model,
        lift=Lift(model, settings.seed, members, n_particles(settings)),
        micro=new_micro(settings, members),
        restrict=Restrict(model),
    )


def new_macro(settings: RunSettings, model: LED, lift: Lift, n_members: int,
              keep_states: bool = True, reference: np.ndarray | None = None) -> Macro:  # fmt: skip
    shape = settings.solver.state_shape
    recorder = Recorder(n_members, settings.n_total, shape, model.latent_dim,
                        keep_states=keep_states, reference=reference)  # fmt: skip
    return Macro(model, lift, n_warm=settings.n_warm, n_macro=settings.n_macro,
                 n_micro=settings.n_micro, n_total=settings.n_total, dt=settings.dt,
                 recorder=recorder)  # fmt: skip


def micro_reference(settings: RunSettings, members: np.ndarray) -> tuple[np.ndarray, float]:
    """The micro solver alone over ``[0, t_end]`` from the same initial conditions and
    seed (the accuracy and timing reference, T_m = 0); returns ``(states, wall s)``."""
    micro = new_micro(settings, members)
    start = time.perf_counter()
    out = micro.handle(
        {"window": 0, "t0": 0.0, "steps": settings.n_total - 1, "include_initial": True}
    )
    return out["states"], time.perf_counter() - start


def summarize(settings: RunSettings, macro: Macro, wall: float, engine: str,
              reference: np.ndarray | None = None, reference_wall: float | None = None,
              n_ranks: int = 1) -> dict[str, Any]:  # fmt: skip
    """The ``metrics.json`` payload: settings, wall-time split, speed-up and errors."""
    tm = macro.timings
    wall = wall - tm["record_s"]  # the simulation's time, without bookkeeping
    result: dict[str, Any] = {
        "engine": engine,
        "system": settings.system,
        "settings": settings.as_dict(),
        "n_ranks": n_ranks,
        "micro_ranks": macro.micro_ranks if n_ranks == 1 else n_ranks,
        "rho": (settings.t_macro / settings.t_micro) if settings.t_micro > 0 else None,
        "n_states": settings.n_total,
        "micro_fraction": float((macro.recorder.source == 0).mean()),
        "wall_s": wall,
        "micro_s": tm["micro_s"],
        "macro_s": tm["macro_s"],
        "lift_s": tm["lift_s"],
        "restrict_s": tm["restrict_s"],
        "record_s": tm["record_s"],
        "coupling_s": max(0.0, wall - tm["micro_s"] - tm["macro_s"]),
        "windows": macro.window,
    }
    if reference is not None:
        result["micro_only_wall_s"] = reference_wall
        result["speedup"] = metrics.speedup(reference_wall, wall) if wall > 0 else None
        start = settings.n_warm + 1
        rec = macro.recorder
        if rec.states is not None:
            result["errors"] = errors(settings.system, reference, rec.states, start, settings.dt)
        elif rec.abs_err is not None:
            g = grid_errors(reference, rec.abs_err, start)
            names = CHANNELS[settings.system]
            result["errors"] = {f"mnad_{n}": float(g["mnad"][c]) for c, n in enumerate(names)}
    return result


def _comm_info(comm: Any) -> tuple[int, int]:
    return (0, 1) if comm is None else (comm.Get_rank(), comm.Get_size())


def run_embedded(settings: RunSettings, run_dir: str | Path | None = None, *, comm: Any = None,
                 progress: bool = False, keep_states: bool = True) -> dict[str, Any]:  # fmt: skip
    """Run the coupled model in this process (``comm``: split the ensemble over its
    ranks).  Writes ``trajectory.h5``, ``metrics.json`` and plots to ``run_dir`` (rank 0)
    and returns the metrics (on every rank)."""
    rank, size = _comm_info(comm)
    if settings.ensemble < size:
        raise ValueError(
            f"setting ensemble={settings.ensemble} is smaller than the {size} MPI ranks"
        )
    members = members_of(settings.ensemble, rank, size)
    run_dir = Path(run_dir) if run_dir is not None else None
    if rank == 0 and run_dir is not None:
        run_dir.mkdir(parents=True, exist_ok=True)
    failure = None
    try:
        parts = build(settings, members)
        macro = new_macro(settings, parts.model, parts.lift, len(members), keep_states)
        start = time.perf_counter()
        macro.run(parts.exchange, progress=progress and rank == 0)
        wall = time.perf_counter() - start
        reference = ref_wall = None
        if settings.compare:
            reference, ref_wall = micro_reference(settings, members)
    except Exception as exc:  # decided collectively below, so no rank waits forever
        failure = f"rank {rank}: {type(exc).__name__}: {exc}"
        if comm is None:
            raise
    if comm is not None:
        failures = [f for f in comm.allgather(failure) if f]
        if failures:
            raise RuntimeError("; ".join(failures))
        macro = _gather_macro(comm, macro)
        wall = comm.allreduce(wall, op=_max_op())
        macro.timings = {k: comm.allreduce(v, op=_max_op()) for k, v in macro.timings.items()}
        if settings.compare:
            reference = _gather(comm, reference)
            ref_wall = comm.allreduce(ref_wall, op=_max_op())
    result = None
    if rank == 0:
        result = summarize(settings, macro, wall, "embedded", reference, ref_wall, size)
        if run_dir is not None and macro.recorder.states is not None:
            write_run(run_dir, settings, macro.recorder, result, reference)
    if comm is not None:
        result = comm.bcast(result, root=0)
    return result


def _max_op() -> Any:
    from mpi4py import MPI

    return MPI.MAX


def _gather(comm: Any, arr: np.ndarray | None) -> np.ndarray | None:
    parts = comm.gather(arr, root=0)
    return np.concatenate(parts) if comm.Get_rank() == 0 else None


def _gather_macro(comm: Any, macro: Macro) -> Macro:
    rec = macro.recorder
    latents = _gather(comm, rec.latents)
    states = _gather(comm, rec.states) if rec.states is not None else None
    if comm.Get_rank() == 0:
        rec.latents, rec.n_members = latents, latents.shape[0]
        if states is not None:
            rec.states = states
    return macro
