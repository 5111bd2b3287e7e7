"""Training of the Boltzmann moment closure (:mod:`.boltzmann_ml`) on a stored dataset.

Config (``configs/closure_boltzmann.yaml``; defaults in :data:`CONFIG_DEFAULTS`): ``kind:
closure_boltzmann``, ``seed``, ``dtype`` (``float64``), ``spec``
(:data:`.boltzmann_ml.SPEC_DEFAULTS`), ``data`` (``dataset``: the ``train.h5`` of ``ledmus
dataset boltzmann``, a path relative to the working folder or the config's; ``cells``:
how many cell states to draw from its snapshots after ``t = 0``, whose ``ε`` is the run's
stored ``eps``; ``hybrid_data``: ``kinetic_cells.npz`` files of Boltzmann hybrid runs,
whose flagged kinetic cells are added, :func:`hybrid_cells`), ``train``: two Adam stages
(learning rate ``lr``, cosine decay): ``encoder_steps`` steps of ``encoder_batch`` cells
training ``w``, ``h`` and the collision model together (each step evaluates ``w`` on every velocity node of the batch: about 0.2 s for 32 cells of
1152 nodes), then ``w`` is frozen, every cell's targets are encoded once and
``steps`` steps of ``batch_size`` cells fit ``h`` and the collision model alone.  The
targets are :func:`cell_data` (per cell from ``f`` on the solver's ``N × N`` grid: ``σ̃ =
Σξ_x² gdv``, ``q̃ = Σ ξ_x|ξ|²/2 gdv``, and ``g̃``, ``y``, ``ŝ = Σ w qdv`` under the current
``w``, with ``gdv = (f - M[f]) h²/ρ`` and ``qdv = Q(f) h²/ρ²``, ``Q`` the solver's
conservative spectral operator); the loss is :func:`closure_loss`.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ...validation import Field, as_choice, as_int, as_mapping, as_number, as_str
from ..checkpoint import save_checkpoint
from ..config import DTYPES
from .boltzmann_ml import BoltzmannMomentNet, check_spec
from .ml import eps_scale
from .train import adam_fit, data_fingerprint, parse_config

TOP_FIELDS = (
    Field("kind", as_choice(("closure_boltzmann",)), "closure_boltzmann", "closure_boltzmann"),
    Field("system", as_choice(("boltzmann",)), "boltzmann", "boltzmann"),
    Field("seed", as_int(0), 0, "integer >= 0"),
    Field("dtype", as_choice(DTYPES), "float64", "one of " + ", ".join(DTYPES)),
    Field("spec", as_mapping, {}, "BoltzmannMomentNet fields (.boltzmann_ml.SPEC_DEFAULTS)"),
    Field("learn", as_mapping, {}, "concurrent learning (.learn_boltzmann.LEARN_FIELDS)"),
)


def _as_paths(label: str, value: Any) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"{label} must be a list of kinetic_cells.npz paths, got {value!r}")
    return list(value)


DATA_FIELDS = (
    Field("dataset", as_str, "data/boltzmann/train.h5", "path of a boltzmann train.h5"),
    Field("cells", as_int(1), 76800, "cell states drawn for training, integer >= 1"),
    Field("hybrid_data", _as_paths, [], "kinetic_cells.npz of Boltzmann hybrid runs"),
)
TRAIN_FIELDS = (
    Field("encoder_steps", as_int(0), 3200, "joint Adam steps (w trained), integer >= 0"),
    Field("encoder_batch", as_int(1), 32, "cells per joint step, integer >= 1"),
    Field("steps", as_int(1), 32000, "Adam steps with w frozen, integer >= 1"),
    Field("batch_size", as_int(1), 512, "cells per step, integer >= 1"),
    Field("lr", as_number(0, strict=True), 2e-3, "Adam learning rate, number > 0"),
)
SECTIONS = {"data": DATA_FIELDS, "train": TRAIN_FIELDS}
CONFIG_DEFAULTS: dict[str, Any] = {
    **{f.name: f.default for f in TOP_FIELDS},
    **{name: {f.name: f.default for f in fields} for name, fields in SECTIONS.items()},
}
LOSS_NAMES = ("loss", "flux", "frame", "collision")


def cell_data(solver: Any, f: np.ndarray, eps: Any) -> dict[str, np.ndarray]:
    """Per-cell arrays from Boltzmann states ``f`` ``(K, N*N, nx)`` of ``solver`` (a
    :class:`~ledmus.solvers.boltzmann.Boltzmann`) at Knudsen numbers ``eps`` (a number,
    ``(K,)`` or ``(K, nx)``): the nodes ``x``, ``y`` (``ξ``), ``gdv``, ``qdv`` ``(K·nx,
    nv)`` on the half grid ``v_y > 0`` (weights doubled: ``f`` is even in ``v_y``), the
    targets ``sigma``, ``q`` and ``log_kn = log10(ε/ρ)`` ``(K·nx,)``."""
    f = np.asarray(f, dtype=np.float64)
    K, _, nx = f.shape
    N, h = solver.N, solver.h
    rho, u, _, T = np.moveaxis(solver.primitives(f), -2, 0)  # (K, nx); u_y = 0
    M = solver.equilibrium(f)
    fi = np.moveaxis(f, 1, 2).reshape(K, nx, N, N)
    Qf = solver.collision(fi)  # (K, nx, N, N)
    g = np.moveaxis(f - M, 1, 2).reshape(K, nx, N, N)
    half = slice(N // 2, None)  # v_y > 0 (N even, no node at 0)
    v = solver.v
    sq = np.sqrt(T)[..., None, None]
    x = (v[:, None] - u[..., None, None]) / sq * np.ones((1, 1, 1, N // 2))
    y = (v[half][None, :] / sq) * np.ones((1, 1, N, 1))
    r = rho[..., None, None]
    gdv = 2.0 * g[..., half] * h * h / r
    qdv = 2.0 * Qf[..., half] * h * h / (r * r)
    sigma = (x * x * gdv).sum((-2, -1))
    q = 0.5 * (x * (x * x + y * y) * gdv).sum((-2, -1))
    eps = np.asarray(eps, dtype=np.float64)
    if eps.ndim == 1:  # one per state
        eps = eps[:, None]
    kn = np.broadcast_to(eps, (K, nx)) / rho
    n = K * nx
    return {
        "x": x.reshape(n, -1),
        "y": y.reshape(n, -1),
        "gdv": gdv.reshape(n, -1),
        "qdv": qdv.reshape(n, -1),
        "sigma": sigma.reshape(n),
        "q": q.reshape(n),
        "log_kn": np.log10(kn).reshape(n),
    }


def encoded_targets(net: BoltzmannMomentNet, batch: dict[str, torch.Tensor]) -> dict:
    """The targets of a batch of cells under the current ``w``: ``W``, ``g`` (``g̃``),
    ``y``, ``s`` (``ŝ``) and the batch's ``sigma``, ``q``, ``log_kn``."""
    W, g, y, s = net.encode(batch["x"], batch["y"], batch["gdv"], batch["qdv"])
    return {"W": W, "g": g, "y": y, "s": s, **{k: batch[k] for k in ("sigma", "q", "log_kn")}}


