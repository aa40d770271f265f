"""The parts of the stack that are the same for every architecture, computed incrementally by
the cached samplers: the first k×k mask-A convolution (raster and skewed wavefront forms), the
output head, the learned skip connections, and the element-wise LSTM step of the recurrent
engines.

Colour slices (RGB). Every feature map of the stack is split into C contiguous colour groups
(``nn.masked.channel_groups``); a mask-B layer's group c reads the groups <= c of its input, the
first (mask-A) conv's group c the colours < c of the pixel. So the pass for colour c of a pixel
only has to compute group c of every layer: the groups < c were computed by the earlier passes of
the same pixel and no longer change. An engine with ``colour_slices = True`` does that when the
driver passes it ``c``; the first conv, the head and the skip sum below take the same ``c``. One
full computation per pixel instead of C.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..nn.logistic import output_logits
from ..nn.masked import channel_groups


def recurrent_stack(model) -> tuple[list, int, int, torch.dtype, torch.device]:
    """(blocks, L, h, dtype, device) of a Row LSTM / Diagonal BiLSTM model's residual stack."""
    blocks = model.stack.blocks
    w0 = blocks[0].out.weight
    return blocks, len(blocks), blocks[0].layer.hidden, w0.dtype, w0.device


def pointwise_weight(conv) -> tuple[torch.Tensor, torch.Tensor]:
    """(in, out) weight (transposed, contiguous, masked) and bias of a 1×1 MaskedConv2d."""
    return (conv.weight * conv.mask)[:, :, 0, 0].t().contiguous(), conv.bias.detach().clone()


def colour_slices(n: int, colors: int) -> list[slice]:
    """The contiguous range of each colour group among ``n`` features."""
    g = channel_groups(n, colors)
    return [slice(int((g < c).sum()), int((g <= c).sum())) for c in range(colors)]


def colour_group(c: int | None, colors: int) -> int:
    """The colour group that a pass computes: ``c``, or for a gray engine (c None) its one group,
    0, which is the whole layer. An RGB engine must be told the colour."""
    if c is None:
        if colors != 1:
            raise ValueError(f"an engine for {colors} colours computes one colour group per pass: pass c")
        return 0
    return c


class ColourLinear:
    """A masked layer as a matrix product (in, out), split by the colour groups of its output:
    group c reads only the first ``reach`` inputs (a 1×1 mask-B layer: the groups <= c; every
    input with ``reads_all``, e.g. the taps of a k×k conv, whose weights are masked already), with
    its own contiguous weight and bias. ``c=None``: the whole layer."""

    def __init__(self, w: torch.Tensor, b: torch.Tensor, colors: int, reads_all: bool = False):
        self.w, self.b = w, b
        ins, outs = colour_slices(w.shape[0], colors), colour_slices(w.shape[1], colors)
        self.outs = outs
        reach = [w.shape[0] if reads_all else ins[c].stop for c in range(colors)]
        self.parts = [(w[:reach[c], outs[c]].contiguous(), b[outs[c]].contiguous(), reach[c])
                      for c in range(colors)]

    def reach(self, c: int | None) -> int:
        """How many leading inputs group c reads (all for c=None)."""
        return self.w.shape[0] if c is None else self.parts[c][2]

    def bias(self, c: int | None) -> torch.Tensor:
        return self.b if c is None else self.parts[c][1]

    def part(self, c: int | None) -> tuple[list[torch.Tensor], list[int]]:
        """Group c (None: the whole layer) for a native pass: [weight, bias] and [reach, first
        output column, end]."""
        if c is None:
            return [self.w, self.b], [self.w.shape[0], 0, self.w.shape[1]]
        w, b, k = self.parts[c]
        return [w, b], [k, self.outs[c].start, self.outs[c].stop]

    def addmm(self, x: torch.Tensor, out: torch.Tensor, c: int | None,
              base: torch.Tensor | None = None) -> torch.Tensor:
        """out (group c's columns) = x @ w + (base if given, else the bias); returns the columns
        written."""
        if c is None:
            return torch.addmm(self.b if base is None else base, x, self.w, out=out)
        w, b, k = self.parts[c]
        s = self.outs[c]
        return torch.addmm(b if base is None else base[:, s], x[:, :k], w, out=out[:, s])


