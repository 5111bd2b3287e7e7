"""A foreign macro model driving the ledmus micro component: plain libmuscle and numpy.

It knows nothing of ledmus but the wire format (docs/guide/foreign_components.md): it sends
requests ``{window, t0, steps, include_initial, state}`` on its O_I port ``request`` and
receives results ``{window, states, micro_s, lift_s, micro_ranks}`` on its S port
``result``.  Windows of ``window_steps`` coarse steps of ``dt`` until ``t_stop``:

* window 0: ``state`` None and ``include_initial`` true, so the micro solver starts
  from its own initial condition (setting ``ic``) and returns it too;
* window 1: ``state`` None again, ``t0`` = the end of window 0: the micro solver goes on
  from its internal state (LB populations), exactly as one uninterrupted run;
* windows 2, ...: a state of the macro's own (the last state received, smoothed), which
  the micro solver lifts.

Settings: ``t_stop`` (global, the micro component ignores it), ``macro.dt`` (the micro
solver's coarse step ``dt_coarse``), ``macro.window_steps``.  Writes ``states.npy``
(B, T, *shape) and ``t.npy`` (T,) over 0, dt, ..., t_stop, and ``lifted.npy`` (the
states it sent, one per lifted window) in its working directory (under muscle_manager:
``RUN_DIR/instances/macro/workdir``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from libmuscle import Instance, Message
from ymmsl import Operator


def smooth(state: np.ndarray) -> np.ndarray:
    """A (1, 2, 1) filter along the last axis, end points kept: the macro's own state."""
    out = state.copy()
    out[..., 1:-1] = 0.25 * state[..., :-2] + 0.5 * state[..., 1:-1] + 0.25 * state[..., 2:]
    return out


def as_array(value: object) -> np.ndarray:
    """A received array (libmuscle hands numpy arrays over as read-only ``Grid``s)."""
    return np.array(getattr(value, "array", value))


def main() -> None:
    instance = Instance({Operator.O_I: ["request"], Operator.S: ["result"]})
    while instance.reuse_instance():
        t_stop = instance.get_setting("t_stop", "float")
        dt = instance.get_setting("dt", "float")
        steps = instance.get_setting("window_steps", "int")
        n_windows = round(t_stop / (steps * dt))
        chunks, lifted = [], []
        for window in range(n_windows):
            t0 = window * steps * dt
            state = None
            if window >= 2:
                state = smooth(chunks[-1][:, -1])  # (B, *shape)
                lifted.append(state)
            request = {
                "window": window,
                "t0": t0,
                "steps": steps,
                "include_initial": window == 0,
                "state": state,
            }
            instance.send("request", Message(t0, t0 + steps * dt, request))
            result = instance.receive("result").data
            states = as_array(result["states"])  # (B, steps + include_initial, *shape)
            if result["window"] != window or states.shape[1] != steps + (window == 0):
                raise RuntimeError(f"unexpected result for window {window}: {states.shape}")
            chunks.append(states)
            print(
                f"window {window}: t0={t0:g}, {states.shape[1]} states {states.shape}, "
                f"micro {result['micro_s']:.3f} s on {result['micro_ranks']} rank(s)",
                flush=True,
            )
        out = Path.cwd()
        all_states = np.concatenate(chunks, axis=1)
        np.save(out / "states.npy", all_states)
        np.save(out / "t.npy", dt * np.arange(all_states.shape[1]))
        np.save(out / "lifted.npy", np.array(lifted))


if __name__ == "__main__":
    main()
