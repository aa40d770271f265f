"""Sampling and completion: the cached sampler is exact (same draws as the naive reference, logits
equal to the teacher-forced ones), samples follow the model's distribution, completion keeps the
known values, particles weight by the right likelihood, and bad arguments are clear errors."""
import itertools

import pytest
import torch

import pixelrnn
from conftest import ARCHS
from pixelrnn.sampling import generate
from pixelrnn.sampling.chooser import uniforms


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """These tests run thousands of tiny ops: one thread avoids OpenMP wake-up costs (and a
    shared machine's noise) without changing any result."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def make_model(arch, C=1, levels=5, hidden=6, layers=2, seed=0, scale=0.4, dtype=torch.float64,
               gain=4.0, **kw):
    """A small model with perturbed weights, so that its conditionals are far from uniform."""
    torch.manual_seed(seed)
    model = pixelrnn.create_model(arch, channels=C, levels=levels, hidden=hidden, layers=layers, **kw)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * scale)
        model.net.head2.weight.mul_(gain)  # undo the near-uniform start
    return model.to(dtype)


def run(model, n, H, W, method, seed=1, known=None, x=None, **kw):
    C = model.channels
    values = torch.zeros(n, C, H, W, dtype=torch.long) if x is None else x
    return generate(model, values, known, generator=torch.Generator().manual_seed(seed),
                    method=method, record=True, **kw)


SIZES = [(5, 6), (4, 4), (3, 9), (1, 1), (1, 5), (5, 1), (6, 2)]


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("C", [1, 3])
def test_cached_equals_naive_float64(arch, C):
    model = make_model(arch, C)
    for H, W in SIZES:
        b, lb, _ = run(model, 3, H, W, "naive")
        with torch.no_grad():
            tf = model(b)  # teacher-forced logits of the finished images
        assert (lb - tf).abs().max() < 1e-10
        schedules = [None, "raster"] if arch != "diagonal_bilstm" else [None]
        for schedule in schedules:  # the wavefront schedule (default) and raster order
            a, la, _ = run(model, 3, H, W, "cached", schedule=schedule)
            assert torch.equal(a, b), (arch, C, H, W, schedule)
            assert la.shape == tf.shape == (3, model.levels, C, H, W)
            assert (la - tf).abs().max() < 1e-10, (arch, C, H, W, schedule)


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("kw", [dict(skip=True, head=10), dict(first_kernel=3, layers=3),
                                dict(first_kernel=5), dict(first_kernel=1)])
def test_cached_equals_naive_other_configs(arch, kw):
    for C in (1, 3):
        model = make_model(arch, C, levels=4, **kw)
        a, la, _ = run(model, 2, 3, 6, "cached")
        b, _, _ = run(model, 2, 3, 6, "naive")
        assert torch.equal(a, b), (arch, kw, C)
        with torch.no_grad():
            assert (la - model(a)).abs().max() < 1e-10


@pytest.mark.parametrize("arch", ["row_lstm", "diagonal_bilstm"])
def test_both_forms_of_the_lstm_activation(arch, monkeypatch):
    """Large batches use tanh(x) = 2 sigmoid(2x) - 1 with the g-gate weights doubled; force it."""
    import pixelrnn.sampling.parts as parts
    monkeypatch.setattr(parts, "FAST_TANH_NUMEL", 0)
    for C in (1, 3):
        model = make_model(arch, C, levels=4)
        b, _, _ = run(model, 2, 4, 9, "naive")
        for schedule in ([None, "raster"] if arch == "row_lstm" else [None]):
            a, la, _ = run(model, 2, 4, 9, "cached", schedule=schedule)
            assert torch.equal(a, b)
            with torch.no_grad():
                assert (la - model(a)).abs().max() < 1e-10


@pytest.mark.parametrize("kernel", [1, 5])
def test_pixelcnn_kernel_sizes(kernel):
    for C in (1, 3):
        model = make_model("pixelcnn", C, levels=4, kernel=kernel)
        a, la, _ = run(model, 2, 4, 7, "cached")
        b, _, _ = run(model, 2, 4, 7, "naive")
        assert torch.equal(a, b)
        with torch.no_grad():
            assert (la - model(a)).abs().max() < 1e-10


@pytest.mark.parametrize("arch", ARCHS)
def test_float32_cached_matches_naive_and_teacher_forcing(arch):
    for C, (H, W) in [(1, (6, 7)), (3, (4, 5))]:
        model = make_model(arch, C, levels=7, hidden=8, scale=0.2, dtype=torch.float32)
        a, la, _ = run(model, 4, H, W, "cached")
        b, lb, _ = run(model, 4, H, W, "naive")
        assert la.dtype == torch.float32
        assert torch.equal(a, b)
        with torch.no_grad():
            assert (la - model(a)).abs().max() < 1e-5
        assert (la - lb).abs().max() < 1e-5


@pytest.mark.parametrize("arch", ARCHS)
def test_public_api_same_generator_same_images(arch):
    model = make_model(arch, 3, dtype=torch.float32)
    g = lambda s: torch.Generator().manual_seed(s)  # noqa: E731
    x1 = model.sample(3, height=4, width=5, generator=g(7))
    x2 = model.sample(3, height=4, width=5, generator=g(7), method="naive")
    x3 = model.sample(3, height=4, width=5, generator=g(8))
    assert x1.dtype == torch.int64 and x1.shape == (3, 3, 4, 5)
    assert x1.min() >= 0 and x1.max() < model.levels
    assert torch.equal(x1, x2)
    assert not torch.equal(x1, x3)
    torch.manual_seed(3)
    y1 = model.sample(2, height=3, width=3)  # the global generator
    torch.manual_seed(3)
    assert torch.equal(y1, model.sample(2, height=3, width=3))


def test_one_uniform_per_value_in_raster_order():
    """The draw is inverse-CDF with one torch.rand(n) per value: reproducible by hand for 1×1."""
    model = make_model("row_lstm", 3, levels=4)
    g = torch.Generator().manual_seed(5)
    x = model.sample(6, height=1, width=1, generator=g)
    g = torch.Generator().manual_seed(5)
    expect = torch.zeros(6, 3, 1, 1, dtype=torch.long)
    with torch.no_grad():
        for c in range(3):
            u = torch.rand(6, generator=g).double()
            cdf = model(expect)[:, :, c, 0, 0].double().softmax(-1).cumsum(-1)
            expect[:, c, 0, 0] = (cdf < u[:, None]).sum(-1)
    assert torch.equal(x, expect)


def enumerate_images(C, H, W, levels):
    xs = torch.tensor(list(itertools.product(range(levels), repeat=C * H * W)))
    return xs.view(-1, H, W, C).permute(0, 3, 1, 2).contiguous()  # raster order R,G,B in a pixel


def empirical(samples, all_images):
    index = {tuple(x.flatten().tolist()): k for k, x in enumerate(all_images)}
    counts = torch.zeros(len(all_images), dtype=torch.float64)
    keys = samples.flatten(1).tolist()
    for key in keys:
        counts[index[tuple(key)]] += 1
    return counts / len(keys)


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("C,H,W,levels", [(1, 2, 2, 2), (3, 1, 1, 3)])
def test_samples_follow_the_model_distribution(arch, C, H, W, levels):
    model = make_model(arch, C, levels=levels, scale=0.2, gain=1.0, dtype=torch.float32)
    xs = enumerate_images(C, H, W, levels)
    with torch.no_grad():
        p = model.log_prob(xs).double().exp()
    # a proper distribution, neither degenerate nor uniform
    assert abs(p.sum() - 1) < 1e-5 and p.max() < 0.6 and p.min() * len(p) < 0.9
    samples = model.sample(20000, height=H, width=W, generator=torch.Generator().manual_seed(0))
    tv = 0.5 * (empirical(samples, xs) - p).abs().sum()
    assert tv < 0.02, tv


@pytest.mark.parametrize("arch", ARCHS)
def test_temperature(arch):
    """T divides the logits of every conditional: the sample distribution is the product of the
    tempered conditionals; low T concentrates it; T = 1 is the model."""
    model = make_model(arch, 1, levels=2, scale=0.2, gain=1.0, dtype=torch.float32)
    xs = enumerate_images(1, 2, 2, 2)
    with torch.no_grad():
        logits = model(xs).double()  # (16, 2, 1, 2, 2)
    for T in (0.5, 2.0):
        q = (logits / T).log_softmax(1).gather(1, xs.unsqueeze(1)).sum(dim=(1, 2, 3, 4)).exp()
        samples = model.sample(20000, height=2, width=2, temperature=T,
                               generator=torch.Generator().manual_seed(1))
        emp = empirical(samples, xs)
        assert 0.5 * (emp - q).abs().sum() < 0.02, T
    p = logits.log_softmax(1).gather(1, xs.unsqueeze(1)).sum(dim=(1, 2, 3, 4)).exp()
    cold = model.sample(2000, height=2, width=2, temperature=0.05, generator=torch.Generator().manual_seed(2))
    mode = xs[torch.stack([(logits[k, :, 0].argmax(0) == xs[k, 0]).all() for k in range(16)]).nonzero()[0, 0]]
    assert (cold == mode).flatten(1).all(1).double().mean() > 0.9  # greedy image dominates
    assert p.max() < 0.9
    # a temperature so small that logits / T overflow: still the greedy (argmax) values
    model = make_model(arch, 3, levels=17, dtype=torch.float32)
    for T in (1e-300, 1e-320):
        greedy = model.sample(3, height=3, width=4, temperature=T, generator=torch.Generator().manual_seed(0))
        assert torch.equal(model(greedy).argmax(1), greedy), T


# -- completion ----------------------------------------------------------------------------------

@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("C", [1, 3])
def test_completion_keeps_known_values_and_matches_naive(arch, C, completion_masks):
    model = make_model(arch, C)
    H, W = 5, 6
    x = torch.randint(0, model.levels, (3, C, H, W), generator=torch.Generator().manual_seed(0))
    for name, known in completion_masks(H, W).items():
        for kn in (known, known.expand(3, 1, H, W), known.expand(3, C, H, W)):
            g = torch.Generator().manual_seed(4)
            y = model.complete(x, kn, generator=g)
            full = kn.expand_as(x)
            assert torch.equal(y[full], x[full]), name
            assert y.min() >= 0 and y.max() < model.levels
        y2 = model.complete(x, known, generator=torch.Generator().manual_seed(4), method="naive")
        assert torch.equal(y, y2), name
        # the unknown values really are sampled: they differ from x somewhere
        assert not torch.equal(y, x)


def test_completion_per_channel_mask_and_garbage_in_unknown_positions():
    model = make_model("diagonal_bilstm", 3, dtype=torch.float32)
    x = torch.randint(0, model.levels, (2, 3, 4, 4))
    known = torch.rand(2, 3, 4, 4, generator=torch.Generator().manual_seed(1)) < 0.6
    x_bad = x.masked_fill(~known, 99)  # out of range where unknown: allowed
    y = model.complete(x_bad, known, generator=torch.Generator().manual_seed(0))
    assert torch.equal(y[known], x[known]) and y.max() < model.levels
    y2 = model.complete(x, known, generator=torch.Generator().manual_seed(0))
    assert torch.equal(y, y2)  # the content of unknown positions is ignored


def test_completion_with_everything_known_or_nothing_known():
    model = make_model("row_lstm", 1, dtype=torch.float32)
    x = torch.randint(0, model.levels, (2, 1, 3, 4))
    g = torch.Generator().manual_seed(0)
    assert torch.equal(model.complete(x, torch.ones(3, 4, dtype=torch.bool), generator=g), x)
    y = model.complete(x, torch.zeros(3, 4, dtype=torch.bool), generator=torch.Generator().manual_seed(9))
    assert torch.equal(y, model.sample(2, height=3, width=4, generator=torch.Generator().manual_seed(9)))


@pytest.mark.parametrize("arch", ARCHS)
def test_particle_weights_are_the_likelihood_of_known_values_after_an_unknown(arch):
    model = make_model(arch, 3, levels=4)
    B, K, H, W = 2, 3, 3, 4
    x = torch.randint(0, 4, (B, 3, H, W), generator=torch.Generator().manual_seed(0))
    known = torch.ones(B, 3, H, W, dtype=torch.bool)
    known[0, 1, 1, 1] = False  # image 0: G of pixel (1, 1)
    known[1, :, 0, 2] = False  # image 1: a whole pixel in row 0
    known[1, 2, 2, 0] = False
    values = x.masked_fill(~known, 0)
    for method in ("cached", "naive"):
        images, _, log_w = generate(model, values, known, generator=torch.Generator().manual_seed(1),
                                    method=method, particles=K, keep_particles=True)
        assert log_w.shape == (B, K) and log_w.dtype == torch.float64
        parts = images  # (B*K, C, H, W): every particle
        with torch.no_grad():
            lp = model(parts).log_softmax(1).gather(1, parts.unsqueeze(1)).squeeze(1)  # (B*K, C, H, W)
        raster = torch.arange(3 * H * W).view(H, W, 3).permute(2, 0, 1)  # raster index of (c, i, j)
        kn = known.repeat_interleave(K, 0)
        first_unknown = torch.where(~kn, raster, 10 ** 9).flatten(1).min(1).values
        after = kn & (raster > first_unknown.view(-1, 1, 1, 1))
        expect = (lp * after).sum(dim=(1, 2, 3)).view(B, K)
        torch.testing.assert_close(log_w, expect, rtol=0, atol=1e-9)


@pytest.mark.parametrize("arch,seed", [("pixelcnn", 2), ("row_lstm", 1), ("diagonal_bilstm", 1)])
def test_particles_resample_towards_the_posterior(arch, seed):
    """1×2 binary image, first pixel unknown, second known (x1). Each of K particles draws x0 from
    the prior q = p(x0 = 1) and is weighted by p(x1 | x0); one is kept per image. The chance that
    the kept x0 is 1 is exactly  sum_m Binom(m; K, q) m a / (m a + (K - m) b)  with a = p(x1 | 1),
    b = p(x1 | 0): the prior for K = 1, the posterior p(x0 = 1 | x1) as K grows."""
    from math import comb
    model = make_model(arch, 1, levels=2, scale=0.5, seed=seed, gain=1.0, dtype=torch.float32)
    xs = enumerate_images(1, 1, 2, 2)  # [00, 01, 10, 11]
    with torch.no_grad():
        p = model.log_prob(xs).double().exp().view(2, 2)  # p[x0, x1]
    x1 = int(p.sum(0).argmin())  # condition on the less likely value: far from the prior
    q = float(p[1].sum())
    a, b = float(p[1, x1] / p[1].sum()), float(p[0, x1] / p[0].sum())
    post = q * a / (q * a + (1 - q) * b)
    assert 0.05 < q < 0.95 and abs(post - q) > 0.1, (q, post)
    N = 3000
    x = torch.full((N, 1, 1, 2), x1)
    known = torch.tensor([[False, True]])
    for K in (1, 4, 16):
        expect = sum(comb(K, m) * q ** m * (1 - q) ** (K - m) * m * a / (m * a + (K - m) * b)
                     for m in range(1, K + 1))
        y = model.complete(x, known, generator=torch.Generator().manual_seed(K), particles=K)
        assert (y[:, 0, 0, 1] == x1).all()
        freq = float(y[:, 0, 0, 0].double().mean())
        assert abs(freq - expect) < 4 * (expect * (1 - expect) / N) ** 0.5 + 1e-3, (K, freq, expect)
        if K == 16:
            assert abs(freq - post) < abs(q - post) / 2  # most of the way to the posterior


def test_complete_return_weights_and_particles_one():
    from pixelrnn.sampling import complete
    model = make_model("row_lstm", 1, dtype=torch.float32)
    x = torch.randint(0, model.levels, (2, 1, 3, 3))
    known = torch.ones(3, 3, dtype=torch.bool)
    known[0, 0] = False
    y, w = complete(model, x, known, torch.Generator().manual_seed(0), 1, return_weights=True)
    assert w is None and y.shape == x.shape
    y, w = complete(model, x, known, torch.Generator().manual_seed(0), 4, return_weights=True)
    assert w.shape == (2, 4) and torch.isfinite(w).all() and (w < 0).all()


# -- behaviour -----------------------------------------------------------------------------------

def test_training_flag_restored_and_no_grad():
    model = make_model("diagonal_bilstm", 1, dtype=torch.float32)
    model.train()
    x = model.sample(2, height=3, width=3)
    assert model.training and not x.requires_grad
    model.eval()
    model.complete(x, torch.ones(3, 3, dtype=torch.bool))
    assert not model.training


def test_progress_callback_and_bar(capsys):
    model = make_model("pixelcnn", 3, dtype=torch.float32)
    calls = []
    model.sample(2, height=3, width=4, progress=lambda done, total: calls.append((done, total)))
    assert calls and calls[-1] == (36, 36) and all(t == 36 for _, t in calls)
    assert [d for d, _ in calls] == sorted(d for d, _ in calls)
    model.sample(1, height=2, width=2, progress=True)  # a tqdm bar on stderr


# -- errors --------------------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs,match", [
    (dict(n=0, height=3, width=3), "n"),
    (dict(n=-2, height=3, width=3), "n"),
    (dict(n=2.5, height=3, width=3), "n"),
    (dict(n=2, height=0, width=3), "height"),
    (dict(n=2, height=3, width=-1), "width"),
    (dict(n=2, height=3.0, width=3), "height"),
    (dict(n=2, height=3), "height=H, width=W"),
    (dict(n=2, height=3, width=3, method="fast"), "method"),
    (dict(n=2, height=3, width=3, temperature=0), "temperature"),
    (dict(n=2, height=3, width=3, temperature=-1.0), "temperature"),
    (dict(n=2, height=3, width=3, temperature=float("nan")), "temperature"),
    (dict(n=2, height=3, width=3, generator=5), "generator must be a torch.Generator"),
])
def test_sample_errors(kwargs, match):
    model = make_model("row_lstm", 1, dtype=torch.float32)
    with pytest.raises(ValueError, match=match):
        model.sample(**kwargs)


def test_complete_errors():
    model = make_model("pixelcnn", 3, levels=4, dtype=torch.float32)
    x = torch.randint(0, 4, (2, 3, 4, 5))
    known = torch.ones(2, 1, 4, 5, dtype=torch.bool)
    with pytest.raises(ValueError, match="bool"):
        model.complete(x, known.long())
    with pytest.raises(ValueError, match="broadcastable"):
        model.complete(x, torch.ones(4, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match="broadcastable"):
        model.complete(x, torch.ones(3, 3, 4, 5, dtype=torch.bool))
    with pytest.raises(ValueError, match="known"):
        model.complete(x, [[True]])
    with pytest.raises(ValueError, match="particles"):
        model.complete(x, known, particles=0)
    with pytest.raises(ValueError, match="method"):
        model.complete(x, known, method="magic")
    with pytest.raises(ValueError, match="temperature"):
        model.complete(x, known, temperature=0.0)
    with pytest.raises(ValueError, match="integer"):
        model.complete(x.float(), known)
    with pytest.raises(ValueError, match="channel"):
        model.complete(x[:, :1], known)
    with pytest.raises(ValueError, match=r"\[0, 3\]"):
        model.complete(x.masked_fill(torch.ones_like(x, dtype=torch.bool), 7), known)
    with pytest.raises(ValueError, match="shape"):
        model.complete(x[0], known[0])


@pytest.mark.parametrize("P, n", [(1, 1), (7, 3), (500, 8), (40, 100)])
def test_uniforms_in_one_call_are_the_draws_one_by_one(P, n):
    """The chooser draws every uniform in one call on the CPU: the same numbers, and the same
    generator state afterwards, as one torch.rand(n) per position."""
    g = torch.Generator().manual_seed(P + n)
    one_by_one = torch.stack([torch.rand(n, generator=g) for _ in range(P)])
    after = torch.rand(3, generator=g)
    g = torch.Generator().manual_seed(P + n)
    assert torch.equal(uniforms(P, n, g, "cpu"), one_by_one)
    assert torch.equal(torch.rand(3, generator=g), after)


@pytest.mark.parametrize("arch", ARCHS)
def test_rgb_sampling_costs_about_one_pass_of_the_network(arch, monkeypatch):
    """The pass of colour c computes only colour group c of every layer (sampling/parts.py), so
    sampling RGB images takes about the arithmetic of sampling gray ones with the same network
    sizes (counted matrix products; computing every group in every pass made it 2-3.7x). The
    RGB network's own first layer and head are larger (3 inputs, 3 outputs per pixel): 1.09-1.17x
    here. Counted on the Python pass: the native one (the same products, test_native_sampling.py)
    runs them where the counter cannot see them."""
    from torch.utils.flop_counter import FlopCounterMode
    monkeypatch.setenv("PIXELRNN_NATIVE", "0")
    flops = {}
    for C in (1, 3):
        model = make_model(arch, C, levels=16, hidden=12, layers=3)
        with FlopCounterMode(display=False) as count:
            model.sample(2, 6, 7, generator=torch.Generator().manual_seed(0))
        flops[C] = count.get_total_flops()
    assert flops[3] < 1.3 * flops[1], flops


@pytest.mark.parametrize("arch", ["row_lstm", "diagonal_bilstm"])
def test_an_rgb_engine_must_be_told_the_colour_group(arch):
    """A gray engine's pass (c None) is colour group 0; an RGB engine's gate columns are
    regrouped by colour, so a pass without c would compute the wrong columns: refused."""
    net = make_model(arch, 3).net
    engine = net.sampling_engine(2, 3, 4)
    run = (lambda c: engine.pixel(0, c)) if arch == "diagonal_bilstm" else (lambda c: engine.step(0, 0, 0, c))
    if arch == "diagonal_bilstm":
        engine.start_row(0)
    with torch.inference_mode():
        with pytest.raises(ValueError, match="one colour group per pass"):
            run(None)
        run(0)
    gray = make_model(arch, 1).net.sampling_engine(2, 3, 4)
    with torch.inference_mode():
        if arch == "diagonal_bilstm":
            gray.start_row(0)
            assert torch.equal(gray.pixel(0), gray.pixel(0, 0))
        else:
            assert torch.equal(gray.step(0, 0, 0).clone(), gray.step(0, 0, 0, 0))
