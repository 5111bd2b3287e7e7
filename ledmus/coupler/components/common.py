"""What the MUSCLE3 adapters share: settings, error reports, MPI,
payload conversion.

Every component runs its body through :func:`run_guarded`, which

* reports a failure as one line (``ledmus: error: <component>: <Type>: <message>`` on
  stderr and through ``Instance.error_shutdown``, so the manager log gets one line); the
  traceback goes only to the component's own log file ``instances/<name>/ledmus.log``
  (DEBUG level),
* turns SIGTERM/SIGINT into ``SystemExit`` once (:func:`ledmus.rundir.terminate_as_exception`), so ``finally`` blocks and
  :func:`ledmus.atomic.atomic_path` remove temporary files, and then ends the process
  with ``os._exit`` (no minutes of libmuscle retrying a manager that is gone),
* runs a :class:`~.watchdog.ManagerWatchdog` that stops the component within seconds when the
  MUSCLE3 manager is gone.
"""

from __future__ import annotations

import logging
import signal
import sys
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ...rundir import terminate_as_exception
from ..mpi import launcher_rank
from .watchdog import _exit_now, _say, start_watchdog

log = logging.getLogger("ledmus.coupler")


def raw_settings(instance: Any) -> dict[str, Any]:
    """The settings this instance sees (global names; ``<instance>.<name>`` overrides are
    resolved and other instances' settings dropped by libmuscle)."""
    return {str(name): instance.get_setting(str(name)) for name in instance.list_settings()}


def _own_log(component: str) -> logging.Handler | None:
    """Log ``ledmus.*`` at DEBUG into ``instances/<name>/ledmus.log`` (``ledmus.rank<r>.log``
    on MPI ranks other than 0) when running in a ``muscle_manager`` run directory.  Only
    WARNING and above reach libmuscle's handler, and so the manager log."""
    cwd = Path.cwd()
    if not (cwd.name == "workdir" and cwd.parent.parent.name == "instances"):
        return None
    rank = launcher_rank()
    path = cwd.parent / ("ledmus.log" if rank == 0 else f"ledmus.rank{rank}.log")
    try:
        handler = logging.FileHandler(path, mode="a")
    except OSError:
        return None
    handler.setLevel(logging.DEBUG)
    handler.setFormatter(
        logging.Formatter(f"%(asctime)s %(levelname)s {component} %(name)s: %(message)s")
    )
    logger = logging.getLogger("ledmus")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    return handler


def _one_line(exc: BaseException) -> str:
    return " ".join(line.strip() for line in str(exc).splitlines() if line.strip())


def run_guarded(
    component: str, main: Callable[[], None], instance_box: list, cleanup: Sequence[Path] = ()
) -> None:
    """Run ``main`` (in the main thread) under a :class:`ManagerWatchdog`.

    * An exception shuts the whole MUSCLE3 run down with one line: ``<Type>: <message>``
      through ``Instance.error_shutdown`` (the manager log prefixes the instance name:
      ``macro ... CRITICAL macro: ValueError: unknown setting(s) t_marco; ...``) and
      ``ledmus: error: <component>: <Type>: <message>`` on stderr; the traceback goes
      only to the component's own log file (DEBUG).  Exit status 1.
    * SIGTERM/SIGINT (or the watchdog) unwind ``main`` (temporary files are removed),
      then the process ends at once with status 128 + signal number.
    * ``cleanup``: folders whose ``.part`` files the watchdog removes if ``main`` does
      not unwind in time.
    """
    handler = _own_log(component)
    watchdog = start_watchdog(component, cleanup)
    watchdog.handler = handler
    log.debug("watchdog: %s", watchdog.what)
    failed = False
    try:
        with terminate_as_exception(signal.SIGTERM, signal.SIGINT):
            try:
                main()
            except Exception as exc:
                failed = True
                message = f"{type(exc).__name__}: {_one_line(exc)}"
                log.debug("%s: %s\n%s", component, message, traceback.format_exc())
                _say(f"error: {component}: {message}")
                if instance_box and instance_box[0] is not None:
                    try:  # the manager log shows it as "<instance> ... CRITICAL <instance>: ..."
                        instance_box[0].error_shutdown(message)
                    except Exception as err:  # e.g. the manager is unreachable
                        log.debug("error_shutdown failed: %s", err)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
        if code > 128:  # a stop signal, see terminate_as_exception
            if not watchdog.fired.is_set():
                name = signal.Signals(code - 128).name
                _say(f"{component}: stopped by {name}; temporary files removed")
            log.info("stopped by signal %d", code - 128)
            _exit_now(code, handler)
        raise
    if failed:
        sys.exit(1)


#: array dtypes libmuscle sends as they are; others travel as bytes (:func:`portable`)
WIRE_DTYPES = ("int32", "int64", "float32", "float64", "bool")


def portable(value: Any) -> Any:
    """``value`` with every array of another dtype (e.g. the ``uint64`` words of a
    generator state) as ``{"__array__": dtype, "shape": [...], "data": bytes}``, which
    :func:`received` turns back into the array."""
    if isinstance(value, np.ndarray) and str(value.dtype) not in WIRE_DTYPES:
        return {
            "__array__": value.dtype.str,
            "shape": list(value.shape),
            "data": np.ascontiguousarray(value).tobytes(),
        }
    if isinstance(value, dict):
        return {k: portable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [portable(v) for v in value]
    return value


def received(msg: Any) -> Any:
    """The data of a received message with libmuscle ``Grid`` values turned into
    writable numpy arrays (received arrays are read-only), and :func:`portable` arrays
    restored."""
    from libmuscle import Grid

    def convert(value: Any) -> Any:
        if isinstance(value, Grid):
            return np.array(value.array)
        if isinstance(value, np.ndarray):
            return np.array(value)
        if isinstance(value, dict) and "__array__" in value:
            arr = np.frombuffer(value["data"], dtype=np.dtype(value["__array__"]))
            return arr.reshape(value["shape"]).copy()
        if isinstance(value, dict):
            return {k: convert(v) for k, v in value.items()}
        if isinstance(value, list):
            return [convert(v) for v in value]
        return value

    return convert(msg.data)


def open_instance(
    ports: dict, flags: Any, box: list, comm: Any = None, micro_only: bool = False
) -> tuple[Any, Any]:
    """Create the libmuscle ``Instance`` (on rank 0 only when ``comm`` is given: the
    Python API has no MPI support) and return it with the validated settings (the whole
    run's, or with ``micro_only`` the micro component's), which rank 0 reads and the
    other ranks receive.  ``box[0]`` gets the instance for :func:`run_guarded`."""
    from libmuscle import Instance

    from ...plugins import load_plugins
    from ..mpi import lazy_bcast
    from ..settings import validate, validate_micro

    instance = settings = None
    root = comm is None or comm.Get_rank() == 0
    if root:
        instance = Instance(ports, flags)
        box[0] = instance
    load_plugins()  # after the instance: a bad plug-in shuts the run down with its message
    if root:
        check = validate_micro if micro_only else validate
        settings = check(raw_settings(instance), search=[Path.cwd()])
    if comm is not None:
        settings = lazy_bcast(comm, settings)
    return instance, settings
