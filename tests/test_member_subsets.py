"""The macro-model protocol of the latent-RNN models (:class:`RNNPropagation`), member
subsets included: each operation on a subset of members is checked against the whole-
ensemble operation (or a smaller ensemble in the same state), the untouched members
against their earlier state, and the uncertainty of an ensemble propagator against the
network's own calls.

Four propagators: the shipped LED (an LSTM, ``models/led_fhn.pt``), the shipped LED
ensemble with its uncertainty (``models/led_fhn_ens.pt``), and the shipped LED with a
2-layer GRU, alone or as a 3-member Gaussian ensemble, in place of its RNN (the GRU's
hidden state is one tensor, the LSTM's a pair).
"""

from __future__ import annotations

import copy
import functools
from pathlib import Path

import numpy as np
import pytest
import torch

from ledmus.surrogates import load_macro_model
from ledmus.surrogates.ensemble import EnsembleRNN
from ledmus.surrogates.led_macro import LEDMacro
from ledmus.surrogates.macro import MacroModel
from ledmus.surrogates.propagators import LatentRNN

ROOT = Path(__file__).resolve().parent.parent
D = 8  # latent dimension of the shipped FHN models
KINDS = ("lstm", "ensemble", "gru", "gru_ensemble")
ENSEMBLES = ("ensemble", "gru_ensemble")
MIXED = "^whole-ensemble call on a state whose members differ in pending$"
NO_STATE = "^propagate before any assimilate: no state to start from$"

# float32 rounding: the same recurrence on a batch of another size (and a sequence op
# against step ops) rounds differently in the GEMMs; measured <= 2.4e-7 on these O(1)
# latents and hidden states, the bound is ~10 float32 ulp
ATOL = 1e-6
# the ensemble uncertainty is a float32 variance of those latents: the same rounding,
# relative (measured <= 6e-7 relative); 1e-5 is ~100 float32 ulp
RTOL = 1e-5


@functools.cache
def _loaded(kind: str) -> LEDMacro:
    if kind == "ensemble":
        return load_macro_model(ROOT / "models" / "led_fhn_ens.pt")
    model = load_macro_model(ROOT / "models" / "led_fhn.pt")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(7)
        if kind == "gru":
            model.net.rnn = LatentRNN(D, 6, "gru", 2, residual=True)
        elif kind == "gru_ensemble":
            model.net.rnn = EnsembleRNN(D, 4, "gru", 2, True, members=3, head="gaussian", seed=3)
    return model


def fresh(kind: str) -> LEDMacro:
    model = copy.deepcopy(_loaded(kind))
    model.reset()
    return model


def seq(b: int, t: int, seed: int) -> np.ndarray:
    """Restricted micro states ``(b, t, D)`` (float32, as the encoder gives them)."""
    return np.random.default_rng(seed).standard_normal((b, t, D)).astype(np.float32)


def take(snap: dict, rows: list[int]) -> dict:
    """The snapshot of the members ``rows`` alone: a smaller ensemble in their state."""
    out = {
        "hidden": [h[:, rows] for h in snap["hidden"]],
        "z_next": None if snap["z_next"] is None else snap["z_next"][rows],
        "pending": None if snap["pending"] is None else snap["pending"][rows],
    }
    for key in ("has_pending", "spread_next", "free_steps"):
        if key in snap:
            out[key] = snap[key][rows]
    return out


def assert_same(a: dict, b: dict) -> None:
    """Two snapshots equal bit for bit: keys, shapes, dtypes and values (NaN == NaN)."""
    assert a.keys() == b.keys()
    assert len(a["hidden"]) == len(b["hidden"])
    for x, y in zip(a["hidden"], b["hidden"], strict=True):
        np.testing.assert_array_equal(x, y, strict=True)
    for key in a.keys() - {"hidden"}:
        if a[key] is None:
            assert b[key] is None, key
        else:
            np.testing.assert_array_equal(a[key], b[key], err_msg=key, strict=True)


def close_states(a: dict, b: dict, rows_a: list[int], rows_b: list[int]) -> None:
    """Hidden states and predictions of members ``rows_a`` of ``a`` equal those of
    ``rows_b`` of ``b`` to float32 rounding."""
    for x, y in zip(a["hidden"], b["hidden"], strict=True):
        np.testing.assert_allclose(x[:, rows_a], y[:, rows_b], rtol=0, atol=ATOL)
    np.testing.assert_allclose(a["z_next"][rows_a], b["z_next"][rows_b], rtol=0, atol=ATOL)