class FirstConv:
    """The 7×7 (k×k) mask-A convolution of the stack, computed incrementally.

    Row start: the taps on the r = k // 2 rows above are one convolution over those rows for the
    whole row (bias included). Per pixel: one matrix product over the r pixels to the left (plus
    the centre pixel when C > 1: a colour group reads the earlier colours of its own pixel) read
    from a channels-last copy of the current row."""

    def __init__(self, model, n: int, H: int, W: int):
        conv = model.first
        C, dt, dev = model.channels, conv.weight.dtype, conv.weight.device
        r = conv.kernel_size[0] // 2
        rw = conv.kernel_size[1] // 2
        w = conv.masked_weight()  # (2h, C, r + 1, 2 rw + 1)
        self.C, self.r, self.rw, self.H, self.W, self.n = C, r, rw, H, W, n
        self.out_ch = w.shape[0]
        self.w_above = w[:, :, :r].contiguous() if r > 0 else None
        self.bias = conv.bias.detach().clone()
        cols = rw + 1 if C > 1 else rw  # left taps (+ the centre tap for C > 1)
        self.cols = cols
        self.w_row = (w[:, :, r, :cols].permute(2, 1, 0).reshape(cols * C, self.out_ch).contiguous()
                      if cols > 0 else None)
        self.slices = colour_slices(self.out_ch, C)
        self.w_row_c = [None if self.w_row is None else self.w_row[:, sl].contiguous() for sl in self.slices]
        # embedded image with the zero padding of the conv: rows above, columns left and right
        self.epad = torch.zeros(n, C, H + r, W + 2 * rw, dtype=dt, device=dev)
        self.erow = torch.zeros(n, W + rw, C, dtype=dt, device=dev)  # current row, channels-last
        self.above = torch.empty(n, W, self.out_ch, dtype=dt, device=dev)
        self.windows = ([self.erow[:, j:j + cols].reshape(n, cols * C) for j in range(W)]
                        if cols > 0 else None)
        self.above_j = [self.above[:, j] for j in range(W)]
        self.cells = [[self.erow[:, j + rw, c] for c in range(C)] for j in range(W)]
        self.table = torch.arange(model.levels, device=dev).to(dt) * (2.0 / (model.levels - 1)) - 1.0

    def embed(self, v: torch.Tensor) -> torch.Tensor:
        """Same numbers as PixelNetwork.embed (int values -> [-1, 1])."""
        return self.table[v]

    def start_row(self, i: int, row_values: torch.Tensor) -> None:
        """row_values: int (n, C, W), the current contents of row i (known values, 0 elsewhere)."""
        self.erow[:, self.rw:].copy_(self.embed(row_values).transpose(1, 2))
        if self.r > 0:
            out = F.conv2d(self.epad[:, :, i:i + self.r], self.w_above, self.bias)  # (n, 2h, 1, W)
            self.above.copy_(out[:, :, 0].transpose(1, 2))
        else:
            self.above.copy_(self.bias.expand_as(self.above))

    def pixel(self, j: int, out: torch.Tensor, c: int | None = None) -> None:
        """The conv's output at pixel (i, j) into ``out`` (n, 2h); ``c``: only colour group c."""
        if c is not None:
            s = self.slices[c]
            out, above = out[:, s], self.above_j[j][:, s]
            w = self.w_row_c[c]
        else:
            above, w = self.above_j[j], self.w_row
        if self.windows is None:
            out.copy_(above)
        else:
            torch.addmm(above, self.windows[j], w, out=out)

    def set_value(self, j: int, c: int, v: torch.Tensor) -> None:
        self.cells[j][c].copy_(self.table[v])

    def end_row(self, i: int) -> None:
        rw = self.rw
        self.epad[:, :, i + self.r, rw:rw + self.W].copy_(self.erow[:, rw:].transpose(1, 2))


