"""The four parts of a coupled LED run and the messages between them.

One implementation, two engines: the MUSCLE3 components and the embedded engine wire
these same classes; only the transport of the message dicts differs.

Scheme (seed 001 Fig. 2, SI §6.6), on coarse indices ``j`` (time ``j*dt``):

1. Warm-up: the micro solver runs from the initial condition over ``[0, t_warm]``; the
   ``n_warm + 1`` states are restricted (encoded) and teacher-force the RNN, which then
   predicts the latent of index ``n_warm + 1``.
2. Cycle: the RNN propagates ``T_m`` latents (indices ``i … i+T_m-1``), the last one is
   lifted (decoded; particles sampled from the mixture density; then the solver's own
   lift) and the micro solver runs ``T_mu`` coarse steps from it (indices
   ``i+T_m … i+T_m+T_mu-1``); the last macro latent and the restricted micro states
   teacher-force the RNN, whose prediction starts the next cycle.
3. ``T_mu = 0``: one macro phase to ``t_end`` ("Latent").  ``T_m = 0``: the micro
   solver continues its own internal state (the pure micro solver, RNN only watching).

Messages (plain dicts of numbers and numpy arrays, so MUSCLE3 can carry them)::

    macro -> lift      {window, t0, steps, include_initial, z: (B, d_z) | None}
    lift -> micro      {window, t0, steps, include_initial, state: (B, *shape) | None, lift_s}
    micro -> restrict  {window, states: (B, n, *shape), micro_s, lift_s}
    restrict -> macro  {window, states, z: (B, n, d_z), micro_s, lift_s, restrict_s}

Randomness is per ensemble member, window and purpose (``SeedSequence([seed, member,
window, purpose])``), so a run split over MPI ranks draws exactly what the serial run
draws, and the mappers keep no state between windows.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np
import torch

from ..solvers import Solver
from ..surrogates.led import LED
from ..surrogates.propagators import Hidden

log = logging.getLogger(__name__)

#: latent steps decoded and recorded at once in a macro phase
DECODE_CHUNK = 256

# purposes of the per-member random streams
RNG_LIFT_SOLVER, RNG_MICRO, RNG_IC, RNG_MDN, RNG_RECORD, RNG_TRANSIENT = 0, 1, 2, 3, 4, 5


def member_rng(
    seed: int, member: int, window: int, purpose: int, stream: int | None = None
) -> np.random.Generator:
    """The generator of one ensemble member for one window and purpose (``stream``: a
    further split, e.g. the MPI rank holding part of a member's particles)."""
    key = [seed, member, window, purpose] + ([] if stream is None else [stream])
    return np.random.default_rng(key)


def member_torch_generator(
    seed: int, member: int, window: int, device: Any, purpose: int = RNG_MDN
) -> torch.Generator:
    seq = np.random.SeedSequence([seed, member, window, purpose])
    return torch.Generator(device=device).manual_seed(int(seq.generate_state(1, np.uint64)[0] >> 1))


def initial_condition(solver: Solver, ic: str, seed: int, members: np.ndarray,
                      transient: float = 0.0) -> np.ndarray:  # fmt: skip
    """Observable initial conditions ``(len(members), *shape)``: a named IC of the solver
    (random ICs drawn per member), a ``.npy`` file with one state or one per member of the
    whole ensemble (indexed by global member number); then, when ``transient > 0``, the
    state reached by the micro solver after that time (per member, so MPI-split runs
    agree)."""
    obs = _initial_condition(solver, ic, seed, members)
    if transient <= 0:
        return obs
    out = []
    for b, m in enumerate(members):
        rng = member_rng(seed, int(m), 0, RNG_TRANSIENT) if solver.stochastic else None
        internal = solver.advance(solver.lift(obs[b : b + 1], rng), -transient, transient, rng)
        out.append(_check_finite("micro (transient)", solver.observe(internal), 0))
    return np.concatenate(out)


def _initial_condition(solver: Solver, ic: str, seed: int, members: np.ndarray) -> np.ndarray:
    if ic.endswith(".npy"):
        arr = np.load(ic, allow_pickle=False)
        arr = solver.check_observable(arr, name=f"ic file {ic}")
        if arr.shape[0] == 1:
            return np.repeat(arr, len(members), axis=0)
        if members.max(initial=-1) >= arr.shape[0]:
            raise ValueError(
                f"ic file {ic} holds {arr.shape[0]} states but the ensemble needs "
                f"{members.max() + 1} (one per member) or 1"
            )
        return arr[members]
    name = ic or None
    return np.concatenate(
        [solver.initial_condition(name, 1, member_rng(seed, int(m), 0, RNG_IC)) for m in members]
    )


def _check_finite(who: str, arr: np.ndarray, window: int) -> np.ndarray:
    if not np.all(np.isfinite(arr)):
        raise FloatingPointError(f"{who}: non-finite values in window {window}")
    return arr


class Micro:
    """The micro solver side: holds the internal state between windows.

    ``members``: global ensemble indices of the members this process runs.
    """

    def __init__(self, solver: Solver, ic: np.ndarray, seed: int, members: np.ndarray,
                 stream: int | None = None) -> None:  # fmt: skip
        self.solver = solver
        self.stream = stream  # distinct random stream (a rank holding part of the particles)
        self.ic = solver.check_observable(ic, name="ic")
        self.seed = int(seed)
        self.members = np.asarray(members, dtype=np.int64)
        self.internal: Any = None
        self.t: float | None = None

    def _rng(self, member: int, window: int, purpose: int) -> np.random.Generator:
        return member_rng(self.seed, member, window, purpose, self.stream)

    def _lift(self, obs: np.ndarray, window: int) -> Any:
        if not self.solver.stochastic:
            return self.solver.lift(obs)
        parts = [
            self.solver.lift(obs[b : b + 1], self._rng(int(m), window, RNG_LIFT_SOLVER))
            for b, m in enumerate(self.members)
        ]
        return np.concatenate(parts)

    def _advance(self, internal: Any, t0: float, window: int, rngs: list | None) -> Any:
        dt = self.solver.dt_coarse
        if rngs is None:
            return self.solver.advance(internal, t0, dt)
        # one stream per member, so an ensemble split over ranks equals the serial run
        return np.concatenate(
            [self.solver.advance(internal[b : b + 1], t0, dt, r) for b, r in enumerate(rngs)]
        )

    def handle(self, msg: dict[str, Any]) -> dict[str, Any]:
        """Run one micro window; returns the observed coarse states ``(B, n, *shape)``."""
        start = time.perf_counter()
        window, t0, steps = int(msg["window"]), float(msg["t0"]), int(msg["steps"])
        state = msg.get("state")
        if state is not None:
            internal = self._lift(np.array(state, dtype=np.float64), window)
        elif self.internal is None:
            internal = self._lift(self.ic, window)
        else:
            if abs(self.t - t0) > 1e-9 * max(1.0, abs(t0)):
                raise ValueError(
                    f"micro: asked to continue at t={t0:g} but its state is at t={self.t:g}"
                )
            internal = self.internal
        rngs = None
        if self.solver.stochastic:
            rngs = [self._rng(int(m), window, RNG_MICRO) for m in self.members]
        out = []
        if msg.get("include_initial"):
            out.append(self.solver.observe(internal))
        for j in range(steps):
            internal = self._advance(internal, t0 + j * self.solver.dt_coarse, window, rngs)
            obs = self.solver.observe(internal)
            if not np.all(np.isfinite(obs)):
                raise FloatingPointError(
                    f"micro ({self.solver.system}): state became non-finite at "
                    f"t={t0 + (j + 1) * self.solver.dt_coarse:g} (window {window})"
                )
            out.append(obs)
        self.internal, self.t = internal, t0 + steps * self.solver.dt_coarse
        states = np.stack(out, axis=1)
        return {
            "window": window,
            "states": states,
            "micro_s": time.perf_counter() - start,
            "lift_s": float(msg.get("lift_s", 0.0)),
        }

    # checkpoint = the internal state (RNG streams are derived per window)
    def snapshot(self) -> dict[str, Any]:
        if self.internal is None:
            return {"started": False}
        if not isinstance(self.internal, np.ndarray):
            raise TypeError(f"micro: cannot snapshot a {type(self.internal).__name__} state")
        return {"started": True, "internal": self.internal, "t": self.t}

    def restore(self, snap: dict[str, Any]) -> None:
        if snap.get("started"):
            self.internal = np.array(snap["internal"])
            self.t = float(snap["t"])


class Lift:
    """Lifting mapper: latents ``(B, d_z)`` -> observable states ``(B, *shape)`` by the
    decoder (particles: sampled from the mixture density, one generator per member)."""

    def __init__(self, model: LED, seed: int, members: np.ndarray, n_particles: int | None = None):
        self.model, self.seed = model, int(seed)
        self.members = np.asarray(members, dtype=np.int64)
        self.n_particles = n_particles

    @torch.no_grad()
    def decode(self, z: Any, window: int, purpose: int = RNG_MDN) -> np.ndarray:
        """Latents ``(B, d_z)`` or ``(B, T, d_z)`` -> float64 states ``(B, [T,] *shape)``."""
        z = self.model.as_tensor(z)
        seq = z.ndim == 3
        if not self.model.particles:
            if seq:
                return self.model.decode_sequence(z).astype(np.float64)
            return self.model.decode(z).cpu().double().numpy()
        parts = []
        for b, m in enumerate(self.members):
            gen = member_torch_generator(self.seed, int(m), window, self.model.device, purpose)
            zb = z[b] if seq else z[b : b + 1]  # (T, d_z): T draws of one member
            parts.append(self.model.decode(zb, gen, self.n_particles).cpu().double().numpy())
        x = np.stack(parts) if seq else np.concatenate(parts)
        half = float(self.model.spec.get("box") or 1.0) / 2
        return np.clip(x, -half, half)  # float32 rounding of the inverse min-max scaling

    def handle(self, msg: dict[str, Any]) -> dict[str, Any]:
        start = time.perf_counter()
        out = {k: msg[k] for k in ("window", "t0", "steps", "include_initial")}
        z = msg.get("z")
        out["state"] = None
        if z is not None:
            out["state"] = _check_finite(
                "lift (decoder)", self.decode(np.asarray(z), int(msg["window"])), int(msg["window"])
            )
        out["lift_s"] = time.perf_counter() - start
        return out


class Restrict:
    """Restriction mapper: observed states ``(B, n, *shape)`` -> latents ``(B, n, d_z)``."""

    def __init__(self, model: LED) -> None:
        self.model = model

    @torch.no_grad()
    def encode(self, states: np.ndarray) -> np.ndarray:
        return self.model.encode(np.asarray(states)).cpu().numpy()

    def handle(self, msg: dict[str, Any]) -> dict[str, Any]:
        start = time.perf_counter()
        states = np.asarray(msg["states"])
        z = _check_finite("restrict (encoder)", self.encode(states), int(msg["window"]))
        out = dict(msg)
        out.update(z=z, restrict_s=time.perf_counter() - start)
        return out


class Macro:
    """The RNN and the window scheduler.

    Drive it with :meth:`run` (or :meth:`cycle` repeatedly) and an ``exchange`` callable
    that takes a macro->lift message and returns the restrict->macro answer.  Every
    recorded state goes to ``recorder.add``.
    """

    def __init__(self, model: LED, lifter: Lift, *, n_warm: int, n_macro: int, n_micro: int,
                 n_total: int, dt: float, recorder: Any) -> None:  # fmt: skip
        self.model, self.lifter = model, lifter
        self.n_warm, self.n_macro, self.n_micro, self.n_total = n_warm, n_macro, n_micro, n_total
        self.dt = float(dt)
        self.recorder = recorder
        self.micro_ranks = 1  # MPI processes of the micro component (MUSCLE3)
        self.index = 0  # next coarse index to produce
        self.window = 0  # number of micro windows asked for
        self.z_next: torch.Tensor | None = None
        self.hidden: Hidden | None = None
        # record_s: storing states and accumulating errors (measurement, not simulation)
        self.timings = {
            "macro_s": 0.0,
            "micro_s": 0.0,
            "lift_s": 0.0,
            "restrict_s": 0.0,
            "record_s": 0.0,
        }

    @property
    def done(self) -> bool:
        return self.index >= self.n_total

    @property
    def time(self) -> float:
        return self.index * self.dt

    def _micro_window(self, exchange, z_lift: torch.Tensor | None, steps: int, first: bool) -> None:
        # the micro run starts from the state at index-1: the lifted last macro latent,
        # or the micro solver's own last state (T_m = 0); the warm-up from the IC at 0
        msg = {
            "window": self.window,
            "t0": 0.0 if first else (self.index - 1) * self.dt,
            "steps": steps,
            "include_initial": first,
            "z": None if z_lift is None else z_lift.cpu().numpy(),
        }
        answer = exchange(msg)
        if int(answer["window"]) != self.window:
            raise RuntimeError(f"macro: expected window {self.window}, got {answer['window']}")
        for key in ("micro_s", "lift_s", "restrict_s"):
            self.timings[key] += float(answer.get(key, 0.0))
        self.micro_ranks = int(answer.get("micro_ranks", 1))
        start = time.perf_counter()
        z = self.model.as_tensor(answer["z"])
        states = np.asarray(answer["states"])
        seq = z if z_lift is None else torch.cat([z_lift[:, None], z], dim=1)
        with torch.no_grad():
            pred, self.hidden = self.model.rnn(seq, self.hidden)
        self.z_next = pred[:, -1]
        self.timings["macro_s"] += time.perf_counter() - start
        self._record(states, z, "micro")
        self.index += states.shape[1]
        self.window += 1

    def _record(self, states: np.ndarray | None, z: torch.Tensor, source: str) -> None:
        start = time.perf_counter()
        self.recorder.add(self.index, states, z.cpu().numpy(), source=source)
        self.timings["record_s"] += time.perf_counter() - start

    @torch.no_grad()
    def _macro_phase(self, steps: int) -> torch.Tensor:
        start = time.perf_counter()
        z, self.hidden = self.model.rnn.free_run(self.z_next, self.hidden, steps)
        self.timings["macro_s"] += time.perf_counter() - start
        for a in range(0, steps, DECODE_CHUNK):  # bounded memory for long latent phases
            start = time.perf_counter()
            zc = z[:, a : a + DECODE_CHUNK]
            states = None
            if self.recorder.keep_states:
                states = self.lifter.decode(zc, self.index, RNG_RECORD)
            self.timings["macro_s"] += time.perf_counter() - start
            self._record(states, zc, "macro")
            self.index += zc.shape[1]
        return z[:, -1]

    def cycle(self, exchange) -> None:
        """Warm-up on the first call, then one macro phase and one micro window."""
        if self.done:
            return
        if self.index == 0:
            self._micro_window(exchange, None, self.n_warm, first=True)
            return
        remaining = self.n_total - self.index
        if self.n_macro > 0:
            steps = remaining if self.n_micro == 0 else min(self.n_macro, remaining)
            z_last = self._macro_phase(steps)
            remaining -= steps
            if remaining <= 0:
                return
            self._micro_window(exchange, z_last, min(self.n_micro, remaining), first=False)
        else:
            self._micro_window(exchange, None, min(self.n_micro, remaining), first=False)

    def run(self, exchange, progress: bool = False) -> None:
        from tqdm.auto import tqdm

        with tqdm(total=self.n_total, disable=not progress, desc="ledmus run", unit="Δt") as bar:
            while not self.done:
                before = self.index
                self.cycle(exchange)
                bar.update(self.index - before)

    # checkpoint: scheduler position, RNN state, timings and the recorder
    def snapshot(self) -> dict[str, Any]:
        hidden = self.hidden
        if isinstance(hidden, tuple):
            hidden_list = [h.cpu().numpy() for h in hidden]
        else:
            hidden_list = [] if hidden is None else [hidden.cpu().numpy()]
        return {
            "index": self.index,
            "window": self.window,
            "z_next": None if self.z_next is None else self.z_next.cpu().numpy(),
            "hidden": hidden_list,
            "timings": dict(self.timings),
            "recorder": self.recorder.snapshot(),
        }

    def restore(self, snap: dict[str, Any]) -> None:
        self.index, self.window = int(snap["index"]), int(snap["window"])
        self.z_next = (
            None if snap["z_next"] is None else self.model.as_tensor(np.array(snap["z_next"]))
        )
        hidden = [self.model.as_tensor(np.array(h)) for h in snap["hidden"]]
        if not hidden:
            self.hidden = None
        elif self.model.rnn.cell == "lstm":
            self.hidden = (hidden[0], hidden[1])
        else:
            self.hidden = hidden[0]
        self.timings = {k: float(v) for k, v in snap["timings"].items()}
        self.recorder.restore(snap["recorder"])
