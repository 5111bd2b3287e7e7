"""docs/tables.py: each documentation block rendered from a small hand-written JSON, the
marker replacement, ``--check``/``--strict``, and README.md in sync with benchmarks/out.
No benchmark runs here."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _load_tool():
    spec = importlib.util.spec_from_file_location("docs_tables", ROOT / "docs" / "tables.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["docs_tables"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


rt = _load_tool()

PROV = {"commit": "0123456789abcdef", "dirty": False, "command": "python benchmarks/x.py --a 1",
        "machine": "vm", "threads": 1, "omp_num_threads": "1", "cpu_count": 2}  # fmt: skip


def doc(**payload):
    return {**payload, "provenance": PROV}


# ---------------------------------------------------------------------------- renderers
def test_solvers():
    d = doc(cases=[
        {"system": "fhn", "label": "fhn", "batch": 1, "steps_per_s": 43311.2, "member_steps_per_s": 43311.2,
         "peak_mib": 0.0257, "target_steps_per_s": 20000, "target_met": True},
        {"system": "rw", "label": "rw (250k particles)", "batch": 64, "steps_per_s": 12.4,
         "member_steps_per_s": 792.1, "peak_mib": 320.5, "target_steps_per_s": None, "target_met": None},
        {"system": "rw", "label": "rw", "batch": 1, "steps_per_s": 400.0, "member_steps_per_s": 400.0,
         "peak_mib": 5.07, "target_steps_per_s": 500, "target_met": False}])  # fmt: skip
    assert rt.render_solvers({"solvers.json": d}) == (
        "| system | batch | micro steps/s | member-steps/s | peak MiB | target (batch 1) |\n"
        "|---|---|---|---|---|---|\n"
        "| fhn | 1 | 43,311 | 43,311 | 0.03 | ≥ 20,000: met |\n"
        "| rw (250k particles) | 64 | 12 | 792 | 320.50 | |\n"
        "| rw | 1 | 400 | 400 | 5.07 | ≥ 500: MISSED |"
    )


def test_ks_lyapunov():
    d = doc(lambda1_mean=0.04721, lambda1_se=0.00139, lyapunov_time=21.18, wall_s=15.6,
            settings={"pairs": 8, "t_end": 2000.0, "length": 22.0})  # fmt: skip
    assert rt.render_ks_lyapunov({"ks_lyapunov.json": d}) == (
        "λ₁ = 0.0472 ± 0.0014 (standard error over the 8 trajectories; Lyapunov time 21.2, "
        "16 s wall). Literature for L = 22: 0.043–0.048 ([1]: 0.048, Lyapunov time 20.8)."
    )


def test_dataset_times():
    rows = [{"system": "fhn", "wall_s": 80.4}, {"system": "ad3d", "wall_s": 409.6}]
    assert rt.render_dataset_times({"dataset_times.json": doc(scale="paper", systems=rows)}) == (
        "fhn 80 s, ad3d 410 s."
    )
    small = rt.render_dataset_times({"dataset_times.json": doc(scale="small", systems=rows[:1])})
    assert small == "fhn 80 s (scale small)."


def test_latent_throughput_adds_a_device_column_only_for_gpus():
    row = {"batch": 1024, "device": "cpu", "latent_steps_per_s": 1759.2, "led_member_dt_per_s": 1800897.0,
           "micro_member_dt_per_s": 1398.4, "ratio": 1287.8}  # fmt: skip
    assert rt.render_latent_throughput(
        {"latent_throughput.json": doc(system="fhn", rows=[row])}
    ) == (
        "| batch | latent steps/s | member-Δt/s LED | member-Δt/s LB | ratio |\n"
        "|---|---|---|---|---|\n"
        "| 1024 | 1,759 | 1,800,897 | 1,398 | 1,288 |"
    )
    gpu = rt.render_latent_throughput(
        {"latent_throughput.json": doc(system="ks", rows=[row, {**row, "device": "cuda"}])}
    )
    assert gpu.splitlines()[0] == (
        "| batch | device | latent steps/s | member-Δt/s LED | member-Δt/s micro | ratio |"
    )
    assert gpu.splitlines()[3].startswith("| 1024 | cuda | 1,759 |")


def test_coupling_parts_shows_per_window_times_of_runs_that_recorded_them():
    parts = {"macro_s": 0.098, "lift_s": 0.0098, "restrict_s": 0.049, "micro_s": 3.92,
             "coupling_s": 0.1, "record_s": 0.003}  # fmt: skip
    slow = {**parts, "lift_s": 0.049}
    row = {"t_macro": 10.0, "t_micro": 10.0, "windows": 98, "embedded_parts_s": parts,
           "muscle3_parts_s": slow}  # fmt: skip
    docs = {"coupling_overhead_noprofile.json": doc(settings={"profile": "none"}, rows=[row]),
            "coupling_overhead.json": doc(settings={}, rows=[{"t_macro": 50.0, "windows": 33},
                                                             {**row, "t_macro": 200.0}])}  # fmt: skip
    lines = rt.render_coupling_parts(docs).splitlines()
    assert lines[0] == ("| T_m / T_mu | libmuscle profile | macro (ms per window) | lift | restrict "
                        "| micro |")  # fmt: skip
    # embedded / MUSCLE3 per window, by T_m as a number; a row without the split is left out
    assert lines[2:] == ["| 10 / 10 | none | 1.00 / 1.00 | 0.10 / 0.50 | 0.50 / 0.50 | 40.00 / 40.00 |",
                         "| 200 / 10 | all | 1.00 / 1.00 | 0.10 / 0.50 | 0.50 / 0.50 | 40.00 / 40.00 |"]  # fmt: skip


def test_libmuscle_floor():
    rows = [{"label": "idle ring", "work_ms": dict.fromkeys(("macro", "lift", "micro", "restrict"), 0.0),
             "exchange_ms": 0.93, "overhead_ms": 0.93, "ratio": None},
            {"label": "FHN job's work (T_m = 10)",
             "work_ms": {"macro": 2.7, "lift": 0.6, "micro": 35.0, "restrict": 0.8},
             "exchange_ms": 41.27, "overhead_ms": 2.17, "overhead_max_ms": 3.5, "ratio": 1.0555}]  # fmt: skip
    lines = rt.render_libmuscle_floor({"libmuscle_floor.json": doc(rows=rows)}).splitlines()
    assert lines[2] == "| idle ring | 0 / 0 / 0 / 0 | 0.93 ms | 0.93 ms | – |"
    assert lines[3] == ("| FHN job's work (T_m = 10) | 2.7 / 0.6 / 35 / 0.8 | 41.27 ms | 2.17 ms "
                        "(slowest run 3.50 ms) | 1.056 |")  # fmt: skip


def test_coupling_overhead_merges_the_ensemble_runs():
    row = {"t_macro": 10.0, "t_micro": 10.0, "windows": 98, "embedded_loop_s": 4.214, "muscle3_loop_s": 4.651,
           "ratio": 1.1037, "per_exchange_ms": 4.46, "embedded_command_s": 6.21, "muscle3_command_s": 11.52}  # fmt: skip
    docs = {"coupling_overhead.json": doc(settings={"ensemble": 1, "model": "models/led_fhn_ens.pt",
                                                    "profile": "all"},
                                          rows=[{**row, "t_macro": 50.0}, row]),
            "coupling_overhead_noprofile.json": doc(settings={"ensemble": 1, "profile": "none",
                                                              "model": "models/led_fhn_ens.pt"},
                                                    rows=[{**row, "ratio": 1.05}]),
            "coupling_overhead_single.json": doc(settings={"ensemble": 1, "model": "models/led_fhn.pt"},
                                                 rows=[row]),
            "coupling_overhead_ens20.json": doc(settings={"ensemble": 20}, rows=[row])}  # fmt: skip
    lines = rt.render_coupling_overhead(docs).splitlines()
    assert lines[0] == ("| ensemble | model | libmuscle profile | T_m / T_mu | windows | embedded loop | "
                        "MUSCLE3 loop | ratio | per exchange | whole command, embedded / MUSCLE3 |")  # fmt: skip
    assert lines[2] == ("| 1 | `led_fhn.pt` | all | 10 / 10 | 98 | 4.21 s | 4.65 s | 1.10 | 4.5 ms | "
                        "6.2 s / 11.5 s |")  # fmt: skip
    # a JSON without a model ran the single LSTM (the job's model before the ensemble),
    # without a profile level libmuscle's default (all); the no-profile run has its own row
    assert [line.split(" | ")[:4] for line in lines[2:]] == [
        ["| 1", "`led_fhn.pt`", "all", "10 / 10"], ["| 1", "`led_fhn_ens.pt`", "all", "10 / 10"],
        ["| 1", "`led_fhn_ens.pt`", "all", "50 / 10"], ["| 1", "`led_fhn_ens.pt`", "none", "10 / 10"],
        ["| 20", "`led_fhn.pt`", "all", "10 / 10"]]  # fmt: skip
    assert lines[5].split(" | ")[7] == "1.05"


def test_reconstruction():
    rows = [
        {"latent_dim": 1, "ae_mse": 1.06e-3, "pca_mse": 0.185},
        {"latent_dim": 8, "ae_mse": 1.8e-5, "pca_mse": 4.6e-7},
    ]
    docs = {"reconstruction_ks.json": doc(system="ks", rows=[{"latent_dim": 8, "ae_mse": 2.4e-3, "pca_mse": 0.033}]),
            "reconstruction_fhn.json": doc(system="fhn", rows=rows)}  # fmt: skip
    assert rt.render_reconstruction(docs) == (
        "| system | d_z | autoencoder | PCA, same number of modes |\n"
        "|---|---|---|---|\n"
        "| FHN | 1 / 8 | 1.1e-3 / 1.8e-5 | 0.185 / 4.6e-7 |\n"
        "| KS | 8 | 2.4e-3 | 0.033 |"
    )


FHN_EVAL = {"system": "fhn", "model": "models/led_fhn.pt", "horizon": 8000, "n_ics": 100, "t_warm": 60,
            "mnad_u": 0.00391, "mnad_v": 0.00416, "mnad_u_451": 0.00268, "mnad_v_451": 0.00284}  # fmt: skip


def test_evaluation_fhn():
    assert rt.render_evaluation_fhn({"led_fhn_evaluate.json": FHN_EVAL}) == (
        "| measure | ledmus | paper [1] |\n"
        "|---|---|---|\n"
        '| MNAD u, horizon 8000 | 0.0039 | ≈ 0.04 (Fig. 34, "Latent") |\n'
        "| MNAD v, horizon 8000 | 0.0042 | ≈ 0.04 |\n"
        "| MNAD u, first 451 steps (CSPDE protocol) | 0.0027 | LED below all CSPDE variants (Fig. 31) |\n"
        "| MNAD v, first 451 steps | 0.0028 | |"
    )


def test_pca_fhn():
    pca = {
        **FHN_EVAL,
        "mnad_u": 0.05297,
        "mnad_v": 0.03964,
        "mnad_u_451": 0.01958,
        "mnad_v_451": 0.01452,
    }
    docs = {"pca_fhn_evaluate.json": pca, "led_fhn_evaluate.json": FHN_EVAL}
    assert rt.render_pca_fhn(docs) == (
        "MNAD u / v 0.0530 / 0.0396 (first 451 steps 0.0196 / 0.0145), against the LED's "
        "0.0039 / 0.0042."
    )


MODELS = doc(models=[
    {"file": "models/led_ks.pt", "kb": 645.2, "kind": "led", "system": "ks", "rnn": {"cell": "gru"},
     "training_wall_s": {"autoencoder": 29.7, "rnn": 179.4, "total": 209.1}, "restarts": 1,
     "chosen_restart": 0, "threads": None},
    {"file": "models/led_fhn.pt", "kb": 525.0, "kind": "led", "system": "fhn", "rnn": {"cell": "lstm"},
     "training_wall_s": {"autoencoder": 69.4, "rnn": 899.1, "total": 968.5}, "restarts": 8,
     "chosen_restart": 2, "threads": 1},
    {"file": "models/led_ad3d.pt", "kb": 625.0, "kind": "led", "system": "ad3d", "rnn": {"cell": "lstm"},
     "training_wall_s": {"autoencoder": 373.2, "rnn": 26.1, "total": 399.3}, "restarts": 1,
     "chosen_restart": 0, "threads": None},
    {"file": "models/led_ad1d.pt", "kb": 600.0, "kind": "led", "system": "ad1d", "rnn": {"cell": "lstm"},
     "training_wall_s": {"autoencoder": 276.0, "rnn": 21.0, "total": 297.0}, "restarts": 1,
     "chosen_restart": 0, "threads": None, "shipped": False}])  # fmt: skip


def test_evaluation_ks_ad3d():
    ks = {"system": "ks", "model": "models/led_ks.pt", "horizon": 3940, "n_ics": 100, "t_warm": 60,
          "valid_time_lyapunov": 1.0912, "wasserstein": 0.01004, "l1_histogram": 0.0321,
          "power_spectrum_error": 6.98, "lyapunov_exponent": 0.048}  # fmt: skip
    ad = {"system": "ad3d", "model": "models/led_ad3d.pt", "horizon": 940, "n_ics": 10, "t_warm": 60,
          "wasserstein_all": 0.0798, "wasserstein_last": 0.281, "l1_histogram_all": 0.309,
          "m1_mae": 0.196, "m2_mae": 0.0201}  # fmt: skip
    docs = {"led_ks_evaluate.json": ks, "led_ad3d_evaluate.json": ad, "models.json": MODELS,
            "led_ad1d_evaluate.json": {**ad, "system": "ad1d", "model": "models/led_ad1d.pt"}}  # fmt: skip
    assert rt.render_evaluation_ks_ad3d(docs) == (
        "| system | training | measure | ledmus | paper |\n"
        "|---|---|---|---|---|\n"
        "| KS | 209 s (AE 30 s, GRU 179 s) | valid prediction time (NAD < 0.1), 100 ICs, T_warm 60 "
        "| 1.09 Lyapunov times (λ₁ = 0.048) | ≥ 1 (Fig. 42) |\n"
        "| KS | | state-value distribution over 3940 steps: W1 / L1 histogram | 0.010 / 0.032 "
        '| "captured" (Fig. 41) |\n'
        "| KS | | power-spectrum error (mean \\|Δlog10 P\\| over all wavenumbers) | 7.0 decades | |\n"
        "| AD-3D | 399 s (AE 373 s, LSTM 26 s) | W1 of particle positions, all 940 steps, 10 test runs "
        "| 0.080 | |\n"
        "| AD-3D | | W1 at the last step / L1 histogram (all steps) | 0.28 / 0.31 | |\n"
        "| AD-3D | | M1 (mean position) / M2 (variance): mean abs. error | 0.20 / 0.020 | |\n"
        "| AD-1D | 297 s (AE 276 s, LSTM 21 s; not shipped) | W1 of particle positions, all 940 steps, 10 test runs | 0.080 | |\n"
        "| AD-1D | | W1 at the last step / L1 histogram (all steps) | 0.28 / 0.31 | |\n"
        "| AD-1D | | M1 (mean position) / M2 (variance): mean abs. error | 0.20 / 0.020 | |"
    )


def test_training_times():
    assert rt.render_training_times({"models.json": MODELS}) == (
        "Training wall times recorded in the checkpoints: `led_fhn.pt` (525 kB) 968 s "
        "(AE 69 s, LSTM 899 s) [8 RNN restarts, index 2 chosen; 1 thread], `led_ks.pt` (645 kB) "
        "209 s (AE 30 s, GRU 179 s), `led_ad1d.pt` (600 kB) 297 s (AE 276 s, LSTM 21 s; "
        "not shipped) and `led_ad3d.pt` (625 kB) 399 s (AE 373 s, LSTM 26 s)."
    )


def run(label, rho, fraction, speedup, record="states", **errors):
    return {"label": label, "rho": rho, "micro_fraction": fraction, "bound": 1 / fraction,
            "speedup": speedup, "s_over_bound": speedup * fraction, "record": record, **errors}  # fmt: skip


def test_fhn_sweep_pairs_states_and_latents_rows():
    innovation = {"assimilation": "innovation", "assimilation_time": 70.0}
    runs = [run("T_m=10", 1.0, 0.504, 1.92, mnad=[0.01228, 0.01324], **innovation),
            run("T_m=1000", 100.0, 0.0161, 48.7, mnad=[0.00373, 0.00396], **innovation),
            run("T_m=10 (latents recorded)", 1.0, 0.504, 2.04, "latents", mnad=[0.01228, 0.01324],
                **innovation),
            run("Latent", None, 0.00744, 61.6, mnad=[0.00391, 0.00416], **innovation),
            run("pca T_m=50", 5.0, 0.172, 5.70, mnad=[0.1616, 0.1775]),
            run("teacher_forcing T_m=10", 1.0, 0.504, 1.90, mnad=[0.0036, 0.0040],
                assimilation="teacher_forcing", assimilation_time=0.0)]  # fmt: skip
    d = doc(system="fhn", t_micro=10.0, dt_coarse=1.0, runs=runs)
    assert rt.render_fhn_sweep({"fhn_sweep/sweep.json": d}) == (
        "| run | assimilation | ρ = T_m/T_mu | micro share | MNAD u / v | S (states recorded) "
        "| S (latents recorded) | bound | S / bound (states / latents) | paper (Fig. 7) |\n"
        "|---|---|---|---|---|---|---|---|---|---|\n"
        "| T_m = 10 | innovation, τ = 70 | 1 | 0.504 | 0.0123 / 0.0132 | 1.9 | 2.0 | 2.0 "
        "| 0.97 / 1.03 | MNAD ≈ 0.01, S ≈ 2 |\n"
        "| T_m = 1000 | innovation, τ = 70 | 100 | 0.016 | 0.0037 / 0.0040 | 48.7 | – | 62.1 "
        "| 0.78 | |\n"
        "| Latent | – | – | 0.007 | 0.0039 / 0.0042 | 61.6 | – | 134.4 | 0.46 | MNAD ≈ 0.04 |\n"
        "| PCA baseline, T_m = 50 | teacher forcing | 5 | 0.172 | 0.1616 / 0.1775 | 5.7 | – "
        "| 5.8 | 0.98 | |\n"
        "| ensemble (led_fhn_ens.pt), T_m = 10 | teacher forcing | 1 | 0.504 | 0.0036 / 0.0040 "
        "| 1.9 | – | 2.0 | 0.96 | |"
    )


def test_ks_sweep_counts_t_m_in_coarse_steps():
    runs = [run("T_m=2", 1.0, 0.507, 1.245, wasserstein=0.0055, l1_histogram=0.0247, valid_time_lyapunov=1.3613),
            run("T_m=10", 5.0, 0.179, 2.104, wasserstein=0.00747, l1_histogram=0.029, valid_time_lyapunov=1.1003),
            run("Latent (latents recorded)", None, 0.015, 3.5, "latents", wasserstein=0.0088,
                l1_histogram=0.0328, valid_time_lyapunov=1.1048),
            run("Latent", None, 0.015, 3.07, wasserstein=0.0088, l1_histogram=0.0328, valid_time_lyapunov=1.1048)]  # fmt: skip
    d = doc(system="ks", t_micro=2.0, dt_coarse=0.25, runs=runs)
    assert rt.render_ks_sweep({"ks_sweep/sweep.json": d}) == (
        "| run | ρ | micro share | Wasserstein | L1 histogram | valid time (NAD < 0.1) | S |\n"
        "|---|---|---|---|---|---|---|\n"
        "| T_m = 8 steps | 1 | 0.51 | 0.0055 | 0.025 | 1.36 Lyapunov times | 1.2 |\n"
        "| T_m = 40 | 5 | 0.18 | 0.0075 | 0.029 | 1.10 | 2.1 |\n"
        "| Latent | – | 0.015 | 0.0088 | 0.033 | 1.10 | 3.1 |"
    )


def test_ad3d_sweep():
    errs = {
        "wasserstein_all": 0.02101,
        "wasserstein_last": 0.07165,
        "m1_mae": 0.08286,
        "m2_mae": 0.01165,
    }
    d = doc(system="ad3d", t_micro=25.0, dt_coarse=0.5,
            runs=[run("T_m=125", 5.0, 0.21, 3.626, **errs), run("Latent", None, 0.06, 11.81, **errs)])  # fmt: skip
    assert rt.render_ad3d_sweep({"ad3d_sweep/sweep.json": d}) == (
        "| run | ρ | micro share | W1 all steps | W1 last step | M1 / M2 error | S |\n"
        "|---|---|---|---|---|---|---|\n"
        "| T_m = 250 steps | 5 | 0.21 | 0.021 | 0.072 | 0.083 / 0.012 | 3.6 |\n"
        "| Latent | – | 0.06 | 0.021 | 0.072 | 0.083 / 0.012 | 11.8 |"
    )


def mutation(target, modules, tests, killed, total, equivalent, commit, dirty=False):
    return {"target": target, "modules": modules, "tests": tests, "killed": killed, "total": total,
            "equivalent_count": equivalent, "score": killed / (total - equivalent),
            "git_commit": commit, "git_dirty": dirty, "machine": {"node": "vm", "processor": ""}}  # fmt: skip


def test_mutation_table_and_its_source_line():
    docs = {"mutation_protocol.json": mutation("protocol", ["ledmus/surrogates/macro.py", "ledmus/surrogates/led_macro.py"],
                                               ["tests/test_coupler_parts.py", "tests/test_pca.py"], 228, 235, 5, "bbbbbbbbb", True),
            "mutation_metrics.json": mutation("metrics", ["ledmus/metrics.py"], ["tests/test_metrics.py"],
                                              221, 232, 7, "aaaaaaaaa")}  # fmt: skip
    assert rt.render_mutation(docs) == (
        "| target | modules | tests | killed / mutants | equivalent | score |\n"
        "|---|---|---|---|---|---|\n"
        "| `metrics` | `metrics.py` | `test_metrics.py` | 221 / 232 | 7 | 98.2 % |\n"
        "| `protocol` | `surrogates/macro.py`, `surrogates/led_macro.py` | `test_coupler_parts.py`, "
        "`test_pca.py` | 228 / 235 | 5 | 99.1 % |"
    )
    assert rt.source_mutation(docs, lambda rel: f"out/{rel}") == (
        "<sub>from out/mutation_metrics.json (commit aaaaaaa, machine vm): "
        "`python tools/mutation.py metrics`; out/mutation_protocol.json (commit bbbbbbb-dirty, "
        "machine vm): `python tools/mutation.py protocol`</sub>"
    )


def test_quickstart():
    m3 = {"engine": "muscle3", "speedup": 4.38, "micro_only_wall_s": 10.31, "wall_s": 2.354, "command_wall_s": 22.4,
          "mnad_u": 0.00271, "mnad_v": 0.00289, "metrics": {"settings": {"ensemble": 1}}}  # fmt: skip
    emb = {**m3, "engine": "embedded", "speedup": 4.5, "wall_s": 2.29, "command_wall_s": 5.2}
    d = doc(settings_overrides={}, runs=[m3, emb])
    assert rt.render_quickstart({"quickstart.json": d}) == (
        "Measured here: speed-up 4.4 (the micro-only run at batch 1 took 10.3 s, the coupled loop "
        "2.35 s, recording included); the whole command takes 22 s including MUSCLE3 start-up; "
        "MNAD u 0.0027, v 0.0029. Embedded (`ledmus run`): speed-up 4.5, coupled loop 2.29 s, "
        "whole command 5 s; MNAD u 0.0027, v 0.0029."
    )
    smoke = rt.render_quickstart(
        {"quickstart.json": doc(settings_overrides={"t_end": 200}, runs=[emb])}
    )
    assert smoke.startswith("Embedded") and smoke.endswith("(Settings changed: t_end=200.)")


def test_ablation_groups_seeds_per_variant():
    base = {"train_wall_s": 1.0, "best_epoch": 3, "mnad_v": 0.1}
    rows = [{**base, "variant": "paper", "seed": 0, "residual": False, "noise": 0, "validation": "teacher_forced",
             "mnad_u": 0.0731},
            {**base, "variant": "fr", "seed": 0, "residual": True, "noise": 0.01, "validation": "free_run",
             "mnad_u": 0.0903},
            {**base, "variant": "fr", "seed": 1, "residual": True, "noise": 0.01, "validation": "free_run",
             "mnad_u": 0.00452}]  # fmt: skip
    assert rt.render_ablation({"fhn_rnn_ablation.json": doc(horizon=8000, rows=rows)}) == (
        "| read-out | input noise | early stopping on | seed | MNAD u (8000) |\n"
        "|---|---|---|---|---|\n"
        "| eq 16, `z = W h` | 0 | one-step (teacher-forced) | 0 | 0.073 |\n"
        "| increment `z + W h` | 1 % | free-run validation | 0 / 1 | 0.090 / 0.0045 |"
    )


def test_lifting_drift_compares_each_strategy_with_equilibrium():
    keys = ("strategy", "autoencoder", "nad_u_100", "nad_u_400")
    values = [("equilibrium", False, 1.7e-4, 7.1e-4), ("constrained_runs", False, 4.4e-7, 1.7e-6),
              ("constrained_runs", True, 9.8e-4, 0.0021)]  # fmt: skip
    drift = [dict(zip(keys, v, strict=True)) for v in values]
    assert rt.render_lifting_drift({"lifting.json": doc(every=10, drift=drift)}) == (
        "| lifting (re-lift every 10 Δt) | NAD u after 100 Δt | after 400 Δt | 400 Δt: smaller "
        "than equilibrium | autoencoder in the loop: 100 / 400 Δt |\n"
        "|---|---|---|---|---|\n"
        "| `equilibrium` | 1.7e-4 | 7.1e-4 | 1 | – |\n"
        "| `constrained_runs` | 4.4e-7 | 1.7e-6 | 418× | 9.8e-4 / 2.1e-3 |"
    )


def test_lifting_cost_in_ms_and_per_cent_of_a_window():
    cost = [{"omega_u": 1.9632, "batch": 100, "strategy": "newton_krylov", "iterations": 4,
             "micro_steps": 93, "residual": 2.4e-13, "lift_s": 0.1807, "window_s": 0.7755,
             "lift_over_window": 0.233, "max_err_vs_manifold": 1.2e-5}]  # fmt: skip
    assert rt.render_lifting_cost({"lifting.json": doc(cost=cost)}).splitlines()[-1] == (
        "| 1.96 | 100 | `newton_krylov` | 4 | 93 | 2.4e-13 | 180.7 ms | 776 ms | 23.3 % | 1.2e-5 |"
    )


def test_fhn_lifting_sweep_puts_the_strategies_side_by_side():
    run = {"rho": 1.0, "record": "states", "micro_fraction": 0.504, "bound": 1.98}
    runs = [{**run, "lifting": "equilibrium", "mnad": [0.0558, 0.0616], "speedup": 1.9},
            {**run, "lifting": "constrained_runs", "mnad": [0.0561, 0.062], "speedup": 1.8},
            {"rho": None, "lifting": "equilibrium", "mnad": [0.02, 0.02], "speedup": 80}]  # fmt: skip
    assert rt.render_fhn_lifting_sweep({"fhn_lifting_sweep/sweep.json": doc(runs=runs)}) == (
        "| ρ | micro share | MNAD u / v, `equilibrium` | MNAD u / v, `constrained_runs` | "
        "S, `equilibrium` | S, `constrained_runs` | bound |\n"
        "|---|---|---|---|---|---|---|\n"
        "| 1 | 0.504 | 0.0558 / 0.0616 | 0.0561 / 0.0620 | 1.9 | 1.8 | 2.0 |"
    )


def test_vo_rw_per_snapshot_and_a_summary_line():
    d = doc(rel_l2={"15": 0.0089}, rel_l2_pde={"15": 0.0045}, micro_vs_pde={"15": 0.0083},
            coverage95=0.9626, coverage95_inferred=0.988, mass_error_inferred=2.4e-4,
            mass_error_inferred_train={"mean": 2.5e-4, "max": 3.2e-4},
            mass_error_predicted=3.4e-4, samples=1000, predict_wall_s=7.1)  # fmt: skip
    out = rt.render_vo_rw({"vo_rw_evaluate.json": d}).splitlines()
    assert out[2] == "| 15 Δt | 0.89 % | 0.45 % | 0.83 % |"
    assert out[4].startswith("95 % band coverage 0.963 on the predicted steps (0.988 on")
    assert "2.4e-4 inferred (training sequences: mean 2.5e-4, max 3.2e-4), 3.4e-4" in out[4]


def test_vo_ablation_rows_list_the_snapshots():
    run = {"label": "8 sequences", "rel_l2": {"15": 0.02, "35": 0.04},
           "rel_l2_pde": {"15": 0.01, "35": 0.03}, "coverage95": 0.9, "mass_error_inferred": 2e-4,
           "mass_error_predicted": 0.0123, "train_wall_s": 101.2}  # fmt: skip
    out = rt.render_vo_ablation({"vo_rw.json": doc(runs=[run])}).splitlines()
    assert "(15, 35 Δt)" in out[0]
    assert out[2] == "| 8 sequences | 2.0 / 4.0 | 1.0 / 3.0 | 0.900 | 2.0e-4 | 0.0123 | 101 s |"


def test_every_block_has_a_renderer_test():
    tests = [name for name in globals() if name.startswith("test_")]
    for block in rt.BLOCKS:
        assert any(t == f"test_{block}" or t.startswith(f"test_{block}_") for t in tests), block


# ---------------------------------------------------------------------------- provenance
def test_source_line_from_provenance_and_from_older_top_level_keys():
    new = {**PROV, "dirty": True, "threads": 2}
    old = {"commit": "fedcba9876", "command": "benchmarks/multiscale_sweep.py fhn", "machine": "vm",
           "torch_threads": 1}  # fmt: skip
    docs = {
        "a.json": {"provenance": new},
        "b.json": {"provenance": new},
        "c/sweep.json": old,
        "d.json": {},
    }
    assert rt.default_source(docs, lambda rel: f"benchmarks/out/{rel}") == (
        "<sub>from benchmarks/out/a.json, benchmarks/out/b.json (commit 0123456-dirty, 2 threads, "
        "machine vm): `python benchmarks/x.py --a 1`; benchmarks/out/c/sweep.json (commit fedcba9, "
        "1 thread, machine vm): `python benchmarks/multiscale_sweep.py fhn`; benchmarks/out/d.json "
        "(commit not recorded)</sub>"
    )
    assert (
        rt.describe({"commit": "abcdef012", "omp_num_threads": "1"})
        == "commit abcdef0, OMP_NUM_THREADS=1"
    )
    assert (
        rt.describe({"commit": "abcdef012", "cpu_count": 2})
        == "commit abcdef0, threads not set, 2 cores"
    )


# ------------------------------------------------------------------- markers and --check
README_TEXT = """# Title

