"""Safe output locations: refuse to mix a new run with an old one's files, check that the
place is writable before any compute, and leave no temporary file behind on SIGTERM/SIGINT.

Used by ``ledmus run`` (the run directory), the MUSCLE3 macro component
(``<run dir>/output``) and ``ledmus simulate --out`` (one file).
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

log = logging.getLogger(__name__)


def _first_file_on_the_way(path: Path) -> Path | None:
    """The first existing ancestor of ``path`` (or ``path`` itself) that is not a folder."""
    for p in [*reversed(path.parents), path]:
        if p.exists() and not p.is_dir():
            return p
        if not p.exists():
            return None
    return None


def check_writable(folder: Path, what: str) -> None:
    """Create and delete a file in ``folder``; raise ``ValueError`` naming ``what`` if
    that fails (read-only file system, permissions, a full disk)."""
    try:
        fd, probe = tempfile.mkstemp(prefix=".ledmus-write-check.", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise ValueError(f"{what} {str(folder)!r} is not writable: {exc.strerror}") from None


def prepare_run_dir(path: str | os.PathLike, *, overwrite: bool = False,
                    what: str = "run directory", option: str = "--overwrite") -> Path:  # fmt: skip
    """Make ``path`` an empty, writable folder before any compute.

    An existing non-empty folder is refused unless ``overwrite``; then its contents are
    removed (old outputs must not sit beside new ones).  ``path`` being a file, or lying
    inside one, is refused with a message saying so.  ``option`` names how to ask for
    overwriting in the message (``--overwrite`` or the setting ``overwrite: true``).
    """
    path = Path(path)
    blocker = _first_file_on_the_way(path)
    if blocker is not None:
        where = "is a file" if blocker == path else f"lies inside the file {str(blocker)!r}"
        raise ValueError(f"{what} {str(path)!r} {where}; give a folder")
    if path.is_dir() and any(path.iterdir()):
        held = sorted(p.name for p in path.iterdir())
        shown = ", ".join(held[:5]) + (f", … ({len(held)} entries)" if len(held) > 5 else "")
        if not overwrite:
            raise ValueError(
                f"{what} {str(path)!r} is not empty (holds {shown}); choose a new one or "
                f"pass {option} to replace its contents"
            )
        log.info("%s %s: removing the previous contents (%s)", what, path, shown)
        for p in path.iterdir():
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p)
            else:
                p.unlink()
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ValueError(f"{what} {str(path)!r} cannot be created: {exc.strerror}") from None
    check_writable(path, what)
    return path


def prepare_output_file(path: str | os.PathLike, *, overwrite: bool = False,
                        option: str = "--overwrite") -> Path:  # fmt: skip
    """Check an output file's place before any compute: its folder exists (and is a
    folder), is writable, and the file does not exist unless ``overwrite``."""
    path = Path(path)
    blocker = _first_file_on_the_way(path.parent)
    if blocker is not None:
        raise ValueError(f"--out {str(path)!r}: {str(blocker)!r} is a file, not a folder")
    if not path.parent.is_dir():
        raise ValueError(f"--out folder {str(path.parent)!r} does not exist")
    if path.is_dir():
        raise ValueError(f"--out {str(path)!r} is a folder; give a file name")
    if path.exists() and not overwrite:
        raise ValueError(f"--out {str(path)!r} exists; choose a new name or pass {option}")
    check_writable(path.parent, "--out folder")
    return path


_STOP = {"signum": 0}  # the first stop signal this process got (0: none yet)


def stop_signal() -> int:
    """The first signal :func:`terminate_as_exception` turned into ``SystemExit`` in this
    process (``0``: none yet)."""
    return _STOP["signum"]


@contextmanager
def terminate_as_exception(*signals: int) -> Iterator[None]:
    """Within the block, the first of ``signals`` (default SIGTERM, what ``kill`` and batch
    schedulers send; the MUSCLE3 components add SIGINT) raises ``SystemExit(128 + signum)``
    instead of ending the process at once, so ``finally`` blocks and
    :func:`ledmus.atomic.atomic_path` remove their temporary files; later signals are
    ignored, so they cannot cut that unwinding short.  Without SIGINT in ``signals``,
    Ctrl-C raises ``KeyboardInterrupt`` as usual.  Only in the main thread; elsewhere a
    no-op."""
    signals = signals or (signal.SIGTERM,)
    try:
        previous = {s: signal.getsignal(s) for s in signals}
        for s in signals:
            signal.signal(s, _raise_exit_once)
    except ValueError:  # not the main thread
        yield
        return
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def _raise_exit_once(signum: int, frame: object) -> None:
    if _STOP["signum"]:  # already unwinding
        return
    _STOP["signum"] = signum
    raise SystemExit(128 + signum)
