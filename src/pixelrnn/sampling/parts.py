"""The parts of the stack that are the same for every architecture, computed incrementally by
the cached samplers: the first k×k mask-A convolution (raster and skewed wavefront forms), the
output head, the learned skip connections, and the element-wise LSTM step of the recurrent
engines."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..nn.logistic import output_logits


def recurrent_stack(model) -> tuple[list, int, int, torch.dtype, torch.device]:
    """(blocks, L, h, dtype, device) of a Row LSTM / Diagonal BiLSTM model's residual stack."""
    blocks = model.stack.blocks
    w0 = blocks[0].out.weight
    return blocks, len(blocks), blocks[0].layer.hidden, w0.dtype, w0.device


def pointwise_weight(conv) -> tuple[torch.Tensor, torch.Tensor]:
    """(in, out) weight (transposed, contiguous, masked) and bias of a 1×1 MaskedConv2d."""
    return (conv.weight * conv.mask)[:, :, 0, 0].t().contiguous(), conv.bias.detach().clone()


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

    def pixel(self, j: int, out: torch.Tensor) -> None:
        if self.windows is None:
            out.copy_(self.above_j[j])
        else:
            torch.addmm(self.above_j[j], self.windows[j], self.w_row, out=out)

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
        self.table = torch.arange(model.levels, device=dev).to(dt) * (2.0 / (model.levels - 1)) - 1.0
        sT, sI, sN, sC = self.E.stride()
        self.strides = (sT, sI, sN, sC)
        # the current values (known ones; 0 elsewhere) at their skewed places
        grid = self.E.as_strided((H, W, n, C), (s * sT + sI, sT, sN, sC), self.off * sT + r * sI)
        grid.copy_(self.table[images.permute(2, 3, 0, 1)])

    def pixel(self, t: int, lo: int, hi: int, out: torch.Tensor) -> None:
        sT, sI, sN, sC = self.strides
        S, s, r, kw, C = hi - lo + 1, self.s, self.r, self.kw, self.C
        taps = self.E.as_strided((S, self.n, r + 1, kw, C), (sI, sN, s * sT + sI, sT, sC),
                                 t * sT + lo * sI)  # t + off - s*r - rw = t
        torch.addmm(self.bias, taps.reshape(S * self.n, -1), self.w, out=out)

    def set_value(self, t: int, lo: int, hi: int, c: int, v: torch.Tensor) -> None:
        self.E[t + self.off, lo + self.r:hi + self.r + 1, :, c] = self.table[v]


class Head:
    """ReLU -> 1×1 mask B -> ReLU -> 1×1 mask B, for one pixel and one colour channel."""

    def __init__(self, model, n: int):
        self.w1, self.b1 = pointwise_weight(model.head1)
        w2, b2 = pointwise_weight(model.head2)
        P = model.config.outputs  # logits, or 3 numbers per logistic of a mixture output
        self.w2 = [w2[:, c * P:(c + 1) * P].contiguous() for c in range(model.channels)]
        self.b2 = [b2[c * P:(c + 1) * P].contiguous() for c in range(model.channels)]
        self.levels, self.mixtures = model.levels, model.config.mixtures
        dt, dev = self.w1.dtype, self.w1.device
        self.t0 = torch.empty(n, self.w1.shape[0], dtype=dt, device=dev)
        self.t1 = torch.empty(n, self.w1.shape[1], dtype=dt, device=dev)

    def logits(self, s: torch.Tensor, c: int) -> torch.Tensor:  # (N, 2h) -> new (N, levels)
        N = s.shape[0]
        t0, t1 = (self.t0, self.t1) if N == self.t0.shape[0] else (self.t0[:N], self.t1[:N])
        torch.clamp_min(s, 0, out=t0)
        torch.addmm(self.b1, t0, self.w1, out=t1)
        t1.relu_()
        return output_logits(torch.addmm(self.b2[c], t1, self.w2[c]), self.levels, self.mixtures)


class SkipSum:
    """Learned skip connections of a ResidualStack: total = sum over blocks of W_l x_{l+1} + b_l,
    accumulated one block at a time (biases summed up front)."""

    def __init__(self, stack, n: int):
        self.enabled = stack.skips is not None
        if not self.enabled:
            return
        ws = [pointwise_weight(s) for s in stack.skips]
        self.w = [w for w, _ in ws]
        self.bias = torch.stack([b for _, b in ws]).sum(0)
        self.total = torch.empty(n, self.w[0].shape[1], dtype=self.w[0].dtype, device=self.w[0].device)

    def add(self, l: int, x: torch.Tensor) -> None:
        total = self.total if x.shape[0] == self.total.shape[0] else self.total[:x.shape[0]]
        if l == 0:
            torch.addmm(self.bias, x, self.w[0], out=total)
        else:
            total.addmm_(x, self.w[l])

    def out(self, N: int) -> torch.Tensor:
        return self.total if N == self.total.shape[0] else self.total[:N]


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
