"""The discretized-logistic-mixture output (``mixtures=K``): an exact distribution over the levels
(sums to one, equals the bin masses of the logistic CDFs), the training path (only the true
values' bins) equals the full distribution, every architecture stays causal with it, and
sampling, completion, checkpoints, compression and the CLI work with it unchanged."""
import json

import numpy as np
import pytest
import torch

import pixelrnn
from conftest import ARCHS
from pixelrnn.compression import compress, decompress, encode, fingerprint
from pixelrnn.nn import mixture_log_prob_at, mixture_log_probs
from pixelrnn.nn.logistic import log_scale_min
from pixelrnn.sampling import generate


def random_params(n, K, scale=3.0, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3 * K, generator=g, dtype=torch.float64) * scale


def reference_log_probs(params, levels, K):
    """The definition, term by term in float64: bin mass of each logistic, the tails in the
    first and last bins, then the weighted sum."""
    logit_pi, mu, log_s = params.split(K, dim=-1)
    pi = logit_pi.softmax(-1)
    s = torch.exp(log_s.clamp_min(log_scale_min(levels)))
    centre = torch.arange(levels, dtype=torch.float64) * 2 / (levels - 1) - 1
    up = torch.sigmoid((centre + 1 / (levels - 1) - mu[..., None]) / s[..., None])  # (n, K, levels)
    lo = torch.sigmoid((centre - 1 / (levels - 1) - mu[..., None]) / s[..., None])
    up[..., -1] = 1.0
    lo[..., 0] = 0.0
    return torch.log((pi[..., None] * (up - lo)).sum(-2))


@pytest.mark.parametrize("levels", [2, 3, 5, 256, 4096])
@pytest.mark.parametrize("K", [1, 4])
def test_mixture_is_a_normalised_distribution_equal_to_the_definition(levels, K):
    params = random_params(200, K, scale=1.0, seed=levels)  # moderate scales: the reference is accurate
    lp = mixture_log_probs(params, levels, K)
    assert lp.shape == (200, levels) and lp.dtype == torch.float64
    assert torch.allclose(lp.exp().sum(-1), torch.ones(200, dtype=torch.float64), atol=1e-12)
    ref = reference_log_probs(params, levels, K).exp()  # (direct, so only accurate in absolute terms)
    assert torch.allclose(lp.exp(), ref, atol=1e-13, rtol=1e-9)


def test_mixture_stays_finite_where_the_direct_formula_cancels():
    """Far in the tails sigmoid(a) - sigmoid(b) rounds to 0 (log = -inf) in the direct formula;
    the log-space identity keeps every bin finite and the total still one."""
    K, levels = 2, 256
    params = torch.zeros(3, 3 * K, dtype=torch.float64)
    params[:, K:2 * K] = torch.tensor([[-1.0, -1.0], [1.0, 1.0], [0.0, 0.0]])  # means
    params[:, 2 * K:] = -7.0  # the narrowest bumps
    lp = mixture_log_probs(params, levels, K)
    assert torch.isfinite(lp).all()
    assert torch.allclose(lp.exp().sum(-1), torch.ones(3, dtype=torch.float64), atol=1e-12)
    assert torch.isinf(reference_log_probs(params, levels, K)).any()  # what it avoids
    # a bump at -1 (scale e^-7, a quarter of a bin) puts sigmoid(4.3) of its mass on value 0
    assert lp[0, 0] == pytest.approx(np.log(torch.sigmoid(torch.tensor(255.0 ** -1 * np.exp(7.0))).item()))
    assert lp[1, -1] == pytest.approx(lp[0, 0].item())
    assert mixture_log_probs(params.float(), levels, K).isfinite().all()  # and in float32


@pytest.mark.parametrize("levels", [2, 7, 256, 65536])
def test_the_training_path_equals_the_full_distribution(levels):
    K = 5
    params = random_params(300, K, seed=1)
    x = torch.randint(0, levels, (300,), generator=torch.Generator().manual_seed(2))
    x[:3] = torch.tensor([0, levels - 1, min(1, levels - 1)])  # the edge bins are special cases
    full = mixture_log_probs(params, levels, K).gather(-1, x[:, None])[:, 0]
    at = mixture_log_prob_at(params, x, levels, K)
    assert torch.allclose(at, full, atol=1e-12, rtol=0)
    p32 = params.float()
    assert torch.allclose(mixture_log_prob_at(p32, x, levels, K),
                          mixture_log_probs(p32, levels, K).gather(-1, x[:, None])[:, 0], atol=1e-4)