# ---------------------------------------------------------------------- fresh state
@pytest.mark.parametrize("kind", KINDS)
def test_a_fresh_or_reset_model_has_no_state_and_member_calls_need_one(kind):
    model = fresh(kind)
    assert model.member_subsets is True
    state = (model.hidden, model.z_next, model.pending, model.has_pending, model.spread_next)
    assert all(x is None for x in state)
    # the protocol's call-order flag travels in the snapshot (ledmus.surrogates.macro)
    assert_same(
        model.snapshot(), {"hidden": [], "z_next": None, "pending": None, "assimilated": False}
    )
    with pytest.raises(RuntimeError, match=NO_STATE):
        model.propagate_members(2, [0])
    with pytest.raises(RuntimeError, match=NO_STATE):
        model.revert_members(model.snapshot(), [0])
    # before the first assimilation the model knows the members only from m_seq
    with pytest.raises(RuntimeError, match="^the first assimilation must include every member$"):
        model.assimilate_members(seq(3, 4, 0), [0, 2])
    model.assimilate_members(seq(3, 4, 0), [0, 1, 2])
    model.propagate_members(2, [1])
    model.reset()
    state = (model.hidden, model.z_next, model.pending, model.has_pending, model.spread_next)
    assert all(x is None for x in state)
    with pytest.raises(RuntimeError, match=NO_STATE):
        model.propagate(1)


# ---------------------------------------------------------------------- whole ensemble
@pytest.mark.parametrize("kind", KINDS)
def test_whole_assimilate_and_propagate_are_the_networks_own_calls(kind):
    """assimilate = teacher forcing (forward / forward_spread), propagate = free run from
    its last prediction; an ensemble's uncertainty starts with the prediction's."""
    model = fresh(kind)
    rnn = copy.deepcopy(model.net.rnn)
    warm = seq(3, 5, 1)
    model.assimilate(warm)
    z, unc = model.propagate(4)
    with torch.no_grad():
        w = torch.as_tensor(warm)
        if kind in ENSEMBLES:
            pred, hidden, spread = rnn.forward_spread(w)
            ref, _, ref_unc = rnn.free_run_spread(pred[:, -1], hidden, 4)
        else:
            pred, hidden = rnn(w)
            ref, _ = rnn.free_run(pred[:, -1], hidden, 4)
    # the same calls on the same batch: bit for bit
    np.testing.assert_array_equal(z, ref.numpy(), strict=True)
    if kind in ENSEMBLES:
        assert unc.shape == (3, 4)
        first = spread[:, -1].double().numpy()
        np.testing.assert_array_equal(unc[:, 0], first)
        np.testing.assert_array_equal(unc[:, 1:], ref_unc[:, 1:].double().numpy())
        assert np.isfinite(unc).all() and (unc > 0).all()
    else:
        assert unc is None


@pytest.mark.parametrize("kind", KINDS)
def test_assimilate_records_the_uncertainty_of_its_prediction(kind):
    model = fresh(kind)
    rnn = copy.deepcopy(model.net.rnn)
    warm = seq(3, 5, 2)
    model.assimilate(warm)
    assert model.pending is None and model.has_pending is None
    if kind in ENSEMBLES:
        with torch.no_grad():
            _, _, spread = rnn.forward_spread(torch.as_tensor(warm))
        np.testing.assert_array_equal(model.spread_next, spread[:, -1].double().numpy())
    else:
        assert model.spread_next is None  # no estimate: not an array of NaN


@pytest.mark.parametrize("kind", KINDS)
def test_two_macro_phases_in_a_row_continue_the_free_run_and_its_uncertainty(kind):
    model, twin = fresh(kind), fresh(kind)
    warm = seq(3, 6, 3)
    model.assimilate(warm)
    a, ua = model.propagate(3)
    b, ub = model.propagate(2)
    twin.assimilate(warm)
    whole, uw = twin.propagate(5)
    np.testing.assert_allclose(np.concatenate([a, b], 1), whole, rtol=0, atol=ATOL)
    if kind in ENSEMBLES:
        np.testing.assert_allclose(np.concatenate([ua, ub], 1), uw, rtol=RTOL, atol=0)
    else:
        assert ua is None and ub is None


