"""The samplers' native wavefront pass (``nn/native/sampling.cpp``, ``sampling/native_pass.py``)
gives exactly the numbers of the Python pass: the same samples, the same recorded logits, the
same particle weights and the same compressed bytes, for every wavefront architecture and option,
on any number of threads (the pass is cut into blocks of rows, one per thread). The exactness
tests of ``test_sampling.py`` run on the native pass too, where it is available."""
import pytest
import torch

import pixelrnn
from pixelrnn.compression import compress, decompress
from pixelrnn.nn import native
from pixelrnn.sampling.chooser import draw
from pixelrnn.sampling.native_pass import NativePass

pytestmark = pytest.mark.skipif(not native.available(), reason="no native library (no C++ compiler)")

# (architecture, options): every engine with a native pass, its options that change the pass
CASES = [("pixelcnn", {}), ("pixelcnn", {"kernel": 5, "skip": True}), ("pixelcnn", {"first_kernel": 3}),
         ("row_lstm", {}), ("row_lstm", {"skip": True}), ("row_lstm", {"mixtures": 2}),
         ("multiscale", {}), ("multiscale", {"base": "pixelcnn"}), ("row_lstm", {"classes": 3}),
         ("pixelcnn", {"classes": 2, "mixtures": 3})]


def make(arch, C, hidden=8, dtype=torch.float32, **options):
    torch.manual_seed(0)
    model = pixelrnn.create_model(arch, channels=C, levels=7, hidden=hidden, layers=3, **options)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.3)
    return model.to(dtype).eval()


def both(monkeypatch, fn):
    """fn() with the native pass and with the Python pass."""
    monkeypatch.setenv("PIXELRNN_NATIVE", "1")
    a = fn()
    monkeypatch.setenv("PIXELRNN_NATIVE", "0")
    b = fn()
    monkeypatch.setenv("PIXELRNN_NATIVE", "1")
    return a, b


@pytest.fixture
def threads():
    n = torch.get_num_threads()
    yield torch.set_num_threads
    torch.set_num_threads(n)


@pytest.mark.parametrize("arch,options", CASES)
@pytest.mark.parametrize("C", [1, 3])
def test_native_pass_samples_and_logits_equal_the_python_pass(arch, options, C, monkeypatch, threads):
    threads(2)
    model = make(arch, C, **options)
    y = torch.tensor([0, 1, 1, 0]) if model.classes else None

    def sample():
        return model.sample(4, height=9, width=7, y=y, generator=torch.Generator().manual_seed(3))

    a, b = both(monkeypatch, sample)
    assert torch.equal(a, b)
    if arch == "multiscale":
        return
    values = torch.zeros(4, C, 9, 7, dtype=torch.long)

    def recorded():  # every position's logits, the values drawn from them by the chooser
        return model.generate(values, None, y=y, generator=torch.Generator().manual_seed(3), record=True,
                              temperature=0.7)[:2]

    (ia, la), (ib, lb) = both(monkeypatch, recorded)
    assert torch.equal(ia, ib) and torch.equal(la, lb)


@pytest.mark.parametrize("arch", ["pixelcnn", "row_lstm"])
def test_native_pass_completion_with_particles_and_temperature(arch, monkeypatch, threads):
    """Known values (the chooser keeps them) and particle weights take the pass's logits; plain
    draws are made inside the pass: both as in the Python pass."""
    threads(3)
    model = make(arch, 3)
    x = torch.randint(0, 7, (3, 3, 8, 10), generator=torch.Generator().manual_seed(1))
    known = torch.zeros(3, 3, 8, 10, dtype=torch.bool)
    known[:, :, :3] = True
    known[1, 0, 5, 4] = True

    def complete():
        return model.complete(x, known, torch.Generator().manual_seed(5), particles=4, temperature=0.8)

    a, b = both(monkeypatch, complete)
    assert torch.equal(a, b)
    assert torch.equal(a[known], x[known])


@pytest.mark.parametrize("arch", ["pixelcnn", "row_lstm"])
def test_native_pass_gives_the_same_samples_on_any_number_of_threads(arch, threads):
    model = make(arch, 3, dtype=torch.float64)
    out = []
    for n in (1, 2, 3):
        threads(n)
        out.append(model.sample(5, height=12, width=9, generator=torch.Generator().manual_seed(2)))
    assert torch.equal(out[0], out[1]) and torch.equal(out[0], out[2])


@pytest.mark.parametrize("arch", ["pixelcnn", "row_lstm"])
def test_native_pass_codes_the_same_bytes(arch, monkeypatch, threads):
    """Compression takes the pass's logits: the same file either way, and each decodes."""
    threads(2)
    model = make(arch, 3)
    images = torch.randint(0, 7, (3, 3, 6, 8), generator=torch.Generator().manual_seed(4))
    a, b = both(monkeypatch, lambda: compress(model, images))
    assert a == b
    assert torch.equal(torch.stack([d.image for d in decompress(model, a)]), images)


def test_the_native_draw_equals_the_python_draw(monkeypatch, threads):
    threads(2)
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(300, 256, generator=g) * 4
    u = torch.rand(300, 1, generator=g, dtype=torch.float64)
    u[:3] = torch.tensor([[0.0], [1.0], [1 - 1e-17]])  # the ends: value 0, and the last value
    for t in (1.0, 0.5, 1e-6, 1e-320):  # 1e-320: subnormal, no finite 1 / T
        a, b = both(monkeypatch, lambda: draw(logits, u, t))
        assert torch.equal(a, b) and a.shape == (300, 1)
        assert a.min() >= 0 and a.max() <= 255


