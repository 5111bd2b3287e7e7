"""Safe output locations: refuse to mix a new run with an old one's files, check that the
place is writable before any compute, and leave no temporary file behind on SIGTERM/SIGINT.

Every run writes a marker :data:`MARKER` into its run directory first; ``--overwrite``
(the setting ``overwrite: true``) removes only what such a run wrote, and refuses a
non-empty folder without a marker, so files of the user are never touched.

Used by ``ledmus run`` (the run directory), the MUSCLE3 macro component
(``<run dir>/output``) and ``ledmus simulate --out`` (one file).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import socket
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
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


#: the marker a ledmus run writes first into its run directory (JSON: format, run id,
#: engine, start time, ledmus version, the outputs it wrote, whether it finished)
MARKER = ".ledmus-run.json"
MARKER_FORMAT = "ledmus-run"
#: what runs write into a run directory (the embedded engine's files; a MUSCLE3 run's
#: manager files and folders): ``--overwrite`` removes these and the marker's outputs
RUN_OUTPUTS = (
    "trajectory.h5",
    "metrics.json",
    "field.png",
    "error_vs_time.png",
    "profiles.png",
    "summary.txt",
)
MUSCLE3_OUTPUTS = (
    "configuration.ymmsl",
    "muscle3_manager.log",
    "performance.sqlite",
    "performance.sqlite-journal",
    "performance.sqlite-wal",
    "performance.sqlite-shm",
    "instances",
    "logs",
    "output",
    "snapshots",
)
#: environment variable naming the run id ``ledmus launch`` wrote into the marker (so
#: the macro component tells its own run's marker from an earlier run's)
RUN_ID_ENV = "LEDMUS_RUN_ID"
#: marker key: prepared by ``ledmus run-dir`` for a plain ``muscle_manager``, not yet
#: taken by that run's macro component
UNCLAIMED = "unclaimed"


def _shown(names: list[str]) -> str:
    return ", ".join(names[:5]) + (f", … ({len(names)} entries)" if len(names) > 5 else "")


def read_marker(folder: str | os.PathLike) -> dict | None:
    """The run marker of ``folder`` (``None`` without one; ``{}`` for one that cannot be
    read, which proves nothing about what the folder holds)."""
    path = Path(folder) / MARKER
    if not path.is_file():
        return None
    try:
        marker = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return marker if isinstance(marker, dict) and marker.get("format") == MARKER_FORMAT else {}


def write_marker(folder: str | os.PathLike, marker: dict) -> None:
    """Write ``marker`` into ``folder`` atomically (a temporary file renamed into place)."""
    path = Path(folder) / MARKER
    tmp = path.with_name(f".{MARKER}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(marker, indent=1) + "\n")
    os.replace(tmp, path)


def new_marker(
    engine: str, kept: Sequence[str] = (), run_id: str | None = None, outputs: Sequence[str] = ()
) -> dict:
    from . import __version__

    return {
        "format": MARKER_FORMAT,
        "run_id": run_id or uuid.uuid4().hex,
        "engine": engine,
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "ledmus_version": __version__,
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "outputs": sorted(outputs),
        "kept": sorted(kept),
        "complete": False,
    }


def owned_names(marker: dict) -> set[str]:
    """Entry names of a run directory that a ledmus run wrote: the marker's ``outputs``
    (plain names only), the known outputs of both engines and the marker itself."""
    named = {str(n) for n in marker.get("outputs", []) if isinstance(n, str)}
    named = {n for n in named if n and "/" not in n and n not in (".", "..")}
    return named | set(RUN_OUTPUTS) | set(MUSCLE3_OUTPUTS) | {MARKER}


def _is_temporary(name: str) -> bool:
    """Temporary files of :func:`ledmus.atomic.atomic_path` and of :func:`write_marker`."""
    return name.startswith(".") and (name.endswith(".part") or name.endswith(".tmp"))


def _refuse_working_dir(path: Path, what: str) -> None:
    """The working directory, a folder above it, or the home folder is never a run
    directory: ``--overwrite`` would act on everything in it."""
    here, target = Path.cwd().resolve(), path.resolve()
    if target == here or target in here.parents or target == Path.home().resolve():
        where = (
            "the current working directory"
            if target == here
            else (
                "the home folder"
                if target == Path.home().resolve()
                else "a folder holding the current working directory"
            )
        )
        raise ValueError(
            f"{what} {str(path)!r} is {where}; give a folder of its own, e.g. runs/NAME"
        )


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def _still_running(marker: dict) -> str | None:
    """``"pid N"`` when the run that wrote ``marker`` has not finished and its process
    still runs on this host (a Python process: a reused pid of another program does not
    count), else None.  A run on another host cannot be checked from here."""
    pid = marker.get("pid")
    if marker.get("complete") or marker.get("host") != socket.gethostname():
        return None
    if not isinstance(pid, int) or pid <= 0 or pid == os.getpid():
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except OSError:  # exists, owned by another user
        pass
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return f"pid {pid}"
    return f"pid {pid}" if b"python" in cmdline or b"ledmus" in cmdline else None


def clear_previous_run(
    path: Path, *, what: str = "run directory", option: str = "--overwrite"
) -> list[str]:
    """Remove what an earlier ledmus run wrote into ``path`` (its marker names the run,
    :func:`owned_names` what it wrote); return the names of the entries kept (files no
    ledmus run wrote, named in a warning).  A non-empty folder without a marker is
    refused: ``ValueError`` naming it and why."""
    held = sorted(p.name for p in path.iterdir())
    marker = read_marker(path)
    if not marker:
        why = "its marker cannot be read" if marker == {} else f"it has no {MARKER}"
        raise ValueError(
            f"{what} {str(path)!r} holds files that no ledmus run wrote ({_shown(held)}; "
            f"{why}); {option} only replaces an earlier ledmus run: choose a new folder, "
            "or move those files away yourself"
        )
    running = _still_running(marker)
    if running:
        raise ValueError(
            f"{what} {str(path)!r} holds a ledmus run that is still running ({running}); "
            f"{option} does not replace a run in progress: wait for it, stop it, or choose "
            "a new folder"
        )
    owned = owned_names(marker)
    removed = [n for n in held if n in owned or _is_temporary(n)]
    kept = [n for n in held if n not in removed]
    log.info("%s %s: removing the previous run's outputs (%s)", what, path, _shown(removed))
    for name in removed:
        _remove(path / name)
    if kept:
        log.warning(
            "%s %s: kept %d entr%s that no ledmus run wrote: %s",
            what,
            path,
            len(kept),
            "y" if len(kept) == 1 else "ies",
            _shown(kept),
        )
    return kept


def _holds_a_run_or_files(path: Path) -> bool:
    """Anything in ``path`` but an unclaimed marker (``ledmus run-dir`` ran, no run
    started since)?"""
    names = [p.name for p in path.iterdir()]
    return bool(names) and not (names == [MARKER] and (read_marker(path) or {}).get(UNCLAIMED))


def prepare_run_dir(
    path: str | os.PathLike,
    *,
    overwrite: bool = False,
    what: str = "run directory",
    option: str = "--overwrite",
    engine: str = "embedded",
    run_id: str | None = None,
) -> Path:
    """Make ``path`` a writable folder for a new run before any compute, and write the
    run's marker (:data:`MARKER`) into it.

    A new or empty folder is taken.  A non-empty one is refused unless ``overwrite``;
    then only what an earlier ledmus run wrote is removed (:func:`clear_previous_run`:
    the folder must hold that run's marker; entries no ledmus run wrote are kept and
    named in a warning).  The working directory (or a folder above it, or the home
    folder), ``path`` being a file or lying inside one are refused with a message saying
    so.  ``option`` names how to ask for overwriting (``--overwrite`` or the setting
    ``overwrite: true``).  The folders created are recorded in the marker
    (``created``), so :func:`discard_run` can remove them after a failed run.
    """
    path = Path(path)
    blocker = _first_file_on_the_way(path)
    if blocker is not None:
        where = "is a file" if blocker == path else f"lies inside the file {str(blocker)!r}"
        raise ValueError(f"{what} {str(path)!r} {where}; give a folder")
    _refuse_working_dir(path, what)
    kept: list[str] = []
    if path.is_dir() and _holds_a_run_or_files(path):
        if not overwrite:
            held = sorted(p.name for p in path.iterdir() if p.name != MARKER)
            earlier = " an earlier ledmus run" if read_marker(path) else ""
            raise ValueError(
                f"{what} {str(path)!r} is not empty (holds{earlier} {_shown(held)}); choose "
                f"a new one or pass {option} to replace an earlier run's outputs"
            )
        kept = clear_previous_run(path, what=what, option=option)
    created = [p for p in [*reversed(path.parents), path] if not p.exists()]
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ValueError(f"{what} {str(path)!r} cannot be created: {exc.strerror}") from None
    check_writable(path, what)
    marker = new_marker(engine, kept, run_id)
    marker["created"] = len(created)  # how many folders, from path upwards, are new
    try:
        write_marker(path, marker)
    except OSError as exc:
        raise ValueError(f"{what} {str(path)!r} is not writable: {exc.strerror}") from None
    return path


def finish_run(path: str | os.PathLike) -> None:
    """Record in the marker what the run wrote (every entry but those it kept) and that
    it finished."""
    path = Path(path)
    marker = read_marker(path)
    if not marker:
        return
    kept = set(marker.get("kept", []))
    marker["outputs"] = sorted(p.name for p in path.iterdir() if p.name not in kept | {MARKER})
    marker["complete"] = True
    write_marker(path, marker)


def discard_run(path: str | os.PathLike, *, keep_folders: bool = False) -> None:
    """After a failed or stopped run: remove what it wrote into ``path`` (all but the
    entries it kept), its marker, and (unless ``keep_folders``: the MUSCLE3 output
    folder, which the manager's run directory holds) the folders it created when they
    are empty now.  Never raises (the run's own error is the one to report)."""
    path = Path(path)
    try:
        marker = read_marker(path)
        if not marker:
            return
        kept = set(marker.get("kept", []))
        for p in path.iterdir():
            if p.name not in kept:
                _remove(p)
        created = 0 if keep_folders else int(marker.get("created", 0))
        for folder in [path, *path.parents][:created]:
            folder.rmdir()  # only an empty folder; stops at the first that is not
    except OSError as exc:
        log.debug("discard_run %s: %s", path, exc)


def claim_muscle3_run_dir(root: str | os.PathLike) -> str:
    """Called by the MUSCLE3 macro component in ``<root>/instances/macro/workdir`` before
    any compute: make sure ``root`` is this run's own directory and return the run id.

    ``ledmus launch`` prepared ``root`` and wrote a marker whose run id it passes in
    :data:`RUN_ID_ENV`: then the ids match.  A plain ``muscle_manager`` writes no marker,
    so one found without (or with another) id is an earlier run's: the manager has
    already written this run's files over it, and the run is stopped (``ValueError``)
    rather than mixing two runs' records.  Without a marker, this run writes one."""
    root = Path(root)
    marker = read_marker(root)
    run_id = os.environ.get(RUN_ID_ENV) or None
    if marker is None:
        write_marker(root, new_marker("muscle3", run_id=run_id, outputs=MUSCLE3_OUTPUTS))
        return read_marker(root)["run_id"]
    if run_id and marker.get("run_id") == run_id:
        return run_id
    if marker.get(UNCLAIMED) and not run_id:  # `ledmus run-dir D && muscle_manager ...`
        marker[UNCLAIMED] = False
        marker["pid"] = os.getpid()
        write_marker(root, marker)
        return marker["run_id"]
    earlier = (
        f"ledmus run {marker.get('run_id', '?')[:8]} started {marker.get('started', '?')}"
        if marker
        else f"an unreadable {MARKER}"
    )
    raise ValueError(
        f"run directory {str(root)!r} holds an earlier MUSCLE3 run ({earlier}); this run "
        "would mix its records with it: give muscle_manager a new --run-dir, or replace the "
        "earlier run with `ledmus launch X.ymmsl --run-dir DIR --overwrite`"
    )


def prepare_muscle3_run_dir(
    run_dir: str | os.PathLike,
    *,
    overwrite: bool = False,
    for_muscle_manager: bool = False,
) -> str:
    """Before the manager starts: ``run_dir`` new or empty, or (``overwrite``) an earlier
    ledmus run's folder cleared of what it wrote; writes the marker of the new run and
    returns its id.

    ``ledmus launch`` hands the id to the components in :data:`RUN_ID_ENV`.  For a plain
    ``muscle_manager`` started next (``for_muscle_manager``: ``ledmus run-dir D``), the
    marker is left unclaimed: the first macro component that starts without a run id
    takes it (:func:`claim_muscle3_run_dir`), a later rerun finds it claimed."""
    option = "--overwrite" if for_muscle_manager else "--overwrite or the setting overwrite: true"
    prepare_run_dir(run_dir, overwrite=overwrite, engine="muscle3", option=option)
    marker = read_marker(run_dir)
    marker["outputs"] = sorted(MUSCLE3_OUTPUTS)
    if for_muscle_manager:
        marker[UNCLAIMED] = True
    write_marker(run_dir, marker)
    return marker["run_id"]


def prepare_output_file(
    path: str | os.PathLike, *, overwrite: bool = False, option: str = "--overwrite"
) -> Path:
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
