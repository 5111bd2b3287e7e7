"""Plug-ins: modules that register systems or model families from outside ledmus.

``LEDMUS_PLUGINS`` (environment) is a comma-separated list of importable module names;
every ``ledmus`` entry point (the command line and each MUSCLE3 component) imports them
before it reads settings, so a system registered with :func:`ledmus.systems.register` or
a family registered with :func:`ledmus.surrogates.register_family` there is known to every
process of a run.  Set it in the shell, or per component in the yMMSL ``implementations``
(``env: {LEDMUS_PLUGINS: mypackage.ledmus_plugin}``).
"""

from __future__ import annotations

import importlib
import os

VARIABLE = "LEDMUS_PLUGINS"


def plugin_names(value: str | None = None) -> list[str]:
    """The module names in ``value`` (default: the environment variable), in order."""
    text = os.environ.get(VARIABLE, "") if value is None else value
    return [name.strip() for name in text.split(",") if name.strip()]


def load_plugins(value: str | None = None) -> list[str]:
    """Import every plug-in module (once; Python caches imports); returns their names.
    ``ValueError`` naming the variable and the module for one that cannot be imported."""
    names = plugin_names(value)
    for name in names:
        try:
            importlib.import_module(name)
        except ImportError as exc:
            raise ValueError(
                f"{VARIABLE}: cannot import plug-in module {name!r} ({exc}); it must be "
                "importable (on PYTHONPATH or installed)"
            ) from None
    return names
