"""Cached sampling engine for the Row LSTM PixelRNN (see ``core`` for the engine protocol).

Row start (one matrix product per layer for the whole row): the state-to-state term of row i,
K_ss * h[i-1] over the taps (i-1, j-1), (i-1, j), (i-1, j+1), plus the input-to-state bias.
Per pixel and layer: the input-to-state taps (i, j-1) and (i, j) in ONE matrix product (the layer's
input row is stored so that the two neighbours are adjacent in memory), the gates, the cell, and the
block's 1×1 output conv. h and c of the previous row are kept; nothing else is recomputed.

Conditional networks (``context=(map, weights)``, see ``PixelNetwork.engine_context``): the
unmasked 1×1 conditioning term of every layer is added to its input-to-state pre-activations; the
context map is fixed for the whole run, so the raster engine adds it to the row-start product (one
matrix product per layer and row) and the wavefront engine appends the context of the step's
pixels to its one matrix product per step and layer.
"""
from __future__ import annotations

import torch

from .native_pass import block_align
from .parts import (ColourGates, ColourLinear, LSTMActivation, SkipSum, colour_group, pointwise_weight,
                    recurrent_stack)


def context_slab(ctx: torch.Tensor, t: int, lo: int, hi: int, s: int) -> torch.Tensor:
    """View (S, n, c) of the pixels (i, t - s*i), i = lo..hi, of a contiguous (H, W, n, c) map."""
    sH, sW, sN, sC = ctx.stride()
    S = hi - lo + 1
    return ctx.as_strided((S, ctx.shape[2], ctx.shape[3]), (sH - s * sW if S > 1 else 0, sN, sC),
                          ctx.storage_offset() + lo * sH + (t - s * lo) * sW)