def test_one_value_can_take_almost_all_the_mass_at_any_level_count():
    """The narrowest bump stays a fraction of a bin wide also for 16-bit data."""
    for levels in (256, 4096, 65536):
        params = torch.tensor([[0.0, -50.0]], dtype=torch.float64)  # K = 1: mean 0, log-scale clamped
        params = torch.cat([torch.zeros(1, 1, dtype=torch.float64), params], dim=1)
        v = (levels - 1) // 2  # the bin whose centre is nearest 0
        centre = v * 2 / (levels - 1) - 1
        params[0, 1] = centre
        assert mixture_log_probs(params, levels, 1)[0, v].exp() > 0.95, levels


def test_gradients_flow_to_all_parameters():
    params = random_params(50, 3).requires_grad_(True)
    x = torch.randint(0, 256, (50,))
    mixture_log_prob_at(params, x, 256, 3).sum().backward()
    assert torch.isfinite(params.grad).all()
    assert (params.grad.abs().sum(0) > 0).all()  # weights, means and scales all learn


def mixture_model(arch, C=1, levels=5, K=3, hidden=6, layers=2, seed=0, **kw):
    torch.manual_seed(seed)
    model = pixelrnn.create_model(arch, channels=C, levels=levels, hidden=hidden, layers=layers,
                                  mixtures=K, **kw)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.3)
    return model.double().eval()


@pytest.mark.parametrize("arch", ARCHS + ["multiscale"])
@pytest.mark.parametrize("C", [1, 3])
def test_log_prob_matches_the_full_logits(arch, C):
    model = mixture_model(arch, C, levels=7, K=3)
    x = torch.randint(0, 7, (2, C, 5, 6))
    with torch.no_grad():
        full = model(x).log_softmax(1).gather(1, x[:, None])[:, 0]
        lp = model.value_log_probs(x)
        assert torch.allclose(lp, full, atol=1e-12)
        assert torch.allclose(model(x).logsumexp(1), torch.zeros(2, C, 5, 6, dtype=torch.float64), atol=1e-12)
    assert lp.dtype == torch.float64


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("C,H,W", [(1, 4, 5), (3, 3, 4)])
def test_mixture_models_are_causal(arch, C, H, W):
    """Gradient causality through the training path: log p of value t has zero gradient w.r.t.
    the embedding of every value at or after t, and a non-zero one w.r.t. the value just before."""
    n = C * H * W
    dep = torch.zeros(n, n, dtype=torch.bool)
    for seed in range(3):
        model = mixture_model(arch, C, levels=5, K=2, hidden=12, seed=seed)
        x = torch.randint(0, 5, (1, C, H, W), generator=torch.Generator().manual_seed(seed)).expand(n, C, H, W)
        e = model.net.embed(x).detach().requires_grad_(True)
        lp = model.net.log_probs(e, x)  # (n, C, H, W)
        picked = lp.permute(0, 2, 3, 1).reshape(n, n)[torch.arange(n), torch.arange(n)]
        picked.sum().backward()  # row b of the batch: the gradient of value b
        dep |= e.grad.permute(0, 2, 3, 1).reshape(n, n) != 0
    assert not (dep & torch.ones(n, n, dtype=torch.bool).triu()).any()
    assert all(dep[t, t - 1] for t in range(1, n) if not (W > 4 and t % (C * W) == 0))


@pytest.mark.parametrize("arch", ARCHS)
def test_cached_sampling_equals_naive_and_teacher_forcing(arch):
    model = mixture_model(arch, C=3, levels=6)
    for H, W in [(4, 5), (1, 3)]:
        runs = {m: generate(model, torch.zeros(2, 3, H, W, dtype=torch.long), None,
                            generator=torch.Generator().manual_seed(4), method=m, record=True)
                for m in ("naive", "cached")}
        (a, la, _), (b, lb, _) = runs["cached"], runs["naive"]
        assert torch.equal(a, b)
        with torch.no_grad():
            assert (la - model(a)).abs().max() < 1e-10
    known = torch.rand(4, 5) < 0.5
    x = model.sample(2, 4, 5, generator=torch.Generator().manual_seed(5))
    out = model.complete(x, known, torch.Generator().manual_seed(6))
    assert torch.equal(out[..., known], x[..., known])


