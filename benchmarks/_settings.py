"""``--set NAME=VALUE`` for the benchmarks that run yMMSL settings: each value is read
as YAML (``--set assimilation=innovation --set assimilation_time=70``) and laid over the
settings of every run the benchmark makes, before validation."""

from __future__ import annotations

import argparse
from typing import Any

import yaml


def add_set_option(ap: argparse.ArgumentParser, what: str = "setting of every run") -> None:
    ap.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                    help=f"change a {what} (repeatable)")  # fmt: skip


def overrides(ap: argparse.ArgumentParser, items: list[str]) -> dict[str, Any]:
    """``NAME=VALUE`` items as a settings mapping (``ap.error`` on a malformed item)."""
    out: dict[str, Any] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name:
            ap.error(f"--set {item!r}: expected NAME=VALUE")
        out[name] = yaml.safe_load(value)
    return out
