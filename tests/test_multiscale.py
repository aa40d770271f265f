"""Multi-Scale PixelRNN: an exact, normalized likelihood (small image + conditional network),
causal conditional part, any image size, checkpoints, two-stage cached sampling identical to the
naive reference, completion with particles, the CLI, and clear errors."""
import itertools
import json

import pytest
import torch
import torch.nn.functional as F

import pixelrnn
from pixelrnn.cli import main

BASES = ["row_lstm", "diagonal_bilstm", "pixelcnn"]


pytestmark = pytest.mark.usefixtures("one_thread")


def make_model(base, C=1, levels=4, hidden=6, layers=2, factor=2, seed=0, scale=0.4,
               dtype=torch.float64, gain=3.0, **kw):
    """A small model with perturbed weights (context path included), far from uniform."""
    torch.manual_seed(seed)
    model = pixelrnn.create_model("multiscale", base=base, factor=factor, channels=C, levels=levels,
                                  hidden=hidden, layers=layers, **kw)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * scale)
        model.small.head2.weight.mul_(gain)
        model.cond.head2.weight.mul_(gain)
    return model.to(dtype)


def enumerate_images(C, H, W, levels):
    xs = torch.tensor(list(itertools.product(range(levels), repeat=C * H * W)))
    return xs.view(-1, H, W, C).permute(0, 3, 1, 2).contiguous()


def picked_values(C, H, W, f):
    """bool (C*H*W,) in raster order (row, col, channel): the value belongs to the small image."""
    m = torch.zeros(H, W, C, dtype=torch.bool)
    m[::f, ::f] = True
    return m.flatten()


# -- the likelihood ------------------------------------------------------------------------------

@pytest.mark.parametrize("base", BASES)
@pytest.mark.parametrize("C,H,W,levels,factor", [(1, 2, 2, 2, 2), (1, 2, 3, 2, 2), (1, 1, 3, 2, 2),
                                                 (1, 3, 1, 2, 2), (3, 1, 2, 2, 2), (1, 2, 4, 2, 3)])
def test_probabilities_of_all_images_sum_to_one(base, C, H, W, levels, factor):
    model = make_model(base, C, levels=levels, factor=factor, scale=0.3, gain=1.5)
    xs = enumerate_images(C, H, W, levels)
    with torch.no_grad():
        lp = -F.cross_entropy(model(xs), xs, reduction="none").sum(dim=(1, 2, 3))  # float64
        torch.testing.assert_close(model.log_prob(xs), lp, rtol=0, atol=1e-10)  # in the model's float64
    p = lp.exp()
    assert abs(float(p.sum()) - 1) < 1e-12
    assert p.max() < 0.95 and p.min() * len(p) < 0.9  # neither degenerate nor uniform


