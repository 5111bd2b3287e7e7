"""The checkpoint of the HMM coupling: an ensemble of ML closures that
share one encoder, and the decoder that lifts their moments.

:class:`ClosureEnsemble` (checkpoint kind ``closure_hmm``) holds ``K`` :class:`~.ml.
MomentNet` members with the same weight functions ``w(ξ)`` (the encoder of the shipped
closure, frozen) and independently trained closure networks ``h``, plus the
:class:`~.lift.MomentDecoder` trained on that encoder.  Member 0 is the shipped closure
itself (it propagates); members ``1..K-1`` are re-initialised (``torch.manual_seed(seed
+ k)``, :func:`ensemble`) and trained on the same BGK data as member 0 (the
closure checkpoint's config, :func:`.train.generate`), with its step count.  Their
disagreement is the trust signal of :class:`~.macro.ClosureMacro`.

Build (about 3 min per member on one core)::

    ledmus closure hmm models/closure_bgk.pt \\
        models/closure_bgk_decoder.pt --out models/closure_bgk_hmm.pt
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

from .lift import MomentDecoder
from .ml import MomentNet

SPEC_DEFAULTS: dict[str, Any] = {
    "members": 4,  # K closures (member 0 propagates)
    "state_shape": [64, 100],  # (nv, nx) of the BGK states it is coupled to
    "closure": {},  # MomentNet spec (.ml.SPEC_DEFAULTS)
    "decoder": {},  # MomentDecoder spec (.lift.SPEC_DEFAULTS)
}


def ensemble_spec(spec: dict[str, Any] | None, defaults: dict[str, Any], kind: str) -> dict:
    """``spec`` over ``defaults`` with the checks every closure ensemble's spec shares: no
    unknown field, ``members`` an integer >= 2 (``ValueError`` naming the ``kind``'s
    field)."""
    spec = dict(spec or {})
    unknown = sorted(set(spec) - set(defaults))
    if unknown:
        raise ValueError(
            f"unknown {kind} spec field {unknown[0]!r}; allowed: {', '.join(defaults)}"
        )
    out = {**defaults, **spec}
    k = out["members"]
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 2:
        raise ValueError(f"{kind} spec field members must be an integer >= 2, got {k!r}")
    out["members"] = int(k)
    return out


def check_spec(spec: dict[str, Any] | None) -> dict[str, Any]:
    """The full spec; ``ValueError`` naming a bad or unknown field."""
    out = ensemble_spec(spec, SPEC_DEFAULTS, "closure_hmm")
    shape = out["state_shape"]
    if len(shape) != 2 or any(isinstance(n, bool) or int(n) != n or n < 4 for n in shape):
        raise ValueError(
            f"closure_hmm spec field state_shape must be [nv, nx] (integers >= 4), got {shape!r}"
        )
    out["state_shape"] = [int(n) for n in shape]
    return out


class ClosureEnsemble(nn.Module):
    """``K`` closures on one encoder, and the decoder (see the module)."""

    kind = "closure_hmm"
    system = "bgk"

    def __init__(self, spec: dict[str, Any] | None = None) -> None:
        super().__init__()
        self.spec = check_spec(spec)
        self.members = nn.ModuleList(
            MomentNet(self.spec["closure"]) for _ in range(self.spec["members"])
        )
        self.decoder = MomentDecoder(self.spec["decoder"])
        if self.decoder.M != self.members[0].M:
            raise ValueError(
                f"closure_hmm spec: the decoder has n_moments={self.decoder.M} "
                f"but the closures {self.members[0].M}"
            )
        self.state_shape = tuple(self.spec["state_shape"])

    @property
    def M(self) -> int:
        return self.members[0].M


def ensemble(base: MomentNet, members: int, seed: int) -> list[MomentNet]:
    """``members`` copies of ``base`` with the encoder frozen and the closure network
    re-initialised (member ``k`` from ``torch.manual_seed(seed + k)``)."""
    out = []
    for k in range(members):
        net = copy.deepcopy(base)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed + k)
            for layer in net.hnet:
                if hasattr(layer, "reset_parameters"):
                    layer.reset_parameters()
        net.wnet.requires_grad_(False)
        out.append(net.train())
    return out


def build(
    closure: str | Path,
    decoder: str | Path,
    out: str | Path,
    *,
    members: int = 4,
    steps: int | None = None,
    seed: int = 0,
    nx: int = 100,
    progress: bool = False,
) -> Path:
    """Train members ``1..members-1`` on the data of the closure checkpoint ``closure``
    and write the ensemble with the decoder ``decoder`` to ``out`` (atomically)."""
    from ..checkpoint import load_model
    from .lift import load_decoder
    from .train import fit, generate, resolve_config

    out = Path(out)
    if not out.parent.is_dir():
        raise ValueError(f"--out folder {str(out.parent)!r} does not exist")
    base, payload = load_model(closure, kind="closure")
    dec = load_decoder(decoder, payload)
    cfg = resolve_config(payload["config"])
    steps = int(steps or cfg["train"]["steps"])
    t0 = time.perf_counter()
    data = generate(cfg)
    nets = ensemble(base, members, seed)
    nets[0] = base
    history: dict[str, Any] = {}
    iters = range(1, members)
    if progress:
        from ...progress import progress_bar

        iters = progress_bar(iters, desc="closure ensemble", unit="member")
    for k in iters:
        history[f"member{k}"] = fit(
            nets[k],
            data,
            steps=steps,
            batch_size=cfg["train"]["batch_size"],
            lr=cfg["train"]["lr"],
            seed=seed + k,
        )
    history["wall_s"] = time.perf_counter() - t0
    config = {
        "closure": str(closure),
        "decoder": str(decoder),
        "members": members,
        "steps": steps,
        "seed": seed,
    }
    return save_ensemble(
        nets,
        dec,
        out,
        nx=nx,
        config=config,
        closure_fingerprint=payload["fingerprint"],
        history=history,
    )


def save_ensemble(
    nets: list[MomentNet],
    decoder: MomentDecoder,
    out: str | Path,
    *,
    nx: int = 100,
    config: dict[str, Any],
    closure_fingerprint: str,
    history: dict[str, Any] | None = None,
) -> Path:
    """Write the closures ``nets`` (member 0 propagates) and ``decoder`` as a
    ``closure_hmm`` checkpoint for BGK states of ``nx`` cells (atomically)."""
    from ... import solvers
    from ..checkpoint import save_checkpoint

    nv = solvers.make("bgk", nx=nx).nv
    ens = ClosureEnsemble(
        {
            "members": len(nets),
            "state_shape": [nv, nx],
            "closure": nets[0].spec,
            "decoder": decoder.spec,
        }
    ).double()
    for k, net in enumerate(nets):
        ens.members[k].load_state_dict(net.state_dict())
    ens.decoder.load_state_dict(decoder.state_dict())
    weights = b"".join(v.detach().cpu().numpy().tobytes() for v in ens.state_dict().values())
    config = {**config, "closure_fingerprint": closure_fingerprint, "dtype": "float64"}
    return save_checkpoint(
        out,
        ens.eval(),
        config=config,
        fingerprint=hashlib.sha256(weights).hexdigest(),
        history=history or {},
    )


def arguments(ap: Any) -> None:
    """The arguments of ``ledmus closure hmm`` (:func:`run`)."""
    ap.add_argument("closure", help="closure checkpoint (kind closure)")
    ap.add_argument("decoder", help="its decoder checkpoint (kind closure_decoder)")
    ap.add_argument("--out", required=True, help="ensemble checkpoint to write (kind closure_hmm)")
    ap.add_argument("--members", type=int, default=4)
    ap.add_argument("--steps", type=int, default=None, help="default: the closure config's")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--nx", type=int, default=100, help="cells of the coupled BGK grid")


def run(args: Any) -> None:
    """``ledmus closure hmm CLOSURE.pt DECODER.pt --out HMM.pt``: build the ensemble
    (:func:`build`); a bad file or option is a ``ValueError``."""
    torch.set_num_threads(1)
    path = build(
        args.closure,
        args.decoder,
        args.out,
        members=args.members,
        steps=args.steps,
        seed=args.seed,
        nx=args.nx,
        progress=True,
    )
    print(f"wrote {path}")
