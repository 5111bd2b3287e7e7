"""The coupler's parts on their own: typed messages, the recorder, the mappers, the
coordinator with a toy macro model (exact for its toy solver), and LED through the
macro-model protocol against explicit RNN calls."""

from __future__ import annotations

import re
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from ledmus.coupler import mappers
from ledmus.coupler.driver import Coordinator
from ledmus.coupler.mappers import Decoder, Restrict
from ledmus.coupler.messages import LiftTally, MicroRequest, MicroResult, Restricted, WindowRequest
from ledmus.coupler.micro import Micro
from ledmus.coupler.recorder import Recorder
from ledmus.coupler.schedule import FixedSchedule
from ledmus.coupler.streams import RNG_LIFT_SOLVER, RNG_MDN, member_torch_generator
from ledmus.solvers.base import Solver
from ledmus.surrogates.checkpoint import read_checkpoint
from ledmus.surrogates.family import FAMILIES, Family, register_family
from ledmus.surrogates.led import LED
from ledmus.surrogates.led_macro import LEDMacro
from ledmus.surrogates.macro import (
    MacroModel,
    PooledRestriction,
    load_macro_model,
    macro_model_class,
)

ROOT = Path(__file__).resolve().parents[1]
DECAY = 0.3  # toy decay rate [1/time]


class Decay(Solver):
    """du/dt = -DECAY u on 4 nodes, stepped exactly (u <- u exp(-DECAY dt))."""

    name = "toy-decay"

    def __init__(self, dt: float = 0.25, dt_coarse: float = 1.0) -> None:
        super().__init__(dt=dt, dt_coarse=dt_coarse)

    @property
    def state_shape(self):
        return (1, 4)

    def params(self):
        return {"dt": self.dt, "dt_coarse": self.dt_coarse}

    def _lift(self, obs, rng):
        return obs.copy()

    def _observe(self, internal):
        return internal.copy()

    def _step(self, internal, t, rng):
        return internal * np.exp(-DECAY * self.dt)


class MeanDecay(MacroModel):
    """Macro state = spatial mean; propagation exact for uniform fields; records what
    it is fed (``fed``) so tests can see the teacher forcing."""

    kind = "toy-mean-decay"

    def __init__(self) -> None:
        self.system, self.state_shape, self.macro_dim = "toy-decay", (1, 4), 1
        self.fed: list[np.ndarray] = []
        self.reset()

    @classmethod
    def from_network(cls, net):
        return cls()

    def restrict(self, states):
        return states.mean(axis=-1).astype(np.float32)

    def decode(self, m, generators=None, n_particles=None):
        return np.repeat(np.asarray(m, dtype=np.float64)[..., None], 4, axis=-1)

    def reset(self):
        self.last = self.pending = None

    def assimilate(self, m_seq):
        seq = m_seq if self.pending is None else np.concatenate([self.pending[:, None], m_seq], 1)
        self.fed.append(seq)
        self.last, self.pending = seq[:, -1], None

    def propagate(self, n):
        k = np.arange(1, n + 1, dtype=np.float64)[None, :, None]
        out = (self.last[:, None].astype(np.float64) * np.exp(-DECAY * k)).astype(np.float32)
        self.pending = out[:, -1]
        return out, None

    def snapshot(self):
        return {"last": self.last, "pending": self.pending}

    def restore(self, snap):
        self.last, self.pending = snap["last"], snap["pending"]

    def get_weights(self):
        return {}

    def set_weights(self, state_dict):
        pass


def toy_run(n_warm=3, n_macro=5, n_micro=2, n_total=20, members=2, keep=True):
    solver = Decay()
    ic = np.ones((members, 1, 4)) * np.arange(1, members + 1)[:, None, None]
    model = MeanDecay()
    lift, micro, restrict = Decoder(model, 0, np.arange(members)), None, Restrict(model)
    micro = Micro(solver, ic, 0, np.arange(members))
    rec = Recorder(members, n_total, (1, 4), 1, keep_states=keep)
    coord = Coordinator(model, lift, FixedSchedule(n_warm, n_macro, n_micro), n_total=n_total,
                        dt=1.0, recorder=rec)  # fmt: skip

    def exchange(request: WindowRequest) -> Restricted:
        return restrict.handle(micro.handle(lift.handle(request)))

    coord.run(exchange)
    return coord, model


def test_toy_coupled_run_follows_the_exact_solution():
    coord, model = toy_run()
    t = np.arange(20.0)
    exact = np.arange(1, 3)[:, None] * np.exp(-DECAY * t)[None, :]  # (B, T)
    # micro steps exact to rounding; macro states are float32 (7 digits)
    np.testing.assert_allclose(coord.recorder.states[:, :, 0, 0], exact, rtol=1e-6)
    np.testing.assert_allclose(coord.recorder.latents[..., 0], exact, rtol=1e-6)
    assert coord.recorder.source[0].tolist() == [0] * 4 + ([1] * 5 + [0] * 2) * 2 + [1] * 2
    assert coord.window == 3 and coord.done


