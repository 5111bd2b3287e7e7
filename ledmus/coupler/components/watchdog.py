"""The manager watchdog of the MUSCLE3 components: stop a component within seconds when the
MUSCLE3 manager is gone (libmuscle 0.11 has no heartbeat).  Imported before the heavy
imports of a component (torch, libmuscle), so it stays light: standard library, psutil
on use, :mod:`ledmus.rundir`."""

from __future__ import annotations

import logging
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ...rundir import stop_signal

log = logging.getLogger("ledmus.coupler")

#: seconds between two looks at a local manager process (a /proc read: cheap)
LOCAL_POLL_S = 0.5
#: seconds between two TCP probes of a manager that is not a local ancestor
REMOTE_POLL_S = 2.0
#: refused TCP probes in a row that mean "the manager is gone" (a refusal is definite on
#: a live network, but one lost probe must not end a run)
REMOTE_REFUSALS = 3
#: seconds the main thread gets to unwind (remove temporary files) after the watchdog
#: asked it to stop, before the process is ended without it
GRACE_S = 3.0
#: exit status of a component stopped by SIGTERM or by the watchdog (128 + SIGTERM)
TERMINATED = 128 + signal.SIGTERM


def _say(text: str) -> None:
    """One line on stderr (``instances/<name>/stderr.txt`` under ``--start-all``)."""
    try:
        print(f"ledmus: {text}", file=sys.stderr, flush=True)
    except (OSError, ValueError):  # stderr closed: nothing left to tell
        pass


