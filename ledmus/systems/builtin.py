"""The built-in systems: FHN, KS, AD-1D, AD-3D (Vlachas et al., LED paper, §8), RW
(Kaltenbach & Koutsourelakis §3), BGK (W. E's concurrent-learning lecture, §5) and the
2-D- and 3-D-velocity Boltzmann gases.

Solver classes and presets are those of :data:`ledmus.solvers.REGISTRY`; the dataset
protocols are the paper's (``scale="paper"``) or a quick small version (``"small"``).
Monitor and symmetry callables are module-level functions (or partials of them), so a
spec can be pickled.
"""

from __future__ import annotations

import inspect
from functools import partial

import numpy as np

from .. import solvers
from .kinetic import (
    BGK_POSITIVE_RTOL,
    BOLTZMANN_POSITIVE_RTOL,
    flip_phase_space,
    flip_phase_space_2v,
    flip_phase_space_3v,
    kinetic_positive,
    kinetic_realisable,
    kinetic_realisable_2v,
    kinetic_realisable_3v,
    reflect_transverse_3v,
    reflect_vy,
)
from .spec import Evaluation, Monitor, Protocol, Split, Symmetry, SystemSpec

#: leading Lyapunov exponent of KS at L = 22 (Vlachas et al. §8.4)
KS_LYAPUNOV = 0.048


# --------------------------------------------------------------------- dataset protocols
def fhn_protocol(scale: str) -> Protocol:
    # Vlachas et al. §8.3: runs from y00–y05, first 2 time units dropped, 451 samples (Δt = 1);
    # the test run is long enough for 100 windows of T_warm (≤ 100) + 8000 steps.
    if scale == "paper":
        n, test_len, windows, win = 450, 10_000, 100, 8_100
    else:
        n, test_len, windows, win = 40, 150, 4, 100
    return Protocol(
        "fhn",
        "Vlachas et al. §8.3: y00-y02 train, y03-y04 validation, y05 test; 2 time units dropped.",
        {
            "train": Split(("y00", "y01", "y02"), 3, n, discard=2.0),
            "val": Split(("y03", "y04"), 2, n, discard=2.0),
            "test": Split(("y05",), 1, test_len, discard=2.0, windows=windows, window_length=win),
        },
    )


def ks_protocol(scale: str) -> Protocol:
    # Vlachas et al. §8.4: transient 1000 dropped; 5e3 train, 5e3 val, 1e5 test samples
    # (Δt = 0.25), each split from its own random initial condition.
    if scale == "paper":
        transient, n_train, n_test, windows, win = 1000.0, 5_000, 100_000, 100, 4_000
    else:
        transient, n_train, n_test, windows, win = 100.0, 200, 1_000, 4, 200
    dt = 0.25
    return Protocol(
        "ks",
        "Vlachas et al. §8.4: random initial conditions, transient dropped, Δt = 0.25.",
        {
            "train": Split("random", 1, (n_train - 1) * dt, discard=transient),
            "val": Split("random", 1, (n_train - 1) * dt, discard=transient),
            "test": Split(
                "random",
                1,
                (n_test - 1) * dt,
                discard=transient,
                windows=windows,
                window_length=win,
            ),
        },
    )


def ad_protocol(system: str, scale: str) -> Protocol:
    # Vlachas et al. §8.1–8.2: 1e3 train, 1e3 validation, 1e4 test samples at Δt = 0.5, random
    # initial conditions (all particles of a run start at one random point).
    if scale == "paper":
        runs, params = (2, 500, 10, 1000), {}
    else:
        runs, params = (2, 10, 2, 20), {"n_particles": 200}
    b_tr, t_tr, b_te, t_te = runs
    return Protocol(
        system,
        "Vlachas et al. §8.1/8.2: point-source random initial conditions, Δt = 0.5.",
        {
            "train": Split("random", b_tr, (t_tr - 1) * 0.5),
            "val": Split("random", b_tr, (t_tr - 1) * 0.5),
            "test": Split("random", b_te, (t_te - 1) * 0.5),
        },
        params,
    )


#: the Knudsen-number range of the Boltzmann datasets (W. E's lecture §5: log10 ε uniform
#: in [-3, 1]), drawn per run
BOLTZMANN_EPS = (1e-3, 10.0)


