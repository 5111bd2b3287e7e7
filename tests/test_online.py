"""Online training for concurrent learning (issue 9): replay buffer, trainer, weight
transport and the background trainer."""

from __future__ import annotations

import copy
import logging
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from ledmus.surrogates.config import load_config
from ledmus.surrogates.ensemble import EnsembleRNN
from ledmus.surrogates.online import ONLINE_DEFAULTS, OnlineTrainer
from ledmus.surrogates.online_async import AsyncTrainer, pack_weights, unpack_weights
from ledmus.surrogates.replay import ReplayBuffer

SHAPE = (2, 5)
TINY = {"autoencoder": {"latent_dim": 3, "layers": 1, "width": 8},
        "rnn": {"hidden": 6, "residual": True}}  # fmt: skip


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def tiny_trainer(seed: int = 0, ensemble: int = 1, **cfg) -> OnlineTrainer:
    raw = copy.deepcopy(TINY)
    raw["rnn"]["ensemble"] = ensemble
    states = np.random.default_rng(100).normal(size=(40, *SHAPE))
    return OnlineTrainer.cold_start(raw, states, "fhn", seed, cfg)


def random_buffer(n: int = 30, seq_len: int = 5) -> ReplayBuffer:
    buf = ReplayBuffer(n, seq_len, SHAPE, seed=1)
    buf.add(np.random.default_rng(2).normal(size=(n, seq_len, *SHAPE)), 0)
    return buf


def through_npz(snap: dict, path: Path) -> dict:
    """The snapshot written to and read back from an ``.npz`` file without pickles (as
    a file or a message would carry it): only numbers and numeric arrays pass."""
    for key, value in snap.items():
        assert isinstance(value, (int, float, np.ndarray)), key
    np.savez(path, **snap)
    with np.load(path, allow_pickle=False) as data:
        return {k: data[k] for k in data.files}