@pytest.mark.parametrize("base", BASES)
def test_log_prob_is_small_plus_conditional_and_cross_entropy(base):
    """5×7 with factor 2 (not divisible): log p(x) = log p_small(x[::2, ::2]) + the conditional
    log-probs of the other values, and F.cross_entropy(model(x), x, sum) = -log p(x)."""
    model = make_model(base, 3, levels=5, factor=2)
    x = torch.randint(0, 5, (3, 3, 5, 7), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        logits = model(x)
        lp = model.log_prob(x)
        small = x[:, :, ::2, ::2]
        assert small.shape == (3, 3, 3, 4)
        ctx = model.context(model.small.embed(small), 5, 7)
        assert ctx.shape == (3, model.cond.context_channels, 5, 7)
        cond = model.cond.logits(x, ctx).log_softmax(-1)  # (H, W, B, C, L)
        cond = cond.gather(-1, x.permute(2, 3, 0, 1).unsqueeze(-1)).squeeze(-1).permute(2, 3, 0, 1)
        rest = ~model.picked(5, 7)
        small_lp = -F.cross_entropy(model.small.logits(small).permute(2, 4, 3, 0, 1), small, reduction="none").sum(dim=(1, 2, 3))
        expect = small_lp + (cond * rest).sum(dim=(1, 2, 3))
    assert logits.shape == (3, 5, 3, 5, 7)
    nll = F.cross_entropy(logits, x, reduction="none").sum(dim=(1, 2, 3))  # float64
    torch.testing.assert_close(-nll, expect, rtol=0, atol=1e-10)
    torch.testing.assert_close(lp, expect, rtol=0, atol=1e-10)  # log_prob / value_log_probs: float64 too
    per_value = logits.log_softmax(1).gather(1, x.unsqueeze(1)).squeeze(1)  # from model(x)
    torch.testing.assert_close(model.value_log_probs(x), per_value, rtol=0, atol=1e-10)


@pytest.mark.parametrize("base", BASES)
def test_any_size_float32_and_training_step(base):
    model = pixelrnn.create_model("multiscale", base=base, levels=4, hidden=6, layers=1)
    for H, W in [(5, 7), (1, 1), (1, 3), (3, 1), (8, 8), (2, 9)]:
        x = torch.randint(0, 4, (2, 1, H, W))
        assert model(x).shape == (2, 4, 1, H, W)
        assert torch.isfinite(model.log_prob(x)).all()
    x = torch.randint(0, 4, (4, 1, 6, 5))
    bpd = model.bits_per_dim(x).mean().item()
    assert abs(bpd - 2.0) < 0.3  # a fresh model is near uniform (log2 4 bits/dim)
    loss = -model.log_prob(x).mean()
    loss.backward()
    for name in ("small.first.weight", "cond.first.weight", "cond.context_proj.0.weight",
                 "upsample.deconv.weight", "upsample.conv.weight"):
        g = dict(model.named_parameters())[name].grad
        assert g is not None and g.abs().sum() > 0, name


# -- causality -----------------------------------------------------------------------------------

def dependencies(base, C, H, W, factor=2, seeds=3):
    """dep[t, s]: logits of value t (raster order) have a non-zero gradient w.r.t. value s; the
    union over a few random models and images."""
    dep = None
    n = C * H * W
    for seed in range(seeds):
        model = make_model(base, C, levels=5, hidden=8, factor=factor, seed=seed, scale=0.2, gain=1.0)
        g = torch.Generator().manual_seed(seed)
        x = torch.randint(0, 5, (1, C, H, W), generator=g).expand(n, C, H, W)
        emb = model.small.embed(x).detach().requires_grad_(True)
        logits = model.embedded_logits(emb).permute(2, 4, 3, 0, 1)  # (n, L, C, H, W)
        idx = torch.arange(n)
        r, col, ch = idx // (W * C), (idx // C) % W, idx % C
        proj = torch.randn(5, generator=g, dtype=torch.float64)
        (logits[idx, :, ch, r, col] @ proj).sum().backward()
        d = emb.grad.permute(0, 2, 3, 1).reshape(n, n) != 0
        dep = d if dep is None else dep | d
    return dep


@pytest.mark.parametrize("base", BASES)
@pytest.mark.parametrize("C,H,W,factor", [(1, 5, 5, 2), (3, 4, 4, 2), (1, 5, 7, 2), (3, 3, 5, 2),
                                          (1, 4, 7, 3)])
def test_causality_given_the_small_image(base, C, H, W, factor):
    dep = dependencies(base, C, H, W, factor)
    n = C * H * W
    pk = picked_values(C, H, W, factor)
    t = torch.arange(n)
    at_or_after = t.view(1, -1) >= t.view(-1, 1)  # [t, s]: s >= t
    # conditional values: never a non-picked value at or after t (picked ones: all allowed)
    leaks = (dep & ~pk.view(-1, 1) & ~pk.view(1, -1) & at_or_after).nonzero().tolist()
    assert not leaks, f"conditional part depends on current/future values at (t, s) = {leaks[:5]}"
    # small-image values: only earlier small-image values
    leaks = (dep & pk.view(-1, 1) & (~pk.view(1, -1) | at_or_after)).nonzero().tolist()
    assert not leaks, f"small model depends on non-picked or current/future values: {leaks[:5]}"
    # and the dependencies that must be there
    for v in range(1, n):
        row, col, ch = v // C // W, (v // C) % W, v % C
        if not pk[v] and not (col == 0 and ch == 0 and W > 4):  # see test_causality (blind spot)
            assert dep[v, v - 1], f"value {v} does not see value {v - 1}"
    small_order = pk.nonzero().flatten().tolist()
    for a, b in zip(small_order, small_order[1:]):
        assert dep[b, a], f"small value {b} does not see the previous small value {a}"
    # the context: non-picked values see later picked ones, e.g. (0, 1) sees (0, 2) for f = 2
    assert (dep & ~pk.view(-1, 1) & pk.view(1, -1) & at_or_after).any()
    if factor == 2:
        assert dep[C, 2 * C]


# -- checkpoints ---------------------------------------------------------------------------------

@pytest.mark.parametrize("base", BASES)
def test_save_load_round_trip(base, tmp_path):
    model = make_model(base, 3, levels=5, dtype=torch.float32, factor=3, context=5,
                       **({"kernel": 5} if base == "pixelcnn" else {}))
    path = tmp_path / "ms.safetensors"
    pixelrnn.save(model, path)
    loaded = pixelrnn.load(path)
    assert type(loaded) is type(model) and loaded.config == model.config
    assert loaded.config.options == {"base": base, "factor": 3, "context": 5,
                                     "kernel": 5 if base == "pixelcnn" else None}
    x = torch.randint(0, 5, (2, 3, 7, 5))
    with torch.no_grad():
        assert torch.equal(model.log_prob(x), loaded.log_prob(x))
    info = pixelrnn.checkpoint.describe(path)
    assert info["config"]["arch"] == "multiscale" and info["config"]["options"]["base"] == base


# -- sampling ------------------------------------------------------------------------------------

def gen(model, n, H, W, method, seed=1, known=None, x=None, **kw):
    values = torch.zeros(n, model.channels, H, W, dtype=torch.long) if x is None else x
    return model.generate(values, known, generator=torch.Generator().manual_seed(seed),
                           method=method, record=True, **kw)


SIZES = [(5, 6), (3, 3), (1, 1), (1, 4), (4, 1)]


@pytest.mark.parametrize("base", BASES)
@pytest.mark.parametrize("C", [1, 3])
def test_cached_equals_naive_float64(base, C):
    model = make_model(base, C)
    for H, W in SIZES:
        b, lb, _ = gen(model, 3, H, W, "naive")
        with torch.no_grad():
            tf = model(b)
        assert (lb - tf).abs().max() < 1e-10
        for schedule in ([None, "raster"] if base != "diagonal_bilstm" else [None]):
            a, la, _ = gen(model, 3, H, W, "cached", schedule=schedule)
            assert torch.equal(a, b), (base, C, H, W, schedule)
            assert la.shape == (3, model.levels, C, H, W)
            assert (la - tf).abs().max() < 1e-10, (base, C, H, W, schedule)


@pytest.mark.parametrize("base", BASES)
def test_cached_equals_naive_other_configs(base, monkeypatch):
    """factor 3, skip connections, a small first kernel, other context sizes, and the fast-tanh
    form of the LSTM engines (whose g-gate weights, conditioning ones included, are doubled)."""
    for C, kw in [(1, dict(factor=3, skip=True, head=8)), (3, dict(first_kernel=3, layers=3)),
                  (1, dict(context=3, hidden=8))]:
        model = make_model(base, C, **kw)
        a, la, _ = gen(model, 2, 5, 7, "cached")
        b, _, _ = gen(model, 2, 5, 7, "naive")
        assert torch.equal(a, b), (base, kw)
        with torch.no_grad():
            assert (la - model(a)).abs().max() < 1e-10
    import pixelrnn.sampling.parts as parts
    monkeypatch.setattr(parts, "FAST_TANH_NUMEL", 0)
    for C in (1, 3):
        model = make_model(base, C)
        a, la, _ = gen(model, 2, 4, 7, "cached")
        b, _, _ = gen(model, 2, 4, 7, "naive")
        assert torch.equal(a, b)
        with torch.no_grad():
            assert (la - model(a)).abs().max() < 1e-10


@pytest.mark.parametrize("base", BASES)
def test_float32_public_api(base):
    model = make_model(base, 3, levels=7, hidden=8, scale=0.2, dtype=torch.float32)
    g = lambda s: torch.Generator().manual_seed(s)  # noqa: E731
    x1 = model.sample(3, height=5, width=6, generator=g(7))
    x2 = model.sample(3, height=5, width=6, generator=g(7), method="naive")
    x3 = model.sample(3, height=5, width=6, generator=g(8))
    assert x1.dtype == torch.int64 and x1.shape == (3, 3, 5, 6) and x1.max() < 7
    assert torch.equal(x1, x2) and not torch.equal(x1, x3)
    a, la, _ = gen(model, 3, 5, 6, "cached")
    with torch.no_grad():
        assert (la - model(a)).abs().max() < 1e-5


def test_draw_order_small_grid_first_then_the_rest():
    """1×3 image, factor 2: picked (0, 0), (0, 2), then (0, 1); one torch.rand(n) each."""
    model = make_model("row_lstm", 1, levels=4)
    x = model.sample(5, height=1, width=3, generator=torch.Generator().manual_seed(3))
    g = torch.Generator().manual_seed(3)
    expect = torch.zeros(5, 1, 1, 3, dtype=torch.long)
    with torch.no_grad():
        for j in (0, 2, 1):
            u = torch.rand(5, generator=g).double()
            cdf = model(expect)[:, :, 0, 0, j].double().softmax(-1).cumsum(-1)
            expect[:, 0, 0, j] = (cdf < u[:, None]).sum(-1)
    assert torch.equal(x, expect)


@pytest.mark.parametrize("base", ["row_lstm", "pixelcnn"])
def test_samples_follow_the_model_distribution(base):
    model = make_model(base, 1, levels=2, scale=0.2, gain=1.0, dtype=torch.float32)
    xs = enumerate_images(1, 2, 3, 2)
    with torch.no_grad():
        p = model.log_prob(xs).double().exp()
    samples = model.sample(20000, height=2, width=3, generator=torch.Generator().manual_seed(0))
    index = {tuple(x.flatten().tolist()): k for k, x in enumerate(xs)}
    counts = torch.zeros(len(xs), dtype=torch.float64)
    for key in samples.flatten(1).tolist():
        counts[index[tuple(key)]] += 1
    tv = 0.5 * (counts / counts.sum() - p).abs().sum()
    assert tv < 0.03, tv


# -- completion ----------------------------------------------------------------------------------

@pytest.mark.parametrize("base", BASES)
@pytest.mark.parametrize("C", [1, 3])
def test_completion_keeps_known_values_and_matches_naive(base, C, completion_masks):
    model = make_model(base, C)
    H, W = 5, 6
    x = torch.randint(0, model.levels, (3, C, H, W), generator=torch.Generator().manual_seed(0))
    for (name, known), K in zip(completion_masks(H, W).items(), (1, 3, 2)):
        y = model.complete(x, known, generator=torch.Generator().manual_seed(4), particles=K)
        full = known.expand_as(x)
        assert torch.equal(y[full], x[full]), name
        assert y.min() >= 0 and y.max() < model.levels and not torch.equal(y, x)
        y2 = model.complete(x, known, generator=torch.Generator().manual_seed(4), particles=K,
                            method="naive")
        assert torch.equal(y, y2), (name, K)
    per_value = torch.rand(3, C, H, W, generator=torch.Generator().manual_seed(5)) < 0.5
    y = model.complete(x.masked_fill(~per_value, 99), per_value, generator=torch.Generator().manual_seed(1))
    assert torch.equal(y[per_value], x[per_value]) and y.max() < model.levels


def test_completion_everything_or_nothing_known():
    model = make_model("pixelcnn", 1, dtype=torch.float32)
    x = torch.randint(0, 4, (2, 1, 3, 5))
    assert torch.equal(model.complete(x, torch.ones(3, 5, dtype=torch.bool)), x)
    y = model.complete(x, torch.zeros(3, 5, dtype=torch.bool), generator=torch.Generator().manual_seed(9))
    assert torch.equal(y, model.sample(2, height=3, width=5, generator=torch.Generator().manual_seed(9)))


@pytest.mark.parametrize("base", BASES)
def test_particle_weights_are_the_two_stage_likelihood_of_later_known_values(base):
    """log-weight of a particle = sum of the model's log-probs of the known values that come after
    an unknown value in the two-stage order (small grid in raster order, then the rest)."""
    model = make_model(base, 3, levels=4)
    B, K, C, H, W = 3, 3, 3, 3, 5
    x = torch.randint(0, 4, (B, C, H, W), generator=torch.Generator().manual_seed(0))
    known = torch.ones(B, C, H, W, dtype=torch.bool)
    known[0, 1, 1, 1] = False  # image 0: G of a non-picked pixel
    known[1, :, 2, 2] = False  # image 1: a picked pixel (the context changes everything after it)
    known[2, 2, 0, 3] = False  # image 2: B of a non-picked pixel in row 0, and a picked one
    known[2, 0, 2, 4] = False
    for method in ("cached", "naive"):
        parts, _, log_w = model.generate(x.masked_fill(~known, 0), known, method=method,
                                         generator=torch.Generator().manual_seed(1), particles=K,
                                         keep_particles=True)
        assert parts.shape == (B * K, C, H, W) and log_w.shape == (B, K)
        with torch.no_grad():
            lp = model.value_log_probs(parts).double()  # small model at picked, cond elsewhere
        picked = model.picked(H, W)
        hs, ws = -(-H // 2), -(-W // 2)
        order = torch.empty(C, H, W, dtype=torch.long)  # position in the two-stage order
        order[:, ::2, ::2] = torch.arange(hs * ws * C).view(hs, ws, C).permute(2, 0, 1)
        rest = (torch.arange(H * W * C).view(H, W, C).permute(2, 0, 1) + hs * ws * C)
        order[:, ~picked] = rest[:, ~picked]
        kn = known.repeat_interleave(K, 0)
        first = torch.where(~kn, order, 10 ** 9).flatten(1).min(1).values
        after = kn & (order > first.view(-1, 1, 1, 1))
        expect = (lp * after).sum(dim=(1, 2, 3)).view(B, K)
        torch.testing.assert_close(log_w, expect, rtol=0, atol=1e-5)
        assert (log_w != 0).all()


# -- errors and guards -----------------------------------------------------------------------------

@pytest.mark.parametrize("kw,match", [
    (dict(base="gated"), "unknown base architecture 'gated'"),
    (dict(base="multiscale"), "base cannot be 'multiscale'"),
    (dict(base=None), "unknown base"),
    (dict(factor=1), "factor must be an integer >= 2"),
    (dict(factor=0), "factor must be an integer >= 2"),
    (dict(factor=2.0), "factor must be an integer >= 2"),
    (dict(factor=True), "factor must be an integer >= 2"),
    (dict(factor="2"), "factor must be an integer >= 2"),
    (dict(context=0), "context must be a positive integer"),
    (dict(base="row_lstm", kernel=5), "kernel only applies to base='pixelcnn'"),
    (dict(base="pixelcnn", kernel=4), "kernel must be a positive odd integer"),
    (dict(colours=3), "unknown option"),
])
def test_bad_arguments(kw, match):
    with pytest.raises(ValueError, match=match):
        pixelrnn.create_model("multiscale", levels=4, hidden=6, layers=1, **kw)


def test_the_sampling_functions_drive_the_multiscale_model_in_two_stages():
    """pixelrnn.sampling.sample / complete take any distribution: for the multi-scale model they
    run its two stages (the same images as its own methods), and no per-image terms."""
    from pixelrnn.sampling import complete, sample
    model = make_model("row_lstm", 1, dtype=torch.float32)
    g = lambda: torch.Generator().manual_seed(3)  # noqa: E731
    for method in ("cached", "naive"):
        assert torch.equal(sample(model, 2, 3, 3, generator=g(), method=method),
                           model.sample(2, 3, 3, generator=g(), method=method))
    x = torch.randint(0, model.levels, (2, 1, 3, 3))
    known = torch.rand(2, 1, 3, 3, generator=g()) < 0.5
    assert torch.equal(complete(model, x, known, g(), 2), model.complete(x, known, g(), 2))
    with pytest.raises(ValueError, match="no per-image terms"):
        model.value_log_probs(x, terms=torch.zeros(2, 4))
    model.train()
    model.sample(2, height=3, width=3)
    assert model.training  # the training flag is restored
    with pytest.raises(ValueError, match="particles"):
        model.complete(torch.zeros(1, 1, 2, 2, dtype=torch.long), torch.ones(2, 2, dtype=torch.bool),
                       particles=0)
    with pytest.raises(ValueError, match="height=H, width=W"):
        model.sample(2, height=3)


def test_progress_reaches_the_total_once():
    model = make_model("pixelcnn", 3, dtype=torch.float32)
    calls = []
    model.sample(2, height=3, width=4, progress=lambda done, total: calls.append((done, total)))
    assert calls[-1] == (36, 36) and all(t == 36 for _, t in calls)
    done = [d for d, _ in calls]
    assert done == sorted(set(done))


# -- the command line ------------------------------------------------------------------------------

def test_train_eval_sample_complete_through_the_cli(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--data", "digits", "--arch", "multiscale", "--base", "pixelcnn",
                 "--factor", "2", "--hidden", "6", "--layers", "1", "--batch-size", "8",
                 "--steps", "4", "--no-progress", "--threads", "1", "--out", str(out), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["step"] == 4 and summary["test"]["bits_per_dim"] > 0
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["model"]["arch"] == "multiscale"
    assert cfg["model"]["options"] == {"base": "pixelcnn", "factor": 2, "context": 6, "kernel": 3}
    ckpt = out / "last.safetensors"
    assert main(["eval", str(ckpt), "--data", "digits", "--json"]) == 0
    ev = json.loads(capsys.readouterr().out)
    assert ev["nll_nats"] == pytest.approx(summary["test"]["nll_nats"], rel=1e-6)
    grid = tmp_path / "s.png"
    assert main(["sample", str(ckpt), "-n", "3", "--out", str(grid), "--npz", str(tmp_path / "s.npz"),
                 "--no-progress"]) == 0
    import numpy as np
    s = np.load(tmp_path / "s.npz")["images"]
    assert s.shape == (3, 1, 8, 8) and s.max() < 17
    assert main(["complete", str(ckpt), "--data", "digits", "--n", "2", "--mask", "bottom-half",
                 "--particles", "2", "--out", str(tmp_path / "c.png"), "--npz", str(tmp_path / "c.npz"),
                 "--no-progress"]) == 0
    c = np.load(tmp_path / "c.npz")
    assert np.array_equal(c["images"][:, :, :4], c["originals"][:, :, :4])


@pytest.mark.parametrize("base", ["row_lstm", "pixelcnn"])
def test_resume_continues_exactly(base, tmp_path):
    from safetensors.torch import load_file
    args = ["--data", "digits", "--arch", "multiscale", "--base", base, "--hidden", "4", "--layers", "1",
            "--batch-size", "8", "--no-progress", "--threads", "1", "--deterministic",
            "--save-every", "3", "--eval-every", "0"]
    assert main(["train", *args, "--steps", "9", "--out", str(tmp_path / "full")]) == 0
    assert main(["train", *args, "--steps", "4", "--out", str(tmp_path / "part")]) == 0
    assert main(["train", "--resume", str(tmp_path / "part"), "--steps", "9"]) == 0
    a = load_file(tmp_path / "full" / "last.safetensors")
    b = load_file(tmp_path / "part" / "last.safetensors")
    assert any(k.startswith("small.") for k in a) and any(k.startswith("cond.") for k in a)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_cli_rejects_base_without_multiscale(capsys):
    assert main(["train", "--data", "digits", "--arch", "row_lstm", "--base", "pixelcnn",
                 "--steps", "1", "--out", "/nonexistent/never"]) == 2
    assert "--base and --factor only apply to --arch multiscale" in capsys.readouterr().err
