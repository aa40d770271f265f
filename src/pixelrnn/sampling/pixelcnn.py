"""Cached sampling engine for PixelCNN (see ``core`` for the engine protocol).

Each block is ReLU, 1×1 -> ReLU, k×k mask B -> ReLU, 1×1, plus the input. Per layer the engine
keeps the last r = k // 2 rows (and the current one) of the k×k conv's input (Fast-PixelCNN++
style). Row start: the taps on the r rows above are one matrix product for the whole row (bias
included). Per pixel and layer: the two 1×1 convs and ONE matrix product over the r left taps and
the centre tap, which sit side by side in the row buffer.

Conditional networks (``context=(map, weights)``, see ``PixelNetwork.engine_context``): the
unmasked 1×1 conditioning term of every block is added to the output of its k×k conv; the context
map is fixed for the whole run, so the raster engine adds it to the row-start product (one matrix
product per layer and row) and the wavefront engine appends the context of the step's pixels to
its one matrix product per step and layer.
"""
from __future__ import annotations

import torch

from .parts import ColourLinear, SkipSum, pointwise_weight
from .row_lstm import context_slab


def conv_stack(model):
    """(blocks, L, h, (r, rw, kw), dtype, device) of a PixelCNN's residual stack: its k×k masked
    convs reach r rows up and rw columns either side."""
    blocks = model.stack.blocks
    conv0 = blocks[0].conv
    kh, kw = conv0.kernel_size
    return blocks, len(blocks), conv0.out_channels, (kh // 2, kw // 2, kw), conv0.weight.dtype, conv0.weight.device


class PixelCNNEngine:
    def __init__(self, model, n: int, H: int, W: int, context=None):
        blocks, L, h, (r, rw, kw), dt, dev = conv_stack(model)
        self.n, self.H, self.W, self.L, self.h, self.r, self.rw, self.kw = n, H, W, L, h, r, rw, kw
        self.X = torch.zeros(L + 1, n, 2 * h, dtype=dt, device=dev)
        # Y[l][:, a, rw + j]: input of the k×k conv (ReLU'd) at rows i-r .. i (a = r: current row)
        self.Y = torch.zeros(L, n, r + 1, W + 2 * rw, h, dtype=dt, device=dev)
        self.ZA = torch.empty(L, n, W, h, dtype=dt, device=dev)  # bias + taps on the rows above
        self.T1 = torch.empty(L, n, 2 * h, dtype=dt, device=dev)
        self.Z = torch.empty(L, n, h, dtype=dt, device=dev)
        self.skip = SkipSum(model.stack, n)
        self.ctx_rows = self.wctx = None
        if context is not None:  # conditional network: (n, c, H, W) map, per layer (c, h)
            cmap, cws = context
            self.ctx_rows = cmap.to(dt).permute(2, 0, 3, 1).contiguous()  # (H, n, W, c)
            self.wctx = [w.to(dt).contiguous() for w in cws]
        self.w_above, self.b_conv, layers = [], [], []
        for block in blocks:
            w = block.conv.masked_weight()  # (h, h, r + 1, kw)
            self.w_above.append(w[:, :, :r].permute(2, 3, 1, 0).reshape(r * kw * h, h).contiguous()
                                if r > 0 else None)
            self.b_conv.append(block.conv.bias.detach().clone())
            w_cur = w[:, :, r, :rw + 1].permute(2, 1, 0).reshape((rw + 1) * h, h).contiguous()
            w_red, b_red = pointwise_weight(block.reduce)
            w_exp, b_exp = pointwise_weight(block.expand)
            layers.append((w_red, b_red, w_cur, w_exp, b_exp))
        self.steps = []
        for j in range(W):
            per_l = []
            for l, (w_red, b_red, w_cur, w_exp, b_exp) in enumerate(layers):
                win = self.Y[l, :, r, j:j + rw + 1].reshape(n, (rw + 1) * h)
                assert win.untyped_storage().data_ptr() == self.Y.untyped_storage().data_ptr()  # a view
                per_l.append((self.X[l], self.T1[l], b_red, w_red, self.Y[l, :, r, j + rw],
                              self.ZA[l, :, j], win, w_cur, self.Z[l], w_exp, self.X[l + 1], b_exp))
            self.steps.append(per_l)
        self.x0s = [self.X[0]] * W
        self.out = self.X[L]

    def x0(self, j: int) -> torch.Tensor:
        return self.x0s[j]

    def start_row(self, i: int) -> None:
        n, W, h, r, kw = self.n, self.W, self.h, self.r, self.kw
        for l in range(self.L):
            if r == 0:
                self.ZA[l].copy_(self.b_conv[l].expand(n, W, h))
            else:
                y = self.Y[l]
                s = y.stride()
                taps = y.as_strided((n, W, r, kw, h), (s[0], s[2], s[1], s[2], s[3]))
                torch.addmm(self.b_conv[l], taps.reshape(n * W, r * kw * h), self.w_above[l],
                            out=self.ZA[l].view(n * W, h))
            if self.ctx_rows is not None:  # the conditioning term of the whole row
                self.ZA[l].view(n * W, h).addmm_(self.ctx_rows[i].view(n * W, -1), self.wctx[l])

    def pixel(self, j: int) -> torch.Tensor:
        skip = self.skip if self.skip.enabled else None
        for l, (x, t1, b_red, w_red, ycell, za, win, w_cur, z, w_exp, xnext, b_exp) in \
                enumerate(self.steps[j]):
            torch.clamp_min(x, 0, out=t1)
            torch.addmm(b_red, t1, w_red, out=ycell)
            ycell.relu_()
            torch.addmm(za, win, w_cur, out=z)
            z.relu_()
            torch.addmm(x, z, w_exp, out=xnext)
            xnext.add_(b_exp)
            if skip is not None:
                skip.add(l, xnext)
        return skip.total if skip is not None else self.out

    def end_row(self, i: int) -> None:
        if self.r > 0:
            self.Y[:, :, :self.r].copy_(self.Y[:, :, 1:].clone() if self.r > 1 else self.Y[:, :, 1:])


class PixelCNNWavefrontEngine:
    """The same computation on the wavefront schedule (``core._wavefront``): pixel (i, j) at step
    t = s*i + j, all pixels of a step at once. The k×k conv's input is kept in a ring of the last
    s*r + rw + 1 steps, skewed: Y[t % R, layer, row]; a slot is cleared when its step begins, so
    every tap outside the image reads zero. Per step and layer: the two 1×1 convs and ONE matrix
    product over the gathered taps (and the context of the step's pixels for a conditional
    network)."""

    def __init__(self, model, n: int, H: int, W: int, context=None):
        blocks, L, h, (r, rw, kw), dt, dev = conv_stack(model)
        s = max(model.first.kernel_size[1] // 2, rw) + 1
        # conditional network: the context map (H, W, n, c), appended to each step's product
        self.ctx = None if context is None else context[0].to(dt).permute(2, 3, 0, 1).contiguous()
        cw = 0 if context is None else self.ctx.shape[-1]
        self.skew = s
        self.max_rows = S = min(H, -(-W // s))
        self.n, self.H, self.W, self.L, self.h, self.r, self.rw = n, H, W, L, h, r, rw
        self.R = s * r + rw + 1
        # taps (row offset a - r, column offset d - rw) that can be non-zero: rows above, then the
        # left ones and the centre of the current row
        self.taps = [(a, d) for a in range(r) for d in range(kw)] + [(r, d) for d in range(rw + 1)]
        self.Y = torch.zeros(self.R, L, H + r, n, h, dtype=dt, device=dev)  # row i at index i + r
        self.X = torch.zeros(L + 1, S * n, 2 * h, dtype=dt, device=dev)
        self.T1 = torch.empty(S * n, 2 * h, dtype=dt, device=dev)
        self.Q = torch.empty(L, S, n, len(self.taps) * h + cw, dtype=dt, device=dev)
        self.Z = torch.empty(L, S * n, h, dtype=dt, device=dev)  # per layer: earlier colours' groups stay
        C = model.channels
        self.skip = SkipSum(model.stack, n * S, C)
        self.cached_step = None  # see views
        self.layers = []  # per layer: reduce, the k×k taps, expand (see parts.ColourLinear)
        for l, block in enumerate(blocks):
            w = block.conv.masked_weight()  # (h, h, r + 1, kw)
            parts = [w[:, :, a, d].t() for a, d in self.taps]
            if context is not None:
                parts.append(context[1][l].to(dt))  # (c, h)
            w_taps = torch.cat(parts, dim=0).contiguous()
            self.layers.append((ColourLinear(*pointwise_weight(block.reduce), C),
                                ColourLinear(w_taps, block.conv.bias.detach().clone(), C, reads_all=True),
                                ColourLinear(*pointwise_weight(block.expand), C)))
        self.native_parts: dict = {}
        self.none = self.X.new_empty(0)

    def begin_step(self, t: int, lo: int, hi: int) -> None:
        # the rows of the slot that this step or a later one can read (row i at index i + r):
        # the step's own and up to 2r + 1 below them
        self.Y[t % self.R, :, max(lo - 1, 0):hi + 2 * self.r + 3].zero_()
        self.cached_step = None

    def x0(self, t: int, lo: int, hi: int) -> torch.Tensor:
        return self.X[0, :(hi - lo + 1) * self.n]

    colour_slices = True

    def views(self, t: int, lo: int, hi: int) -> tuple:
        """Per layer, the views a step works on: its input and output, the k×k conv's tap slabs
        (the centre last), the gathered taps, the conv's output (made once per step, shared by
        the colour passes)."""
        if self.cached_step == (t, lo, hi):
            return self.cached_views
        s, n, r, rw, R = self.skew, self.n, self.r, self.rw, self.R
        N = (hi - lo + 1) * n
        # per tap, the slab of every layer: rows lo + a - r .. (index lo + a ..), step t + s(a-r) + d-rw
        slabs = [self.Y[(t + s * (a - r) + d - rw) % R, :, lo + a:hi + a + 1].unbind(0)
                 for a, d in self.taps]
        ctx = [] if self.ctx is None else [context_slab(self.ctx, t, lo, hi, s)]
        X = self.X[:, :N].unbind(0)
        Q = self.Q[:, :hi - lo + 1].unbind(0)
        Z = self.Z[:, :N].unbind(0)
        per_layer = [(X[l], X[l + 1], [sl[l] for sl in slabs] + ctx, Q[l], Q[l].view(N, -1), Z[l])
                     for l in range(self.L)]
        self.cached_step, self.cached_views = (t, lo, hi), (N, per_layer, X[self.L])
        return self.cached_views

    def step(self, t: int, lo: int, hi: int, c: int | None = None) -> torch.Tensor:
        """The step's pixels through every layer; ``c``: colour group c only (see ``parts``): the
        first pass gathers the k×k conv's taps, the later ones only the centre's new group."""
        h = self.h
        N, per_layer, last = self.views(t, lo, hi)
        t1 = self.T1[:N]
        centre = (len(self.taps) - 1) * h  # first column of the centre tap among the taps
        skip = self.skip if self.skip.enabled else None
        for l, (reduce, taps, expand) in enumerate(self.layers):
            x, xn, parts, q, qv, z = per_layer[l]
            k = reduce.reach(c)
            torch.clamp_min(x[:, :k], 0, out=t1[:, :k])
            y = parts[len(self.taps) - 1].view(N, h)  # the centre tap: this step's slot
            new = reduce.addmm(t1, y, c).relu_()
            if not c:  # c None or 0
                torch.cat(parts, dim=-1, out=q)
            else:
                g = reduce.outs[c]
                qv[:, centre + g.start:centre + g.stop].copy_(new)
            taps.addmm(qv, z, c).relu_()
            expand.addmm(z, xn, c, base=x).add_(expand.bias(c))
            if skip is not None:
                skip.add(l, xn, c)
        return skip.out(N) if skip is not None else last

    def native_layers(self, t: int, lo: int, hi: int, c: int | None) -> tuple:
        """What ``step`` does, for a native pass (``native_pass``): kind 0, the buffers, per layer
        the weights of colour group c, and the geometry (see ``nn/native/sampling.cpp``)."""
        if c not in self.native_parts:
            skips = self.skip.layers if self.skip.enabled else [None] * self.L
            weights, groups = [], []
            for layers, skip in zip(self.layers, skips):
                for lin in layers + (() if skip is None else (skip,)):
                    w, cols = lin.part(c)
                    weights += w
                    groups.append(cols)
            groups = groups[:4] if self.skip.enabled else groups[:3] + [[0, 0, 0]]
            taps = [v for tap in self.taps for v in tap]
            self.native_parts[c] = (weights, [self.r, self.rw, self.R, int(not c)] + sum(groups, []) + taps)
        weights, layer = self.native_parts[c]
        ctx = self.none if self.ctx is None else context_slab(self.ctx, t, lo, hi, self.skew)
        total = self.skip.total if self.skip.enabled else self.none
        # align 1: the pass runs no torch element-wise operation (see native_pass.block_align)
        return 0, [self.Y, self.X, self.T1, self.Q, self.Z, ctx, total], weights, layer, 1
