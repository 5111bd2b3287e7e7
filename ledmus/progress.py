"""When ledmus draws progress bars: one policy for every command, library call and
MUSCLE3 component.

A bar is drawn only when all of these hold:

* the caller asked for one (the ``progress=`` parameters of the library can only turn
  bars off),
* ledmus is not quiet: :func:`set_quiet` was not given ``True``, and the ``ledmus``
  logger is not set above INFO (``ledmus -q`` sets it to WARNING; a logger left unset,
  as in a script that never configured logging, does not count),
* ``LEDMUS_PROGRESS`` is not ``0`` (also ``false``, ``no``, ``off``),
* stderr is a terminal, or ``LEDMUS_PROGRESS=1`` (also ``true``, ``yes``, ``on``) asks
  for bars anyway (a log file, a pipe, a MUSCLE3 component's ``stderr.txt``).

Quiet wins over ``LEDMUS_PROGRESS=1``: ``-q`` on the command line is the nearer request.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterable
from typing import Any

#: environment variable: 1 draws bars also when stderr is not a terminal, 0 never
ENV = "LEDMUS_PROGRESS"
_ON = ("1", "true", "yes", "on")
_OFF = ("0", "false", "no", "off")

_quiet: bool | None = None
_warned: set[str] = set()


def set_quiet(quiet: bool | None) -> None:
    """``True``: no bars in this process whatever else says; ``False`` or ``None``: the
    ``ledmus`` logger's level decides (the default)."""
    global _quiet
    _quiet = quiet


def is_quiet() -> bool:
    """Whether ledmus is quiet: :func:`set_quiet` ``(True)``, or the ``ledmus`` logger
    set above INFO."""
    if _quiet:
        return True
    level = logging.getLogger("ledmus").level
    return level != logging.NOTSET and level > logging.INFO


def _env_choice() -> bool | None:
    value = os.environ.get(ENV, "").strip().lower()
    if value in _ON:
        return True
    if value in _OFF:
        return False
    if value and value not in _warned:
        _warned.add(value)
        logging.getLogger("ledmus").warning(
            "%s=%r is neither 1 nor 0; ignored (bars only on a terminal)", ENV, value
        )
    return None


def show_progress(requested: bool = True, stream: Any = None) -> bool:
    """Whether to draw a progress bar on ``stream`` (default ``sys.stderr``); see the
    module docstring.  ``requested``: the caller's own ``progress`` argument."""
    if not requested or is_quiet():
        return False
    choice = _env_choice()
    if choice is not None:
        return choice
    stream = sys.stderr if stream is None else stream
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


def progress_bar(iterable: Iterable | None = None, *, enabled: bool = True, **kwargs: Any) -> Any:
    """``tqdm(iterable, **kwargs)``, disabled unless :func:`show_progress` ``(enabled)``
    (a disabled bar still iterates, and its ``update`` and ``set_postfix`` do nothing)."""
    from tqdm.auto import tqdm

    return tqdm(iterable, disable=not show_progress(enabled, kwargs.get("file")), **kwargs)