def boltzmann_protocol(scale: str) -> Protocol:
    # W. E's lecture §5: waves and discontinuities, ε log-uniform in [1e-3, 10] per run, to
    # t = 0.1, N = 48 velocities per axis.  The seed's array is 200 runs x 100 cells x 48^2
    # x 100 times; this protocol keeps its velocity grid and time span on 64 periodic cells,
    # 120 training runs and snapshots every 0.01, so the three splits generate in under 20
    # minutes on one thread (benchmarks/out/boltzmann_dataset.json) and the training split
    # holds 120 x 10 x 64 = 76800 cell states after t = 0.
    if scale == "paper":
        runs, params, t_end, dt_coarse = (120, 12, 12), {"N": 48, "nx": 64}, 0.1, 0.01
    else:
        runs, params, t_end, dt_coarse = (3, 2, 2), {"N": 16, "nx": 16}, 0.02, 0.01
    ics = ("waves", "shocks", "riemann")
    eps = (("eps", *BOLTZMANN_EPS),)
    return Protocol(
        "boltzmann",
        "W. E's lecture §5: waves, shocks and Riemann data, periodic; ε log-uniform in "
        "[1e-3, 10] per run (stored as `eps`).",
        {
            name: Split(ics, b, t_end, per_run=eps)
            for name, b in zip(("train", "val", "test"), runs, strict=True)
        },
        {**params, "bc": "periodic", "dt_coarse": dt_coarse},
    )


def rw_protocol(scale: str) -> Protocol:
    # Kaltenbach & Koutsourelakis §3.3: 64 sequences of T = 9 coarse steps (Δt = 4) for
    # training, plus a long test sequence (the paper predicts to 35 Δt; we record 40).
    if scale == "paper":
        b, t_train, t_test, params = 64, 9, 40, {}
    else:
        b, t_train, t_test, params = 4, 3, 5, {"n_particles": 20_000, "dt_coarse": 0.5}
    dt = params.get("dt_coarse", 4.0)
    return Protocol(
        "rw",
        "Kaltenbach & Koutsourelakis §3: random smooth initial densities, 25-bin fractions.",
        {"train": Split("random", b, t_train * dt), "test": Split("random", 1, t_test * dt)},
        params,
    )


# ------------------------------------------------------------------------- coordinates
def node_positions(solver) -> np.ndarray:
    """Grid node coordinates (FHN ``j*dx``, KS ``j*L/N``)."""
    return solver.x


def bin_centres(solver) -> np.ndarray:
    """Centres of the histogram bins."""
    return solver.bin_centres


# ---------------------------------------------------------------------------- monitors
#: every built-in state is 2-D; reducing over the last two axes also accepts (B, T, ...)
STATE_AXES = (-2, -1)


def channel_envelope(states: np.ndarray, bounds: tuple[tuple[float, float], ...]) -> np.ndarray:
    """Every value of channel ``c`` finite and inside ``bounds[c]``; ``(B, C, N) -> (B,)``."""
    x = np.asarray(states, dtype=np.float64)
    lo = np.array([b[0] for b in bounds])[:, None]
    hi = np.array([b[1] for b in bounds])[:, None]
    ok = np.isfinite(x) & (x >= lo) & (x <= hi)
    return ok.all(axis=STATE_AXES)


