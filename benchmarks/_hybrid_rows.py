"""What the two cell-local hybrid benchmarks (``hybrid.py`` against BGK,
``hybrid_boltzmann.py`` against the Boltzmann solver) share: best-of timing, the
closure-alone settings, one row of results and the summary over the rows."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

from ledmus.coupler.hybrid_settings import cost_model
from ledmus.surrogates.closure.evaluate import fair_errors

#: the closure alone: thresholds no cell reaches
CLOSURE_ONLY = {"criteria": ["realisability"], "threshold_realisability": 1e300}


def timed(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    """``(best wall seconds of repeat calls, the last result)``."""
    best, out = np.inf, None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def hybrid_row(
    case: str,
    eps: Any,
    run: Any,
    alone: Any,
    ref: np.ndarray,
    errors: dict[str, float | None],
    walls: dict[str, float],
    kinetic: str,
    gamma: float,
) -> dict[str, Any]:
    """One row: the fair errors of the hybrid ``run`` and the closure ``alone`` against the
    reference primitives ``ref`` ``(3, nx)`` (γ = ``gamma``), the classical models'
    ``errors``, the kinetic fraction, switches, conservation, and S measured and modelled
    from ``walls`` (``kinetic``, ``hybrid``, ``closure`` seconds; ``kinetic`` names the
    solver's key)."""
    m = run.metrics()
    s_c = walls["kinetic"] / walls["closure"]
    return {
        "case": case,
        "eps": eps,
        "error_hybrid": float(fair_errors(run.primitives(), ref, gamma).max()),
        "error_closure": float(fair_errors(alone.primitives(), ref, gamma).max()),
        "error_euler": errors["euler"],
        "error_ns": errors["ns"],
        "kinetic_fraction_mean": m["kinetic_fraction_mean"],
        "kinetic_fraction_max": m["kinetic_fraction_max"],
        "switches": m["switches"],
        "redone_steps": m["redone_steps"],
        "conservation_error": max(m["conservation_error"]),
        "speedup": walls["kinetic"] / walls["hybrid"],
        "speedup_closure": s_c,
        "speedup_model": cost_model(m["kinetic_fraction_mean"], s_c),
        "wall_s": {
            kinetic: walls["kinetic"],
            "hybrid": walls["hybrid"],
            "closure": walls["closure"],
        },
        "hybrid_micro_s": m["micro_s"],
        "hybrid_macro_s": m["macro_s"],
    }


def summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The largest errors, whether every hybrid error is within 2 %, the largest
    conservation error, the range of S and of S over the cost model's S."""
    return {
        "max_error_hybrid": max(r["error_hybrid"] for r in rows),
        "max_error_closure": max(r["error_closure"] for r in rows),
        "meets_2pct": all(r["error_hybrid"] <= 0.02 for r in rows),
        "max_conservation_error": max(r["conservation_error"] for r in rows),
        "speedup_min": min(r["speedup"] for r in rows),
        "speedup_max": max(r["speedup"] for r in rows),
        "model_ratio_range": [
            min(r["speedup"] / r["speedup_model"] for r in rows),
            max(r["speedup"] / r["speedup_model"] for r in rows),
        ],
    }