class SkewedFirstConv:
    """The k×k mask-A convolution for the wavefront schedule (pixel (i, j) at step t = s*i + j).

    The embedded image is stored skewed, E[s*i + j + off, i + r] (off = s*r + rw; zero padding
    above, left and right come for free: those entries are never written), so that the k×k
    neighbourhoods of all pixels of a step are ONE strided view; one matrix product per step."""

    def __init__(self, model, n: int, H: int, W: int, s: int, images: torch.Tensor):
        conv = model.first
        C, dt, dev = model.channels, conv.weight.dtype, conv.weight.device
        kh, kw = conv.kernel_size
        r, rw = kh // 2, kw // 2
        self.r, self.rw, self.kw, self.s, self.n, self.C = r, rw, kw, s, n, C
        self.off = s * r + rw
        steps = s * (H - 1) + W
        self.E = torch.zeros(steps + self.off + rw + 1, H + r, n, C, dtype=dt, device=dev)
        w = conv.masked_weight()  # (2h, C, r + 1, kw)
        self.w = w.permute(2, 3, 1, 0).reshape((r + 1) * kw * C, w.shape[0]).contiguous()
        self.bias = conv.bias.detach().clone()
        self.slices = colour_slices(w.shape[0], C)
        self.w_c = [self.w[:, sl].contiguous() for sl in self.slices]
        self.bias_c = [self.bias[sl].contiguous() for sl in self.slices]
        self.table = torch.arange(model.levels, device=dev).to(dt) * (2.0 / (model.levels - 1)) - 1.0
        sT, sI, sN, sC = self.E.stride()
        self.strides = (sT, sI, sN, sC)
        # the current values (known ones; 0 elsewhere) at their skewed places
        grid = self.E.as_strided((H, W, n, C), (s * sT + sI, sT, sN, sC), self.off * sT + r * sI)
        grid.copy_(self.table[images.permute(2, 3, 0, 1)])

    def pixel(self, t: int, lo: int, hi: int, out: torch.Tensor, c: int | None = None) -> None:
        """The conv's output at the step's pixels into ``out`` (S*n, 2h); ``c``: only colour group c."""
        sT, sI, sN, sC = self.strides
        S, s, r, kw, C = hi - lo + 1, self.s, self.r, self.kw, self.C
        taps = self.E.as_strided((S, self.n, r + 1, kw, C), (sI, sN, s * sT + sI, sT, sC),
                                 t * sT + lo * sI)  # t + off - s*r - rw = t
        if c is None:
            torch.addmm(self.bias, taps.reshape(S * self.n, -1), self.w, out=out)
        else:
            torch.addmm(self.bias_c[c], taps.reshape(S * self.n, -1), self.w_c[c], out=out[:, self.slices[c]])

    def set_value(self, t: int, lo: int, hi: int, c: int, v: torch.Tensor) -> None:
        self.E[t + self.off, lo + self.r:hi + self.r + 1, :, c] = self.table[v]

    def native_args(self, c: int | None) -> tuple[list[torch.Tensor], list[int]]:
        """``pixel`` for a native pass (``nn/native/sampling.cpp``): [weight, bias] of group c and
        [E's strides, r, kw, C, the group's output columns]."""
        sl = slice(0, self.w.shape[1]) if c is None else self.slices[c]
        weights = [self.w, self.bias] if c is None else [self.w_c[c], self.bias_c[c]]
        return weights, [*self.strides, self.r, self.kw, self.C, sl.start, sl.stop]


