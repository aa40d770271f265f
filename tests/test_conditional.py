"""Class-conditional models: exact per-label distributions, the marginal, Bayes' rule, causality,
sampling and completion with labels, features, save/load, and every bad label."""
import itertools

import pytest
import torch

import pixelrnn
from pixelrnn.understanding import calibration_error, classifier_report
from test_causality import jacobian_mask

ALL = ["pixelcnn", "row_lstm", "diagonal_bilstm", "multiscale"]


def make(arch, C=1, levels=3, classes=3, seed=0, scale=0.3, **kw):
    """A small float64 conditional model with perturbed weights and label vectors (so that the
    labels matter and the conditionals are far from uniform)."""
    torch.manual_seed(seed)
    kw = {"hidden": 6, "layers": 2, **kw}
    model = pixelrnn.create_model(arch, channels=C, levels=levels, classes=classes, **kw).double()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * scale)
    return model.eval()


def all_images(C, H, W, levels):
    return torch.tensor(list(itertools.product(range(levels), repeat=C * H * W))).view(-1, C, H, W)


@pytest.mark.parametrize("arch", ALL)
@pytest.mark.parametrize("C,H,W,levels", [(1, 2, 2, 3), (3, 1, 2, 2)])
def test_every_label_is_a_normalised_distribution_and_the_marginal_is_exact(arch, C, H, W, levels):
    model = make(arch, C, levels, classes=3)
    model.set_prior(torch.tensor([1.0, 2.0, 5.0]))
    x = all_images(C, H, W, levels)
    with torch.no_grad():
        for y in range(3):
            total = model.log_prob(x, y).logsumexp(0).exp().item()
            assert abs(total - 1) < 1e-9, (arch, y, total)
        per_label = torch.stack([model.log_prob(x, y) for y in range(3)], dim=1)  # (N, 3)
        expect = (per_label + model.prior.log()).logsumexp(1)
        torch.testing.assert_close(model.log_prob(x), expect, rtol=0, atol=1e-9)
        assert abs(model.log_prob(x).logsumexp(0).exp().item() - 1) < 1e-9
        # the marginal's per-value conditionals sum to the marginal
        torch.testing.assert_close(model.value_log_probs(x).sum(dim=(1, 2, 3)), expect, rtol=0, atol=1e-9)
        # the labels change the distribution
        assert (per_label[:, 0] - per_label[:, 1]).abs().max() > 1e-3


