"""The registry of schedule policies (``setting schedule``): name -> factory taking the
run settings' coarse-step counts as keywords.  Apart from :mod:`.schedule` so that the
policy interface does not import its implementations (``adaptive`` imports the driver,
which imports :mod:`.schedule`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .adaptive import AdaptivePolicy
from .schedule import FixedSchedule, SchedulePolicy

#: policy name -> factory taking the run settings' coarse-step counts as keywords
POLICIES: dict[str, Callable[..., SchedulePolicy]] = {
    "fixed": FixedSchedule,
    "adaptive": AdaptivePolicy,
}


def make_policy(name: str, **counts: Any) -> SchedulePolicy:
    """The policy ``name`` (``ValueError`` listing the registered names)."""
    if name not in POLICIES:
        raise ValueError(f"setting schedule={name!r} unknown; allowed: {', '.join(POLICIES)}")
    return POLICIES[name](**counts)