def test_engines_without_a_native_pass_use_the_python_pass():
    model = make("pixelcnn", 1)
    engine = model.net.sampling_engine(2, 4, 4, schedule="raster")
    assert NativePass.of(engine, None, None, 2, False) is None


@pytest.mark.parametrize("C,n", [(3, 8), (3, 4), (3, 5), (1, 4)])
def test_native_row_lstm_with_whole_step_sigmoids_equals_the_python_pass(C, n, monkeypatch, threads):
    """Large enough for the LSTM step's other form (tanh(x) = 2 sigmoid(2x) - 1, torch's sigmoid on
    the whole step's gates as one range, whose last elements torch computes apart): the blocks
    start where that makes no difference (native_pass.block_align), on any number of threads."""
    model = make("row_lstm", C, hidden=64)
    values = torch.zeros(n, C, 9, 32, dtype=torch.long)
    engine = model.net.sampling_engine(n, 9, 32)
    assert engine.act.fast  # the form under test

    def recorded():
        return model.generate(values, None, generator=torch.Generator().manual_seed(3), record=True)[:2]

    out = []
    for k in (1, 2, 3):
        threads(k)
        out.append(recorded())
    threads(2)
    (ia, la), (ib, lb) = both(monkeypatch, recorded)
    assert torch.equal(ia, ib) and torch.equal(la, lb)
    for i, lg in out:
        assert torch.equal(i, ia) and torch.equal(lg, la)


# -- the Diagonal BiLSTM: whole rows of plain draws in one native call (NativeRow) ----------------

DIAGONAL = [({}, 3), ({}, 1), ({"skip": True}, 3), ({"first_kernel": 3}, 1), ({"classes": 2}, 3)]


def drawn_by_inverse_cdf(model, x, seed, y=None, temperature=1.0, tol=1e-6):
    """Whether every value of the samples x (n, C, H, W) is the inverse CDF of its uniform (one
    torch.rand(n) per value in raster order, as the chooser draws them) under the model's exact
    conditional given the earlier values (teacher forced), except where the uniform lies within
    tol of a cumulative probability (there float rounding may pick either side)."""
    n, C, H, W = x.shape
    u = torch.rand(H * W * C, n, generator=torch.Generator().manual_seed(seed)).double()
    u = u.view(H, W, C, n).permute(3, 2, 0, 1)  # (n, C, H, W)
    with torch.no_grad():
        logits = model(x, y) if y is not None else model(x)  # (n, levels, C, H, W)
    cdf = (logits.double() / temperature).softmax(1).cumsum(1)
    expect = (cdf < u.unsqueeze(1)).sum(1).clamp_max(model.levels - 1)
    near = ((cdf - u.unsqueeze(1)).abs() < tol).any(1)
    return bool(((expect == x) | near).all())


@pytest.mark.parametrize("options,C", DIAGONAL)
def test_native_diagonal_rows_draw_from_the_exact_conditionals(options, C, monkeypatch, threads):
    threads(2)
    model = make("diagonal_bilstm", C, dtype=torch.float64, **options)
    y = torch.tensor([1, 0, 1, 1, 0]) if model.classes else None
    for seed, t in ((3, 1.0), (4, 0.6)):
        def sample():
            return model.sample(5, height=6, width=7, y=y, temperature=t, generator=torch.Generator().manual_seed(seed))
        a, b = both(monkeypatch, sample)
        assert drawn_by_inverse_cdf(model, a, seed, y, t)
        assert torch.equal(a, b)  # the Python pass's draws (its arithmetic differs only in the last bits)


def test_native_diagonal_rows_on_any_number_of_threads(threads):
    model = make("diagonal_bilstm", 3, hidden=16)
    out = []
    for k in (1, 2, 3):
        threads(k)
        out.append(model.sample(7, height=5, width=6, generator=torch.Generator().manual_seed(2)))
    assert torch.equal(out[0], out[1]) and torch.equal(out[0], out[2])
    assert drawn_by_inverse_cdf(model, out[0], 2, tol=1e-4)


def test_native_diagonal_completion_rows_with_known_values_take_the_python_pass(monkeypatch, threads):
    """Rows with known values (and coding, particles, recorded logits) stay on the Python pass; the
    rows after them are drawn natively: the known values are kept, the rest as in the Python pass."""
    threads(2)
    model = make("diagonal_bilstm", 3, dtype=torch.float64)
    x = torch.randint(0, 7, (4, 3, 6, 5), generator=torch.Generator().manual_seed(1))
    known = torch.zeros(4, 3, 6, 5, dtype=torch.bool)
    known[:, :, :2] = True
    known[0, 1, 3, 2] = True  # one known value in row 3: that row takes the Python pass
    a, b = both(monkeypatch, lambda: model.complete(x, known, torch.Generator().manual_seed(5)))
    assert torch.equal(a, b) and torch.equal(a[known], x[known])
    images = torch.randint(0, 7, (2, 3, 4, 5), generator=torch.Generator().manual_seed(4))
    a, b = both(monkeypatch, lambda: compress(model.float(), images))
    assert a == b


def test_mixture_outputs_take_the_python_pass():
    """The native row draws from logits; a mixture output's come from its logistics in Python."""
    from pixelrnn.sampling.native_pass import NativeRow
    from pixelrnn.sampling.parts import FirstConv, Head
    for mixtures, native_row in ((2, False), (0, True)):
        net = make("diagonal_bilstm", 3, mixtures=mixtures).net
        row = NativeRow.of(net.sampling_engine(2, 4, 4), FirstConv(net, 2, 4, 4), Head(net, 2), True)
        assert (row is not None) == native_row
