"""The sampling driver shared by every architecture: the schedules (raster order or wavefront),
the value choice, completion with particles, and the two parts of the stack that are the same for
all architectures (the first k×k mask-A convolution and the output head), computed incrementally.

An *engine* (one per architecture and schedule, see ``row_lstm.py``, ``diagonal_bilstm.py``,
``pixelcnn.py``) holds the cached activations of the residual blocks. A raster-order engine
provides::

    engine.x0(j)        the (n, 2h) buffer that receives the first conv's output for pixel (i, j)
    engine.start_row(i) per-row work that only needs rows < i (e.g. state-to-state terms)
    engine.pixel(j)     run every block at pixel (i, j); returns the (n, 2h) stream for the head
    engine.end_row(i)   per-row work that needs the whole row i (e.g. right-to-left direction)

A wavefront engine has ``skew`` s (pixel (i, j) runs at step t = s*i + j) and ``max_rows`` and
provides ``begin_step(t, lo, hi)``, ``x0(t, lo, hi)`` and ``step(t, lo, hi)`` for the pixels
(i, t - s*i), i = lo..hi, of a step, as (S*n, features) matrices (row-major over (i, batch)).

``pixel``/``step`` only *write* activations of the current position(s) and only *read* those of
earlier ones, so they can run several times on the same pixels (once per colour channel, each time
with one more channel of the pixel known) and the last run leaves the exact state behind.
"""
from __future__ import annotations

import sys
from typing import Callable

import torch
import torch.nn.functional as F

from ..nn.logistic import output_logits

__all__ = ["generate", "FirstConv", "Head", "pointwise_weight"]


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
        """Same numbers as PixelModel._embed (int values -> [-1, 1])."""
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


class _Progress:
    def __init__(self, progress, total: int, desc: str):
        self.total, self.done, self.bar, self.cb = total, 0, None, None
        if callable(progress):
            self.cb = progress
        elif progress:
            from tqdm import tqdm
            self.bar = tqdm(total=total, desc=desc, unit="value", file=sys.stderr, leave=False,
                            dynamic_ncols=True, mininterval=0.25)

    def update(self, k: int) -> None:
        self.done += k
        if self.bar is not None:
            self.bar.update(k)
        if self.cb is not None:
            self.cb(self.done, self.total)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def slab(x: torch.Tensor, c: int, t: int, lo: int, hi: int, s: int) -> torch.Tensor:
    """View of the positions (c, i, t - s*i), i = lo..hi, of a contiguous (C, H, W, n, ...)
    tensor: shape (S, n, ...). With s = W and lo = hi = i it is the single pixel (i, t - W*i)."""
    st = x.stride()
    S = hi - lo + 1
    row = st[1] - s * st[2] if S > 1 else 0
    return x.as_strided((S,) + tuple(x.shape[3:]), (row,) + st[3:],
                        x.storage_offset() + c * st[0] + lo * st[1] + (t - s * lo) * st[2])


