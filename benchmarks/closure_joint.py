"""Joint against sequential training of the ML moment closure (issue 10 item 3; seed
002: the generalised moments learned by an autoencoder together with the decoder).

*Sequential* (shipped): models/closure_bgk.pt (encoder + closure, closure loss only) and
models/closure_bgk_decoder.pt (decoder on the frozen encoder).  *Joint*: the same
config, data, steps and learning rate with the decoder's loss added
(``ledmus closure joint``, λ_rec = 1; trained here into ``--joint``
unless that folder holds it already).  For both:

- the acceptance protocol of the closure (benchmarks/closure_bgk.py, ML rows only): max
  relative L2 of ρ, u, T at t = 0.1 over the 13 held-out profiles, per ε;
- the decoder on held-out BGK snapshots (tests/test_closure_lift.py: seeds 98, 99, two
  runs at ε in [1e-3, 1e-2] and two in [1, 10]): relative L2 of the lifted f, of the
  Maxwellian of the same moments, and of W after restrict ∘ lift.

Writes ``benchmarks/out/closure_joint.json``.

    python benchmarks/closure_joint.py --joint DIR     # about 20 minutes on one core
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
import yaml
from _provenance import ROOT, write_result

from ledmus import solvers
from ledmus.surrogates.checkpoint import load_model
from ledmus.surrogates.closure.evaluate import evaluate_closure
from ledmus.surrogates.closure.joint import train_joint
from ledmus.surrogates.closure.lift import lift, load_decoder, restrict, snapshots


def decoder_errors(net, dec) -> list[dict[str, float]]:
    held_out = (snapshots(2, 2, 64, (1e-3, 1e-2), 0.1, 4, seed=99)
                + snapshots(2, 2, 64, (1.0, 10.0), 0.1, 4, seed=98))  # fmt: skip
    out = []
    for eps, f in held_out:
        bgk = solvers.make("bgk", kn=eps, nx=64, bc="periodic")
        Q = restrict(net, f, bgk)
        f2 = lift(dec, Q, bgk, eps)
        W2 = restrict(net, f2, bgk)[:, 3:]
        out.append({"eps": eps, "f": float(np.linalg.norm(f2 - f) / np.linalg.norm(f)),
                    "maxwellian": float(np.linalg.norm(bgk.maxwellian_of_moments(Q[:, :3]) - f)
                                        / np.linalg.norm(f)),
                    "W": float(np.linalg.norm(W2 - Q[:, 3:]) / np.linalg.norm(Q[:, 3:]))})  # fmt: skip
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--joint",
        default=str(ROOT / "runs" / "closure_joint"),
        help="folder of the joint closure.pt/decoder.pt (trained there if absent)",
    )
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "out" / "closure_joint.json"))
    args = ap.parse_args()
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    joint = Path(args.joint)
    if not (joint / "closure.pt").is_file():
        config = yaml.safe_load((ROOT / "configs" / "closure_bgk.yaml").read_text())
        config.pop("learn", None)
        train_joint(config, joint, progress=True)
    pairs = {"sequential": (ROOT / "models" / "closure_bgk.pt",
                            ROOT / "models" / "closure_bgk_decoder.pt"),
             "joint": (joint / "closure.pt", joint / "decoder.pt")}  # fmt: skip
    result: dict = {"variants": {}}
    for name, (cpath, dpath) in pairs.items():
        net, payload = load_model(cpath)
        dec = load_decoder(dpath, payload)
        ev = evaluate_closure(net, models=("ml",), progress=True)
        result["variants"][name] = {
            "closure_path": str(cpath), "decoder_path": str(dpath),
            "fingerprint": payload["fingerprint"],
            "train_config": payload["config"], "eps": ev["eps"],
            "rel_l2_max": {k: r["max"] for k, r in ev["rel_l2"]["ml"].items()},
            "rel_l2": ev["rel_l2"]["ml"], "failures": ev["failures"],
            "decoder": decoder_errors(net, dec),
        }  # fmt: skip
        row = "  ".join(f"{k}: {100 * v:.2f}%" for k, v in result["variants"][name]
                        ["rel_l2_max"].items())  # fmt: skip
        print(f"{name:10s} closure max rel. L2  {row}")
        for d in result["variants"][name]["decoder"]:
            print(f"{name:10s} eps {d['eps']:.3g}: f {d['f']:.4f} (Maxwellian "
                  f"{d['maxwellian']:.4f}), W {d['W']:.3f}")  # fmt: skip
    result.update(threads=torch.get_num_threads(), wall_s_total=time.perf_counter() - t0)
    write_result(args.out, result)


if __name__ == "__main__":
    main()
