"""Cached sampling engine for the Diagonal BiLSTM PixelRNN (see ``core`` for the engine protocol).

Left-to-right direction, pixel by pixel: the state at (i, j) needs (i-1, j) and (i, j-1). The part
from the row above (and the input-to-state bias) is one matrix product per layer for the whole row
at the row start; per pixel and layer one matrix product over [x(i, j) | h(i, j-1)] (stored side
by side), the gates, the cell and the block's 1×1 output conv.

Right-to-left direction: its state at (i, j) reads (i, j+1), so it can only run once row i is
complete; its output enters row i + 1 through the one-row shift. At the end of row i it runs for all
layers at once (the layers are independent there: the input of layer l + 1 in row i only uses the
right-to-left states of row i - 1), one batched matrix product per column, right to left. Its
contribution to the blocks of row i + 1 (1×1 output conv of the shifted states, plus the bias) is
then precomputed for the whole row.

Conditional networks (``context=(map, weights)``, see ``PixelNetwork.engine_context``): the
unmasked 1×1 conditioning term of each direction is added to its input-to-state pre-activations,
for the whole row at once (the context map is fixed for the whole run): to the row-start product
of the left-to-right direction and to the end-of-row product of the right-to-left one.
"""
from __future__ import annotations

import torch

from ..nn.native import threads_for
from .parts import (ColourGates, ColourLinear, LSTMActivation, SkipSum, colour_group, pointwise_weight,
                    recurrent_stack)


