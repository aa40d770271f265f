import pytest
import torch

from pixelrnn.nn import lstm_scan, lstm_scan_reference, skew, unskew
from pixelrnn.nn.diagonal_bilstm import AddShiftedDown
from pixelrnn.nn.recurrence import DiagonalGeometry, RowGeometry
from pixelrnn.nn.row_lstm import LeftAndCentre


def _inputs(D, H, W, N, h, row):
    g = torch.Generator().manual_seed(1)
    pre = torch.randn(D, H, W, N, 4 * h, generator=g, dtype=torch.float64, requires_grad=True)
    taps = 3 if row else 2
    w = (0.5 * torch.randn(D, taps * h, 4 * h, generator=g, dtype=torch.float64)).requires_grad_()
    if row:
        h0 = torch.randn(h, generator=g, dtype=torch.float64, requires_grad=True)
        c0 = torch.randn(h, generator=g, dtype=torch.float64, requires_grad=True)
    else:
        h0 = c0 = None
    return pre, w, h0, c0


@pytest.mark.parametrize("case", ["row", "diagonal"])
@pytest.mark.parametrize("H,W", [(5, 6), (4, 4), (6, 3), (1, 5), (5, 1)])
def test_scan_matches_reference_values_and_gradients(case, H, W):
    row = case == "row"
    D = 1 if row else 2
    pre, w, h0, c0 = _inputs(D, H, W, 3, 4, row)
    geo = RowGeometry(H, W) if row else DiagonalGeometry(H, W)
    out = lstm_scan(pre, w, h0, c0, geo)
    ref = lstm_scan_reference(pre, w, h0, c0, geo)
    torch.testing.assert_close(out, ref)
    gout = torch.randn_like(out)
    params = [p for p in (pre, w, h0, c0) if p is not None]
    g1 = torch.autograd.grad(out, params, gout)
    g2 = torch.autograd.grad(ref, params, gout)
    for a, b in zip(g1, g2):
        torch.testing.assert_close(a, b)


def test_scan_gradcheck():
    pre, w, h0, c0 = _inputs(1, 3, 4, 2, 2, row=True)
    assert torch.autograd.gradcheck(lambda p, w, h, c: lstm_scan(p, w, h, c, RowGeometry(3, 4)),
                                    (pre, w, h0, c0))
    pre, w, _, _ = _inputs(2, 3, 4, 2, 2, row=False)
    assert torch.autograd.gradcheck(lambda p, w: lstm_scan(p, w, None, None, DiagonalGeometry(3, 4)),
                                    (pre, w))


def test_diagonal_steps_are_the_columns_of_the_skewed_map():
    H, W = 4, 6
    x = torch.randn(1, H, W, 2, 3)  # (D, H, W, N, X)
    skewed = skew(x.permute(0, 3, 4, 1, 2))  # (D, N, X, H, H+W-1)
    geo = DiagonalGeometry(H, W)
    for k in range(H + W - 1):
        lo, hi = geo.ranges[k]
        col = skewed[..., k].permute(0, 3, 1, 2)  # (D, H, N, X)
        torch.testing.assert_close(geo.at(x, k), col[:, lo:hi])
        assert (col[:, :lo] == 0).all() and (col[:, hi:] == 0).all()  # outside the image


def test_large_biases_do_not_leak_through_padding():
    """With large biases an LSTM run over the zero padding of a skewed map would carry state into
    the image; here the state outside the image is never computed, so an image's result does not
    depend on how wide a canvas it is embedded in."""
    H, W = 3, 4
    pre, w, _, _ = _inputs(2, H, W, 2, 3, row=False)
    with torch.no_grad():
        pre += 5.0
        out = lstm_scan(pre, w, None, None, DiagonalGeometry(H, W))
        ref = lstm_scan_reference(pre, w, None, None, DiagonalGeometry(H, W))
    torch.testing.assert_close(out, ref)


