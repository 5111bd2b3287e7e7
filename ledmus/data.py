"""Backwards-compatible re-exports; new code imports from the modules themselves.

* :mod:`ledmus.atomic`: ``atomic_path``, ``write_json``;
* :mod:`ledmus.trajectory`: ``Trajectory``, ``write_trajectory``, ``read_trajectory``;
* :mod:`ledmus.datasets`: ``make_dataset``, ``SCALES``, ``SPLIT_SEED_OFFSET``;
* :mod:`ledmus.systems`: ``Protocol``, ``Split`` and each system's dataset protocol
  (``PROTOCOLS`` here is a read-only view of them: name -> ``scale -> Protocol``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping

from . import systems
from .atomic import atomic_path, write_json
from .datasets import SCALES, SPLIT_SEED_OFFSET, make_dataset, with_dataset
from .systems import Protocol, Split
from .trajectory import Trajectory, read_trajectory, write_trajectory


class _Protocols(Mapping[str, Callable[[str], Protocol]]):
    """Live read-only view: registered system name -> its dataset protocol."""

    def __getitem__(self, name: str) -> Callable[[str], Protocol]:
        if name not in with_dataset():
            raise KeyError(name)
        return systems.get(name).dataset

    def __iter__(self) -> Iterator[str]:
        return iter(with_dataset())

    def __len__(self) -> int:
        return len(with_dataset())


PROTOCOLS: Mapping[str, Callable[[str], Protocol]] = _Protocols()

__all__ = [
    "PROTOCOLS", "SCALES", "SPLIT_SEED_OFFSET", "Protocol", "Split", "Trajectory",
    "atomic_path", "make_dataset", "read_trajectory", "write_json", "write_trajectory",
]  # fmt: skip