def encode_all(net: BoltzmannMomentNet, data: dict[str, torch.Tensor], chunk: int = 256) -> dict:
    """:func:`encoded_targets` of every cell of ``data`` with ``w`` fixed (no gradients),
    in chunks of ``chunk`` cells."""
    n = data["x"].shape[0]
    parts = []
    with torch.no_grad():
        for i in range(0, n, chunk):
            parts.append(encoded_targets(net, {k: v[i : i + chunk] for k, v in data.items()}))
    return {k: torch.cat([p[k] for p in parts]) for k in parts[0]}


def closure_loss(net: BoltzmannMomentNet, batch: dict[str, torch.Tensor]) -> tuple:
    """Loss on a batch of cells, each term divided by ``s(κ)²`` (dimensionless, of order
    one at every ``κ``): stress, heat flux, W flux, frame terms and collisions.  ``batch``:
    the cells' nodes (``x``, ``y``, ``gdv``, ``qdv``; encoded with the current ``w``) or
    their :func:`encoded_targets` (``w`` fixed).  Returns ``(loss, flux part, frame part,
    collision part)``."""
    t = encoded_targets(net, batch) if "W" not in batch else batch
    sig, q, g, y = net(t["W"], t["log_kn"])
    s = eps_scale(t["log_kn"], net.spec["eps_ref"])
    flux = (
        (((sig - t["sigma"]) / s) ** 2).mean()
        + (((q - t["q"]) / s) ** 2).mean()
        + (((g - t["g"]) / s[:, None]) ** 2).sum(1).mean()
    )
    frame = (((y - t["y"]) / s[:, None, None]) ** 2).sum((1, 2)).mean()
    coll = (((net.collision(t["W"]) - t["s"]) / s[:, None]) ** 2).sum(1).mean()
    return flux + frame + coll, flux, frame, coll


