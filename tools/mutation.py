"""Mutation testing of ledmus with mutmut 3, one target at a time.

Usage (from the repository root, in the project's venv)::

    python tools/mutation.py                 # every target in TARGETS
    python tools/mutation.py metrics         # named targets only
    python tools/mutation.py metrics -j 1 --fail-under 90

A *target* is the module file(s) to mutate (optionally only some of their functions:
``Target.functions``, passed to ``mutmut run`` as mutant-name patterns) and the fast
unit-test files that must kill their mutants; adding one is one line in ``TARGETS``.  For each target the script

1. builds a private sandbox ``mutants/<target>/`` (git-ignored): a snapshot of ``ledmus/``,
   ``tests/`` and the data they read (``models/``, ``configs/``) from the working tree and a copy of
   ``pyproject.toml`` with a generated ``[tool.mutmut]`` section.  mutmut 3 reads its
   configuration only from the current directory (``[tool.mutmut]`` in ``pyproject.toml``,
   else ``[mutmut]`` in ``setup.cfg``) and writes its mutated tree to ``./mutants/``, so a
   sandbox per target keeps the real checkout untouched and the targets' caches apart.
   The whole package is copied (``source_paths``) so that ``import ledmus`` resolves to
   the mutated copy, but only the target's modules are mutated (``only_mutate``); only
   the target's tests run (``pytest_add_cli_args_test_selection``).
2. runs ``mutmut run`` there from scratch (the sandbox is rebuilt every time: mutmut keeps
   a cached verdict until the mutated *function* changes, so an improved test would never
   re-check an old survivor), with ``OMP_NUM_THREADS=1``.
3. prints and writes ``benchmarks/out/mutation_<target>.json``: mutants total, killed,
   survived (with their ``mutmut show`` diffs), timeouts, the other statuses, the raw
   ``killed / total`` and the score ``killed / (total - equivalent)``, where *equivalent*
   are the surviving mutants listed in ``EQUIVALENT`` (no input can tell them from the
   original), each with its reason.  Timeouts count as neither killed nor equivalent.

mutmut 3 leaves decorated functions unmutated (all but a lone ``@staticmethod`` or
``@classmethod``): properties and ``@torch.no_grad()`` methods are outside every score; their
tests still run.

The snapshot is of the working tree, uncommitted edits included (``git_dirty`` in the JSON
says whether the target's modules or tests differ from ``git_commit``).  The sandbox is left
in place for inspection: ``cd mutants/<target> && mutmut browse`` or ``mutmut show NAME``.
Options: ``-j N`` parallel mutant workers (default 2), ``--fail-under PCT`` exit 1 when a
score is below PCT.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import fnmatch
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import NamedTuple

ROOT = Path(__file__).resolve().parent.parent
SANDBOXES = ROOT / "mutants"
OUT = ROOT / "benchmarks" / "out"
PACKAGE = "ledmus"
COPIED = (PACKAGE, "tests")  # snapshot into each sandbox (tests/: conftest.py, reference.py)
# also snapshot, and copied on into mutmut's tree: the shipped checkpoints and the configs
# (yMMSL / YAML) the coupler's tests read (tests/test_adaptive.py: configs/adaptive_fhn.ymmsl)
DATA = ("models", "configs")


class Target(NamedTuple):
    modules: tuple[str, ...]  # files to mutate, relative to the repository root
    tests: tuple[str, ...]  # test files (pytest node ids) that must kill their mutants
    # only these functions ("name" or "Class.method") of the modules; () every function
    functions: tuple[str, ...] = ()

    @property
    def files(self) -> tuple[str, ...]:
        return (*self.modules, *(t.split("::")[0] for t in self.tests))

    def patterns(self) -> list[str]:
        """mutmut mutant-name patterns of :attr:`functions` (``mutmut run PATTERN...``):
        ``pkg.mod.x_func__mutmut_*``, ``pkg.mod.xǁClassǁmethod__mutmut_*``."""
        out = []
        for module in self.modules:
            dotted = module.removesuffix(".py").replace("/", ".")
            for f in self.functions:
                cls, _, name = f.rpartition(".")
                mangled = f"xǁ{cls}ǁ{name}" if cls else f"x_{name}"
                out.append(f"{dotted}.{mangled}__mutmut_*")
        return out

    def selects(self, mutant: str) -> bool:
        return not self.functions or any(fnmatch.fnmatch(mutant, p) for p in self.patterns())


_PARTS = "tests/test_coupler_parts.py"
TARGETS: dict[str, Target] = {
    "metrics": Target(("ledmus/metrics.py",), ("tests/test_metrics.py", "tests/test_restart.py")),
    "schedule": Target(("ledmus/coupler/schedule.py",), ("tests/test_schedule.py",)),
    "mappers": Target(("ledmus/coupler/mappers.py",), (_PARTS, "tests/test_lift_mapper.py")),
    "messages": Target(("ledmus/coupler/messages.py",), (_PARTS, "tests/test_lift_tally.py")),
    "protocol": Target(
        ("ledmus/surrogates/macro.py", "ledmus/surrogates/led_macro.py"),
        (_PARTS, "tests/test_pca.py", "tests/test_member_subsets.py"),
    ),
    # the adaptive policy's decisions, by the stub-component tests (milliseconds a run)
    "adaptive": Target(
        ("ledmus/coupler/adaptive.py", "ledmus/systems/suites.py"),
        ("tests/test_adaptive_decisions.py",),
        (
            "AdaptiveCoordinator.comparison_error",
            "comparison_error",  # the arithmetic by layout of a state, in systems/suites.py
            "step_errors",
            "cloud_error",
            "AdaptiveCoordinator._violations",
            "AdaptiveCoordinator._decide",
            "AdaptiveCoordinator._macro_block",
            "AdaptiveSchedule.cap",
        ),
    ),
    "lifting": Target(
        ("ledmus/solvers/lifting.py",),
        ("tests/test_lifting_units.py", "tests/test_diagnostics.py", "tests/test_lifting.py"),
    ),
    # the online trainer's weight hand-off: what the macro side posts and takes, the
    # acceptance by reconstruction, applying at a block's end, the mappers' side
    "online_handoff": Target(
        ("ledmus/coupler/trainer.py", "ledmus/coupler/adaptive.py"),
        (
            "tests/test_online_handoff.py",
            *(
                f"tests/test_online_run.py::{name}"
                for name in (
                    "test_a_weights_update_re_encodes_the_context_with_the_new_weights",
                    "test_weights_whose_autoencoder_reconstructs_worse_are_refused",
                    "test_a_macro_phase_runs_on_the_weights_its_comparison_accepted",
                    "test_a_rejected_macro_block_leaves_the_online_weights_and_the_member_state",
                )
            ),
        ),
        (
            "Learning.queue",
            "Learning.post",
            "Learning.collect",
            "Learning.acceptable",
            "Learning.apply",
            "MapperWeights.apply",
            "AdaptiveCoordinator._new_weights",
        ),
    ),
    # the closure ensemble's trust signal (the deviation) and the macro model's march
    "closure_hmm": Target(
        ("ledmus/surrogates/closure/learn.py", "ledmus/surrogates/closure/macro.py"),
        ("tests/test_diagnostics.py",),
        ("deviation", "ClosureMacro._march", "ClosureMacro.revert_members"),
    ),
}

# Surviving mutants that no input can tell from the original: target -> {key: reason}.
# A key is either a mutant name (``ledmus.metrics.x_nad__mutmut_3``; renumbered whenever
# the function changes) or, stabler, ``(function, original line, mutated line)`` with the
# lines stripped, as ``mutmut show`` prints them.  A key that matches no survivor is
# reported as stale (the code changed, or a test now kills it).
_COLUMNS = "return x.reshape(-1, 1) if x.ndim == 1 else x.reshape(-1, x.shape[-1])"
_SPECTRUM = (
    "return (np.abs(np.fft.rfft(u, axis=-1)) ** 2 / n**2).reshape(-1, n // 2 + 1).mean(axis=0)"
)
_AS64 = "x = np.asarray(x, dtype=np.float64)"
_SAMPLES64 = (
    "both consumers compute in float64 whatever the samples' dtype (scipy's "
    "wasserstein_distance casts, np.histogram on float64 edges): float32 samples give "
    "bitwise the same distances (checked)"
)
_NAD64 = (
    "y, y_hat = np.asarray(reference, dtype=np.float64), np.asarray(prediction, dtype=np.float64)"
)
_PROMOTE = "y is float64, so y - y_hat is computed in float64 whatever y_hat's dtype"
_CHUNK = "chunk = max(1, 200_000 // (2 * window * r.shape[1]))  # ~1.6 MB per temporary"
_CHUNKING = (
    "the chunk size only bounds memory: each step is computed alone, so any chunking (or "
    "overlapping chunks, recomputing a step) gives bitwise the same lag and shape"
)
_LOOP = "for c0 in range(0, p.shape[0], chunk):"
_VALID = "valid = (k >= 0) & (k + 1 <= n_ref - 1)"
_CLIP_K = "k = np.clip(k, 0, n_ref - 2)"
_CLIPPED = (
    "the clip maps each out-of-range segment onto an in-range one that is also searched "
    "(the same distance, and the first of equal distances wins), and the mask excludes what "
    "the clip leaves out of range: either guard alone finds the same segment"
)
_DD = 'dd = np.einsum("nkm,nkm->nk", d, d)'
_A = 'a = np.clip(np.einsum("nkm,nkm->nk", e, d) / np.where(dd > 0, dd, 1.0), 0.0, 1.0)'
_DIST = 'dist = np.where(valid, np.einsum("nkm,nkm->nk", resid, resid), np.inf)'
_EINSUM = "einsum subscripts are names: upper-case letters are the same contraction"
_SHAPE = "shape[c0 : c0 + chunk] = np.abs(resid[rows, best]).mean(axis=-1) / span"
_ONE_REF = "return np.zeros(p.shape[0]), np.abs(p - r[0]).mean(axis=-1) / span"
_TWO_D = "the array is 2-D (steps, field): axis +1 is axis -1"
_R = "r = ref.reshape(n_ref, -1)"
_IDX_CHECK = (
    "if idx.shape != (p.shape[0],) or idx.min(initial=0) < 0 or idx.max(initial=0) >= n_ref:"
)
_EDGES = "edges = np.linspace(lo, hi if hi > lo else lo + 1.0, rice_bins(a.shape[0]) + 1)"
_NEGATIVE = "numpy (2.4) takes any negative reshape size as the one inferred size, like -1"
_FLAT = (
    "differs only when hi == lo, i.e. both samples are all the one value lo: they share a bin "
    "on any grid (np.histogram accepts a collapsed one), so p == q and the distance is 0"
)


def _mutant(function: str, line: str, old: str, new: str) -> tuple[str, str, str]:
    assert old in line, (line, old)
    return function, line, line.replace(old, new, 1)


_SELF = "return Step(MICRO, min(self.n_micro, remaining), FROM_SELF)"
_DEVICE = 'device = getattr(self.model, "device", "cpu")'
_KINDS = 'if arr.dtype.kind not in "fiu":'
_TRAINED = 'return tuple(spec["state_shape"]), bool(spec.get("particles", False))'
_DECODED = "return self.net.decode_sequence(z).astype(np.float64)"
_PARTICLES = 'self.particles = bool(getattr(net, "particles", False))'
_NONE_IS_FALSE = "bool(None) is bool(False): a spec without 'particles' is a grid either way"

_HIDDEN_B = "return (self.hidden[0] if isinstance(self.hidden, tuple) else self.hidden).shape[1]"
_ZIP = "for full, part in zip(self.hidden, new, strict=True):"
_ZIP_PAIRS = (
    "self.hidden and new are the same RNN's hidden state, an LSTM's (h, c) pair whenever "
    "self.hidden is a tuple (restore makes a tuple of two arrays only): never unequal lengths"
)
_BACKEND = 'def bind_micro(self, solver: Any, *, backend: str = "numpy", comm: Any = None) -> None:'
_BIND = "the default bind_micro ignores its arguments (returns None); overrides have their own"

_OK = "ok &= ~bad_err"
_UNC_DECIDE = "bad_unc = np.nan_to_num(uc, nan=0.0).max(axis=1) > pol.max_uncertainty"
_UNC_VIOL = "high = np.nan_to_num(uncertainty, nan=0.0).max(axis=1) > limit"
_NAN_DEFAULT = "nan=0.0 is numpy.nan_to_num's default"
_SPREAD_C = "np.nan if uc is None else np.nan_to_num(uc[k], nan=0.0).max()"
_FINITE = "finite = np.isfinite(states.reshape(b, -1)).all(axis=1)"
_MONITOR = "ok = np.asarray(mon.check(flat), dtype=bool).reshape(b, n).all(axis=1)"
_MONITOR_BOOL = (
    "a Monitor's check returns a bool array (its contract); .all() tests any other dtype by "
    "truthiness, as the cast to bool does (NaN is truthy either way)"
)
_CAPS = "lo, hi = self.n_macro_min // self.n_micro, self.n_macro // self.n_micro"
_TRUNC = (
    "Generator.integers truncates float bounds (positive here): integers(a/m, b/m + 1) draws "
    "the stream's integers(a//m, b//m + 1), bitwise (checked with numpy 2.4)"
)

_CH_MAX = "return np.abs(np.moveaxis(d, 1, 0)).reshape(d.shape[1], -1).max(axis=1)"
_CH_RMS = "return np.sqrt(np.mean(np.moveaxis(d, 1, 0).reshape(d.shape[1], -1) ** 2, axis=1))"
_TERMS = "outs.append(np.concatenate([q[:, None], g, y.reshape(y.shape[0], -1, y.shape[-1])], 1))"
_STOCHASTIC = 'if self.strategy in ITERATIVE and getattr(solver, "stochastic", False):'
_ALIVE = "alive = np.ones(b, dtype=bool)"
_REVERT = 'self.Q[rows] = np.asarray(snap["Q"], dtype=np.float64)[rows]'
_CAST = "self.Q is a float64 array: assigning rows into it casts whatever dtype they have"
_ALIVE_FLOAT = (
    "alive is only written with False and read by np.flatnonzero: a float array of ones "
    "and zeros selects the same rows"
)

EQUIVALENT: dict[str, dict[str | tuple[str, str, str], str]] = {
    "lifting": {
        _mutant("check", _STOCHASTIC, "False)", "None)"): "None and False are both falsy",
        _mutant("_channel_max", _CH_MAX, "-1)", "-2)"): _NEGATIVE,
        _mutant("_channel_rms", _CH_RMS, "-1)", "-2)"): _NEGATIVE,
    },
    "closure_hmm": {
        _mutant("deviation", _TERMS, "-1, y", "-2, y"): _NEGATIVE,
        _mutant("_march", _ALIVE, "dtype=bool)", "dtype=None)"): _ALIVE_FLOAT,
        _mutant("_march", _ALIVE, "dtype=bool)", ")"): _ALIVE_FLOAT,
        _mutant("_march", "alive[r] = False", "False", "None"): "None stored in a bool "
        "array is False",
        _mutant("_march", "out[:, j] = Q.reshape(b, -1)", "-1)", "-2)"): _NEGATIVE,
        _mutant("revert_members", _REVERT, "dtype=np.float64)", "dtype=None)"): _CAST,
        _mutant("revert_members", _REVERT, "dtype=np.float64)", ")"): _CAST,
    },
    "adaptive": {
        _mutant("_decide", _OK, "&=", "="): "ok is all True before it: the same mask",
        _mutant("_decide", _UNC_DECIDE, "nan=0.0)", ")"): _NAN_DEFAULT,
        _mutant("_decide", _SPREAD_C, "nan=0.0)", ")"): _NAN_DEFAULT,
        _mutant("_decide", "self.back_to_micro[compare] = False", "False", "None"): (
            "None stored in a bool array is False"
        ),
        _mutant("_violations", _UNC_VIOL, "nan=0.0)", ")"): _NAN_DEFAULT,
        _mutant("_violations", _FINITE, "(b, -1)", "(b, -2)"): _NEGATIVE,
        _mutant("_violations", _MONITOR, "dtype=bool)", "dtype=None)"): _MONITOR_BOOL,
        _mutant("_violations", _MONITOR, "dtype=bool)", ")"): _MONITOR_BOOL,
        _mutant("cap", _CAPS, "n_macro_min // self", "n_macro_min / self"): _TRUNC,
        _mutant("cap", _CAPS, "n_macro // self", "n_macro / self"): _TRUNC,
    },
    "schedule": {
        _mutant("next", _SELF, ", FROM_SELF)", ", )"): "FROM_SELF is Step.start's default",
    },
    "mappers": {
        _mutant("decode", _DEVICE, '"cpu")', "None)"): (
            "only for models without a device: torch.Generator(device=None) is a CPU generator"
        ),
    },
    "messages": {
        _mutant("_convert", _KINDS, '"fiu"', '"XXfiuXX"'): (
            "a dtype kind is one character and 'X' is none of numpy's kinds"
        ),
    },
    "protocol": {
        _mutant("trained_state", _TRAINED, '"particles", False)', '"particles", None)'): (
            _NONE_IS_FALSE
        ),
        _mutant("trained_state", _TRAINED, '"particles", False)', '"particles", )'): (
            _NONE_IS_FALSE
        ),
        _mutant("decode", _DECODED, "astype(np.float64)", "astype(None)"): (
            "ndarray.astype(None) converts to numpy's default dtype, float64"
        ),
        _mutant("decode", "if z.ndim == 3:", "== 3", "== 4"): (
            "decode of (B, T, d) gives decode_sequence's values (row-wise GEMMs); the "
            "sequence path only bounds the memory of long phases"
        ),
        _mutant("__init__", _PARTICLES, '"particles", False)', '"particles", None)'): (
            _NONE_IS_FALSE
        ),
        _mutant(
            "from_network",
            'particles = bool(getattr(net, "particles", False))',
            '"particles", False)',
            '"particles", None)',
        ): _NONE_IS_FALSE,
        _mutant("_n_members", _HIDDEN_B, "hidden[0]", "hidden[1]"): (
            "an LSTM's h and c have the same shape (layers, B, H)"
        ),
        _mutant("_put_hidden", _ZIP, "strict=True)", "strict=None)"): _ZIP_PAIRS,
        _mutant("_put_hidden", _ZIP, "strict=True)", ")"): _ZIP_PAIRS,
        _mutant("_put_hidden", _ZIP, "strict=True)", "strict=False)"): _ZIP_PAIRS,
        _mutant(
            "assimilate_members", "self.has_pending[members] = False", "False", "None"
        ): "None stored in a bool array is False",
        _mutant("propagate_members", "if n > 1:", ">", ">="): (
            "for n == 1 free_run(_spread) returns the hidden rows it was given (a copy read "
            "by _hidden_rows): writing them back changes nothing"
        ),
        _mutant("bind_micro", _BACKEND, '"numpy"', '"XXnumpyXX"'): _BIND,
        _mutant("bind_micro", _BACKEND, '"numpy"', '"NUMPY"'): _BIND,
    },
    "metrics": {
        _mutant("_columns", _AS64, "dtype=np.float64)", "dtype=None)"): _SAMPLES64,
        _mutant("_columns", _AS64, "dtype=np.float64)", ")"): _SAMPLES64,
        _mutant(
            "nad", _NAD64, "(prediction, dtype=np.float64)", "(prediction, dtype=None)"
        ): _PROMOTE,
        _mutant("nad", _NAD64, "(prediction, dtype=np.float64)", "(prediction, )"): _PROMOTE,
        _mutant("phase_shape", _CHUNK, "200_000 //", "200001 //"): _CHUNKING,
        _mutant("phase_shape", _CHUNK, "(2 * window", "(3 * window"): _CHUNKING,
        _mutant("phase_shape", _CHUNK, "max(1,", "max(2,"): _CHUNKING,
        _mutant("phase_shape", _LOOP, ", chunk)", ", )"): _CHUNKING,
        _mutant("phase_shape", _LOOP, "p.shape[0]", "p.shape[1]"): (
            "a chunk shorter than the T steps needs 2 window M > 200000, so M > T whenever "
            "T < 100000 / window: range(0, M, chunk) then covers range(0, T, chunk) and its "
            "further chunks are empty slices"
        ),
        _mutant("phase_shape", _VALID, ") & (", ") | ("): _CLIPPED,
        _mutant("phase_shape", _VALID, "(k + 1 <= n_ref - 1)", "(k - 1 <= n_ref - 1)"): _CLIPPED,
        _mutant("phase_shape", _VALID, "(k + 1 <= n_ref - 1)", "(k + 1 <= n_ref + 1)"): _CLIPPED,
        _mutant("phase_shape", _CLIP_K, "(k, 0,", "(k, None,"): _CLIPPED,
        _mutant("phase_shape", _DD, '"nkm,nkm->nk"', '"NKM,NKM->NK"'): _EINSUM,
        _mutant("phase_shape", _A, '"nkm,nkm->nk"', '"NKM,NKM->NK"'): _EINSUM,
        _mutant("phase_shape", _DIST, '"nkm,nkm->nk"', '"NKM,NKM->NK"'): _EINSUM,
        _mutant("phase_shape", _A, "dd, 1.0)", "dd, 2.0)"): (
            "only where |d|^2 = 0, i.e. d = 0, where <e, d> = 0 too: a = 0 either way"
        ),
        _mutant("phase_shape", _SHAPE, "mean(axis=-1)", "mean(axis=+1)"): _TWO_D,
        _mutant("phase_shape", _ONE_REF, "mean(axis=-1)", "mean(axis=+1)"): _TWO_D,
        _mutant("phase_shape", _R, "-1)", "-2)"): _NEGATIVE,
        _mutant("phase_shape", _IDX_CHECK, "idx.min(initial=0)", "idx.min(initial=1)"): (
            "min(initial=1) differs from min(initial=0) only when every index is >= 1, where "
            "both are >= 0"
        ),
        _mutant("_columns", _COLUMNS, "reshape(-1, 1)", "reshape(-2, 1)"): _NEGATIVE,
        _mutant("_columns", _COLUMNS, "reshape(-1, x.", "reshape(-2, x."): _NEGATIVE,
        _mutant("power_spectrum", _SPECTRUM, "reshape(-1,", "reshape(-2,"): _NEGATIVE,
        _mutant("power_spectrum", _SPECTRUM, "rfft(u, axis=-1)", "rfft(u, )"): (
            "axis=-1 is numpy.fft.rfft's default axis"
        ),
        _mutant("l1_histogram", _EDGES, "hi > lo else", "(hi > lo) or True else"): _FLAT,
        _mutant("l1_histogram", _EDGES, "hi > lo", "hi >= lo"): _FLAT,
        _mutant("l1_histogram", _EDGES, "lo + 1.0", "lo + 2.0"): _FLAT,
    },
}


def _toml_list(items: list[str] | tuple[str, ...]) -> str:
    return "[" + ", ".join(json.dumps(s) for s in items) + "]"  # JSON strings are TOML strings


def mutmut_config(target: Target) -> str:
    """The ``[tool.mutmut]`` section for one target (mutmut 3.8 option names)."""
    return "\n".join(
        [
            "",
            "[tool.mutmut]",
            f"source_paths = {_toml_list([PACKAGE])}",
            f"only_mutate = {_toml_list(target.modules)}",
            f"pytest_add_cli_args_test_selection = {_toml_list(target.tests)}",
            f"pytest_add_cli_args = {_toml_list(['-p', 'no:cacheprovider'])}",
            f"also_copy = {_toml_list(DATA)}",
            "use_git_change_detection = false",
            "",
        ]
    )


def build_sandbox(name: str, target: Target) -> Path:
    for path in target.files:
        if not (ROOT / path).is_file():
            raise SystemExit(f"target {name}: {path} does not exist")
    box = SANDBOXES / name
    shutil.rmtree(box, ignore_errors=True)
    box.mkdir(parents=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".pytest_cache")
    for item in (*COPIED, *DATA):
        shutil.copytree(ROOT / item, box / item, ignore=ignore)
    pyproject = (ROOT / "pyproject.toml").read_text()
    if "[tool.mutmut]" in pyproject:
        raise SystemExit("pyproject.toml has its own [tool.mutmut]; tools/mutation.py writes it")
    (box / "pyproject.toml").write_text(pyproject + mutmut_config(target))
    return box


def _mutmut() -> str:
    exe = Path(sys.executable).parent / "mutmut"  # the venv's console script
    return str(exe) if exe.exists() else (shutil.which("mutmut") or "mutmut")


def run_mutmut(box: Path, max_children: int, patterns: list[str] | None = None) -> None:
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    log = box / "mutmut.log"
    with log.open("w") as f:
        proc = subprocess.run(
            [_mutmut(), "run", "--max-children", str(max_children), *(patterns or [])],
            cwd=box,
            env=env,
            stdout=f,
            stderr=subprocess.STDOUT,
            check=False,
        )
    if proc.returncode != 0:
        tail = log.read_text(errors="replace").replace("\r", "\n").splitlines()[-40:]
        raise SystemExit(f"mutmut run failed ({proc.returncode}) in {box}:\n" + "\n".join(tail))


def mutmut_show(box: Path, mutant: str) -> str:
    out = subprocess.run(
        [_mutmut(), "show", mutant], cwd=box, capture_output=True, text=True, check=True
    ).stdout
    return out.split("\n", 1)[1].strip() if out.startswith("#") else out.strip()


def changed_lines(diff: str) -> tuple[str, str]:
    """The removed and the added source lines of a unified diff, stripped and joined."""
    lines = diff.splitlines()
    old = [s[1:].strip() for s in lines if s.startswith("-") and not s.startswith("---")]
    new = [s[1:].strip() for s in lines if s.startswith("+") and not s.startswith("+++")]
    return " / ".join(old), " / ".join(new)


def function_of(mutant: str) -> str:
    """``ledmus.metrics.x_nad__mutmut_3`` -> ``nad``."""
    mangled = mutant.rpartition(".")[2].partition("__mutmut_")[0]
    return mangled[2:] if mangled.startswith("x_") else mangled.rsplit("ǁ", 1)[-1]


def git_commit(target: Target) -> tuple[str, bool]:
    """HEAD, and whether the target's modules or tests differ from it (or are untracked)."""

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=ROOT, capture_output=True, text=True, check=False
        ).stdout.strip()

    return git("rev-parse", "HEAD"), bool(git("status", "--porcelain", "--", *target.files))


