"""
FitzHugh–Nagumo micro solver
============================

Build the FitzHugh–Nagumo lattice Boltzmann solver by name with
:func:`ledmus.solvers.make` (the paper's parameters), start it from the tabulated
initial condition ``y05`` and plot the activator :math:`u(x, t)` as a space-time image.

The solver is batched over a leading ensemble axis: the observable of one state is
``(2, 101)`` (channels u and v on 101 nodes of [0, 20]), a rollout returns
``(B, T, 2, 101)`` sampled every coarse step ``dt_coarse``.
"""

import matplotlib.pyplot as plt
import numpy as np

import ledmus.solvers

solver = ledmus.solvers.make("fhn")
print(solver)

# %%
# Initial condition and rollout
# -----------------------------
# ``initial_condition`` accepts a name from ``solver.ic_names()``; the FHN solver is
# deterministic, so the random generator is only there for the common signature.
rng = np.random.default_rng(0)
u0 = solver.initial_condition("y05", batch=1, rng=rng)  # (1, 2, 101)
t, states = solver.rollout(u0, t_end=450.0)  # states: (1, T, 2, 101)
print(f"{states.shape[1]} states from t = {t[0]:g} to {t[-1]:g}, dt_coarse = {solver.dt_coarse}")

# %%
# Space-time image of u
# ---------------------
u = states[0, :, 0, :]  # (T, 101)
x = solver.x
fig, ax = plt.subplots(figsize=(7, 3.5), layout="constrained")
image = ax.imshow(
    u.T,
    origin="lower",
    aspect="auto",
    extent=(t[0], t[-1], x[0], x[-1]),
    cmap="RdBu_r",
)
ax.set_xlabel("t")
ax.set_ylabel("x")
ax.set_title("FitzHugh–Nagumo, activator u(x, t) from y05")
fig.colorbar(image, ax=ax, label="u")
plt.show()
