"""What both engines share: building a run's parts from its settings, the micro-only
reference, the run summary, and the run facade build -> run -> snapshot/restore -> finish.

A :class:`CoupledRun` holds one coupled run of the members ``members`` (the macro model,
its lifting mapper and the coordinator with its recorder) and the wall time of its loop.
The embedded engine (:func:`~.engine.run_embedded`) and the MUSCLE3 macro component
(:mod:`.components.macro`) differ only in the ``exchange`` that carries a micro window
(lift -> micro -> restrict in process, or over MUSCLE3 conduits), in what they do after
each cycle (MUSCLE3: workflow snapshots) and in gathering an MPI-split ensemble::

    run = CoupledRun.build(settings, members)
    run.run(exchange)
    result, reference = run.finish("embedded")
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .. import metrics
from ..device import resolve_device
from ..solvers.cells import split_slice
from ..surrogates.macro import MacroModel, load_macro_model
from .decode import fill_macro_states
from .driver import Coordinator, Exchange
from .mappers import Decoder
from .messages import MicroRequest
from .micro import Micro, initial_condition
from .output import run_errors
from .policies import make_policy
from .recorder import Recorder, resident
from .settings import MicroSettings, RunSettings
from .streams import RNG_MACRO, member_torch_generator

log = logging.getLogger(__name__)


def members_of(ensemble: int, rank: int, size: int) -> np.ndarray:
    """Global member indices handled by ``rank`` of ``size`` (the block of
    :func:`~ledmus.solvers.cells.split_slice`, which the MPI components use too)."""
    return np.arange(ensemble)[split_slice(ensemble, rank, size)]


def n_particles(micro: MicroSettings) -> int | None:
    return getattr(micro.solver, "n_particles", None)


def load(settings: RunSettings, comm: Any = None) -> MacroModel:
    """The run's macro model, bound to its micro solver (``comm``: the ranks a
    space-parallel ``backend`` splits the grid over)."""
    if settings.macro.cold_config is not None:  # model: none
        from .cold import cold_model

        model = cold_model(settings)
    else:
        model = load_macro_model(
            settings.macro.model,
            system=settings.micro.system,
            device=resolve_device(settings.macro.device),
        )
        model.bind_micro(settings.micro.solver, backend=settings.macro.backend, comm=comm)
    tau = settings.macro.assimilation_time / settings.schedule.dt
    model.set_assimilation(settings.macro.assimilation, tau)
    return model


def new_decoder(settings: RunSettings, model: MacroModel, members: np.ndarray) -> Decoder:
    return Decoder(model, settings.micro.seed, members, n_particles(settings.micro))


def new_micro(micro: MicroSettings, members: np.ndarray) -> Micro:
    """The micro side for ``members``, at its initial condition (after the transient)."""
    ic = initial_condition(micro.solver, micro.ic, micro.seed, members, micro.t_transient)
    return Micro(
        micro.solver,
        ic,
        micro.seed,
        members,
        lifting=micro.lifter,
        schedule=micro.param_changes,
    )


def new_coordinator(
    settings: RunSettings,
    model: MacroModel,
    decoder: Decoder,
    n_members: int,
    *,
    keep_states: bool = True,
    grid_reference: np.ndarray | None = None,
    trainer_link: Any = None,
) -> Coordinator:
    """The coordinator with its recorder (``grid_reference``: accumulate grid errors on
    the fly instead of keeping states); with ``online`` training, ``trainer_link``
    reaches the trainer (None: a :class:`~.trainer.TrainerService` in this process)."""
    recorder = Recorder(
        n_members,
        settings.schedule.n_total,
        settings.micro.solver.state_shape,
        model.macro_dim,
        keep_states=keep_states,
        decode_macro=settings.output.record == "states",
        grid_reference=grid_reference,
        latent_dtype=model.macro_dtype,
    )
    model.use_generators(
        [
            member_torch_generator(settings.micro.seed, int(m), 0, "cpu", RNG_MACRO)
            for m in decoder.members
        ]
    )
    if gated(settings):
        return _adaptive_coordinator(settings, model, decoder, recorder, trainer_link)
    policy = make_policy(
        settings.schedule.policy,
        n_warm=settings.schedule.n_warm,
        n_macro=settings.schedule.n_macro,
        n_micro=settings.schedule.n_micro,
    )
    return Coordinator(
        model,
        decoder,
        policy,
        n_total=settings.schedule.n_total,
        dt=settings.schedule.dt,
        recorder=recorder,
    )


def gated(settings: RunSettings) -> bool:
    """Whether the run decides per member with the acceptance test: ``schedule:
    adaptive``, or a fixed schedule whose micro parameters leave the model's training
    values (the comparison window is then forced on, with the fixed T_m as the cap)."""
    sched, outside = settings.schedule, settings.macro.out_of_training
    if sched.policy == "adaptive":
        return True
    if not outside or sched.n_macro == 0:  # micro only: nothing to gate
        return False
    ok = sched.n_micro > 0 and sched.n_macro % sched.n_micro == 0
    if not ok:
        log.warning(
            "micro parameters %s leave the model's training values, but t_macro is "
            "not a multiple of t_micro: the comparison window cannot be forced on",
            sorted(outside),
        )
    return ok


def _adaptive_coordinator(
    settings: RunSettings,
    model: MacroModel,
    decoder: Decoder,
    recorder: Recorder,
    trainer_link: Any = None,
) -> Coordinator:
    from .. import systems
    from .adaptive import AdaptiveCoordinator, AdaptiveSchedule
    from .trainer import Learning, LocalLink, TrainerService

    sched = settings.schedule
    a, dt = sched.adaptive, sched.dt
    fixed = sched.policy != "adaptive"
    if fixed:
        log.warning(
            "micro parameters %s leave the model's training values: comparison "
            "window forced on (macro phases only after the acceptance test)",
            settings.macro.out_of_training,
        )
    schedule = AdaptiveSchedule(
        n_warm=sched.n_warm,
        n_macro=sched.n_macro,
        n_micro=sched.n_micro,
        n_macro_min=sched.n_macro if fixed else round(a.t_macro_min / dt),
        max_uncertainty=a.max_uncertainty,
        max_error=a.max_error,
        error_budget=a.error_budget,
        max_drift=a.max_drift,
        monitors=a.monitors,
        seed=settings.micro.seed,
        min_window=0 if a.t_micro_min == "auto" else round(a.t_micro_min / dt) // sched.n_micro,
        min_window_auto=a.t_micro_min == "auto",
    )
    spec = systems.get(settings.micro.system)
    changes = tuple(t for t, _ in settings.micro.schedule_solvers)
    learning = None
    if a.online != "off":
        if not recorder.needs_states or recorder.states is None:
            raise ValueError(
                "setting online: the run must keep its states (the RNN context "
                "is re-encoded from them after each weights update)"
            )
        link = trainer_link or LocalLink(TrainerService(model.net, a, settings.micro.seed))
        learning = Learning(link, decoder.members, np.array(changes), dt)
    return AdaptiveCoordinator(
        model,
        decoder,
        schedule,
        n_total=sched.n_total,
        dt=dt,
        recorder=recorder,
        monitors=spec.monitors,
        members=decoder.members,
        system=spec,
        change_times=changes,
        learning=learning,
    )


def micro_reference(settings: RunSettings, members: np.ndarray) -> tuple[np.ndarray, float]:
    """The micro solver alone over ``[0, t_end]`` from the same initial conditions and
    seed (the accuracy and timing reference, T_m = 0); returns ``(states, wall s)``."""
    micro = new_micro(settings.micro, members)
    # its states buffer is in memory before the clock starts, as the coupled run's record
    buffer = resident(
        (len(members), settings.schedule.n_total, *settings.micro.solver.state_shape), 0.0
    )
    start = time.perf_counter()
    out = micro.handle(
        MicroRequest(window=0, t0=0.0, steps=settings.schedule.n_total - 1, include_initial=True),
        out=buffer,
    )
    return out.states, time.perf_counter() - start


def compare_after_run(
    settings: RunSettings, coord: Coordinator, decoder: Decoder, members: np.ndarray
) -> tuple[np.ndarray | None, float | None]:
    """With ``compare``, after the coupled run's clock: decode the macro states a
    ``record: latents`` run skipped (for the errors) and run the micro-only reference;
    returns ``(reference states, reference wall s)`` or ``(None, None)``."""
    if not settings.output.compare:
        return None, None
    rec = coord.recorder
    if settings.output.record == "latents" and (rec.states is not None or rec.abs_err is not None):
        fill_macro_states(rec, decoder)
    return micro_reference(settings, members)


def summarize(
    settings: RunSettings,
    coord: Coordinator,
    wall: float,
    engine: str,
    reference: np.ndarray | None = None,
    reference_wall: float | None = None,
    n_ranks: int = 1,
) -> dict[str, Any]:
    """The ``metrics.json`` payload: settings, wall-time split, speed-up and errors.
    ``wall`` includes recording, as the reference's wall includes keeping its states."""
    tm = coord.timings
    rec = coord.recorder
    result: dict[str, Any] = {
        "engine": engine,
        "system": settings.micro.system,
        "settings": settings.as_dict(),
        "n_ranks": n_ranks,
        "micro_ranks": coord.micro_ranks if n_ranks == 1 else n_ranks,
        "rho": settings.schedule.rho,
        "n_states": settings.schedule.n_total,
        "micro_fraction": float((rec.source == 0).mean()),
        "wall_s": wall,
        **{k: tm[k] for k in ("micro_s", "macro_s", "lift_s", "restrict_s", "record_s")},
        "coupling_s": max(0.0, wall - tm["micro_s"] - tm["macro_s"] - tm["record_s"]),
        "windows": coord.window,
        **concurrent_metrics(settings, coord),
        "lifting": {
            "strategy": settings.micro.lifting,
            "tol": settings.micro.lifting_tol,
            **coord.lifting.summary(),
        },
    }
    if reference is not None:
        result["micro_only_wall_s"] = reference_wall
        result["speedup"] = metrics.speedup(reference_wall, wall) if wall > 0 else None
        result["errors"] = run_errors(settings, rec, reference)
    if hasattr(coord, "drift_total"):
        result["drift"] = drift_report(coord, reference, settings.schedule.n_warm + 1)
        result["restart_error"] = coord.restart_report()
    return result


