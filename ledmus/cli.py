"""The ``ledmus`` command line.

Subcommands::

    ledmus simulate SYSTEM --t-end T --out FILE.h5 [--ic NAME|FILE.npy] [--batch B]
                    [--seed S] [--discard T0] [--param k=v ...] [--lifting STRATEGY]
    ledmus dataset SYSTEM --out DIR [--scale paper|small] [--seed S] [--runs N]
    ledmus train CONFIG.yaml [--out MODEL.pt]        (and learn, evaluate: cli_models)
    ledmus run MODEL.ymmsl [--run-dir DIR] [--set name=value ...]
    ledmus systems

Bad input (an unknown system, parameter or initial condition, a ``t_end`` that is not
a multiple of Δt, ...) ends with one line ``ledmus: error: ...`` and exit status 2.
``-q`` prints nothing on success but warnings; progress bars are drawn only on a terminal
unless ``LEDMUS_PROGRESS=1`` (``=0``: never; :mod:`ledmus.progress`).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from . import __version__, systems
from .cli_models import add_model_commands
from .validation import load_yaml

log = logging.getLogger("ledmus")

#: what ``-q`` leaves; progress bars also need a terminal or LEDMUS_PROGRESS=1 (ledmus.progress)
QUIET_HELP = "only warnings and errors: no INFO lines, no progress bars, no summary"


def parse_params(items: Sequence[str], option: str = "--param") -> dict[str, Any]:
    """``["d_u=2", "amplitude=[1,0,0]", "tol=1e-9"]`` -> ``{"d_u": 2, "amplitude": [1, 0, 0],
    "tol": 1e-09}``: YAML values, numbers read as users write them (``1e-9``, ``.5``,
    ``5.``; :func:`ledmus.validation.load_yaml`), mappings without extra quotes."""
    params: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"{option} {item!r} must look like name=value")
        try:
            params[key.strip()] = load_yaml(value)
        except yaml.YAMLError as exc:
            where = str(getattr(exc, "problem", "") or "not YAML")
            raise ValueError(
                f"{option} {key.strip()}: cannot read value {value!r} ({where}); write a "
                f"mapping as {option} '{key.strip()}={{500: {{d_u: 1.5}}}}' (the whole item in "
                "one pair of shell quotes), a list as [1, 2], a text with ':' or '#' as \"'...'\""
            ) from None
    return params


def _load_ic(ic: str | None) -> str | np.ndarray | None:
    if ic is None or not ic.endswith(".npy"):
        return ic
    path = Path(ic)
    if not path.is_file():
        raise ValueError(f"--ic file {ic!r} does not exist")
    return np.load(path, allow_pickle=False)


def cmd_simulate(args: argparse.Namespace) -> None:
    from .trajectory import write_trajectory

    if args.seed < 0:
        raise ValueError(f"--seed must be an integer >= 0, got {args.seed}")
    from .rundir import prepare_output_file
    from .solvers.lifting import Lifting

    solver = systems.get(args.system).make(**parse_params(args.param))
    prepare_output_file(args.out, overwrite=args.overwrite)
    rng = np.random.default_rng(args.seed)
    lifting = Lifting(args.lifting or systems.get(args.system).lifting).check(solver)
    ic = solver.initial_condition(_load_ic(args.ic), args.batch, rng)
    t, states = solver.rollout(
        ic, args.t_end, rng, discard=args.discard, progress=not args.quiet, lifting=lifting
    )
    extra = getattr(solver, "trajectory_attrs", dict)()  # e.g. bgk's velocity grid
    write_trajectory(
        args.out, states, t, solver, args.seed, attrs={"discard": args.discard, **extra}
    )
    log.info("wrote %s: states %s, t = %g … %g", args.out, states.shape, t[0], t[-1])


def cmd_dataset(args: argparse.Namespace) -> None:
    from .datasets import make_dataset

    manifest = make_dataset(args.system, args.out, scale=args.scale, seed=args.seed, runs=args.runs)
    for name, split in manifest["splits"].items():
        log.info("%s/%s: %s %s", args.out, split["file"], name, tuple(split["shape"]))


def cmd_run(args: argparse.Namespace) -> None:
    import json
    import time

    from .coupler.engine import run_embedded
    from .coupler.mpi import world_comm
    from .coupler.settings import read_ymmsl_settings, validate

    comm = world_comm()
    rank = 0 if comm is None else comm.Get_rank()
    if comm is not None:
        for handler in logging.getLogger().handlers:
            handler.setFormatter(logging.Formatter(f"[rank {rank}] %(name)s: %(message)s"))
    path = Path(args.ymmsl)
    raw = read_ymmsl_settings(path)
    raw.update(parse_settings(args.set))
    if args.overwrite:
        raw["overwrite"] = True
    if raw.get("coupling") == "hybrid":
        return _run_hybrid(raw, path, args)
    settings = validate(
        raw, search=[Path.cwd(), path.resolve().parent, path.resolve().parent.parent]
    )
    run_dir = Path(args.run_dir or f"runs/{path.stem}_{time.strftime('%Y%m%d_%H%M%S')}")
    if comm is not None:
        run_dir = Path(comm.bcast(str(run_dir), root=0))
    log.info("%s: %s, run directory %s", path.name, settings.micro.system, run_dir)
    result = run_embedded(settings, run_dir, comm=comm, progress=not args.quiet)
    if rank == 0 and not args.quiet:  # -q: nothing on success (metrics.json holds it)
        summary = {k: v for k, v in result.items() if not isinstance(v, (list, dict))}
        summary.update(
            {k: v for k, v in result.get("errors", {}).items() if not isinstance(v, (list, dict))}
        )
        print(json.dumps(summary, indent=2))
        log.info("outputs in %s: %s", run_dir, headline(result))


def _run_hybrid(raw: dict[str, Any], path: Path, args: argparse.Namespace) -> None:
    """``ledmus run`` of a ``coupling: hybrid`` job (the cell-local hybrid, one process)."""
    import json
    import time

    from .coupler.hybrid_run import run_hybrid
    from .rundir import prepare_run_dir

    run_dir = Path(args.run_dir or f"runs/{path.stem}_{time.strftime('%Y%m%d_%H%M%S')}")
    prepare_run_dir(run_dir, overwrite=bool(raw.get("overwrite", False)))
    search = [Path.cwd(), path.resolve().parent, path.resolve().parent.parent]
    result = run_hybrid(raw, run_dir / "output", search=search, progress=not args.quiet)
    if not args.quiet:
        print(json.dumps({k: v for k, v in result.items() if not isinstance(v, list)}, indent=2))
        log.info("outputs in %s", run_dir / "output")


def headline(result: dict[str, Any]) -> str:
    """One line: wall time, speed-up and the scalar errors of a run's metrics."""
    parts = [f"wall {result['wall_s']:.2f} s"]
    if result.get("speedup") is not None:
        parts.append(f"speed-up {result['speedup']:.2f}")
    errors = result.get("errors", {})
    parts += [f"{k} {v:.4g}" for k, v in errors.items() if isinstance(v, (int, float))]
    return ", ".join(parts)


