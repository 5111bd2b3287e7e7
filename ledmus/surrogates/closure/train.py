"""Training of the ML moment closure (:mod:`.ml`) on BGK data generated in-process.

Config (``configs/closure_bgk.yaml``; every field optional, defaults in
:data:`CONFIG_DEFAULTS`): ``kind: closure``, ``system: bgk``, ``seed``, ``dtype``
(``float64``), ``spec`` (:data:`.ml.SPEC_DEFAULTS`), ``data`` (``runs`` BGK runs of
``batch`` profiles each, ICs cycling through ``ics`` (default ``waves``, ``shocks``;
also ``riemann``), periodic, ``nx`` cells,
``ε`` log-uniform in ``[eps_min, eps_max]``, snapshots every ``every`` coarse steps of
``dt_coarse`` = 0.005 up to ``t_end``), ``train`` (Adam: ``steps``, ``batch_size``
cells, ``lr``).

Targets per cell, from ``f`` on the BGK grid: ``q̃ = ½Σ(v-u)³f dv/(ρT^{3/2})`` (exact
heat flux) and the encoder's own ``g̃ = Σ ξ w(ξ)(f - M[f]) dv/ρ`` and ``y_k = Σ ξ^k
w'(ξ)(f - M[f]) dv/ρ`` (:meth:`.ml.MomentNet.encode`); the BGK source needs no target
(it is exactly ``-ρW/ε``).  Loss = ``mean(((q̃_net - q̃)/s)²) + mean(|g̃_net - g̃|²/s²)
+ mean(|y_net - y|²/s²)``, ``s = s(ε)`` of :func:`.ml.eps_scale` (dimensionless, of order one at every ε).
"""

from __future__ import annotations

import copy
import hashlib
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ...validation import Field, as_choice, as_choice_list, as_int, as_mapping, as_number
from ..checkpoint import save_checkpoint
from ..config import DTYPES, parse_section
from .ml import MLMomentClosure, MomentNet, eps_scale

#: the periodic BGK initial conditions of the training runs
ICS = ("waves", "shocks", "riemann")
TOP_FIELDS = (
    Field("kind", as_choice(("closure",)), "closure", "closure"),
    Field("system", as_choice(("bgk",)), "bgk", "bgk (the kinetic data are made in process)"),
    Field("seed", as_int(0), 0, "integer >= 0"),
    Field("dtype", as_choice(DTYPES), "float64", "one of " + ", ".join(DTYPES)),
    Field("spec", as_mapping, {}, "MomentNet constructor fields (.ml.SPEC_DEFAULTS)"),
    Field("learn", as_mapping, {}, "concurrent learning (.learn.LEARN_DEFAULTS; checked there)"),
)
DATA_FIELDS = (
    Field("runs", as_int(1), 24, "BGK runs, integer >= 1"),
    Field("batch", as_int(1), 4, "profiles per run, integer >= 1"),
    Field("nx", as_int(4), 64, "cells, integer >= 4"),
    Field("eps_min", as_number(0, strict=True), 1e-3, "smallest ε, number > 0"),
    Field("eps_max", as_number(0, strict=True), 10.0, "largest ε, number > 0"),
    Field("t_end", as_number(0, strict=True), 0.1, "end time, number > 0"),
    Field("every", as_int(1), 4, "snapshot every this many coarse steps, integer >= 1"),
    Field("ics", as_choice_list(ICS), ["waves", "shocks"], "list of " + ", ".join(ICS)),
)
TRAIN_FIELDS = (
    Field("steps", as_int(1), 2000, "Adam steps, integer >= 1"),
    Field("batch_size", as_int(1), 512, "cells per step, integer >= 1"),
    Field("lr", as_number(0, strict=True), 2e-3, "Adam learning rate, number > 0"),
)
SECTIONS = {"data": DATA_FIELDS, "train": TRAIN_FIELDS}
#: the defaults, as a nested dict in the order of the resolved config
CONFIG_DEFAULTS: dict[str, Any] = {
    **{f.name: f.default for f in TOP_FIELDS[:5]},
    **{name: {f.name: f.default for f in fields} for name, fields in SECTIONS.items()},
    "learn": {},
}


def parse_config(raw: dict[str, Any], top_fields: tuple, sections: dict[str, tuple]) -> dict:
    """The top-level ``top_fields`` and each section of ``sections`` parsed
    (:mod:`ledmus.validation` fields; ``ValueError`` naming the field as ``config
    <section>.<key>``), in one flat dict ``{**top, section: {...}}``."""
    if not isinstance(raw, dict):
        raise ValueError(f"config: expected a mapping at the top level, got {raw!r}")
    top = parse_section(top_fields, {k: v for k, v in raw.items() if k not in sections}, "")
    parsed = {}
    for name, fields in sections.items():
        given = raw.get(name, {})
        if not isinstance(given, dict):
            raise ValueError(f"config: {name} must be a mapping, got {given!r}")
        parsed[name] = parse_section(fields, given, f"{name}.")
    return {**top, **parsed}


