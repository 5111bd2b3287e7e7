"""Plug-ins from outside ledmus: a toy system and a toy model family
(``tests/plugins/toy_family.py``: network, config, training, evaluation, an extra command
and the macro model, registered with one ``register_family`` call; no ledmus module
edited), through the whole life cycle: ``ledmus simulate``, ``train``, ``evaluate``, the
family's command, and a coupled run under both engines (``LEDMUS_PLUGINS`` loads the
plug-in in every MUSCLE3 component)."""

from __future__ import annotations

import importlib
import json
import os
import re
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import yaml

from ledmus.cli import main
from ledmus.coupler.engine import run_embedded
from ledmus.coupler.settings import validate
from ledmus.surrogates import FAMILIES, register_family
from ledmus.surrogates.checkpoint import save_checkpoint

ROOT = Path(__file__).resolve().parents[1]
PLUGINS = Path(__file__).resolve().parent / "plugins"


@pytest.fixture
def plugins(monkeypatch):
    """The plug-in imported as ``LEDMUS_PLUGINS`` would import it; unregistered after."""
    monkeypatch.syspath_prepend(str(PLUGINS))
    monkeypatch.setenv("LEDMUS_PLUGINS", "toy_family")
    sys.modules.pop("toy_family", None)
    module = importlib.import_module("toy_family")
    yield module
    module.unregister()
    sys.modules.pop("toy_family", None)


def test_a_toy_system_and_macro_model_run_coupled_without_editing_ledmus(plugins, tmp_path):
    RATE = plugins.RATE
    net = plugins.MeanNet({"system": "toy-decay", "state_shape": [1, 8], "rate": RATE})
    path = tmp_path / "toy.pt"
    save_checkpoint(path, net, config={}, fingerprint="toy")
    raw = {"model": str(path), "t_warm": 2.0, "t_macro": 3.0, "t_micro": 1.0, "t_end": 14.0,
           "ensemble": 3, "ic": "uniform", "compare": True, "plots": True}  # fmt: skip
    result = run_embedded(validate(raw), tmp_path / "run")
    meta = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert meta["system"] == "toy-decay" and result["windows"] == 4
    # the macro model is exact for this system: errors are float32 rounding of u ~ 1
    assert result["errors"]["mnad_u"] < 1e-6
    assert (tmp_path / "run" / "field.png").is_file()
    # a macro model with the wrong rate is visibly wrong (the errors see the macro phases)
    net.rate.data.fill_(2 * RATE)
    save_checkpoint(path, net, config={}, fingerprint="toy")
    assert run_embedded(validate(raw), tmp_path / "wrong")["errors"]["mnad_u"] > 0.01


def test_settings_refuse_a_model_of_an_unregistered_kind(plugins, tmp_path):
    net = plugins.MeanNet({"system": "toy-decay", "state_shape": [1, 8], "rate": plugins.RATE})
    save_checkpoint(tmp_path / "toy.pt", net, config={}, fingerprint="toy")
    FAMILIES.pop("toy-mean")
    try:
        with pytest.raises(ValueError, match="setting model: unknown macro-model kind 'toy-mean'"):
            validate({"model": str(tmp_path / "toy.pt"), "t_warm": 1.0, "t_macro": 1.0,
                      "t_micro": 1.0, "t_end": 4.0})  # fmt: skip
    finally:
        register_family(plugins.FAMILY)


def toy_ymmsl(tmp_path: Path, model: Path) -> Path:
    """The FHN job's components and conduits with the toy model's settings; every
    program imports the plug-in (``env``: ``LEDMUS_PLUGINS`` and its folder)."""
    doc = yaml.safe_load((ROOT / "configs" / "led_fhn.ymmsl").read_text())
    doc["settings"] = {"model": str(model), "t_warm": 2.0, "t_macro": 3.0, "t_micro": 1.0,
                       "t_end": 14.0, "ensemble": 3, "ic": "uniform", "seed": 0,
                       "compare": True, "plots": False}  # fmt: skip
    for program in doc["programs"].values():
        program["env"] = {"LEDMUS_PLUGINS": "toy_family", "PYTHONPATH": str(PLUGINS)}
    path = tmp_path / "toy.ymmsl"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def states_of(run_dir: Path) -> np.ndarray:
    with h5py.File(run_dir / "trajectory.h5") as h5:
        return h5["states"][()]