def evaluate(name: str, target: Target, max_children: int) -> dict:
    from mutmut.stats import status_by_exit_code  # mutmut's own exit-code -> status table

    start = time.perf_counter()
    commit, dirty = git_commit(target)
    box = build_sandbox(name, target)
    run_mutmut(box, max_children, target.patterns())
    status = {}
    for module in target.modules:  # one .meta per mutated file; mutant names are unique
        meta = json.loads((box / "mutants" / (module + ".meta")).read_text())
        status.update(
            {
                k: status_by_exit_code[v]
                for k, v in meta["exit_code_by_key"].items()
                if target.selects(k)
            }
        )
    counts = Counter(status.values())
    survivors = sorted(k for k, s in status.items() if s == "survived")

    declared = dict(EQUIVALENT.get(name, {}))
    equivalent, left, used = [], [], set()
    for mutant in survivors:
        diff = mutmut_show(box, mutant)
        old, new = changed_lines(diff)
        entry = {"name": mutant, "function": function_of(mutant), "diff": diff}
        key = next(
            (k for k in (mutant, (function_of(mutant), old, new)) if k in declared),
            None,
        )
        if key is None:
            left.append(entry)
        else:
            used.add(key)
            equivalent.append({**entry, "reason": declared[key]})
    stale = [str(k) for k in declared if k not in used]

    total, killed = len(status), counts["killed"]
    scored = total - len(equivalent)
    return {
        "target": name,
        "modules": list(target.modules),
        "functions": list(target.functions),
        "tests": list(target.tests),
        "git_commit": commit,
        "git_dirty": dirty,  # target modules / tests differ from git_commit
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": {"node": platform.node(), "processor": platform.processor()},
        "mutmut": _version("mutmut"),
        "seconds": round(time.perf_counter() - start, 1),
        "total": total,
        "killed": killed,
        "survived": counts["survived"],
        "timeout": counts["timeout"],
        "statuses": dict(sorted(counts.items())),
        "equivalent_count": len(equivalent),
        "raw_score": killed / total if total else None,
        "score": killed / scored if scored else None,
        "survivors": left,
        "equivalent": equivalent,
        "timeouts": sorted(k for k, s in status.items() if s == "timeout"),
        "stale_equivalent_keys": stale,
    }


