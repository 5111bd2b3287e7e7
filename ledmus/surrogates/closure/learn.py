"""Concurrent learning of the ML moment closure: explore → label → train (W. E's
concurrent-learning lecture; DP-GEN: Zhang, Wang & E 2018).

An **ensemble** of ``members`` closures shares the encoder ``w(ξ)`` of a trained closure
checkpoint (frozen, so one decoder lifts for all) and trains its own closure network
``h`` (different initial weights).  Each iteration:

1. **explore**: ``explore`` new random profiles (BGK ``waves``/``shocks``, periodic,
   ``ε`` log-uniform in ``[eps_min, eps_max]``) run by member 0's moment system from
   equilibrium to ``t_end``; every ``every``-th coarse state is a candidate.
2. **score**: the deviation of a state is the largest over its cells of the ensemble
   standard deviation of the closure outputs ``(q̃, g̃, y)`` divided by ``s(ε)``
   (:func:`.ml.eps_scale`, the scale the closure loss uses): dimensionless, 0 when all
   members agree.  ``< lo``: accurate; ``[lo, hi)``: candidate for labelling; ``≥ hi``
   (or a run that broke down): failed, not labelled (too far from the data to trust the
   lift).
3. **label** at most ``label_cap`` candidates (``strategy="deviation"``: the most
   deviating ones in the band; ``"random"``: the same number drawn uniformly from all
   explored states, the baseline): lift the state to ``f`` with the decoder, run BGK for
   ``burst`` time units, add its coarse snapshots as training cells.
4. **train** every member (warm start) ``retrain_steps`` Adam steps on all data.

Stops when the accurate ratio reaches ``target`` or after ``iterations``.  Logged per
iteration: explored, labelled, accurate/candidate/failed ratios, test error (max rel. L2
of ρ, u, T at t = 0.1 of member 0 against BGK on fixed held-out smooth profiles,
:func:`.evaluate.compare_to_bgk`), data cells, wall time.
"""

from __future__ import annotations

import copy
import math
import time
from typing import Any

import numpy as np
import torch

from ... import solvers
from .evaluate import compare_to_bgk
from .fv import FVSolver
from .hmm import ensemble, save_ensemble
from .lift import lift, restrict
from .ml import MLMomentClosure, MomentNet, eps_scale
from .train import cell_data, fit

LEARN_DEFAULTS: dict[str, Any] = {
    "members": 4,
    "lo": 0.05,
    "hi": 1.0,
    "iterations": 5,
    "target": 0.9,
    "explore": 8,
    "label_cap": 4,
    "burst": 0.02,
    "retrain_steps": 400,
    "init_runs": 2,
    "nx": 32,
    "t_end": 0.1,
    "every": 4,
    "batch_size": 256,
    "lr": 1e-3,
    "test_eps": [1e-3, 0.1, 10.0],
    "test_profiles": 2,
    "seed": 0,
    "eps_min": 1e-3,
    "eps_max": 10.0,
    "closure": "models/closure_bgk.pt",
    "decoder": "models/closure_bgk_decoder.pt",
    "hybrid_data": [],
}
STRATEGIES = ("deviation", "random")


def resolve_learn(raw: dict[str, Any] | None) -> dict[str, Any]:
    """The ``learn:`` section with defaults; ``ValueError`` naming a bad field."""
    cfg = copy.deepcopy(LEARN_DEFAULTS)
    for k, v in (raw or {}).items():
        if k not in cfg:
            raise ValueError(f"unknown config field learn.{k}; allowed: {', '.join(cfg)}")
        cfg[k] = v
    for k in (
        "members",
        "iterations",
        "explore",
        "label_cap",
        "retrain_steps",
        "nx",
        "every",
        "batch_size",
        "test_profiles",
    ):
        v = cfg[k]
        if isinstance(v, bool) or not isinstance(v, int) or v < (2 if k == "members" else 1):
            raise ValueError(
                f"config field learn.{k} must be an integer >= "
                f"{2 if k == 'members' else 1}, got {v!r}"
            )
    for k in ("lo", "hi", "burst", "t_end", "lr", "eps_min", "eps_max"):
        if not (isinstance(cfg[k], (int, float)) and math.isfinite(cfg[k]) and cfg[k] > 0):
            raise ValueError(f"config field learn.{k} must be a finite number > 0, got {cfg[k]!r}")
    if cfg["lo"] >= cfg["hi"]:
        raise ValueError(
            f"config fields learn.lo < learn.hi required, got {cfg['lo']}, {cfg['hi']}"
        )
    paths = cfg["hybrid_data"]
    if not isinstance(paths, list) or not all(isinstance(p, str) for p in paths):
        raise ValueError(
            f"config field learn.hybrid_data must be a list of kinetic_cells.npz paths, "
            f"got {paths!r}"
        )
    if not 0 < cfg["target"] <= 1:
        raise ValueError(f"config field learn.target must be in (0, 1], got {cfg['target']!r}")
    return cfg


