"""The registration records of the moment-closure families (:mod:`ledmus.surrogates.family`):

- ``closure``: the ML moment closure :class:`.ml.MomentNet` (``ledmus train``, ``ledmus
  evaluate`` against BGK, ``ledmus learn``), with the commands ``ledmus closure lift``
  (train its decoder), ``ledmus closure joint`` (encoder, closure and decoder trained
  together) and ``ledmus closure hmm`` (build the ensemble of the HMM coupling);
- ``closure_decoder``: the decoder ``h(v; U, W)`` (:class:`.lift.MomentDecoder`);
- ``closure_hmm``: the closure ensemble (:class:`.hmm.ClosureEnsemble`), coupled as
  :class:`.macro.ClosureMacro`;
- ``closure_boltzmann``: the ML moment closure of the 2-D-velocity Boltzmann gas
  (:class:`.boltzmann_ml.BoltzmannMomentNet`; ``ledmus train`` on a ``ledmus dataset
  boltzmann`` split, ``ledmus evaluate`` against the Boltzmann solver, ``ledmus learn``
  with Boltzmann bursts), with the command
  ``ledmus closure_boltzmann hmm`` (build the ensemble of its hybrid);
- ``closure_boltzmann_hmm``: that ensemble (:class:`.hmm_boltzmann.BoltzmannClosureEnsemble`),
  coupled to the Boltzmann solver by the cell-local hybrid.

Importing :mod:`ledmus.surrogates` registers them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..family import EvaluateOptions, Family, TrainOptions, Verb, register_family
from . import hmm, hmm_boltzmann, joint, lift
from .boltzmann_ml import BoltzmannMomentNet
from .hmm import ClosureEnsemble
from .hmm_boltzmann import BoltzmannClosureEnsemble
from .lift import MomentDecoder
from .macro import ClosureMacro
from .ml import MomentNet
from .train import resolve_config


def train(raw_config: dict[str, Any], out: Path, options: TrainOptions) -> Path:
    """The ``closure`` family's ``train``: BGK data generated in process
    (:func:`.train.train_closure`; the options do not apply)."""
    from .train import train_closure

    return train_closure(raw_config, out)


def evaluate(
    payload: dict[str, Any], model_path: str | Path, data: Any, options: EvaluateOptions
) -> dict[str, Any]:
    """The ``closure`` family's ``evaluate``: the acceptance protocol
    (:func:`.evaluate.evaluate_closure`): per ε, ``rel_l2`` of ρ, u, T for ``ml``,
    ``euler`` and ``ns`` against BGK on held-out profiles generated in process."""
    if data is not None:
        raise ValueError(
            "--data is not used for a closure model: it is evaluated on BGK runs of the "
            "held-out profiles generated in process"
        )
    from ...atomic import write_json
    from ..checkpoint import model_from_payload
    from .evaluate import evaluate_closure

    model = model_from_payload(payload, model_path)
    result = evaluate_closure(model, progress=True)
    out_dir = options.out_dir
    if out_dir is not None:
        write_json(out_dir / "metrics.json", result)
        if options.plots:
            from .plots import plot_errors, plot_weights

            plot_errors(result, out_dir / "rel_l2.png")
            plot_weights(model, out_dir / "weights.png")
    return result


def learn(
    raw_config: dict[str, Any], out_dir: Path, *, strategy: str = "both", progress: bool = True
) -> dict[str, Any]:
    """The ``closure`` family's ``learn`` (:func:`.learn.learn`; ``strategy``:
    ``deviation``, ``random`` or ``both``): the last iteration of each strategy."""
    from .learn import learn as run_learn
    from .learn import strategies_of

    result = run_learn(raw_config, out_dir, strategies_of(strategy), progress=progress)
    last = {s: its[-1] for s, its in result["runs"].items() if its}
    keys = ("iteration", "accurate_ratio", "test_error")
    return {s: {k: e[k] for k in keys} for s, e in last.items()}


def _verb(name: str, module: Any, help: str) -> Verb:
    return Verb(name, help, module.arguments, module.run)


CLOSURE_FAMILY = register_family(
    Family(
        "closure",
        network=MomentNet,
        resolve=resolve_config,
        train=train,
        evaluate=evaluate,
        learn=learn,
        verbs=(
            _verb("lift", lift, "train the decoder h(v; U, W) of a closure checkpoint"),
            _verb("joint", joint, "train encoder, closure and decoder jointly"),
            _verb("hmm", hmm, "build the closure ensemble of the HMM coupling"),
        ),
        description="ML moment closure of the BGK model (W. E's concurrent learning)",
    )
)
DECODER_FAMILY = register_family(
    Family(
        "closure_decoder",
        network=MomentDecoder,
        description="decoder h(v; U, W) of a closure (ledmus closure lift)",
    )
)
HMM_FAMILY = register_family(
    Family(
        "closure_hmm",
        network=ClosureEnsemble,
        macro=ClosureMacro,
        description="closure ensemble coupled with BGK (ledmus closure hmm)",
    )
)


def train_boltzmann(raw_config: dict[str, Any], out: Path, options: TrainOptions) -> Path:
    """The ``closure_boltzmann`` family's ``train`` (:func:`.train_boltzmann.train_boltzmann_closure`;
    a relative ``data.dataset`` is also looked up next to the config)."""
    from .train_boltzmann import train_boltzmann_closure

    return train_boltzmann_closure(
        raw_config, out, base_dir=options.base_dir, progress=options.progress
    )


def evaluate_boltzmann(
    payload: dict[str, Any], model_path: str | Path, data: Any, options: EvaluateOptions
) -> dict[str, Any]:
    """The ``closure_boltzmann`` family's ``evaluate``: the acceptance protocol against the
    Boltzmann solver (:func:`.evaluate_boltzmann.evaluate`), cases generated in process."""
    if data is not None:
        raise ValueError(
            "--data is not used for a closure_boltzmann model: it is evaluated on Boltzmann "
            "runs of the held-out cases generated in process"
        )
    from ...atomic import write_json
    from ..checkpoint import model_from_payload
    from .evaluate_boltzmann import evaluate

    result = evaluate(model_from_payload(payload, model_path), progress=True)
    if options.out_dir is not None:
        write_json(options.out_dir / "metrics.json", result)
    return result


def _resolve_boltzmann(raw: dict[str, Any]) -> dict[str, Any]:
    from .learn_boltzmann import resolve_learn
    from .train_boltzmann import resolve_config as resolve

    cfg = resolve(raw)
    resolve_learn(cfg["learn"])  # every field checked before any compute
    return cfg


def learn_boltzmann(
    raw_config: dict[str, Any], out_dir: Path, *, strategy: str = "both", progress: bool = True
) -> dict[str, Any]:
    """The ``closure_boltzmann`` family's ``learn`` (:func:`.learn_boltzmann.learn`,
    ``strategy``: ``deviation``, ``random`` or ``both``): per strategy the starting
    ensemble's and the last iteration's accurate ratio and test error."""
    from .learn import strategies_of
    from .learn_boltzmann import learn as run_learn

    result = run_learn(raw_config, out_dir, strategies_of(strategy), progress=progress)
    keys = ("accurate_ratio", "test_error")
    out = {}
    for s, r in result["runs"].items():
        last = r["iterations"][-1] if r["iterations"] else r["initial"]
        out[s] = {
            "initial": {k: r["initial"][k] for k in keys},
            "last": {"iteration": last.get("iteration", -1), **{k: last[k] for k in keys}},
        }
    return out


BOLTZMANN_FAMILY = register_family(
    Family(
        "closure_boltzmann",
        network=BoltzmannMomentNet,
        resolve=_resolve_boltzmann,
        train=train_boltzmann,
        evaluate=evaluate_boltzmann,
        learn=learn_boltzmann,
        verbs=(
            _verb(
                "hmm",
                hmm_boltzmann,
                "build the closure ensemble of the hybrid with the Boltzmann solver",
            ),
        ),
        description="ML moment closure of the 2-D-velocity Boltzmann gas (Galilean moments)",
    )
)
BOLTZMANN_HMM_FAMILY = register_family(
    Family(
        "closure_boltzmann_hmm",
        network=BoltzmannClosureEnsemble,
        description="Boltzmann closure ensemble of the hybrid (ledmus closure_boltzmann hmm)",
    )
)

__all__ = [
    "BOLTZMANN_FAMILY",
    "BOLTZMANN_HMM_FAMILY",
    "CLOSURE_FAMILY",
    "DECODER_FAMILY",
    "HMM_FAMILY",
]
