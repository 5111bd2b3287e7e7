"""Regenerate the documentation's tables and measured sentences from the benchmark JSONs.

README.md and the Markdown pages under docs/ mark each generated block::

    <!-- table: NAME -->
    ...generated: a table or a short paragraph, then a line naming its source...
    <!-- /table -->

and this script replaces what lies between the markers by what the JSONs under
``benchmarks/out/`` give (``BLOCKS`` below: which files feed which block).  Text outside
the markers is never touched.  A block may appear in several pages.  A block whose JSON is
missing is left as it is (the script says so on stderr).

    python docs/tables.py                   # rewrite README.md and docs/**/*.md in place (atomically)
    python docs/tables.py --check           # exit 1 and print a diff if a page differs
    python docs/tables.py --check --strict  # ... or if a block's JSON is missing
    python docs/tables.py --out-dir /tmp/smoke --page /tmp/README.md

The last line of every block names its source files, the commit (``-dirty``: tracked files
differed from it), the thread count and the machine from the JSON's ``provenance`` (or the
older top-level keys ``commit``/``git_commit``, ``machine``, ``torch_threads``), and the
command that wrote the file.  The Sphinx build (docs/conf.py) runs the check and warns
about a stale page, so ``sphinx-build -W`` fails on it.
"""

from __future__ import annotations

import argparse
import difflib
import glob
import json
import math
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
OUT_DIR = ROOT / "benchmarks" / "out"

MARKER = re.compile(
    r"^<!-- table: (?P<name>[\w-]+) -->\n(?P<body>.*?)^<!-- /table -->$", re.S | re.M
)

Docs = dict[str, dict[str, Any]]  # file (relative to the out dir) -> parsed JSON


# ------------------------------------------------------------------------------ formats
def fixed(x: float | None, digits: int) -> str:
    return "–" if x is None else f"{x:.{digits}f}"


def sig(x: float | None, n: int = 2) -> str:
    """``n`` significant digits in fixed notation, trailing zeros kept (0.080, 0.28, 7.0)."""
    if x is None:
        return "–"
    if x == 0 or not math.isfinite(x):
        return f"{x:g}"
    digits = max(0, n - 1 - math.floor(math.log10(abs(x))))
    return f"{x:.{digits}f}"


def sci(x: float, n: int = 2) -> str:
    """Small numbers as ``1.8e-5``, from 0.01 up as ``0.185``."""
    if x >= 0.01:
        return f"{x:.3g}"
    mantissa, exponent = f"{x:.{n - 1}e}".split("e")
    return f"{mantissa}e{int(exponent)}"


def count(x: float) -> str:
    return f"{x:,.0f}"


def table(header: list[str], rows: list[list[str]]) -> str:
    out = ["| " + " | ".join(cells) + " |" for cells in (header, *rows)]
    out.insert(1, "|" + "---|" * len(header))
    return "\n".join(re.sub(r"\|  (?=\|)", "| ", line) for line in out)