def deviation(nets: list[MomentNet], Q: np.ndarray, eps: float) -> np.ndarray:
    """Per state ``(B,)``: max over cells of :func:`cell_deviation`; ``Q`` ``(B, 3+M, nx)``."""
    return cell_deviation(nets, Q, eps).max(axis=1)


def cell_deviation(nets: list[MomentNet], Q: np.ndarray, eps: float) -> np.ndarray:
    """Per cell ``(B, m)``: the largest over ``(q̃, g̃, y)`` of their ensemble std across
    ``nets``, divided by ``s(ε)``; ``Q`` ``(B, 3+M, m)``."""
    s = float(eps_scale(torch.tensor([math.log10(eps)]), nets[0].spec["eps_ref"])[0])
    return closures_deviation([MLMomentClosure(net, eps) for net in nets], Q, s)


def closures_deviation(closures: list, Q: np.ndarray, scale: float) -> np.ndarray:
    """:func:`cell_deviation` of closures already built (:class:`.ml.MLMomentClosure` of
    each member at one ``ε``) and their ``s(ε)`` ``scale``."""
    outs = []
    for cl in closures:
        q, g, y = cl.closure_terms(Q)  # (B, m), (B, M, m), (B, 3, M, m)
        outs.append(np.concatenate([q[:, None], g, y.reshape(y.shape[0], -1, y.shape[-1])], 1))
    return (np.stack(outs).std(axis=0) / scale).max(axis=1)


def explore(net: MomentNet, cfg: dict[str, Any], rng: np.random.Generator) -> list[tuple]:
    """``(ε, Q (3+M, nx))`` states of member 0's moment system from new random profiles
    (BGK ``waves``/``shocks`` alternating, as the default training data); a run that
    breaks down contributes ``(ε, None)`` (failed)."""
    states = []
    for p in range(cfg["explore"]):
        eps = 10 ** rng.uniform(math.log10(cfg["eps_min"]), math.log10(cfg["eps_max"]))
        bgk = solvers.make("bgk", kn=eps, nx=cfg["nx"], bc="periodic")
        Q = restrict(net, bgk.initial_condition(("waves", "shocks")[p % 2], 1, rng), bgk)
        fv = FVSolver(MLMomentClosure(net, eps), nx=cfg["nx"], bc="periodic")
        dt = cfg["every"] * bgk.dt_coarse
        try:
            for _ in range(round(cfg["t_end"] / dt)):
                Q = fv.advance(Q, dt)
                states.append((eps, Q[0].copy()))
        except (FloatingPointError, ValueError):
            states.append((eps, None))
    return states


def label(decoder: Any, net: MomentNet, state: tuple, burst: float) -> dict[str, np.ndarray]:
    """Training cells from a BGK burst started at the lifted state ``(ε, Q)``."""
    eps, Q = state
    bgk = solvers.make("bgk", kn=eps, nx=Q.shape[-1], bc="periodic")
    _, f = bgk.rollout(lift(decoder, Q[None], bgk, eps), burst)
    return cell_data(bgk, f[0, 1:], eps)


def hybrid_cells(path: Any) -> dict[str, np.ndarray]:
    """Training cells (:func:`.train.cell_data`) from the kinetic cells a cell-local hybrid
    run wrote (``output/kinetic_cells.npz``): the cells BGK ran because a criterion
    flagged them, labelled by BGK itself.  ``ValueError`` naming the file when it is not
    such a file."""
    try:
        with np.load(path) as z:
            f, kn, nv, v_max = z["f"], float(z["kn"]), int(z["nv"]), float(z["v_max"])
    except (OSError, KeyError, ValueError) as exc:
        raise ValueError(
            f"learn.hybrid_data: {path} is not a hybrid kinetic_cells.npz ({exc})"
        ) from None
    if f.ndim != 2 or f.shape[0] != nv:
        raise ValueError(
            f"learn.hybrid_data: {path}: f must have shape (nv={nv}, N), got {f.shape}"
        )
    bgk = solvers.make("bgk", kn=kn, nv=nv, v_max=v_max, nx=max(4, f.shape[1]), bc="periodic")
    return cell_data(bgk, f[None], kn)