# ---------------------------------------------------------------------- member subsets
@pytest.mark.parametrize("kind", KINDS)
def test_the_first_member_assimilation_of_every_member_is_the_whole_one(kind):
    model, twin = fresh(kind), fresh(kind)
    warm = seq(3, 5, 4)  # T != B: shapes per member and per step cannot be confused
    model.assimilate_members(warm, [0, 1, 2])
    twin.assimilate(warm)
    snap, ref = model.snapshot(), twin.snapshot()
    assert set(snap) == {"hidden", "z_next", "pending", "has_pending", "spread_next", "assimilated",
                         "free_steps"}  # fmt: skip
    np.testing.assert_array_equal(snap["free_steps"], np.zeros(3, np.int64), strict=True)
    for x, y in zip(snap["hidden"], ref["hidden"], strict=True):
        np.testing.assert_array_equal(x, y, strict=True)  # the same calls: bit for bit
    np.testing.assert_array_equal(snap["z_next"], ref["z_next"], strict=True)
    # nothing pending: the full-tensor form holds zeros for it
    np.testing.assert_array_equal(snap["has_pending"], np.zeros(3, np.int32), strict=True)
    np.testing.assert_array_equal(snap["pending"], np.zeros((3, D), np.float32), strict=True)
    if kind in ENSEMBLES:
        np.testing.assert_array_equal(snap["spread_next"], twin.spread_next, strict=True)
    else:
        np.testing.assert_array_equal(snap["spread_next"], np.full(3, np.nan), strict=True)
    # a whole-ensemble propagation continues from it as from the whole assimilation
    z, unc = model.propagate(4)
    zt, ut = twin.propagate(4)
    np.testing.assert_array_equal(z, zt, strict=True)
    if kind in ENSEMBLES:
        np.testing.assert_array_equal(unc, ut, strict=True)
    else:
        assert unc is None and ut is None


@pytest.mark.parametrize("kind", KINDS)
def test_propagate_members_is_those_rows_of_the_whole_propagation(kind):
    model, twin = fresh(kind), fresh(kind)
    warm = seq(4, 5, 5)
    model.assimilate(warm)
    twin.assimilate(warm)
    spread = None if twin.spread_next is None else twin.spread_next.copy()
    before = model.snapshot()
    rows, others = [3, 1], [0, 2]
    z, unc = model.propagate_members(3, np.array(rows))
    whole, uw = twin.propagate(3)
    assert z.shape == (2, 3, D)
    np.testing.assert_allclose(z, whole[rows], rtol=0, atol=ATOL)
    np.testing.assert_array_equal(z[:, 0], before["z_next"][rows])  # starts at the prediction
    if kind in ENSEMBLES:
        assert unc.shape == (2, 3)
        np.testing.assert_array_equal(unc[:, 0], spread[rows])  # the prediction's own
        np.testing.assert_allclose(unc, uw[rows], rtol=RTOL, atol=0)
    else:
        assert unc is None
    after = model.snapshot()
    np.testing.assert_array_equal(after["has_pending"], np.array([0, 1, 0, 1], np.int32))
    np.testing.assert_array_equal(after["pending"][rows], z[:, -1])
    # the other members keep their state bit for bit
    kept = take(after, others)
    for x, y in zip(kept["hidden"], take(before, others)["hidden"], strict=True):
        np.testing.assert_array_equal(x, y, strict=True)
    np.testing.assert_array_equal(kept["z_next"], before["z_next"][others], strict=True)
    # a two-member model in the members' state: the same batch, bit for bit
    pair = fresh(kind)
    pair.restore(take(before, rows))
    zp, up = pair.propagate(3)
    np.testing.assert_array_equal(z, zp, strict=True)
    if kind in ENSEMBLES:
        np.testing.assert_array_equal(unc[:, 1:], up[:, 1:], strict=True)
    ref = twin.snapshot()  # after the whole propagation: the same hidden and pending rows
    for x, y in zip(after["hidden"], ref["hidden"], strict=True):
        np.testing.assert_allclose(x[:, rows], y[:, rows], rtol=0, atol=ATOL)
    np.testing.assert_allclose(after["pending"][rows], ref["pending"][rows], rtol=0, atol=ATOL)


