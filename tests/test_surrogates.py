"""LED networks: shapes, invariance, likelihood training, statefulness, checkpoints."""

import numpy as np
import pytest
import torch

from ledmus.surrogates.checkpoint import load_model, read_checkpoint, save_checkpoint
from ledmus.surrogates.led import LED
from ledmus.surrogates.networks import (
    ConvAutoencoder,
    MixtureDensityDecoder,
    MLPAutoencoder,
    ParticleAutoencoder,
    PermutationInvariantEncoder,
    kl_standard_normal,
)
from ledmus.surrogates.propagators import LatentRNN
from ledmus.surrogates.scalers import Scaler

torch.manual_seed(0)


def test_mlp_and_conv_autoencoder_shapes():
    ae = MLPAutoencoder((2, 101), 8, layers=3, width=100)
    x = torch.randn(5, 2, 101)
    assert ae.encode(x).shape == (5, 8)
    assert ae.decode(ae.encode(x)).shape == (5, 2, 101)
    seq = torch.randn(4, 7, 2, 101)  # leading (B, T) axes pass through
    assert ae.encode(seq).shape == (4, 7, 8)
    conv = ConvAutoencoder((1, 64), 8, channels=(8, 16, 32))
    assert conv.encode(torch.randn(3, 1, 64)).shape == (3, 8)
    assert conv.decode(torch.randn(3, 8)).shape == (3, 1, 64)
    assert conv.encode(torch.randn(2, 5, 1, 64)).shape == (2, 5, 8)
    with pytest.raises(ValueError, match="divisible"):
        ConvAutoencoder((1, 60), 8, channels=(8, 16, 32))


def test_conv_autoencoder_is_translation_equivariant_in_its_features():
    conv = ConvAutoencoder((1, 64), 8, channels=(4, 8))
    x = torch.randn(1, 1, 64)
    shifted = torch.roll(x, 4, dims=-1)  # 4 = pooling factor 2^2: circular padding commutes
    f, g = conv.features(x), conv.features(shifted)
    torch.testing.assert_close(torch.roll(f, 1, dims=-1), g, rtol=1e-5, atol=1e-6)


def test_vae_latent_and_kl():
    vae = MLPAutoencoder((2, 101), 8, variational=True)
    mu, logvar = vae.encode_dist(torch.randn(6, 2, 101))
    assert mu.shape == logvar.shape == (6, 8)
    assert torch.all(kl_standard_normal(mu, logvar) >= 0)
    assert kl_standard_normal(torch.zeros(1, 8), torch.zeros(1, 8)).item() == 0.0


def test_permutation_invariant_encoder_any_order_any_n():
    enc = PermutationInvariantEncoder(3, 8, layers=2, width=32)
    x = torch.rand(2, 500, 3)
    perm = torch.randperm(500)
    torch.testing.assert_close(enc(x), enc(x[:, perm]), rtol=1e-5, atol=1e-6)
    assert enc(torch.rand(2, 37, 3)).shape == (2, 8)  # usable for any N


def test_mixture_density_likelihood_decreases_and_samples_stay_in_box():
    gen = torch.Generator().manual_seed(1)
    # two clusters in the unit square, strongly correlated inside each
    n = 2000
    t = torch.rand(n, generator=gen)
    a = torch.stack([0.2 + 0.1 * t, 0.3 + 0.1 * t], 1) + 0.01 * torch.randn(n, 2, generator=gen)
    b = torch.stack([0.7 + 0.05 * torch.randn(n, generator=gen), 0.8 - 0.1 * t], 1)
    data = torch.cat([a, b]).clamp(0.01, 0.99)[None]  # (1, 2n, 2)
    mdn = MixtureDensityDecoder(4, 2, components=3, layers=2, width=32)
    z = torch.zeros(1, 4)
    opt = torch.optim.Adam(mdn.parameters(), lr=1e-2)
    losses = []
    for _ in range(300):
        opt.zero_grad()
        loss = -mdn.log_prob(z, data).mean()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] - 1.0  # nats per particle: the fit is real, not noise
    assert all(np.diff(np.convolve(losses, np.ones(25) / 25, "valid"))[::25] < 0.05)
    sample = mdn.sample(z, 4000, generator=torch.Generator().manual_seed(0))
    assert sample.shape == (1, 4000, 2)
    assert torch.all((sample >= 0) & (sample <= 1))
    # the samples reproduce the two clusters' masses (half each) to a few per cent
    frac_b = (sample[0, :, 0] > 0.45).float().mean().item()
    assert abs(frac_b - 0.5) < 0.05