def drift_report(coord: Coordinator, reference: np.ndarray | None, start: int) -> dict[str, Any]:
    """The adaptive schedule's drift estimate per member (``estimate``: NAD accumulated
    over every macro block, :mod:`~ledmus.coupler.adaptive`) and, with a micro-only
    ``reference`` of a grid system, the true error it estimates (``true``: the largest
    over the run of ``max_c mean_x |state - reference| / range_c``, the comparison's NAD
    with the reference member's range) and ``bounded``: the share of members whose
    estimate is at least their true error."""
    est = np.asarray(coord.drift_total, dtype=np.float64)
    out: dict[str, Any] = {
        "estimate": est.tolist(),
        "estimate_max": float(est.max()) if est.size else 0.0,
    }
    states = coord.recorder.states
    if reference is None or states is None or coord.system.layout != "grid":
        return out
    ref, got = reference[:, start:], states[:, start:]
    span = reference.max(axis=(1, 3)) - reference.min(axis=(1, 3))  # (B, C), whole run
    span = np.where(span > 0, span, 1.0)
    nad = np.abs(got - ref).mean(axis=3) / span[:, None, :]  # (B, T, C)
    true = nad.max(axis=(1, 2)) if nad.size else np.zeros(len(est))
    out["true"] = true.tolist()
    out["true_max"] = float(true.max()) if true.size else 0.0
    # 1e-12: exact members carry float64 rounding on both sides
    out["bounded"] = float((est >= true - 1e-12).mean()) if est.size else 1.0
    return out


