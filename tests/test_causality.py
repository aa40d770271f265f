"""Gradient causality: the logits of value (pixel i, channel c) must not depend on any value at or
after (i, c) in raster / R->G->B order, and must depend on the ones right before it."""
import pytest
import torch

import pixelrnn
from conftest import ARCHS


def jacobian_mask(model, C, H, W, seed=0, image_terms=None):
    """dep[t, s] = True where output value t (raster index) has a non-zero gradient w.r.t. value s.
    ``image_terms``: a (1, width) per-image conditioning vector (training with --dihedral)."""
    model = model.double()
    g = torch.Generator().manual_seed(seed)
    n = C * H * W
    x = torch.randint(0, model.levels, (1, C, H, W), generator=g).expand(n, C, H, W)
    net = model.net  # the distribution's network: its embedding is where the values enter
    emb = net.embed(x).detach().requires_grad_(True)
    terms = None if image_terms is None else image_terms.double().expand(n, -1)
    logits = net.head(net.features(emb, terms=terms)).permute(2, 4, 3, 0, 1)  # (n, L, C, H, W)
    # batch element b asks for the gradient of output value b (raster order: row, col, channel)
    idx = torch.arange(n)
    r, rem = idx // (W * C), idx % (W * C)
    col, ch = rem // C, rem % C
    # a random projection of the logits so that no class is special
    proj = torch.randn(model.levels, generator=g, dtype=torch.float64)
    picked = logits[idx, :, ch, r, col]  # (n, levels)
    (picked @ proj).sum().backward()
    grad = emb.grad  # (n, C, H, W)
    dep = grad.permute(0, 2, 3, 1).reshape(n, n) != 0  # source index in raster order too
    return dep


def dependencies(arch, C, H, W, layers=2, seeds=3, **kw):
    """Union over a few random models and images of the dependency pattern (ReLUs can switch a
    real connection off for one particular input; a structural one shows up for some input)."""
    dep = None
    for seed in range(seeds):
        torch.manual_seed(seed)
        model = pixelrnn.create_model(arch, channels=C, levels=5, hidden=12, layers=layers, **kw)
        d = jacobian_mask(model, C, H, W, seed)
        dep = d if dep is None else dep | d
    return dep


def raster(t, C, W):
    """(row, col, channel) of raster index t."""
    return t // C // W, (t // C) % W, t % C


CASES = [(1, 5, 5), (3, 4, 4), (1, 4, 7), (3, 6, 3), (3, 3, 8)]


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("C,H,W", CASES)
def test_no_dependence_on_current_or_future_values(arch, C, H, W):
    dep = dependencies(arch, C, H, W)
    n = C * H * W
    future = torch.ones(n, n, dtype=torch.bool).triu()  # s >= t
    leaks = (dep & future).nonzero().tolist()
    assert not leaks, f"{arch}: output depends on current/future values at (t, s) = {leaks[:5]}"


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("C,H,W", CASES)
def test_depends_on_immediately_preceding_values(arch, C, H, W):
    dep = dependencies(arch, C, H, W)
    for t in range(1, C * H * W):
        row, col, ch = raster(t, C, W)
        if col == 0 and ch == 0 and W > 4:
            continue  # the previous value ends the previous row: see test_diagonal_bilstm_context
        assert dep[t, t - 1], f"{arch}: value {t} does not see value {t - 1}"
    if C == 3:  # G sees R of the same pixel, B sees R and G
        for t in range(0, C * H * W, C):
            assert dep[t + 1, t] and dep[t + 2, t] and dep[t + 2, t + 1]


@pytest.mark.parametrize("layers", [1, 2])
@pytest.mark.parametrize("C,H,W", CASES + [(1, 9, 9), (1, 4, 9)])
def test_diagonal_bilstm_context(C, H, W, layers):
    """The Diagonal BiLSTM sees every earlier value with one exception that is inherent to the
    paper's design: value (i, j, c) misses the LAST value of row i-1 when it lies beyond the reach
    of the 7×7 mask-A conv (W-1-j > 3). Every feature at row i-1 comes before that value, and the
    right-to-left direction only reaches row i through the one-row shift."""
    dep = dependencies("diagonal_bilstm", C, H, W, layers=layers)
    n = C * H * W
    past = torch.ones(n, n, dtype=torch.bool).tril(-1)
    expected_missing = torch.zeros(n, n, dtype=torch.bool)
    for t in range(n):
        row, col, _ = raster(t, C, W)
        if row > 0 and W - 1 - col > 3:
            expected_missing[t, (row * W) * C - 1] = True  # last channel of the last pixel of row-1
    assert torch.equal(past & ~dep, expected_missing)
    top_right = [(W - 1) * C + c for c in range(C)]
    assert all(dep[n - 1, s] for s in top_right)  # the last pixel sees the top-right pixel


@pytest.mark.parametrize("arch", ["row_lstm", "pixelcnn"])
def test_bounded_field_misses_far_right_context(arch):
    """Row LSTM (triangle) and PixelCNN (blind spot) do not see the top-right corner from the
    bottom-left pixel of a wide image: documents the receptive-field difference."""
    H, W = 3, 12
    dep = dependencies(arch, 1, H, W, layers=1)
    assert not dep[(H - 1) * W, W - 1]
    assert dep[(H - 1) * W, 0]  # but sees the pixel two rows straight above


@pytest.mark.parametrize("arch", ARCHS)
def test_the_symmetry_bias_of_dihedral_training_keeps_causality(arch):
    """--dihedral adds a learned per-image vector to every layer (train.SymmetryBias): under any
    symmetry no value may see itself or later values, and each still sees the one before it."""
    from pixelrnn.train import SymmetryBias
    C, H, W = 3, 3, 3
    torch.manual_seed(0)
    model = pixelrnn.create_model(arch, channels=C, levels=5, hidden=12, layers=2)
    bias = SymmetryBias(model.term_width)
    torch.nn.init.normal_(bias.table)
    n = C * H * W
    for t in (1, 5):
        dep = jacobian_mask(model, C, H, W, image_terms=bias(torch.tensor([t])).detach())
        assert not (dep & torch.ones(n, n, dtype=torch.bool).triu()).any()
        assert all(dep[s, s - 1] for s in range(1, n))


@pytest.mark.parametrize("arch", ARCHS)
def test_dropout_in_training_mode_keeps_causality(arch):
    """Dropout zeroes values of the residual branches: with any mask, no value may see itself or
    later values (and in eval mode the model is exactly the model without dropout)."""
    C, H, W = 3, 4, 4
    torch.manual_seed(0)
    model = pixelrnn.create_model(arch, channels=C, levels=5, hidden=12, layers=2).set_dropout(0.5)
    model.train()
    n = C * H * W
    dep = None
    for seed in range(3):
        torch.manual_seed(seed)  # a different dropout mask per value's row of the batch
        d = jacobian_mask(model, C, H, W, seed)
        dep = d if dep is None else dep | d
    assert not (dep & torch.ones(n, n, dtype=torch.bool).triu()).any()
    assert (dep & torch.ones(n, n, dtype=torch.bool).tril(-1)).any()