def test_samples_follow_the_mixture():
    """A one-pixel image: the value histogram of many draws matches the model's distribution."""
    model = mixture_model("pixelcnn", C=1, levels=6, K=2)
    with torch.no_grad():
        p = model(torch.zeros(1, 1, 1, 1, dtype=torch.long)).softmax(1)[0, :, 0, 0, 0]
    s = model.sample(20000, 1, 1, generator=torch.Generator().manual_seed(0)).flatten()
    freq = torch.bincount(s, minlength=6).double() / 20000
    assert (freq - p).abs().max() < 0.015


def test_config_checkpoint_and_fingerprint(tmp_path):
    model = mixture_model("row_lstm", K=4).float()
    assert model.mixtures == 4 and model.config.outputs == 12
    assert model.net.head2.out_channels == 12
    path = tmp_path / "m.safetensors"
    pixelrnn.save(model, path)
    loaded = pixelrnn.load(path)
    assert loaded.config.mixtures == 4 and fingerprint(loaded) == fingerprint(model)
    x = torch.randint(0, 5, (2, 1, 4, 4))
    with torch.no_grad():
        assert torch.equal(loaded.log_prob(x), model.log_prob(x))
    # a categorical model's config has no `mixtures` key: checkpoints and compressed files made
    # before the field existed keep their config and fingerprint
    plain = pixelrnn.create_model("row_lstm", levels=5, hidden=6, layers=2)
    assert "mixtures" not in plain.config.to_dict() and plain.config.mixtures == 0
    assert json.loads(json.dumps(model.config.to_dict()))["mixtures"] == 4
    with pytest.raises(ValueError, match="mixtures"):
        pixelrnn.create_model("row_lstm", mixtures=-1)
    with pytest.raises(ValueError, match="mixtures"):
        pixelrnn.create_model("row_lstm", mixtures=True)


@pytest.mark.parametrize("C,levels", [(1, 256), (3, 16)])
def test_compression_round_trip_and_code_length(C, levels):
    model = mixture_model("pixelcnn", C=C, levels=levels, K=3, layers=1).float()
    images = [model.sample(1, h, w, generator=torch.Generator().manual_seed(h))[0] for h, w in [(5, 6), (1, 1), (3, 4)]]
    data = compress(model, images, chunk=2)
    assert all(torch.equal(a, b.image) for a, b in zip(images, decompress(model, data)))
    x = model.sample(16, 6, 6, generator=torch.Generator().manual_seed(9))
    enc = encode(model, x)
    with torch.no_grad():
        nll_bits = float(-model.log_prob(x).double().sum()) / np.log(2)
    assert enc.nll_bits == pytest.approx(nll_bits, rel=1e-5)


def test_cli_trains_and_refuses_a_conflicting_init(tmp_path, capsys):
    from pixelrnn.cli import main
    out = tmp_path / "run"
    assert main(["train", "--data", "digits", "--arch", "pixelcnn", "--hidden", "4", "--layers", "1",
                 "--mixtures", "2", "--steps", "3", "--batch-size", "4", "--eval-every", "0",
                 "--threads", "1", "--out", str(out)]) == 0
    model = pixelrnn.load(out / "last.safetensors")
    assert model.mixtures == 2
    run = json.loads((out / "config.json").read_text())
    assert run["train"]["mixtures"] == 2 and run["model"]["mixtures"] == 2
    capsys.readouterr()
    assert main(["train", "--data", "digits", "--init", str(out / "last.safetensors"), "--mixtures", "3",
                 "--steps", "1", "--out", str(tmp_path / "ft")]) != 0
    assert "--init takes the architecture from the checkpoint; drop --mixtures" in capsys.readouterr().err
    assert main(["train", "--data", "digits", "--mixtures", "-2", "--steps", "1",
                 "--out", str(tmp_path / "bad")]) != 0
    assert "--mixtures must be an integer >= 0" in capsys.readouterr().err