def resolve_config(raw: dict[str, Any]) -> dict[str, Any]:
    """Defaults filled in and every field checked (:func:`parse_config`)."""
    cfg = parse_config(raw, TOP_FIELDS, SECTIONS)
    if cfg["data"]["eps_min"] > cfg["data"]["eps_max"]:
        raise ValueError("config data.eps_min must be <= data.eps_max")
    return {k: copy.deepcopy(cfg[k]) for k in CONFIG_DEFAULTS}


def cells(a: np.ndarray) -> np.ndarray:
    """``(K, n, nx)`` -> ``(K·nx, n)``: one row per cell."""
    return np.moveaxis(a, 1, 2).reshape(-1, a.shape[1])


def kinetic_frame(bgk, f: np.ndarray) -> dict[str, np.ndarray]:
    """The local frame of ``f`` ``(K, nv, nx)``: moments ``U`` ``(K, 3, nx)``; ``rho``,
    ``u``, ``T`` ``(K, nx)``; peculiar velocity ``c = v - u`` and ``xi = c/√T``
    ``(K, nv, nx)``; the discrete Maxwellian ``M = M[f]`` ``(K, nv, nx)``."""
    U = bgk.moments(f)
    rho, u, T = np.moveaxis(bgk.primitives(f), -2, 0)  # (K, nx)
    c = bgk.v[None, :, None] - u[:, None]
    return {
        "U": U,
        "rho": rho,
        "u": u,
        "T": T,
        "c": c,
        "xi": c / np.sqrt(T)[:, None],
        "M": bgk.maxwellian_of_moments(U),
    }


def cell_data(bgk, f: np.ndarray, eps: float, frame: dict | None = None) -> dict[str, np.ndarray]:
    """Per-cell arrays from ``f`` ``(K, nv, nx)``: ``xi``, ``gdv`` = ``(f - M) dv/ρ``
    ``(N, nv)``, ``q`` (target ``q̃``), ``log_eps`` ``(N,)``, ``N = K·nx``; ``frame``:
    :func:`kinetic_frame` of ``f`` if already made."""
    fr = kinetic_frame(bgk, f) if frame is None else frame
    rho, T, c = fr["rho"], fr["T"], fr["c"]
    g = (f - fr["M"]) * bgk.dv / rho[:, None]
    q = 0.5 * (c**3 * f).sum(1) * bgk.dv / (rho * T**1.5)
    return {
        "xi": cells(fr["xi"]),
        "gdv": cells(g),
        "q": q.reshape(-1),
        "log_eps": np.full(q.size, math.log10(eps)),
    }


def bgk_runs(
    runs: int,
    batch: int,
    nx: int,
    eps_min: float,
    eps_max: float,
    t_end: float,
    every: int,
    rng: np.random.Generator,
    ics: tuple[str, ...] = ("waves", "shocks"),
):
    """Yields ``(ε, bgk, snapshots (K, nv, nx))`` of ``runs`` periodic BGK runs of
    ``batch`` profiles (ICs cycling through ``ics``, ``ε`` log-uniform in
    ``[eps_min, eps_max]``), every ``every``-th coarse state after the initial one."""
    from ... import solvers  # data generation only (importing surrogates loads no solver)

    for r in range(runs):
        eps = 10 ** rng.uniform(math.log10(eps_min), math.log10(eps_max))
        bgk = solvers.make("bgk", kn=eps, nx=nx, bc="periodic")
        f0 = bgk.initial_condition(ics[r % len(ics)], batch, rng)
        _, f = bgk.rollout(f0, t_end)
        yield eps, bgk, f[:, every::every].reshape(-1, *f.shape[2:])


def configured_runs(cfg: dict[str, Any]):
    """:func:`bgk_runs` as a training config's ``data`` section gives them, seeded by
    ``cfg['seed']``."""
    d = cfg["data"]
    rng = np.random.default_rng(cfg["seed"])
    yield from bgk_runs(
        d["runs"],
        d["batch"],
        d["nx"],
        d["eps_min"],
        d["eps_max"],
        d["t_end"],
        d["every"],
        rng,
        tuple(d["ics"]),
    )


def generate(cfg: dict[str, Any]) -> dict[str, np.ndarray]:
    """BGK training data (seeded by ``cfg['seed']``); see the module docstring."""
    parts = [cell_data(bgk, snaps, eps) for eps, bgk, snaps in configured_runs(cfg)]
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def closure_loss(
    net: MomentNet, batch: dict[str, torch.Tensor], encoded: tuple[torch.Tensor, ...] | None = None
) -> torch.Tensor:
    """The training loss on a batch of cells (see the module docstring); ``encoded``:
    ``net.encode(batch["xi"], batch["gdv"])`` if already made."""
    W, g_target, y_target = net.encode(batch["xi"], batch["gdv"]) if encoded is None else encoded
    q, g, y = net(W, batch["log_eps"])
    s = eps_scale(batch["log_eps"], net.spec["eps_ref"])
    return (
        (((q - batch["q"]) / s) ** 2).mean()
        + (((g - g_target) / s[:, None]) ** 2).sum(1).mean()
        + (((y - y_target) / s[:, None, None]) ** 2).sum((1, 2)).mean()
    )


