"""The online trainer's weight hand-off, unit by unit (issue 23 item 4): what the macro
side posts to the trainer and to the MUSCLE3 mappers, what it takes from a reply, and what
a mapper does with the weights it gets.  A recording link and a two-tensor model stand in
for the trainer and the LED; every case takes milliseconds, so mutation testing
(``python tools/mutation.py online_handoff``) can run them per mutant.  The whole loop
(acceptance by reconstruction, re-encoding, MUSCLE3 = embedded) is in
tests/test_online_run.py."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

from ledmus.coupler.messages import TrainReply, TrainRequest, Weights
from ledmus.coupler.trainer import Learning, MapperWeights
from ledmus.surrogates.online_async import pack_weights, unpack_weights


class TinyModel:
    """``get_weights`` / ``set_weights`` of two tensors, as LED's."""

    def __init__(self, value: float = 0.0) -> None:
        self.w = {"a": torch.full((2, 3), value, dtype=torch.float64), "b": torch.arange(4)}

    def get_weights(self) -> dict[str, torch.Tensor]:
        return {k: v.clone() for k, v in self.w.items()}

    def set_weights(self, state: dict[str, torch.Tensor]) -> None:
        self.w = {k: v.clone() for k, v in state.items()}


class RecordingLink:
    """A trainer link that records what is posted and answers with queued replies."""

    def __init__(self, shares_model: bool) -> None:
        self.shares_model = shares_model
        self.posted: list[tuple[TrainRequest, Weights]] = []
        self.replies: list[TrainReply] = []

    def post(self, request: TrainRequest, mapper_weights: Weights) -> None:
        self.posted.append((request, mapper_weights))

    def collect(self) -> TrainReply:
        return self.replies.pop(0)


def learning(shares_model: bool = False) -> Learning:
    # members 10, 11, 12 of a larger ensemble; one parameter change at t = 5; dt = 0.5
    return Learning(RecordingLink(shares_model), np.array([10, 11, 12]), np.array([5.0]), 0.5)


def test_queue_tags_rows_with_global_members_and_the_regime_of_the_window_start():
    lr = learning()
    states = np.arange(2 * 3 * 4, dtype=np.float64).reshape(2, 3, 4)
    lr.queue(np.array([0, 2]), 10, states)  # t0 = (10 - 1) * 0.5 = 4.5 < 5: regime 0
    q = lr.queued
    assert q["start"] == 10 and q["regime"] == 0 and q["states"].dtype == np.float32
    np.testing.assert_array_equal(q["members"], [10, 12])
    np.testing.assert_array_equal(q["states"], states.astype(np.float32))
    lr.queue(np.array([1]), 11, states[:1])  # t0 = 5.0: the change time itself counts
    assert lr.queued["regime"] == 1 and list(lr.queued["members"]) == [11]


@pytest.mark.parametrize(
    ("start", "gap", "regime"),
    [(11, 1.0, 1), (11, 1.5, 0), (3, 1.0, 1), (3, 1.5, 0)],  # t0 = 5.0 and t0 = 1.0
)
def test_a_change_time_within_rounding_of_the_window_start_counts(start, gap, regime):
    """A change ``gap`` tolerances after the window's start ``t0``, the tolerance being
    ``1e-9 max(1, |t0|)``: within one it counts as at ``t0`` (the new regime)."""
    t0 = (start - 1) * 0.5
    change = t0 + gap * (1e-9 * max(1.0, abs(t0)))
    lr = Learning(RecordingLink(False), np.array([0]), np.array([change]), 0.5)
    lr.queue(np.array([0]), start, np.zeros((1, 2, 4)))
    assert lr.queued["regime"] == regime


def test_post_sends_the_queued_data_once_and_weights_only_when_new_to_the_mappers():
    lr, model = learning(), TinyModel(1.0)
    lr.queue(np.array([0]), 3, np.zeros((1, 2, 4)))
    lr.post(7, model)
    request, mapper = lr.link.posted[-1]
    assert request.window == 7 and request.start == 3 and lr.queued is None
    assert mapper.version == 0 and mapper.weights is None  # the mappers have version 0
    lr.post(8, model)
    request, _ = lr.link.posted[-1]
    assert request.window == 8 and request.states is None  # nothing queued: no data again
    lr.version = 2  # the macro model took version 2
    lr.post(9, model)
    mapper = lr.link.posted[-1][1]
    assert mapper.version == 2 and mapper.weights is not None and lr.mapper_version == 2
    got = unpack_weights(mapper.weights, model.get_weights(), 1)
    assert all(torch.equal(got[k], model.w[k]) for k in model.w)
    lr.post(10, model)
    assert lr.link.posted[-1][1] == Weights(version=2, weights=None)  # sent once
    lr.mapper_version = -1  # after a resume: the mappers' version is unknown
    lr.post(11, model)
    assert lr.link.posted[-1][1].weights is not None


def test_post_never_packs_weights_for_a_link_that_shares_the_model():
    lr, model = learning(shares_model=True), TinyModel()
    lr.version = 3
    lr.post(0, model)
    assert lr.link.posted[-1][1] == Weights(version=3, weights=None)


