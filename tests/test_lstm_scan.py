import pytest
import torch

from pixelrnn.nn import lstm_scan, lstm_scan_reference, skew, unskew
from pixelrnn.nn.diagonal_bilstm import skewed_ranges


def _inputs(D, T, S, N, h, learned_init):
    g = torch.Generator().manual_seed(1)
    pre = torch.randn(D, T, S, N, 4 * h, generator=g, dtype=torch.float64, requires_grad=True)
    taps = 3 if learned_init else 2
    w = (0.5 * torch.randn(D, taps * h, 4 * h, generator=g, dtype=torch.float64)).requires_grad_()
    if learned_init:
        h0 = torch.randn(h, generator=g, dtype=torch.float64, requires_grad=True)
        c0 = torch.randn(h, generator=g, dtype=torch.float64, requires_grad=True)
    else:
        h0 = c0 = torch.zeros((), dtype=torch.float64)
    return pre, w, h0, c0


@pytest.mark.parametrize("case", ["row", "diagonal"])
def test_scan_matches_reference_values_and_gradients(case):
    if case == "row":
        D, T, S, N, h, taps, ranges = 1, 5, 6, 3, 4, (-1, 0, 1), None
    else:
        H, W = 4, 6
        D, T, S, N, h, taps, ranges = 2, H + W - 1, H, 3, 4, (-1, 0), skewed_ranges(H, W)
    pre, w, h0, c0 = _inputs(D, T, S, N, h, learned_init=case == "row")
    out = lstm_scan(pre, w, h0, c0, taps, ranges)
    ref = lstm_scan_reference(pre, w, h0, c0, taps, ranges)
    torch.testing.assert_close(out, ref)
    gout = torch.randn_like(out)
    params = [p for p in (pre, w, h0, c0) if p.requires_grad]
    g1 = torch.autograd.grad(out, params, gout)
    g2 = torch.autograd.grad(ref, params, gout)
    for a, b in zip(g1, g2):
        torch.testing.assert_close(a, b)


def test_scan_gradcheck():
    pre, w, h0, c0 = _inputs(1, 3, 4, 2, 2, learned_init=True)
    assert torch.autograd.gradcheck(lambda p, w, h, c: lstm_scan(p, w, h, c, (-1, 0, 1)),
                                    (pre, w, h0, c0))
    pre, w, h0, c0 = _inputs(2, 5, 3, 2, 2, learned_init=False)
    assert torch.autograd.gradcheck(lambda p, w: lstm_scan(p, w, h0, c0, (-1, 0), skewed_ranges(3, 3)),
                                    (pre, w))


def test_state_is_zero_outside_the_image_in_the_skewed_map():
    H, W = 3, 4
    pre, w, h0, c0 = _inputs(2, H + W - 1, H, 2, 3, learned_init=False)
    with torch.no_grad():
        pre += 5.0  # large positive biases: an unmasked LSTM would build up state in the padding
        out = lstm_scan(pre, w, h0, c0, (-1, 0), skewed_ranges(H, W))
    outside = skew(torch.ones(H, W, dtype=torch.bool)).T == 0  # (T, S)
    assert outside.any()
    assert (out[:, outside] == 0).all()
    assert (out[:, ~outside] != 0).all()


@pytest.mark.parametrize("H,W", [(1, 1), (3, 3), (2, 5), (5, 2)])
def test_skew_unskew_round_trip(H, W):
    x = torch.randn(2, 3, H, W)
    s = skew(x)
    assert s.shape == (2, 3, H, H + W - 1)
    for r in range(H):  # row r shifted right by r
        torch.testing.assert_close(s[..., r, r:r + W], x[..., r, :])
        assert (s[..., r, :r] == 0).all() and (s[..., r, r + W:] == 0).all()
    torch.testing.assert_close(unskew(s, W), x)
