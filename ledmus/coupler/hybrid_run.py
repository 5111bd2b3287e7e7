"""A whole cell-local hybrid run from settings (``coupling: hybrid``): the embedded
engine's entry (``ledmus run configs/hybrid_bgk.ymmsl``) and the MUSCLE3 hybrid
component's, which differ only in where the kinetic cells run.

Settings (besides the hybrid's own, :data:`.hybrid.FIELDS`): ``coupling`` (``hybrid``),
``model`` (the system's closure ensemble: a ``closure_hmm`` checkpoint for ``bgk``, a
``closure_boltzmann_hmm`` one for ``boltzmann``), ``system`` (``bgk`` or ``boltzmann``),
``param_<name>`` (the kinetic solver's parameters: ``kn`` = ε of BGK, ``eps`` of
Boltzmann, ``nx``, ``N``, ``bc`` …), ``ic`` (a named initial condition of the solver),
``seed``, ``t_end``, ``compare`` (also run the kinetic solver alone: errors and S),
``plots``, ``overwrite``.

Outputs in the run directory's ``output/`` (atomic): ``metrics.json`` (kinetic fraction
per step, mean and max; switches; conservation error; with ``compare`` the fair errors
of ρ, u, T against the kinetic solver and S), ``trajectory.npz`` (``t``, the kinetic
mask ``(n, nx)`` and ``(ρ, u, T)`` ``(n, 3, nx)`` per step), ``kinetic_cells.npz`` (the
kinetic core cells' ``f`` of every step: training data for ``ledmus learn``, config field
``learn.hybrid_data``), ``kinetic_region.png``.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from .. import solvers
from ..atomic import atomic_path, write_json
from ..validation import (
    Field,
    as_bool,
    as_choice,
    as_int,
    as_path,
    as_time,
    parse_fields,
    plain_numbers,
)
from .hybrid import HybridRun, plot_kinetic_region
from .hybrid_kinetic import KineticBackend
from .hybrid_settings import FIELDS as HYBRID_FIELDS
from .hybrid_settings import HybridSettings
from .paths import resolve_file

#: the closure ensemble's checkpoint kind of each kinetic system
ENSEMBLE_KINDS = {"bgk": "closure_hmm", "boltzmann": "closure_boltzmann_hmm"}
SYSTEM_FIELD = Field("system", as_choice(tuple(ENSEMBLE_KINDS)), "bgk", "the kinetic solver")
RUN_FIELDS = (
    Field("coupling", as_choice(("hybrid",)), "hybrid", "the cell-local hybrid"),
    Field("model", as_path, doc="closure ensemble checkpoint of the system"),
    SYSTEM_FIELD,
    Field("ic", as_choice(("sod", "colliding", "waves", "shocks", "riemann")), "sod", "ic"),
    Field("seed", as_int(0), 0, "seed of random initial conditions"),
    Field("t_end", as_time, doc="end time (a multiple of dt_coarse)"),
    Field("compare", as_bool, True, "also run the kinetic solver alone"),
    Field("plots", as_bool, True, "write kinetic_region.png"),
    Field("overwrite", as_bool, False, "replace an earlier run's outputs"),
)


def parse_run(raw: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any], HybridSettings]:
    """``(run values, solver params, hybrid settings)`` from ``raw``; ``ValueError`` naming
    an unknown or bad setting."""
    params = _solver_params(raw)
    rest = {k: v for k, v in raw.items() if not k.startswith("param_")}
    names = {f.name for f in HYBRID_FIELDS}
    hybrid = HybridSettings.parse({k: v for k, v in rest.items() if k in names})
    values = parse_fields(
        RUN_FIELDS,
        {k: v for k, v in rest.items() if k not in names},
        what="hybrid run setting",
        extra=", ".join(sorted(names)) + " and param_<name>",
    )
    return values, params, hybrid


def build(raw: Mapping[str, Any], search: list[Path]) -> tuple[Any, Any, np.ndarray, dict]:
    """The kinetic solver, the closure ensemble, the initial state and the run values."""
    from ..surrogates.checkpoint import load_model

    values, params, hybrid = parse_run(raw)
    solver = _make_kinetic(values["system"], params)
    if not solver.collisions:
        raise ValueError(
            "setting param_collisions=false: the closure relaxes at the collision rate, so the "
            "hybrid needs the collisional kinetic solver (param_collisions: true)"
        )
    kind = ENSEMBLE_KINDS[values["system"]]
    try:  # the hybrid runs the closure ensemble's members itself
        ens, _ = load_model(resolve_file(str(values["model"]), "model", search), kind=kind)
    except ValueError as exc:
        raise ValueError(
            f"setting model: the hybrid with system {values['system']} needs a {kind} "
            f"checkpoint: {exc}"
        ) from None
    f0 = solver.initial_condition(values["ic"], 1, np.random.default_rng(values["seed"]))[0]
    return solver, ens, f0, {**values, "hybrid": hybrid}


def kinetic_solver(raw: Mapping[str, Any]) -> Any:
    """The kinetic solver of the settings (``system`` and ``param_<name>``; the others
    are ignored), checked the same way wherever it is built (the hybrid and the kinetic
    component build the same solver): numbers written as text are numbers, and a bad
    system or parameter raises ``ValueError`` naming the setting."""
    values = parse_fields((SYSTEM_FIELD,), raw, what="hybrid run setting", unknown="ignore")
    return _make_kinetic(values["system"], _solver_params(raw))


def _solver_params(raw: Mapping[str, Any]) -> dict[str, Any]:
    """The ``param_<name>`` settings by name, numbers written as text read as numbers."""
    return {k[len("param_") :]: plain_numbers(v) for k, v in raw.items() if k.startswith("param_")}


def _make_kinetic(system: str, params: dict[str, Any]) -> Any:
    try:
        return solvers.make(system, **params)
    except ValueError as exc:
        raise ValueError(f"setting param_<name> of the kinetic solver: {exc}") from None


def run_hybrid(
    raw: Mapping[str, Any],
    out: Path,
    *,
    search: list[Path] | None = None,
    kinetic: KineticBackend | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """Run the hybrid of the settings ``raw``, write the outputs into ``out`` (created;
    see the module) and return the metrics; ``kinetic``: where the kinetic cells run
    (default: this process)."""
    from ..surrogates.closure.evaluate import fair_errors

    solver, ens, f0, v = build(raw, search or [Path.cwd()])
    run = HybridRun(solver, ens, f0, v["hybrid"], kinetic=kinetic)
    t0 = time.perf_counter()
    run.run(v["t_end"], progress=progress)
    wall = time.perf_counter() - t0
    metrics: dict[str, Any] = {**run.metrics(), "wall_s": wall, "t_end": v["t_end"]}
    if v["compare"]:
        t0 = time.perf_counter()
        _, ref = solver.rollout(f0[None], v["t_end"])
        micro_wall = time.perf_counter() - t0
        err = fair_errors(
            run.primitives(),
            np.stack(run.side.primitive(run.side.conserved(ref[0, -1]))),
            gamma=run.side.gamma,
        )
        metrics.update(
            {
                "errors": {
                    f"fair_{k}": float(e) for k, e in zip(("rho", "u", "T"), err, strict=True)
                },
                "micro_only_wall_s": micro_wall,
                "speedup": micro_wall / wall,
            }
        )
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "metrics.json", metrics)
    with atomic_path(out / "trajectory.npz") as tmp, open(tmp, "wb") as fh:
        np.savez(
            fh,
            t=np.asarray(run.history["t"]),
            kinetic=np.asarray(run.history["kinetic"]),
            fields=np.asarray(run.history["fields"]),
        )
    with atomic_path(out / "kinetic_cells.npz") as tmp, open(tmp, "wb") as fh:
        np.savez(fh, **run.labelled_cells())
    if v["plots"] and run.history["t"]:
        with atomic_path(out / "kinetic_region.png") as tmp:
            plot_kinetic_region(run, tmp)
    return metrics