@pytest.mark.parametrize("kind", KINDS)
def test_macro_phases_of_a_subset_continue_as_the_whole_free_run(kind):
    """One step (the prediction itself, hidden state kept), then two phases of two
    steps: the free run of five steps of those members."""
    model, twin = fresh(kind), fresh(kind)
    warm = seq(3, 5, 6)
    model.assimilate(warm)
    before = model.snapshot()
    spread = None if model.spread_next is None else model.spread_next.copy()
    rows = [2, 0]
    one, u1 = model.propagate_members(1, rows)
    np.testing.assert_array_equal(one[:, 0], before["z_next"][rows], strict=True)
    after = model.snapshot()
    for x, y in zip(after["hidden"], before["hidden"], strict=True):
        np.testing.assert_array_equal(x, y, strict=True)  # one step: no recurrence ran
    np.testing.assert_array_equal(after["pending"][rows], one[:, 0])
    np.testing.assert_array_equal(after["has_pending"], np.array([1, 0, 1], np.int32))
    a, ua = model.propagate_members(2, rows)
    b, ub = model.propagate_members(2, rows)
    twin.assimilate(warm)
    whole, uw = twin.propagate(5)
    np.testing.assert_allclose(np.concatenate([one, a, b], 1), whole[rows], rtol=0, atol=ATOL)
    if kind in ENSEMBLES:
        assert u1.shape == (2, 1)
        np.testing.assert_array_equal(u1[:, 0], spread[rows])
        np.testing.assert_allclose(np.concatenate([u1, ua, ub], 1), uw[rows], rtol=RTOL, atol=0)
    else:
        assert u1 is None and ua is None and ub is None


@pytest.mark.parametrize("kind", KINDS)
def test_assimilate_members_feeds_pending_states_first_and_keeps_the_others(kind):
    """Members 3 and 2 have a pending macro state, 0 has none, 1 is left out: 3 and 2
    continue as the whole ensemble after a macro phase, 0 as after none."""
    warm, micro = seq(4, 5, 7), seq(4, 2, 8)
    model = fresh(kind)
    model.assimilate(warm)
    model.propagate_members(3, [3, 2])
    mid = model.snapshot()
    model.assimilate_members(micro[[3, 0, 2]], np.array([3, 0, 2]))
    after = model.snapshot()
    macro, micro_only, idle = fresh(kind), fresh(kind), fresh(kind)
    for twin in (macro, micro_only, idle):
        twin.assimilate(warm)
    macro.propagate(3)
    macro.assimilate(micro)
    micro_only.assimilate(micro)
    close_states(after, macro.snapshot(), [3, 2], [3, 2])
    close_states(after, micro_only.snapshot(), [0], [0])
    np.testing.assert_array_equal(after["has_pending"], np.zeros(4, np.int32))
    if kind in ENSEMBLES:
        np.testing.assert_allclose(
            after["spread_next"][[3, 2]], macro.spread_next[[3, 2]], rtol=RTOL, atol=0
        )
        np.testing.assert_allclose(
            after["spread_next"][0], micro_only.spread_next[0], rtol=RTOL, atol=0
        )
    assert_same(take(after, [1]), take(mid, [1]))
    # nothing pending now: a whole-ensemble propagation continues every member
    z, unc = model.propagate(2)
    for twin, rows in ((macro, [3, 2]), (micro_only, [0]), (idle, [1])):
        zt, ut = twin.propagate(2)
        np.testing.assert_allclose(z[rows], zt[rows], rtol=0, atol=ATOL)
        if kind in ENSEMBLES:
            np.testing.assert_allclose(unc[rows], ut[rows], rtol=RTOL, atol=0)


@pytest.mark.parametrize("kind", KINDS)
def test_micro_windows_in_a_row_continue_the_teacher_forcing(kind):
    """No member pending (a micro window after a micro window): the subset's RNN reads
    the new window after the last one, as a whole-ensemble assimilation does."""
    warm, micro = seq(3, 5, 23), seq(3, 2, 24)
    model, twin = fresh(kind), fresh(kind)
    model.assimilate(warm)
    twin.assimilate(warm)
    before = model.snapshot()
    model.assimilate_members(micro[[2, 0]], [2, 0])
    twin.assimilate(micro)
    after = model.snapshot()
    close_states(after, twin.snapshot(), [2, 0], [2, 0])
    if kind in ENSEMBLES:
        np.testing.assert_allclose(
            after["spread_next"][[2, 0]], twin.spread_next[[2, 0]], rtol=RTOL, atol=0
        )
    np.testing.assert_array_equal(after["has_pending"], np.zeros(3, np.int32))
    kept = take(after, [1])
    for x, y in zip(kept["hidden"], take(before, [1])["hidden"], strict=True):
        np.testing.assert_array_equal(x, y, strict=True)
    np.testing.assert_array_equal(kept["z_next"], before["z_next"][[1]], strict=True)
    alone = fresh(kind)  # one member alone in the same state: bit for bit
    alone.restore(take(before, [1]))
    alone.assimilate(micro[[1]])
    model.assimilate_members(micro[[1]], [1])
    np.testing.assert_array_equal(model.snapshot()["z_next"][[1]], alone.snapshot()["z_next"])


