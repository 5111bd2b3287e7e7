"""The registry of schedule policies (``setting schedule``): name -> factory taking the
run settings' coarse-step counts as keywords.  ``adaptive`` is the other value of the
setting; it is not a policy (:mod:`.adaptive`) and the engine builds its coordinator."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .schedule import FixedSchedule, SchedulePolicy

#: policy name -> factory taking the run settings' coarse-step counts as keywords
POLICIES: dict[str, Callable[..., SchedulePolicy]] = {"fixed": FixedSchedule}
#: the adaptive schedule (per-member decisions, :class:`~.adaptive.AdaptiveCoordinator`)
ADAPTIVE = "adaptive"


def schedules() -> tuple[str, ...]:
    """The values of the ``schedule`` setting: the registered policies and ``adaptive``."""
    return (*POLICIES, ADAPTIVE)


def make_policy(name: str, **counts: Any) -> SchedulePolicy:
    """The policy ``name`` (``ValueError`` listing the registered names)."""
    if name not in POLICIES:
        raise ValueError(
            f"schedule policy {name!r} unknown; allowed: {', '.join(POLICIES)} "
            f"({ADAPTIVE} is not a policy: the engine builds its coordinator)"
        )
    return POLICIES[name](**counts)