class RowLSTMEngine:
    def __init__(self, model, n: int, H: int, W: int, context=None):
        blocks, L, h, dt, dev = recurrent_stack(model)
        self.n, self.H, self.W, self.L, self.h = n, H, W, L, h
        # X[l][:, j + 1] is the input of block l at pixel j (column 0: the zero left padding)
        self.X = torch.zeros(L + 1, n, W + 1, 2 * h, dtype=dt, device=dev)
        # h of the previous row (then of the current one): hpad[l][:, j + 1], zero columns 0, W + 1
        self.Hs = torch.zeros(L, n, W + 2, h, dtype=dt, device=dev)
        self.Cs = torch.zeros(2, L, n, W, h, dtype=dt, device=dev)  # c of rows i - 1 and i, by parity
        self.SS = torch.empty(L, n, W, 4 * h, dtype=dt, device=dev)
        self.A = torch.empty(L, n, 4 * h, dtype=dt, device=dev)
        self.T = torch.empty(L, n, h, dtype=dt, device=dev)
        self.skip = SkipSum(model.stack, n)
        self.act = act = LSTMActivation(h, n * h)
        self.ctx_rows = self.wctx = None
        if context is not None:  # conditional network: (n, c, H, W) map, per layer (c, 4h)
            cmap, cws = context
            self.ctx_rows = cmap.to(dt).permute(2, 0, 3, 1).contiguous()  # (H, n, W, c)
            self.wctx = [act.scale_g(w.to(dt)).contiguous() for w in cws]
        self.wss, self.bis = [], []
        layers = []
        for l, block in enumerate(blocks):
            lay = block.layer
            wis = lay.input_to_state.masked_weight()[:, :, 0]  # (4h, 2h, 3): taps j-1, j, (j+1 = 0)
            wis_cat = act.scale_g(torch.cat([wis[:, :, 0], wis[:, :, 1]], dim=1).t()).contiguous()
            self.bis.append(act.scale_g(lay.input_to_state.bias))
            self.wss.append(act.scale_g(lay.state_weight()).contiguous())  # (3h, 4h)
            wout, bout = pointwise_weight(block.out)
            layers.append((wis_cat, wout, bout))
            self.Hs[l, :, 1:W + 1] = lay.h0.detach()
            self.Cs[1, l] = lay.c0.detach()  # "row -1" has parity 1
        A = self.A
        self.steps = []  # [parity][j] -> per-layer argument tuples
        for p in range(2):
            per_j = []
            for j in range(W):
                per_l = []
                for l, (wis_cat, wout, bout) in enumerate(layers):
                    a = A[l]
                    per_l.append((
                        self.SS[l, :, j], self.X[l, :, j:j + 2].reshape(n, 4 * h), wis_cat, a,
                        a[:, :3 * h], a[:, 3 * h:], a[:, :h], a[:, h:2 * h], a[:, 2 * h:3 * h],
                        self.Cs[1 - p, l, :, j], self.Cs[p, l, :, j], self.T[l], self.Hs[l, :, j + 1],
                        self.X[l, :, j + 1], self.X[l + 1, :, j + 1], wout, bout))
                per_j.append(per_l)
            self.steps.append(per_j)
        self.x0s = [self.X[0, :, j + 1] for j in range(W)]
        self.outs = [self.X[L, :, j + 1] for j in range(W)]
        for per_j in self.steps:  # the views must alias the buffers (reshape could have copied)
            for per_l in per_j:
                for args in per_l:
                    assert args[1].untyped_storage().data_ptr() == self.X.untyped_storage().data_ptr()
        self.row = 0

    def x0(self, j: int) -> torch.Tensor:
        return self.x0s[j]

    def start_row(self, i: int) -> None:
        self.row = i
        n, W, h = self.n, self.W, self.h
        for l in range(self.L):
            hp = self.Hs[l]
            taps = hp.as_strided((n, W, 3 * h), (hp.stride(0), h, 1))  # [h(j-1) | h(j) | h(j+1)]
            torch.addmm(self.bis[l], taps.reshape(n * W, 3 * h), self.wss[l], out=self.SS[l].view(n * W, 4 * h))
            if self.ctx_rows is not None:  # the conditioning term of the whole row
                self.SS[l].view(n * W, 4 * h).addmm_(self.ctx_rows[i].view(n * W, -1), self.wctx[l])

    def pixel(self, j: int) -> torch.Tensor:
        skip = self.skip if self.skip.enabled else None
        act = self.act
        for l, (ss, xin, wis, a, ofi, g, o, f, ig, cprev, ccur, t, hcur, xl, xnext, wout, bout) in \
                enumerate(self.steps[self.row & 1][j]):
            torch.addmm(ss, xin, wis, out=a)
            act.step_(a, ofi, g, o, f, ig, cprev, ccur, t, hcur)
            torch.addmm(xl, hcur, wout, out=xnext)
            xnext.add_(bout)
            if skip is not None:
                skip.add(l, xnext)
        return skip.total if skip is not None else self.outs[j]

    def end_row(self, i: int) -> None:
        pass