@pytest.mark.parametrize("kind", KINDS)
def test_one_member_assimilates_and_propagates_as_a_one_member_model(kind):
    warm, micro = seq(3, 5, 9), seq(3, 2, 10)
    model = fresh(kind)
    model.assimilate(warm)
    model.propagate(3)  # every member pending, in the uniform form
    snap = model.snapshot()
    model.assimilate_members(micro[[1]], [1])
    alone = fresh(kind)
    alone.restore(take(snap, [1]))
    alone.assimilate(micro[[1]])
    after, ref = model.snapshot(), alone.snapshot()
    # the same batch of one through the same calls: bit for bit
    for x, y in zip(take(after, [1])["hidden"], ref["hidden"], strict=True):
        np.testing.assert_array_equal(x, y, strict=True)
    np.testing.assert_array_equal(after["z_next"][[1]], ref["z_next"], strict=True)
    if kind in ENSEMBLES:
        np.testing.assert_array_equal(after["spread_next"][[1]], alone.spread_next, strict=True)
    kept = take(after, [0, 2])
    np.testing.assert_array_equal(kept["has_pending"], np.ones(2, np.int32))
    np.testing.assert_array_equal(kept["pending"], snap["pending"][[0, 2]], strict=True)
    for x, y in zip(kept["hidden"], take(snap, [0, 2])["hidden"], strict=True):
        np.testing.assert_array_equal(x, y, strict=True)
    # members differ in pending: whole-ensemble calls are refused and change nothing
    with pytest.raises(RuntimeError, match=MIXED):
        model.propagate(1)
    with pytest.raises(RuntimeError, match=MIXED):
        model.assimilate(micro)
    assert_same(model.snapshot(), after)
    z, unc = model.propagate_members(2, [1])
    za, ua = alone.propagate(2)
    np.testing.assert_array_equal(z, za, strict=True)
    if kind in ENSEMBLES:
        np.testing.assert_array_equal(unc, ua, strict=True)
    else:
        assert unc is None


@pytest.mark.parametrize("kind", KINDS)
def test_whole_calls_resume_once_every_member_or_none_is_pending(kind):
    warm, micro, micro2 = seq(3, 5, 11), seq(3, 2, 12), seq(3, 3, 13)
    model, twin = fresh(kind), fresh(kind)
    model.assimilate(warm)
    twin.assimilate(warm)
    model.propagate_members(3, [2, 0])
    model.propagate_members(3, [1])
    twin.propagate(3)
    model.assimilate(micro)  # every member pending: each feeds its own first
    twin.assimilate(micro)
    assert model.has_pending is None and model.pending is None
    snap = model.snapshot()
    assert "has_pending" not in snap  # the uniform form again
    assert set(snap) <= {"hidden", "z_next", "pending", "spread_next", "assimilated", "free_steps"}
    close_states(snap, twin.snapshot(), [0, 1, 2], [0, 1, 2])
    if kind in ENSEMBLES:
        np.testing.assert_allclose(model.spread_next, twin.spread_next, rtol=RTOL, atol=0)
    model.propagate_members(2, [0, 1, 2])
    model.assimilate_members(micro2[[1]], [1])
    model.assimilate_members(micro2[[2, 0]], [2, 0])  # nothing pending any more
    twin.propagate(2)
    twin.assimilate(micro2)
    z, unc = model.propagate(3)
    zt, ut = twin.propagate(3)
    np.testing.assert_allclose(z, zt, rtol=0, atol=ATOL)
    if kind in ENSEMBLES:
        np.testing.assert_allclose(unc, ut, rtol=RTOL, atol=0)
        np.testing.assert_array_equal(model.has_pending, [True] * 3)
    else:
        assert unc is None
        assert model.has_pending is None
        assert "has_pending" not in model.snapshot()