def energy_range(states: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Spatial mean of ``u^2`` (over channels and nodes) inside ``[lo, hi]``."""
    x = np.asarray(states, dtype=np.float64)
    energy = np.mean(x * x, axis=STATE_AXES)
    return np.isfinite(energy) & (energy >= lo) & (energy <= hi)


def inside_box(states: np.ndarray, half: float) -> np.ndarray:
    """Every particle coordinate finite and in ``[-half, half]``."""
    x = np.asarray(states, dtype=np.float64)
    return (np.isfinite(x) & (np.abs(x) <= half)).all(axis=STATE_AXES)


def unit_mass(states: np.ndarray, tol: float) -> np.ndarray:
    """Each channel's bin fractions sum to one within ``tol``."""
    x = np.asarray(states, dtype=np.float64)
    return np.all(np.isfinite(x.sum(-1)) & (np.abs(x.sum(-1) - 1.0) <= tol), axis=-1)


def non_negative(states: np.ndarray) -> np.ndarray:
    """Every bin fraction finite and >= 0."""
    x = np.asarray(states, dtype=np.float64)
    return (np.isfinite(x) & (x >= 0)).all(axis=STATE_AXES)


# FHN from y00-y05, t in [0, 10000] (dt_coarse = 1): u in [-1.022, 1.023] (the stable
# branches u = ±1 of u - u^3), v in [-0.175, 0.187].  Envelope: about 0.5 and 0.3 beyond.
FHN_ENVELOPE = ((-1.5, 1.5), (-0.5, 0.5))
# KS L = 22, 8 random ICs, t in [1000, 11000] after the transient: mean(u^2) in
# [0.803, 3.120] (mean 1.40), |u| <= 3.10.  From the unit-RMS random ICs the transient
# dips to 0.24 within the first 100 time units.  Envelope: [0.1, 6]; it rejects a collapse
# to the (unstable) zero state and blow-up.
KS_ENERGY = (0.1, 6.0)
RW_MASS_TOL = 1e-9


# -------------------------------------------------------------------------- symmetries
def flip_nodes(states: np.ndarray) -> np.ndarray:
    """``x -> L - x`` on nodes ``j*dx``: node ``j`` -> node ``N-1-j``."""
    return np.asarray(states)[..., ::-1].copy()


def ks_reflection(states: np.ndarray) -> np.ndarray:
    """``u(x) -> -u(-x)`` on periodic nodes ``j*L/N``: ``u_j -> -u_{(N-j) mod N}``."""
    return -np.roll(np.asarray(states)[..., ::-1], 1, axis=-1)


def roll_nodes(states: np.ndarray, shift: int = 1) -> np.ndarray:
    """``u(x) -> u(x - shift*L/N)`` on periodic nodes."""
    return np.roll(np.asarray(states), shift, axis=-1)


def reflect_axis(states: np.ndarray, axis: int) -> np.ndarray:
    """Particle coordinate ``axis``: ``x -> -x`` (the box is centred on 0)."""
    out = np.array(states, dtype=np.float64, copy=True)
    out[..., axis] *= -1
    return out


def _default(cls: type, name: str):
    return inspect.signature(cls.__init__).parameters[name].default


def _particle_spec(name: str, description: str) -> SystemSpec:
    cls, preset = solvers.REGISTRY[name]
    dim = preset.get("dim", _default(cls, "dim"))
    half = preset.get("box", _default(cls, "box")) / 2
    axes = "xyz"[:dim] if dim <= 3 else tuple(f"x{k}" for k in range(dim))
    amplitude = np.broadcast_to(preset.get("amplitude", _default(cls, "amplitude")), (dim,))
    return SystemSpec(
        name,
        cls,
        "particles",
        description,
        preset=preset,
        channels=tuple(axes),
        dataset=partial(ad_protocol, name),
        evaluation=Evaluation(60, None),
        monitors=(
            Monitor(
                "box",
                partial(inside_box, half=half),
                f"particles inside the reflective box [-{half:g}, {half:g}]^{dim}",
            ),
        ),
        symmetries=tuple(
            Symmetry(
                f"reflect_{ax}",
                partial(reflect_axis, axis=k),
                f"{ax} -> -{ax}: exact "
                + (
                    "(no drift on this axis)"
                    if amplitude[k] == 0
                    else "with zero drift amplitude; else with the half-period shift t -> t + pi/omega"
                ),
            )
            for k, ax in enumerate(axes)
        ),
    )


def builtin_specs() -> tuple[SystemSpec, ...]:
    """The declarations of the built-in systems (not yet registered)."""
    fhn_cls, fhn_preset = solvers.REGISTRY["fhn"]
    ks_cls, ks_preset = solvers.REGISTRY["ks"]
    rw_cls, rw_preset = solvers.REGISTRY["rw"]
    bgk_cls, bgk_preset = solvers.REGISTRY["bgk"]
    boltzmann_cls, boltzmann_preset = solvers.REGISTRY["boltzmann"]
    boltzmann3d_cls, boltzmann3d_preset = solvers.REGISTRY["boltzmann3d"]
    fhn = SystemSpec(
        "fhn",
        fhn_cls,
        "grid",
        "FitzHugh-Nagumo, D1Q3 lattice Boltzmann, zero-flux walls (Vlachas et al. §8.3)",
        preset=fhn_preset,
        channels=("u", "v"),
        coordinates=node_positions,
        dataset=fhn_protocol,
        evaluation=Evaluation(60, 8000, spans=(451,)),
        monitors=(
            Monitor(
                "envelope",
                partial(channel_envelope, bounds=FHN_ENVELOPE),
                "u, v finite; u in [-1.5, 1.5], v in [-0.5, 0.5]",
            ),
        ),
        symmetries=(Symmetry("reflection", flip_nodes, "x -> L - x (node axis reversed)"),),
        # the solver also lifts onto the slow manifold (421x less re-lift drift), but with
        # decoded fields the coupled FHN sweep is as accurate or better with the paper's
        # equal-weight lift (docs/guide/lifting.md, table c)
        lifting="equilibrium",
        travelling_wave=True,
    )
    ks = SystemSpec(
        "ks",
        ks_cls,
        "grid",
        "Kuramoto-Sivashinsky, ETDRK4 pseudo-spectral, periodic (Vlachas et al. §8.4)",
        preset=ks_preset,
        channels=("u",),
        coordinates=node_positions,
        dataset=ks_protocol,
        evaluation=Evaluation(60, None),
        lyapunov=KS_LYAPUNOV,
        monitors=(
            Monitor(
                "energy",
                partial(energy_range, lo=KS_ENERGY[0], hi=KS_ENERGY[1]),
                f"mean u^2 in [{KS_ENERGY[0]}, {KS_ENERGY[1]}] (attractor: 0.80-3.12)",
            ),
        ),
        symmetries=(
            Symmetry("reflection", ks_reflection, "u(x) -> -u(-x)"),
            Symmetry("translation", roll_nodes, "u(x) -> u(x - L/N) (one node; generates all)"),
        ),
    )
    rw = SystemSpec(
        "rw",
        rw_cls,
        "histogram",
        "biased lattice random walk, periodic, 25-bin density (Kaltenbach & Koutsourelakis §3)",
        preset=rw_preset,
        channels=("density",),
        coordinates=bin_centres,
        dataset=rw_protocol,
        # the paper's test run is 41 samples: 3 teacher-forced, the rest forecast
        evaluation=Evaluation(3, None),
        monitors=(
            Monitor("mass", partial(unit_mass, tol=RW_MASS_TOL), "bin fractions sum to 1 (1e-9)"),
            Monitor("non_negative", non_negative, "bin fractions >= 0"),
        ),
    )
    bgk = SystemSpec(
        "bgk",
        bgk_cls,
        "kinetic",
        "1-D BGK gas, discrete velocities, MUSCL + exponential relaxation (W. E's lecture §5)",
        preset=bgk_preset,
        # the state is f (nv, nx): one channel per velocity, named c0, c1, ... by the
        # suites (the number of velocities is a parameter)
        coordinates=node_positions,
        monitors=(
            Monitor(
                "positive",
                partial(kinetic_positive, rtol=BGK_POSITIVE_RTOL),
                f"f finite and >= -{BGK_POSITIVE_RTOL:g} max f",
            ),
            Monitor("realisable", kinetic_realisable, "rho > 0 and T > 0 in every cell"),
        ),
        symmetries=(
            Symmetry(
                "reflection",
                flip_phase_space,
                "x -> L - x with v -> -v (both axes reversed; exact for either bc)",
            ),
        ),
    )
    # both Boltzmann gases: spectral collisions leave f slightly negative in the tails
    spectral_positive = Monitor(
        "positive",
        partial(kinetic_positive, rtol=BOLTZMANN_POSITIVE_RTOL),
        f"f finite and >= -{BOLTZMANN_POSITIVE_RTOL:g} max f (spectral collisions)",
    )
    boltzmann = SystemSpec(
        "boltzmann",
        boltzmann_cls,
        "kinetic",
        "Boltzmann gas, 1-D x, 2-D velocity, Maxwell molecules, fast spectral + IMEX penalisation",
        preset=boltzmann_preset,
        dataset=boltzmann_protocol,
        # the state is f (N*N, nx): one channel per velocity (v_x[i], v_y[j]), i*N + j
        coordinates=node_positions,
        monitors=(
            spectral_positive,
            Monitor("realisable", kinetic_realisable_2v, "rho > 0 and T > 0 in every cell"),
        ),
        symmetries=(
            Symmetry(
                "reflection",
                flip_phase_space_2v,
                "x -> L - x with v_x -> -v_x (exact for every bc with a symmetric eps)",
            ),
            Symmetry("reflect_vy", reflect_vy, "v_y -> -v_y (exact)"),
        ),
    )
    # no dataset protocol (as bgk): a cell state is N^3 = 4096 values at the default N
    boltzmann3d = SystemSpec(
        "boltzmann3d",
        boltzmann3d_cls,
        "kinetic",
        "Boltzmann gas, 1-D x, 3-D velocity, hard spheres, fast spectral + IMEX penalisation",
        preset=boltzmann3d_preset,
        # the state is f (N^3, nx): one channel per velocity (v_x[i], v_y[j], v_z[k]),
        # (i*N + j)*N + k
        coordinates=node_positions,
        monitors=(
            spectral_positive,
            Monitor("realisable", kinetic_realisable_3v, "rho > 0 and T > 0 in every cell"),
        ),
        symmetries=(
            Symmetry(
                "reflection",
                flip_phase_space_3v,
                "x -> L - x with v_x -> -v_x (exact for every bc with a symmetric eps)",
            ),
            Symmetry("reflect_vy", partial(reflect_transverse_3v, axis=1), "v_y -> -v_y (exact)"),
            Symmetry("reflect_vz", partial(reflect_transverse_3v, axis=2), "v_z -> -v_z (exact)"),
        ),
    )
    return (
        fhn,
        ks,
        _particle_spec(
            "ad1d", "advection-diffusion, Brownian particles in [-0.5, 0.5] (Vlachas et al. §8.1)"
        ),
        _particle_spec(
            "ad3d",
            "advection-diffusion, Brownian particles in [-0.5, 0.5]^3 (Vlachas et al. §8.2)",
        ),
        rw,
        bgk,
        boltzmann,
        boltzmann3d,
    )