def _exit_now(code: int, handler: logging.Handler | None = None) -> None:
    """End the process at once (``os._exit``): flush what was written, but run no exit
    handlers and wait for no thread; libmuscle's would retry the manager for minutes."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    if handler is not None:
        handler.flush()
    os._exit(code)


def remove_temp_files(folders: Sequence[Path]) -> list[Path]:
    """Remove the temporary files of :func:`ledmus.atomic.atomic_path` (``.<name>.*.part``)
    in ``folders``; the names removed."""
    removed = []
    for folder in folders:
        try:
            for path in Path(folder).glob(".*.part"):
                path.unlink(missing_ok=True)
                removed.append(path)
        except OSError:
            pass
    return removed


def manager_location() -> str:
    """The manager's address as libmuscle reads it: ``--muscle-manager=`` on the command
    line, else ``$MUSCLE_MANAGER``, else ``tcp:localhost:9000``."""
    prefix = "--muscle-manager="
    for arg in sys.argv[1:]:
        if arg.startswith(prefix):
            return arg[len(prefix) :]
    return os.environ.get("MUSCLE_MANAGER", "tcp:localhost:9000")


def probe_manager(location: str, timeout: float = 5.0) -> bool | None:
    """Whether anything accepts TCP connections at the manager's ``location``
    (``tcp:host:port[,host:port...]``): ``True`` if an address accepts, ``False`` if one
    refuses and none accepts (nothing listens: the manager binds all interfaces), ``None``
    if it cannot tell (timeouts, unreachable networks, not a TCP location).  The probe
    connects and closes; the manager drops such a connection without a log line."""
    if not location.startswith("tcp:"):
        return None
    refused = False
    for address in location[4:].split(","):
        host, _, port = address.rpartition(":")
        if host.startswith("[") and host.endswith("]"):
            host = host[1:-1]
        try:
            with socket.create_connection((host, int(port)), timeout=timeout):
                return True
        except ConnectionRefusedError:
            refused = True
        except (OSError, ValueError):
            pass
    return False if refused else None


def _is_manager(proc: Any) -> bool:
    import psutil

    try:
        args = proc.cmdline()[:3]
    except psutil.Error:
        return False
    return any(
        Path(a).name in ("muscle_manager", "muscle_manager.exe") or a == "muscle3.muscle_manager"
        for a in args
    )


def _is_agent(proc: Any) -> bool:
    import psutil

    try:
        return "libmuscle.native_instantiator.agent" in proc.cmdline()
    except psutil.Error:
        return False


def local_manager() -> tuple[str, Any, list[Any]]:
    """How this process was started, from its ancestors: ``(start, manager, helpers)``.

    Under ``muscle_manager --start-all`` on one machine the chain is component (or
    ``mpirun`` and its proxies) -> libmuscle agent -> the manager's forked instantiator
    (same command line as the manager) -> the manager.  ``start``:

    * ``"local"``: that chain; ``manager`` is the manager's ``psutil.Process``, or
      ``None`` when it is already gone (the instantiator has been orphaned: its parent is
      no longer a ``muscle_manager``, e.g. the manager got SIGTERM while we started);
    * ``"agent"``: started by an agent whose parent is no instantiator (on a cluster the
      agents are started by ``srun``): a manager exists, but not among our ancestors;
    * ``"manual"``: no agent and no manager among the ancestors (started by hand).

    ``helpers``: the run's agent and instantiator, which outlive a killed manager.
    """
    import psutil

    chain: list[Any] = []
    proc = psutil.Process().parent()
    while proc is not None and proc.pid > 1 and len(chain) < 64:
        chain.append(proc)
        try:
            proc = proc.parent()
        except psutil.Error:
            break
    chain.append(None)  # so that chain[i + 1] exists below
    agent = next((i for i, p in enumerate(chain[:-1]) if _is_agent(p)), None)
    if agent is not None:
        instantiator = chain[agent + 1]
        if instantiator is None or not _is_manager(instantiator):
            return "agent", None, [chain[agent]]
        manager = chain[agent + 2] if agent + 2 < len(chain) else None
        manager = manager if manager is not None and _is_manager(manager) else None
        return "local", manager, [chain[agent], instantiator]
    found = [i for i, p in enumerate(chain[:-1]) if _is_manager(p)]
    if found:  # another way of starting: the topmost manager, helpers below it
        return "local", chain[found[-1]], [chain[i] for i in found[:-1]]
    return "manual", None, []


def _alive(proc: Any) -> bool:
    """Whether ``proc`` (a ``psutil.Process``) still runs: not exited, not a zombie, and
    not a new process that got the same pid (``is_running`` compares start times)."""
    import psutil

    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
    except psutil.Error:  # cannot look: do not stop a run on a guess
        return True


class ManagerWatchdog:
    """Stop this component within seconds when the MUSCLE3 manager is gone.

    Why it is needed: libmuscle 0.11 has no heartbeat.  An instance talks to the manager
    only to register, fetch peers and settings, save snapshots, send WARNING+ log records
    and profiling batches, and deregister; peers exchange data directly.  When the
    manager gets SIGTERM it dies at once, its forked instantiator and the agent that
    started the components live on (waiting for the manager), and the components compute
    to the end, write their results and then retry the manager for minutes
    (``RECONNECT_TIMEOUT`` 60 s plus back-off).

    How it notices, in a daemon thread started before the ``Instance`` is created (a
    manager can also die while the components are still registering):

    * **local** (``muscle_manager --start-all`` on this machine): the component's parent
      is the libmuscle agent, not the manager (and the agent outlives the manager, so
      watching the parent pid, or ``PR_SET_PDEATHSIG``, would not see it).  The topmost
      ``muscle_manager`` ancestor is remembered as a ``psutil.Process`` (with its start
      time, so a recycled pid is not mistaken for it) and looked at every
      :data:`LOCAL_POLL_S` seconds; exited, or a zombie its parent has not reaped yet,
      means gone.  A manager that died while this process was starting is noticed at
      the first look (the instantiator above the agent has lost its manager parent).
      Exact, no network traffic.
    * **remote** (a component on another node of a cluster, where the agent is started by
      ``srun``, or a component started by hand): no manager among the ancestors, so the
      manager's TCP address (:func:`manager_location`) is probed every
      :data:`REMOTE_POLL_S` seconds; :data:`REMOTE_REFUSALS` refused connections in a
      row mean gone (timeouts and unreachable networks count as "cannot tell"); for a
      component started by hand only after the manager once accepted, as it may be
      started before its manager.  A new manager on the same port would pass for the old one: the
      local check does not have that weakness.

    What it does then: writes one line on stderr; sends SIGTERM to the run's orphaned
    helpers (the manager's forked instantiator and the agent, which would otherwise live
    on for minutes and keep the instantiator's agent port 9009); sends SIGTERM to the main thread,
    which :func:`ledmus.rundir.terminate_as_exception` turns into ``SystemExit`` (blocking calls such as
    socket receives and sleeps are interrupted), so ``atomic_path`` removes its
    temporary file and no result is renamed into place; :func:`run_guarded` then ends
    the process with ``os._exit``.  If the process still exists :data:`GRACE_S` seconds
    later (the main thread in a long C call, an MPI wait, or code that swallowed the
    exception), it removes the ``.part`` files in ``cleanup`` itself and calls
    ``os._exit(143)``.
    """

    def __init__(
        self, component: str, cleanup: Sequence[Path] = (), handler: logging.Handler | None = None
    ) -> None:
        self.component = component
        self.cleanup = list(cleanup)
        self.handler = handler
        self.fired = threading.Event()
        self.what = "(not started)"
        self._main = threading.main_thread().ident
        self._thread: threading.Thread | None = None

    def start(self) -> ManagerWatchdog:
        """Find the manager and start watching it (never raises: a watchdog that cannot
        start leaves the component as libmuscle alone would run it)."""
        try:
            start, manager, helpers = local_manager()
        except Exception as exc:  # psutil missing or /proc unreadable
            log.debug("watchdog: no local manager lookup (%s)", exc)
            start, manager, helpers = "manual", None, []
        if start == "local":
            what = (
                f"the MUSCLE3 manager (pid {manager.pid}) is gone"
                if manager is not None
                else "the MUSCLE3 manager exited while this component was starting"
            )
            # a manager already gone: fire at the first look
            check: Callable[[], bool | None] = (
                (lambda: _alive(manager)) if manager is not None else (lambda: False)
            )
            interval, needed, seen = LOCAL_POLL_S, 1, True
        else:
            location = manager_location()
            what = f"the MUSCLE3 manager at {location} is gone"
            check = lambda: probe_manager(location)  # noqa: E731
            # started by an agent: the manager existed before us, so a refusal counts
            # from the start; started by hand: only once the manager has answered
            interval, needed, seen = REMOTE_POLL_S, REMOTE_REFUSALS, start == "agent"
        self.what = f"{start}: {what.replace(' is gone', '')}, helpers {[p.pid for p in helpers]}"
        self._thread = threading.Thread(
            target=self._watch,
            args=(check, interval, needed, seen, what, helpers),
            name="ledmus-manager-watchdog",
            daemon=True,
        )
        self._thread.start()
        return self

    def _watch(
        self,
        check: Callable[[], bool | None],
        interval: float,
        needed: int,
        seen: bool,
        what: str,
        helpers: list[Any],
    ) -> None:
        misses = 0
        while not self.fired.wait(interval):
            state = check()
            if state:
                seen, misses = True, 0
            elif state is False and seen:
                misses += 1
                if misses >= needed:
                    self._fire(what, helpers)
                    return

    def _fire(self, what: str, helpers: list[Any]) -> None:
        self.fired.set()
        # print and log at INFO only: a WARNING would go to libmuscle's handler, which
        # retries the dead manager for a minute
        _say(f"{self.component}: {what}; stopping (unfinished outputs are not kept)")
        log.info("%s; stopping", what)
        for proc in helpers:  # the orphaned instantiator and agent of this run
            try:
                if proc.is_running():  # compares start times: never a recycled pid
                    proc.terminate()
            except Exception:  # gone meanwhile, or not ours to signal
                pass
        if not stop_signal() and self._main is not None:
            try:
                signal.pthread_kill(self._main, signal.SIGTERM)
            except (OSError, ValueError):
                pass
        time.sleep(GRACE_S)  # still here: the main thread did not unwind
        removed = remove_temp_files(self.cleanup)
        _say(
            f"{self.component}: did not stop within {GRACE_S:g} s of the request; "
            f"ending now (removed {len(removed)} temporary file(s))"
        )
        _exit_now(TERMINATED, self.handler)


_WATCHDOG: list[ManagerWatchdog] = []


def start_watchdog(component: str, cleanup: Sequence[Path] = ()) -> ManagerWatchdog:
    """This process's :class:`ManagerWatchdog`, started on the first call.  Components
    call it at the top of their module, before the imports that take seconds (torch,
    libmuscle), so a manager killed while they start is noticed too; later calls (from
    :func:`run_guarded`) add ``cleanup`` folders."""
    if not _WATCHDOG:
        _WATCHDOG.append(ManagerWatchdog(component, cleanup).start())
    else:
        _WATCHDOG[0].cleanup += [Path(c) for c in cleanup]
    return _WATCHDOG[0]