Prose with a number 4.4 that stays.

<!-- table: dataset_times -->
old text
<!-- /table -->
Between the blocks.
<!-- table: ks_lyapunov -->
λ₁ = stale.
<!-- /table -->

Tail | with a pipe.
"""


@pytest.fixture
def workspace(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "dataset_times.json").write_text(json.dumps(
        doc(scale="paper", systems=[{"system": "fhn", "wall_s": 80.0}])))  # fmt: skip
    readme = tmp_path / "README.md"
    readme.write_text(README_TEXT)
    return readme, out


def test_regenerate_replaces_only_between_markers(workspace):
    readme, out = workspace
    warnings = []
    new, skipped = rt.regenerate(README_TEXT, out, warn=warnings.append)
    assert skipped == ["ks_lyapunov"]
    assert any("ks_lyapunov" in w and "ks_lyapunov.json" in w for w in warnings)
    block = ("<!-- table: dataset_times -->\nfhn 80 s.\n\n<sub>from " + f"{out}/dataset_times.json "
             "(commit 0123456, 1 thread, machine vm): `python benchmarks/x.py --a 1`</sub>\n<!-- /table -->")  # fmt: skip
    assert new == README_TEXT.replace(
        "<!-- table: dataset_times -->\nold text\n<!-- /table -->", block
    )
    again, _ = rt.regenerate(new, out, warn=lambda m: None)
    assert again == new  # idempotent


def test_check_reports_a_difference_and_rewriting_fixes_it(workspace, capsys):
    readme, out = workspace
    args = ["--page", str(readme), "--out-dir", str(out)]
    assert rt.main(["--check", *args]) == 1
    captured = capsys.readouterr()
    assert "-old text" in captured.out and "+fhn 80 s." in captured.out
    assert readme.read_text() == README_TEXT  # --check writes nothing
    assert rt.main(args) == 0
    assert "fhn 80 s." in readme.read_text()
    assert rt.main(["--check", *args]) == 0
    assert rt.main(["--check", "--strict", *args]) == 1  # ks_lyapunov.json is missing
    (out / "ks_lyapunov.json").write_text(json.dumps(
        doc(lambda1_mean=0.047, lambda1_se=0.001, lyapunov_time=21.3, wall_s=16.0,
            settings={"pairs": 8, "length": 22.0})))  # fmt: skip
    assert rt.main(["--check", "--strict", *args]) == 1
    assert rt.main(args) == 0
    assert rt.main(["--check", "--strict", *args]) == 0
    assert readme.read_text().startswith("# Title\n\nProse with a number 4.4 that stays.\n")


def test_unknown_block_name_is_an_error(tmp_path):
    with pytest.raises(SystemExit, match="nonsense"):
        rt.regenerate(
            "<!-- table: nonsense -->\nx\n<!-- /table -->\n", tmp_path, warn=lambda m: None
        )


def test_pages_are_in_sync_with_benchmarks_out(capsys):
    """Blocks in README.md and docs/**/*.md whose JSON exists in benchmarks/out equal what the
    JSON gives; after a benchmark run: python docs/tables.py"""
    code = rt.main(["--check"])
    assert code == 0, capsys.readouterr().out


def test_adaptive_fhn_rows_are_the_blocks_then_totals_and_speedup():
    run = {"macro_fraction_blocks": [0.5, 0.0], "mnad_u_blocks": [0.001, 0.02],
           "macro_fraction": 0.25, "mnad_u": 0.0105, "speedup": 1.5}  # fmt: skip
    out = rt.render_adaptive_fhn({"adaptive_fhn.json": doc(runs={"fixed": run, "adaptive": run})})
    lines = out.splitlines()
    assert lines[0].startswith("| Δt | fixed: macro share | fixed: MNAD u | adaptive: macro share")
    assert lines[2].startswith("| 0–1000 | 0.50 | 0.0010 | 0.50 | 0.0010")
    assert lines[3].startswith("| 1000–2000 | 0.00 | 0.0200")
    assert "| whole run | 0.25 | **0.0105** |" in lines[4]
    assert lines[5].startswith("| speed-up S | 1.50 | | 1.50 |")


def test_cold_start_fhn_block_renders_its_own_json():
    run = {"macro_fraction_blocks": [0.0, 0.75], "mnad_u_blocks": [0.0, 0.004],
           "macro_fraction": 0.375, "mnad_u": 0.002, "speedup": 0.9}  # fmt: skip
    out = rt.BLOCKS["cold_start_fhn"].render({"cold_start_fhn.json": doc(runs={"cold_start": run})})
    lines = out.splitlines()
    assert lines[0].startswith("| Δt | cold_start: macro share | cold_start: MNAD u |")
    assert lines[3].startswith("| 1000–2000 | 0.75 | 0.0040 |")
    assert "| whole run | 0.38 | **0.0020** |" in lines[4]


def test_ood_fhn_rows_are_the_initial_conditions():
    run = {"mnad_u": 0.0123, "macro_fraction": 0.5, "speedup": 1.25}
    case = {"fixed_rho5": {**run, "mnad_u": 0.3}, "adaptive": run, "online": run}
    out = rt.render_ood_fhn({"ood_fhn.json": doc(cases={"mirror": case})})
    lines = out.splitlines()
    assert lines[0].startswith("| initial condition | fixed ρ = 5: MNAD u | adaptive: MNAD u")
    assert lines[2] == "| mirror | 0.3000 | **0.0123** | **0.0123** | 0.50 | 0.50 | 1.25 | 1.25 |"


def test_fhn_windows_rows_count_the_restarts_of_each_window_length():
    runs = [{"rho": 1.0, "micro_fraction": 0.504, "mnad": [0.0036, 0.004], "speedup": 1.87},
            {"rho": 1.0, "t_micro": 50.0, "micro_fraction": 0.504, "mnad": [0.0017, 0.0019],
             "speedup": 1.89}]  # fmt: skip
    innovation = [{**runs[0], "assimilation": "innovation", "assimilation_time": 70.0}]
    d = doc(runs=runs, t_micro=10.0, horizon=8000)
    docs = {"fhn_windows/sweep.json": d,
            "fhn_windows_innovation/sweep.json": doc(runs=innovation, t_micro=10.0, horizon=8000)}  # fmt: skip
    lines = rt.render_fhn_windows(docs).splitlines()
    assert lines[0] == (
        "| assimilation | T_mu | T_m | micro share | restarts per run | MNAD u / v | S |"
    )
    assert lines[2] == "| teacher forcing | 10 | 10 | 0.504 | 400 | 0.0036 / 0.0040 | 1.87 |"
    assert lines[3] == "| teacher forcing | 50 | 50 | 0.504 | 80 | 0.0017 / 0.0019 | 1.89 |"
    assert lines[4] == "| innovation, τ = 70 | 10 | 10 | 0.504 | 400 | 0.0036 / 0.0040 | 1.87 |"


def test_adaptive_fhn_shipped_rows_put_the_drift_estimate_beside_the_true_error():
    run = {"mnad_u": 0.001, "macro_fraction": 0.76, "speedup": 3.33,
           "interventions": {"drift": 9},
           "drift": {"estimate_max": 0.0535, "true_max": 0.0045}}  # fmt: skip
    fixed = {"mnad_u": 0.0658, "macro_fraction": 0.82, "speedup": 4.74, "interventions": {}}
    d = doc(runs={"adaptive": run, "fixed_rho5": fixed})
    lines = rt.BLOCKS["adaptive_fhn_shipped"].render({"adaptive_fhn_shipped.json": d}).splitlines()
    assert lines[2] == "| adaptive | **0.0010** | 0.76 | 3.33 | 9 | 0.0535 | 0.0045 |"
    assert lines[3] == "| fixed_rho5 | **0.0658** | 0.82 | 4.74 | 0 | – | – |"


def test_closure_fair_rows_are_each_field_of_each_model():
    fair = {"0.001": {"rho": 0.01, "u_over_c": 0.02, "T": 0.03, "max": 0.03},
            "10": {"rho": 0.1, "u_over_c": 0.2, "T": 0.3, "max": 0.3}}  # fmt: skip
    d = doc(eps=[0.001, 10.0], models=["ml"], fair={"ml": fair})
    lines = rt.render_closure_fair({"closure_bgk.json": d}).splitlines()
    assert lines[0] == "| max over cases at t = 0.1 / ε | 0.001 | 10 |"
    assert lines[2:] == ["| ML closure: ρ | 1.00 % | 10.00 % |",
                         "| ML closure: u / c | 2.00 % | 20.00 % |",
                         "| ML closure: T | 3.00 % | 30.00 % |"]  # fmt: skip


def test_closure_boltzmann_rows_are_case_groups_per_model_then_speedups():
    fair = {
        "0.01": {
            "smooth0": [0.001, 0.002, 0.003],
            "smooth1": [0.004, 0.0, 0.0],
            "sod": [0.02, 0.01, 0.03],
            "colliding": [0.05, 0.06, 0.07],
        },
        "transition": {"smooth0": [0.001, 0.0, 0.0], "sod": [0.03, 0.02, 0.01]},
    }
    d = doc(
        eps=["0.01", "transition"],
        models=["ml"],
        fair={"ml": fair},
        speedup={"ml": {"0.01": 104.6, "transition": 98.2}},
    )
    lines = rt.render_closure_boltzmann({"closure_boltzmann.json": d}).splitlines()
    assert lines[0] == "| max fair error at t = 0.1 / ε | 0.01 | transition |"
    assert lines[2:] == [
        "| ML closure: smooth | 0.40 % | 0.10 % |",  # worst of the smooth cases
        "| ML closure: Sod | 3.00 % | 3.00 % |",
        "| ML closure: colliding | 7.00 % | – |",  # not run with ε(x)
        "| ML closure: S | 105 | 98 |",
    ]


def test_closure_boltzmann_wide_renders_its_own_file_in_the_same_layout():
    d = doc(
        eps=["0.01"],
        models=["ml"],
        fair={"ml": {"0.01": {"sod": [0.02, 0.01, 0.03], "colliding": [0.05, 0.06, 0.07]}}},
        speedup={"ml": {"0.01": 104.6}},
    )
    wide = rt.BLOCKS["closure_boltzmann_wide"]
    assert wide.files == ["closure_boltzmann_wide.json"]
    lines = wide.render({"closure_boltzmann_wide.json": d}).splitlines()
    assert lines == rt.render_closure_boltzmann({"closure_boltzmann.json": d}).splitlines()
    assert lines[3:] == ["| ML closure: Sod | 3.00 % |", "| ML closure: colliding | 7.00 % |",
                         "| ML closure: S | 105 |"]  # fmt: skip


def test_closure_boltzmann_trial_is_one_row_per_model_with_its_width():
    d = doc(
        eps=["1", "transition"],
        rows=[
            {
                "label": "a",
                "config": {"spec": {"closure_width": 64}},
                "fair_max": {"1": 0.04, "transition": 0.0193},
            },
            {"label": "b", "config": None, "fair_max": {"1": 0.0536, "transition": 0.0169}},
        ],
    )
    lines = rt.render_closure_boltzmann_trial({"closure_boltzmann_trial.json": d}).splitlines()
    assert lines[0] == "| model | width of h | 1 | transition |"
    assert lines[2:] == ["| a | 64 | 4.00 % | 1.93 % |", "| b | – | 5.36 % | 1.69 % |"]


def test_closure_apply_is_one_row_per_call_with_the_three_costs_and_the_ratio():
    row = {"profiles": 4, "call": "faces", "rows": 2424, "chunked_us_per_row": 0.724,
           "blocked_us_per_row": 1.453, "whole_us_per_row": 1.76, "ratio": 2.007}  # fmt: skip
    lines = rt.BLOCKS["closure_apply"].render({"closure_apply.json": doc(rows=[row])}).splitlines()
    assert lines[0].startswith("| profiles × call | rows | chunked µs/row | blocked µs/row |")
    assert lines[2:] == ["| 4 × faces | 2424 | 0.72 | 1.45 | 1.76 | 2.01 |"]


def test_boltzmann_dataset_is_the_wall_time_and_the_split_shapes():
    d = doc(
        systems=[
            {
                "system": "boltzmann",
                "wall_s": 528.4,
                "splits": {"train": [120, 11, 2304, 64], "val": [12, 11, 2304, 64]},
            }
        ]
    )
    assert rt.render_boltzmann_dataset({"boltzmann_dataset.json": d}) == (
        "8.8 minutes on one thread (train (120, 11, 2304, 64), val (12, 11, 2304, 64); runs, "
        "times, N², cells)."
    )


def test_ablation_fhn_rows_are_the_variants_and_columns_the_initial_conditions():
    r = {"mnad_u": 0.0019, "macro_fraction": 0.92}
    cases = {"y05": {"error_only": r, "online_augment_on": {**r, "macro_fraction": 0.5}},
             "mirror": {"error_only": {**r, "mnad_u": 0.0}}}  # fmt: skip
    lines = rt.render_ablation_fhn({"ablation_fhn.json": doc(cases=cases)}).splitlines()
    assert lines[0] == "| variant: MNAD u (macro share) | y05 | mirror |"
    assert lines[2] == "| error only | 0.0019 (0.92) | 0.0000 (0.92) |"
    assert lines[3] == "| uncertainty only | – | – |"  # a variant not run on a case
    assert lines[-1] == "| online, mirror augmentation | 0.0019 (0.50) | – |"


def test_ad3d_adaptive_rows_are_the_adaptive_and_the_fixed_run():
    err = {"W1": 0.0123, "M1_mae": 0.0067, "M2_mae": 0.0019}
    run = {"macro_fraction": 0.4, "speedup": 1.5, "all": err, "before_change": err,
           "after_change": {**err, "W1": 0.05}}  # fmt: skip
    d = doc(runs={"adaptive": run, "fixed_same_share": run}, fixed_t_macro=16.5)
    lines = rt.render_ad3d_adaptive({"ad3d_adaptive.json": d}).splitlines()
    assert lines[0].startswith("| run | macro share | W1 before change | W1 after change |")
    assert lines[2] == "| adaptive | 0.40 | 0.0123 | 0.0500 | 0.0067 | 0.0019 | 1.50 |"
    assert lines[3].startswith("| fixed, T_m = 16.5 | 0.40 |")


def test_closure_bgk_rows_are_the_models_then_their_speedups():
    rel = {"0.001": {"max": 0.0129}, "10": {"max": 0.1214}}
    d = doc(eps=[0.001, 10.0], models=["ml", "ns"], rel_l2={"ml": rel, "ns": rel},
            speedup={"0.001": {"ml": 0.15, "ns": 7.0}, "10": {"ml": 0.5, "ns": 0.003}})  # fmt: skip
    lines = rt.render_closure_bgk({"closure_bgk.json": d}).splitlines()
    assert lines[0] == "| max rel. L2 of ρ, u, T at t = 0.1 / ε | 0.001 | 10 |"
    assert lines[2] == "| ML closure | 1.29 % | 12.14 % |"
    assert lines[3] == "| Navier–Stokes | 1.29 % | 12.14 % |"
    assert lines[4] == "| ML closure: S | 0.15 | 0.50 |"
    assert lines[5] == "| Navier–Stokes: S | 7.00 | 0.00 |"
    assert len(lines) == 6  # no bound row in a JSON without one
    d["speedup_bound"] = {"0.001": 0.62, "10": 1.85}
    lines = rt.render_closure_bgk({"closure_bgk.json": d}).splitlines()
    assert lines[6] == "| ML system, network replaced by zeros: S (bound) | 0.62 | 1.85 |"


def test_hmm_bgk_cells_are_the_worst_moment_error_the_macro_share_and_s():
    rows = [{"case": "sod", "eps": 0.5, "trust": t, "macro_fraction": f, "speedup": s,
             "rel_l2_rho": 0.01, "rel_l2_u": u, "rel_l2_T": 0.02}
            for t, f, s, u in ((1e-12, 0.0, 0.9, 0.0), (0.1, 0.1, 0.17, 0.0284),
                               (1e9, 0.62, 0.16, 0.0876))]  # fmt: skip
    d = doc(rows=rows, trust=[1e-12, 0.1, 1e9], eps=[0.5])
    lines = rt.render_hmm_bgk({"hmm_bgk.json": d}).splitlines()
    assert lines[0] == "| case / trust level | 0 (BGK only) | 0.1 | ∞ (closure only) |"
    assert (
        lines[2]
        == "| sod, ε = 0.5 | 2.00 % · 0.00 · 0.90 | 2.84 % · 0.10 · 0.17 | 8.76 % · 0.62 · 0.16 |"
    )


def test_closure_joint_rows_are_the_variants_with_closure_and_decoder_errors():
    dec = [{"eps": 0.003, "f": 0.0015, "W": 0.15, "maxwellian": 0.005},
           {"eps": 8.8, "f": 0.068, "W": 0.22, "maxwellian": 0.09}]  # fmt: skip
    v = {"rel_l2_max": {"0.001": 0.0129, "10": 0.1214}, "decoder": dec}
    d = doc(variants={"sequential": v, "joint": {**v, "rel_l2_max": {"0.001": 0.02, "10": 0.1}}})
    lines = rt.render_closure_joint({"closure_joint.json": d}).splitlines()
    assert lines[0] == ("| training / ε | 0.001 | 10 | decoder: rel. L2 of f | "
                        "W after restrict∘lift |")  # fmt: skip
    assert lines[2] == "| sequential | 1.29 % | 12.14 % | 0.0015 / 0.0680 | 0.15 / 0.22 |"
    assert lines[3] == "| joint | 2.00 % | 10.00 % | 0.0015 / 0.0680 | 0.15 / 0.22 |"


def test_closure_variants_rows_are_the_variants_then_the_speed_factors():
    rel = {"0.1": {"smooth": 0.0277, "shock": 0.0774}, "10": {"smooth": 0.0416, "shock": 0.1214}}
    bad = {"0.1": {"smooth": 0.0205, "shock": float("inf")}, "10": rel["10"]}
    d = doc(eps=["0.1", "10"],
            variants={"riemann": {"rel_l2": bad}, "shipped": {"rel_l2": rel}},
            speed_factor={"4": {"rel_l2": rel, "wall_s": {"0.1": 20.2, "10": 21.4}},
                          "12": {"rel_l2": rel, "wall_s": {"0.1": 1.0, "10": 1.0}}})  # fmt: skip
    lines = rt.render_closure_variants({"closure_variants.json": d}).splitlines()
    assert lines[0] == "| smooth / shock cases: max rel. L2 in % / ε | 0.1 | 10 |"
    assert lines[2] == "| shipped | 2.77 / 7.74 | 4.16 / 12.14 |"  # shipped first
    assert lines[3] == "| riemann | 2.05 / fails | 4.16 / 12.14 |"
    assert lines[4] == "| shipped, HLL speeds u ∓ 4·√(3T) (42 s) | 2.77 / 7.74 | 4.16 / 12.14 |"
    assert lines[5].startswith("| shipped, HLL speeds u ∓ 12·√(3T) (2 s) |")  # numeric order


def test_restart_coupled_rows_name_the_model_and_assimilation_and_leave_latent_without_restarts():
    lag = {"lag_final_mean": -0.4, "lag_final_median": -0.35}
    per = {"lag_per_restart_mean": -0.002, "lag_per_restart_std": 0.0011,
           "lag_per_restart_median": -0.00175}  # fmt: skip
    rows = [
        {"t_macro": None, "assimilation": "teacher_forcing", "assimilation_time": 0.0,
         "restarts": 0, "mnad_u": 0.00096, **lag, "lag_per_restart_mean": None},
        {"t_macro": 10.0, "assimilation": "innovation", "assimilation_time": 70.0,
         "restarts": 200, "mnad_u": 0.00051, **lag, **per},
        {"t_macro": 10.0, "assimilation": "innovation", "assimilation_time": 0.0,
         "restarts": 200, "mnad_u": 0.00051, **lag, **per},
        {"t_macro": 10.0, "assimilation": "innovation", "assimilation_time": 1e12,
         "restarts": 200, "mnad_u": 0.00051, **lag, **per},
    ]  # fmt: skip
    docs = {"restart_coupled_fhn.json": doc(model="models/led_fhn_ens.pt", rows=rows),
            "restart_coupled_fhn_single.json": doc(model="models/led_fhn.pt", rows=rows[:1])}  # fmt: skip
    out = rt.render_restart_coupled(docs).splitlines()
    assert out[2] == "| led_fhn_ens.pt | Latent | – | 0 | 0.00096 | -0.400 / -0.350 | – |"
    assert out[3] == (
        "| led_fhn_ens.pt | 10 | innovation, τ = 70 | 200 | 0.00051 | -0.400 / -0.350 "
        "| -0.0020 ± 0.0011 / -0.0018 |"
    )
    assert out[4].split(" | ")[2] == "innovation, g = 1"
    assert out[5].split(" | ")[2] == "none (free run through the windows)"
    assert out[6].startswith("| led_fhn.pt | Latent |")


def test_restart():
    step = {
        "lag_mean": -0.0123,
        "lag_std": 0.5,
        "nad_mean": 0.002,
        "nad_std": 0.001,
        "lag_median": -0.01,
        "lag_mean_moving": 0.0031,
        "moving": 86,
    }
    row = {
        "model": "old",
        "warmup": 10,
        "horizon": 50,
        "after_1": step,
        "after_5": step,
        "after_10": {**step, "lag_mean": -0.027},
        "after_50": {**step, "lag_mean": 0.092},
        "shape_nad_mean": 0.0011,
    }
    out = rt.render_restart({"restart_fhn.json": doc(rows=[row])})
    assert out.splitlines()[2] == (
        "| old | 10 | -0.0123 | -0.0270 | +0.0920 ± 0.500 / +0.0031 | 0.00200 | 0.00110 |"
    )


def test_capabilities_takes_one_headline_number_from_each_json():
    """Each row's number comes from its own file: change one value, only its row changes."""
    docs = {
        "solvers.json": doc(cases=[{"system": "fhn", "batch": 1, "steps_per_s": 1234.4}]),
        "led_fhn_evaluate.json": doc(mnad_u=0.0123, horizon=8000, n_ics=100),
        "led_ks_evaluate.json": doc(valid_time_lyapunov=1.5),
        "led_ad3d_evaluate.json": doc(wasserstein_all=0.0456),
        "pca_fhn_evaluate.json": doc(mnad_u=0.0369),
        "vo_rw_evaluate.json": doc(rel_l2={"15": 0.01, "25": 0.02}),
        "closure_bgk.json": doc(summary={"ml_max_rel_l2": 0.12, "ml_speedup_min": 0.21}),
        "quickstart.json": doc(runs=[{"engine": "muscle3", "speedup": 3.8, "mnad_u": 0.006}]),
        "coupling_overhead.json": doc(rows=[{"ratio": 1.25}, {"ratio": 1.7}]),
        "adaptive_fhn_shipped.json": doc(
            runs={"adaptive": {"mnad_u": 0.0048, "macro_fraction": 0.23}}
        ),
        "cold_start_fhn.json": doc(runs={"cold_start": {"mnad_u": 0.07, "speedup": 0.48}}),
        "closure_boltzmann_wide.json": doc(
            summary={
                "ml_max_fair_smooth": 0.0069,
                "ml_max_fair_shocks": 0.069,
                "ml_speedup_min": 103.4,
            }
        ),
        "hybrid_boltzmann.json": doc(
            rows=[
                {"error_hybrid": 0.014, "speedup": 2.3, "kinetic_fraction_mean": 0.3},
                {"error_hybrid": 0.002, "speedup": 3.9, "kinetic_fraction_mean": 0.2},
                {"error_hybrid": 0.005, "speedup": 31.2, "kinetic_fraction_mean": 0.0},
                {"error_hybrid": 0.001, "speedup": 52.0, "kinetic_fraction_mean": 0.0},
            ]
        ),
    }
    out = rt.render_capabilities(docs)
    for text in ("FHN 1,234 micro steps/s", "latent MNAD u 0.0123 over 8000 Δt (100 test runs)",
                 "1.50 Lyapunov times", "Wasserstein distance 0.046", "latent MNAD u 0.0369",
                 "relative L2 error 0.020 or less", "max relative L2 0.120, speed-up 0.21",
                 "speed-up 3.8, MNAD u 0.0060", "1.25–1.70×", "MNAD u 0.0048, macro fraction 0.23",
                 "cold start: MNAD u 0.0700, speed-up 0.48",
                 "smooth flows 0.7 %, shocks 6.9 % (fair metric); speed-up 103 or more",
                 "max error 1.4 %; speed-up 2.3–3.9 with kinetic cells, 31–52 without"):  # fmt: skip
        assert text in out, text
    assert len(out.splitlines()) == 2 + 13  # header, rule, one row per part