def test_each_micro_window_teacher_forces_the_last_macro_state_first():
    coord, model = toy_run()
    # fed: warm-up (4 states), then [last macro state, 2 micro states] twice
    assert [f.shape[1] for f in model.fed] == [4, 3, 3]
    lat = coord.recorder.latents
    np.testing.assert_array_equal(model.fed[1][:, 0], lat[:, 8])  # index 8: last of macro 4..8
    np.testing.assert_array_equal(model.fed[1][:, 1:], lat[:, 9:11])


def test_lifted_window_starts_at_the_last_macro_time():
    solver = Decay()
    micro = Micro(solver, np.ones((1, 1, 4)), 0, np.arange(1))
    out = micro.handle(MicroRequest(window=1, t0=8.0, steps=2, state=np.full((1, 1, 4), 2.0)))
    np.testing.assert_allclose(out.states[0, :, 0, 0], 2 * np.exp(-DECAY * np.arange(1, 3)))
    with pytest.raises(ValueError, match="continue at t=3 but its state is at t=10"):
        micro.handle(MicroRequest(window=2, t0=3.0, steps=1))


def test_coordinator_snapshot_restore_continues_identically():
    full, _ = toy_run()
    solver, model = Decay(), MeanDecay()
    ic = np.ones((2, 1, 4)) * np.arange(1, 3)[:, None, None]
    lift, micro, restrict = (
        Decoder(model, 0, np.arange(2)),
        Micro(solver, ic, 0, np.arange(2)),
        Restrict(model),
    )

    def exchange(r):
        return restrict.handle(micro.handle(lift.handle(r)))

    coord = Coordinator(model, lift, FixedSchedule(3, 5, 2), n_total=20, dt=1.0,
                        recorder=Recorder(2, 20, (1, 4), 1))  # fmt: skip
    coord.cycle(exchange)
    coord.cycle(exchange)
    snap = coord.snapshot()
    model2 = MeanDecay()
    coord2 = Coordinator(model2, Decoder(model2, 0, np.arange(2)), FixedSchedule(3, 5, 2),
                         n_total=20, dt=1.0, recorder=Recorder(2, 20, (1, 4), 1))  # fmt: skip
    coord2.restore(snap)
    coord2.run(exchange)
    np.testing.assert_array_equal(coord2.recorder.states, full.recorder.states)
    assert coord2.timings.keys() == full.timings.keys()
    # the lift tally carries over (seconds differ between the runs)
    counts = ("lifts", "iterations", "steps", "not_converged")
    assert coord2.lifting.lifts == full.lifting.lifts > 0
    assert [getattr(coord2.lifting, k) for k in counts] == [
        getattr(full.lifting, k) for k in counts
    ]
    with pytest.raises(ValueError, match="lifting snapshot: unknown field 'x'"):
        LiftTally.from_dict({"x": 1})


# ----------------------------------------------------------------- messages
def test_messages_round_trip_and_name_bad_fields():
    req = WindowRequest(window=3, t0=1.5, steps=4, include_initial=False, m=np.ones((2, 8)))
    back = WindowRequest.from_payload(req.to_payload())
    assert back.window == 3 and back.t0 == 1.5 and back.steps == 4 and not back.include_initial
    np.testing.assert_array_equal(back.m, req.m)
    assert WindowRequest.from_payload({**req.to_payload(), "m": None}).m is None
    res = MicroResult.from_payload({"window": 1, "states": np.zeros((1, 2, 3))})
    assert res.micro_s == 0.0 and res.micro_ranks == 1  # defaults
    with pytest.raises(ValueError, match="port init: MicroRequest lacks field 'steps'"):
        MicroRequest.from_payload({"window": 0, "t0": 0.0}, "port init")
    for bad, what in (({"steps": 1.5}, "integer"), ({"t0": "x"}, "number"),
                      ({"include_initial": 1}, "true or false"), ({"state": "abc"}, "numeric")):  # fmt: skip
        with pytest.raises(ValueError, match=what):
            MicroRequest.from_payload({"window": 0, "t0": 0.0, "steps": 1, **bad})
    with pytest.raises(ValueError, match="an array"):
        MicroResult.from_payload({"window": 0, "states": None})
    with pytest.raises(ValueError, match="dict"):
        Restricted.from_payload([1, 2])


def test_message_errors_name_where_class_field_and_the_value():
    ok = {"window": 0, "t0": 0.0, "steps": 1}
    for bad, what in (({"steps": 1.5}, "steps must be an integer, got 1.5"),
                      ({"t0": "x"}, "t0 must be a number, got 'x'"),
                      ({"include_initial": 1}, "include_initial must be true or false, got 1"),
                      ({"state": "abc"}, "state must be a numeric array, got 'abc'")):  # fmt: skip
        with pytest.raises(ValueError, match=f"^port x: MicroRequest.{re.escape(what)}$"):
            MicroRequest.from_payload({**ok, **bad}, "port x")
    nothing = "^message: MicroResult.states must be an array, got None$"  # default ``where``
    with pytest.raises(ValueError, match=nothing):
        MicroResult.from_payload({"window": 0, "states": None})
    with pytest.raises(ValueError, match="^message: MicroRequest lacks field 'window'$"):
        MicroRequest.from_payload({})
    with pytest.raises(ValueError, match="^restrict: expected a dict of fields, got list$"):
        Restricted.from_payload([1, 2], "restrict")


