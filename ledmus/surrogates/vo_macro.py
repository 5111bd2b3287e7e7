"""The virtual-observable model of Kaltenbach & Koutsourelakis as a
:class:`~ledmus.surrogates.macro.MacroModel`.

The macro state is the CG density ``X`` itself (``d`` bins), so restriction is the
micro solver's binning (identity here) and lifting hands ``X`` to the micro solver as
bin fractions (clipped at 0 and normalised), whose own lift draws the particles from
the multinomial of eq 17.  Propagation follows Algorithm 1 per member: ``samples`` paths
of the transition law from the last assimilated state; the macro state is their mean and
the uncertainty the spread (mean over bins of the paths' standard deviation, in units of
the fractions).  The paths continue across consecutive macro phases; assimilating micro
states restarts them from the last one (``d_f = 250,000`` particles pin ``X`` to within
about 1 % per bin, which the posterior would otherwise add).

The noise comes from one ``torch.Generator`` per member, which the coupler keys by the
run's seed and the global member index (:meth:`use_generators`; without it, one generator
seeded 0 for all members), kept in snapshots: both engines, a resumed run and a run split
over MPI ranks draw the same paths.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from .macro import MacroModel
from .vo import VirtualObservableCG, fractions


class VOMacro(MacroModel):
    """The probabilistic CG model of Kaltenbach & Koutsourelakis, driven by the coupler."""

    kind = "vo"

    def __init__(self, net: VirtualObservableCG, seed: int = 0) -> None:
        self.net = net
        self.system = net.system
        self.state_shape = net.state_shape
        self.macro_dim = net.d
        self.generators: list[torch.Generator] | None = None
        self.generator = torch.Generator().manual_seed(seed)  # without use_generators
        self.reset()

    @classmethod
    def from_network(cls, net: torch.nn.Module) -> VOMacro:
        return cls(net)

    # ------------------------------------------------------------------ mappers
    def restrict(self, states: np.ndarray) -> np.ndarray:
        arr = np.asarray(states)
        return arr.reshape(*arr.shape[:-2], self.macro_dim).astype(np.float32)

    def decode(
        self,
        m: np.ndarray,
        generators: Sequence[torch.Generator] | None = None,
        n_particles: int | None = None,
    ) -> np.ndarray:
        x = fractions(m)
        return x.reshape(*x.shape[:-1], *self.state_shape)

    # ------------------------------------------------------------------ propagation
    def use_generators(self, generators: Sequence[torch.Generator]) -> None:
        self.generators = list(generators)

    def reset(self) -> None:
        self.paths: torch.Tensor | None = None  # (B, S, d), the last state of each path

    def assimilate(self, m_seq: np.ndarray) -> None:
        last = torch.as_tensor(np.asarray(m_seq)[:, -1], dtype=torch.float64)
        self.paths = last[:, None, :].repeat(1, self.net.samples, 1)

    def propagate(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        if self.generators is None:
            paths = self.net.propagate(self.paths, n, self.generator)  # (B, S, n, d)
        else:
            if len(self.generators) != len(self.paths):
                raise ValueError(
                    f"vo: {len(self.generators)} generators for {len(self.paths)} members"
                )
            paths = torch.stack(
                [
                    self.net.propagate(p, n, g)
                    for p, g in zip(self.paths, self.generators, strict=True)
                ]
            )
        self.paths = paths[:, :, -1]
        mean = paths.mean(dim=1).numpy().astype(np.float32)
        spread = paths.std(dim=1).mean(dim=-1).numpy()
        return mean, spread

    def snapshot(self) -> dict[str, Any]:
        gens = [self.generator, *(self.generators or [])]
        return {
            "paths": None if self.paths is None else self.paths.numpy().copy(),
            "generators": np.stack([g.get_state().numpy() for g in gens]),
        }

    def restore(self, snap: dict[str, Any]) -> None:
        paths = snap.get("paths")
        self.paths = None if paths is None else torch.as_tensor(np.array(paths))
        states = np.array(snap["generators"], dtype=np.uint8)
        gens = [self.generator, *(self.generators or [])]
        if len(states) != len(gens):
            raise ValueError(
                f"vo snapshot: {len(states) - 1} member generators, this run has {len(gens) - 1}"
            )
        for g, state in zip(gens, states, strict=True):
            g.set_state(torch.as_tensor(state))

    # ------------------------------------------------------------------ weights
    def get_weights(self) -> dict[str, torch.Tensor]:
        return {k: v.detach().clone() for k, v in self.net.state_dict().items()}

    def set_weights(self, state_dict: dict[str, torch.Tensor]) -> None:
        self.net.load_state_dict(state_dict)
