"""The ensemble of Boltzmann moment closures that the cell-local hybrid couples to the
2-D-velocity Boltzmann solver (checkpoint kind ``closure_boltzmann_hmm``).

:class:`BoltzmannClosureEnsemble` holds ``K`` :class:`~.boltzmann_ml.BoltzmannMomentNet`
members with the same weight functions ``w(ξ)`` (the encoder of the shipped closure,
frozen): member 0 is the shipped closure itself (it propagates); members ``1..K-1`` get
their closure network ``h`` and collision model ``(Λ, C)`` re-initialised
(``torch.manual_seed(seed + k)``) and trained on the same cells as member 0 (the closure
checkpoint's config: its dataset and cell draw, and its ``hybrid_data``), with its step
count.  Their
disagreement is the hybrid's ``deviation`` criterion.  The lift from moments to ``f``
needs no trained decoder: :func:`.lift_boltzmann.lift` is exact in the encoder's own
weight functions.

Build (8.5 min on one core for three new members: about 2 min drawing the cells, 2 min a member)::

    ledmus closure_boltzmann hmm models/closure_boltzmann.pt \\
        --out models/closure_boltzmann_hmm.pt
"""

from __future__ import annotations

import copy
import hashlib
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .boltzmann_ml import BoltzmannMomentNet
from .hmm import ensemble_spec

SPEC_DEFAULTS: dict[str, Any] = {
    "members": 4,  # K closures (member 0 propagates)
    "closure": {},  # BoltzmannMomentNet spec (.boltzmann_ml.SPEC_DEFAULTS)
}


def check_spec(spec: dict[str, Any] | None) -> dict[str, Any]:
    """The full spec; ``ValueError`` naming a bad or unknown field."""
    return ensemble_spec(spec, SPEC_DEFAULTS, "closure_boltzmann_hmm")


class BoltzmannClosureEnsemble(nn.Module):
    """``K`` Boltzmann closures on one encoder (see the module)."""

    kind = "closure_boltzmann_hmm"
    system = "boltzmann"

    def __init__(self, spec: dict[str, Any] | None = None) -> None:
        super().__init__()
        self.spec = check_spec(spec)
        self.members = nn.ModuleList(
            BoltzmannMomentNet(self.spec["closure"]) for _ in range(self.spec["members"])
        )

    @property
    def M(self) -> int:
        return self.members[0].M


def flux_deviation(closures: list[Any], Q: np.ndarray, cells: Any = None) -> np.ndarray:
    """Per cell ``(B, m)`` of ``Q`` ``(B, 3+M, m)``: the larger of the ensemble std of
    ``σ̃ = σ/p`` and ``q̃ = q/(p√T)`` across ``closures`` (one
    :class:`~.boltzmann_ml.BoltzmannMLClosure` per member), the uncertainty of the
    closure's momentum and energy fluxes relative to the pressure, which is what moves
    ``ρ``, ``u`` and ``T``.  ``cells``: which cells ``Q``'s columns are, for closures with
    ``ε(x)`` (None: all).  The hybrid's ``deviation`` criterion and the score of concurrent
    learning (:mod:`.learn_boltzmann`)."""
    outs = []
    for cl in closures:
        cl.bind(np.arange(Q.shape[-1]) if cells is None else cells)
        try:
            sig, q, _, _ = cl.closure_terms(Q)
        finally:
            cl.bind(None)
        outs.append(np.stack([sig, q]))
    return np.stack(outs).std(axis=0).max(axis=0)


def reinitialised(base: BoltzmannMomentNet, seed: int) -> BoltzmannMomentNet:
    """A copy of ``base`` with ``w`` kept (frozen) and ``h``, ``Λ`` and ``C`` drawn anew
    from ``torch.manual_seed(seed)`` as a fresh net draws them."""
    net = copy.deepcopy(base)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for layer in net.hnet:
            if hasattr(layer, "reset_parameters"):
                layer.reset_parameters()
    with torch.no_grad():
        for p in (net.rate_raw, net.eig, net.quad):
            p.zero_()  # the constructor's values
    net.wnet.requires_grad_(False)
    return net.train()