def concurrent_metrics(settings: RunSettings, coord: Coordinator) -> dict[str, Any]:
    """``macro_fraction`` (overall and per ``t_report`` block, over members and indices),
    ``interventions`` by cause, comparisons, and the parameters outside training."""
    source = coord.recorder.source
    block = max(1, round(settings.schedule.adaptive.t_report / settings.schedule.dt))
    blocks = [
        float((source[:, a : a + block] == 1).mean()) for a in range(0, source.shape[1], block)
    ]
    return {
        "macro_fraction": float((source == 1).mean()),
        "macro_fraction_blocks": blocks,
        "interventions": dict(getattr(coord, "interventions", {})),
        "comparisons": dict(getattr(coord, "comparisons", {})),
        "out_of_training": settings.macro.out_of_training,
        **(
            {"trainer": {"mode": settings.schedule.adaptive.online, **coord.learning.summary()}}
            if getattr(coord, "learning", None) is not None
            else {}
        ),
    }


@dataclass
class CoupledRun:
    """One coupled run (see the module); ``elapsed``: wall seconds of its loop so far
    (a resumed run continues from its snapshot's)."""

    settings: RunSettings
    model: MacroModel
    decoder: Decoder
    members: np.ndarray
    coord: Coordinator
    elapsed: float = 0.0
    #: ``perf_counter`` at the start of the loop now running (None: not running)
    _started: float | None = field(default=None, repr=False)

    @classmethod
    def build(
        cls,
        settings: RunSettings,
        members: np.ndarray,
        *,
        model: MacroModel | None = None,
        decoder: Decoder | None = None,
        comm: Any = None,
        keep_states: bool = True,
        trainer_link: Any = None,
    ) -> CoupledRun:
        """The run's parts from its settings: the macro model (``model``, or loaded;
        ``comm``: the ranks a space-parallel backend splits the grid over), its decoder for
        ``members`` (``lift``: one the exchange shares) and the coordinator
        (``trainer_link``: the online trainer, None: in this process)."""
        model = model or load(settings, comm)
        decoder = decoder or new_decoder(settings, model, members)
        coord = new_coordinator(
            settings,
            model,
            decoder,
            len(members),
            keep_states=keep_states,
            trainer_link=trainer_link,
        )
        return cls(settings, model, decoder, np.asarray(members), coord)

    def run(
        self,
        exchange: Exchange,
        *,
        progress: bool = False,
        after_cycle: Callable[[CoupledRun], None] | None = None,
    ) -> None:
        """Cycle the coordinator to the end (``after_cycle(self)`` after each cycle);
        :attr:`elapsed` grows by the loop's wall time, also when it fails."""
        base, self._started = self.elapsed, time.perf_counter()
        try:
            if after_cycle is None:
                self.coord.run(exchange, progress=progress)
            else:
                while not self.coord.done:
                    self.coord.cycle(exchange)
                    after_cycle(self)
        finally:
            if getattr(self.coord, "learning", None) is not None:
                self.coord.learning.close()
            self.elapsed = base + time.perf_counter() - self._started
            self._started = None

    @property
    def wall(self) -> float:
        """Wall seconds of the loop so far (also while it runs)."""
        running = 0.0 if self._started is None else time.perf_counter() - self._started
        return self.elapsed + running

    def snapshot(self) -> dict[str, Any]:
        """The coordinator's state and the loop's wall time so far."""
        return {"coordinator": self.coord.snapshot(), "elapsed": self.wall}

    def restore(self, snap: dict[str, Any]) -> None:
        self.coord.restore(snap["coordinator"])
        self.elapsed = float(snap["elapsed"])

    def compare(self) -> tuple[np.ndarray | None, float | None]:
        """With ``compare``: the micro-only reference of this run's members (and the
        macro states a ``record: latents`` run skipped); ``(None, None)`` without."""
        return compare_after_run(self.settings, self.coord, self.decoder, self.members)

    def summary(
        self,
        engine: str,
        reference: np.ndarray | None,
        reference_wall: float | None,
        n_ranks: int = 1,
    ) -> dict[str, Any]:
        """The ``metrics.json`` payload (:func:`summarize`)."""
        return summarize(
            self.settings, self.coord, self.elapsed, engine, reference, reference_wall, n_ranks
        )

    def finish(self, engine: str) -> tuple[dict[str, Any], np.ndarray | None]:
        """After the loop, in one process: the reference run and the summary; returns
        ``(metrics, reference states or None)``."""
        reference, reference_wall = self.compare()
        return self.summary(engine, reference, reference_wall), reference