def parse_settings(items: Sequence[str]) -> dict[str, Any]:
    """``--set name=value`` items (YAML values), naming ``--set`` in errors."""
    for item in items:
        key, sep, _ = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--set {item!r} must look like name=value")
    return parse_params(items, "--set")


def cmd_launch(args: argparse.Namespace) -> None:
    """``ledmus launch X.ymmsl --run-dir D`` (:func:`main` hands it to
    :mod:`ledmus.coupler.launch` before parsing; kept for ``ledmus --help``)."""
    from .coupler.launch import main as launch_main

    raise SystemExit(launch_main(["--quiet", *args.rest] if args.quiet else args.rest))


def cmd_run_dir(args: argparse.Namespace) -> None:
    """``ledmus run-dir D [--overwrite]``: make ``D`` a run directory for a plain
    ``muscle_manager --run-dir D`` started next (``&&``).  muscle_manager 0.11 hangs on a
    folder holding an earlier run's ``instances/``; this refuses such a folder with one
    line (exit 2, so the manager never starts) or, with ``--overwrite``, removes what
    that ledmus run wrote (:func:`ledmus.rundir.prepare_muscle3_run_dir`)."""
    from .rundir import prepare_muscle3_run_dir

    prepare_muscle3_run_dir(args.path, overwrite=args.overwrite, for_muscle_manager=True)


def cmd_decode(args: argparse.Namespace) -> None:
    from .coupler.decode import decode_run

    path = decode_run(args.run_dir, device=args.device)
    log.info("decoded the macro states of %s", path)