@pytest.mark.parametrize("kind", KINDS)
def test_revert_members_puts_back_exactly_those_members(kind):
    warm, micro = seq(4, 5, 14), seq(4, 2, 15)
    model, twin = fresh(kind), fresh(kind)
    model.assimilate(warm)
    model.propagate_members(2, [1])
    snap = model.snapshot()  # member 1 pending, the others not
    model.assimilate_members(micro[[1, 3]], [1, 3])
    model.propagate_members(3, [0, 3, 1])
    before = model.snapshot()
    model.revert_members(snap, np.array([3, 1]))
    after = model.snapshot()
    assert_same(take(after, [3, 1]), take(snap, [3, 1]))
    assert_same(take(after, [0, 2]), take(before, [0, 2]))
    twin.restore(snap)
    z, unc = model.propagate_members(2, [1, 3])
    zt, ut = twin.propagate_members(2, [1, 3])
    np.testing.assert_array_equal(z, zt, strict=True)  # the same state and calls
    if kind in ENSEMBLES:
        np.testing.assert_array_equal(unc, ut, strict=True)


@pytest.mark.parametrize("kind", KINDS)
def test_revert_members_to_a_whole_ensemble_snapshot(kind):
    warm, micro = seq(3, 5, 16), seq(3, 2, 17)
    model, twin = fresh(kind), fresh(kind)
    model.assimilate(warm)
    predicted = model.snapshot()  # uniform: predictions, nothing pending
    model.propagate(3)
    propagated = model.snapshot()  # uniform: every member pending, no prediction
    model.assimilate_members(micro[[0, 2]], [0, 2])
    before = model.snapshot()
    model.revert_members(predicted, [2, 0])
    after = model.snapshot()
    back = take(after, [2, 0])
    for x, y in zip(back["hidden"], take(predicted, [2, 0])["hidden"], strict=True):
        np.testing.assert_array_equal(x, y, strict=True)
    np.testing.assert_array_equal(back["z_next"], predicted["z_next"][[2, 0]], strict=True)
    np.testing.assert_array_equal(back["has_pending"], np.zeros(2, np.int32))
    if kind not in ENSEMBLES:
        np.testing.assert_array_equal(back["spread_next"], np.full(2, np.nan), strict=True)
    assert_same(take(after, [1]), take(before, [1]))
    z, _ = model.propagate_members(3, [2, 0])
    twin.assimilate(warm)
    zt, _ = twin.propagate(3)
    np.testing.assert_allclose(z, zt[[2, 0]], rtol=0, atol=ATOL)
    pair = fresh(kind)
    pair.restore(take(predicted, [2, 0]))
    np.testing.assert_array_equal(z, pair.propagate(3)[0], strict=True)  # same batch
    # back to the pending state of member 0: it feeds that state first again
    model.revert_members(propagated, [0])
    back = take(model.snapshot(), [0])
    np.testing.assert_array_equal(back["has_pending"], np.ones(1, np.int32))
    np.testing.assert_array_equal(back["pending"], propagated["pending"][[0]], strict=True)
    for x, y in zip(back["hidden"], take(propagated, [0])["hidden"], strict=True):
        np.testing.assert_array_equal(x, y, strict=True)
    model.assimilate_members(micro[[0]], [0])
    alone = fresh(kind)
    alone.restore(take(propagated, [0]))
    alone.assimilate(micro[[0]])
    np.testing.assert_array_equal(model.snapshot()["z_next"][[0]], alone.snapshot()["z_next"])