def test_pages_are_the_readme_and_the_doc_sources_not_the_build(tmp_path):
    (tmp_path / "README.md").write_text("x")
    for rel in ("docs/a.md", "docs/guide/b.md", "docs/_build/html/_sources/a.md",
                "docs/auto_examples/c.md"):  # fmt: skip
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("x")
    found = [p.relative_to(tmp_path).as_posix() for p in rt.pages(tmp_path)]
    assert found == ["README.md", "docs/a.md", "docs/guide/b.md"]


def test_hybrid_bgk_rows_are_case_and_eps_with_errors_fraction_and_speedups():
    row = {"case": "sod", "eps": 0.1, "error_hybrid": 0.0014, "error_closure": 0.0385,
           "error_euler": 0.1543, "error_ns": 0.1356, "kinetic_fraction_mean": 0.38,
           "speedup": 0.16, "speedup_model": 0.5, "conservation_error": 4e-16}  # fmt: skip
    lines = rt.render_hybrid_bgk({"hybrid_bgk.json": doc(rows=[row])}).splitlines()
    assert lines[0].startswith("| case | hybrid | closure alone | Euler | NS |")
    assert (
        lines[2]
        == "| sod, ε = 0.1 | 0.14 % | 3.85 % | 15.43 % | 13.56 % | 0.38 | 0.16 | 0.50 | 4e-16 |"
    )