def test_message_fields_are_converted_to_plain_types():
    payload = {"window": np.int32(2), "t0": np.float32(0.5), "steps": 3,
               "include_initial": np.bool_(True), "state": [[1, 2]]}  # fmt: skip
    req = MicroRequest.from_payload(payload)
    assert req.include_initial is True and req.window == 2 and type(req.window) is int
    assert req.t0 == 0.5 and type(req.t0) is float and req.lift_s == 0.0
    assert isinstance(req.state, np.ndarray) and req.state.tolist() == [[1, 2]]
    back = MicroRequest.from_payload({**req.to_payload(), "include_initial": False})
    assert back.include_initial is False
    frozen = np.zeros(3)
    frozen.flags.writeable = False  # received arrays are read-only: the message has a copy
    res = MicroResult.from_payload({"window": 0, "states": frozen})
    assert res.states.flags.writeable and not np.shares_memory(res.states, frozen)


# ----------------------------------------------------------------- recorder
def test_recorder_keeps_sources_per_member_and_accumulates_grid_errors():
    ref = np.arange(2 * 6 * 1 * 4, dtype=float).reshape(2, 6, 1, 4)
    rec = Recorder(2, 6, (1, 4), 1, grid_reference=ref)
    rec.add(0, ref[:, :3] + 1.0, np.zeros((2, 3, 1)), "micro")
    rec.add(3, ref[1:, 3:] - 2.0, np.ones((1, 3, 1)), "macro", members=np.array([False, True]))
    assert rec.source.tolist() == [[0, 0, 0, -1, -1, -1], [0, 0, 0, 1, 1, 1]]
    assert rec.common_source().tolist() == [0, 0, 0, 2, 2, 2]
    np.testing.assert_array_equal(rec.abs_err[:, :3, 0], 1.0)
    np.testing.assert_array_equal(rec.abs_err[1, 3:, 0], 2.0)
    np.testing.assert_array_equal(rec.abs_err[0, 3:, 0], 0.0)
    np.testing.assert_array_equal(rec.states[1, 3:], ref[1, 3:] - 2.0)
    with pytest.raises(ValueError, match="beyond N = 6"):
        rec.add(5, None, np.zeros((2, 2, 1)), "macro")
    assert Recorder(1, 2, (1, 4), 1, decode_macro=False).needs_states is False
    assert np.isnan(Recorder(1, 2, (1, 4), 1, decode_macro=False).states).all()


# ----------------------------------------------------------------- mappers
def test_mappers_refuse_non_finite_values_naming_the_mapper():
    model = MeanDecay()
    with pytest.raises(
        FloatingPointError, match=r"lift \(decoder\): non-finite values in window 7"
    ):
        Decoder(model, 0, np.arange(1)).handle(
            WindowRequest(window=7, t0=0.0, steps=1, include_initial=False, m=np.array([[np.nan]]))
        )
    bad = MicroResult(window=2, states=np.full((1, 1, 1, 4), np.inf))
    with pytest.raises(
        FloatingPointError, match=r"restrict \(encoder\): non-finite values in window 2"
    ):
        Restrict(model).handle(bad)


def test_lift_passes_the_request_through_and_restrict_keeps_the_timings():
    model = MeanDecay()
    out = Decoder(model, 0, np.arange(1)).handle(
        WindowRequest(window=4, t0=2.0, steps=3, include_initial=True, m=np.array([[2.0]]))
    )
    assert (out.window, out.t0, out.steps, out.include_initial) == (4, 2.0, 3, True)
    np.testing.assert_array_equal(out.state, np.full((1, 1, 4), 2.0))
    assert (
        Decoder(model, 0, np.arange(1))
        .handle(WindowRequest(window=0, t0=0.0, steps=1, include_initial=True))
        .state
        is None
    )
    res = Restrict(model).handle(MicroResult(window=1, states=np.ones((1, 2, 1, 4)), micro_s=0.5,
                                             lift_s=0.25, micro_ranks=3))  # fmt: skip
    assert (res.micro_s, res.lift_s, res.micro_ranks, res.window) == (0.5, 0.25, 3, 1)
    np.testing.assert_array_equal(res.m, np.ones((1, 2, 1)))
    given = Restrict(model).handle(MicroResult(window=1, states=np.ones((1, 2, 1, 4))),
                                   m=np.full((1, 2, 1), 5.0))  # fmt: skip
    np.testing.assert_array_equal(given.m, 5.0)


class Sampler(MeanDecay):
    """A stochastic lift: one draw per member from the member's generator."""

    stochastic_decode = True

    def decode(self, m, generators=None, n_particles=None):
        draws = [torch.rand(4, generator=g, dtype=torch.float64).numpy() for g in generators]
        return np.asarray(m, dtype=np.float64)[..., None] + np.stack(draws)[:, None]


