import math

import pytest
import torch
import torch.nn.functional as F

import pixelrnn
from conftest import ARCHS


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("C", [1, 3])
def test_forward_shapes_and_log_prob(arch, C):
    model = pixelrnn.create_model(arch, channels=C, levels=7, hidden=6, layers=2)
    assert isinstance(model, torch.nn.Module)
    x = torch.randint(0, 7, (3, C, 5, 6))
    logits = model(x)
    assert logits.shape == (3, 7, C, 5, 6)
    logp = model.log_prob(x)
    assert logp.shape == (3,) and logp.dtype == torch.float32
    ref = -F.cross_entropy(logits, x, reduction="none").sum(dim=(1, 2, 3))
    torch.testing.assert_close(logp, ref)
    assert (logp < 0).all()


@pytest.mark.parametrize("arch", ARCHS)
def test_any_size_at_run_time(arch):
    model = pixelrnn.create_model(arch, levels=4, hidden=6, layers=2)
    for H, W in [(28, 28), (32, 32), (20, 36), (1, 1), (1, 9), (9, 1)]:
        x = torch.randint(0, 4, (2, 1, H, W))
        assert model(x).shape == (2, 4, 1, H, W)
        assert torch.isfinite(model.log_prob(x)).all()


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("C,levels", [(1, 256), (3, 256), (1, 2), (3, 17)])
def test_fresh_model_is_near_uniform(arch, C, levels):
    model = pixelrnn.create_model(arch, channels=C, levels=levels, hidden=16, layers=3)
    x = torch.randint(0, levels, (4, C, 12, 12))
    with torch.no_grad():
        bpd = model.bits_per_dim(x).mean().item()
    assert abs(bpd - math.log2(levels)) < 0.3, bpd