def cmd_systems(args: argparse.Namespace) -> None:
    """One aligned row per registered system: name, layout, state shape, dt, Δt, description."""
    rows = [("name", "layout", "state", "dt", "Δt", "description")]
    for name in systems.names():
        spec = systems.get(name)
        solver = spec.make()
        shape = "(" + ", ".join(map(str, solver.state_shape)) + ")"
        rows.append(
            (name, spec.layout, shape, f"{solver.dt:g}", f"{solver.dt_coarse:g}", spec.description)
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        print(
            "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=False)) + "  " + row[-1]
        )


def build_parser() -> argparse.ArgumentParser:
    from . import datasets

    parser = argparse.ArgumentParser(
        prog="ledmus", description="Learned effective dynamics coupled to micro solvers."
    )
    parser.add_argument("--version", action="version", version=f"ledmus {__version__}")
    parser.add_argument("-q", "--quiet", action="store_true", help=QUIET_HELP)
    # -q also after the subcommand; SUPPRESS keeps the value given before it
    quiet = argparse.ArgumentParser(add_help=False)
    quiet.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        default=argparse.SUPPRESS,
        help=QUIET_HELP,
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add = sub.add_parser

    def sub_add_parser(name: str, **kwargs: Any) -> argparse.ArgumentParser:
        return add(name, parents=[quiet], **kwargs)

    sub.add_parser = sub_add_parser  # type: ignore[method-assign]

    p = sub.add_parser("simulate", help="one micro-solver run written to HDF5")
    p.add_argument("system", help=f"one of: {', '.join(systems.names())}")
    p.add_argument("--t-end", type=float, required=True, help="simulated time (multiple of Δt)")
    p.add_argument("--out", required=True, help="output .h5 file (new unless --overwrite)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    p.add_argument("--ic", help="initial condition: a name (e.g. y05 for fhn, random) or FILE.npy")
    p.add_argument("--batch", type=int, default=1, help="ensemble size B (default 1)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--discard", type=float, default=0.0, help="transient to run before recording")
    p.add_argument("--param", action="append", default=[], metavar="K=V", help="solver parameter")
    p.add_argument(
        "--lifting",
        help="how the initial condition becomes the solver's state: "
        "equilibrium, chapman_enskog, constrained_runs, newton_krylov (default: "
        "the system's)",
    )
    p.set_defaults(func=cmd_simulate)

    p = sub.add_parser("dataset", help="the paper's train/val/test splits")
    p.add_argument("system", help=f"one of: {', '.join(datasets.with_dataset())}")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--scale", choices=datasets.SCALES, default="paper")
    p.add_argument("--seed", type=int, default=0, help="base seed (default 0)")
    p.add_argument(
        "--runs",
        type=int,
        help="independent runs in each of the train and validation splits, each from its "
        "own random initial condition (default: the paper's; ks: 1)",
    )
    p.set_defaults(func=cmd_dataset)

    add_model_commands(sub)  # train, learn, evaluate: ledmus/cli_models.py

    p = sub.add_parser("run", help="run a coupled yMMSL model in one process (embedded engine)")
    p.add_argument("ymmsl", help="yMMSL v0.2 file (configs/led_fhn.ymmsl, ...)")
    p.add_argument(
        "--run-dir",
        help="output folder (default runs/NAME_TIMESTAMP); must be new or empty unless --overwrite",
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace an earlier ledmus run in --run-dir: removes only what it "
        "wrote (its .ledmus-run.json names it); other folders are refused",
    )
    p.add_argument("--set", action="append", default=[], metavar="K=V", help="override a setting")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser(
        "launch",
        add_help=False,
        help="run a yMMSL model under MUSCLE3 (muscle_manager --start-all) so "
        "that SIGTERM stops every process; see docs/guide/muscle3_operations.md",
    )
    p.add_argument("rest", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    p.set_defaults(func=cmd_launch)

    p = sub.add_parser(
        "run-dir",
        help="prepare a run directory for a plain muscle_manager "
        "(ledmus run-dir D && muscle_manager --start-all X.ymmsl --run-dir D)",
    )
    p.add_argument("path", help="the run directory (created if new)")
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace an earlier ledmus run in it (what it wrote only)",
    )
    p.set_defaults(func=cmd_run_dir)

    p = sub.add_parser("decode", help="fill the states of a run recorded with record: latents")
    p.add_argument("run_dir", help="run directory holding trajectory.h5")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto")
    p.set_defaults(func=cmd_decode)

    p = sub.add_parser("systems", help="list the registered systems")
    p.set_defaults(func=cmd_systems)
    return parser


def configure_logging(quiet: bool) -> None:
    """Warnings from everything; ledmus's own INFO lines unless ``quiet``.  Libraries
    (yatiml logs every YAML node it reads at INFO, libmuscle, matplotlib) stay quiet.
    Progress bars: none when ``quiet`` (:mod:`ledmus.progress`)."""
    from .progress import set_quiet

    logging.basicConfig(level=logging.WARNING, format="%(name)s: %(message)s", force=True)
    logging.getLogger("ledmus").setLevel(logging.WARNING if quiet else logging.INFO)
    set_quiet(quiet)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["launch"]:  # its own parser (options such as --help pass through)
        from .coupler.launch import main as launch_main

        return launch_main(argv[1:])
    from .plugins import load_plugins

    try:  # before the parser: a plug-in family may add commands
        load_plugins()
    except ValueError as exc:
        print(f"ledmus: error: {exc}", file=sys.stderr)
        return 2
    parser = build_parser()
    args = parser.parse_args(argv)
    configure_logging(args.quiet)
    from .rundir import terminate_as_exception

    try:
        with terminate_as_exception():  # SIGTERM unwinds: temporary files are removed
            args.func(args)
    except (ValueError, FloatingPointError, OSError, RuntimeError) as exc:
        print(f"ledmus: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("ledmus: interrupted; no partial output was kept", file=sys.stderr)
        return 130
    except SystemExit as exc:
        if isinstance(exc.code, int) and exc.code > 128:  # a signal, see terminate_as_exception
            print("ledmus: terminated; no partial output was kept", file=sys.stderr)
        raise
    return 0


if __name__ == "__main__":
    sys.exit(main())