class DiagonalBiLSTMEngine:
    """Every row buffer is laid out (layer, column, batch, features): the (batch, features) matrix
    of one pixel is contiguous, and a whole row is a (layer, column*batch, features) batch of
    matrices with a uniform row stride, so the per-row products need no copies.

    Colour slices (``parts``; RGB): the left-to-right gate columns are regrouped by colour
    (``ColourGates.order``) in every weight, bias and buffer that holds them, so that the pass of
    colour c computes the contiguous block of group c; the right-to-left direction runs on whole
    rows and is unchanged."""

    colour_slices = True

    def __init__(self, model, n: int, H: int, W: int, context=None):
        blocks, L, h, dt, dev = recurrent_stack(model)
        self.n, self.H, self.W, self.L, self.h = n, H, W, L, h
        G = 4 * h
        # XH[l, k] = [x_l(i, k-1) | h_l(i, k-2)] (left-to-right h); column 0 unused, h(i, -1) = 0
        self.XH = torch.zeros(L + 1, W + 2, n, 3 * h, dtype=dt, device=dev)
        self.Cl = torch.zeros(L, W + 1, n, h, dtype=dt, device=dev)  # c(i, j) at column j + 1
        self.UP = torch.empty(L, W, n, G, dtype=dt, device=dev)  # bias + K_ss(above) h(i-1, j)
        self.R = torch.empty(L, W, n, 2 * h, dtype=dt, device=dev)  # out-conv of shifted r2l + bias
        # right-to-left: h(i, j) at [:, j], column W = zero padding
        self.Hr = torch.zeros(L, W + 1, n, h, dtype=dt, device=dev)
        self.Cr = torch.zeros(L, W + 1, n, h, dtype=dt, device=dev)
        self.PRE = torch.empty(L, W, n, G, dtype=dt, device=dev)
        self.AR = torch.empty(L, n, G, dtype=dt, device=dev)
        self.TR = torch.empty(L, n, h, dtype=dt, device=dev)
        C = self.C = model.channels
        self.skip = SkipSum(model.stack, n, C)
        self.by_colour = gates = ColourGates(h, C, n, dt, dev)
        order = gates.order  # left-to-right gate columns, grouped by colour (identity for C = 1)
        self.act = act = LSTMActivation(h, n * h)  # left-to-right, per pixel
        self.act_r = act_r = LSTMActivation(h, L * n * h)  # right-to-left, all layers at once
        self.ctx = None
        if context is not None:  # conditional network: (n, c, H, W) map, per layer (c, 8h)
            cmap, cws = context
            self.ctx = cmap.to(dt).permute(2, 3, 0, 1).contiguous()  # (H, W, n, c)
            self.wc_l2r = torch.stack([act.scale_g(w[:, :G].to(dt))[:, order] for w in cws]).contiguous()
            self.wc_r2l = torch.stack([act_r.scale_g(w[:, G:].to(dt)) for w in cws]).contiguous()
        b_l2r, w_up = [], []
        self.layers_c = []  # per layer: per colour its block of the gate weight; the output conv
        b_r2l, wr_x, wr_up, wr_left, w_out, b_out = [], [], [], [], [], []
        for block in blocks:
            lay = block.layer
            wis = lay.input_to_state.masked_weight()[:, :, 0, 0]  # (8h, 2h)
            bis = lay.input_to_state.bias.detach()
            ws = lay.state_weight().detach()  # (2, 2h, 4h): rows [tap above | tap left/right]
            b_l2r.append(act.scale_g(bis[:G])[order])
            w_up.append(act.scale_g(ws[0, :h])[:, order])
            wl_cat = act.scale_g(torch.cat([wis[:G].t(), ws[0, h:]], dim=0))[:, order].contiguous()  # (3h, 4h)
            b_r2l.append(act_r.scale_g(bis[G:]))
            wr_x.append(act_r.scale_g(wis[G:].t()))
            wr_up.append(act_r.scale_g(ws[1, :h]))  # the row above (i-1, j)
            wr_left.append(act_r.scale_g(ws[1, h:]))  # the right neighbour (i, j+1)
            wo, bo = pointwise_weight(block.out)
            w_out.append(wo)
            b_out.append(bo)
            self.layers_c.append((gates.split_blocks(wl_cat), ColourLinear(wo, bo, C)))
        self.b_l2r = torch.stack(b_l2r).unsqueeze(1)  # (L, 1, 4h)
        self.w_up = torch.stack(w_up).contiguous()  # (L, h, 4h)
        self.b_r2l = torch.stack(b_r2l).unsqueeze(1)  # (L, 1, 4h)
        self.wr_x = torch.stack(wr_x).contiguous()  # (L, 2h, 4h)
        self.wr_up = torch.stack(wr_up).contiguous()  # (L, h, 4h)
        self.wr_left = torch.stack(wr_left).contiguous()  # (L, h, 4h)
        self.w_out = torch.stack(w_out).contiguous()  # (L, h, 2h)
        self.b_out = torch.stack(b_out).unsqueeze(1)  # (L, 1, 2h)
        self.R.copy_(self.b_out.unsqueeze(1).expand_as(self.R))  # row 0: the shifted state is zero
        self.steps = self.pixel_steps()
        AR = self.AR
        self.scan = [(self.PRE[:, j], self.Hr[:, j + 1], self.Cr[:, j + 1], self.Cr[:, j], self.Hr[:, j])
                     for j in reversed(range(W))]
        self.gates_r = (AR[..., :3 * h], AR[..., 3 * h:], AR[..., :h], AR[..., h:2 * h],
                        AR[..., 2 * h:3 * h])
        XH = self.XH
        self.x0s = [XH[0, j + 1, :, :2 * h] for j in range(W)]
        self.outs = [XH[L, j + 1, :, :2 * h] for j in range(W)]
        # whole rows as (layer, column*batch, features) batches of matrices (views, no copies)
        self.rows_x = XH[:L, 1:W + 1, :, :2 * h].view(L, W * n, 2 * h)  # x_l(i, j)
        self.rows_h = XH[:L, 2:W + 2, :, 2 * h:].view(L, W * n, h)  # left-to-right h(i, j)
        self.rows_hr = self.Hr[:, :W].view(L, W * n, h)  # right-to-left h(i, j)
        self.rows_pre = self.PRE.view(L, W * n, G)
        self.rows_up = self.UP.view(L, W * n, G)
        self.rows_r = self.R.view(L, W * n, 2 * h)

    def x0(self, j: int) -> torch.Tensor:
        return self.x0s[j]

    def start_row(self, i: int) -> None:
        if i == 0:  # h(-1, j) = 0
            self.UP.copy_(self.b_l2r.unsqueeze(1).expand_as(self.UP))
        else:  # the left-to-right h of row i - 1, still in XH
            torch.baddbmm(self.b_l2r, self.rows_h, self.w_up, out=self.rows_up)
        if self.ctx is not None:  # the conditioning term of the whole row, every layer
            self.rows_up.baddbmm_(self._ctx_row(i), self.wc_l2r)

    def _ctx_row(self, i: int) -> torch.Tensor:  # (L, W*n, c): the context of row i, per layer
        return self.ctx[i].view(1, self.W * self.n, -1).expand(self.L, -1, -1)

    def pixel(self, j: int, c: int | None = None) -> torch.Tensor:
        """Every layer at pixel (i, j), colour group c only (see ``parts``; c None: a gray
        engine, whose one group is the whole layer)."""
        c = colour_group(c, self.C)
        skip = self.skip if self.skip.enabled else None
        act = self.act
        for l, (up, xh, wcat, a, ofi, g, o, f, ig, cprev, ccur, t, hcur, xl, r, xnext, hk, wo, block_out) in \
                enumerate(self.steps[j][c]):
            torch.addmm(up, xh, wcat, out=a)
            act.step_(a, ofi, g, o, f, ig, cprev, ccur, t, hcur)
            torch.add(xl, r, out=xnext)
            xnext.addmm_(hk, wo)
            if skip is not None:
                skip.add(l, block_out, c)
        return skip.total if skip is not None else self.outs[j]

    def pixel_steps(self) -> list[list[list[tuple]]]:
        """[j][c] -> per layer the views and weights of ``pixel`` for colour group c (made once: a
        pixel's pass is about 20 small products and element-wise ops, and slicing the views anew
        each time would cost as much again). Per layer: the row-above term, [x | h left], the
        gate weight block, the gate buffer and its views, c left and here, tanh scratch, h here
        (group c), the block's input, the shifted right-to-left term and output (group c), the
        h that group c of the output conv reads, its weight, and the whole block output (skips)."""
        gates, XH, Cl, h = self.by_colour, self.XH, self.Cl, self.h
        out = []
        for j in range(self.W):
            per_c = []
            for c in range(self.C):
                hs, gs, blk = gates.hidden[c], gates.stream[c], gates.blocks[c]
                a, ofi, g, o, f, ig, t = gates.views(c, self.n)
                rows = []
                for l, (wcat, conv) in enumerate(self.layers_c):
                    wo, _, k = conv.parts[c]
                    hcur, xnext = XH[l, j + 2, :, 2 * h:], XH[l + 1, j + 1, :, :2 * h]
                    rows.append((self.UP[l, j][:, blk], XH[l, j + 1], wcat[c], a, ofi, g, o, f, ig,
                                 Cl[l, j][:, hs], Cl[l, j + 1][:, hs], t, hcur[:, hs],
                                 XH[l, j + 1, :, :2 * h][:, gs], self.R[l, j][:, gs], xnext[:, gs],
                                 hcur[:, :k], wo, xnext))
                per_c.append(rows)
            out.append(per_c)
        return out

    def end_row(self, i: int, native: bool = False) -> None:
        """Right-to-left direction over row i, all layers at once; then the shifted contribution
        of its states to row i + 1. ``native``: the scan over the columns as one native call with
        the arithmetic of a native row (``native_pass.NativeRow``; sampling only)."""
        if i == self.H - 1:
            return  # the last row's right-to-left states are shifted out of the image
        torch.baddbmm(self.b_r2l, self.rows_x, self.wr_x, out=self.rows_pre)
        self.rows_pre.baddbmm_(self.rows_hr, self.wr_up)  # h(i-1, j), before the scan overwrites it
        if self.ctx is not None:
            self.rows_pre.baddbmm_(self._ctx_row(i), self.wc_r2l)
        if native:
            torch.ops.pixelrnn_native.diag_scan(self.PRE, self.Hr, self.Cr, self.wr_left, self.act_r.fast,
                                                threads_for(self.n))
        else:
            AR, TR, wr_left, act = self.AR, self.TR, self.wr_left, self.act_r
            ofi, g, o, f, ig = self.gates_r
            for pre_j, h_right, c_right, c_j, h_j in self.scan:
                torch.baddbmm(pre_j, h_right, wr_left, out=AR)
                act.step_(AR, ofi, g, o, f, ig, c_right, c_j, TR, h_j)
        torch.baddbmm(self.b_out, self.rows_hr, self.w_out, out=self.rows_r)

    def native_row(self, first, head, sliced: bool) -> tuple[list, list, list, list]:
        """What a native row (``native_pass.NativeRow``) needs besides the chooser's: the buffers,
        per colour pass (one for a gray engine) its weights, the geometry of the row ([first conv
        rw, its left columns, the LSTM's form]) and of each pass, in the order of
        ``nn/native/diagonal.cpp`` (diag_row)."""
        none = self.XH.new_empty(0)
        skips = self.skip.layers if self.skip.enabled else [None] * self.L
        weights, geo = [], []
        for c in (range(self.C) if sliced else [None]):
            g = colour_group(c, self.C)
            hs, gs = self.by_colour.hidden[g], self.by_colour.stream[g]
            w_first = first.w_row if c is None else first.w_row_c[c]
            out = slice(0, first.out_ch) if c is None else first.slices[c]
            weights.append(none if w_first is None else w_first)
            for (wcat, conv), skip in zip(self.layers_c, skips):
                weights += [wcat[g], conv.parts[g][0]] + ([] if skip is None else skip.part(g)[0])
            head_weights, head_geo = head.native_args(g, sliced)
            weights += head_weights
            skip_cols = skips[0].part(g)[1] if self.skip.enabled else [0, 0, 0]
            geo += [out.start, out.stop, hs.start, hs.stop, gs.start, gs.stop, self.layers_c[0][1].parts[g][2]]
            geo += skip_cols + head_geo[1:]
        total = self.skip.total if self.skip.enabled else none
        bufs = [first.erow, first.above, self.XH, self.Cl, self.UP, self.R, total, *head.scratch(self.n)]
        return bufs, weights, [first.rw, first.cols, int(self.act.fast)], geo