@pytest.mark.parametrize("arch", ARCHS)
def test_batch_elements_are_independent_and_deterministic(arch):
    model = pixelrnn.create_model(arch, levels=4, hidden=6, layers=2)
    x = torch.randint(0, 4, (4, 1, 6, 5))
    with torch.no_grad():
        full = model.log_prob(x)
        single = torch.cat([model.log_prob(x[i:i + 1]) for i in range(4)])
    torch.testing.assert_close(full, single, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("arch", ARCHS)
def test_learns_a_fixed_pattern(arch):
    """A few dozen Adam steps on one image drive its NLL far below uniform: gradients flow."""
    torch.manual_seed(0)
    model = pixelrnn.create_model(arch, levels=2, hidden=8, layers=2)
    x = (torch.arange(36).view(1, 1, 6, 6) % 3 == 0).long().repeat(4, 1, 1, 1)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    start = -model.log_prob(x).mean().item()
    for _ in range(60):
        loss = -model.log_prob(x).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.2 * start


@pytest.mark.parametrize("arch", ARCHS)
def test_skip_connections_and_options(arch):
    model = pixelrnn.create_model(arch, channels=3, levels=4, hidden=6, layers=3, skip=True, head=10)
    x = torch.randint(0, 4, (2, 3, 5, 5))
    assert model(x).shape == (2, 4, 3, 5, 5)
    assert model.config.skip and model.config.head == 10
    assert len(model.net.stack.skips) == 3


def test_exact_likelihood_is_normalised_on_tiny_images():
    """Summing p(x) over every possible 2×2 binary image gives 1: the likelihood is exact."""
    import itertools
    for arch in ARCHS:
        model = pixelrnn.create_model(arch, levels=2, hidden=6, layers=2)
        xs = torch.tensor(list(itertools.product([0, 1], repeat=4))).view(16, 1, 2, 2)
        with torch.no_grad():
            total = model.log_prob(xs).double().exp().sum().item()
        assert abs(total - 1) < 1e-5, (arch, total)
    model = pixelrnn.create_model("diagonal_bilstm", channels=3, levels=3, hidden=6, layers=1)
    xs = torch.tensor(list(itertools.product(range(3), repeat=6))).view(-1, 3, 1, 2)
    with torch.no_grad():
        assert abs(model.log_prob(xs).double().exp().sum().item() - 1) < 1e-5


@pytest.mark.parametrize("bad,match", [
    (torch.rand(2, 1, 4, 4), "integer"),
    (torch.zeros(2, 3, 4, 4, dtype=torch.long), "channel"),
    (torch.full((2, 1, 4, 4), 4), r"\[0, 3\]"),
    (torch.full((2, 1, 4, 4), -1), r"\[0, 3\]"),
    (torch.zeros(1, 4, 4, dtype=torch.long), "shape"),
    (torch.zeros(2, 1, 0, 4, dtype=torch.long), "empty"),
])
def test_bad_inputs_raise_value_error(bad, match):
    model = pixelrnn.create_model("row_lstm", levels=4, hidden=6, layers=1)
    with pytest.raises(ValueError, match=match):
        model(bad)
    with pytest.raises(ValueError, match=match):
        model.log_prob(bad)


@pytest.mark.parametrize("kwargs,match", [
    (dict(arch="transformer"), "unknown architecture"),
    (dict(arch="row_lstm", levels=1), "levels"),
    (dict(arch="row_lstm", channels=0), "channels"),
    (dict(arch="row_lstm", channels=3, hidden=2), "hidden"),
    (dict(arch="row_lstm", layers=0), "layers"),
    (dict(arch="row_lstm", kernel=5), "unknown option"),
    (dict(arch="pixelcnn", kernel=4), "kernel"),
    (dict(arch="pixelcnn", hidden=2.5), "hidden"),
    (dict(arch="row_lstm", channels=2), "channels must be 1 .gray. or 3 .RGB."),
    (dict(arch="row_lstm", channels=4, hidden=8), "channels"),
    (dict(arch="row_lstm", levels=65537), r"levels must be in \[2, 65536\]"),
    (dict(arch="row_lstm", head=True), "head"),
    (dict(arch="row_lstm", skip="no"), "skip must be True or False"),
])
def test_bad_model_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        pixelrnn.create_model(**kwargs)


def test_integer_dtypes_accepted():
    model = pixelrnn.create_model("pixelcnn", levels=4, hidden=6, layers=1)
    x = torch.randint(0, 4, (2, 1, 4, 4))
    ref = model.log_prob(x)
    for dt in (torch.uint8, torch.int32, torch.int16, torch.uint16, torch.uint32, torch.uint64):
        torch.testing.assert_close(model.log_prob(x.to(dt)), ref)
    with pytest.raises(ValueError, match=r"\[0, 3\]"):
        model.log_prob(torch.full((1, 1, 2, 2), 2 ** 63 + 5, dtype=torch.uint64))


def test_a_float64_model_stays_float64(tmp_path):
    """log_prob in the model's precision, and save / load keep the dtype (and so log_prob)."""
    model = pixelrnn.create_model("row_lstm", levels=4, hidden=4, layers=1).double()
    x = torch.randint(0, 4, (2, 1, 5, 5))
    lp = model.log_prob(x)
    ref = -torch.nn.functional.cross_entropy(model(x), x, reduction="none").sum(dim=(1, 2, 3))
    assert lp.dtype == torch.float64 and (lp - ref).abs().max() < 1e-12
    pixelrnn.save(model, tmp_path / "m.safetensors")
    again = pixelrnn.load(tmp_path / "m.safetensors")
    assert again.net.first.weight.dtype == torch.float64 and torch.equal(again.log_prob(x), lp)


@pytest.mark.parametrize("arch", ARCHS + ["multiscale"])
def test_dropout_is_a_training_setting(arch):
    torch.manual_seed(0)
    model = pixelrnn.create_model(arch, channels=1, levels=4, hidden=6, layers=2)
    x = torch.randint(0, 4, (3, 1, 6, 6))
    model.eval()
    ref = model.log_prob(x)
    keys = set(model.state_dict())
    assert model.set_dropout(0.5) is model
    assert set(model.state_dict()) == keys and "dropout" not in str(model.config.to_dict())
    assert torch.equal(model.log_prob(x), ref)  # eval mode: no dropout
    model.train()
    torch.manual_seed(1)
    noisy = model.log_prob(x)
    assert not torch.allclose(noisy, ref)
    model.set_dropout(0)
    assert torch.allclose(model.log_prob(x), ref, atol=1e-5)
    for bad in (1.0, -0.1, True, "0.1"):
        with pytest.raises(ValueError, match="dropout"):
            model.set_dropout(bad)


def test_evaluate_checks_its_arguments():
    from pixelrnn.evaluate import evaluate
    model = pixelrnn.create_model("pixelcnn", levels=4, hidden=4, layers=1)
    x = torch.randint(0, 4, (5, 1, 4, 4))
    model.train()
    for kwargs, match in [(dict(images=x.float()), "integer"),
                          (dict(images=x[0]), r"\(N, C, H, W\)"),
                          (dict(images=x, batch_size=0), "batch_size must be a positive integer"),
                          (dict(images=x, batch_size=-2), "batch_size"),
                          (dict(images=x, batch_size=2.5), "batch_size"),
                          (dict(images=x, precision="fp16"), "precision")]:
        with pytest.raises(ValueError, match=match):
            evaluate(model, **kwargs)
        assert model.training  # left as it was
    exact = -model.log_prob(x).double().sum().item() / 5
    for b in (1, 2, 5, 64):
        assert evaluate(model, x.to(torch.uint8), b).nll == pytest.approx(exact, rel=1e-6)
