"""The native LSTM kernel (pixelrnn.nn.native): the same numbers as the PyTorch version, gradients
(gradcheck), flop counting, and the fall-back when it is disabled or cannot be built.
(tests/test_native_fallback.py runs the scan, causality, model and checkpointing tests again on the
PyTorch version; those files themselves run on the native kernel where it is available.)"""
import os
import subprocess
import sys
import warnings

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

import pixelrnn
from pixelrnn.nn import lstm_scan, native
from pixelrnn.nn.recurrence import DiagonalGeometry, RowGeometry, native_scan

needs_native = pytest.mark.skipif(not (native.enabled() and native.available()),
                                  reason="native kernel disabled or unavailable: " + native.status())


def scan_inputs(D, H, W, N, h, row, dtype, layout="contiguous"):
    """pre (D, H, W, N, 4h) -- "strided": a permuted view of an (H, W, N, D, 4h) tensor, the
    Diagonal BiLSTM's layout --, weight, bias (D, 4h), and h0, c0 for rows."""
    g = torch.Generator().manual_seed(3)
    pre = torch.randn(H, W, N, D, 4 * h, generator=g, dtype=dtype).permute(3, 0, 1, 2, 4)
    pre = (pre if layout == "strided" else pre.contiguous()).detach().requires_grad_()
    w = (0.5 * torch.randn(D, (3 if row else 2) * h, 4 * h, generator=g, dtype=dtype)).requires_grad_()
    b = torch.randn(D, 4 * h, generator=g, dtype=dtype).requires_grad_()
    h0 = torch.randn(h, generator=g, dtype=dtype).requires_grad_() if row else None
    c0 = torch.randn(h, generator=g, dtype=dtype).requires_grad_() if row else None
    return pre, w, b, h0, c0