class Recording(MeanDecay):
    """Records the arguments of :meth:`lift` and :meth:`restrict`; each takes ``pause`` s."""

    def __init__(self, pause: float = 0.0) -> None:
        super().__init__()
        self.pause, self.lifts, self.restricts = pause, [], 0

    def decode(self, m, generators=None, n_particles=None):
        time.sleep(self.pause)
        self.lifts.append((generators, n_particles))
        return super().decode(m)

    def restrict(self, states):
        time.sleep(self.pause)
        self.restricts += 1
        return super().restrict(states)


def test_deterministic_lift_gets_no_generators_and_the_particle_count():
    model = Recording()
    Decoder(model, 0, np.arange(2), n_particles=7).decode(np.zeros((2, 1)), 0)
    Decoder(model, 0, np.arange(2)).decode(np.zeros((2, 1)), 0)
    assert model.lifts == [(None, 7), (None, None)]


def test_stochastic_decode_draws_the_keyed_stream_of_each_member():
    m, members = np.array([[0.0], [1.0], [2.0]]), np.array([4, 0, 9])
    lift = Decoder(Sampler(), 5, members)

    def expected(window, purpose):  # streams.member_torch_generator keyed by global member
        gens = [member_torch_generator(5, k, window, "cpu", purpose) for k in members]
        return m[:, :, None] + np.stack([torch.rand(4, generator=g, dtype=torch.float64).numpy()
                                         for g in gens])[:, None]  # fmt: skip

    np.testing.assert_array_equal(lift.decode(m, 3), expected(3, RNG_MDN))
    np.testing.assert_array_equal(lift.decode(m, 3, RNG_LIFT_SOLVER), expected(3, RNG_LIFT_SOLVER))
    out = lift.handle(WindowRequest(window=3, t0=0.0, steps=1, include_initial=False, m=m))
    np.testing.assert_array_equal(out.state, expected(3, RNG_MDN))  # the request's window


def test_stochastic_decode_makes_its_generators_on_the_model_device(monkeypatch):
    calls = []

    def recording(seed, member, window, device, purpose=RNG_MDN):
        calls.append((seed, member, window, device, purpose))
        return member_torch_generator(seed, member, window, "cpu", purpose)

    monkeypatch.setattr(mappers, "member_torch_generator", recording)
    model = Sampler()
    model.device = "cuda:1"  # stands for an accelerator (only recorded, never used here)
    Decoder(model, 5, np.array([4, 0])).decode(np.zeros((2, 1)), 3, RNG_LIFT_SOLVER)
    assert calls == [(5, 4, 3, "cuda:1", RNG_LIFT_SOLVER), (5, 0, 3, "cuda:1", RNG_LIFT_SOLVER)]


def test_mapper_timings_measure_the_model_calls():
    pause = 0.02
    model = Recording(pause)
    start = time.perf_counter()
    out = Decoder(model, 0, np.arange(1)).handle(
        WindowRequest(window=0, t0=0.0, steps=1, include_initial=False, m=np.ones((1, 1)))
    )
    assert pause <= out.lift_s <= time.perf_counter() - start
    start = time.perf_counter()
    res = Restrict(model).handle(MicroResult(window=0, states=np.ones((1, 2, 1, 4)), lift_s=9.0))
    assert pause <= res.restrict_s <= time.perf_counter() - start and res.lift_s == 9.0
    # pooled restriction (``m`` given): the model is not asked again
    res = Restrict(model).handle(MicroResult(window=0, states=np.ones((1, 2, 1, 4))),
                                 m=np.ones((1, 2, 1)))  # fmt: skip
    assert model.restricts == 1 and 0.0 <= res.restrict_s < pause


def test_stochastic_decode_draws_per_member_window_and_seed():
    m = np.zeros((3, 1))
    lift = Decoder(Sampler(), 5, np.arange(3))
    a, b = lift.decode(m, 2), lift.decode(m, 2)
    np.testing.assert_array_equal(a, b)  # keyed, not stateful
    assert not np.array_equal(a[0], a[1])  # members independent
    assert not np.array_equal(a, lift.decode(m, 3))  # windows independent
    assert not np.array_equal(a, Decoder(Sampler(), 6, np.arange(3)).decode(m, 2))  # seeds
    # member 2 alone (another MPI rank) draws what it draws in the whole ensemble
    np.testing.assert_array_equal(Decoder(Sampler(), 5, np.array([2])).decode(m[:1], 2)[0], a[2])


# ----------------------------------------------------------------- the protocol
def test_registry_lists_the_kinds_and_led_is_registered():
    assert macro_model_class("led") is LEDMacro and macro_model_class("pca").kind == "pca"
    with pytest.raises(ValueError, match="allowed: .*led"):
        macro_model_class("nope")


