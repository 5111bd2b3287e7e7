"""The model subcommands of the ``ledmus`` command line (:mod:`ledmus.cli` builds the
parser and handles errors)::

    ledmus train CONFIG.yaml [--out MODEL.pt] [--data DIR] [--device D]
    ledmus learn CONFIG.yaml --out DIR [--strategy deviation|random|both]
    ledmus evaluate MODEL.pt [--data FILE.h5] [--json FILE] [--out-dir DIR] ...
    ledmus <family> <verb> ...     a family's own commands (ledmus closure hmm|joint|lift)

Each dispatches on the model family (:mod:`ledmus.surrogates.family`): the config's or
the checkpoint's ``kind``.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def cmd_train(args: argparse.Namespace) -> None:
    from .surrogates.config import load_config
    from .surrogates.training import train_from_config

    raw = load_config(args.config)
    if args.data:
        raw["data"] = args.data
    kind = raw.get("kind", "led")  # the family; train_from_config dispatches on it
    out = Path(args.out or f"models/{kind}_{raw.get('system', 'model')}.pt")
    # a relative data path is looked up in the working folder, then next to the config
    base = Path(args.config).resolve().parent
    train_from_config(raw, out, device=args.device, progress=not args.quiet, base_dir=base)


def cmd_learn(args: argparse.Namespace) -> None:
    import json

    from .surrogates.config import load_config, resolve
    from .surrogates.family import get_family

    raw = load_config(args.config)
    resolve(raw)  # every field checked before any compute
    learn = get_family(raw.get("kind", "led")).need("learn", "ledmus learn")
    summary = learn(raw, Path(args.out), strategy=args.strategy, progress=not args.quiet)
    print(json.dumps(summary, indent=2))


def cmd_evaluate(args: argparse.Namespace) -> None:
    import json

    from .evaluation import evaluate

    out_dir = Path(args.out_dir) if args.out_dir else None
    result = evaluate(
        args.model,
        args.data,
        out_dir=out_dir,
        t_warm=args.t_warm,
        horizon=args.horizon,
        n_ics=args.n_ics,
        device=args.device,
    )
    if args.json:
        from .atomic import split_series, write_json

        write_json(args.json, split_series(result)[0])  # scalars; series: --out-dir
    summary = {k: v for k, v in result.items() if not isinstance(v, (list, dict))}
    if "rel_l2" in result and "models" in result:  # closure: max rel. L2 per model and ε
        summary["rel_l2_max"] = {
            m: {e: round(r["max"], 5) for e, r in result["rel_l2"][m].items()}
            for m in result["models"]
        }
    if "fair_max" in result:  # Boltzmann closure: max fair error per model and ε
        summary["fair_max"] = {
            m: {e: round(v, 5) for e, v in by_eps.items()}
            for m, by_eps in result["fair_max"].items()
        }
    print(json.dumps(summary, indent=2))


def add_model_commands(sub: Any) -> None:
    """Add ``train``, ``learn`` and ``evaluate`` to the subparsers ``sub``."""
    p = sub.add_parser(
        "train", help="train a model of any family (kind: led, pca, vo, closure, ...)"
    )
    p.add_argument("config", help="YAML config (configs/fhn.yaml, ...)")
    p.add_argument("--out", help="checkpoint path (default models/KIND_SYSTEM.pt)")
    p.add_argument("--data", help="dataset folder (overrides the config's data)")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser(
        "learn", help="concurrent learning of a moment closure (explore, label with BGK, train)"
    )
    p.add_argument("config", help="YAML config with a learn: section (configs/closure_bgk.yaml)")
    p.add_argument("--out", required=True, help="folder for learn_log.json and learn.png")
    p.add_argument(
        "--strategy",
        default="both",
        help="closure: label by ensemble deviation, at random (baseline), or both",
    )
    p.set_defaults(func=cmd_learn)

    p = sub.add_parser(
        "evaluate", help="latent forecasting on test data (paper protocol); closures: against BGK"
    )
    p.add_argument("model", help="checkpoint .pt")
    p.add_argument("--data", help="test trajectory (default: the config's data/test.h5)")
    p.add_argument("--json", help="write all metrics here as JSON")
    p.add_argument("--out-dir", help="folder for metrics.json and plots")
    p.add_argument("--t-warm", type=int, help="warm-up steps (default: the system's protocol)")
    p.add_argument("--horizon", type=int, help="forecast steps (default: the system's protocol)")
    p.add_argument("--n-ics", type=int, help="use only the first N windows")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto")
    p.set_defaults(func=cmd_evaluate)
    add_family_commands(sub)


def add_family_commands(sub: Any) -> None:
    """``ledmus <kind> <verb> ...`` for every registered family with extra commands
    (:attr:`ledmus.surrogates.family.Family.verbs`)."""
    from .surrogates import FAMILIES

    for family in FAMILIES.values():
        if not family.verbs:
            continue
        if family.kind in sub.choices:
            raise ValueError(
                f"model family {family.kind!r} has commands, but {family.kind!r} is already "
                "a ledmus command; give the family another kind"
            )
        p = sub.add_parser(
            family.kind,
            help=f"{family.kind} family: " + ", ".join(v.name for v in family.verbs),
            description=family.description,
        )
        verbs = p.add_subparsers(dest="verb", required=True, metavar="VERB")
        for verb in family.verbs:
            v = verbs.add_parser(verb.name, help=verb.help, description=verb.help)
            verb.arguments(v)
            v.set_defaults(func=verb.run)