class _Chooser:
    """Turns the logits of value positions into values, the same way for every method and schedule.

    Known values are kept. Unknown ones are drawn by inverse CDF: ONE ``torch.rand(n,
    generator=...)`` per value position that has an unknown value in the batch, all drawn up front
    in raster order (so the draws do not depend on the order in which a schedule visits the
    positions); the value is the number of entries of the float64 cumulative softmax(logits / T)
    that are < u. Also accumulates the particle log-weights: the model's exact (T = 1) log-prob of
    each known value that comes after an unknown value of the same image in raster order.

    State is kept channels-first, batch-last, (C, H, W, n), so that the positions of one step of
    any schedule are one strided view (see :func:`slab`).

    ``decide`` (optional) replaces the random draw: ``decide(logits, c, t, lo, hi, s, unknown)``
    gets the logits (S*n, levels) of channel c at the positions of a step that has unknown values,
    and ``unknown``, a bool (S, n) mask of them (None: all unknown), and returns the values, int64
    (S, n) (known ones are kept whatever it returns). No uniforms are drawn. Used by the entropy
    decoder of :mod:`pixelrnn.compression`, and by its encoder, which returns the true values."""

    def __init__(self, values, known, generator, temperature, weights: bool, record: bool,
                 levels: int, record_dtype, decide: Callable | None = None):
        n, C, H, W = values.shape
        dev = values.device
        self.n, self.C, self.H, self.W = n, C, H, W
        self.temperature = float(temperature)
        self.v = values.permute(1, 2, 3, 0).contiguous()  # (C, H, W, n), updated in place
        if known is None:
            self.kn = None
            self.samp = self.anyk = None
            positions = None
        else:
            self.kn = known.permute(1, 2, 3, 0).contiguous()
            all_known = self.kn.all(-1)
            self.samp = (~all_known).tolist()  # [c][i][j]: some value is drawn here
            self.anyk = self.kn.any(-1).tolist()
            positions = (~all_known).permute(1, 2, 0).reshape(-1)  # raster order (i, j, c)
        self.decide = decide
        # the uniforms: one torch.rand(n) per position with an unknown value, in raster order
        P = 0 if decide is not None else C * H * W if positions is None else int(positions.sum())
        draws = [torch.rand(n, generator=generator, device=dev) for _ in range(P)]
        self.u = torch.zeros(H * W * C, n, dtype=torch.float64, device=dev)
        if P:
            stacked = torch.stack(draws).to(torch.float64)
            if positions is None:
                self.u.copy_(stacked)
            else:
                self.u[positions] = stacked
        self.u = self.u.view(H, W, C, n).permute(2, 0, 1, 3).contiguous()  # (C, H, W, n)
        self.w = self.needw = None
        if weights:
            self.w = torch.zeros(n, dtype=torch.float64, device=dev)
            if self.kn is not None:
                raster = torch.arange(C * H * W, device=dev).view(H, W, C).permute(2, 0, 1)
                big = torch.full_like(raster, C * H * W)
                first = torch.where(~self.kn, raster.unsqueeze(-1), big.unsqueeze(-1)).flatten(0, 2).min(0).values
                self.wm = self.kn & (raster.unsqueeze(-1) > first)  # (C, H, W, n)
                self.needw = self.wm.any(-1).tolist()
        self.rec = None
        if record:
            self.rec = torch.full((C, H, W, n, levels), float("nan"), dtype=record_dtype, device=dev)

    def _flags(self, c: int, t: int, lo: int, hi: int, s: int) -> tuple[bool, bool, bool]:
        """(draw, mixed, weights) for the positions of a step."""
        if self.kn is None:
            return True, False, False
        js = [(i, t - s * i) for i in range(lo, hi + 1)]
        samp = any(self.samp[c][i][j] for i, j in js)
        mixed = samp and any(self.anyk[c][i][j] for i, j in js)  # some known values to keep
        needw = self.needw is not None and any(self.needw[c][i][j] for i, j in js)
        return samp, mixed, needw

    def needed(self, c: int, t: int, lo: int, hi: int, s: int) -> bool:
        """Whether the logits of channel c at these positions are used at all."""
        if self.rec is not None:
            return True
        samp, _, needw = self._flags(c, t, lo, hi, s)
        return samp or needw

    def choose(self, logits: torch.Tensor, c: int, t: int, lo: int, hi: int, s: int):
        """logits (S*n, levels) of channel c at the positions of a step -> new values (S, n), or
        None when all of them are known."""
        S, n = hi - lo + 1, self.n
        if self.rec is not None:
            slab(self.rec, c, t, lo, hi, s).copy_(logits.view(S, n, -1))
        if self.decide is not None:
            samp, mixed, _ = self._flags(c, t, lo, hi, s)
            if not samp:
                return None
            vals = slab(self.v, c, t, lo, hi, s)
            unknown = ~slab(self.kn, c, t, lo, hi, s) if mixed else None
            v = self.decide(logits, c, t, lo, hi, s, unknown)
            vals.copy_(v if unknown is None else torch.where(unknown, v, vals))
            return vals
        samp, mixed, needw = self._flags(c, t, lo, hi, s)
        lg = logits.to(torch.float64)
        v = None
        vals = slab(self.v, c, t, lo, hi, s)
        if samp:
            u = slab(self.u, c, t, lo, hi, s).reshape(S * n, 1).contiguous()
            # T != 1: shift the maximum to 0 first, so that a tiny T sends the others to -inf (argmax)
            z = lg if self.temperature == 1.0 else (lg - lg.amax(-1, keepdim=True)) / self.temperature
            cdf = torch.softmax(z, -1).cumsum_(-1)
            v = torch.searchsorted(cdf, u).view(S, n).clamp_max_(lg.shape[-1] - 1)
            if mixed:
                v = torch.where(slab(self.kn, c, t, lo, hi, s), vals, v)
            vals.copy_(v)
        if needw:
            logp = torch.log_softmax(lg, -1).gather(1, vals.reshape(S * n, 1)).view(S, n)
            self.w += torch.where(slab(self.wm, c, t, lo, hi, s), logp, 0.0).sum(0)
        return v

    def images(self) -> torch.Tensor:  # (n, C, H, W)
        return self.v.permute(3, 0, 1, 2)

    def logits(self) -> torch.Tensor | None:  # (n, levels, C, H, W)
        return None if self.rec is None else self.rec.permute(3, 4, 0, 1, 2)


def _naive(model, ch: _Chooser, prog: _Progress) -> None:
    C, H, W = ch.C, ch.H, ch.W
    images = ch.images()
    for i in range(H):
        for j in range(W):
            t = i * W + j
            for c in range(C):
                if ch.needed(c, t, i, i, W):
                    logits = model._logits(images.contiguous())[i, j, :, c]  # one full pass per value
                    ch.choose(logits, c, t, i, i, W)
            prog.update(C)