@pytest.mark.parametrize("kind", KINDS)
def test_revert_members_of_a_whole_ensemble_state(kind):
    warm, micro = seq(3, 5, 26), seq(3, 2, 27)
    model, macro, idle = fresh(kind), fresh(kind), fresh(kind)
    for m in (model, macro, idle):
        m.assimilate(warm)
    snap = model.snapshot()
    for m in (model, macro):
        m.propagate(2)
        m.assimilate(micro)
    before = model.snapshot()  # uniform: predictions, nothing pending
    model.revert_members(snap, [1])
    after = model.snapshot()
    close_states(after, snap, [1], [1])
    for x, y in zip(take(after, [0, 2])["hidden"], take(before, [0, 2])["hidden"], strict=True):
        np.testing.assert_array_equal(x, y, strict=True)
    np.testing.assert_array_equal(after["z_next"][[0, 2]], before["z_next"][[0, 2]], strict=True)
    np.testing.assert_array_equal(after["has_pending"], np.zeros(3, np.int32))
    z, unc = model.propagate(3)  # nothing pending: the whole ensemble continues
    for twin, rows in ((macro, [0, 2]), (idle, [1])):
        zt, ut = twin.propagate(3)
        np.testing.assert_allclose(z[rows], zt[rows], rtol=0, atol=ATOL)
        if kind in ENSEMBLES:
            np.testing.assert_allclose(unc[rows], ut[rows], rtol=RTOL, atol=0)


@pytest.mark.parametrize("kind", KINDS)
def test_snapshot_of_a_member_state_round_trips_and_continues_bit_for_bit(kind):
    warm, micro = seq(3, 5, 18), seq(3, 2, 19)
    model = fresh(kind)
    model.assimilate_members(warm, np.arange(3))
    model.propagate_members(2, [2, 0])
    snap = model.snapshot()
    kept = copy.deepcopy(snap)
    # the format: full arrays, the flags as integers, the uncertainty as float64
    lstm = kind in ("lstm", "ensemble")
    assert len(snap["hidden"]) == (2 if lstm else 1)
    for h in snap["hidden"]:
        assert h.dtype == np.float32 and h.shape[1] == 3 and h.ndim == 3
    assert snap["z_next"].shape == snap["pending"].shape == (3, D)
    np.testing.assert_array_equal(snap["has_pending"], np.array([1, 0, 1], np.int32), strict=True)
    assert snap["spread_next"].dtype == np.float64 and snap["spread_next"].shape == (3,)
    assert np.isfinite(snap["spread_next"]).all() == (kind in ENSEMBLES)
    # free-run steps since each member's last assimilation (the innovation gain's age)
    np.testing.assert_array_equal(snap["free_steps"], np.array([2, 0, 2]), strict=True)

    def go(m: LEDMacro) -> list:
        m.assimilate_members(micro[[0, 1]], [0, 1])
        a = m.propagate_members(3, [1, 2, 0])
        b = m.propagate_members(2, [2])
        return [x for pair in (a, b) for x in pair]

    first = go(model)
    assert_same(snap, kept)  # a copy: later operations write into the state in place
    model.restore(snap)
    assert_same(model.snapshot(), snap)
    assert model.has_pending.dtype == bool and model.spread_next.dtype == np.float64
    other = fresh(kind)
    other.restore(snap)
    for m in (model, other):
        for x, y in zip(first, go(m), strict=True):
            if x is None:
                assert y is None
            else:
                np.testing.assert_array_equal(x, y, strict=True)
    # a snapshot come back as lists and float32 (a checkpoint format): the same state
    # (the uncertainty is float32-valued, a float32 copy of it is exact)
    plain = {
        "hidden": [h.tolist() for h in snap["hidden"]],
        "z_next": snap["z_next"].tolist(),
        "pending": snap["pending"].tolist(),
        "has_pending": snap["has_pending"].tolist(),
        "spread_next": snap["spread_next"].astype(np.float32),
        "free_steps": snap["free_steps"].tolist(),
    }
    other.restore(plain)
    assert_same(other.snapshot(), snap)


@pytest.mark.filterwarnings("ignore:var\\(\\). degrees of freedom:UserWarning")  # no members
@pytest.mark.parametrize("kind", KINDS)
def test_an_empty_member_subset_changes_nothing(kind):
    model = fresh(kind)
    model.assimilate(seq(3, 5, 20))
    model.propagate_members(2, [1])
    snap = model.snapshot()
    model.assimilate_members(np.zeros((0, 2, D), np.float32), [])
    z, unc = model.propagate_members(3, [])
    assert z.shape == (0, 3, D)
    assert (unc is None) == (kind not in ENSEMBLES)
    if unc is not None:
        assert unc.shape == (0, 3)
    model.revert_members(model.snapshot(), [])
    assert_same(model.snapshot(), snap)