def build(
    closure: str | Path,
    out: str | Path,
    *,
    members: int = 4,
    steps: int | None = None,
    seed: int = 0,
    base_dir: Path | None = None,
    progress: bool = False,
) -> Path:
    """Train members ``1..members-1`` on the cells of the closure checkpoint ``closure``
    (its config's dataset, found as given or relative to ``base_dir``) and write the
    ensemble to ``out`` (atomically)."""
    from ..checkpoint import load_model, save_checkpoint
    from .train import adam_fit
    from .train_boltzmann import (
        LOSS_NAMES,
        closure_loss,
        encode_all,
        resolve_config,
        training_cells,
    )

    out = Path(out)
    if not out.parent.is_dir():
        raise ValueError(f"--out folder {str(out.parent)!r} does not exist")
    if isinstance(members, bool) or int(members) != members or members < 2:
        raise ValueError(f"--members must be an integer >= 2, got {members!r}")
    base, payload = load_model(closure, kind="closure_boltzmann")
    cfg = resolve_config(payload["config"])
    steps = int(steps or cfg["train"]["steps"])
    t0 = time.perf_counter()
    data = training_cells(cfg, base_dir)
    base = base.double()
    tens = {k: torch.from_numpy(np.ascontiguousarray(v)).double() for k, v in data.items()}
    encoded = encode_all(base, tens)
    nets = [base]
    history: dict[str, Any] = {}
    for k in range(1, members):
        net = reinitialised(base, seed + k)
        hist = adam_fit(
            [p for p in net.parameters() if p.requires_grad],
            encoded,
            lambda b, net=net: closure_loss(net, b),
            steps=steps,
            batch_size=cfg["train"]["batch_size"],
            lr=cfg["train"]["lr"],
            seed=seed + k,
            names=LOSS_NAMES,
            progress=f"closure_boltzmann_hmm member {k}" if progress else None,
        )
        history[f"member{k}"] = {name: v[-1] for name, v in hist.items()}
        nets.append(net.eval())
    history["cells"] = int(data["sigma"].shape[0])
    history["wall_s"] = time.perf_counter() - t0
    ens = BoltzmannClosureEnsemble({"members": members, "closure": base.spec}).double()
    for k, net in enumerate(nets):
        ens.members[k].load_state_dict(net.state_dict())
    weights = b"".join(v.detach().cpu().numpy().tobytes() for v in ens.state_dict().values())
    config = {
        "closure": str(closure),
        "members": members,
        "steps": steps,
        "seed": seed,
        "closure_fingerprint": payload["fingerprint"],
        "dtype": "float64",
    }
    return save_checkpoint(
        out,
        ens.eval(),
        config=config,
        fingerprint=hashlib.sha256(weights).hexdigest(),
        history=history,
    )


def arguments(ap: Any) -> None:
    """The arguments of ``ledmus closure_boltzmann hmm`` (:func:`run`)."""
    ap.add_argument("closure", help="closure checkpoint (kind closure_boltzmann)")
    ap.add_argument(
        "--out", required=True, help="ensemble checkpoint to write (kind closure_boltzmann_hmm)"
    )
    ap.add_argument("--members", type=int, default=4)
    ap.add_argument("--steps", type=int, default=None, help="default: the closure config's")
    ap.add_argument("--seed", type=int, default=0)


def run(args: Any) -> None:
    """``ledmus closure_boltzmann hmm CLOSURE.pt --out HMM.pt``: build the ensemble
    (:func:`build`; the closure config's dataset path is taken from the working folder)."""
    torch.set_num_threads(1)
    closure = Path(args.closure)
    path = build(
        closure,
        args.out,
        members=args.members,
        steps=args.steps,
        seed=args.seed,
        progress=True,
    )
    print(f"wrote {path}")


__all__ = [
    "BoltzmannClosureEnsemble",
    "build",
    "check_spec",
    "flux_deviation",
    "reinitialised",
]