def test_macro_model_class_reads_the_family_records(monkeypatch):
    monkeypatch.setattr("ledmus.surrogates.family.FAMILIES", {})
    from ledmus.surrogates import family

    class A(MeanDecay):
        kind = "a"

    class B(MeanDecay):
        kind = "b"

    register_family(Family("b", macro=B))
    register_family(Family("a", macro=A))
    register_family(Family("net-only"))  # no macro model: not coupled, not listed
    assert macro_model_class("b") is B and macro_model_class("a") is A
    with pytest.raises(ValueError, match=r"^unknown macro-model kind 'c'; allowed: a, b$"):
        macro_model_class("c")
    with pytest.raises(ValueError, match=r"^unknown macro-model kind 'net-only'; allowed: a, b$"):
        macro_model_class("net-only")
    assert set(family.FAMILIES) == {"a", "b", "net-only"} and FAMILIES  # the real one untouched


def test_protocol_defaults_read_the_spec_and_have_no_pooled_restriction():
    """The pooled restriction is an ability of its own (:class:`PooledRestriction`):
    ``pooled`` says whether a model derives from it."""
    assert MeanDecay.trained_state({"state_shape": [1, 4]}) == ((1, 4), False)
    assert MeanDecay.trained_state({"state_shape": [9, 2], "particles": True}) == ((9, 2), True)
    model = MeanDecay()
    assert not (model.pooled or model.particles or model.stochastic_decode)
    # an ability of its own: a model without it has none of its methods
    assert not hasattr(model, "pool_features") and not hasattr(model, "restrict_pooled")


def tiny_particle_led(box=1.0, low=-0.5, high=0.5, variational=False, n=40) -> LEDMacro:
    """An untrained particle LED (as tests/test_coupler.py::tiny_particle_model)."""
    torch.manual_seed(0)
    spec = {"system": "ad3d", "state_shape": [n, 3], "box": box,
            "autoencoder": {"kind": "particles", "latent_dim": 4, "layers": 2, "width": 16,
                            "d_p": 8, "md_width": 8, "components": 2, "variational": variational},
            "rnn": {"cell": "lstm", "hidden": 8}}  # fmt: skip
    net = LED(spec)
    net.scaler.fit(np.zeros((1, n, 3)), low=low, high=high)
    return LEDMacro.from_network(net)


def test_led_models_describe_themselves_as_their_checkpoint_spec():
    path = ROOT / "models" / "led_fhn.pt"
    grid, spec = load_macro_model(path), read_checkpoint(path)["spec"]
    assert isinstance(grid, LEDMacro) and grid.system == "fhn" and grid.macro_dim == 8
    assert grid.state_shape == (2, 101) and LEDMacro.trained_state(spec) == ((2, 101), False)
    assert grid.particles is False and grid.stochastic_decode is False and grid.pooled is False
    parts = tiny_particle_led()
    assert parts.system == "ad3d" and parts.macro_dim == 4 and parts.state_shape == (40, 3)
    assert parts.particles is True and parts.stochastic_decode is True and parts.pooled is True
    assert isinstance(parts, PooledRestriction) and not isinstance(grid, PooledRestriction)
    # wrapped directly instead of by from_network, a particle network would decode as a
    # grid and could not pool: refused by name
    with pytest.raises(
        ValueError,
        match=r"^a particle LED network is wrapped by ParticleLEDMacro: build it with "
        r"LEDMacro\.from_network$",
    ):
        LEDMacro(parts.net)
    assert LEDMacro.trained_state(parts.net.spec) == ((40, 3), True)
    no_kind = {"state_shape": [2, 5], "autoencoder": {"latent_dim": 3}}  # kind: mlp default
    assert LEDMacro.trained_state(no_kind) == ((2, 5), False)


def test_load_macro_model_checks_the_system_and_places_the_model():
    path = ROOT / "models" / "led_fhn.pt"
    with pytest.raises(ValueError, match="trained for system 'fhn', not 'ks'"):
        load_macro_model(path, system="ks")
    assert load_macro_model(path, system="fhn").system == "fhn"
    # "meta" stands for an accelerator: weights placed there, nothing computed
    assert load_macro_model(path, device="meta").net.device.type == "meta"


@torch.no_grad()
def test_led_grid_restrict_and_lift_are_the_encoder_and_decoder():
    model = load_macro_model(ROOT / "models" / "led_fhn.pt")
    states = np.random.default_rng(0).uniform(-1, 1, (2, 3, 2, 101))
    m = model.restrict(states)
    assert m.dtype == np.float32 and m.shape == (2, 3, 8)
    np.testing.assert_array_equal(m, model.net.encode(states).numpy())
    x = model.decode(m[:, 0])
    assert x.dtype == np.float64 and x.shape == (2, 2, 101)
    np.testing.assert_array_equal(x, model.net.decode(torch.as_tensor(m[:, 0])).double().numpy())
    seq = model.decode(m)  # (B, T, d): every step decoded alike (float32: rounding only)
    assert seq.dtype == np.float64 and seq.shape == (2, 3, 2, 101)
    for t in range(3):
        np.testing.assert_allclose(seq[:, t], model.decode(m[:, t]), atol=1e-6)