def join_words(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


# --------------------------------------------------------------------------- provenance
def provenance_of(doc: dict[str, Any]) -> dict[str, Any]:
    """The ``provenance`` block, or the same fields from older top-level keys."""
    if isinstance(doc.get("provenance"), dict):
        return doc["provenance"]
    machine = doc.get("machine")
    if isinstance(machine, dict):
        machine = machine.get("node")
    command = doc.get("command")
    if command and command.split()[0].endswith(".py"):  # argv without the interpreter
        command = f"python {command}"
    threads = doc.get("threads", doc.get("torch_threads"))
    return {"commit": doc.get("commit", doc.get("git_commit")),
            "dirty": doc.get("dirty", doc.get("git_dirty")), "command": command,
            "machine": machine if isinstance(machine, str) else None, "threads": threads,
            "omp_num_threads": doc.get("omp_num_threads")}  # fmt: skip


def describe(prov: dict[str, Any]) -> str:
    """``commit abc1234, 1 thread, machine vm``."""
    parts = []
    commit = prov.get("commit")
    if commit and commit != "unknown":
        parts.append(f"commit {commit[:7]}{'-dirty' if prov.get('dirty') else ''}")
    else:
        parts.append("commit not recorded")
    threads, omp = prov.get("threads"), prov.get("omp_num_threads")
    if threads is not None:
        parts.append(f"{threads} thread{'' if threads == 1 else 's'}")
    elif omp:
        parts.append(f"OMP_NUM_THREADS={omp}")
    elif prov.get("cpu_count"):
        parts.append(f"threads not set, {prov['cpu_count']} cores")
    if prov.get("machine"):
        parts.append(f"machine {prov['machine']}")
    return ", ".join(parts)


def source_line(entries: list[tuple[str, str, str | None]]) -> str:
    """``<sub>from FILE (provenance): `command`; …</sub>``; ``entries``: (shown path,
    provenance text, command); files with the same provenance and command are merged."""
    groups: dict[tuple[str, str | None], list[str]] = {}
    for path, desc, command in entries:
        groups.setdefault((desc, command), []).append(path)
    parts = []
    for (desc, command), paths in groups.items():
        text = f"{', '.join(paths)} ({desc})"
        parts.append(f"{text}: `{command}`" if command else text)
    return f"<sub>from {'; '.join(parts)}</sub>"


def default_source(docs: Docs, shown: Callable[[str], str]) -> str:
    entries = []
    for rel, doc in docs.items():
        prov = provenance_of(doc)
        entries.append((shown(rel), describe(prov), prov.get("command")))
    return source_line(entries)


# ---------------------------------------------------------------------------- renderers
def render_solvers(docs: Docs) -> str:
    doc = docs["solvers.json"]
    rows = []
    for c in doc["cases"]:
        target = c.get("target_steps_per_s")
        verdict = f"≥ {target:,}: {'met' if c['target_met'] else 'MISSED'}" if target else ""
        rows.append([c.get("label", c["system"]), str(c["batch"]), count(c["steps_per_s"]),
                     count(c["member_steps_per_s"]), f"{c['peak_mib']:.2f}", verdict])  # fmt: skip
    header = ["system", "batch", "micro steps/s", "member-steps/s", "peak MiB", "target (batch 1)"]
    return table(header, rows)


def render_ks_lyapunov(docs: Docs) -> str:
    d = docs["ks_lyapunov.json"]
    s = d["settings"]
    lit = d.get("literature", {"range": [0.043, 0.048], "seed_001": 0.048,
                               "seed_001_lyapunov_time": 20.8})  # fmt: skip
    lo, hi = lit["range"]
    return (f"λ₁ = {d['lambda1_mean']:.4f} ± {d['lambda1_se']:.4f} (standard error over the "
            f"{s['pairs']} trajectories; Lyapunov time {d['lyapunov_time']:.1f}, "
            f"{d['wall_s']:.0f} s wall). Literature for L = {s.get('length', 22):g}: {lo:g}–{hi:g} "
            f"([1]: {lit['seed_001']:g}, Lyapunov time {lit['seed_001_lyapunov_time']:g}).")  # fmt: skip


def render_dataset_times(docs: Docs) -> str:
    d = docs["dataset_times.json"]
    text = ", ".join(f"{r['system']} {r['wall_s']:.0f} s" for r in d["systems"])
    return text + ("." if d.get("scale", "paper") == "paper" else f" (scale {d['scale']}).")


def render_latent_throughput(docs: Docs) -> str:
    d = docs["latent_throughput.json"]
    devices = sorted({r["device"] for r in d["rows"]})
    micro = "LB" if d.get("system") == "fhn" else "micro"
    header = ["batch", "latent steps/s", "member-Δt/s LED", f"member-Δt/s {micro}", "ratio"]
    if devices != ["cpu"]:
        header.insert(1, "device")
    rows = []
    for r in d["rows"]:
        cells = [str(r["batch"]), count(r["latent_steps_per_s"]), count(r["led_member_dt_per_s"]),
                 count(r["micro_member_dt_per_s"]), count(r["ratio"])]  # fmt: skip
        if devices != ["cpu"]:
            cells.insert(1, r["device"])
        rows.append(cells)
    return table(header, rows)


def render_coupling_overhead(docs: Docs) -> str:
    """One row per ensemble size, model, libmuscle profile level and T_m (JSONs written
    before the model was recorded ran the single LSTM, ``models/led_fhn.pt``; before the
    profile level was recorded, libmuscle's default ``all``)."""
    rows = []
    for doc in docs.values():
        settings = doc.get("settings", {})
        ensemble, model = settings.get("ensemble", 1), settings.get("model", "models/led_fhn.pt")
        profile = settings.get("profile", "all")
        rows += [{"ensemble": ensemble, "model": Path(model).name, "profile": profile, **r}
                 for r in doc["rows"]]  # fmt: skip
    rows.sort(key=lambda r: (r["ensemble"], r["model"], r["profile"], r["t_macro"]))
    header = ["ensemble", "model", "libmuscle profile", "T_m / T_mu", "windows",
              "embedded loop", "MUSCLE3 loop", "ratio", "per exchange",
              "whole command, embedded / MUSCLE3"]  # fmt: skip
    return table(header, [[str(r["ensemble"]), f"`{r['model']}`", r["profile"],
                           f"{r['t_macro']:g} / {r.get('t_micro', 10):g}",
                           str(r["windows"]), f"{r['embedded_loop_s']:.2f} s",
                           f"{r['muscle3_loop_s']:.2f} s", f"{r['ratio']:.2f}",
                           f"{r['per_exchange_ms']:.1f} ms",
                           f"{r['embedded_command_s']:.1f} s / {r['muscle3_command_s']:.1f} s"]
                          for r in rows])  # fmt: skip


def render_coupling_parts(docs: Docs) -> str:
    """Per window, the macro, lift, micro and restriction time of the best loop of each
    engine (rows of ``coupling_overhead*.json`` that recorded the split)."""
    rows = []
    for doc in docs.values():
        profile = doc.get("settings", {}).get("profile", "all")
        for r in doc["rows"]:
            if "muscle3_parts_s" not in r:
                continue
            emb, m3, n = r["embedded_parts_s"], r["muscle3_parts_s"], r["windows"]
            rows.append((r["t_macro"], profile, [f"{r['t_macro']:g} / {r.get('t_micro', 10):g}", profile]
                         + [f"{1e3 * emb[k] / n:.2f} / {1e3 * m3[k] / n:.2f}"
                            for k in ("macro_s", "lift_s", "restrict_s", "micro_s")]))  # fmt: skip
    header = ["T_m / T_mu", "libmuscle profile", "macro (ms per window)", "lift", "restrict",
              "micro"]  # fmt: skip
    return table(header, [cells for *_, cells in sorted(rows, key=lambda r: r[:2])])


def render_libmuscle_floor(docs: Docs) -> str:
    """The bare libmuscle ring of ``benchmarks/libmuscle_floor.py``."""
    rows = []
    for r in docs["libmuscle_floor.json"]["rows"]:
        w = r["work_ms"]
        work = " / ".join(f"{w[k]:g}" for k in ("macro", "lift", "micro", "restrict"))
        share = f"{r['overhead_ms']:.2f} ms"
        if "overhead_max_ms" in r:  # the slowest repeat beside the best
            share += f" (slowest run {r['overhead_max_ms']:.2f} ms)"
        rows.append([r["label"], work, f"{r['exchange_ms']:.2f} ms", share,
                     "–" if r["ratio"] is None else f"{r['ratio']:.3f}"])  # fmt: skip
    header = ["ring", "work per exchange, macro / lift / micro / restrict (ms)",
              "per exchange (best run)", "libmuscle's share", "ratio to the work"]  # fmt: skip
    return table(header, rows)


SYSTEM_NAMES = {"fhn": "FHN", "ks": "KS", "ad1d": "AD-1D", "ad3d": "AD-3D", "rw": "RW"}
SYSTEM_ORDER = ["fhn", "ks", "ad1d", "ad3d", "rw"]


def _system_key(system: str) -> tuple[int, str]:
    return (SYSTEM_ORDER.index(system) if system in SYSTEM_ORDER else len(SYSTEM_ORDER), system)


def render_reconstruction(docs: Docs) -> str:
    rows = []
    for doc in sorted(docs.values(), key=lambda d: _system_key(d["system"])):
        r = doc["rows"]
        rows.append([SYSTEM_NAMES.get(doc["system"], doc["system"]),
                     " / ".join(str(x["latent_dim"]) for x in r),
                     " / ".join(sci(x["ae_mse"]) for x in r),
                     " / ".join(sci(x["pca_mse"]) for x in r)])  # fmt: skip
    return table(["system", "d_z", "autoencoder", "PCA, same number of modes"], rows)


def render_evaluation_fhn(docs: Docs) -> str:
    d = docs["led_fhn_evaluate.json"]
    span = _span(d)
    rows = [[f"MNAD u, horizon {d['horizon']}", fixed(d["mnad_u"], 4), "≈ 0.04 (Fig. 34, \"Latent\")"],
            [f"MNAD v, horizon {d['horizon']}", fixed(d["mnad_v"], 4), "≈ 0.04"]]  # fmt: skip
    if span:
        rows += [[f"MNAD u, first {span} steps (CSPDE protocol)", fixed(d[f"mnad_u_{span}"], 4),
                  "LED below all CSPDE variants (Fig. 31)"],
                 [f"MNAD v, first {span} steps", fixed(d[f"mnad_v_{span}"], 4), ""]]  # fmt: skip
    return table(["measure", "ledmus", "paper [1]"], rows)


def _span(doc: dict[str, Any]) -> int | None:
    spans = sorted(int(m.group(1)) for k in doc if (m := re.fullmatch(r"mnad_u_(\d+)", k)))
    return spans[0] if spans else None


def render_pca_fhn(docs: Docs) -> str:
    pca, led = docs["pca_fhn_evaluate.json"], docs["led_fhn_evaluate.json"]
    span = _span(pca)
    first = (f" (first {span} steps {pca[f'mnad_u_{span}']:.4f} / {pca[f'mnad_v_{span}']:.4f})"
             if span else "")  # fmt: skip
    return (
        f"MNAD u / v {pca['mnad_u']:.4f} / {pca['mnad_v']:.4f}{first}, against the LED's "
        f"{led['mnad_u']:.4f} / {led['mnad_v']:.4f}."
    )


def _card(models: dict[str, Any], model_path: str) -> dict[str, Any] | None:
    stem = Path(model_path).stem
    return next((m for m in models["models"] if Path(m["file"]).stem == stem), None)


STAGE_NAMES = {"autoencoder": "AE", "pca": "PCA"}


def _training(card: dict[str, Any] | None, *, restarts: bool = True) -> str:
    """``209 s (AE 30 s, GRU 179 s)``."""
    if card is None:
        return "not shipped"
    wall = card["training_wall_s"]
    note = "; not shipped" if card.get("shipped") is False else ""
    cell = str((card.get("rnn") or {}).get("cell") or "rnn").upper()
    stages = []
    for stage, s in wall.items():
        if stage == "total":
            continue
        name = cell if stage == "rnn" else STAGE_NAMES.get(stage, stage)
        if stage == "rnn" and restarts and (card.get("restarts") or 1) > 1:
            name = f"{name} {card['restarts']} restarts"
        stages.append(f"{name} {s:.0f} s")
    return f"{wall.get('total', sum(wall.values())):.0f} s ({', '.join(stages)}{note})"


def _lyapunov(doc: dict[str, Any]) -> float | None:
    if "lyapunov_exponent" in doc:
        return doc["lyapunov_exponent"]
    from ledmus.systems import get  # only for files written before the key existed

    return get(doc["system"]).lyapunov


def render_evaluation_ks_ad3d(docs: Docs) -> str:
    ks, models = docs["led_ks_evaluate.json"], docs["models.json"]
    lam = _lyapunov(ks)
    rows = [["KS", _training(_card(models, ks["model"])),
             f"valid prediction time (NAD < 0.1), {ks['n_ics']} ICs, T_warm {ks['t_warm']}",
             f"{ks['valid_time_lyapunov']:.2f} Lyapunov times (λ₁ = {lam:g})", "≥ 1 (Fig. 42)"],
            ["KS", "", f"state-value distribution over {ks['horizon']} steps: W1 / L1 histogram",
             f"{sig(ks['wasserstein'])} / {sig(ks['l1_histogram'])}", "\"captured\" (Fig. 41)"],
            ["KS", "", "power-spectrum error (mean \\|Δlog10 P\\| over all wavenumbers)",
             f"{ks['power_spectrum_error']:.1f} decades", ""]]  # fmt: skip
    for rel, name in (("led_ad3d_evaluate.json", "AD-3D"), ("led_ad1d_evaluate.json", "AD-1D")):
        if rel not in docs:
            continue
        d = docs[rel]
        rows += [[name, _training(_card(models, d["model"])),
                  f"W1 of particle positions, all {d['horizon']} steps, {d['n_ics']} test runs",
                  sig(d["wasserstein_all"]), ""],
                 [name, "", "W1 at the last step / L1 histogram (all steps)",
                  f"{sig(d['wasserstein_last'])} / {sig(d['l1_histogram_all'])}", ""],
                 [name, "", "M1 (mean position) / M2 (variance): mean abs. error",
                  f"{sig(d['m1_mae'])} / {sig(d['m2_mae'])}", ""]]  # fmt: skip
    return table(["system", "training", "measure", "ledmus", "paper"], rows)


def render_training_times(docs: Docs) -> str:
    parts = []
    models = sorted(docs["models.json"]["models"],
                    key=lambda m: (_system_key(m["system"]), m["kind"] != "led", m["file"]))  # fmt: skip
    for m in models:
        extra = []
        if (m.get("restarts") or 1) > 1:
            extra.append(f"{m['restarts']} RNN restarts, index {m['chosen_restart']} chosen")
        if m.get("threads") is not None:
            extra.append(f"{m['threads']} thread{'' if m['threads'] == 1 else 's'}")
        text = f"`{Path(m['file']).name}` ({m['kb']:.0f} kB) {_training(m, restarts=False)}"
        parts.append(text + (f" [{'; '.join(extra)}]" if extra else ""))
    return "Training wall times recorded in the checkpoints: " + join_words(parts) + "."


def _sweep_rows(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """Coupled runs of a sweep, keyed by model label (None: the sweep's model), T_m (time
    units; None: Latent) and what was recorded."""
    out = []
    for r in doc["runs"]:
        label = r["label"]
        record = r.get("record") or ("latents" if "(latents recorded)" in label else "states")
        first = label.replace(" (latents recorded)", "").split(" ")[0]
        extra = None if first.startswith("T_m=") or first == "Latent" else first
        t_macro = None if r.get("rho") is None else r["rho"] * doc["t_micro"]
        out.append({**r, "_extra": extra, "_record": record, "_t_macro": t_macro})
    return out


def _dt_coarse(doc: dict[str, Any]) -> float:
    if "dt_coarse" in doc:
        return doc["dt_coarse"]
    from ledmus.solvers import make  # only for sweeps written before the key existed

    return make(doc["system"]).dt_coarse


def _run_label(extra: str | None, t_macro: float | None, dt: float, first: bool) -> str:
    """``T_m = 40`` (coarse steps; ``first``: the first coupled row, which says "steps"
    when a step is not one time unit), ``Latent``, ``PCA baseline, T_m = 50``."""
    if t_macro is None:
        base = "Latent"
    else:
        base = f"T_m = {t_macro / dt:g}" + (" steps" if first and dt != 1 else "")
    return base if extra is None else f"{EXTRA_NAMES.get(extra, extra)}, {base}"


EXTRA_NAMES = {
    "pca": "PCA baseline",
    "led_fhn": "single LSTM (led_fhn.pt)",
    "teacher_forcing": "ensemble (led_fhn_ens.pt)",
}
PAPER_FIG7 = {(None, 10.0): "MNAD ≈ 0.01, S ≈ 2", (None, None): "MNAD ≈ 0.04"}


def _pairs(doc: dict[str, Any]) -> list[tuple[dict[str, Any] | None, dict[str, Any] | None]]:
    """(states row, latents row) per (model, T_m), in the order of the sweep."""
    pairs: dict[tuple, list] = {}
    for r in _sweep_rows(doc):
        slot = pairs.setdefault((r["_extra"], r["_t_macro"]), [None, None])
        slot[r["_record"] == "latents"] = r
    return [tuple(p) for p in pairs.values()]


def render_fhn_sweep(docs: Docs) -> str:
    doc = docs["fhn_sweep/sweep.json"]
    dt, rows, first = _dt_coarse(doc), [], True
    for states, latents in _pairs(doc):
        base = states or latents
        extra, t_macro = base["_extra"], base["_t_macro"]
        s_b = [f"{r['s_over_bound']:.2f}" for r in (states, latents) if r is not None]
        rows.append([_run_label(extra, t_macro, dt, first),
                     "–" if base["rho"] is None else _assimilation(base),
                     "–" if base["rho"] is None else f"{base['rho']:g}",
                     f"{base['micro_fraction']:.3f}",
                     " / ".join(f"{x:.4f}" for x in base["mnad"]),
                     f"{states['speedup']:.1f}" if states else "–",
                     f"{latents['speedup']:.1f}" if latents else "–",
                     f"{base['bound']:.1f}", " / ".join(s_b),
                     PAPER_FIG7.get((extra, t_macro), "")])  # fmt: skip
        first = first and t_macro is None
    header = ["run", "assimilation", "ρ = T_m/T_mu", "micro share", "MNAD u / v",
              "S (states recorded)", "S (latents recorded)", "bound",
              "S / bound (states / latents)", "paper (Fig. 7)"]  # fmt: skip
    return table(header, rows)


def _assimilation(row: dict[str, Any]) -> str:
    """``teacher forcing`` (rows written before the setting existed too) or
    ``innovation, τ = 70``."""
    if row.get("assimilation", "teacher_forcing") == "teacher_forcing":
        return "teacher forcing"
    tau = row["assimilation_time"]
    if tau == 0:
        return "innovation, g = 1"
    if tau >= 1e9:  # g ≈ 0: the model runs free through the micro windows
        return "none (free run through the windows)"
    return f"innovation, τ = {tau:g}"


def _share(x: float) -> str:
    return f"{x:.2f}" if x >= 0.095 else f"{x:.2g}"


def _states_rows(doc: dict[str, Any]) -> list[dict[str, Any]]:
    return [s for s, _ in _pairs(doc) if s is not None]


def render_ks_sweep(docs: Docs) -> str:
    doc = docs["ks_sweep/sweep.json"]
    dt, rows, first = _dt_coarse(doc), [], True
    for i, r in enumerate(_states_rows(doc)):
        valid = f"{r['valid_time_lyapunov']:.2f}" + (" Lyapunov times" if i == 0 else "")
        rows.append([_run_label(r["_extra"], r["_t_macro"], dt, first),
                     "–" if r["rho"] is None else f"{r['rho']:g}", _share(r["micro_fraction"]),
                     f"{r['wasserstein']:.4f}", f"{r['l1_histogram']:.3f}", valid,
                     f"{r['speedup']:.1f}"])  # fmt: skip
        first = first and r["_t_macro"] is None
    header = [
        "run",
        "ρ",
        "micro share",
        "Wasserstein",
        "L1 histogram",
        "valid time (NAD < 0.1)",
        "S",
    ]
    return table(header, rows)


def render_ad3d_sweep(docs: Docs) -> str:
    doc = docs["ad3d_sweep/sweep.json"]
    dt, rows, first = _dt_coarse(doc), [], True
    for r in _states_rows(doc):
        rows.append([_run_label(r["_extra"], r["_t_macro"], dt, first),
                     "–" if r["rho"] is None else f"{r['rho']:g}", _share(r["micro_fraction"]),
                     f"{r['wasserstein_all']:.3f}", f"{r['wasserstein_last']:.3f}",
                     f"{r['m1_mae']:.3f} / {r['m2_mae']:.3f}", f"{r['speedup']:.1f}"])  # fmt: skip
        first = first and r["_t_macro"] is None
    header = ["run", "ρ", "micro share", "W1 all steps", "W1 last step", "M1 / M2 error", "S"]
    return table(header, rows)


MUTATION_ORDER = ["metrics", "schedule", "mappers", "messages", "protocol"]


def _mutation_docs(docs: Docs) -> list[dict[str, Any]]:
    def key(d):
        t = d["target"]
        return (MUTATION_ORDER.index(t) if t in MUTATION_ORDER else len(MUTATION_ORDER), t)

    return sorted(docs.values(), key=key)


def render_mutation(docs: Docs) -> str:
    rows = []
    for d in _mutation_docs(docs):
        modules = ", ".join(f"`{m.removeprefix('ledmus/')}`" for m in d["modules"])
        tests = ", ".join(f"`{t.removeprefix('tests/')}`" for t in d["tests"])
        rows.append([f"`{d['target']}`", modules, tests, f"{d['killed']} / {d['total']}",
                     str(d["equivalent_count"]), f"{100 * d['score']:.1f} %"])  # fmt: skip
    return table(["target", "modules", "tests", "killed / mutants", "equivalent", "score"], rows)


def source_mutation(docs: Docs, shown: Callable[[str], str]) -> str:
    """tools/mutation.py records no command line: it is ``python tools/mutation.py TARGET``."""
    by_file = {id(d): rel for rel, d in docs.items()}
    groups: dict[str, list[dict[str, Any]]] = {}
    for d in _mutation_docs(docs):
        groups.setdefault(describe(provenance_of(d)), []).append(d)
    entries = [(", ".join(shown(by_file[id(d)]) for d in ds), desc,
                "python tools/mutation.py " + " ".join(d["target"] for d in ds))
               for desc, ds in groups.items()]  # fmt: skip
    return source_line(entries)


def render_quickstart(docs: Docs) -> str:
    d = docs["quickstart.json"]
    runs = {r["engine"]: r for r in d["runs"]}
    parts = []
    if "muscle3" in runs:
        r = runs["muscle3"]
        batch = r.get("metrics", {}).get("settings", {}).get("ensemble", 1)
        parts.append(f"Measured here: speed-up {r['speedup']:.1f} (the micro-only run at batch "
                     f"{batch} took {r['micro_only_wall_s']:.1f} s, the coupled loop "
                     f"{r['wall_s']:.2f} s, recording included); the whole command takes "
                     f"{r['command_wall_s']:.0f} s including MUSCLE3 start-up; MNAD u "
                     f"{r['mnad_u']:.4f}, v {r['mnad_v']:.4f}.")  # fmt: skip
    if "embedded" in runs:
        r = runs["embedded"]
        parts.append(f"Embedded (`ledmus run`): speed-up {r['speedup']:.1f}, coupled loop "
                     f"{r['wall_s']:.2f} s, whole command {r['command_wall_s']:.0f} s; MNAD u "
                     f"{r['mnad_u']:.4f}, v {r['mnad_v']:.4f}.")  # fmt: skip
    if d.get("settings_overrides"):
        changed = ", ".join(f"{k}={v}" for k, v in d["settings_overrides"].items())
        parts.append(f"(Settings changed: {changed}.)")
    return " ".join(parts)


READOUT = {True: "increment `z + W h`", False: "eq 16, `z = W h`"}
VALIDATION = {"teacher_forced": "one-step (teacher-forced)", "free_run": "free-run validation"}


def render_ablation(docs: Docs) -> str:
    d = docs["fhn_rnn_ablation.json"]
    variants: dict[str, list[dict[str, Any]]] = {}
    for r in d["rows"]:
        variants.setdefault(r["variant"], []).append(r)
    rows = []
    for rs in variants.values():
        r = rs[0]
        noise = r.get("noise") or 0
        rows.append([READOUT[bool(r["residual"])], f"{100 * noise:g} %" if noise else "0",
                     VALIDATION.get(r.get("validation"), str(r.get("validation"))),
                     " / ".join(str(x["seed"]) for x in rs),
                     " / ".join(sig(x["mnad_u"]) for x in rs)])  # fmt: skip
    header = ["read-out", "input noise", "early stopping on", "seed", f"MNAD u ({d['horizon']})"]
    return table(header, rows)


# ----------------------------------------------------------------------------- lifting
def render_lifting_drift(docs: Docs) -> str:
    doc = docs["lifting.json"]
    rows = {(r["strategy"], r["autoencoder"]): r for r in doc["drift"]}
    base = rows[("equilibrium", False)]["nad_u_400"]
    out = []
    for (name, ae), r in rows.items():
        if ae:
            continue
        a = rows.get((name, True))
        out.append([f"`{name}`", sci(r["nad_u_100"]), sci(r["nad_u_400"]),
                    f"{base / r['nad_u_400']:.0f}×" if name != "equilibrium" else "1",
                    f"{sci(a['nad_u_100'])} / {sci(a['nad_u_400'])}" if a else "–"])  # fmt: skip
    every = doc["every"]
    header = [f"lifting (re-lift every {every} Δt)", "NAD u after 100 Δt", "after 400 Δt",
              "400 Δt: smaller than equilibrium",
              "autoencoder in the loop: 100 / 400 Δt"]  # fmt: skip
    return table(header, out)


def render_lifting_cost(docs: Docs) -> str:
    rows = []
    for r in docs["lifting.json"]["cost"]:
        rows.append([f"{r['omega_u']:.2f}", str(r["batch"]), f"`{r['strategy']}`",
                     str(r["iterations"]), str(r["micro_steps"]),
                     sci(r["residual"]) if r["micro_steps"] else "–",
                     f"{1e3 * r['lift_s']:.1f} ms", f"{1e3 * r['window_s']:.0f} ms",
                     f"{100 * r['lift_over_window']:.1f} %",
                     sci(r["max_err_vs_manifold"])])  # fmt: skip
    header = ["ω_u", "members", "lifting", "iterations", "micro steps", "residual",
              "wall per lift", "one window (T_mu = 10 Δt)", "lift / window",
              "max error vs relaxed f"]  # fmt: skip
    return table(header, rows)


def render_fhn_lifting_sweep(docs: Docs) -> str:
    doc = docs["fhn_lifting_sweep/sweep.json"]
    by_rho: dict[float, dict[str, dict[str, Any]]] = {}
    liftings: list[str] = []
    for r in doc["runs"]:
        if r.get("rho") is None or r.get("record", "states") != "states":
            continue
        by_rho.setdefault(r["rho"], {})[r["lifting"]] = r
        if r["lifting"] not in liftings:
            liftings.append(r["lifting"])
    rows = []
    for rho, runs in by_rho.items():
        first = next(iter(runs.values()))
        row = [f"{rho:g}", f"{first['micro_fraction']:.3f}"]
        row += [" / ".join(f"{x:.4f}" for x in runs[k]["mnad"]) if k in runs else "–"
                for k in liftings]  # fmt: skip
        row += [f"{runs[k]['speedup']:.1f}" if k in runs else "–" for k in liftings]
        row += [f"{first['bound']:.1f}"]
        rows.append(row)
    header = ["ρ", "micro share", *[f"MNAD u / v, `{k}`" for k in liftings],
              *[f"S, `{k}`" for k in liftings], "bound"]  # fmt: skip
    return table(header, rows)


# -------------------------------------------------------------------------- virtual observables
def render_vo_rw(docs: Docs) -> str:
    d = docs["vo_rw_evaluate.json"]
    rows = [[f"{k} Δt", f"{100 * d['rel_l2'][k]:.2f} %", f"{100 * d['rel_l2_pde'][k]:.2f} %",
             f"{100 * d['micro_vs_pde'][k]:.2f} %"] for k in d["rel_l2"]]  # fmt: skip
    header = ["predicted snapshot", "rel. L2 of the predictive mean vs micro", "vs PDE (eq 16)",
              "micro vs PDE (sampling noise)"]  # fmt: skip
    train = d["mass_error_inferred_train"]
    text = (
        f"95 % band coverage {d['coverage95']:.3f} on the predicted steps "
        f"({d['coverage95_inferred']:.3f} on the inferred ones); mass error |1 − Σ X| "
        f"{sci(d['mass_error_inferred'])} inferred (training sequences: mean "
        f"{sci(train['mean'])}, max {sci(train['max'])}), {sci(d['mass_error_predicted'])} "
        f"predicted; Algorithm 1 with {d['samples']} samples took {d['predict_wall_s']:.1f} s."
    )
    return table(header, rows) + "\n\n" + text


def render_vo_ablation(docs: Docs) -> str:
    rows = []
    for r in docs["vo_rw.json"]["runs"]:
        rel = " / ".join(f"{100 * v:.1f}" for v in r["rel_l2"].values())
        pde = " / ".join(f"{100 * v:.1f}" for v in r["rel_l2_pde"].values())
        rows.append([r["label"], rel, pde, f"{r['coverage95']:.3f}",
                     sci(r["mass_error_inferred"]), sci(r["mass_error_predicted"]),
                     f"{r['train_wall_s']:.0f} s"])  # fmt: skip
    snaps = ", ".join(next(iter(docs["vo_rw.json"]["runs"]))["rel_l2"])
    header = ["training", f"rel. L2 vs micro, % ({snaps} Δt)", "vs PDE, %", "coverage 95 %",
              "mass error inferred", "predicted", "training wall time"]  # fmt: skip
    return table(header, rows)


def render_adaptive_fhn(docs: Docs, name: str = "adaptive_fhn.json") -> str:
    """Per 1000-Δt block: macro utilisation and MNAD u of each run, then the totals."""
    runs = docs[name]["runs"]
    names = list(runs)
    n = len(runs[names[0]]["macro_fraction_blocks"])
    rows = []
    for k in range(n):
        row = [f"{1000 * k:g}–{1000 * (k + 1):g}"]
        for name in names:
            r = runs[name]
            row += [f"{r['macro_fraction_blocks'][k]:.2f}", f"{r['mnad_u_blocks'][k]:.4f}"]
        rows.append(row)
    total = ["whole run"]
    for name in names:
        total += [f"{runs[name]['macro_fraction']:.2f}", f"**{runs[name]['mnad_u']:.4f}**"]
    rows.append(total)
    rows.append(["speed-up S"] + [x for name in names
                                  for x in (f"{runs[name]['speedup']:.2f}", "")])  # fmt: skip
    header = ["Δt"] + [f"{name}: {col}" for name in names for col in ("macro share", "MNAD u")]
    return table(header, rows)


def render_fhn_windows(docs: Docs) -> str:
    """The same micro share in fewer, longer windows: restarts, MNAD and S per (T_mu, T_m),
    with teacher forcing and by innovation (one sweep each)."""
    rows = []
    for name in FHN_WINDOWS:
        doc = docs[name]
        for r in doc["runs"]:
            t_mu = r.get("t_micro", doc["t_micro"])
            t_m = r["rho"] * t_mu
            restarts = int(doc["horizon"] // (t_mu + t_m))
            rows.append([_assimilation(r), f"{t_mu:g}", f"{t_m:g}", f"{r['micro_fraction']:.3f}",
                         str(restarts), " / ".join(f"{x:.4f}" for x in r["mnad"]),
                         f"{r['speedup']:.2f}"])  # fmt: skip
    header = ["assimilation", "T_mu", "T_m", "micro share", "restarts per run", "MNAD u / v", "S"]
    return table(header, rows)


FHN_WINDOWS = ("fhn_windows/sweep.json", "fhn_windows_innovation/sweep.json")


def render_drift(docs: Docs) -> str:
    """The shipped adaptive and online jobs: MNAD, macro share, S, drift estimate vs true."""
    d = docs["adaptive_fhn_shipped.json"]
    rows = []
    for name, r in d["runs"].items():
        drift = r.get("drift")
        est = "–" if drift is None else f"{drift['estimate_max']:.4f}"
        true = "–" if drift is None or "true_max" not in drift else f"{drift['true_max']:.4f}"
        rows.append([name, f"**{r['mnad_u']:.4f}**", f"{r['macro_fraction']:.2f}",
                     f"{r['speedup']:.2f}", str(r["interventions"].get("drift", 0)), est, true])  # fmt: skip
    header = ["run", "MNAD u", "macro share", "S", "phases ended by drift",
              "drift estimate (largest NAD)", "true largest NAD"]  # fmt: skip
    return table(header, rows)


def render_ood_fhn(docs: Docs) -> str:
    """Per out-of-distribution initial condition: MNAD u of each run, macro shares, S."""
    rows = []
    for name, case in docs["ood_fhn.json"]["cases"].items():
        f, a, o = case["fixed_rho5"], case["adaptive"], case["online"]
        rows.append([name, f"{f['mnad_u']:.4f}", f"**{a['mnad_u']:.4f}**",
                     f"**{o['mnad_u']:.4f}**", f"{a['macro_fraction']:.2f}",
                     f"{o['macro_fraction']:.2f}", f"{a['speedup']:.2f}", f"{o['speedup']:.2f}"])  # fmt: skip
    header = ["initial condition", "fixed ρ = 5: MNAD u", "adaptive: MNAD u",
              "online: MNAD u", "adaptive: macro share", "online: macro share",
              "adaptive: S", "online: S"]  # fmt: skip
    return table(header, rows)


def render_ablation_fhn(docs: Docs) -> str:
    """Adaptive-run ablations: per initial condition, MNAD u (macro share) of each ablation variant."""
    d = docs["ablation_fhn.json"]
    names = {"error_only": "error only", "uncertainty_only": "uncertainty only",
             "both_K5": "both, K = 5", "both_K3": "both, K = 3", "both_K1": "both, K = 1",
             "online_augment_off": "online, no augmentation",
             "online_augment_on": "online, mirror augmentation"}  # fmt: skip
    cases = list(d["cases"])
    rows = []
    for key, label in names.items():
        cells = []
        for c in cases:
            r = d["cases"][c].get(key)
            cells.append("–" if r is None else f"{r['mnad_u']:.4f} ({r['macro_fraction']:.2f})")
        rows.append([label, *cells])
    return table(["variant: MNAD u (macro share)", *cases], rows)


def render_ad3d_adaptive(docs: Docs) -> str:
    """AD-3D with a forcing change: adaptive vs fixed at the same micro share, W1 and M1/M2 errors."""
    d = docs["ad3d_adaptive.json"]
    rows = []
    for name, r in d["runs"].items():
        label = "adaptive" if name == "adaptive" else f"fixed, T_m = {d['fixed_t_macro']:g}"
        errs = (r["before_change"]["W1"], r["after_change"]["W1"], r["all"]["M1_mae"],
                r["all"]["M2_mae"])  # fmt: skip
        rows.append([label, f"{r['macro_fraction']:.2f}", *(f"{e:.4f}" for e in errs),
                     f"{r['speedup']:.2f}"])  # fmt: skip
    header = ["run", "macro share", "W1 before change", "W1 after change", "M1 error (run)",
              "M2 error (run)", "S"]  # fmt: skip
    return table(header, rows)


def render_closure_bgk(docs: Docs) -> str:
    """Closure acceptance: max relative L2 error over the held-out cases (ρ, u, T) per ε and model,
    then the cost of each model against BGK."""
    d = docs["closure_bgk.json"]
    label = {"ml": "ML closure", "euler": "Euler", "ns": "Navier–Stokes"}
    keys = [f"{e:g}" for e in d["eps"]]
    rows = [[label[m], *(f"{100 * d['rel_l2'][m][k]['max']:.2f} %" for k in keys)]
            for m in d["models"]]  # fmt: skip
    rows += [[f"{label[m]}: S", *(f"{d['speedup'][k][m]:.2f}" for k in keys)]
             for m in d["models"]]  # fmt: skip
    if "speedup_bound" in d:
        rows.append(["ML system, network replaced by zeros: S (bound)",
                     *(f"{d['speedup_bound'][k]:.2f}" for k in keys)])  # fmt: skip
    return table(["max rel. L2 of ρ, u, T at t = 0.1 / ε", *keys], rows)


def render_closure_fair(docs: Docs) -> str:
    """The fair acceptance metric per ε and model: the largest over the held-out cases of
    the relative L2 of ρ and T and the L2 error of u over the reference sound speed."""
    d = docs["closure_bgk.json"]
    label = {"ml": "ML closure", "euler": "Euler", "ns": "Navier–Stokes"}
    keys = [f"{e:g}" for e in d["eps"]]
    rows = []
    for m in d["models"]:
        for key, name in (("rho", "ρ"), ("u_over_c", "u / c"), ("T", "T")):
            rows.append([f"{label[m]}: {name}",
                         *(f"{100 * d['fair'][m][k][key]:.2f} %" for k in keys)])  # fmt: skip
    return table(["max over cases at t = 0.1 / ε", *keys], rows)


def render_closure_boltzmann(docs: Docs, name: str = "closure_boltzmann.json") -> str:
    """Boltzmann closure acceptance (``name``: one model's JSON): per model and case group
    the largest fair error per ε (ρ, u/c, T; the ε(x) case in its own column), then S
    against the Boltzmann solver."""
    d = docs[name]
    label = {"ml": "ML closure", "euler": "Euler", "ns": "Navier–Stokes"}
    keys = d["eps"]
    groups = (
        ("smooth", lambda n: n.startswith("smooth")),
        ("Sod", lambda n: n == "sod"),
        ("colliding", lambda n: n == "colliding"),
    )
    rows = []
    for m in d["models"]:
        for gname, pick in groups:
            cells = []
            for k in keys:
                errs = [max(v) for n, v in d["fair"][m].get(k, {}).items() if pick(n)]
                cells.append(f"{100 * max(errs):.2f} %" if errs else "–")
            rows.append([f"{label[m]}: {gname}", *cells])
    for m in d["models"]:
        rows.append(
            [
                f"{label[m]}: S",
                *(f"{d['speedup'][m][k]:.0f}" if k in d["speedup"][m] else "–" for k in keys),
            ]
        )
    return table(["max fair error at t = 0.1 / ε", *keys], rows)


def render_closure_boltzmann_trial(docs: Docs) -> str:
    """Training variants of the Boltzmann closure on the acceptance cases: per model the
    largest fair error per ε (every case; ε(x) in its own column) and the width of h."""
    d = docs["closure_boltzmann_trial.json"]
    rows = []
    for r in d["rows"]:
        width = (r.get("config") or {}).get("spec", {}).get("closure_width", "–")
        rows.append(
            [r["label"], str(width), *(f"{100 * r['fair_max'][k]:.2f} %" for k in d["eps"])]
        )
    return table(["model", "width of h", *d["eps"]], rows)


def render_closure_apply(docs: Docs) -> str:
    """The numpy closure network's cost per row: chunked, blocked layer by layer and one
    product per layer, per call size, and blocked over chunked."""
    d = docs["closure_apply.json"]
    rows = [
        [
            f"{r['profiles']} × {r['call']}",
            str(r["rows"]),
            *(f"{r[f'{k}_us_per_row']:.2f}" for k in ("chunked", "blocked", "whole")),
            f"{r['ratio']:.2f}",
        ]
        for r in d["rows"]
    ]
    header = ["profiles × call", "rows", "chunked µs/row", "blocked µs/row",
              "one product µs/row", "blocked / chunked"]  # fmt: skip
    return table(header, rows)


def render_boltzmann_dataset(docs: Docs) -> str:
    d = docs["boltzmann_dataset.json"]
    (r,) = [r for r in d["systems"] if r["system"] == "boltzmann"]
    shapes = ", ".join(f"{k} {tuple(v)}" for k, v in r["splits"].items())
    return f"{r['wall_s'] / 60:.1f} minutes on one thread ({shapes}; runs, times, N², cells)."


def render_hmm_bgk(docs: Docs) -> str:
    """HMM runs: per case and ε, for each trust level, the largest relative L2 of
    ρ, u, T at t = 0.1 against BGK, the macro share and S."""
    d = docs["hmm_bgk.json"]

    def level(t: float) -> str:
        return "0 (BGK only)" if t < 1e-9 else "∞ (closure only)" if t > 1e6 else f"{t:g}"

    cols = [level(t) for t in d["trust"]]
    rows = []
    for case in dict.fromkeys(r["case"] for r in d["rows"]):
        for eps in d["eps"]:
            cells = []
            for t in d["trust"]:
                (r,) = [r for r in d["rows"]
                        if r["case"] == case and r["eps"] == eps and r["trust"] == t]  # fmt: skip
                err = max(r[f"rel_l2_{m}"] for m in ("rho", "u", "T"))
                cells.append(f"{100 * err:.2f} % · {r['macro_fraction']:.2f} · {r['speedup']:.2f}")
            rows.append([f"{case}, ε = {eps:g}", *cells])
    return table(["case / trust level", *cols], rows)


def render_hybrid_bgk(docs: Docs, name: str = "hybrid_bgk.json") -> str:
    """The cell-local hybrid: per case and ε (then the ``transition`` rows, ε(x)), the fair
    error (largest of ρ, u/c, T) of the hybrid, the closure alone, Euler and NS, the mean
    kinetic fraction, S measured and the cost model's S."""
    d = docs[name]
    rows = []
    for r in [*d["rows"], *d.get("transition", [])]:  # transition: ε(x) rows
        errs = [
            "–" if r[k] is None else f"{100 * r[k]:.2f} %"
            for k in ("error_hybrid", "error_closure", "error_euler", "error_ns")
        ]
        eps = "ε(x)" if isinstance(r["eps"], str) else f"ε = {r['eps']:g}"
        rows.append(
            [
                f"{r['case']}, {eps}",
                *errs,
                f"{r['kinetic_fraction_mean']:.2f}",
                f"{r['speedup']:.2f}",
                f"{r['speedup_model']:.2f}",
                f"{r['conservation_error']:.0e}",
            ]
        )
    header = ["case", "hybrid", "closure alone", "Euler", "NS", "kinetic fraction", "S",
              "S (cost model)", "conservation"]  # fmt: skip
    return table(header, rows)


def render_hybrid_bgk_summary(
    docs: Docs, name: str = "hybrid_bgk.json", solver: str = "BGK"
) -> str:
    """The cell-local hybrid per ε: the largest fair error over the cases of the hybrid,
    the closure alone, Euler and NS (– where NS did not run); the kinetic fraction and S
    against the kinetic ``solver`` (smallest–largest)."""
    d = docs[name]
    eps = sorted({r["eps"] for r in d["rows"]})
    by = {e: [r for r in d["rows"] if r["eps"] == e] for e in eps}

    def worst(key: str) -> list[str]:
        out = []
        for e in eps:
            vals = [r[key] for r in by[e] if r[key] is not None]
            out.append(f"{100 * max(vals):.2f} %" if vals else "–")
        return out

    def span(key: str) -> list[str]:
        return [f"{min(r[key] for r in by[e]):.2f}–{max(r[key] for r in by[e]):.2f}" for e in eps]

    rows = [
        ["hybrid: max error", *worst("error_hybrid")],
        ["closure alone: max error", *worst("error_closure")],
        ["Euler: max error", *worst("error_euler")],
        ["Navier–Stokes: max error", *worst("error_ns")],
        ["hybrid: kinetic fraction", *span("kinetic_fraction_mean")],
        [f"hybrid: S against {solver}", *span("speedup")],
        ["cost model S", *span("speedup_model")],
    ]
    return table(["fair error at t = 0.1 / ε", *(f"{e:g}" for e in eps)], rows)


def render_closure_joint(docs: Docs) -> str:
    """Joint closure training: sequential against joint training: the closure's max relative L2
    per ε, then the decoder's f error and W recovery on the held-out runs."""
    d = docs["closure_joint.json"]["variants"]
    keys = list(next(iter(d.values()))["rel_l2_max"])
    rows = []
    for name, v in d.items():
        dec = v["decoder"]
        rows.append([name, *(f"{100 * v['rel_l2_max'][k]:.2f} %" for k in keys),
                     " / ".join(f"{e['f']:.4f}" for e in dec),
                     " / ".join(f"{e['W']:.2f}" for e in dec)])  # fmt: skip
    return table(["training / ε", *keys, "decoder: rel. L2 of f", "W after restrict∘lift"], rows)


def render_closure_variants(docs: Docs) -> str:
    """Closure variants: max relative L2 (ρ, u, T at t = 0.1) over the smooth and over the shock
    cases per ε, for each training variant, then for each HLL speed factor (and the time
    of the ML runs)."""
    d = docs["closure_variants.json"]
    keys = d["eps"]

    def cells(rel: dict) -> list[str]:
        def pct(x: float) -> str:
            return "fails" if not math.isfinite(x) else f"{100 * x:.2f}"

        return [f"{pct(rel[k]['smooth'])} / {pct(rel[k]['shock'])}" for k in keys]

    names = sorted(d["variants"], key=lambda n: (n != "shipped", n))
    rows = [[name, *cells(d["variants"][name]["rel_l2"])] for name in names]
    for k in sorted(d["speed_factor"], key=float):
        v = d["speed_factor"][k]
        rows.append([f"shipped, HLL speeds u ∓ {k}·√(3T) ({sum(v['wall_s'].values()):.0f} s)",
                     *cells(v["rel_l2"])])  # fmt: skip
    return table(["smooth / shock cases: max rel. L2 in % / ε", *keys], rows)


# ------------------------------------------------------------------------------- blocks
@dataclass
class Block:
    """Files (relative to the out dir; a ``*`` pattern needs one match or more) and the
    renderer; ``optional`` files are used when present."""

    files: list[str]
    render: Callable[[Docs], str]
    optional: list[str] = field(default_factory=list)
    source: Callable[[Docs, Callable[[str], str]], str] = default_source


def render_restart(docs: Docs) -> str:
    """One row per model and warm-up: lag and NAD of u after 1, 10 and H free steps."""
    rows = docs["restart_fhn.json"]["rows"]
    h = rows[0]["horizon"]
    head = (
        f"| model | W | lag after 1 | lag after 10 | lag after {h} (all / moving) | "
        f"NAD u after {h} | shape NAD |\n|---|---|---|---|---|---|---|"
    )
    lines = [head]
    for r in rows:
        last = r[f"after_{h}"]
        moving = last.get("lag_mean_moving")
        mv = "–" if moving is None else f"{moving:+.4f}"
        lines.append(
            f"| {r['model']} | {r['warmup']} | {r['after_1']['lag_mean']:+.4f} | "
            f"{r['after_10']['lag_mean']:+.4f} | {last['lag_mean']:+.4f} ± {last['lag_std']:.3f}"
            f" / {mv} | {last['nad_mean']:.5f} | {r['shape_nad_mean']:.5f} |"
        )
    return "\n".join(lines)


def render_restart_coupled(docs: Docs) -> str:
    """One row per model and coupled run: restarts, MNAD u, final lag, lag per restart."""
    rows = []
    for name in RESTART_COUPLED:
        doc = docs[name]
        model = Path(doc["model"]).name
        for r in doc["rows"]:
            latent = r["t_macro"] is None
            per = "–" if latent else (
                f"{r['lag_per_restart_mean']:+.4f} ± {r['lag_per_restart_std']:.4f} / "
                f"{r['lag_per_restart_median']:+.4f}"
            )  # fmt: skip
            rows.append([model, "Latent" if latent else f"{r['t_macro']:g}",
                         "–" if latent else _assimilation(r), str(r["restarts"]),
                         f"{r['mnad_u']:.5f}",
                         f"{r['lag_final_mean']:+.3f} / {r['lag_final_median']:+.3f}", per])  # fmt: skip
    header = ["model", "T_m", "assimilation", "restarts per run", "MNAD u",
              "final lag (mean / median)", "lag per restart (mean ± std / median)"]  # fmt: skip
    return table(header, rows)


RESTART_COUPLED = ("restart_coupled_fhn.json", "restart_coupled_fhn_single.json")


def render_capabilities(docs: Docs) -> str:
    """One row per part of ledmus with one headline number from its benchmark JSON."""
    solvers = {(c["system"], c["batch"]): c for c in docs["solvers.json"]["cases"]}
    fhn = docs["led_fhn_evaluate.json"]
    ks = docs["led_ks_evaluate.json"]
    ad3d = docs["led_ad3d_evaluate.json"]
    pca = docs["pca_fhn_evaluate.json"]
    vo = docs["vo_rw_evaluate.json"]
    closure = docs["closure_bgk.json"]["summary"]
    boltz = docs["closure_boltzmann_wide.json"]["summary"]
    hyb = docs["hybrid_boltzmann.json"]["rows"]
    riemann = [r["speedup"] for r in hyb if r["kinetic_fraction_mean"] > 0]
    smooth = [r["speedup"] for r in hyb if r["kinetic_fraction_mean"] == 0]
    main = {r["engine"]: r for r in docs["quickstart.json"]["runs"]}
    overhead = docs["coupling_overhead.json"]["rows"]
    adaptive = docs["adaptive_fhn_shipped.json"]["runs"]["adaptive"]
    cold = docs["cold_start_fhn.json"]["runs"]["cold_start"]
    ratios = [r["ratio"] for r in overhead]
    rows = [
        ["micro solvers", "FHN lattice Boltzmann, Kuramoto–Sivashinsky, Brownian particles (1-D, "
         "3-D), lattice random walk, BGK and Boltzmann gases; batched, seeded",
         f"FHN {count(solvers[('fhn', 1)]['steps_per_s'])} micro steps/s at batch 1"],
        ["LED surrogate, FHN", "autoencoder + LSTM, the LED paper's protocol",
         f"latent MNAD u {fhn['mnad_u']:.4f} over {fhn['horizon']} Δt ({fhn['n_ics']} test runs)"],
        ["LED surrogate, KS", "MLP autoencoder (5 × 50) + GRU",
         f"valid prediction time {ks['valid_time_lyapunov']:.2f} Lyapunov times"],
        ["LED surrogate, AD-3D", "permutation-invariant VAE + mixture-density decoder",
         f"Wasserstein distance {ad3d['wasserstein_all']:.3f} (all steps)"],
        ["PCA baseline", "8 principal components + LSTM",
         f"latent MNAD u {pca['mnad_u']:.4f} (FHN, same protocol)"],
        ["virtual observables", "probabilistic coarse-graining (Kaltenbach & Koutsourelakis)",
         f"relative L2 error {max(vo['rel_l2'].values()):.3f} or less against the micro run"],
        ["moment closure", "learned closure of a BGK gas, finite volumes, PETSc backend",
         f"max relative L2 {closure['ml_max_rel_l2']:.3f}, speed-up {closure['ml_speedup_min']:.2f} "
         "or more against BGK"],
        ["moment closure, Boltzmann gas", "Galilean-invariant moments W ∈ R⁹, IMEX relaxation, "
         "2-D Maxwell molecules (`closure_boltzmann_wide.pt`)", f"smooth flows {100 * boltz['ml_max_fair_smooth']:.1f} %, shocks "
         f"{100 * boltz['ml_max_fair_shocks']:.1f} % (fair metric); speed-up "
         f"{boltz['ml_speedup_min']:.0f} or more against the solver at N = 48"],
        ["cell-local hybrid, Boltzmann gas", "kinetic cells where the closures disagree or a "
         "front is sharp, closure cells elsewhere, one flux per interface",
         f"max error {100 * max(r['error_hybrid'] for r in hyb):.1f} %; speed-up "
         f"{min(riemann):.1f}–{max(riemann):.1f} with kinetic cells, {min(smooth):.0f}–"
         f"{max(smooth):.0f} without"],
        ["coupled run, fixed schedule", "T_warm, T_m, T_mu; MUSCLE3 or one process, bitwise equal",
         f"main job: speed-up {main['muscle3']['speedup']:.1f}, MNAD u {main['muscle3']['mnad_u']:.4f}"],
        ["engines", "MUSCLE3 (four processes) and embedded; MPI ensembles",
         f"MUSCLE3 loop {min(ratios):.2f}–{max(ratios):.2f}× the embedded one"],
        ["adaptive schedule", "per-member comparison, monitors, ensembles' uncertainty",
         f"shipped FHN job: MNAD u {adaptive['mnad_u']:.4f}, macro fraction "
         f"{adaptive['macro_fraction']:.2f}"],
        ["online training, cold start", "a trainer component fine-tunes the model during the run",
         f"cold start: MNAD u {cold['mnad_u']:.4f}, speed-up {cold['speedup']:.2f}"],
    ]  # fmt: skip
    return table(["part", "what", "headline (measured)"], rows)


BLOCKS: dict[str, Block] = {
    "capabilities": Block(
        [
            "solvers.json",
            "led_fhn_evaluate.json",
            "led_ks_evaluate.json",
            "led_ad3d_evaluate.json",
            "pca_fhn_evaluate.json",
            "vo_rw_evaluate.json",
            "closure_bgk.json",
            "closure_boltzmann_wide.json",
            "hybrid_boltzmann.json",
            "quickstart.json",
            "coupling_overhead.json",
            "adaptive_fhn_shipped.json",
            "cold_start_fhn.json",
        ],
        render_capabilities,
    ),  # fmt: skip
    "restart": Block(["restart_fhn.json"], render_restart),
    "restart_coupled": Block(list(RESTART_COUPLED), render_restart_coupled),
    "quickstart": Block(["quickstart.json"], render_quickstart),
    "mutation": Block(["mutation_*.json"], render_mutation, source=source_mutation),
    "solvers": Block(["solvers.json"], render_solvers),
    "ks_lyapunov": Block(["ks_lyapunov.json"], render_ks_lyapunov),
    "dataset_times": Block(["dataset_times.json"], render_dataset_times),
    "pca_fhn": Block(["pca_fhn_evaluate.json", "led_fhn_evaluate.json"], render_pca_fhn),
    "evaluation_fhn": Block(["led_fhn_evaluate.json"], render_evaluation_fhn),
    "ablation": Block(["fhn_rnn_ablation.json"], render_ablation),
    "evaluation_ks_ad3d": Block(
        ["led_ks_evaluate.json", "led_ad3d_evaluate.json", "models.json"],
        render_evaluation_ks_ad3d,
        optional=["led_ad1d_evaluate.json"],
    ),  # fmt: skip
    "reconstruction": Block(["reconstruction_*.json"], render_reconstruction),
    "latent_throughput": Block(["latent_throughput.json"], render_latent_throughput),
    "training_times": Block(["models.json"], render_training_times),
    "fhn_sweep": Block(["fhn_sweep/sweep.json"], render_fhn_sweep),
    "coupling_overhead": Block(["coupling_overhead*.json"], render_coupling_overhead),
    "coupling_parts": Block(["coupling_overhead*.json"], render_coupling_parts),
    "libmuscle_floor": Block(["libmuscle_floor.json"], render_libmuscle_floor),
    "ks_sweep": Block(["ks_sweep/sweep.json"], render_ks_sweep),
    "ad3d_sweep": Block(["ad3d_sweep/sweep.json"], render_ad3d_sweep),
    "lifting_drift": Block(["lifting.json"], render_lifting_drift),
    "lifting_cost": Block(["lifting.json"], render_lifting_cost),
    "fhn_lifting_sweep": Block(["fhn_lifting_sweep/sweep.json"], render_fhn_lifting_sweep),
    "vo_rw": Block(["vo_rw_evaluate.json"], render_vo_rw),
    "vo_ablation": Block(["vo_rw.json"], render_vo_ablation),
    "adaptive_fhn": Block(["adaptive_fhn.json"], render_adaptive_fhn),
    "ood_fhn": Block(["ood_fhn.json"], render_ood_fhn),
    "fhn_windows": Block(list(FHN_WINDOWS), render_fhn_windows),
    "adaptive_fhn_shipped": Block(["adaptive_fhn_shipped.json"], render_drift),
    "ablation_fhn": Block(["ablation_fhn.json"], render_ablation_fhn),
    "ad3d_adaptive": Block(["ad3d_adaptive.json"], render_ad3d_adaptive),
    "closure_bgk": Block(["closure_bgk.json"], render_closure_bgk),
    "hmm_bgk": Block(["hmm_bgk.json"], render_hmm_bgk),
    "closure_fair": Block(["closure_bgk.json"], render_closure_fair),
    "closure_joint": Block(["closure_joint.json"], render_closure_joint),
    "closure_boltzmann": Block(["closure_boltzmann.json"], render_closure_boltzmann),
    "closure_boltzmann_wide": Block(
        ["closure_boltzmann_wide.json"],
        lambda docs: render_closure_boltzmann(docs, "closure_boltzmann_wide.json"),
    ),
    "closure_boltzmann_trial": Block(
        ["closure_boltzmann_trial.json"], render_closure_boltzmann_trial
    ),
    "closure_apply": Block(["closure_apply.json"], render_closure_apply),
    "boltzmann_dataset": Block(["boltzmann_dataset.json"], render_boltzmann_dataset),
    "hybrid_bgk": Block(["hybrid_bgk.json"], render_hybrid_bgk),
    "hybrid_bgk_summary": Block(["hybrid_bgk.json"], render_hybrid_bgk_summary),
    "hybrid_boltzmann": Block(
        ["hybrid_boltzmann.json"],
        lambda docs: render_hybrid_bgk(docs, "hybrid_boltzmann.json"),
    ),
    "hybrid_boltzmann_summary": Block(
        ["hybrid_boltzmann.json"],
        lambda docs: render_hybrid_bgk_summary(docs, "hybrid_boltzmann.json", "Boltzmann"),
    ),
    "hybrid_boltzmann_wide_summary": Block(
        ["hybrid_boltzmann_wide.json"],
        lambda docs: render_hybrid_bgk_summary(docs, "hybrid_boltzmann_wide.json", "Boltzmann"),
    ),
    "hybrid_bgk_nx400": Block(
        ["hybrid_bgk_nx400.json"], lambda docs: render_hybrid_bgk(docs, "hybrid_bgk_nx400.json")
    ),
    "closure_variants": Block(["closure_variants.json"], render_closure_variants),
    "cold_start_fhn": Block(
        ["cold_start_fhn.json"], lambda docs: render_adaptive_fhn(docs, "cold_start_fhn.json")
    ),
}


def load(block: Block, out_dir: Path) -> tuple[Docs | None, list[str]]:
    """The block's JSONs, or None and the names of the missing ones."""
    docs: Docs = {}
    missing = []
    for pattern in [*block.files, *block.optional]:
        if "*" in pattern:
            found = sorted(glob.glob(str(out_dir / pattern)))
            rels = [Path(f).relative_to(out_dir).as_posix() for f in found]
        else:
            rels = [pattern] if (out_dir / pattern).is_file() else []
        if not rels and pattern in block.files:
            missing.append(pattern)
        for rel in rels:
            docs[rel] = json.loads((out_dir / rel).read_text())
    return (None, missing) if missing else (docs, [])


def shown_path(out_dir: Path) -> Callable[[str], str]:
    """How a file is named in the source line: relative to the repository when inside it."""
    try:
        base = out_dir.resolve().relative_to(ROOT).as_posix()
    except ValueError:
        base = str(out_dir)
    return lambda rel: f"{base}/{rel}"


def render_block(name: str, docs: Docs, out_dir: Path = OUT_DIR) -> str:
    """The generated text between a block's markers (ends with a newline)."""
    block = BLOCKS[name]
    return f"{block.render(docs)}\n\n{block.source(docs, shown_path(out_dir))}\n"


def pages(root: Path = ROOT) -> list[Path]:
    """README.md and every Markdown page of the documentation's sources (not its build)."""
    docs = root / "docs"
    found = sorted(
        p
        for p in docs.rglob("*.md")
        if not {"_build", "auto_examples"} & set(p.relative_to(docs).parts)
    )
    return [root / "README.md", *found]


def regenerate(
    text: str, out_dir: Path, warn: Callable[[str], None] = print, found: set[str] | None = None
) -> tuple[str, list[str]]:
    """``text`` with every marked block whose JSONs exist regenerated; returns the new text
    and the names of the blocks left as they were (JSON missing).  ``found`` collects the
    names of the blocks seen."""
    skipped = []
    found = set() if found is None else found

    def replace(m: re.Match) -> str:
        name = m.group("name")
        found.add(name)
        if name not in BLOCKS:
            raise SystemExit(f"tables: block {name!r} has no renderer; known: {', '.join(BLOCKS)}")
        docs, missing = load(BLOCKS[name], out_dir)
        if docs is None:
            skipped.append(name)
            warn(f"tables: block {name!r} left as it is: {', '.join(missing)} missing in {out_dir}")
            return m.group(0)
        return f"<!-- table: {name} -->\n{render_block(name, docs, out_dir)}<!-- /table -->"

    return MARKER.sub(replace, text), skipped


def stale(
    files: list[Path], out_dir: Path = OUT_DIR, warn: Callable[[str], None] = print
) -> tuple[dict[Path, tuple[str, str]], list[str]]:
    """The pages whose blocks differ from the JSONs (path -> (text, regenerated text)) and
    the blocks whose JSON is missing."""
    changed: dict[Path, tuple[str, str]] = {}
    skipped: list[str] = []
    found: set[str] = set()
    for path in files:
        text = path.read_text()
        new, missing = regenerate(text, out_dir, warn=warn, found=found)
        skipped += missing
        if new != text:
            changed[path] = (text, new)
    for name in BLOCKS:
        if name not in found:
            warn(f"tables: no markers for block {name!r} in {len(files)} pages")
    return changed, sorted(set(skipped))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument(
        "--check", action="store_true", help="do not write; exit 1 with a diff when a page differs"
    )
    ap.add_argument(
        "--strict",
        action="store_true",
        help="with --check, also fail when a block's JSON is missing",
    )
    ap.add_argument("--out-dir", type=Path, default=OUT_DIR, help="where the JSONs are")
    ap.add_argument(
        "--page",
        type=Path,
        action="append",
        help="a Markdown page to process (repeatable; default: README.md and docs/**/*.md)",
    )
    args = ap.parse_args(argv)
    files = args.page or pages()
    changed, skipped = stale(files, args.out_dir, warn=lambda m: print(m, file=sys.stderr))
    if args.check:
        for path, (text, new) in changed.items():
            sys.stdout.writelines(
                difflib.unified_diff(
                    text.splitlines(keepends=True),
                    new.splitlines(keepends=True),
                    str(path),
                    f"{path} (from the JSONs)",
                )
            )
        if changed:
            print(
                f"tables: {len(changed)} pages differ from the JSONs; run python docs/tables.py",
                file=sys.stderr,
            )
            return 1
        if args.strict and skipped:
            print(f"tables: --strict: no JSON for {', '.join(skipped)}", file=sys.stderr)
            return 1
        return 0
    from ledmus.atomic import atomic_path

    for path, (text, new) in changed.items():
        with atomic_path(path) as tmp:
            tmp.write_text(new)
            if path.read_text() != text:  # edited meanwhile: do not overwrite that
                raise SystemExit(
                    f"tables: {path} changed while the tables were generated; run it again"
                )
        print(f"tables: rewrote {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