def assert_same_weights(a: torch.nn.Module, b: torch.nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert list(sa) == list(sb)
    for name in sa:
        assert torch.equal(sa[name], sb[name]), name


# ---------------------------------------------------------------------- replay buffer
def ramp(a: int, b: int) -> np.ndarray:
    """States a … b-1, state i filled with the value i, ``(b - a, 1, 2)``."""
    return np.repeat(np.arange(a, b, dtype=np.float32)[:, None, None], 2, axis=2)


def test_feed_cuts_contiguous_sequences_with_stride_seq_len_minus_one():
    buf = ReplayBuffer(50, 4, (1, 2))
    assert buf.feed(0, 0, ramp(0, 3), regime=0) == 0
    assert buf.feed(1, 0, ramp(100, 105), regime=0) == 1  # other member: its own segment
    assert buf.feed(0, 3, ramp(3, 10), regime=0) == 3  # 0-3, 3-6, 6-9; 9 pending
    assert buf.feed(0, 11, ramp(11, 14), regime=0) == 0  # gap (10 expected): restart
    assert buf.feed(0, 14, ramp(14, 15), regime=1) == 0  # regime change: restart at 14
    assert buf.feed(0, 15, ramp(15, 18), regime=1) == 1  # 14-17
    firsts = buf.snapshot()["data"][:, :, 0, 0]
    assert firsts.tolist() == [[100, 101, 102, 103], [0, 1, 2, 3], [3, 4, 5, 6],
                               [6, 7, 8, 9], [14, 15, 16, 17]]  # fmt: skip
    assert buf.regimes() == {0: 4, 1: 1} and len(buf) == buf.seen == 5
    with pytest.raises(ValueError, match=r"shape \(n, 1, 2\) expected, got \(3, 2\)"):
        buf.feed(0, 18, np.zeros((3, 2)), 1)


def test_full_buffer_replaces_a_uniformly_drawn_victim():
    buf = ReplayBuffer(10, 2, (1,), seed=3)
    buf.add(np.zeros((10, 2, 1)), 0)
    victims = np.zeros(10, int)
    for i in range(1, 2001):
        buf.add(np.full((1, 2, 1), i), 0)
        victims[buf.snapshot()["data"][:, 0, 0] == i] += 1
    # 2000 draws of 10 slots: binomial mean 200, sd 13.4; measured 183 … 228; +-60 = 4.5 sd
    assert victims.sum() == 2000 and np.all(np.abs(victims - 200) < 60), victims
    stored = buf.snapshot()["data"][:, 0, 0]
    assert stored.min() < 1991  # not first-in first-out (that would keep exactly 1991 … 2000)
    assert len(buf) == 10 and buf.seen == 2010


def test_earlier_regimes_keep_their_share_of_the_buffer():
    buf = ReplayBuffer(20, 2, (1,), keep_fraction=0.25, seed=0)
    buf.add(np.zeros((20, 2, 1)), 0)
    buf.add(np.ones((100, 2, 1)), 1)
    assert buf.regimes() == {0: 5, 1: 15}  # shrunk to floor(0.25 * 20), then protected
    kept = buf.snapshot()
    buf.add(np.ones((500, 2, 1)), 1)
    assert np.array_equal(buf.snapshot()["tags"] == 0, kept["tags"] == 0)  # the same 5 slots
    buf.add(np.full((100, 2, 1), 2.0), 2)
    assert buf.regimes()[2] == 15 and sum(buf.regimes().values()) == 20
    forgetful = ReplayBuffer(20, 2, (1,), keep_fraction=0.0, seed=0)
    forgetful.add(np.zeros((20, 2, 1)), 0)
    forgetful.add(np.ones((300, 2, 1)), 1)
    assert forgetful.regimes() == {1: 20}


def drive(buf: ReplayBuffer, ops: np.random.Generator, steps: int, nxt: dict) -> list:
    """Random feeds (3 members, gaps, a regime change), adds and samples; the outputs."""
    out = []
    for step in range(steps):
        m, n = int(ops.integers(3)), int(ops.integers(1, 6))
        start = nxt.get(m, 0) + int(ops.integers(3) == 0)  # a gap one time in three
        regime = int(ops.integers(10) == 0) + 2 * (step > steps // 2)
        out.append(buf.feed(m, start, ops.normal(size=(n, *buf.state_shape)), regime))
        nxt[m] = start + n
        if step % 7 == 0:
            buf.add(ops.normal(size=(2, buf.seq_len, *buf.state_shape)), regime)
        if step % 5 == 0 and len(buf):
            out.append(buf.sample(3, np.random.default_rng(step)))
    return out


def test_buffer_snapshot_restore_continues_bitwise(tmp_path):
    a = ReplayBuffer(12, 4, SHAPE, seed=5)
    nxt: dict = {}
    drive(a, np.random.default_rng(1), 40, nxt)
    snap = through_npz(a.snapshot(), tmp_path / "buffer.npz")
    assert len(snap["pending_member"]) == 3 and a.seen > a.capacity  # replacement happened
    b = ReplayBuffer(3, 2, (1,), seed=99)
    b.restore(snap)
    out_a = drive(a, np.random.default_rng(2), 40, dict(nxt))
    out_b = drive(b, np.random.default_rng(2), 40, dict(nxt))
    for x, y in zip(out_a, out_b, strict=True):
        assert np.array_equal(x, y)
    sa, sb = a.snapshot(), b.snapshot()
    assert all(np.array_equal(sa[k], sb[k]) for k in sa)


# ---------------------------------------------------------------------- trainer
def test_settings_and_cold_start_from_a_training_config():
    assert ONLINE_DEFAULTS == {
        "lr": 1e-4,
        "batch_size": 16,
        "ae_weight": 1.0,
        "noise": 0.01,
        "warmup": 0,
        "restart_weight": 0.0,
        "restart_warmup": 10,
        "bootstrap": True,
    }
    raw = load_config(Path(__file__).parents[1] / "configs" / "fhn.yaml")
    states = np.random.default_rng(0).normal(1.0, 2.0, size=(30, 2, 11))
    rng_before = torch.get_rng_state()
    a = OnlineTrainer.cold_start(raw, states, "fhn", seed=4)
    assert torch.equal(torch.get_rng_state(), rng_before)  # the global generator is left alone
    assert_same_weights(a.model, OnlineTrainer.cold_start(raw, states, "fhn", seed=4).model)
    assert list(a.model.spec) == ["system", "state_shape", "box", "autoencoder", "rnn"]
    assert a.model.spec["state_shape"] == [2, 11] and a.model.latent_dim == 8
    assert np.array_equal(a.model.scaler.shift.numpy(), states.mean(axis=(0, 2)))  # same sum
    with pytest.raises(ValueError, match="system 'fhn' is needed, got system 'ks'"):
        OnlineTrainer.cold_start({**raw, "system": "ks"}, states, "fhn")
    with pytest.raises(ValueError, match="the config is a 'pca' config, not led .an LED config"):
        OnlineTrainer.cold_start({"kind": "pca", "system": "fhn"}, states, "fhn")
    with pytest.raises(ValueError, match="unknown online setting.* lrr"):
        tiny_trainer(lrr=1.0)


@pytest.mark.parametrize("ensemble", [1, 3])
def test_trainer_is_bitwise_deterministic_and_keeps_the_scaler(ensemble):
    buf = random_buffer()
    cfg = {"noise": 0.1, "warmup": 1, "lr": 1e-2}
    a, b = tiny_trainer(7, ensemble, **cfg), tiny_trainer(7, ensemble, **cfg)
    assert isinstance(a.model.rnn, EnsembleRNN) == (ensemble > 1)
    scaler = copy.deepcopy(a.model.scaler.state_dict())
    hist_a, hist_b = a.train(buf, 4), b.train(buf, 4)
    assert hist_a == hist_b and hist_a["steps"] == 4 and len(hist_a["rnn"]) == 4
    assert_same_weights(a.model, b.model)
    for k, v in scaler.items():
        assert torch.equal(a.model.scaler.state_dict()[k], v)
    other = tiny_trainer(8, ensemble, **cfg)
    other.model.load_state_dict(tiny_trainer(7, ensemble).model.state_dict())
    assert other.train(buf, 4) != hist_a  # another seed draws other batches and noise
    assert a.stats["updates"] == 4 and a.stats["samples"] == 4 * 16
    assert a.stats["seconds"] > 0 and set(a.stats["last_losses"]) == {"ae", "rnn"}


def test_trainer_snapshot_restore_continues_bitwise(tmp_path):
    buf = random_buffer()
    a = tiny_trainer(3, 3, noise=0.1, lr=1e-2)
    a.train(buf, 3)
    snap = through_npz(a.snapshot(), tmp_path / "trainer.npz")
    cont_a = a.train(buf, 3)
    b = tiny_trainer(11, 3, batch_size=4, lr=0.5)  # other weights, generators, settings
    b.restore(snap)
    assert b.opt_rnn.param_groups[0]["lr"] == 1e-2 and b.cfg == a.cfg
    assert b.train(buf, 3) == cont_a
    assert_same_weights(a.model, b.model)
    sa, sb = a.snapshot(), b.snapshot()
    assert all(np.array_equal(sa[k], sb[k]) for k in sa if k != "seconds")


def test_ensemble_members_train_on_their_own_bootstrap_resamples():
    buf = random_buffer()
    on, off = tiny_trainer(5, 3, lr=1e-2), tiny_trainer(5, 3, lr=1e-2, bootstrap=False)
    w = on.bootstrap_weights(16)
    assert w.shape == (16, 3) and torch.all(w.sum(dim=0) == 16)  # 16 draws per member
    assert not torch.equal(w[:, 0], w[:, 1])  # each member its own resample
    assert off.bootstrap_weights(16) is None and tiny_trainer(5, 1).bootstrap_weights(16) is None
    on.train(buf, 3)
    off.train(buf, 3)
    # the same minibatches (the bootstrap has its own generator), other weights
    assert np.array_equal(on.draw(buf), off.draw(buf))
    assert not torch.equal(on.model.rnn.core.rnn.weight_hh_l0, off.model.rnn.core.rnn.weight_hh_l0)


N_X, SEQ = 16, 12


def waves(speed: float, n: int, rng: np.random.Generator) -> np.ndarray:
    """Travelling sine waves ``sin(x - speed t + phase)``, ``(n, SEQ, 1, N_X)``."""
    x = 2 * np.pi * np.arange(N_X) / N_X
    phase = rng.uniform(0, 2 * np.pi, n)[:, None, None, None]
    t = np.arange(SEQ)[None, :, None, None]
    return np.sin(x - speed * t + phase).astype(np.float32)


def one_step_error(model, seqs: np.ndarray, warm: int = 3) -> float:
    """MSE of the decoded one-step RNN predictions after ``warm`` teacher-forced steps."""
    with torch.no_grad():
        pred, _ = model.rnn(model.encode(seqs)[:, :-1])
        dec = model.decode(pred.flatten(0, 1)).reshape(seqs[:, 1:].shape).numpy()
    return float(np.mean((dec[:, warm:] - seqs[:, warm + 1 :]) ** 2))


def test_fine_tuning_learns_a_new_speed_and_the_kept_share_remembers_the_old():
    rng = np.random.default_rng(0)
    slow, fast = waves(0.2, 200, rng), waves(0.5, 600, rng)
    test_slow, test_fast = waves(0.2, 50, rng), waves(0.5, 50, rng)
    raw = {"autoencoder": {"latent_dim": 3, "layers": 1, "width": 32},
           "rnn": {"hidden": 16, "residual": True}}  # fmt: skip
    pre = OnlineTrainer.cold_start(
        raw, slow.reshape(-1, 1, N_X), "fhn", 0, {"lr": 3e-3, "noise": 0}
    )
    first = ReplayBuffer(200, SEQ, (1, N_X))
    first.add(slow, 0)
    pre.train(first, 600)
    before = one_step_error(pre.model, test_fast)
    # the model knows the slow waves only: measured 2.6e-5 (slow) vs 4.7e-2 (fast), a
    # factor 1800; asked: 100
    assert one_step_error(pre.model, test_slow) < before / 100
    errors = {}
    for keep in (0.0, 0.25):
        buf = ReplayBuffer(200, SEQ, (1, N_X), keep_fraction=keep)
        buf.add(slow, 0)
        buf.add(fast, 1)
        tuner = OnlineTrainer(copy.deepcopy(pre.model), {"lr": 1e-3}, seed=1)
        tuner.train(buf, 300)
        errors[keep] = (
            one_step_error(tuner.model, test_fast),
            one_step_error(tuner.model, test_slow),
        )
    # fast-wave error after 300 steps: measured 1.0e-4 (keep 0, factor 450) and 9.2e-4
    # (keep 0.25: a quarter of the batches are slow waves, factor 51); asked: 100 and 10
    assert errors[0.0][0] < before / 100 and errors[0.25][0] < before / 10
    # slow-wave error: measured 3.3e-2 without the kept share (12 slow sequences left)
    # and 9.9e-3 with it (50 kept): a factor 3.3; asked: 2
    assert errors[0.25][1] < errors[0.0][1] / 2


# ---------------------------------------------------------------------- weight transport
def test_pack_unpack_round_trip_keeps_values_and_dtypes():
    model = tiny_trainer(0, 3).model
    payload = pack_weights(model.state_dict(), 3)
    names = list(model.state_dict())
    assert payload["version"] == 3 and payload["names"] == "\n".join(names)
    assert len(payload["checksum"]) == 64 and payload["w0"].dtype == np.float64  # scaler
    assert all(isinstance(payload[f"w{i}"], np.ndarray) for i in range(len(names)))
    out = unpack_weights(payload, model.state_dict(), last_version=2)
    for name, t in model.state_dict().items():
        assert out[name].dtype == t.dtype and torch.equal(out[name], t), name
    as_list = {**payload, "names": names}  # a list of names is accepted too
    assert list(unpack_weights(as_list, model.state_dict(), 0)) == names


def test_unpack_refuses_corrupted_mismatched_and_stale_weights():
    like = tiny_trainer(0).model.state_dict()
    payload = pack_weights(like, 4)
    bad = {**payload, "w3": payload["w3"].copy()}
    bad["w3"].view(np.uint8)[5] ^= 1  # one flipped bit
    with pytest.raises(ValueError, match="version 4: checksum mismatch"):
        unpack_weights(bad, like, 0)
    raw = copy.deepcopy(TINY)
    raw["rnn"]["hidden"] = 7
    other = OnlineTrainer.cold_start(raw, np.ones((3, *SHAPE)), "fhn").model.state_dict()
    with pytest.raises(ValueError, match=r"tensor 'rnn.rnn.weight_ih_l0' has shape \(24, 3\), "
                                         r"the model's is \(28, 3\)"):  # fmt: skip
        unpack_weights(payload, other, 0)
    doubles = {k: v.double() for k, v in like.items()}
    with pytest.raises(ValueError, match="tensor 'autoencoder.encoder.inp.0.weight' has dtype "
                                         "float32, the model's is float64"):  # fmt: skip
        unpack_weights(payload, doubles, 0)
    fewer = dict(list(like.items())[1:])
    with pytest.raises(ValueError, match=r"names differ .*unexpected \['scaler.shift'\]"):
        unpack_weights(payload, fewer, 0)
    with pytest.raises(ValueError, match="stale weights version 4 <= 5"):
        unpack_weights(payload, like, 5)
    with pytest.raises(ValueError, match="stale weights version 4 <= 4"):
        unpack_weights(payload, like, 4)


# ---------------------------------------------------------------------- background trainer
def wait_for(condition, timeout: float = 20.0) -> None:
    """Poll ``condition``; the timeout only catches a hung thread (a chunk of 3 tiny steps
    takes about 15 ms here, 5 ms a step), generous for a loaded shared machine."""
    t0 = time.monotonic()
    while not condition():
        assert time.monotonic() - t0 < timeout, "timed out"
        time.sleep(0.005)


def test_async_trainer_publishes_increasing_versions():
    trainer = tiny_trainer(0, batch_size=4)
    receiver = tiny_trainer(1).model
    with AsyncTrainer(trainer, ReplayBuffer(40, 4, SHAPE), min_sequences=6, chunk_steps=3) as at:
        rng = np.random.default_rng(0)
        assert at.submit(0, 0, rng.normal(size=(10, *SHAPE)), 0) == 3
        time.sleep(0.05)  # time for the thread to (wrongly) start; it must keep waiting
        assert at.latest(0) is None and at.stats["updates"] == 0  # 3 < min_sequences
        assert at.submit(1, 0, rng.normal(size=(10, *SHAPE)), 0) == 3
        versions, last = [], 0
        while len(versions) < 3:
            wait_for(lambda: at.latest(last) is not None)
            packed = at.latest(last)
            receiver.load_state_dict(unpack_weights(packed, receiver.state_dict(), last))
            versions.append(last := packed["version"])
        assert versions == sorted(set(versions)) and versions[0] >= 1
    stats = at.stats
    assert not stats["running"] and stats["failures"] == []
    assert stats["updates"] >= 3 * (stats["version"] - 1) + 1


class FailingTrainer(OnlineTrainer):
    """Raises on its 7th update (after two good chunks of 3)."""

    def update(self, batch: np.ndarray) -> dict[str, float]:
        if self.updates == 6:
            raise RuntimeError("planted failure")
        return super().update(batch)


def test_async_trainer_survives_a_failure_and_keeps_the_last_good_weights(caplog):
    good = tiny_trainer(0, batch_size=4)
    trainer = FailingTrainer(good.model, good.cfg, seed=0)
    at = AsyncTrainer(trainer, ReplayBuffer(40, 4, SHAPE), min_sequences=3, chunk_steps=3)
    with caplog.at_level(logging.WARNING, logger="ledmus"):
        at.submit(0, 0, np.random.default_rng(0).normal(size=(10, *SHAPE)), 0)
        wait_for(lambda: not at.stats["running"])
    msg = "online training failed at update 6: RuntimeError: planted failure"
    assert at.failures == [msg] and msg in caplog.text and at.stats["failures"] == [msg]
    packed = at.latest(0)
    assert packed["version"] == 2 and at.latest(2) is None  # nothing newer after the failure
    last_good = unpack_weights(packed, trainer.model.state_dict(), 0)
    for name, t in trainer.model.state_dict().items():
        assert torch.equal(last_good[name], t), name  # the weights after update 6
    assert at.submit(0, 10, np.zeros((4, *SHAPE)), 0) == 1  # the run goes on
    at.stop()