def test_particle_autoencoder_decodes_particles_in_the_box():
    ae = ParticleAutoencoder((100, 3), 8, layers=2, width=32, components=2)
    z = ae.encode(torch.rand(4, 100, 3))
    x = ae.decode(z, generator=torch.Generator().manual_seed(0))
    assert x.shape == (4, 100, 3) and torch.all((x >= 0) & (x <= 1))
    assert ae.decode(z, n_particles=40).shape == (4, 40, 3)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_rnn_is_stateful_across_chunks(cell):
    rnn = LatentRNN(8, hidden=16, cell=cell)
    z = torch.randn(3, 20, 8)
    whole, _ = rnn(z)
    first, hidden = rnn(z[:, :12])
    second, _ = rnn(z[:, 12:], hidden)
    torch.testing.assert_close(torch.cat([first, second], 1), whole)
    assert rnn.readout.bias is None  # eq 16: z = W h
    out, _ = rnn.free_run(whole[:, -1], hidden, 5)
    assert out.shape == (3, 5, 8)
    with pytest.raises(ValueError, match="lstm, gru"):
        LatentRNN(8, cell="rnn")


def test_scaler_standard_and_minmax():
    rng = np.random.default_rng(0)
    data = rng.normal([[3.0], [-1.0]], [[2.0], [0.5]], (500, 2, 50))
    s = Scaler("standard", 2, 0).fit(data)
    x = s.transform(torch.as_tensor(data))
    torch.testing.assert_close(
        x.mean(dim=(0, 2)), torch.zeros(2, dtype=torch.float64), atol=1e-12, rtol=0
    )
    torch.testing.assert_close(
        x.std(dim=(0, 2), unbiased=False), torch.ones(2, dtype=torch.float64)
    )
    torch.testing.assert_close(s.inverse(x), torch.as_tensor(data))
    p = Scaler("minmax", 3, 1).fit(rng.uniform(-0.5, 0.5, (10, 100, 3)), low=-0.5, high=0.5)
    torch.testing.assert_close(p.transform(torch.tensor([[[-0.5, 0.0, 0.5]]], dtype=torch.float64)),
                               torch.tensor([[[0.0, 0.5, 1.0]]], dtype=torch.float64))  # fmt: skip


def _spec(system="fhn"):
    return {"system": system, "state_shape": [2, 101], "box": None,
            "autoencoder": {"kind": "mlp", "latent_dim": 4, "layers": 2, "width": 16, "scaler": "standard"},
            "rnn": {"cell": "gru", "hidden": 8, "layers": 1}}  # fmt: skip


def test_checkpoint_round_trip_and_refusals(tmp_path):
    model = LED(_spec())
    model.scaler.fit(np.random.default_rng(0).normal(size=(20, 2, 101)))
    path = save_checkpoint(
        tmp_path / "m.pt", model, config={"system": "fhn", "data": "x"}, fingerprint="abc"
    )
    loaded, payload = load_model(path, system="fhn")
    states = np.random.default_rng(1).normal(size=(3, 5, 2, 101))
    torch.testing.assert_close(
        loaded.forecast_latent(states, 7), model.eval().forecast_latent(states, 7)
    )
    assert payload["fingerprint"] == "abc" and payload["config"] == {"system": "fhn", "data": "x"}
    torch.testing.assert_close(loaded.scaler.shift, model.scaler.shift)

    with pytest.raises(ValueError, match="trained for system 'fhn', not 'ks'"):
        load_model(path, system="ks")
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint" * 10)
    with pytest.raises(ValueError, match="corrupted"):
        load_model(tmp_path / "bad.pt")
    truncated = path.read_bytes()[: path.stat().st_size // 2]
    (tmp_path / "cut.pt").write_bytes(truncated)
    with pytest.raises(ValueError, match="corrupted"):
        load_model(tmp_path / "cut.pt")
    payload = read_checkpoint(path)
    payload["format_version"] = 99
    torch.save(payload, tmp_path / "future.pt")
    with pytest.raises(ValueError, match="format version 99"):
        load_model(tmp_path / "future.pt")
    torch.save({"weights": 1}, tmp_path / "foreign.pt")
    with pytest.raises(ValueError, match="not a ledmus checkpoint"):
        load_model(tmp_path / "foreign.pt")
    with pytest.raises(ValueError, match="does not exist"):
        load_model(tmp_path / "missing.pt")