def adam_fit(
    params: Any,
    tens: dict[str, torch.Tensor],
    batch_loss: Any,
    *,
    steps: int,
    batch_size: int,
    lr: float,
    seed: int,
    names: tuple[str, ...] = ("loss",),
    progress: str | None = None,
) -> dict[str, list[float]]:
    """The training loop of the closure, the decoder and joint training: Adam on
    ``params`` (learning rate ``lr``, cosine decay to ``lr/20`` over ``steps``), each
    step on ``batch_size`` rows of ``tens`` drawn with replacement (a generator seeded by
    ``seed``).  ``batch_loss(batch)`` returns the loss, or a tuple led by the loss whose
    entries are logged under ``names``; ``progress``: a tqdm label.  Returns
    ``{name: [value per step]}``."""
    n = next(iter(tens.values())).shape[0]
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(list(params), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps, eta_min=lr / 20)
    hist: dict[str, list[float]] = {k: [] for k in names}
    iters: Any = range(steps)
    if progress:
        from ...progress import progress_bar

        iters = progress_bar(iters, desc=progress, unit="step")
    for _ in iters:
        idx = torch.randint(0, n, (min(batch_size, n),), generator=gen)
        terms = batch_loss({k: v[idx] for k, v in tens.items()})
        terms = terms if isinstance(terms, tuple) else (terms,)
        opt.zero_grad()
        terms[0].backward()
        opt.step()
        sched.step()
        for k, v in zip(names, terms, strict=True):
            hist[k].append(float(v.detach()))
    return hist


def data_fingerprint(data: dict[str, np.ndarray]) -> str:
    """SHA-256 of the arrays of ``data`` in key order (what binds a checkpoint to its data)."""
    return hashlib.sha256(
        b"".join(np.ascontiguousarray(data[k]).tobytes() for k in sorted(data))
    ).hexdigest()


def fit(
    net: MomentNet,
    data: dict[str, np.ndarray],
    *,
    steps: int,
    batch_size: int,
    lr: float,
    seed: int = 0,
) -> list[float]:
    """Adam on random cell batches (:func:`adam_fit`); returns the loss per step."""
    tens = {k: torch.from_numpy(np.ascontiguousarray(v)).to(net.dtype) for k, v in data.items()}
    net.train()
    return adam_fit(
        net.parameters(),
        tens,
        lambda b: closure_loss(net, b),
        steps=steps,
        batch_size=batch_size,
        lr=lr,
        seed=seed,
    )["loss"]


def train_closure(config: dict[str, Any], out: str | Path) -> Path:
    """Generate BGK data, train a :class:`MomentNet`, write the checkpoint ``out``
    (kind ``closure``, the spec and the raw config)."""
    cfg = resolve_config(config)
    out = Path(out)
    if not out.parent.is_dir():
        raise ValueError(f"--out folder {str(out.parent)!r} does not exist")
    torch.manual_seed(cfg["seed"])
    net = MomentNet(cfg["spec"]).to(getattr(torch, cfg["dtype"]))
    data = generate(cfg)
    t = cfg["train"]
    hist = fit(
        net, data, steps=t["steps"], batch_size=t["batch_size"], lr=t["lr"], seed=cfg["seed"]
    )
    saved = {**config, "dtype": cfg["dtype"]}
    return save_checkpoint(
        out, net.eval(), config=saved, fingerprint=data_fingerprint(data), history={"loss": hist}
    )


def profiles(nx: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A smooth periodic ``(ρ, u, T)`` profile ``(1, nx)`` (two random Fourier modes)."""
    rng = np.random.default_rng(seed)
    x = (np.arange(nx) + 0.5) / nx
    out = []
    for base, amp in ((1.0, 0.2), (0.0, 0.15), (1.0, 0.2)):
        a, b, p1, p2 = rng.uniform(0.3, 1.0), rng.uniform(0.0, 0.5), *rng.uniform(0, 2 * np.pi, 2)
        s = a * np.sin(2 * np.pi * x + p1) + b * np.sin(4 * np.pi * x + p2)
        out.append(base + amp * s / np.abs(s).max())
    return tuple(o[None] for o in out)


__all__ = [
    "CONFIG_DEFAULTS",
    "MLMomentClosure",
    "adam_fit",
    "bgk_runs",
    "cell_data",
    "cells",
    "closure_loss",
    "data_fingerprint",
    "fit",
    "parse_config",
    "generate",
    "kinetic_frame",
    "resolve_config",
    "train_closure",
]