def resolve_config(raw: dict[str, Any]) -> dict[str, Any]:
    """Defaults filled in and every field checked (``ValueError`` naming ``config
    <section>.<key>``)."""
    cfg = parse_config(raw, TOP_FIELDS, SECTIONS)
    check_spec(cfg["spec"])
    return {k: copy.deepcopy(cfg[k]) for k in CONFIG_DEFAULTS}


def find_dataset(path: str, base_dir: Path | None = None) -> Path:
    """``path`` as given, else relative to ``base_dir``; ``ValueError`` naming the field."""
    try:
        return find_dataset_file(path, base_dir, "data.dataset")
    except ValueError:
        raise ValueError(
            f"config data.dataset {path!r} does not exist; make it with "
            "`ledmus dataset boltzmann --out data/boltzmann`"
        ) from None


def find_dataset_file(path: str, base_dir: Path | None, field: str) -> Path:
    """``path`` as given, else relative to ``base_dir``; ``ValueError`` naming ``field``."""
    p = Path(path)
    for cand in (p, *(() if base_dir is None or p.is_absolute() else (base_dir / p,))):
        if cand.is_file():
            return cand
    raise ValueError(f"config {field} {path!r} does not exist")


def load_cells(path: Path, cells: int, seed: int) -> dict[str, np.ndarray]:
    """:func:`cell_data` of ``cells`` cell states drawn (without
    replacement, seeded) from the snapshots after ``t = 0`` of the dataset ``path``."""
    from ... import solvers
    from ...trajectory import read_trajectory

    tr = read_trajectory(path)
    if tr.system != "boltzmann" or "eps" not in tr.extra:
        raise ValueError(
            f"config data.dataset {str(path)!r} is not a boltzmann dataset with per-run eps "
            f"(system {tr.system!r}); allowed: a train.h5 of `ledmus dataset boltzmann`"
        )
    params = {k: v for k, v in tr.params.items() if k not in ("eps", "dt")}
    solver = solvers.make("boltzmann", **params)
    states = np.asarray(tr.states[:, 1:])  # (B, T-1, N*N, nx)
    B, T, _, nx = states.shape
    rng = np.random.default_rng(seed)
    pick = np.sort(rng.choice(B * T * nx, size=min(cells, B * T * nx), replace=False))
    snap, cell = np.divmod(pick, nx)
    parts = []
    for s in np.unique(snap):
        run, k = divmod(int(s), T)
        d = cell_data(solver, states[run, k][None], float(tr.extra["eps"][run]))
        keep = cell[snap == s]
        parts.append({key: v[keep] for key, v in d.items()})
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def hybrid_cells(path: Any) -> dict[str, np.ndarray]:
    """:func:`cell_data` of the kinetic cells a Boltzmann hybrid run wrote
    (``output/kinetic_cells.npz``): the cells the solver ran because a criterion flagged
    them, each at its own ε.  The exploration data of the next round of concurrent
    learning (config field ``data.hybrid_data``).  ``ValueError`` naming the file when it
    is not such a file."""
    from ... import solvers

    try:
        with np.load(path) as z:
            f, eps, cell = z["f"], z["eps"], z["cell"]
            grid = {k: float(z[k]) for k in ("v_box", "v_support")}
            N = int(z["N"])
    except (OSError, KeyError, ValueError) as exc:
        raise ValueError(
            f"data.hybrid_data: {path} is not a Boltzmann hybrid kinetic_cells.npz ({exc})"
        ) from None
    n = f.shape[-1]
    if f.ndim != 2 or f.shape[0] != N * N or cell.shape != (n,):
        raise ValueError(
            f"data.hybrid_data: {path}: f must have shape (N*N={N * N}, {n}), got {f.shape}"
        )
    if n == 0:
        return {}
    eps = np.broadcast_to(eps, (int(cell.max()) + 1,)) if eps.ndim == 0 else eps
    width = max(4, n)  # the solver's smallest grid; extra cells repeat the last
    pad = np.concatenate([f, np.repeat(f[:, -1:], width - n, axis=1)], axis=1)
    kn = np.concatenate([eps[cell], np.repeat(eps[cell][-1:], width - n)])
    solver = solvers.make("boltzmann", N=N, nx=width, **grid)
    data = cell_data(solver, pad[None], kn[None])
    return {k: v[:n] for k, v in data.items()}


