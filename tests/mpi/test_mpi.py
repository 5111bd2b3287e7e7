"""MPI: run with ``mpiexec -n 2 python -m pytest --with-mpi tests/mpi`` (pytest-mpi).

The ensemble split over ranks must give the serial run's result, and the
permutation-invariant restriction of particles split over ranks (Allreduce of per-rank
sums) must equal the restriction (encoder) applied to the whole particle set."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))

from test_coupler import FHN_MODEL, tiny_particle_model  # noqa: E402

from ledmus import solvers  # noqa: E402
from ledmus.coupler.engine import run_embedded  # noqa: E402
from ledmus.coupler.mpi import distributed_restrict  # noqa: E402
from ledmus.coupler.settings import validate  # noqa: E402
from ledmus.solvers.cells import split_slice  # noqa: E402
from ledmus.surrogates import load_macro_model  # noqa: E402


def comm():
    from mpi4py import MPI

    return MPI.COMM_WORLD


def shared_dir(tmp_path_factory) -> Path:
    path = str(tmp_path_factory.mktemp("mpi")) if comm().Get_rank() == 0 else None
    return Path(comm().bcast(path, root=0))


def gathered(result_dir: Path) -> np.ndarray:
    import h5py

    with h5py.File(result_dir / "trajectory.h5") as h5:
        return h5["states"][()]


@pytest.mark.mpi(min_size=2)
def test_fhn_ensemble_split_over_ranks_equals_the_serial_run(tmp_path_factory):
    root = shared_dir(tmp_path_factory)
    if comm().Get_rank() == 0:
        np.save(root / "ics.npy", np.stack([solvers.load_fhn_ic(n) for n in ("y03", "y04", "y05")]))
    comm().Barrier()
    raw = {"model": str(FHN_MODEL), "t_warm": 30.0, "t_macro": 20.0, "t_micro": 5.0,
           "t_end": 150.0, "ensemble": 3, "ic": str(root / "ics.npy"), "plots": False,
           "compare": True}  # fmt: skip
    torch.set_num_threads(1)
    result = run_embedded(validate(raw), root / "mpi", comm=comm())
    assert result["n_ranks"] == comm().Get_size()
    if comm().Get_rank() == 0:
        serial = run_embedded(validate(raw), root / "serial")
        a, b = gathered(root / "mpi"), gathered(root / "serial")
        assert a.shape == (3, 151, 2, 101)
        # the RNN runs batches of 2+1 instead of 3: float32 GEMM rounding may differ in
        # the last bit; FHN damps it, so 1e-5 of an O(1) field is ample and still far
        # below any scheduling error (a wrong member order gives O(1) differences)
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-5)
        assert abs(result["errors"]["mnad_u"] - serial["errors"]["mnad_u"]) < 1e-6


@pytest.mark.mpi(min_size=2)
def test_adaptive_drift_estimates_are_gathered_from_every_rank(tmp_path_factory):
    root = shared_dir(tmp_path_factory)
    if comm().Get_rank() == 0:
        np.save(
            root / "ics3.npy", np.stack([solvers.load_fhn_ic(n) for n in ("y03", "y04", "y05")])
        )
    comm().Barrier()
    raw = {"model": str(FHN_MODEL), "t_warm": 30.0, "t_macro": 40.0, "t_micro": 10.0,
           "t_end": 300.0, "ensemble": 3, "ic": str(root / "ics3.npy"), "plots": False,
           "schedule": "adaptive", "max_error": 0.01, "max_drift": 0.004,
           "t_micro_min": "auto", "compare": True}  # fmt: skip
    torch.set_num_threads(1)
    result = run_embedded(validate(raw), root / "mpi_drift", comm=comm())
    if comm().Get_rank() == 0:
        serial = run_embedded(validate(raw), root / "serial_drift")
        # one estimate and one true error per member, in member order, from both ranks
        assert len(result["drift"]["estimate"]) == len(result["drift"]["true"]) == 3
        # the same decisions; 1e-6: float32 RNN batching (2 + 1 members) in the comparisons
        np.testing.assert_allclose(
            result["drift"]["estimate"], serial["drift"]["estimate"], rtol=0, atol=1e-6
        )
        assert max(serial["drift"]["estimate"]) > 0  # the members did go macro
        # counts summed over the ranks (rank 0 alone once reported only its own members)
        assert result["interventions"] == serial["interventions"]
        assert result["comparisons"] == serial["comparisons"]
        # the restart tests of t_micro_min auto, per member from both ranks
        assert result["restart_error"]["count"] == serial["restart_error"]["count"]
        assert result["restart_error"]["min_window"] == serial["restart_error"]["min_window"]
        assert len(result["restart_error"]["min_window"]) == 3


@pytest.mark.mpi(min_size=2)
def test_stochastic_particle_ensemble_split_equals_the_serial_run(tmp_path_factory):
    root = shared_dir(tmp_path_factory)
    model = tiny_particle_model(root) if comm().Get_rank() == 0 else None
    model = comm().bcast(model, root=0)
    raw = {"model": str(model), "t_warm": 1.0, "t_macro": 1.0, "t_micro": 0.5, "t_end": 4.0,
           "ensemble": 4, "param_n_particles": 40, "param_dt": 0.01, "plots": False}  # fmt: skip
    torch.set_num_threads(1)
    run_embedded(validate(raw), root / "mpi_ad", comm=comm())
    if comm().Get_rank() == 0:
        run_embedded(validate(raw), root / "serial_ad")
        # per-member random streams: the same draws wherever a member runs; 1e-6 covers
        # float32 RNN batching differences in the decoded particle positions
        np.testing.assert_allclose(
            gathered(root / "mpi_ad"), gathered(root / "serial_ad"), atol=1e-6
        )


@pytest.mark.mpi(min_size=2)
def test_stochastic_macro_model_split_equals_the_serial_run(tmp_path_factory):
    """The seed-003 model draws its propagation noise from per-member streams."""
    root = shared_dir(tmp_path_factory)
    raw = {"model": str(ROOT / "models" / "vo_rw.pt"), "t_warm": 8.0, "t_macro": 16.0,
           "t_micro": 4.0, "t_end": 60.0, "ensemble": 3, "ic": "random",
           "param_n_particles": 5000, "plots": False}  # fmt: skip
    torch.set_num_threads(1)
    run_embedded(validate(raw), root / "mpi_vo", comm=comm())
    if comm().Get_rank() == 0:
        run_embedded(validate(raw), root / "serial_vo")
        # float64 model, per-member streams and per-member propagation: bitwise
        np.testing.assert_array_equal(gathered(root / "mpi_vo"), gathered(root / "serial_vo"))


@pytest.mark.mpi(min_size=2)
def test_allreduce_restriction_equals_the_full_encoder(tmp_path_factory):
    root = shared_dir(tmp_path_factory)
    path = tiny_particle_model(root, n=101) if comm().Get_rank() == 0 else None
    model = load_macro_model(comm().bcast(path, root=0))
    rng = np.random.default_rng(7)  # same data on every rank
    states = rng.uniform(-0.5, 0.5, size=(2, 3, 101, 3))  # (B, T, N, d), N not divisible
    rank, size = comm().Get_rank(), comm().Get_size()
    z = distributed_restrict(model, states[:, :, split_slice(101, rank, size)], 101, comm())
    full = model.restrict(states)
    # a sum split into partial sums: float32 reassociation only
    np.testing.assert_allclose(z, full, rtol=1e-5, atol=1e-6)


@pytest.mark.mpi(min_size=2)
def test_online_training_is_refused_on_several_ranks_by_every_rank(tmp_path_factory):
    settings = validate({"model": str(FHN_MODEL), "t_warm": 60.0, "t_macro": 40.0,
                         "t_micro": 10.0, "t_end": 200.0, "ic": "y05", "ensemble": 2,
                         "schedule": "adaptive", "online": "deterministic", "plots": False})  # fmt: skip
    # every rank raises the same message before any compute (no rank waits on the others)
    with pytest.raises(ValueError, match="online training runs with one process"):
        run_embedded(settings, shared_dir(tmp_path_factory) / "run", comm=comm())
