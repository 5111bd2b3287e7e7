"""``ledmus evaluate``: a checkpoint's metrics by its family's evaluation protocol.

The checkpoint's ``kind`` picks the family (:mod:`ledmus.surrogates.family`); the LED and
PCA families forecast in latent space on a test trajectory
(:mod:`ledmus.surrogates.forecast`, the LED paper's protocols), the virtual-observable
family infers and predicts test sequences (:mod:`ledmus.surrogates.vo_evaluation`), the
moment closure runs against BGK (:mod:`ledmus.surrogates.closure.evaluate`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .rundir import check_writable
from .surrogates.checkpoint import checkpoint_kind, read_checkpoint
from .surrogates.family import EvaluateOptions, get_family

__all__ = ["evaluate"]


def evaluate(
    model_path: str | Path,
    data: str | Path | None = None,
    *,
    out_dir: str | Path | None = None,
    t_warm: int | None = None,
    horizon: int | None = None,
    n_ics: int | None = None,
    device: str = "cpu",
    plots: bool = True,
) -> dict[str, Any]:
    """The metrics of the model in ``model_path`` by its family's protocol, also written
    as ``metrics.json`` with plots into ``out_dir`` when given.  ``data``: the test data
    (default: the family's, e.g. the config's ``data/test.h5``); ``t_warm``, ``horizon``
    and ``n_ics`` narrow a forecast protocol (default: the system's)."""
    if out_dir is not None:  # before any compute: the folder must be writable
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        check_writable(out_dir, "--out-dir")
    payload = read_checkpoint(model_path)
    family = get_family(checkpoint_kind(payload))
    protocol = family.need("evaluate", "ledmus evaluate")
    options = EvaluateOptions(out_dir, plots, t_warm, horizon, n_ics, device)
    return protocol(payload, model_path, data, options)
