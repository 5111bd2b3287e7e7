"""Checkpoint files: one ``.pt`` per trained model, rebuilt from the file alone.

Contents: ``format`` ("ledmus-led"), ``format_version``, ``ledmus_version``,
``torch_version``, ``kind`` (the model family: ``led``, ``pca``, …; absent in files
written before it existed, which are LED), ``system``, ``spec`` (constructor spec of the
family's ``nn.Module``), ``config``
(the training YAML as written), ``state_dict`` (weights and scalers), ``fingerprint``
(SHA-256 of the training and validation data), ``history`` (loss curves).
"""

from __future__ import annotations

import os
import pickle
import warnings
import zipfile
from pathlib import Path
from typing import Any

import torch

from .. import __version__
from ..atomic import atomic_path
from . import family

FORMAT = "ledmus-led"
FORMAT_VERSION = 1


def checkpoint_kind(payload: dict[str, Any]) -> str:
    """The model family of a checkpoint payload (``led`` for files without a kind)."""
    return str(payload.get("kind", "led"))


def save_checkpoint(
    path: str | os.PathLike,
    model: torch.nn.Module,
    *,
    config: dict[str, Any],
    fingerprint: str,
    history: dict[str, Any] | None = None,
) -> Path:
    """Write the checkpoint atomically (temporary file renamed into place)."""
    path = Path(path)
    payload = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "ledmus_version": __version__,
        "torch_version": str(torch.__version__),
        "kind": getattr(model, "kind", "led"),
        "system": model.system,
        "spec": model.spec,
        "config": config,
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "fingerprint": fingerprint,
        "history": history or {},
    }
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return path


def _unreadable_reason(path: Path, exc: BaseException) -> str:
    """A short reason why ``torch.load(path, weights_only=True)`` failed, without
    PyTorch's advice to load with ``weights_only=False`` (which would run any code an
    untrusted file holds)."""
    try:
        with open(path, "rb") as f:
            head = f.read(4)
    except OSError as err:
        return f"cannot be read: {err.strerror}"
    if not head:
        return "empty file"
    if zipfile.is_zipfile(path):
        if isinstance(exc, pickle.UnpicklingError):
            return (
                "a PyTorch file holding Python objects other than tensors and plain data, "
                "which are not loaded: loading them could run code"
            )
        return "corrupted or truncated PyTorch file"
    if head[:1] == b"\x80":
        return "a plain Python pickle, not a PyTorch file; not unpickled: that could run code"
    if head[:2] == b"PK":
        return "corrupted or truncated PyTorch file"
    return "not a PyTorch file: corrupted, or a file of another format"


def read_checkpoint(
    path: str | os.PathLike, *, system: str | None = None, kind: str | None = None
) -> dict[str, Any]:
    """The checkpoint's payload, checked: refuses a missing, corrupted or foreign file,
    an incompatible format version and (when ``system`` is given) another system.

    Files are loaded with ``weights_only=True`` (tensors and plain data only; nothing in
    the file can run code); every failure is one ``ValueError`` line ``FILE is not a
    ledmus checkpoint (reason)``."""
    path = Path(path)
    if not path.exists():
        raise ValueError(f"{path} is not a ledmus checkpoint (file does not exist)")
    if not path.is_file():
        raise ValueError(f"{path} is not a ledmus checkpoint (a folder, not a file)")
    try:
        with warnings.catch_warnings():  # e.g. "Detected pickle protocol 4": the reason says it
            warnings.simplefilter("ignore", UserWarning)
            payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # UnpicklingError, RuntimeError, BadZipFile, EOFError, ...
        reason = _unreadable_reason(path, exc)
        raise ValueError(f"{path} is not a ledmus checkpoint ({reason})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        what = (
            f"a PyTorch file of a {type(payload).__name__}"
            if not isinstance(payload, dict)
            else "a PyTorch file without the entry format: " + FORMAT
        )
        raise ValueError(f"{path} is not a ledmus checkpoint ({what})")
    version = payload.get("format_version")
    if version != FORMAT_VERSION:
        raise ValueError(
            f"model file {path} has checkpoint format version {version} (written by ledmus "
            f"{payload.get('ledmus_version')}); this ledmus {__version__} reads version {FORMAT_VERSION}"
        )
    if system is not None and payload["system"] != system:
        raise ValueError(
            f"model file {path} was trained for system {payload['system']!r}, not {system!r}"
        )
    if kind is not None:
        family.check_kind(checkpoint_kind(payload), kind, str(path))
    return payload


def load_model(
    path: str | os.PathLike,
    *,
    system: str | None = None,
    kind: str | None = None,
    device: str | torch.device = "cpu",
) -> tuple[torch.nn.Module, dict[str, Any]]:
    """Rebuild the model from the file alone; returns ``(model, payload)``.  ``system``,
    ``kind``: refuse a model of another system or family."""
    payload = read_checkpoint(path, system=system, kind=kind)
    return model_from_payload(payload, path, device=device), payload


def model_from_payload(
    payload: dict[str, Any], path: str | os.PathLike, *, device: str | torch.device = "cpu"
) -> torch.nn.Module:
    """The model of a payload :func:`read_checkpoint` returned (``path`` for messages)."""
    kind = checkpoint_kind(payload)
    families = family.FAMILIES
    network = families[kind].network if kind in families else None
    if network is None:
        with_network = sorted(k for k, f in families.items() if f.network is not None)
        raise ValueError(
            f"model file {path} holds a model of kind {kind!r}; allowed: {', '.join(with_network)}"
        )
    model = network(payload["spec"])
    dtype = getattr(torch, payload["config"].get("dtype", "float32"))
    model.to(dtype=dtype)
    if hasattr(model, "scaler"):
        model.scaler.to(torch.float64)  # scaler statistics stay float64
    try:
        model.load_state_dict(payload["state_dict"])
    except RuntimeError as exc:
        raise ValueError(
            f"model file {path}: weights do not fit the recorded architecture ({exc})"
        ) from None
    return model.to(device).eval()