def test_hybrid_bgk_summary_columns_are_eps_and_rows_the_worst_case():
    def row(case, eps, err, frac, s):
        return {"case": case, "eps": eps, "error_hybrid": err, "error_closure": 2 * err,
                "error_euler": 3 * err, "error_ns": 4 * err, "kinetic_fraction_mean": frac,
                "speedup": s, "speedup_model": 2 * s}  # fmt: skip

    rows = [row("sod", 0.1, 0.01, 0.4, 0.2), row("smooth0", 0.1, 0.002, 0.9, 0.1),
            row("sod", 1.0, 0.003, 0.5, 0.3)]  # fmt: skip
    lines = rt.render_hybrid_bgk_summary({"hybrid_bgk.json": doc(rows=rows)}).splitlines()
    assert lines[0] == "| fair error at t = 0.1 / ε | 0.1 | 1 |"
    assert lines[2] == "| hybrid: max error | 1.00 % | 0.30 % |"
    assert lines[3] == "| closure alone: max error | 2.00 % | 0.60 % |"
    assert lines[6] == "| hybrid: kinetic fraction | 0.40–0.90 | 0.50–0.50 |"
    assert lines[7] == "| hybrid: S against BGK | 0.10–0.20 | 0.30–0.30 |"


def test_hybrid_bgk_nx400_is_the_same_table_from_the_finer_grid_file():
    row = {"case": "sod", "eps": 0.1, "error_hybrid": 0.0012, "error_closure": 0.0528,
           "error_euler": 0.1847, "error_ns": 0.1384, "kinetic_fraction_mean": 0.38,
           "speedup": 0.66, "speedup_model": 0.86, "conservation_error": 7e-16}  # fmt: skip
    fine = rt.BLOCKS["hybrid_bgk_nx400"].render({"hybrid_bgk_nx400.json": doc(rows=[row])})
    assert fine.splitlines()[2] == (
        "| sod, ε = 0.1 | 0.12 % | 5.28 % | 18.47 % | 13.84 % | 0.38 | 0.66 | 0.86 | 7e-16 |"
    )


