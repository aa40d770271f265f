"""Row bands (activation checkpointing at large sizes): the LSTM scan run a band of rows at a time,
each band starting from the state the band above ended with, gives the whole scan's hidden states
and gradients (native kernel and PyTorch version, both geometries, mirrored directions); the
carried state takes a gradient (gradcheck)."""
import pytest
import torch

from pixelrnn.nn import lstm_scan, lstm_scan_band, native
from pixelrnn.nn.recurrence import DiagonalGeometry, RowGeometry

CASES = {"row": (1, lambda H, W: RowGeometry(H, W)),
         "diagonal": (1, lambda H, W: DiagonalGeometry(H, W)),
         "mirrored": (2, lambda H, W: DiagonalGeometry(H, W, mirror=(1,)))}
KERNELS = ["native", "pytorch"]


@pytest.fixture(params=KERNELS)
def kernel(request, monkeypatch):
    if request.param == "native" and not (native.enabled() and native.available()):
        pytest.skip("native kernel unavailable: " + native.status())
    monkeypatch.setenv("PIXELRNN_NATIVE", "1" if request.param == "native" else "0")
    return request.param


def inputs(case, H=7, W=5, N=3, h=4, seed=0):
    D, geo = CASES[case]
    row = case == "row"
    g = torch.Generator().manual_seed(seed)
    pre = torch.randn(D, H, W, N, 4 * h, generator=g, dtype=torch.float64).requires_grad_()
    w = (0.5 * torch.randn(D, (3 if row else 2) * h, 4 * h, generator=g, dtype=torch.float64)).requires_grad_()
    b = torch.randn(D, 4 * h, generator=g, dtype=torch.float64).requires_grad_()
    h0 = torch.randn(h, generator=g, dtype=torch.float64).requires_grad_() if row else None
    c0 = torch.randn(h, generator=g, dtype=torch.float64).requires_grad_() if row else None
    return geo, pre, w, b, h0, c0


def banded_scan(case, geo, pre, w, b, h0, c0, cuts):
    """The scan of pre in bands [cuts[k], cuts[k+1]), the state carried from band to band."""
    W = pre.shape[2]
    outs, hs, cs = [], h0, c0
    for a, z in zip(cuts[:-1], cuts[1:]):
        out, c_last = lstm_scan_band(pre[:, a:z], w, hs, cs, geo(z - a, W), bias=b)
        outs.append(out)
        hs, cs = out[:, -1], (c_last if case == "row" else None)
    return torch.cat(outs, dim=1)


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("cuts", [(0, 3, 4, 7), (0, 1, 2, 3, 4, 5, 6, 7), (0, 7)])
def test_a_scan_in_bands_is_the_whole_scan(kernel, case, cuts):
    geo, pre, w, b, h0, c0 = inputs(case)
    params = [t for t in (pre, w, b, h0, c0) if t is not None]
    whole = lstm_scan(pre, w, h0, c0, geo(7, 5), bias=b)
    banded = banded_scan(case, geo, pre, w, b, h0, c0, cuts)
    torch.testing.assert_close(banded, whole, rtol=1e-12, atol=1e-12)
    gout = torch.randn(whole.shape, generator=torch.Generator().manual_seed(1), dtype=whole.dtype)
    for a, c in zip(torch.autograd.grad(whole, params, gout), torch.autograd.grad(banded, params, gout)):
        torch.testing.assert_close(c, a, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("case", list(CASES))
def test_the_carried_state_takes_a_gradient(kernel, case):
    """gradcheck of one band from a given start state (every column and image its own), through
    both outputs: the hidden states and (rows) the last row's cell states."""
    geo, pre, w, b, h0, c0 = inputs(case, H=3, W=4, N=2, h=2)
    D, H, W, N, G = pre.shape
    g = torch.Generator().manual_seed(2)
    hs = torch.randn(D, W, N, G // 4, generator=g, dtype=torch.float64).requires_grad_()
    cs = torch.randn(D, W, N, G // 4, generator=g, dtype=torch.float64).requires_grad_() if case == "row" else None

    def band(*args):
        p, ww, bb, h_in = args[:4]
        out, c_last = lstm_scan_band(p, ww, h_in, args[4] if len(args) > 4 else None, geo(H, W), bias=bb)
        return (out, c_last) if case == "row" else out
    assert torch.autograd.gradcheck(band, tuple(t for t in (pre, w, b, hs, cs) if t is not None))


def test_a_diagonal_band_reads_the_given_row_above(kernel):
    """Changing the given row above changes the band's first row, and only through the taps
    (i-1, j): with it zero, the band is the scan from a zero start."""
    geo, pre, w, b, _, _ = inputs("mirrored", H=2)
    D, H, W, N, G = pre.shape
    zero = torch.zeros(D, W, N, G // 4, dtype=pre.dtype)
    torch.testing.assert_close(lstm_scan_band(pre, w, zero, None, geo(H, W), bias=b)[0],
                               lstm_scan(pre, w, None, None, geo(H, W), bias=b), rtol=0, atol=0)
    one = zero.clone()
    one[1, 0] = 1.0  # direction 1 (right to left), column 0: read only by pixel (0, 0)
    out = lstm_scan_band(pre, w, one, None, geo(H, W), bias=b)[0]
    base = lstm_scan(pre, w, None, None, geo(H, W), bias=b)
    changed = (out != base).any(-1).any(-1)  # (D, H, W)
    assert not changed[0].any()
    assert changed[1, 0, 0] and not changed[1, 0, 1:].any()  # right to left: (0, 0) is its last pixel
