"""Decoding recorded macro states after a run (``record: latents``).

A run that records macro states only leaves the macro indices of ``states`` at NaN;
:func:`fill_macro_states` decodes them exactly as the run would have (the same chunks of
each macro phase, the same per-member random streams), and ``ledmus decode RUN_DIR``
does it for a trajectory file.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .driver import decode_chunk
from .mappers import Decoder
from .recorder import SOURCES, Recorder, source_runs
from .streams import RNG_RECORD


def fill_macro_states(recorder: Recorder, decoder: Decoder) -> None:
    """Decode the macro indices of the record from its macro states (every member
    follows the same schedule) into its states and accumulated errors."""
    source = recorder.source[0]
    if not (recorder.source == source).all():
        raise ValueError("decode: members followed different schedules")
    size = decode_chunk(decoder.model, recorder.latents.shape[0])
    for start, stop, src in source_runs(source):
        if src != SOURCES["macro"]:
            continue
        for a in range(start, stop, size):
            b = min(a + size, stop)
            recorder.put_states(a, decoder.decode(recorder.latents[:, a:b], a, RNG_RECORD))


def decode_run(run_dir: str | Path, device: str = "cpu") -> Path:
    """Fill the macro indices of ``RUN_DIR/trajectory.h5`` written with ``record:
    latents`` by decoding its macro states with the run's model (bitwise what the run
    would have recorded); the file is rewritten atomically.  Returns its path."""
    from .. import systems
    from ..device import resolve_device
    from ..surrogates.macro import load_macro_model
    from ..trajectory import read_trajectory, write_trajectory

    path = Path(run_dir) / "trajectory.h5"
    traj = read_trajectory(path)
    if "latents" not in traj.extra or "model" not in traj.attrs:
        raise ValueError(f"{path} is not the trajectory of a coupled run (no latents/model)")
    if not np.isnan(traj.states).any():
        return path  # already decoded
    model = load_macro_model(
        str(traj.attrs["model"]), system=traj.system, device=resolve_device(device)
    )
    solver = systems.get(traj.system).make(**traj.params)
    model.bind_micro(solver)
    members = np.arange(traj.states.shape[0])
    decoder = Decoder(model, traj.seed or 0, members, getattr(solver, "n_particles", None))
    source = traj.extra.get("source_members")
    if source is None:
        source = np.broadcast_to(traj.extra["source"], traj.states.shape[:2])
    # the record is the file's arrays: no buffers of its own
    recorder = Recorder(
        len(members), traj.states.shape[1], solver.state_shape, 1, keep_states=False
    )
    recorder.states, recorder.latents, recorder.source = traj.states, traj.extra["latents"], source
    fill_macro_states(recorder, decoder)
    attrs = {**traj.attrs, "record": "latents (decoded)"}
    return write_trajectory(
        path, recorder.states, traj.t, solver, traj.seed, attrs=attrs, extra=traj.extra
    )