class Head:
    """ReLU -> 1×1 mask B -> ReLU -> 1×1 mask B, for one pixel and one colour channel.

    ``logits(s, c)`` computes the whole hidden layer; with colour slices, ``advance(s, c)`` adds
    group c of the hidden layer in every pass and ``logits(s, c, sliced=True)`` reads the groups
    <= c that the passes of this pixel have left."""

    def __init__(self, model, n: int):
        w1, b1 = pointwise_weight(model.head1)
        C = model.channels
        self.first = ColourLinear(w1, b1, C)
        w2, b2 = pointwise_weight(model.head2)
        P = model.config.outputs  # logits, or 3 numbers per logistic of a mixture output
        reach = [sl.stop for sl in colour_slices(w1.shape[1], C)]
        self.w2 = [w2[:, c * P:(c + 1) * P].contiguous() for c in range(C)]
        self.w2_c = [self.w2[c][:reach[c]].contiguous() for c in range(C)]
        self.reach = reach
        self.b2 = [b2[c * P:(c + 1) * P].contiguous() for c in range(C)]
        self.levels, self.mixtures = model.levels, model.config.mixtures
        dt, dev = w1.dtype, w1.device
        self.t0 = torch.empty(n, w1.shape[0], dtype=dt, device=dev)
        self.t1 = torch.empty(n, w1.shape[1], dtype=dt, device=dev)

    def scratch(self, N: int) -> tuple[torch.Tensor, torch.Tensor]:
        return (self.t0, self.t1) if N == self.t0.shape[0] else (self.t0[:N], self.t1[:N])

    def advance(self, s: torch.Tensor, c: int) -> None:
        """Colour slices: group c of the hidden layer from the stream's groups <= c, (N, 2h)."""
        t0, t1 = self.scratch(s.shape[0])
        k = self.first.parts[c][2]
        torch.clamp_min(s[:, :k], 0, out=t0[:, :k])
        self.first.addmm(t0, t1, c).relu_()

    def logits(self, s: torch.Tensor, c: int, sliced: bool = False) -> torch.Tensor:  # (N, 2h) -> new (N, levels)
        t0, t1 = self.scratch(s.shape[0])
        if sliced:
            out = torch.addmm(self.b2[c], t1[:, :self.reach[c]], self.w2_c[c])
        else:
            torch.clamp_min(s, 0, out=t0)
            self.first.addmm(t0, t1, None).relu_()
            out = torch.addmm(self.b2[c], t1, self.w2[c])
        return output_logits(out, self.levels, self.mixtures)

    def native_args(self, c: int, sliced: bool) -> tuple[list[torch.Tensor], list[int]]:
        """``advance`` and ``logits`` for a native pass: [hidden layer weight, bias, output weight,
        bias] and [sliced, the hidden layer's reach and columns, the output layer's reach]."""
        if sliced:
            (w1, b1), cols = self.first.part(c)
            return [w1, b1, self.w2_c[c], self.b2[c]], [1, *cols, self.reach[c]]
        (w1, b1), cols = self.first.part(None)
        return [w1, b1, self.w2[c], self.b2[c]], [0, *cols, self.w2[c].shape[0]]


class SkipSum:
    """Learned skip connections of a ResidualStack: total = sum over blocks of W_l x_{l+1} + b_l,
    accumulated one block at a time (biases summed up front); ``c``: only colour group c."""

    def __init__(self, stack, n: int, colors: int = 1):
        self.enabled = stack.skips is not None
        if not self.enabled:
            return
        ws = [pointwise_weight(s) for s in stack.skips]
        self.bias = torch.stack([b for _, b in ws]).sum(0)
        self.layers = [ColourLinear(w, self.bias, colors) for w, _ in ws]
        w0 = ws[0][0]
        self.total = torch.empty(n, w0.shape[1], dtype=w0.dtype, device=w0.device)

    def add(self, l: int, x: torch.Tensor, c: int | None = None) -> None:
        total = self.total if x.shape[0] == self.total.shape[0] else self.total[:x.shape[0]]
        if l == 0:
            self.layers[0].addmm(x, total, c)
        else:
            self.layers[l].addmm(x, total, c, base=total)

    def out(self, N: int) -> torch.Tensor:
        return self.total if N == self.total.shape[0] else self.total[:N]