@pytest.mark.parametrize("kind", KINDS)
def test_member_operations_on_a_state_without_hidden_state_start_from_zeros(kind):
    """A restored state of predictions only (no hidden state): the RNN's zero state, as
    the network starts from without one; the member count comes from what is set."""
    model = fresh(kind)
    rnn = copy.deepcopy(model.net.rnn)
    start, micro = seq(3, 1, 21)[:, 0], seq(3, 2, 25)
    model.restore({"hidden": [], "z_next": start, "pending": None})
    model.assimilate_members(micro[[2, 0]], [2, 0])
    with torch.no_grad():
        pred, _ = rnn(torch.as_tensor(micro[[2, 0]]))
    z_next = model.snapshot()["z_next"]
    np.testing.assert_array_equal(z_next[[2, 0]], pred[:, -1].numpy())  # same batch and calls
    np.testing.assert_array_equal(z_next[1], start[1], strict=True)
    model.restore({"hidden": [], "z_next": None, "pending": start})  # a pending state only
    assert model._n_members() == 3
    model.restore({"hidden": [], "z_next": start, "pending": None})
    assert model._n_members() == 3
    z, unc = model.propagate_members(3, [2, 0])
    with torch.no_grad():
        s = torch.as_tensor(start[[2, 0]])
        if kind in ENSEMBLES:
            ref, _, ref_unc = rnn.free_run_spread(s, None, 3)
        else:
            ref, _ = rnn.free_run(s, None, 3)
    np.testing.assert_array_equal(z, ref.numpy(), strict=True)  # same batch, same calls
    if kind in ENSEMBLES:
        np.testing.assert_array_equal(unc[:, 1:], ref_unc[:, 1:].double().numpy())
        assert np.isnan(unc[:, 0]).all()  # no uncertainty was given for the start
    # a hidden state alone still tells the member count
    hidden = model.snapshot()["hidden"]
    model.restore({"hidden": hidden, "z_next": None, "pending": None})
    assert model._n_members() == 3


class Bare(MacroModel):
    """A macro model with only the abstract methods: the protocol's defaults."""

    kind = "bare"

    @classmethod
    def from_network(cls, net):
        return cls()

    def restrict(self, states):
        return states

    def decode(self, m, generators=None, n_particles=None):
        return m

    def reset(self):
        pass

    def assimilate(self, m_seq):
        pass

    def propagate(self, n):
        return np.zeros((1, n, 1)), None

    def snapshot(self):
        return {}

    def restore(self, snap):
        pass

    def get_weights(self):
        return {}

    def set_weights(self, state_dict):
        pass


def test_member_subsets_are_an_ability_of_their_own():
    """A model without the ability has none of its methods and says so in
    ``member_subsets``; LED and the closure ensemble have it; a class that claims the
    ability without its methods cannot be made."""
    from ledmus.surrogates.closure.macro import ClosureMacro
    from ledmus.surrogates.macro import MemberSubsets

    model = Bare()
    assert model.member_subsets is False
    assert model.bind_micro(object()) is None and model.bind_micro(None, backend="numpy") is None
    for name in ("assimilate_members", "propagate_members", "revert_members"):
        assert not hasattr(model, name), name
    assert issubclass(LEDMacro, MemberSubsets) and issubclass(ClosureMacro, MemberSubsets)
    assert fresh("lstm").member_subsets is True

    class Claims(Bare, MemberSubsets):
        pass

    with pytest.raises(TypeError, match="abstract"):
        Claims()


def test_whole_ensemble_snapshot_keeps_the_uncertainty_of_the_prediction():
    """A whole-ensemble snapshot holds the prediction's uncertainty (``spread_next``):
    before the fix its restore gave NaN as the next propagation's first uncertainty."""
    model = fresh("ensemble")
    model.assimilate(seq(3, 5, 22))
    snap = model.snapshot()
    _, unc = model.propagate(3)
    model.restore(snap)
    np.testing.assert_array_equal(model.propagate(3)[1], unc)


def test_revert_members_keeps_the_uncertainty_of_the_other_members():
    """revert_members puts the current state back around the reverted rows: from a
    whole-ensemble state the other members keep the uncertainty of their prediction."""
    warm = seq(3, 5, 28)
    model, twin = fresh("ensemble"), fresh("ensemble")
    model.assimilate(warm)
    twin.assimilate(warm)
    model.revert_members(model.snapshot(), [1])
    _, unc = model.propagate_members(2, [0, 2])
    np.testing.assert_array_equal(unc[:, 0], twin.spread_next[[0, 2]])