@pytest.mark.parametrize("box, low, high", [(0.5, -0.5, 0.5), (None, -1.0, 1.0)])
@torch.no_grad()
def test_led_particle_lift_draws_per_member_and_clips_to_the_box(box, low, high):
    model = tiny_particle_led(box, low, high)
    half = (box or 1.0) / 2  # the box [-box/2, box/2]; None: unit box
    z = torch.randn(3, 4, generator=torch.Generator().manual_seed(1)).numpy()

    def gens():
        return [torch.Generator().manual_seed(10 + b) for b in range(3)]

    x = model.decode(z, gens(), n_particles=50)
    assert x.dtype == np.float64 and x.shape == (3, 50, 3)
    # reference: the mixture's draws in [0, 1], min-max scaled back by hand, clipped
    sample = model.net.autoencoder.decoder.sample
    x01 = np.stack([sample(torch.as_tensor(z[b : b + 1]), 50, g)[0].double().numpy()
                    for b, g in enumerate(gens())])  # fmt: skip
    ref = low + (high - low) * x01
    assert (np.abs(ref) > half).any()  # the scaled draws leave the box: the clip matters
    np.testing.assert_allclose(x, np.clip(ref, -half, half), rtol=0, atol=1e-12)
    # a member's particles come from its own generator only (another rank's subset)
    np.testing.assert_array_equal(model.decode(z[2:], gens()[2:], 50)[0], x[2])
    assert model.decode(z, gens()).shape == (3, 40, 3)  # default: the training N
    seq = model.decode(np.stack([z, z], axis=1), gens(), 50)  # (B, T, d): T draws
    assert seq.shape == (3, 2, 50, 3) and np.abs(seq).max() <= half
    assert not np.array_equal(seq[:, 0], seq[:, 1])
    for bad in (None, gens()[:2]):
        with pytest.raises(ValueError, match="^lift of particles needs one generator per member$"):
            model.decode(z, bad)


@pytest.mark.parametrize("variational", [False, True])
def test_led_pooled_restriction_of_split_particles_equals_the_full_one(variational):
    model = tiny_particle_led(variational=variational)
    x = np.random.default_rng(2).uniform(-0.5, 0.5, (2, 3, 40, 3))  # (B, T, N, d)
    full = model.restrict(x)
    assert full.shape == (2, 3, 4)
    # two ranks hold 15 and 25 particles: sum features, divide by N, then g
    features = model.pool_features(x[..., :15, :]) + model.pool_features(x[..., 15:, :])
    assert features.dtype == np.float64 and features.shape == (2, 3, 8)
    np.testing.assert_allclose(model.restrict_pooled(features / 40), full, rtol=0, atol=1e-5)
    # one state per member (B, N, d): the sum runs over the particles, not the features
    one = model.pool_features(x[:, 0, :15]) + model.pool_features(x[:, 0, 15:])
    assert one.shape == (2, 8)
    np.testing.assert_allclose(model.restrict_pooled(one / 40), full[:, 0], rtol=0, atol=1e-5)


@torch.no_grad()
def test_two_macro_phases_in_a_row_continue_the_free_run():
    """propagate(3) then propagate(2): the pending last state is fed first, with the
    hidden state, so the five states are those of propagate(5)."""
    torch.set_num_threads(1)
    model = load_macro_model(ROOT / "models" / "led_fhn.pt")
    warm = np.random.default_rng(3).standard_normal((2, 6, 8)).astype(np.float32)
    model.assimilate(warm)
    whole, _ = model.propagate(5)
    model.reset()
    model.assimilate(warm)
    first, _ = model.propagate(3)
    second, _ = model.propagate(2)
    # the same single-step LSTM calls in both: float32 rounding at most
    np.testing.assert_allclose(np.concatenate([first, second], 1), whole, rtol=0, atol=1e-6)


@torch.no_grad()
def test_led_protocol_equals_explicit_rnn_calls():
    torch.set_num_threads(1)
    model = load_macro_model(ROOT / "models" / "led_fhn.pt")
    rnn = model.net.rnn
    gen = torch.Generator().manual_seed(0)
    warm, micro = torch.randn(2, 6, 8, generator=gen), torch.randn(2, 3, 8, generator=gen)
    model.assimilate(warm.numpy())
    z1, unc = model.propagate(4)
    assert unc is None and z1.shape == (2, 4, 8)
    model.assimilate(micro.numpy())
    z2, _ = model.propagate(2)
    # by hand: teacher forcing, free run (feeding predictions), then the last macro
    # state and the micro states teacher-force the RNN
    pred, h = rnn(warm)
    z, out = pred[:, -1], []
    for _ in range(4):
        out.append(z)
        pred, h2 = rnn(z[:, None], h)
        if len(out) < 4:
            z, h = pred[:, 0], h2
    np.testing.assert_allclose(z1, torch.stack(out, 1).numpy(), atol=1e-6)
    pred, h = rnn(torch.cat([torch.as_tensor(z1[:, -1:]), micro], 1), h)
    expected = [pred[:, -1]]
    pred, h = rnn(pred[:, -1:], h)
    expected.append(pred[:, -1])
    # step-by-step vs sequence calls of the same LSTM: float32 rounding only
    np.testing.assert_allclose(z2, torch.stack(expected, 1).numpy(), atol=1e-6)