@pytest.mark.parametrize("arch", ALL)
def test_classify_is_bayes_rule_and_rows_are_normalised(arch):
    model = make(arch, 3, levels=4, classes=4)
    model.set_prior([3, 1, 1, 5])
    x = torch.randint(0, 4, (5, 3, 3, 4), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        post = model.classify(x)
        assert post.shape == (5, 4)
        torch.testing.assert_close(post.logsumexp(1), torch.zeros(5, dtype=post.dtype), rtol=0, atol=1e-12)
        joint = torch.stack([model.log_prob(x, y) for y in range(4)], 1) + model.prior.log()
        torch.testing.assert_close(post, joint - joint.logsumexp(1, keepdim=True), rtol=0, atol=1e-9)


@pytest.mark.parametrize("arch", ["pixelcnn", "row_lstm", "diagonal_bilstm"])
def test_a_label_opens_no_path_to_later_values(arch):
    """Causality of a conditional network under every label: the label's vectors (the terms of
    every layer) leave the logits of value t independent of every value at or after t."""
    C, H, W = 3, 3, 3
    model = make(arch, C, levels=5, classes=3, hidden=12)
    n = C * H * W
    for y in range(3):
        dep = jacobian_mask(model, C, H, W, image_terms=model.labels(torch.tensor([y])).detach())
        assert not (dep & torch.ones(n, n, dtype=torch.bool).triu()).any()
        assert dep.sum() > n  # and the values do see earlier ones


def test_a_label_opens_no_path_in_the_multiscale_model():
    C, H, W = 1, 4, 4
    model = make("multiscale", C, levels=5, classes=2, hidden=8)
    n = C * H * W
    x = torch.randint(0, 5, (1, C, H, W), generator=torch.Generator().manual_seed(2)).expand(n, C, H, W)
    for y in range(2):
        emb = model.small.embed(x).detach().requires_grad_(True)
        logits = model.embedded_logits(emb, torch.full((n,), y)).permute(2, 4, 3, 0, 1)  # (n, L, C, H, W)
        idx = torch.arange(n)
        proj = torch.randn(5, generator=torch.Generator().manual_seed(y), dtype=torch.float64)
        (logits[idx, :, 0, idx // W, idx % W] @ proj).sum().backward()
        dep = emb.grad.reshape(n, n) != 0
        picked = model.picked(H, W)
        order = torch.empty(H, W, dtype=torch.long)  # position of each pixel in the two-stage order
        order[picked] = torch.arange(int(picked.sum()))
        order[~picked] = torch.arange(int(picked.sum()), n)
        o = order.flatten()
        assert not (dep & (o[None, :] >= o[:, None])).any()


@pytest.mark.parametrize("arch", ALL)
@pytest.mark.parametrize("C", [1, 3])
def test_cached_and_naive_conditional_sampling_draw_the_same_images(arch, C):
    model = make(arch, C, levels=4, classes=3)
    g = lambda: torch.Generator().manual_seed(7)  # noqa: E731
    for y in (2, torch.tensor([0, 2, 1]), None):
        a = model.sample(3, 4, 5, y=y, generator=g())
        b = model.sample(3, 4, 5, y=y, generator=g(), method="naive")
        assert torch.equal(a, b), (arch, y)
    # the cached sampler's logits are the teacher-forced ones under the same labels
    y = torch.tensor([0, 2, 1])
    images, logits, _ = model.generate(torch.zeros(3, C, 4, 5, dtype=torch.long), None, y=y,
                                       generator=g(), record=True)
    with torch.no_grad():
        assert (logits - model(images, y)).abs().max() < 1e-10


@pytest.mark.parametrize("arch", ALL)
def test_completion_without_a_label_weighs_every_known_value(arch):
    """y=None: each particle draws a label from the prior, and its weight is the exact
    log-likelihood of ALL known values given that label (so resampling infers the label)."""
    model = make(arch, 1, levels=3, classes=3)
    B, K, H, W = 2, 4, 4, 4
    x = torch.randint(0, 3, (B, 1, H, W), generator=torch.Generator().manual_seed(0))
    known = torch.ones(B, 1, H, W, dtype=torch.bool)
    known[:, :, 2:] = False
    y = torch.tensor([0, 1, 2, 0, 2, 2, 1, 0])  # one per particle
    for method in ("cached", "naive"):
        parts, _, log_w = model.generate(x, known, y=y, weigh_all_known=True, particles=K,
                                         keep_particles=True, generator=torch.Generator().manual_seed(1),
                                         method=method)
        with torch.no_grad():
            lp = model.value_log_probs(parts, y)
        expect = (lp * known.repeat_interleave(K, 0)).sum(dim=(1, 2, 3)).view(B, K)
        torch.testing.assert_close(log_w, expect.double(), rtol=0, atol=1e-8)
    out = model.complete(x, known, torch.Generator().manual_seed(3), 4)
    assert torch.equal(out[known], x[known])
    out = model.complete(x, known, torch.Generator().manual_seed(3), 4, y=1)
    assert torch.equal(out[known], x[known])


def test_completion_infers_the_label_from_the_known_values():
    """A hand-made model whose label 1 draws all ones and label 0 (nearly) all zeros: the
    completion of images whose known top half is ones comes out all ones, though every particle
    draws its label from a uniform prior."""
    model = pixelrnn.create_model("pixelcnn", channels=1, levels=2, hidden=4, layers=1, classes=2).double()
    net, block = model.net, model.net.stack.blocks[0]
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
        model.labels.weight.copy_(torch.tensor([[-8.0] * 4, [8.0] * 4]))  # after the k×k conv: 0 or 8
        block.expand.weight[:, :, 0, 0] = 1.0  # stream: 0 (label 0) or 32 (label 1)
        net.head1.weight[:, :, 0, 0] = torch.eye(8)
        net.head2.weight[1, :, 0, 0] = 1.0  # logit of value 1: 0 or 256 ...
        net.head2.bias.copy_(torch.tensor([0.0, -5.0]))  # ... minus 5
    ones = torch.ones(3, 1, 4, 4, dtype=torch.long)
    known = torch.zeros(4, 4, dtype=torch.bool)
    known[:2] = True
    with torch.no_grad():
        assert model.log_prob(ones, 1).mean() > model.log_prob(ones, 0).mean() + 10
    out = model.complete(ones, known, torch.Generator().manual_seed(0), particles=16)
    assert torch.equal(out, ones)
    out = model.complete(ones, known, torch.Generator().manual_seed(0), particles=16, y=0)
    assert out[:, :, 2:].float().mean() < 0.2  # told the label: the known values do not matter


@pytest.mark.parametrize("arch", ALL)
def test_features_per_layer_and_all_layers(arch):
    model = make(arch, 1, levels=4, classes=2, layers=3)
    x = torch.randint(0, 4, (5, 1, 5, 6), generator=torch.Generator().manual_seed(0))
    every = pixelrnn.features(model, x)
    h2 = 2 * model.config.hidden
    assert every.shape == (5, 4 * h2) and every.dtype == torch.float32
    for layer in range(4):
        torch.testing.assert_close(pixelrnn.features(model, x, layer=layer), every[:, layer * h2:(layer + 1) * h2])
    torch.testing.assert_close(pixelrnn.features(model, x, layer=-1), every[:, 3 * h2:])
    torch.testing.assert_close(pixelrnn.features(model, x, batch_size=2), every, rtol=0, atol=1e-6)
    plain = pixelrnn.create_model(arch, channels=1, levels=4, hidden=6, layers=2)
    assert pixelrnn.features(plain, x).shape == (5, 3 * 12)  # unconditional models too
    for bad in (4, -5, 1.0, True):
        with pytest.raises(ValueError, match="layer must be"):
            pixelrnn.features(model, x, layer=bad)


def test_features_of_large_images_run_fewer_images_at_a_time(monkeypatch):
    """Every layer's output is kept for a whole batch: when that passes FEATURE_VALUES, the
    batch is cut (the features stay the same)."""
    from pixelrnn import understanding
    model = make("row_lstm", 3, levels=4, layers=2)
    x = torch.randint(0, 4, (7, 3, 6, 5), generator=torch.Generator().manual_seed(0))
    every = pixelrnn.features(model, x)
    seen = []
    run = model.layer_outputs
    monkeypatch.setattr(model, "layer_outputs", lambda xb: seen.append(xb.shape[0]) or run(xb))
    per_image = 3 * 2 * model.config.hidden * 6 * 5
    monkeypatch.setattr(understanding, "FEATURE_VALUES", 2 * per_image + 1)
    torch.testing.assert_close(pixelrnn.features(model, x), every, rtol=0, atol=1e-6)
    assert seen == [2, 2, 2, 1]
    seen.clear()
    monkeypatch.setattr(understanding, "FEATURE_VALUES", 1)  # not even one image: one at a time
    torch.testing.assert_close(pixelrnn.features(model, x, layer=1), every[:, 2 * model.config.hidden:4 * model.config.hidden],
                               rtol=0, atol=1e-6)
    assert seen == [1] * 7


@pytest.mark.parametrize("arch", ALL)
def test_save_and_load_keep_classes_prior_and_names(arch, tmp_path):
    model = make(arch, 1, levels=3, classes=3).float()
    model.set_prior([1, 1, 2])
    model.class_names = ["zero", "one", "two"]
    pixelrnn.save(model, tmp_path / "m.safetensors")
    again = pixelrnn.load(tmp_path / "m.safetensors")
    assert again.classes == 3 and again.class_names == ["zero", "one", "two"]
    torch.testing.assert_close(again.prior, torch.tensor([0.25, 0.25, 0.5]))
    x = torch.randint(0, 3, (2, 1, 3, 3))
    with torch.no_grad():
        assert torch.equal(again.log_prob(x, 1), model.log_prob(x, 1))
        assert torch.equal(again.log_prob(x), model.log_prob(x))
    info = pixelrnn.checkpoint.describe(tmp_path / "m.safetensors")
    assert info["config"]["classes"] == 3 and info["class_names"] == ["zero", "one", "two"]


def test_an_unconditional_model_is_unchanged():
    """classes=0 is today's model: no 'classes' key in its config, no label parameters."""
    model = pixelrnn.create_model("row_lstm", channels=1, levels=2, hidden=4, layers=1)
    assert "classes" not in model.config.to_dict()
    assert not any("label" in k or k == "prior" for k in model.state_dict())


@pytest.mark.parametrize("arch", ALL)
def test_bad_labels_are_refused(arch):
    model = make(arch, 1, levels=3, classes=3)
    plain = pixelrnn.create_model(arch, channels=1, levels=3, hidden=6, layers=1)
    x = torch.randint(0, 3, (2, 1, 3, 3))
    with pytest.raises(ValueError, match="unconditional"):
        plain.log_prob(x, torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="unconditional"):
        plain.sample(2, 3, 3, y=1)
    with pytest.raises(ValueError, match="unconditional"):
        plain.classify(x)
    with pytest.raises(ValueError, match=r"labels must be in \[0, 2\]"):
        model.log_prob(x, torch.tensor([0, 3]))
    with pytest.raises(ValueError, match=r"labels must be in \[0, 2\]"):
        model.sample(2, 3, 3, y=-1)
    with pytest.raises(ValueError, match=r"shape \(2,\)"):
        model.log_prob(x, torch.tensor([0, 1, 2]))
    with pytest.raises(ValueError, match="integer"):
        model.log_prob(x, torch.tensor([0.0, 1.0]))
    with pytest.raises(ValueError, match="integer"):
        model.sample(2, 3, 3, y="7")
    with pytest.raises(ValueError, match="need the labels"):
        model(x)
    with pytest.raises(ValueError, match="prior"):
        model.set_prior([1, 2])


def test_the_classifier_report():
    model = make("pixelcnn", 1, levels=3, classes=3)
    x = torch.randint(0, 3, (7, 1, 3, 3), generator=torch.Generator().manual_seed(0))
    labels = torch.tensor([0, 1, 2, 0, 1, 2, 0])
    rep = classifier_report(model, x, labels, batch_size=3)
    post = model.classify(x).detach()
    assert rep["accuracy"] == (post.argmax(1) == labels).double().mean().item()
    assert abs(rep["nll_nats"] + model.log_prob(x).mean().item()) < 1e-9
    assert sum(map(sum, rep["confusion"])) == 7 and len(rep["predictions"]) == 7
    assert rep["predictions"][2]["label"] == 2 and abs(sum(rep["predictions"][2]["probs"]) - 1) < 1e-5
    # calibration: perfectly confident and right -> 0; always 0.5-confident and always right -> 0.5
    assert calibration_error(torch.eye(3), torch.arange(3)) == 0
    half = torch.tensor([[0.5, 0.25, 0.25]] * 4, dtype=torch.float64)
    assert abs(calibration_error(half, torch.zeros(4, dtype=torch.long)) - 0.5) < 1e-12


def test_known_first_is_raster_order_for_one_network_and_never_for_two():
    model = make("row_lstm", C=3, levels=2)
    known = torch.zeros(4, 3, 3, 3, dtype=torch.bool)
    known[0] = True  # all known
    known[1, :, :1] = True  # the top row
    known[1, :1, 1, 0] = True  # ... and the R value of the next pixel
    known[2, :, :, :1] = True  # the left column: (1, 0) is known after the unknown (0, 1)
    known[3, 1:, 0, 0] = True  # G and B of the first pixel, R unknown
    assert model.known_first(known).tolist() == [True, True, False, False]
    assert not make("multiscale", levels=2).known_first(known[:, :1]).any()


@pytest.mark.parametrize("arch", ["pixelcnn", "row_lstm", "diagonal_bilstm"])
def test_completion_with_the_known_values_first_draws_from_the_exact_conditional(arch):
    """y=None and a known top: the label comes from p(y | known values) and the rest given it,
    so one particle draws the marginal model's exact p(unknown | known) (enumerated here)."""
    seed = {"pixelcnn": 0, "row_lstm": 4, "diagonal_bilstm": 3}[arch]  # the top row tells labels apart
    model = make(arch, 1, levels=2, classes=3, scale=0.8, seed=seed)
    with torch.no_grad():
        model.labels.weight.mul_(8)
    H, W = 2, 2
    x = torch.tensor([[[[1, 0], [0, 0]]]])
    known = torch.tensor([[True, True], [False, False]])
    images = all_images(1, H, W, 2)
    fits = (images[:, 0, 0] == x[0, 0, 0]).all(dim=1)
    with torch.no_grad():
        p = model.log_prob(images[fits]).double().softmax(dim=0)  # p(bottom row | top row)
        per_label = torch.stack([model.log_prob(images[fits], k).double().softmax(dim=0) for k in range(3)])
    prior_mix = (model.prior[:, None] * per_label).sum(0)  # what labels from the prior would draw
    assert (p - prior_mix).abs().sum() / 2 > 0.08
    n = 3000
    out = model.complete(x.repeat(n, 1, 1, 1), known, torch.Generator().manual_seed(4))
    assert torch.equal(out[:, :, 0], x[:, :, 0].expand(n, 1, W))
    codes = out[:, 0, 1, 0] * 2 + out[:, 0, 1, 1]
    freq = torch.bincount(codes, minlength=4).double() / n
    expect = p[(images[fits][:, 0, 1, 0] * 2 + images[fits][:, 0, 1, 1]).argsort()]
    assert (freq - expect).abs().max() < 4 * (expect * (1 - expect) / n).sqrt().max() + 1e-3, (freq, expect)