def strategies_of(strategy: str) -> tuple[str, ...]:
    """The strategies of ``ledmus learn --strategy`` (one of :data:`STRATEGIES` or
    ``both``); ``ValueError`` listing the allowed names."""
    if strategy != "both" and strategy not in STRATEGIES:
        raise ValueError(f"--strategy {strategy!r} unknown; allowed: {', '.join(STRATEGIES)}, both")
    return STRATEGIES if strategy == "both" else (strategy,)


def ratios(dev: np.ndarray, lo: float, hi: float) -> dict[str, Any]:
    """Shares of explored states by deviation ``dev`` (inf: a run that broke down):
    accurate (``< lo``), candidate (``[lo, hi)``), failed (``≥ hi`` or inf), and the
    median of the finite deviations."""
    finite = np.isfinite(dev)
    return {
        "accurate_ratio": float((dev < lo).mean()),
        "candidate_ratio": float(((dev >= lo) & (dev < hi)).mean()),
        "failed_ratio": float((~finite | (dev >= hi)).mean()),
        "deviation_median": float(np.median(dev[finite])) if finite.any() else None,
    }


def choose(
    dev: np.ndarray, lo: float, hi: float, cap: int, strategy: str, rng: np.random.Generator
) -> np.ndarray:
    """Indices of the states to label: ``deviation``, the ``cap`` most deviating in
    ``[lo, hi)``; ``random``, as many drawn uniformly from the states that did not break
    down (the baseline)."""
    if strategy == "deviation":
        idx = np.flatnonzero((dev >= lo) & (dev < hi))
        return idx[np.argsort(-dev[idx])][:cap]
    ok = np.flatnonzero(np.isfinite(dev))
    return rng.choice(ok, size=min(cap, ok.size), replace=False)


def merge(data: dict[str, np.ndarray] | None, new: dict[str, np.ndarray]) -> dict:
    """``new`` appended to ``data`` key by key (``data`` None: ``new``)."""
    return new if data is None else {k: np.concatenate([data[k], new[k]]) for k in data}


def test_error(net: MomentNet, cfg: dict[str, Any]) -> float:
    """Max rel. L2 of ρ, u, T (t = 0.1) of ``net`` against BGK, over the test ε and
    held-out smooth profiles (seeds 2000…)."""
    worst = 0.0  # a run that broke down counts inf
    for eps in cfg["test_eps"]:
        for k in range(cfg["test_profiles"]):
            err = compare_to_bgk(
                {"ml": MLMomentClosure(net.eval(), eps)}, eps, 2000 + k, nx=cfg["nx"]
            )["ml"]
            worst = max(worst, float(np.max(err)))
    net.train()
    return worst