@torch.no_grad()
def test_led_snapshot_restore_and_set_weights():
    model = load_macro_model(ROOT / "models" / "led_fhn.pt")
    model.assimilate(np.ones((1, 3, 8), dtype=np.float32))
    model.propagate(3)
    snap = model.snapshot()
    a, _ = model.propagate(5)
    model.restore(snap)
    b, _ = model.propagate(5)
    np.testing.assert_array_equal(a, b)
    model.restore(snap)
    weights = model.get_weights()
    model.set_weights({k: v * 0.5 if "readout" in k else v for k, v in weights.items()})
    c, _ = model.propagate(5)
    assert np.abs(c - a).max() > 1e-3
    model.set_weights(weights)
    model.restore(snap)
    np.testing.assert_array_equal(model.propagate(5)[0], a)
    model.reset()
    with pytest.raises(
        RuntimeError, match="^propagate before any assimilate: no state to start from$"
    ):
        model.propagate(1)


@torch.no_grad()
def test_led_snapshot_of_a_prediction_and_of_a_fresh_model():
    model = load_macro_model(ROOT / "models" / "led_fhn.pt")
    fresh = model.snapshot()
    assert fresh == {"hidden": [], "z_next": None, "pending": None, "assimilated": False}
    warm = np.random.default_rng(3).standard_normal((2, 4, 8)).astype(np.float32)
    model.assimilate(warm)
    snap = model.snapshot()  # z_next (the prediction) set, nothing pending
    assert snap["pending"] is None and snap["z_next"].shape == (2, 8)
    n_h = model.net.rnn.rnn.hidden_size
    assert [h.shape for h in snap["hidden"]] == [(1, 2, n_h)] * 2  # LSTM (h, c)
    a, _ = model.propagate(3)
    model.restore(snap)
    np.testing.assert_array_equal(model.propagate(3)[0], a)
    model.restore(fresh)  # back to a fresh model: same as a first assimilate
    with pytest.raises(
        RuntimeError, match="^propagate before any assimilate: no state to start from$"
    ):
        model.propagate(1)
    model.assimilate(warm)
    np.testing.assert_array_equal(model.propagate(3)[0], a)


def test_a_network_without_a_particles_flag_wraps_as_a_grid_model():
    """NetworkMacro reads ``net.particles`` when the network has it (LED) and treats a
    network without it (a plain grid model) as deterministic."""
    from torch import nn

    from ledmus.surrogates.led_macro import NetworkMacro

    class Plain(nn.Module):
        system, state_shape, latent_dim = "fhn", (2, 101), 8

    wrapped = NetworkMacro.from_network(Plain())
    assert wrapped.particles is False and wrapped.stochastic_decode is False
    assert wrapped.pooled is False and wrapped.macro_dim == 8
    # LED picks its particle class only for a network that says it holds particles
    led = LEDMacro.from_network(Plain())
    assert type(led) is LEDMacro and led.pooled is False


# ----------------------------------------------------------------- the MPI launcher
@pytest.mark.parametrize(
    "env,size,rank",
    [({}, 1, 0), ({"PMI_SIZE": "4", "PMI_RANK": "3"}, 4, 3),
     ({"OMPI_COMM_WORLD_SIZE": "2", "OMPI_COMM_WORLD_RANK": "1"}, 2, 1),
     ({"PMI_SIZE": "x", "PMI_RANK": ""}, 1, 0)],
)  # fmt: skip
def test_one_launcher_detector_reads_mpich_and_open_mpi(monkeypatch, env, size, rank):
    """The process count and rank from mpiexec's environment (MPICH/Hydra, Open MPI), the
    one reader both the embedded engine (``world_comm``) and the components' per-rank
    logs use; without a launcher no communicator (mpi4py not needed)."""
    from ledmus.coupler import mpi

    for key in (*mpi._SIZE_VARIABLES, *mpi._RANK_VARIABLES):
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert (mpi.launcher_size(), mpi.launcher_rank()) == (size, rank)
    if size == 1:
        assert mpi.world_comm() is None


# ----------------------------------------------------------------- the call-order guard
class Forgetful(MacroModel):
    """A model that checks no call order itself: propagate on no state would return
    garbage (zeros) silently; the protocol refuses it."""

    kind = "forgetful"
    system, state_shape, macro_dim = "fhn", (2, 4), 3

    def __init__(self) -> None:
        self.reset()

    @classmethod
    def from_network(cls, net):
        return cls()

    def restrict(self, states):
        return np.zeros((*np.shape(states)[:-2], 3), np.float32)

    def decode(self, m, generators=None, n_particles=None):
        return np.zeros((*np.shape(m)[:-1], 2, 4))

    def reset(self):
        self.last = None

    def assimilate(self, m_seq):
        self.last = np.asarray(m_seq)[:, -1]

    def propagate(self, n):
        last = np.zeros((1, 3), np.float32) if self.last is None else self.last
        return np.repeat(last[:, None], n, axis=1), None

    def snapshot(self):
        return {"last": self.last}

    def restore(self, snap):
        self.last = snap["last"]

    def get_weights(self):
        return {}

    def set_weights(self, state_dict):
        pass