def training_cells(cfg: dict[str, Any], base_dir: Path | None = None) -> dict[str, np.ndarray]:
    """The training cells of a resolved config: ``data.cells`` cells of ``data.dataset``
    (:func:`load_cells`) and every cell of the ``data.hybrid_data`` files
    (:func:`hybrid_cells`); paths as given or relative to ``base_dir``."""
    data = load_cells(
        find_dataset(cfg["data"]["dataset"], base_dir), cfg["data"]["cells"], cfg["seed"]
    )
    for extra in cfg["data"]["hybrid_data"]:
        cells = hybrid_cells(find_dataset_file(extra, base_dir, "data.hybrid_data"))
        if cells:
            data = {k: np.concatenate([data[k], cells[k]]) for k in data}
    return data


def train_boltzmann_closure(
    config: dict[str, Any], out: str | Path, *, base_dir: Path | None = None, progress: bool = True
) -> Path:
    """Train a :class:`~.boltzmann_ml.BoltzmannMomentNet` on the configured dataset and
    write the checkpoint ``out`` (kind ``closure_boltzmann``; the loss terms per step in
    its history)."""
    cfg = resolve_config(config)
    out = Path(out)
    if not out.parent.is_dir():
        raise ValueError(f"--out folder {str(out.parent)!r} does not exist")
    data = training_cells(cfg, base_dir)
    torch.manual_seed(cfg["seed"])
    net = BoltzmannMomentNet(cfg["spec"]).to(getattr(torch, cfg["dtype"]))
    tens = {k: torch.from_numpy(np.ascontiguousarray(v)).to(net.dtype) for k, v in data.items()}
    t = cfg["train"]
    net.train()
    hist: dict[str, list[float]] = {f"encoder_{k}": [] for k in LOSS_NAMES}
    if t["encoder_steps"]:
        joint = adam_fit(
            net.parameters(),
            tens,
            lambda b: closure_loss(net, b),
            steps=t["encoder_steps"],
            batch_size=t["encoder_batch"],
            lr=t["lr"],
            seed=cfg["seed"],
            names=LOSS_NAMES,
            progress="closure_boltzmann (w, h, collisions)" if progress else None,
        )
        hist = {f"encoder_{k}": v for k, v in joint.items()}
    for p in net.wnet.parameters():
        p.requires_grad_(False)
    encoded = encode_all(net, tens)
    rest = [p for p in net.parameters() if p.requires_grad]
    hist.update(
        adam_fit(
            rest,
            encoded,
            lambda b: closure_loss(net, b),
            steps=t["steps"],
            batch_size=t["batch_size"],
            lr=t["lr"],
            seed=cfg["seed"] + 1,
            names=LOSS_NAMES,
            progress="closure_boltzmann (h, collisions)" if progress else None,
        )
    )
    for p in net.wnet.parameters():
        p.requires_grad_(True)
    saved = {**config, "dtype": cfg["dtype"]}
    return save_checkpoint(
        out, net.eval(), config=saved, fingerprint=data_fingerprint(data), history=hist
    )


__all__ = [
    "CONFIG_DEFAULTS",
    "cell_data",
    "closure_loss",
    "encode_all",
    "encoded_targets",
    "find_dataset",
    "hybrid_cells",
    "load_cells",
    "resolve_config",
    "train_boltzmann_closure",
    "training_cells",
]
