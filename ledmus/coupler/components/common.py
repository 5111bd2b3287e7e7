"""What the MUSCLE3 adapters share: settings, error shutdown, MPI, payload conversion."""

from __future__ import annotations

import logging
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ..settings import validate, validate_micro

log = logging.getLogger("ledmus.coupler")


def raw_settings(instance: Any) -> dict[str, Any]:
    """The settings this instance sees (global names; ``<instance>.<name>`` overrides are
    resolved and other instances' settings dropped by libmuscle)."""
    return {str(name): instance.get_setting(str(name)) for name in instance.list_settings()}


def run_guarded(component: str, main: Callable[[], None], instance_box: list) -> None:
    """Run ``main``; on any exception shut the whole MUSCLE3 run down with a message that
    names the component and the cause, and exit with status 1."""
    try:
        main()
    except Exception as exc:
        message = f"{component}: {type(exc).__name__}: {exc}"
        log.error("%s\n%s", message, traceback.format_exc())
        print(f"ledmus: error: {message}", file=sys.stderr)
        if instance_box and instance_box[0] is not None:
            instance_box[0].error_shutdown(message)
        sys.exit(1)


def mpi_comm() -> Any:
    """COMM_WORLD when this component was started with more than one MPI process."""
    import os

    size = max(int(os.environ.get(k, "1")) for k in ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE"))
    if size <= 1:
        return None
    from mpi4py import MPI

    return MPI.COMM_WORLD


def received(msg: Any) -> Any:
    """The data of a received message with libmuscle ``Grid`` values turned into
    writable numpy arrays (received arrays are read-only)."""
    from libmuscle import Grid

    def convert(value: Any) -> Any:
        if isinstance(value, Grid):
            return np.array(value.array)
        if isinstance(value, np.ndarray):
            return np.array(value)
        if isinstance(value, dict):
            return {k: convert(v) for k, v in value.items()}
        if isinstance(value, list):
            return [convert(v) for v in value]
        return value

    return convert(msg.data)


def open_instance(ports: dict, flags: Any, box: list, comm: Any = None,
                  micro_only: bool = False) -> tuple[Any, Any]:  # fmt: skip
    """Create the libmuscle ``Instance`` (on rank 0 only when ``comm`` is given: the
    Python API has no MPI support) and return it with the validated settings (the whole
    run's, or with ``micro_only`` the micro component's), which rank 0 reads and the
    other ranks receive.  ``box[0]`` gets the instance for :func:`run_guarded`."""
    from libmuscle import Instance

    from ..mpi import lazy_bcast

    instance = settings = None
    if comm is None or comm.Get_rank() == 0:
        instance = Instance(ports, flags)
        box[0] = instance
        check = validate_micro if micro_only else validate
        settings = check(raw_settings(instance), search=[Path.cwd()])
    if comm is not None:
        settings = lazy_bcast(comm, settings)
    return instance, settings
