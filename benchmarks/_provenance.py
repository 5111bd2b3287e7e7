"""What every benchmark JSON records about where it was measured."""

from __future__ import annotations

import subprocess


def git_commit() -> str:
    """HEAD of the checkout the benchmark runs in ("unknown" outside git)."""
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                              check=True).stdout.strip()  # fmt: skip
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
