"""User-facing text speaks in words users know.

The package (docstrings, comments, CLI help), the shipped configs, the examples, the
README and the documentation name features and cite papers; they never use the project's
internal words: tracker numbers, working names of the reference papers, lettered
demonstrations or a past release as the name of a behaviour.  CHANGELOG.md carries the
history and is not scanned.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

FORBIDDEN = (
    # a tracker number ("issue 9", "Issue #10"): name the feature instead
    r"\bissue\s*#?\d+",
    # a reference paper's working name ("seed 001"): cite it (authors, title), e.g.
    # "Vlachas et al. (LED paper), eq. 30"
    r"\bseed\s+00\d\b",
    # a lettered demonstration ("demonstration a"): say what the run shows
    r"\bdemonstration\s+[a-z]\b",
    # a past release as the name of a behaviour ("as release 0.1 did"): say what the
    # behaviour is ("half-way walls, the earlier default"); CHANGELOG.md has the history
    r"\brelease\s+0\.1\b",
)
PATTERN = re.compile("|".join(f"(?:{p})" for p in FORBIDDEN), re.IGNORECASE)

#: scanned path (relative to the repository root) -> file suffixes read there
SCOPES = {
    "ledmus": (".py", ".md"),
    "configs": (".yaml", ".yml", ".ymmsl"),
    "examples": (".py", ".md", ".rst", ".txt", ".yaml", ".yml", ".ymmsl"),
    "README.md": (".md",),
    "docs": (".md", ".rst", ".py", ".txt"),
}
#: generated output, never written by hand (sphinx build, sphinx-gallery pages, caches)
EXCLUDED_DIRS = {"_build", "auto_examples", "__pycache__", ".ipynb_checkpoints"}
EXCLUDED_FILES = {"docs/sg_execution_times.rst", "CHANGELOG.md"}


def scanned_files(scope: str) -> list[Path]:
    """The hand-written text files of ``scope`` that the wording rule applies to."""
    base = ROOT / scope
    if base.is_file():
        candidates = [base]
    elif base.is_dir():
        candidates = sorted(p for p in base.rglob("*") if p.is_file())
    else:
        return []
    files = []
    for path in candidates:
        rel = path.relative_to(ROOT)
        if set(rel.parts[:-1]) & EXCLUDED_DIRS or rel.as_posix() in EXCLUDED_FILES:
            continue
        if path.suffix in SCOPES[scope]:
            files.append(path)
    return files


def internal_words(paths: list[Path]) -> list[str]:
    """``path:line: text`` for every line that uses a forbidden word."""
    hits = []
    for path in paths:
        text = path.read_text(encoding="utf-8", errors="replace")
        for number, line in enumerate(text.splitlines(), start=1):
            if PATTERN.search(line):
                hits.append(f"{path.relative_to(ROOT).as_posix()}:{number}: {line.strip()}")
    return hits


@pytest.mark.parametrize("scope", list(SCOPES))
def test_no_project_internal_words(scope):
    hits = internal_words(scanned_files(scope))
    assert not hits, (
        f"{len(hits)} line(s) in {scope} use project-internal words (name the feature or "
        "cite the paper instead):\n" + "\n".join(hits)
    )


def test_the_scan_reads_the_user_facing_text_and_not_the_changelog():
    scanned = {p.relative_to(ROOT).as_posix() for scope in SCOPES for p in scanned_files(scope)}
    for expected in ("ledmus/cli.py", "configs/led_fhn.ymmsl", "configs/fhn.yaml", "README.md"):
        assert expected in scanned
    assert any(name.startswith("examples/") for name in scanned)
    assert "CHANGELOG.md" not in scanned
    assert not any("/_build/" in name or "/auto_examples/" in name for name in scanned)


@pytest.mark.parametrize(
    "text",
    [
        "issue 9",
        "Issue #10",
        "(issue 10 item 5)",
        "seed 001",
        "Seed 003's model",
        "demonstration a",
        "Demonstration e",
        "as release 0.1 did",
    ],
)
def test_the_patterns_catch_internal_words(text):
    assert PATTERN.search(text)


@pytest.mark.parametrize(
    "text",
    [
        "issues",
        "--seed 7",
        "seed: 0",
        "random seed 12",
        "the demonstration (a run)",
        "release 0.10",
        "version 0.1.0",
    ],
)
def test_the_patterns_leave_ordinary_words_alone(text):
    assert not PATTERN.search(text)
