"""Joint training of the encoder, the closure and the decoder (W. E's concurrent-learning
lecture, §5: the generalised moments are learned by an autoencoder together with the decoder).

The default pipeline trains the encoder ``w(ξ)`` with the closure network ``h``
(:func:`.train.train_closure`, the closure loss only) and then the decoder on the frozen
encoder (:func:`.lift.train_decoder`).  Here all three are trained at once on the same
BGK cells, so ``W`` must also carry what the decoder needs to rebuild ``f``::

    L = L_closure(w, h) + λ_rec [ rec(σ; W(w)) + λ_η ent + λ_W con ]

with ``L_closure`` of :func:`.train.closure_loss` and the decoder terms of
:func:`.lift.decoder_loss` (reconstruction of ``f``, the entropy head, restrict ∘ lift
consistency), ``W`` and ``w(ξ) dξ`` computed by the encoder being trained.  Data: the
closure config's BGK runs (:func:`.train.bgk_runs`, seeded by ``seed``). ::

    ledmus closure joint configs/closure_bgk.yaml --out DIR

writes ``DIR/closure.pt`` (kind ``closure``) and ``DIR/decoder.pt`` (kind
``closure_decoder``, bound to that closure by its fingerprint), the pair the default
pipeline writes as ``models/closure_bgk.pt`` and ``models/closure_bgk_decoder.pt``.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..checkpoint import save_checkpoint
from .lift import DECODER_TERMS, MomentDecoder, decoder_loss, relative_entropy
from .ml import MomentNet
from .train import (
    adam_fit,
    cell_data,
    cells,
    closure_loss,
    configured_runs,
    data_fingerprint,
    kinetic_frame,
    resolve_config,
)


def joint_data(cfg: dict[str, Any]) -> dict[str, np.ndarray]:
    """Per cell: the closure's ``xi``, ``gdv``, ``q``, ``log_eps`` (:func:`.train.
    cell_data`) and the decoder's ``f``, ``m`` (``f``, ``M[f]`` times ``√T/ρ``), ``eta``
    (relative entropy) and ``dxi`` (``dv/√T``)."""
    parts: dict[str, list] = {}
    for eps, bgk, f in configured_runs(cfg):
        fr = kinetic_frame(bgk, f)
        rho, T, M = fr["rho"], fr["T"], fr["M"]
        norm = (np.sqrt(T) / rho)[:, None]
        new = {
            **cell_data(bgk, f, eps, fr),
            "f": cells(f * norm),
            "m": cells(M * norm),
            "eta": relative_entropy(f, M, bgk.dv, rho),
            "dxi": (bgk.dv / np.sqrt(T)).reshape(-1),
        }
        for k, v in new.items():
            parts.setdefault(k, []).append(v)
    return {k: np.concatenate(v) for k, v in parts.items()}


def joint_loss(
    net: MomentNet,
    dec: MomentDecoder,
    b: dict[str, torch.Tensor],
    *,
    lambda_rec: float,
    lambda_eta: float,
    lambda_w: float,
) -> tuple:
    """``(loss, closure, reconstruction, entropy, consistency)`` on a batch of cells."""
    encoded = net.encode(b["xi"], b["gdv"])
    closure = closure_loss(net, b, encoded)
    w = net.weights(b["xi"])[0] * b["dxi"][:, None, None]  # (N, nv, M): w(ξ_j) dξ
    # the decoder's batch with W and w(ξ) dξ of the encoder being trained (not detached)
    dec_loss, rec, ent, con = decoder_loss(
        dec, {**b, "W": encoded[0], "w": w}, lambda_eta, lambda_w
    )
    return closure + lambda_rec * dec_loss, closure, rec, ent, con


def train_joint(
    config: dict[str, Any],
    out_dir: str | Path,
    *,
    lambda_rec: float = 1.0,
    lambda_eta: float = 0.1,
    lambda_w: float = 0.1,
    progress: bool = False,
) -> tuple[Path, Path]:
    """Train encoder, closure and decoder jointly (module docstring) with the data,
    steps, batch size and learning rate of the closure config; writes
    ``out_dir/closure.pt`` and ``out_dir/decoder.pt``."""
    cfg = resolve_config(config)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(cfg["seed"])
    net = MomentNet(cfg["spec"]).double()
    dec = MomentDecoder({"n_moments": net.M, "eps_ref": net.spec["eps_ref"]}).double()
    t0 = time.perf_counter()
    data = joint_data(cfg)
    tens = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in data.items()}
    t = cfg["train"]
    hist: dict[str, Any] = adam_fit(
        [*net.parameters(), *dec.parameters()],
        tens,
        lambda b: joint_loss(
            net, dec, b, lambda_rec=lambda_rec, lambda_eta=lambda_eta, lambda_w=lambda_w
        ),
        steps=t["steps"],
        batch_size=t["batch_size"],
        lr=t["lr"],
        seed=cfg["seed"],
        names=("loss", "closure", *DECODER_TERMS[1:]),
        progress="joint training" if progress else None,
    )
    hist["wall_s"] = time.perf_counter() - t0
    fp = data_fingerprint(data)
    lambdas = {"lambda_rec": lambda_rec, "lambda_eta": lambda_eta, "lambda_w": lambda_w}
    closure = save_checkpoint(
        out_dir / "closure.pt",
        net.eval(),
        config={**config, "dtype": "float64", "joint": lambdas},
        fingerprint=fp,
        history=hist,
    )
    decoder = save_checkpoint(
        out_dir / "decoder.pt",
        dec.eval(),
        config={
            "closure": str(closure),
            "closure_fingerprint": fp,
            "joint": lambdas,
            "dtype": "float64",
        },
        fingerprint=fp,
        history={},
    )
    return closure, decoder


def arguments(ap: Any) -> None:
    """The arguments of ``ledmus closure joint`` (:func:`run`)."""
    ap.add_argument("config", help="closure config (configs/closure_bgk.yaml)")
    ap.add_argument("--out", required=True, help="folder for closure.pt and decoder.pt")
    ap.add_argument("--lambda-rec", type=float, default=1.0)
    ap.add_argument("--lambda-eta", type=float, default=0.1)
    ap.add_argument("--lambda-w", type=float, default=0.1)


def run(args: Any) -> None:
    """``ledmus closure joint CONFIG.yaml --out DIR``: :func:`train_joint` on the config
    (its ``learn`` section is not used); a bad config field is a ``ValueError``."""
    from ..config import load_config

    torch.set_num_threads(1)
    config = load_config(args.config)
    config.pop("learn", None)
    paths = train_joint(
        config,
        args.out,
        lambda_rec=args.lambda_rec,
        lambda_eta=args.lambda_eta,
        lambda_w=args.lambda_w,
        progress=True,
    )
    print("wrote", *paths)