def test_a_plugin_family_lives_its_whole_life_through_the_ledmus_command(plugins, tmp_path, capsys):
    """simulate -> train -> evaluate -> the family's command -> ``ledmus run``: every step
    finds the family through its record; the learned rate is the system's."""
    data = tmp_path / "data"
    data.mkdir()
    assert main(["-q", "simulate", "toy-decay", "--t-end", "10", "--batch", "4", "--ic",
                 "uniform", "--out", str(data / "train.h5")]) == 0  # fmt: skip
    config = tmp_path / "toy.yaml"
    config.write_text(f"kind: toy-mean\nsystem: toy-decay\ndata: {data}\nfit: {{steps: 6}}\n")
    model = tmp_path / "toy.pt"
    assert main(["-q", "train", str(config), "--out", str(model)]) == 0
    assert main(["-q", "evaluate", str(model), "--data", str(data / "train.h5"),
                 "--out-dir", str(tmp_path / "eval")]) == 0  # fmt: skip
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    # exact decay, fitted in float64: the rate to rounding (measured |error| ~ 1e-16)
    assert metrics["rate"] == pytest.approx(plugins.RATE, abs=1e-12)
    assert metrics["rel_error"] < 1e-12
    capsys.readouterr()
    assert main(["toy-mean", "rate", str(model)]) == 0
    assert capsys.readouterr().out.strip() == f"rate {metrics['rate']:.12g}"
    ymmsl = toy_ymmsl(tmp_path, model)
    assert main(["-q", "run", str(ymmsl), "--run-dir", str(tmp_path / "emb")]) == 0
    errors = json.loads((tmp_path / "emb" / "metrics.json").read_text())["errors"]
    assert errors["mnad_u"] < 1e-6  # exact model: float32 rounding of u ~ 1
    # the family's config is checked by its own fields: one line naming the field
    config.write_text(f"kind: toy-mean\nsystem: toy-decay\ndata: {data}\nfit: {{steps: 0}}\n")
    assert main(["-q", "train", str(config), "--out", str(tmp_path / "bad.pt")]) == 2
    assert "config fit.steps must be an integer >= 1, got 0" in capsys.readouterr().err


def test_an_unknown_family_in_a_config_lists_the_registered_ones(plugins, tmp_path, capsys):
    config = tmp_path / "x.yaml"
    config.write_text("kind: nope\nsystem: toy-decay\n")
    assert main(["-q", "train", str(config), "--out", str(tmp_path / "x.pt")]) == 2
    err = capsys.readouterr().err
    assert "config kind='nope' unknown; allowed: led, pca, vo, closure" in err
    assert "toy-mean" in err and not (tmp_path / "x.pt").exists()


def test_a_plugin_that_cannot_be_imported_is_one_line(monkeypatch, capsys):
    monkeypatch.setenv("LEDMUS_PLUGINS", "no_such_plugin_module")
    assert main(["systems"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ledmus: error: LEDMUS_PLUGINS: cannot import plug-in module")
    assert "'no_such_plugin_module'" in err and err.count("\n") == 1


muscle3 = pytest.mark.skipif(
    not any(Path("/sys/class/net").glob("e*")) and not os.environ.get("LEDMUS_FORCE_MUSCLE3"),
    reason="MUSCLE3 needs a non-loopback network interface (see docs/getting_started.md)",
)


@pytest.mark.slow  # 6 s: four processes and the manager
@muscle3
def test_a_plugin_family_runs_under_muscle3_as_embedded(plugins, tmp_path):
    """The MUSCLE3 components import the plug-in (``LEDMUS_PLUGINS`` in the programs'
    ``env``) and give bitwise the embedded run's trajectory."""
    import torch
    from test_coupler import muscle

    net = plugins.MeanNet({"system": "toy-decay", "state_shape": [1, 8], "rate": plugins.RATE})
    model = save_checkpoint(tmp_path / "toy.pt", net, config={}, fingerprint="toy")
    ymmsl = toy_ymmsl(tmp_path, model)
    proc = muscle([ymmsl], tmp_path / "m3")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    torch.set_num_threads(1)
    assert main(["-q", "run", str(ymmsl), "--run-dir", str(tmp_path / "emb")]) == 0
    np.testing.assert_array_equal(
        states_of(tmp_path / "m3" / "output"), states_of(tmp_path / "emb")
    )


#: built-in family names; a comparison with one of them is a dispatch on the family
FAMILY_NAMES = ("led", "pca", "vo", "closure", "closure_decoder", "closure_hmm")
NAMES = "|".join(FAMILY_NAMES)
DISPATCH = re.compile(rf"""(==|!=|\bin\b)\s*\(?\s*["']({NAMES})["']|["']({NAMES})["']\s*(==|!=)""")
#: the records themselves (a kind names itself there) and the closure config's own kind
ALLOWED = {"surrogates/families.py", "surrogates/closure/family.py", "surrogates/family.py"}


def family_dispatches(root: Path) -> list[str]:
    found = []
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root).as_posix()
        if rel in ALLOWED:
            continue
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if DISPATCH.search(line.split("#")[0]):
                found.append(f"{rel}:{n}: {line.strip()}")
    return found


def test_no_module_dispatches_on_a_model_family_outside_the_records(tmp_path):
    assert family_dispatches(ROOT / "ledmus") == []
    # the check sees one: a planted dispatch is found
    (tmp_path / "x.py").write_text('if kind == "pca":\n    pass\n')
    (tmp_path / "y.py").write_text('if cfg["kind"] in ("led", "vo"):\n    pass\n')
    assert len(family_dispatches(tmp_path)) == 2