def run(pre, w, b, h0, c0, geo, chunks=None):
    """The native kernel (chunks: int) or the PyTorch version (chunks=None); output and gradients."""
    params = [p for p in (pre, w, b, h0, c0) if p is not None]
    if chunks is None:
        os.environ["PIXELRNN_NATIVE"] = "0"
        try:
            out = lstm_scan(pre, w, h0, c0, geo, bias=b)
        finally:
            del os.environ["PIXELRNN_NATIVE"]
    else:
        D, H, W, N, G = pre.shape
        ex = (lambda t: None if t is None else t.expand(D, W, N, G // 4))
        out = native_scan(pre, w, ex(h0), ex(c0), geo, chunks, bias=b)
    gout = torch.randn(out.shape, generator=torch.Generator().manual_seed(4), dtype=out.dtype)
    return out, torch.autograd.grad(out, params, gout)


GEOMETRIES = {"row": lambda H, W: RowGeometry(H, W), "diagonal": lambda H, W: DiagonalGeometry(H, W),
              "mirrored": lambda H, W: DiagonalGeometry(H, W, mirror=(1,))}


@needs_native
@pytest.mark.parametrize("case", list(GEOMETRIES))
@pytest.mark.parametrize("H,W,N", [(5, 6, 4), (1, 5, 3), (6, 1, 3), (7, 4, 5), (3, 3, 1)])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("layout", ["contiguous", "strided"])
def test_native_gives_the_pytorch_numbers(case, H, W, N, dtype, layout, monkeypatch):
    """Every chunking (even and uneven cuts of the batch, more chunks than images), both dtypes,
    a bias, a mirrored direction, a strided pre: float64 to ~1e-15, float32 to float rounding
    (the native exp is within ~2 ulp of torch's); the gradient of pre in pre's layout."""
    monkeypatch.delenv("PIXELRNN_NATIVE", raising=False)
    row = case == "row"
    geo = GEOMETRIES[case](H, W)
    pre, w, b, h0, c0 = scan_inputs(1 if row else 2, H, W, N, 4, row, dtype, layout)
    ref, gref = run(pre, w, b, h0, c0, geo)
    tol = dict(rtol=1e-12, atol=1e-13) if dtype == torch.float64 else dict(rtol=1e-5, atol=2e-6)
    for chunks in (1, 2, 3, N + 2):
        out, grads = run(pre, w, b, h0, c0, geo, chunks)
        torch.testing.assert_close(out, ref, **tol)
        assert grads[0].stride() == pre.stride()
        for a, g in zip(grads, gref):
            torch.testing.assert_close(a, g, **tol)


@needs_native
@pytest.mark.parametrize("chunks", [1, 2])
def test_native_gradcheck(chunks):
    pre, w, b, h0, c0 = scan_inputs(1, 3, 4, 3, 2, True, torch.float64)
    geo = RowGeometry(3, 4)
    fn = (lambda p, w, b, h, c: native_scan(p, w, h.expand(1, 4, 3, 2), c.expand(1, 4, 3, 2), geo, chunks, bias=b))
    assert torch.autograd.gradcheck(fn, (pre, w, b, h0, c0))
    pre, w, b, _, _ = scan_inputs(2, 3, 4, 3, 2, False, torch.float64, "strided")
    geo = DiagonalGeometry(3, 4, mirror=(1,))
    assert torch.autograd.gradcheck(lambda p, w, b: native_scan(p, w, None, None, geo, chunks, bias=b), (pre, w, b))


@needs_native
@pytest.mark.parametrize("arch", ["row_lstm", "diagonal_bilstm"])
def test_models_agree_on_both_paths(arch, monkeypatch):
    torch.manual_seed(0)
    model = pixelrnn.create_model(arch, channels=3, levels=16, hidden=8, layers=2)
    x = torch.randint(0, 16, (3, 3, 6, 5))

    def loss_and_grads():
        model.zero_grad(set_to_none=True)
        loss = -model.log_prob(x).mean()
        loss.backward()
        return loss.detach(), [p.grad.clone() for p in model.parameters()]
    monkeypatch.setenv("PIXELRNN_NATIVE", "1")
    a = loss_and_grads()
    monkeypatch.setenv("PIXELRNN_NATIVE", "0")
    b = loss_and_grads()
    torch.testing.assert_close(a[0], b[0], rtol=1e-6, atol=1e-5)
    for ga, gb in zip(a[1], b[1]):
        torch.testing.assert_close(ga, gb, rtol=1e-4, atol=1e-6)


@needs_native
@pytest.mark.parametrize("case", ["row", "diagonal"])
def test_the_flop_counter_sees_the_native_products(case, monkeypatch):
    """3 products of 2 x pixels x k*h x 4h: the forward, the taps' gradient, the weight gradient."""
    monkeypatch.delenv("PIXELRNN_NATIVE", raising=False)
    row = case == "row"
    geo = RowGeometry(4, 5) if row else DiagonalGeometry(4, 5)
    pre, w, b, h0, c0 = scan_inputs(1 if row else 2, 4, 5, 3, 8, row, torch.float32)
    with FlopCounterMode(display=False) as counter:
        lstm_scan(pre, w, h0, c0, geo, bias=b).sum().backward()
    assert counter.get_total_flops() == 3 * 2 * pre.shape[0] * 4 * 5 * 3 * w.shape[1] * w.shape[2]


def test_the_environment_variable_switches_it_off(monkeypatch):
    monkeypatch.setenv("PIXELRNN_NATIVE", "0")
    assert not native.usable_for(torch.zeros(1))
    assert native.status() == "pure PyTorch (PIXELRNN_NATIVE=0)"
    assert not native.usable_for(torch.zeros(1, dtype=torch.bfloat16))


FALLBACK = """
import warnings, torch
from pixelrnn.nn import lstm_scan, native
from pixelrnn.nn.recurrence import RowGeometry
pre = torch.randn(1, 3, 4, 2, 8)
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    out = [lstm_scan(pre, torch.randn(1, 6, 8), torch.zeros(2), torch.zeros(2), RowGeometry(3, 4)) for _ in range(2)]
print(len([w for w in caught if "native LSTM kernel is not available" in str(w.message)]), "warnings")
print(native.status())
"""


@pytest.mark.parametrize("cxx", ["/nonexistent/c++", "false"])
def test_a_failed_build_falls_back_with_one_warning(cxx, tmp_path):
    """No compiler, or one that fails: one warning per process, the PyTorch version runs; a failed
    build leaves build.log and is not retried by the next process."""
    env = {**os.environ, "CXX": cxx, "PIXELRNN_NATIVE_CACHE": str(tmp_path), "PIXELRNN_NATIVE": "1"}
    for _ in range(2):
        r = subprocess.run([sys.executable, "-c", FALLBACK], env=env, capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr
        assert r.stdout.splitlines()[0] == "1 warnings"
        assert r.stdout.splitlines()[1].startswith("pure PyTorch (native kernel unavailable: ")
    logs = list(tmp_path.rglob("build.log"))
    if cxx == "false":
        assert len(logs) == 1 and "earlier build failed" in r.stdout
    else:
        assert not logs and "no C++ compiler" in r.stdout


ONE_RUNTIME = """
import torch
from pixelrnn.nn import native
assert native.available()
with open("/proc/self/maps") as f:
    print(sorted({line.split()[-1] for line in f if "libgomp" in line or "libiomp" in line}))
"""


@needs_native
@pytest.mark.skipif(not os.path.exists("/proc/self/maps"), reason="Linux only")
def test_the_kernel_shares_torchs_openmp_runtime():
    """Linked with -fopenmp, the library must reuse the libgomp torch loaded (same soname), not
    bring a second OpenMP runtime with threads of its own (checked in a fresh process: other
    packages, e.g. scikit-learn, bring their own under another name)."""
    r = subprocess.run([sys.executable, "-c", ONE_RUNTIME], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert len(eval(r.stdout)) <= 1, r.stdout


@needs_native
def test_the_library_is_built_once_and_cached():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert native.available()
    lib = native.library_path()
    assert lib is not None and os.path.exists(lib)