def _raster(model, ch: _Chooser, prog: _Progress, engine) -> None:
    """Pixel-by-pixel schedule in raster order (for engines whose pixel (i, 0) needs all of row
    i - 1, like the Diagonal BiLSTM's)."""
    n, C, H, W = ch.n, ch.C, ch.H, ch.W
    first = FirstConv(model, n, H, W)
    head = Head(model, n)
    images = ch.images()
    for i in range(H):
        first.start_row(i, images[:, :, i])
        engine.start_row(i)
        for j in range(W):
            x0 = engine.x0(j)
            t = i * W + j
            for c in range(C):
                need = ch.needed(c, t, i, i, W)
                if not need and c < C - 1:
                    continue  # this pass only matters for the logits of channel c
                first.pixel(j, x0)
                s = engine.pixel(j)
                if need:
                    v = ch.choose(head.logits(s, c), c, t, i, i, W)
                    if v is not None:  # the pixel's values, for the first conv of later passes/pixels
                        first.set_value(j, c, v[0])
            prog.update(C)
        engine.end_row(i)
        first.end_row(i)


def _wavefront(model, ch: _Chooser, prog: _Progress, engine) -> None:
    """Wavefront schedule: pixel (i, j) at step t = s*i + j, every pixel of a step at once.

    Pixel (i, j) needs the values and activations of the row above up to column j + s - 1 (the
    first conv reaches r columns right, a 3×3 conv or the Row LSTM's state one column), which are
    all at earlier steps when s = max(those reaches) + 1. s*(H-1) + W steps instead of H*W: for
    28×28 and s = 4, 136 steps of up to 7 pixels."""
    n, C, H, W = ch.n, ch.C, ch.H, ch.W
    s = engine.skew
    first = SkewedFirstConv(model, n, H, W, s, ch.images())
    head = Head(model, n * engine.max_rows)
    for t in range(s * (H - 1) + W):
        lo, hi = max(0, -((W - 1 - t) // s)), min(H - 1, t // s)
        engine.begin_step(t, lo, hi)
        if lo > hi:
            continue
        x0 = engine.x0(t, lo, hi)
        for c in range(C):
            need = ch.needed(c, t, lo, hi, s)
            if not need and c < C - 1:
                continue
            first.pixel(t, lo, hi, x0)
            out = engine.step(t, lo, hi)
            if need:
                v = ch.choose(head.logits(out, c), c, t, lo, hi, s)
                if v is not None:
                    first.set_value(t, lo, hi, c, v)
        prog.update(C * (hi - lo + 1))


def generate(model, values: torch.Tensor, known: torch.Tensor | None, *, generator=None,
             temperature: float = 1.0, method: str = "cached", particles: int = 1,
             progress: bool | Callable = False, record: bool = False, desc: str = "sampling",
             keep_particles: bool = False, schedule: str | None = None,
             decide: Callable | None = None):
    """Core of sample()/complete(), arguments already checked.

    values: int64 (B, C, H, W) on the model's device (unknown positions hold anything in range);
    known: bool (B, C, H, W) or None (nothing known). Returns ``(images, logits, log_weights)``:
    images int64 (B, C, H, W) (all B*K particles, unresampled, with ``keep_particles``); with
    ``record=True`` the logits (B*K, levels, C, H, W) of every value position as the sampler
    computed them, else None; log_weights (B, K) float64 (None when K = 1). ``schedule``
    ("raster" or "wavefront") overrides the engine's default schedule (for tests). ``decide``
    replaces the random draw by a callback (see :class:`_Chooser`; particles must be 1)."""
    B, C, H, W = values.shape
    K = particles
    if K > 1:
        values = values.repeat_interleave(K, dim=0)
        known = known.repeat_interleave(K, dim=0) if known is not None else None
    values = values.masked_fill(~known, 0) if known is not None else torch.zeros_like(values)
    prog = _Progress(progress, C * H * W, desc)
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            ch = _Chooser(values, known, generator, temperature, weights=K > 1, record=record,
                          levels=model.levels, record_dtype=model.first.weight.dtype, decide=decide)
            if method == "naive":
                _naive(model, ch, prog)
            else:
                engine = model._sampling_engine(ch.n, H, W, schedule=schedule)
                if getattr(engine, "skew", None) is not None:
                    _wavefront(model, ch, prog, engine)
                else:
                    _raster(model, ch, prog, engine)
            images = ch.images().contiguous()
            logits = ch.logits()
            log_w = None
            if K > 1:
                log_w = ch.w.view(B, K)
                if not keep_particles:
                    images, logits = resample(log_w, generator, images, logits)
    finally:
        model.train(was_training)
        prog.close()
    return images, logits, log_w


def resample(log_w: torch.Tensor, generator, images: torch.Tensor,
             logits: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Importance resampling: keep one of the K particles of each of the B images, drawn by the
    normalised weights ``log_w`` (B, K) with one ``torch.rand(B, generator=...)``. ``images``
    (B*K, ...) and ``logits`` (B*K, ... or None) -> their (B, ...) rows."""
    B, K = log_w.shape
    probs = torch.softmax(log_w, dim=1).cumsum_(1)
    u = torch.rand(B, generator=generator, device=images.device).to(torch.float64)
    pick = torch.searchsorted(probs, u.unsqueeze(1)).squeeze_(1).clamp_max_(K - 1)
    rows = torch.arange(B, device=images.device) * K + pick
    return images[rows], (logits[rows] if logits is not None else None)


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
