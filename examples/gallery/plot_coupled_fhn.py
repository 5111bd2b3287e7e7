"""
Coupled LED run of FitzHugh–Nagumo
==================================

Run ``configs/led_fhn.ymmsl`` in this process with the embedded engine
(:func:`ledmus.coupler.engine.run_embedded`, what ``ledmus run`` does) and the shipped
model ``models/led_fhn.pt``, shortened to ``t_end = 300``: a micro warm-up of
``t_warm = 60``, then cycles of ``T_m = 50`` time units of the LED propagating its latent
state and ``T_mu = 10`` of the lattice Boltzmann solver.

With ``compare: true`` (set in the yMMSL file) the engine also runs the micro solver
alone from the same initial condition, and reports the normalised absolute difference
(NAD) of the coupled run against that micro-only reference at every coarse step.
"""

import tempfile
from pathlib import Path

import h5py
import matplotlib.pyplot as plt
import numpy as np

from ledmus.coupler.engine import run_embedded
from ledmus.coupler.run import micro_reference
from ledmus.coupler.settings import read_ymmsl_settings, validate


def repository_root() -> Path:
    """The checkout this example belongs to (it reads ``configs/`` and ``models/``)."""
    try:
        start = Path(__file__).resolve().parent
    except NameError:  # run in a notebook: start from the working directory
        start = Path.cwd().resolve()
    for folder in (start, *start.parents):
        if (folder / "configs" / "led_fhn.ymmsl").is_file():
            return folder
    raise FileNotFoundError("run this example from inside a ledmus checkout")


ROOT = repository_root()

# %%
# Settings
# --------
# The yMMSL file's settings, then overrides: a shorter run and no plots in the run
# directory.  :func:`~ledmus.coupler.settings.validate` checks every setting before any
# compute and finds ``models/led_fhn.pt`` relative to the repository root.
raw = read_ymmsl_settings(ROOT / "configs" / "led_fhn.ymmsl")
raw.update(t_end=300.0, plots=False)
settings = validate(raw, search=[ROOT])
print(
    f"system {settings.micro.system}: t_warm {settings.schedule.t_warm:g}, T_m {settings.schedule.t_macro:g}, "
    f"T_mu {settings.schedule.t_micro:g}, t_end {settings.schedule.t_end:g}"
)

# %%
# The coupled run
# ---------------
# The run directory receives ``trajectory.h5`` (states, the source of every coarse step,
# the error series) and ``metrics.json``; a temporary one is enough here.
with tempfile.TemporaryDirectory() as tmp:
    result = run_embedded(settings, Path(tmp) / "run")
    with h5py.File(Path(tmp) / "run" / "trajectory.h5") as h5:
        t = h5["t"][()]
        states = h5["states"][()]  # (B, T, 2, 101): the coupled run
        source = h5["source"][()]  # per coarse step: 0 micro, 1 macro
        nad_u = h5["errors/nad_t/u"][()]  # NAD of u after the warm-up

print(f"MNAD u = {result['errors']['mnad_u']:.3g}, macro fraction {result['macro_fraction']:.2f}")

# %%
# NAD of u over time
# ------------------
# The error series starts after the warm-up (``n_warm + 1`` coarse steps).  Shaded:
# the coarse steps computed by the micro solver.
t_err = t[len(t) - len(nad_u) :]
fig, ax = plt.subplots(figsize=(7, 3.2), layout="constrained")
ax.plot(t_err, nad_u, color="tab:blue", label="NAD u, coupled vs micro only")
micro = source == 0
ax.fill_between(
    t, 0, 1, where=micro, transform=ax.get_xaxis_transform(), color="tab:orange", alpha=0.15
)
ax.plot([], [], color="tab:orange", alpha=0.3, lw=6, label="micro solver")
ax.set_xlim(t[0], t[-1])
ax.set_xlabel("t")
ax.set_ylabel("NAD")
ax.set_title("LED coupled to the FHN micro solver")
ax.legend(loc="upper left")

# %%
# Final state against the reference
# ---------------------------------
# :func:`~ledmus.coupler.run.micro_reference` is the micro-only run the engine
# compared against (same initial condition and seed).
reference, _ = micro_reference(settings, np.arange(settings.micro.ensemble))
x = settings.micro.solver.x
fig, ax = plt.subplots(figsize=(7, 3.2), layout="constrained")
ax.plot(x, reference[0, -1, 0], "k-", label="micro only")
ax.plot(x, states[0, -1, 0], "--", color="tab:blue", label="coupled (LED + micro)")
ax.set_xlabel("x")
ax.set_ylabel(f"u(x, t = {t[-1]:g})")
ax.legend()
plt.show()