def test_hybrid_boltzmann_blocks_mark_the_ns_runs_that_did_not_run():
    """NS runs at ε <= 0.1 only: its cell is a dash, and the summary's NS row takes the
    worst of the runs it has; S is against the Boltzmann solver."""

    def row(eps, ns):
        return {"case": "sod", "eps": eps, "error_hybrid": 0.009, "error_closure": 0.032,
                "error_euler": 0.15, "error_ns": ns, "kinetic_fraction_mean": 0.3,
                "speedup": 2.9, "speedup_model": 3.1, "conservation_error": 2e-16}  # fmt: skip

    files = {
        "hybrid_boltzmann.json": doc(
            rows=[row(0.1, 0.144), row(1.0, None)], transition=[row("transition", None)]
        )
    }
    lines = rt.BLOCKS["hybrid_boltzmann"].render(files).splitlines()
    assert lines[3] == "| sod, ε = 1 | 0.90 % | 3.20 % | 15.00 % | – | 0.30 | 2.90 | 3.10 | 2e-16 |"
    assert lines[4].startswith("| sod, ε(x) | 0.90 % |")


def test_hybrid_boltzmann_wide_summary_is_the_summary_table_of_its_own_json():
    row = {"case": "sod", "eps": 0.1, "error_hybrid": 0.0098, "error_closure": 0.0234,
           "error_euler": 0.153, "error_ns": 0.144, "kinetic_fraction_mean": 0.242,
           "speedup": 2.9, "speedup_model": 3.7, "conservation_error": 2e-16}  # fmt: skip
    wide = rt.BLOCKS["hybrid_boltzmann_wide_summary"]
    assert wide.files == ["hybrid_boltzmann_wide.json"]
    lines = wide.render({"hybrid_boltzmann_wide.json": doc(rows=[row])}).splitlines()
    assert (
        lines
        == rt.BLOCKS["hybrid_boltzmann_summary"]
        .render({"hybrid_boltzmann.json": doc(rows=[row])})
        .splitlines()
    )
    assert lines[2] == "| hybrid: max error | 0.98 % |"


def test_hybrid_boltzmann_summary_takes_the_worst_ns_it_has_and_names_the_solver():
    def row(eps, ns):
        return {"case": "sod", "eps": eps, "error_hybrid": 0.009, "error_closure": 0.032,
                "error_euler": 0.15, "error_ns": ns, "kinetic_fraction_mean": 0.3,
                "speedup": 2.9, "speedup_model": 3.1, "conservation_error": 2e-16}  # fmt: skip

    files = {"hybrid_boltzmann.json": doc(rows=[row(0.1, 0.144), row(1.0, None)])}
    summary = rt.BLOCKS["hybrid_boltzmann_summary"].render(files).splitlines()
    assert summary[5] == "| Navier–Stokes: max error | 14.40 % | – |"
    assert summary[7] == "| hybrid: S against Boltzmann | 2.90–2.90 | 2.90–2.90 |"