def run(
    base: MomentNet,
    decoder: Any,
    cfg: dict[str, Any],
    *,
    strategy: str = "deviation",
    initial: dict[str, np.ndarray],
    progress: bool = False,
) -> dict[str, Any]:
    """The loop (module docstring) from the initial data ``initial`` (:func:`.train.
    cell_data` arrays); returns ``{"strategy", "config", "iterations": [...]}``."""
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r}; allowed: {', '.join(STRATEGIES)}")
    rng = np.random.default_rng(cfg["seed"])
    nets = ensemble(base, cfg["members"], cfg["seed"])
    data = initial

    def train_all() -> None:
        for k, net in enumerate(nets):
            fit(
                net,
                data,
                steps=cfg["retrain_steps"],
                batch_size=cfg["batch_size"],
                lr=cfg["lr"],
                seed=cfg["seed"] + 100 * k + len(log),
            )

    log: list[dict[str, Any]] = []
    train_all()
    iters = range(cfg["iterations"])
    if progress:
        from ...progress import progress_bar

        iters = progress_bar(iters, desc=f"concurrent learning ({strategy})", unit="iteration")
    for it in iters:
        t0 = time.perf_counter()
        states = explore(nets[0], cfg, rng)
        dev = np.array([np.inf if Q is None else deviation(nets, Q[None], e)[0] for e, Q in states])
        chosen = choose(dev, cfg["lo"], cfg["hi"], cfg["label_cap"], strategy, rng)
        for i in chosen:
            data = merge(data, label(decoder, nets[0], states[i], cfg["burst"]))
        entry = {
            "iteration": it,
            "explored": len(states),
            "labelled": int(len(chosen)),
            **ratios(dev, cfg["lo"], cfg["hi"]),
            "labelled_deviation": [float(dev[i]) for i in chosen],
        }
        done = entry["accurate_ratio"] >= cfg["target"]
        if not done:
            train_all()
        entry.update(
            test_error=test_error(nets[0], cfg),
            cells=int(data["q"].size),
            wall_s=time.perf_counter() - t0,
        )
        if done:
            entry["stopped"] = "accurate ratio reached"
        log.append(entry)
        if done:
            break
    return {"strategy": strategy, "config": cfg, "iterations": log, "nets": nets}


def learn(
    config: dict[str, Any],
    out_dir: Any,
    strategies: tuple[str, ...] = STRATEGIES,
    progress: bool = True,
) -> dict[str, Any]:
    """``ledmus learn``: the loop for each strategy from the same initial data (``learn.
    init_runs`` BGK runs of :func:`.train.generate`); writes ``learn_log.json`` and
    ``learn.png`` into ``out_dir`` (paths in ``learn.closure``/``learn.decoder`` are
    relative to the working directory)."""
    from pathlib import Path

    from ...atomic import write_json
    from ..checkpoint import load_model
    from .lift import load_decoder
    from .train import generate, resolve_config

    cfg = resolve_learn(config.get("learn"))
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    base, payload = load_model(cfg["closure"])
    decoder = load_decoder(cfg["decoder"], payload)
    init = generate(
        resolve_config(
            {
                "seed": cfg["seed"],
                "data": {
                    "runs": cfg["init_runs"],
                    "batch": 2,
                    "nx": cfg["nx"],
                    "eps_min": cfg["eps_min"],
                    "eps_max": cfg["eps_max"],
                    "t_end": cfg["t_end"],
                    "every": cfg["every"],
                },
            }
        )
    )
    for path in cfg["hybrid_data"]:  # kinetic regions of hybrid runs: explored and labelled
        init = merge(init, hybrid_cells(path))
    result = {"config": cfg, "runs": {}}
    for strategy in strategies:
        r = run(base, decoder, cfg, strategy=strategy, initial=init, progress=progress)
        result["runs"][strategy] = r["iterations"]
        write_json(out_dir / "learn_log.json", result)
        save_ensemble(
            r["nets"],
            decoder,
            out_dir / f"ensemble_{strategy}.pt",
            config={"learn": cfg, "strategy": strategy},
            closure_fingerprint=payload["fingerprint"],
            history={"iterations": r["iterations"]},
        )
    plot(result, out_dir / "learn.png")
    return result


def plot(result: dict[str, Any], path: Any) -> None:
    """Accurate ratio and test error per iteration, one line per strategy."""
    from .plots import pyplot, save_figure

    fig, (a, b) = pyplot().subplots(1, 2, figsize=(10, 3.6))
    for name, its in result["runs"].items():
        x = [e["iteration"] for e in its]
        a.plot(x, [e["accurate_ratio"] for e in its], marker="o", label=name)
        b.semilogy(x, [e["test_error"] for e in its], marker="o", label=name)
    a.axhline(result["config"]["target"], color="grey", ls="--", lw=0.8)
    a.set(xlabel="iteration", ylabel="accurate ratio (deviation < lo)")
    b.set(xlabel="iteration", ylabel="test error (max rel. L2, t = 0.1)")
    a.legend()
    fig.tight_layout()
    save_figure(fig, path, dpi=100)


__all__ = [
    "LEARN_DEFAULTS",
    "STRATEGIES",
    "choose",
    "deviation",
    "ensemble",
    "explore",
    "hybrid_cells",
    "label",
    "learn",
    "merge",
    "plot",
    "ratios",
    "resolve_learn",
    "run",
    "strategies_of",
    "test_error",
]
