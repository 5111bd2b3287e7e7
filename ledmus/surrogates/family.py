"""One registration record per model family: everything ledmus needs to know about a family,
declared once.

A :class:`Family` names the checkpoint ``kind`` it owns and the parts of its life cycle:

=============  ==========================================================================
``network``    the ``nn.Module`` a checkpoint rebuilds as ``network(spec)``
``macro``      the :class:`~ledmus.surrogates.macro.MacroModel` wrapping it in a coupled
               run (``macro.from_network(net)``); None: the family cannot be coupled
``resolve``    the training config: raw YAML mapping -> resolved config, ``ValueError``
               naming the field (build it from :mod:`ledmus.validation` fields)
``train``      ``train(raw_config, out, options: TrainOptions) -> checkpoint path``
               (``ledmus train``)
``evaluate``   ``evaluate(payload, model_path, data, options: EvaluateOptions) -> metrics``
               (``ledmus evaluate``; it writes ``metrics.json`` into ``options.out_dir``)
``learn``      ``learn(raw_config, out_dir, strategies, *, progress) -> result`` (``ledmus
               learn``, concurrent learning)
``online``     whether the online trainer of adaptive runs can fine-tune the family
``verbs``      extra commands, ``ledmus <kind> <verb> ...``
=============  ==========================================================================

A new family is one module that builds its record and calls :func:`register_family`; the
command line, checkpoints, settings, training, evaluation and both coupling engines look
the family up here and nowhere branch on its name.  Modules named in the environment
variable ``LEDMUS_PLUGINS`` are imported by every ``ledmus`` entry point
(:func:`ledmus.plugins.load_plugins`), so a family registered there is known to the
MUSCLE3 components too.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "FAMILIES",
    "EvaluateOptions",
    "Family",
    "TrainOptions",
    "Verb",
    "check_kind",
    "get_family",
    "register_family",
    "unregister_family",
]


@dataclass(frozen=True)
class TrainOptions:
    """How ``ledmus train`` runs a family's ``train``: the torch ``device`` (``cpu``,
    ``cuda``, ``cuda:N``, ``auto``), progress bars, and the folder a relative ``data``
    path is also looked up in."""

    device: str = "cpu"
    progress: bool = True
    base_dir: Path | None = None


@dataclass(frozen=True)
class EvaluateOptions:
    """How ``ledmus evaluate`` runs a family's ``evaluate``: the folder for
    ``metrics.json`` and plots (None: nothing written), whether to plot, the forecast
    protocol's warm-up, horizon and number of windows (None: the system's), the device."""

    out_dir: Path | None = None
    plots: bool = True
    t_warm: int | None = None
    horizon: int | None = None
    n_ics: int | None = None
    device: str = "cpu"


@dataclass(frozen=True)
class Verb:
    """An extra command of a family: ``ledmus <family> <name> ...``.  ``arguments`` adds
    the command's arguments to its parser; ``run`` gets the parsed namespace."""

    name: str
    help: str
    arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], None]


@dataclass(frozen=True)
class Family:
    """A model family's registration record (see the module docstring for each part)."""

    kind: str
    network: type | None = None
    macro: type | None = None
    resolve: Callable[[dict[str, Any]], dict[str, Any]] | None = None
    train: Callable[..., Any] | None = None
    evaluate: Callable[..., dict[str, Any]] | None = None
    learn: Callable[..., Any] | None = None
    online: bool = False
    verbs: tuple[Verb, ...] = ()
    description: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.kind, str) or not self.kind.strip():
            raise ValueError(f"a model family needs a kind (a non-empty name), got {self.kind!r}")
        if self.macro is not None and getattr(self.macro, "kind", self.kind) != self.kind:
            raise ValueError(
                f"family {self.kind!r}: its macro model {self.macro.__name__} has "
                f"kind {self.macro.kind!r}; they must agree"
            )
        names = [v.name for v in self.verbs]
        if len(set(names)) != len(names):
            raise ValueError(f"family {self.kind!r}: verb names repeat: {names}")

    def need(self, part: str, doing: str) -> Any:
        """The part ``part`` (``train``, ``evaluate``, ...), or ``ValueError`` saying which
        families have it."""
        value = getattr(self, part)
        if value is None:
            having = [k for k, f in FAMILIES.items() if getattr(f, part) is not None]
            raise ValueError(
                f"model family {self.kind!r} has no {part} ({doing}); "
                f"families with one: {', '.join(having) or 'none'}"
            )
        return value


#: checkpoint kind -> its family (filled by :func:`register_family`)
FAMILIES: dict[str, Family] = {}


def register_family(family: Family, *, replace: bool = False) -> Family:
    """Add ``family`` under ``family.kind``; ``ValueError`` for a kind taken (unless
    ``replace``)."""
    if not isinstance(family, Family):
        raise ValueError(f"register_family takes a Family record, got {type(family).__name__}")
    if family.kind in FAMILIES and not replace and FAMILIES[family.kind] != family:
        raise ValueError(
            f"model family {family.kind!r} is already registered (pass replace=True to replace it)"
        )
    FAMILIES[family.kind] = family
    return family


def unregister_family(kind: str) -> None:
    """Remove the family ``kind`` (nothing if it is not registered)."""
    FAMILIES.pop(kind, None)


def check_kind(kind: Any, wanted: str, what: str, noun: str = "checkpoint") -> None:
    """``ValueError`` ``<what> is a '<kind>' <noun>, not <wanted>`` unless ``kind`` is
    ``wanted`` (a part that works with one family only refuses the others through this)."""
    if kind != wanted:
        raise ValueError(f"{what} is a {kind!r} {noun}, not {wanted}")


def get_family(kind: str) -> Family:
    """The family of checkpoint kind ``kind``; ``ValueError`` listing the registered ones."""
    if kind not in FAMILIES:
        raise ValueError(f"unknown model family {kind!r}; allowed: {', '.join(sorted(FAMILIES))}")
    return FAMILIES[kind]
