"""The lift mapper's member bookkeeping (issue 23, mutation target ``mappers``): a window
that lifts some members only decodes them with their own random streams, and the request
it passes on names the same members.  A stand-in stochastic model adds one uniform draw
of each generator it gets, so which member's stream was used is visible in the state."""

from __future__ import annotations

import numpy as np
import torch

from ledmus.coupler.mappers import Decoder
from ledmus.coupler.messages import WindowRequest
from ledmus.coupler.streams import RNG_MDN, member_torch_generator

SEED, WINDOW = 5, 3


class NoisyModel:
    stochastic_decode = True
    device = "cpu"

    def decode(self, m, generators, n_particles):
        draws = [torch.rand(1, generator=g, dtype=torch.float64).item() for g in generators]
        assert len(draws) == len(m)
        return np.asarray(m) + np.array(draws)[:, None]


def draw(member: int) -> float:
    """Member ``member``'s first draw in window ``WINDOW``, from its own generator."""
    g = member_torch_generator(SEED, member, WINDOW, "cpu", RNG_MDN)
    return torch.rand(1, generator=g, dtype=torch.float64).item()


def request(m, members=None, lift=None) -> WindowRequest:
    return WindowRequest(WINDOW, 30.0, 10, False, m=m, members=members, lift=lift)


def test_a_window_of_all_members_uses_each_members_stream():
    lift = Decoder(NoisyModel(), SEED, [10, 11, 12, 13])
    assert lift.members.dtype == np.int64  # member ids are int64 in every message
    out = lift.handle(request(np.zeros((4, 1))))
    np.testing.assert_array_equal(out.state[:, 0], [draw(k) for k in (10, 11, 12, 13)])
    assert (out.window, out.t0, out.steps, out.include_initial) == (WINDOW, 30.0, 10, False)
    assert out.members is None and out.lift is None and out.lift_s >= 0.0


def test_a_window_lifting_some_members_uses_theirs_and_passes_them_on():
    lift = Decoder(NoisyModel(), SEED, [10, 11, 12, 13])
    members, rows = np.array([0, 1, 3]), np.array([3, 1])  # run 3 members, lift 2 of them
    out = lift.handle(request(np.full((2, 1), 100.0), members, rows))
    np.testing.assert_array_equal(out.state[:, 0], [100.0 + draw(13), 100.0 + draw(11)])
    assert out.members is members and out.lift is rows
    none = lift.handle(request(None, members, rows))  # nothing to lift: the solver's state
    assert none.state is None and none.members is members and none.lift is rows


def test_decode_rows_select_the_members_streams():
    lift = Decoder(NoisyModel(), SEED, np.array([10, 11, 12, 13]))
    m = np.zeros((2, 1))
    np.testing.assert_array_equal(
        lift.decode(m, WINDOW, rows=np.array([2, 0]))[:, 0], [draw(12), draw(10)]
    )