@pytest.mark.parametrize("H,W", [(1, 1), (3, 3), (2, 5), (5, 2)])
def test_skew_unskew_round_trip(H, W):
    x = torch.randn(2, 3, H, W)
    s = skew(x)
    assert s.shape == (2, 3, H, H + W - 1)
    for r in range(H):  # row r shifted right by r
        torch.testing.assert_close(s[..., r, r:r + W], x[..., r, :])
        assert (s[..., r, :r] == 0).all() and (s[..., r, r + W:] == 0).all()
    torch.testing.assert_close(unskew(s, W), x)


@pytest.mark.parametrize("case", ["row", "diagonal"])
def test_half_precision_inputs_are_scanned_in_float32(case):
    """Under bf16 autocast `pre` arrives in bf16; the cell state and the gradients summed over
    the steps stay float32: the same numbers as a float32 scan of the same (rounded) inputs."""
    row = case == "row"
    pre, w, h0, c0 = _inputs(1 if row else 2, 6, 5, 3, 4, row)
    geo = RowGeometry(6, 5) if row else DiagonalGeometry(6, 5)
    pre16 = pre.detach().to(torch.bfloat16).requires_grad_()
    pre32 = pre16.detach().float().requires_grad_()
    w32 = w.detach().float()
    extra = (h0.detach().float(), c0.detach().float()) if row else (None, None)
    out16 = lstm_scan(pre16, w32, *extra, geo)
    out32 = lstm_scan(pre32, w32, *extra, geo)
    assert out16.dtype == torch.bfloat16 and torch.equal(out16, out32.to(torch.bfloat16))
    gout = torch.randn(out32.shape, generator=torch.Generator().manual_seed(2))
    (g16,) = torch.autograd.grad(out16, pre16, gout.to(torch.bfloat16))
    (g32,) = torch.autograd.grad(out32, pre32, gout.to(torch.bfloat16).float())
    assert g16.dtype == torch.bfloat16 and torch.equal(g16, g32.to(torch.bfloat16))


def test_a_mirrored_direction_is_the_scan_of_the_flipped_map():
    """DiagonalGeometry(mirror=(1,)): direction 1 runs right to left on maps in image coordinates,
    i.e. the scan of the width-flipped map, flipped back -- what the Diagonal BiLSTM used to do."""
    pre, w, _, _ = _inputs(2, 4, 5, 2, 3, row=False)
    out = lstm_scan(pre, w, None, None, DiagonalGeometry(4, 5, mirror=(1,)))
    flipped = torch.stack([pre[0], pre[1].flip(1)])
    ref = lstm_scan_reference(flipped, w, None, None, DiagonalGeometry(4, 5))
    torch.testing.assert_close(out, torch.stack([ref[0], ref[1].flip(1)]))
    bias = torch.randn(2, 12, dtype=torch.float64)
    torch.testing.assert_close(lstm_scan(pre, w, None, None, DiagonalGeometry(4, 5), bias=bias),
                               lstm_scan_reference(pre + bias[:, None, None, None], w, None, None,
                                                   DiagonalGeometry(4, 5)))


def test_the_layers_shift_functions_and_their_gradients():
    x = torch.randn(3, 4, 2, 5, dtype=torch.float64, requires_grad=True)
    pair = LeftAndCentre.apply(x)
    torch.testing.assert_close(pair, torch.cat([torch.nn.functional.pad(x, (0, 0, 0, 0, 1, 0))[:, :-1], x], -1))
    assert torch.autograd.gradcheck(LeftAndCentre.apply, (x,))
    out = torch.randn(2, 3, 4, 2, 5, dtype=torch.float64, requires_grad=True)
    y = AddShiftedDown.apply(out, None)
    torch.testing.assert_close(y, out[0] + torch.nn.functional.pad(out[1][:-1], (0, 0, 0, 0, 0, 0, 1, 0)))
    assert torch.autograd.gradcheck(lambda o: AddShiftedDown.apply(o, None), (out,))
    above = torch.randn(4, 2, 5, dtype=torch.float64, requires_grad=True)  # a band's row above
    torch.testing.assert_close(AddShiftedDown.apply(out, above), torch.cat([out[0, :1] + above, y[1:]]))
    assert torch.autograd.gradcheck(AddShiftedDown.apply, (out, above))