class RowLSTMWavefrontEngine:
    """The same computation on the wavefront schedule (``core._wavefront``): pixel (i, j) at step
    t = s*i + j, all pixels of a step (up to ceil(W / s) rows) at once. Pixel (i, j) reads
    h(i-1, j-1..j+1), c(i-1, j) (steps t-s-1 .. t-s+1) and the layer input at (i, j-1) (step t-1),
    so the states live in small rings of steps, skewed: ring[t % R, layer, row]. A ring slot is
    cleared when its step begins, so whatever a step reads from a pixel outside the image is zero
    (the "row -1" of learned initial states is written in explicitly). Per step and layer: ONE
    matrix product over [h(i-1, j-1) | h(i-1, j) | h(i-1, j+1) | x(i, j-1) | x(i, j)] (and the
    context at (i, j) for a conditional network), the gates, the cell and the block's 1×1 output
    conv. With colour slices (``parts``) the pass of colour c computes the gates, cell and output
    of group c only, from weights whose gate columns are regrouped by colour (``by_colour``)."""

    colour_slices = True

    def __init__(self, model, n: int, H: int, W: int, context=None):
        blocks, L, h, dt, dev = recurrent_stack(model)
        s = max(model.first.kernel_size[1] // 2, 1) + 1
        # conditional network: the context map (H, W, n, c), appended to each step's product
        self.ctx = None if context is None else context[0].to(dt).permute(2, 3, 0, 1).contiguous()
        cw = 0 if context is None else self.ctx.shape[-1]
        self.skew = s
        self.max_rows = S = min(H, -(-W // s))
        self.n, self.H, self.W, self.L, self.h = n, H, W, L, h
        self.RH, self.RC = s + 2, s + 1
        self.X = torch.zeros(2, L + 1, H, n, 2 * h, dtype=dt, device=dev)  # layer inputs
        self.Hh = torch.zeros(self.RH, L, H + 1, n, h, dtype=dt, device=dev)  # row i at index i + 1
        self.Cc = torch.zeros(self.RC, L, H + 1, n, h, dtype=dt, device=dev)
        self.U = torch.empty(L, S, n, 7 * h + cw, dtype=dt, device=dev)
        self.uw = 7 * h + cw
        C = model.channels
        self.skip = SkipSum(model.stack, n * S, C)
        self.act = act = LSTMActivation(h, S * n * h)
        self.by_colour = ColourGates(h, C, S * n, dt, dev)
        self.layers_c = []  # per layer and colour: gate weight and bias; the output conv
        h0s, c0s = [], []
        for l, block in enumerate(blocks):
            lay = block.layer
            wis = lay.input_to_state.masked_weight()[:, :, 0]  # (4h, 2h, 3): taps j-1, j, (j+1 = 0)
            parts = [lay.state_weight(), wis[:, :, 0].t(), wis[:, :, 1].t()]
            if context is not None:
                parts.append(context[1][l].to(dt))  # (c, 4h)
            wcat = act.scale_g(torch.cat(parts, dim=0))
            wout, bout = pointwise_weight(block.out)
            bis = act.scale_g(lay.input_to_state.bias)
            self.layers_c.append((self.by_colour.split(wcat), self.by_colour.split(bis),
                                  ColourLinear(wout, bout, C)))
            h0s.append(lay.h0.detach())
            c0s.append(lay.c0.detach())
        self.h0 = torch.stack(h0s).unsqueeze(1)  # (L, 1, h)
        self.c0 = torch.stack(c0s).unsqueeze(1)
        self.colors = C
        self.native_parts: dict = {}
        self.none = self.X.new_empty(0)
        for t in range(-s - 1, 0):  # the initial states of "row -1" at the steps before step 0
            self._init_row_minus_one(t)

    def _init_row_minus_one(self, t: int) -> None:
        # slot of step t, row -1 holds column t + s
        if 0 <= t + self.skew < self.W:
            self.Hh[t % self.RH, :, 0] = self.h0
            self.Cc[t % self.RC, :, 0] = self.c0

    def begin_step(self, t: int, lo: int, hi: int) -> None:
        # the rows of the step's slots that this step or a later one can read: those of the step
        # (lo..hi) and the few below them that later steps reach (rows in H + 1: index i + 1)
        a = max(lo - 1, 0)
        self.X[t % 2, :, a:hi + 2].zero_()
        self.Hh[t % self.RH, :, a:hi + 3].zero_()
        self.Cc[t % self.RC, :, a:hi + 3].zero_()
        self._init_row_minus_one(t)

    def x0(self, t: int, lo: int, hi: int) -> torch.Tensor:
        return self.X[t % 2, 0, lo:hi + 1].view(-1, 2 * self.h)

    def step(self, t: int, lo: int, hi: int, c: int | None = None) -> torch.Tensor:
        s, n = self.skew, self.n
        S = hi - lo + 1
        N = S * n
        Hh, RH = self.Hh, self.RH
        up_left = Hh[(t - s - 1) % RH, :, lo:hi + 1].unbind(0)  # h(i-1, j-1) per layer
        up = Hh[(t - s) % RH, :, lo:hi + 1].unbind(0)
        up_right = Hh[(t - s + 1) % RH, :, lo:hi + 1].unbind(0)
        h_cur = Hh[t % RH, :, lo + 1:hi + 2].unbind(0)
        c_up = self.Cc[(t - s) % self.RC, :, lo:hi + 1].unbind(0)
        c_cur = self.Cc[t % self.RC, :, lo + 1:hi + 2].unbind(0)
        x_left = self.X[(t - 1) % 2, :, lo:hi + 1].unbind(0)
        x_cur = self.X[t % 2, :, lo:hi + 1].unbind(0)
        U = self.U[:, :S].unbind(0)
        ctx = [] if self.ctx is None else [context_slab(self.ctx, t, lo, hi, s)]
        c = colour_group(c, self.colors)  # gray: its one group is the whole layer
        return self.colour_step(c, N, up_left, up, up_right, h_cur, c_up, c_cur, x_left, x_cur, U, ctx)

    def colour_step(self, c, N, up_left, up, up_right, h_cur, c_up, c_cur, x_left, x_cur, U, ctx):
        """``step`` for colour group c: the first pass gathers the inputs of every layer, the
        later ones only the new group of the layer's input at the current pixel."""
        h = self.h
        hs, gs = self.by_colour.hidden[c], self.by_colour.stream[c]
        a, ofi, g, o, f, ig, tc = self.by_colour.views(c, N)
        skip = self.skip if self.skip.enabled else None
        for l, (wcat, bis, out) in enumerate(self.layers_c):
            uv = U[l].view(N, self.uw)
            xc = x_cur[l].view(N, 2 * h)
            if c == 0:
                torch.cat([up_left[l], up[l], up_right[l], x_left[l], x_cur[l]] + ctx, dim=-1, out=U[l])
            else:
                uv[:, 5 * h + gs.start:5 * h + gs.stop].copy_(xc[:, gs])
            torch.addmm(bis[c], uv, wcat[c], out=a)
            hc = h_cur[l].view(N, h)
            self.act.step_(a, ofi, g, o, f, ig, c_up[l].view(N, h)[:, hs], c_cur[l].view(N, h)[:, hs],
                           tc, hc[:, hs])
            xn = x_cur[l + 1].view(N, 2 * h)
            out.addmm(hc, xn, c, base=xc).add_(out.bias(c))
            if skip is not None:
                skip.add(l, xn, c)
        return skip.out(N) if skip is not None else x_cur[self.L].view(N, 2 * h)

    def native_layers(self, t: int, lo: int, hi: int, c: int | None) -> tuple:
        """What ``step`` does, for a native pass (``native_pass``): kind 1, the buffers, per layer
        the weights of colour group c, and the geometry (see ``nn/native/sampling.cpp``)."""
        c = colour_group(c, self.colors)
        hs, gs = self.by_colour.hidden[c], self.by_colour.stream[c]
        if c not in self.native_parts:
            skips = self.skip.layers if self.skip.enabled else [None] * self.L
            weights = []
            for (wcat, bis, out), skip in zip(self.layers_c, skips):
                weights += [wcat[c], bis[c]] + out.part(c)[0] + ([] if skip is None else skip.part(c)[0])
            out_cols = self.layers_c[0][2].part(c)[1]
            skip_cols = skips[0].part(c)[1] if self.skip.enabled else [0, 0, 0]
            geometry = [hs.start, hs.stop, gs.start, gs.stop] + out_cols + skip_cols
            self.native_parts[c] = (weights, geometry)
        weights, geometry = self.native_parts[c]
        ctx = self.none if self.ctx is None else context_slab(self.ctx, t, lo, hi, self.skew)
        total = self.skip.total if self.skip.enabled else self.none
        k = hs.stop - hs.start
        bufs = [self.X, self.Hh, self.Cc, self.U, ctx, total]
        # torch's sigmoid runs on the gates (N, 4k) and, when they are whole rows, on tanh's scratch (N, h)
        # (the native pass lays its own out as by_colour's)
        align = block_align(self.n, [4 * k] + ([self.h] if k == self.h else []))
        return 1, bufs, weights, [int(c == 0), int(self.act.fast)] + geometry, align