def test_collect_checks_the_window_keeps_the_first_waiting_time_and_warns_on_failures(caplog):
    lr, model = learning(), TinyModel()
    packed = pack_weights(model.get_weights(), 1)
    lr.link.replies = [TrainReply(window=4)]
    with pytest.raises(RuntimeError, match="expected the trainer's reply to window 5, got 4"):
        lr.collect(5)
    lr.link.replies = [TrainReply(window=5, version=1, weights=packed)]
    lr.waited = 7
    lr.collect(5)
    assert lr.incoming is lr.reply and lr.waited == 0  # new weights start waiting now
    lr.waited = 3
    newer = TrainReply(window=6, version=2, weights=pack_weights(model.get_weights(), 2))
    lr.link.replies = [newer]
    lr.collect(6)
    assert lr.incoming is newer and lr.waited == 3  # newer weights replace them, same wait
    lr.link.replies = [TrainReply(window=7)]
    lr.collect(7)
    assert lr.incoming is newer and lr.reply.window == 7  # a reply without weights
    lr.link.replies = [TrainReply(window=8, failures=1), TrainReply(window=9, failures=1)]
    with caplog.at_level(logging.WARNING, logger="ledmus.coupler.trainer"):
        lr.collect(8)
        lr.collect(9)  # the same failure count again: no second warning
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == ["online training failed (1); the run goes on with weights version 0"]


def test_a_mapper_takes_any_newer_weights_and_refuses_a_window_it_has_no_weights_for():
    model = TinyModel(0.0)
    mapper = MapperWeights(model)
    mapper.apply(Weights(version=0), "lift")  # its own version: nothing to do
    new = TinyModel(5.0).get_weights()
    mapper.apply(Weights(version=3, weights=pack_weights(new, 3)), "lift")
    assert mapper.version == 3 and all(torch.equal(model.w[k], new[k]) for k in new)
    mapper.apply(Weights(version=3), "lift")  # the same version again, without weights
    older = TinyModel(-1.0).get_weights()  # a resumed run resends its (older) version
    mapper.apply(Weights(version=2, weights=pack_weights(older, 2)), "lift")
    assert mapper.version == 2 and torch.equal(model.w["a"], older["a"])
    with pytest.raises(RuntimeError, match="restrict: the window needs weights version 4, "):
        mapper.apply(Weights(version=4), "restrict")
    assert mapper.version == 2 and torch.equal(model.w["a"], older["a"])
    first = TinyModel(7.0).get_weights()  # a run resumed before any update resends version 0
    mapper.apply(Weights(version=0, weights=pack_weights(first, 0)), "lift")
    assert mapper.version == 0 and torch.equal(model.w["a"], first["a"])
    with pytest.raises(ValueError, match="stale weights version -1 <= -1"):
        mapper.apply(Weights(version=-1, weights=pack_weights(first, -1)), "lift")


class FakeCoordinator:
    """What :meth:`Learning.acceptable` reads: the model, the recorded states, the index,
    the policy's ``n_warm`` and ``max_error``, the lifter's decode and the comparison
    error.  The stand-in comparison error of every member is the model's weight ``a``
    (all its entries are one value), so each weights version has a known error."""

    def __init__(self, error_now: float, max_error: float) -> None:
        from types import SimpleNamespace

        self.model = TinyModel(error_now)
        self.model.restrict = lambda ctx: ctx
        self.recorder = SimpleNamespace(states=np.zeros((2, 20, 3)))
        self.index = 12
        self.schedule = SimpleNamespace(n_warm=5, max_error=max_error)
        self.decoder = SimpleNamespace(decode=lambda z, index, stream: z)
        self.counted: list[str] = []

    def comparison_error(self, rows, decoded, ctx):
        assert decoded.shape == ctx.shape == (2, 5, 3)  # the last n_warm recorded states
        return np.full(len(rows), float(self.model.w["a"][0, 0]))

    def _count(self, cause: str) -> None:
        self.counted.append(cause)


@pytest.mark.parametrize(
    ("now", "new", "max_error", "accepted"),
    [
        (0.02, 0.02, 0.01, True),  # as good as the current weights
        (0.02, 0.03, 0.01, False),  # worse than both
        (0.005, 0.01, 0.01, True),  # worse than the current, but within max_error
        (0.005, 0.0125, 0.01, False),
    ],
)
def test_new_weights_are_taken_only_when_they_reconstruct_no_worse(
    caplog, now, new, max_error, accepted
):
    coord = FakeCoordinator(now, max_error)
    lr = learning()
    lr.incoming = TrainReply(window=3, version=4, weights=pack_weights(TinyModel(new).w, 4))
    with caplog.at_level(logging.INFO, logger="ledmus.coupler.trainer"):
        assert lr.acceptable(coord) is accepted
    assert float(coord.model.w["a"][0, 0]) == now  # the model keeps its weights meanwhile
    if accepted:
        assert lr.incoming is not None and lr.rejected == 0 and coord.counted == []
    else:
        assert lr.incoming is None and lr.rejected == 1
        assert coord.counted == ["weights_rejected"]
        bound = max(max_error, now)
        message = f"weights version 4 rejected: reconstruction NAD {new:.3g} > {bound:.3g}"
        assert [r.getMessage() for r in caplog.records] == [message]
