"""Demonstration (e) of issue 9: ablations of the adaptive schedule on FHN.

The ensemble model (models/led_fhn_ens.pt, K = 5 LSTMs) from five initial conditions:
y05 (the test state), three the model never saw (its mirror image, y05 rolled by a
quarter, a Gaussian bump on the rest state; benchmarks/ood_fhn.py), and y05 with d_u
raised to 1.5 from t = t_end/3 (``regime``).  Side by side with the micro-only run
(MNAD u over the run after the warm-up, macro share):

1. acceptance test: comparison error only (``max_error``, ``max_uncertainty: 0``),
   ensemble uncertainty only (``max_uncertainty``, ``max_error: 0``), both;
2. ensemble size K = 1, 3, 5 (the first K members of the trained ensemble; K = 1 is
   one LSTM, no uncertainty), both criteria;
3. symmetry augmentation (``online_augment``: every micro window is buffered with its
   mirror image x -> L - x) on and off, deterministic online training, both criteria,
   on the mirror and regime cases.

    OMP_NUM_THREADS=1 python benchmarks/ablation_fhn.py --out benchmarks/out/ablation_fhn.json
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from _provenance import ROOT, write_result
from adaptive_fhn import blocks, run
from ood_fhn import kinds

from ledmus import solvers
from ledmus.coupler.run import micro_reference
from ledmus.coupler.settings import read_ymmsl_settings, validate
from ledmus.surrogates.checkpoint import load_model, save_checkpoint
from ledmus.surrogates.ensemble import EnsembleRNN
from ledmus.surrogates.led import LED

MAX_ERROR = 0.005  # configs/adaptive_fhn.ymmsl
# measured spread over one 10-step block (tests/test_adaptive.py): 5e-7 on y05,
# 1.3e-5 at d_u = 1.5, 2.4e-4 on the mirrored y05
MAX_UNCERTAINTY = 5e-6


def first_members(path: Path, k: int, out: Path) -> Path:
    """A checkpoint of the LED in ``path`` whose propagator is the first ``k`` members of
    its ensemble (``k = 1``: member 0 as a single LatentRNN)."""
    led, payload = load_model(path)
    ens = led.rnn
    if not isinstance(ens, EnsembleRNN) or ens.head != "point" or not 1 <= k <= ens.members:
        raise ValueError(f"{path} needs a point-head ensemble of at least {k} members")
    spec = {**payload["spec"], "rnn": {**payload["spec"]["rnn"], "ensemble": k}}
    small = LED(spec)
    state = {n: v for n, v in led.state_dict().items() if not n.startswith("rnn.")}
    small.load_state_dict(state, strict=False)
    with torch.no_grad():
        if k == 1:
            small.rnn.load_state_dict(ens.member(0).state_dict())
        else:
            for j in range(k):
                small.rnn._put(j, ens.member(j), None)
            small.rnn.latent_var.copy_(ens.latent_var)
    small = small.to(next(led.parameters()).dtype)
    return save_checkpoint(out, small, config=payload["config"],
                           fingerprint=payload["fingerprint"])  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks/out/ablation_fhn.json")
    ap.add_argument("--t-end", type=float, default=3000.0)
    args = ap.parse_args()
    torch.set_num_threads(1)
    base = read_ymmsl_settings(ROOT / "configs/adaptive_fhn.ymmsl")
    online = read_ymmsl_settings(ROOT / "configs/online_fhn.ymmsl")
    y05 = np.asarray(solvers.load_fhn_ic("y05"), dtype=np.float64).reshape(2, 101)
    ics = {"y05": y05, **{k: v for k, v in kinds().items() if k != "v_halved"}, "regime": y05}
    regime = f"{{{args.t_end / 3:g}: {{d_u: 1.5}}}}"
    out = {"t_end": args.t_end, "max_error": MAX_ERROR, "max_uncertainty": MAX_UNCERTAINTY,
           "regime_schedule": regime, "cases": {}}  # fmt: skip
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        ens = ROOT / "models/led_fhn_ens.pt"
        model = {k: str(first_members(ens, k, Path(tmp) / f"k{k}.pt")) for k in (1, 3)}
        model[5] = str(ens)
        both = {"max_error": MAX_ERROR, "max_uncertainty": MAX_UNCERTAINTY}
        variants = {
            "error_only": (5, {"max_error": MAX_ERROR, "max_uncertainty": 0.0}, None),
            "uncertainty_only": (5, {"max_error": 0.0, "max_uncertainty": MAX_UNCERTAINTY}, None),
            "both_K5": (5, both, None),
            "both_K3": (3, both, None),
            "both_K1": (1, both, None),
            "online_augment_off": (5, both, False),
            "online_augment_on": (5, both, True),
        }
        for name, ic in ics.items():
            path = Path(tmp) / f"{name}.npy"
            np.save(path, ic)
            common = dict(t_end=args.t_end, compare=False, plots=False, ic=str(path),
                          param_schedule=regime if name == "regime" else "")  # fmt: skip
            members = np.arange(1)
            ref, ref_wall = micro_reference(validate({**base, **common}), members)
            case = {"micro_only_wall_s": ref_wall}
            for vname, (k, gate, augment) in variants.items():
                if augment is not None and name not in ("mirror", "regime"):
                    continue
                raw = {**base, **common, **gate, "model": model[k]}
                if augment is not None:
                    raw = {**online, **raw, "online": "deterministic", "online_augment": augment}
                settings = validate(raw)
                coord, wall = run(settings, members)
                rec = coord.recorder
                _, _, total = blocks(
                    rec.states, ref, rec.source, settings.schedule.n_warm + 1, 1000
                )
                case[vname] = {"mnad_u": total, "macro_fraction": float((rec.source == 1).mean()),
                               "speedup": ref_wall / wall,
                               "interventions": dict(getattr(coord, "interventions", {}))}  # fmt: skip
                print(f"{name:12s} {vname:18s} MNAD u {total:.4f}  macro "
                      f"{case[vname]['macro_fraction']:.2f}  S {ref_wall / wall:.2f}", flush=True)  # fmt: skip
            out["cases"][name] = case
    out["wall_s"] = time.perf_counter() - t0
    write_result(args.out, out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
