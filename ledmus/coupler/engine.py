"""The embedded engine: a coupled run in this process, the micro window carried by
function calls (lift -> micro -> restrict).  The run sequence itself is
:class:`~.run.CoupledRun`, which the MUSCLE3 macro component follows too.

``mpiexec -n P ledmus run X.ymmsl`` splits the ensemble over ranks (members
``array_split(range(B), P)[rank]``); each rank runs its members' coupled run, the results
are gathered on rank 0, which writes the run directory.  Per-member random streams make
the split run equal to the serial one.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..rundir import discard_run, finish_run, prepare_run_dir
from ..surrogates.macro import MacroModel
from .mappers import Decoder, Restrict
from .messages import Restricted, WindowRequest
from .micro import Micro, identical_members_warning
from .output import write_run
from .recorder import Recorder
from .run import CoupledRun, load, members_of, new_decoder, new_micro
from .settings import RunSettings

log = logging.getLogger(__name__)


@dataclass
class Parts:
    model: MacroModel
    decoder: Decoder
    micro: Micro
    restrict: Restrict

    def exchange(self, request: WindowRequest) -> Restricted:
        """One micro window in process: lift -> micro -> restrict (the conduits)."""
        return self.restrict.handle(self.micro.handle(self.decoder.handle(request)))


def build(
    settings: RunSettings, members: np.ndarray, model: MacroModel | None = None, comm: Any = None
) -> Parts:
    model = model or load(settings, comm)
    return Parts(
        model,
        new_decoder(settings, model, members),
        new_micro(settings.micro, members),
        Restrict(model),
    )


def _comm_info(comm: Any) -> tuple[int, int]:
    return (0, 1) if comm is None else (comm.Get_rank(), comm.Get_size())


def run_embedded(
    settings: RunSettings,
    run_dir: str | Path | None = None,
    *,
    comm: Any = None,
    progress: bool = False,
    keep_states: bool = True,
) -> dict[str, Any]:
    """Run the coupled model in this process (``comm``: split the ensemble over its
    ranks).  Writes ``trajectory.h5``, ``metrics.json`` and plots to ``run_dir`` (rank 0)
    and returns the metrics (on every rank)."""
    rank, size = _comm_info(comm)
    # a space-parallel backend splits the macro model's grid over the ranks: every rank
    # then runs every member (the micro side is repeated, the same on every rank)
    spatial = settings.macro.backend != "numpy"
    if settings.micro.ensemble < size and not spatial:
        raise ValueError(
            f"setting ensemble={settings.micro.ensemble} is smaller than the {size} MPI ranks"
        )
    if settings.schedule.adaptive.online != "off" and size > 1:
        raise ValueError(
            f"setting online={settings.schedule.adaptive.online}: online training runs "
            f"with one process (got {size} MPI ranks)"
        )
    members = members_of(settings.micro.ensemble, 0 if spatial else rank, 1 if spatial else size)
    run_dir = Path(run_dir) if run_dir is not None else None
    problem = None
    if rank == 0 and run_dir is not None:  # before any compute (setting overwrite: replace)
        try:
            prepare_run_dir(
                run_dir,
                overwrite=settings.output.overwrite,
                option="--overwrite or the setting overwrite: true",
            )
        except ValueError as exc:
            problem = str(exc)
    if comm is not None:
        problem = comm.bcast(problem, root=0)
    if problem:
        raise ValueError(problem)
    try:
        return _run(settings, run_dir, comm, progress, keep_states, members, spatial)
    except BaseException:  # a failed or stopped run leaves nothing it wrote or created
        if rank == 0 and run_dir is not None:
            discard_run(run_dir)
        raise


def _run(
    settings: RunSettings,
    run_dir: Path | None,
    comm: Any,
    progress: bool,
    keep_states: bool,
    members: np.ndarray,
    spatial: bool,
) -> dict[str, Any]:
    """The body of :func:`run_embedded` once the run directory is prepared."""
    rank, size = _comm_info(comm)
    warning = identical_members_warning(
        settings.micro.solver, settings.micro.ic, settings.micro.seed, settings.micro.ensemble
    )
    if warning and rank == 0:
        log.warning(warning)
    failure = None
    try:
        parts = build(settings, members, comm=comm if spatial else None)
        run = CoupledRun.build(
            settings, members, model=parts.model, decoder=parts.decoder, keep_states=keep_states
        )
        run.run(parts.exchange, progress=progress and rank == 0)
        coord, wall = run.coord, run.elapsed
        reference, ref_wall = run.compare()
    except Exception as exc:  # decided collectively below, so no rank waits forever
        failure = f"rank {rank}: {type(exc).__name__}: {exc}"
        if comm is None:
            raise
    if comm is not None:
        failures = [f for f in comm.allgather(failure) if f]
        if failures:
            raise RuntimeError("; ".join(failures))
        if not spatial:
            _gather_recorder(comm, coord.recorder)
            if hasattr(coord, "growth_total"):  # the drift estimate's two parts
                coord.level_max = _gather(comm, coord.level_max)
                coord.growth_total = _gather(comm, coord.growth_total)
                coord.restart_sum = _gather(comm, coord.restart_sum)
                coord.restart_n = _gather(comm, coord.restart_n)
            for name in ("interventions", "comparisons"):  # counts over every rank's members
                if hasattr(coord, name):
                    setattr(coord, name, _sum_counts(comm.allgather(getattr(coord, name))))
        wall = comm.allreduce(wall, op=_max_op())
        coord.timings = {k: comm.allreduce(v, op=_max_op()) for k, v in coord.timings.items()}
        if settings.output.compare and not spatial:
            reference = _gather(comm, reference)
            ref_wall = comm.allreduce(ref_wall, op=_max_op())
    result = None
    if rank == 0:
        run.elapsed = wall
        result = run.summary("embedded", reference, ref_wall, size)
        if run_dir is not None and coord.recorder.states is not None:
            write_run(run_dir, settings, coord.recorder, result, reference)
        if run_dir is not None:
            finish_run(run_dir)
    if comm is not None:
        result = comm.bcast(result, root=0)
    return result


def _max_op() -> Any:
    from mpi4py import MPI

    return MPI.MAX


def _sum_counts(parts: list[dict[str, int]]) -> dict[str, int]:
    out: dict[str, int] = {}
    for part in parts:
        for key, n in part.items():
            out[key] = out.get(key, 0) + int(n)
    return out


def _gather(comm: Any, arr: np.ndarray | None) -> np.ndarray | None:
    parts = comm.gather(arr, root=0)
    return np.concatenate(parts) if comm.Get_rank() == 0 else None


def _gather_recorder(comm: Any, rec: Recorder) -> None:
    latents, source = _gather(comm, rec.latents), _gather(comm, rec.source)
    uncertainty = _gather(comm, rec.uncertainty)
    states = _gather(comm, rec.states) if rec.states is not None else None
    if comm.Get_rank() == 0:
        rec.latents, rec.source, rec.n_members = latents, source, latents.shape[0]
        rec.uncertainty = uncertainty
        if states is not None:
            rec.states = states