def _version(dist: str) -> str:
    from importlib.metadata import version

    return version(dist)


def report(r: dict) -> None:
    mods, tests = ", ".join(r["modules"]), ", ".join(r["tests"])
    print(f"\n== {r['target']}: {mods} by {tests} ({r['seconds']} s)")
    print(
        f"   mutants {r['total']}: killed {r['killed']}, survived {r['survived']}, "
        f"timeout {r['timeout']}; statuses {r['statuses']}"
    )
    print(f"   raw killed/total = {r['killed']}/{r['total']} = {r['raw_score']:.1%}")
    print(
        f"   score killed/(total - {r['equivalent_count']} equivalent) = "
        f"{r['killed']}/{r['total'] - r['equivalent_count']} = {r['score']:.1%}"
    )
    for e in r["equivalent"]:
        old, new = changed_lines(e["diff"])
        print(f"   equivalent {e['name']}: {old}  ->  {new}\n      ({e['reason']})")
    for s in r["survivors"]:
        print(
            f"\n   SURVIVED {s['name']}\n" + "\n".join("      " + x for x in s["diff"].splitlines())
        )
    for t in r["timeouts"]:
        print(f"   TIMEOUT {t}")
    for k in r["stale_equivalent_keys"]:
        print(f"   warning: declared equivalent {k} matches no survivor (stale?)")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument(
        "targets", nargs="*", metavar="TARGET", help=f"of {sorted(TARGETS)}; all if none"
    )
    ap.add_argument("-j", "--max-children", type=int, default=2, help="parallel mutant workers")
    ap.add_argument("--fail-under", type=float, help="exit 1 if a score (percent) is below this")
    args = ap.parse_args(argv)
    unknown = sorted(set(args.targets) - set(TARGETS))
    if unknown:
        ap.error(f"unknown target(s) {unknown}; known: {sorted(TARGETS)}")

    os.environ["OMP_NUM_THREADS"] = "1"
    OUT.mkdir(parents=True, exist_ok=True)
    failed = []
    for name in args.targets or list(TARGETS):
        r = evaluate(name, TARGETS[name], args.max_children)
        report(r)
        out = OUT / f"mutation_{name}.json"
        out.write_text(json.dumps(r, indent=2, ensure_ascii=False) + "\n")
        print(f"   -> {out.relative_to(ROOT)}")
        if args.fail_under is not None and (r["score"] or 0.0) * 100 < args.fail_under:
            failed.append(name)
    if failed:
        print(f"score below {args.fail_under} %: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