class ColourGates:
    """The gates of an LSTM layer regrouped by colour for the colour passes (see ``parts``): the
    4h gate columns [o | f | i | g] (each split into colour groups) reordered so that the o, f, i
    and g columns of group c sit side by side, and per colour a gate buffer with its views."""

    def __init__(self, h: int, colors: int, rows: int, dtype, device):
        self.hidden = colour_slices(h, colors)  # colour groups of h, c and the gates
        self.stream = colour_slices(2 * h, colors)  # colour groups of the residual stream
        self.columns = [torch.cat([torch.arange(k * h + sl.start, k * h + sl.stop) for k in range(4)])
                        for sl in self.hidden]
        self.order = torch.cat(self.columns)  # all 4h columns, regrouped by colour
        self.blocks = [slice(4 * sl.start, 4 * sl.stop) for sl in self.hidden]  # colour c in that order
        self.buffers = [torch.empty(rows, 4 * (sl.stop - sl.start), dtype=dtype, device=device)
                        for sl in self.hidden]
        self.scratch = torch.empty(rows, h, dtype=dtype, device=device)

    def split(self, w: torch.Tensor) -> list[torch.Tensor]:
        """(..., 4h) -> per colour its gate columns (..., 4 h_c), contiguous."""
        return [w[..., cols].contiguous() for cols in self.columns]

    def split_blocks(self, w: torch.Tensor) -> list[torch.Tensor]:
        """(..., 4h) already in ``order`` -> per colour its block (..., 4 h_c), contiguous."""
        return [w[..., blk].contiguous() for blk in self.blocks]

    def views(self, c: int, N: int) -> tuple[torch.Tensor, ...]:
        """The gate buffer of colour c for N rows and its views (a, ofi, g, o, f, i, tanh scratch),
        as ``LSTMActivation.step_`` takes them."""
        k = self.hidden[c].stop - self.hidden[c].start
        a = self.buffers[c][:N]
        return a, a[:, :3 * k], a[:, 3 * k:], a[:, :k], a[:, k:2 * k], a[:, 2 * k:3 * k], self.scratch[:N, :k]


FAST_TANH_NUMEL = 2048  # from this many elements on, 2*sigmoid(2x)-1 beats torch.tanh on CPU


class LSTMActivation:
    """The element-wise part of an LSTM step, in place, in one of two forms chosen by size:
    torch.tanh for small tensors (fewer ops), or tanh(x) = 2*sigmoid(2x) - 1 like the training
    scan (``nn.recurrence``) for larger ones, where torch.tanh is several times slower than
    sigmoid on some CPU builds. In the second form the g-gate columns of every weight and bias
    that feed the gates are pre-multiplied by 2 (exact in floating point; see ``scale_g``), so one
    sigmoid covers all four gates."""

    def __init__(self, hidden: int, numel: int):
        self.h = hidden
        self.fast = numel >= FAST_TANH_NUMEL

    def scale_g(self, w: torch.Tensor) -> torch.Tensor:
        """A copy of w (..., 4h) with its g columns doubled in the fast form."""
        w = w.detach().clone()
        if self.fast:
            w[..., 3 * self.h:] *= 2
        return w

    def gates_(self, a, ofi, g) -> None:
        if self.fast:
            a.sigmoid_()
            g.mul_(2).sub_(1)
        else:
            ofi.sigmoid_()
            g.tanh_()

    def tanh(self, c, out) -> None:
        if self.fast:
            torch.mul(c, 2, out=out)
            out.sigmoid_()
            out.mul_(2).sub_(1)
        else:
            torch.tanh(c, out=out)

    def step_(self, a, ofi, g, o, f, i, c_prev, c, t, h) -> None:
        """One LSTM step from the pre-activations ``a`` (views ofi, g, o, f, i of it), in place:
        c = f * c_prev + i * g and h = o * tanh(c), with ``t`` as scratch for tanh(c)."""
        self.gates_(a, ofi, g)
        torch.mul(f, c_prev, out=c)
        c.addcmul_(i, g)
        self.tanh(c, t)
        torch.mul(o, t, out=h)