def test_the_protocol_checks_the_call_order_once_for_every_model():
    """propagate before assimilate, after reset, and after restoring a snapshot taken
    before any assimilate is one RuntimeError from the base class; a snapshot taken
    after an assimilate restores a model that propagates; a model without the
    member-subset ability has none of its methods."""
    model = Forgetful()
    with pytest.raises(RuntimeError, match="^propagate before any assimilate: no state"):
        model.propagate(2)
    early = model.snapshot()
    assert early == {"last": None, "assimilated": False}
    model.assimilate(np.ones((1, 2, 3), np.float32))
    assert model.propagate(2)[0].shape == (1, 2, 3)
    late = model.snapshot()
    model.restore(early)
    with pytest.raises(RuntimeError, match="no state to start from"):
        model.propagate(1)
    model.restore(late)
    np.testing.assert_array_equal(model.propagate(1)[0], np.ones((1, 1, 3)))
    model.restore({"last": np.ones((1, 3), np.float32)})  # an older snapshot: no flag
    assert model.propagate(1)[0].shape == (1, 1, 3)
    model.reset()
    with pytest.raises(RuntimeError, match="no state to start from"):
        model.propagate(1)
    assert model.member_subsets is False and not hasattr(model, "propagate_members")


def test_the_guard_is_installed_when_a_model_class_is_created():
    """Classes made here, at run time: a subclass overriding the guarded methods (with
    and without calling the overridden ones), a class taking them from a mixin (as the
    LED model takes its RNN state); none has the member-subset ability."""

    class Child(Forgetful):
        def assimilate(self, m_seq):
            super().assimilate(m_seq)

        def propagate(self, n):
            return super().propagate(n)

    class Mixin:
        def assimilate(self, m_seq):
            self.last = np.asarray(m_seq)[:, -1]

        def propagate(self, n):
            return np.zeros((1, n, 3), np.float32), None

        def reset(self):
            self.last = None

    class Mixed(Mixin, Forgetful):
        pass

    class Override(Forgetful):  # its own propagate, not reaching the guarded one
        def propagate(self, n):
            return np.zeros((1, n, 3), np.float32), None

    for cls in (Child, Mixed, Override):
        model = cls()
        with pytest.raises(RuntimeError, match="no state to start from"):
            model.propagate(1)
        model.assimilate(np.ones((1, 2, 3), np.float32))
        assert model.propagate(2)[0].shape == (1, 2, 3)
        assert model.snapshot()["assimilated"] is True
        model.restore(snap={"last": None, "assimilated": False})  # by keyword too
        with pytest.raises(RuntimeError, match="no state to start from"):
            model.propagate(1)
        model.assimilate(np.ones((1, 2, 3), np.float32))
        model.reset()
        with pytest.raises(RuntimeError, match="no state to start from"):
            model.propagate(1)
        assert model.member_subsets is False and not hasattr(model, "propagate_members")


# ----------------------------------------------------------------- the settings record
def test_run_settings_hold_plain_values_and_build_their_solvers_where_used():
    """No field of the run settings is a live object (solvers are built from ``system``
    and ``params`` on use and cached); a pickled copy (what an MPI rank receives)
    carries no solver and builds the same one."""
    import dataclasses
    import pickle

    from ledmus.coupler.settings import validate
    from ledmus.solvers import Solver

    raw = {"model": str(ROOT / "models" / "led_fhn.pt"), "t_warm": 60.0, "t_macro": 50.0,
           "t_micro": 10.0, "t_end": 200.0, "ic": "y05", "param_d_u": 1.1,
           "param_schedule": "{100: {d_u: 1.2}}"}  # fmt: skip
    s = validate(raw)

    def live(value):
        if isinstance(value, Solver):
            return True
        if isinstance(value, dict):
            return any(live(v) for v in value.values())
        if isinstance(value, (list, tuple)):
            return any(live(v) for v in value)
        return dataclasses.is_dataclass(value) and any(
            live(getattr(value, f.name)) for f in dataclasses.fields(value)
        )

    assert not any(live(getattr(s, f.name)) for f in dataclasses.fields(s))
    # one record per part, each of plain values
    assert [f.name for f in dataclasses.fields(s)] == ["micro", "macro", "schedule", "output"]
    assert all(dataclasses.is_dataclass(getattr(s, f.name)) for f in dataclasses.fields(s))
    m = s.micro
    assert m.solver is m.solver and m.solver.params()["d_u"] == 1.1  # built once, cached
    assert s.schedule.dt == m.solver.dt_coarse and s.schedule.n_total == 201
    copy = pickle.loads(pickle.dumps(s))
    assert "solver" not in copy.micro.__dict__ and "schedule_solvers" not in copy.micro.__dict__
    assert copy.micro.solver.params() == m.solver.params()
    ((t, after),) = copy.micro.schedule_solvers
    assert t == 100.0 and after.params()["d_u"] == 1.2 and after.params()["d_v"] == m.solver.d_v
    assert copy == s  # the values, compared field by field
