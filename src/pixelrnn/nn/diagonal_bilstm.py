"""Diagonal BiLSTM layer (PixelRNN paper §3.2): the whole causal context in one layer.

For each of two directions the input map is skewed so that row r moves r places right::

    a b c           a b c . .          skewed column k holds the pixels (r, k - r): a diagonal.
    d e f    ->     . d e f .          An LSTM runs over the columns, left to right; the state
    g h i           . . g h i          at (r, k) reads rows r-1 and r of column k-1.

In image coordinates (r, k-1) is the left neighbour and (r-1, k-1) the pixel above, so the
left-to-right state at (i, j) sees every pixel above-left of it and to its left.

    input-to-state   1×1 conv, mask B, computed for the whole map (before skewing)
    state-to-state   unmasked 2×1 conv over the previous skewed column, rows r-1 and r only
                     (never r+1: that would be a pixel to the right, in the future)
    padding          h and c are held at exactly zero outside the image in the skewed map

The right-to-left direction runs the same way on the width-flipped map. Its state at (i, j) has
seen pixels to the right of j in row i - future pixels - so it is flipped back and shifted DOWN
one row (zeros in the top row) before it is added to the left-to-right output: position (i, j)
then gets the right-to-left state of (i-1, j), which summarises rows <= i-1 only.

Implementation: the skew is never materialised. ``lstm_scan`` with a ``DiagonalGeometry`` walks
the diagonals i + j = k of the unskewed map through strided views; ``skew``/``unskew`` below show
the same arrangement explicitly (and the tests check that the two agree). Nor is the flip: the
geometry's ``mirror=(1,)`` runs the second direction right to left on maps in image coordinates
(the native kernel by reading its columns in reverse; the PyTorch version flips them itself).

Known blind spot (inherent to the paper's design, documented by the tests): value (i, j, c) does not
see the last value of row i-1 unless it is within reach of the first 7×7 mask-A convolution.
Every feature of row i-1 comes before that value in raster order, and the right-to-left
direction reaches row i only through the one-row shift.

Layout: channels-last with rows first, ``(H, W, B, C)``.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from .recurrence import DiagonalGeometry, lstm_scan_band
from .masked import MaskedConv2d, channel_groups


def _skew_index(height: int, width: int, device=None) -> tuple[torch.Tensor, torch.Tensor]:
    # pixel (r, j) sits at skewed (row r, column k = r + j)
    r = torch.arange(height, device=device)[:, None].expand(height, width)
    k = r + torch.arange(width, device=device)[None, :]
    return r, k


def skew(x: torch.Tensor) -> torch.Tensor:
    """(..., H, W) -> (..., H, H + W - 1): row r shifted right by r, zeros elsewhere."""
    H, W = x.shape[-2:]
    r, k = _skew_index(H, W, x.device)
    out = x.new_zeros(*x.shape[:-2], H, H + W - 1)
    out[..., r, k] = x
    return out


def unskew(y: torch.Tensor, width: int) -> torch.Tensor:
    """Inverse of :func:`skew`: (..., H, H + W - 1) -> (..., H, W)."""
    H = y.shape[-2]
    r, k = _skew_index(H, width, y.device)
    return y[..., r, k]


class AddShiftedDown(torch.autograd.Function):
    """out (2, H, W, B, h), above (W, B, h) or None -> (H, W, B, h): out[0] + out[1] shifted down
    one row; row 0 gets ``above`` (the right-to-left state of the row above a band of rows; None:
    zeros, the top of the image). The left-to-right state at (i, j) plus the right-to-left state
    of (i-1, j). One pass each way (indexing out[0], out[1] would make each backward allocate and
    fill a zero gradient)."""

    @staticmethod
    def forward(ctx, out, above):
        y = torch.empty_like(out[0], memory_format=torch.contiguous_format)
        if above is None:
            y[:1].copy_(out[0, :1])
        else:
            torch.add(out[0, :1], above, out=y[:1])
        torch.add(out[0, 1:], out[1, :-1], out=y[1:])
        ctx.above = above is not None
        return y

    @staticmethod
    def backward(ctx, grad):
        d = grad.new_empty((2,) + tuple(grad.shape))
        d[0].copy_(grad)
        d[1, :-1].copy_(grad[1:])
        d[1, -1:].zero_()
        return d, grad[0] if ctx.above else None


class DiagonalBiLSTM(nn.Module):
    def __init__(self, in_channels: int, hidden: int, colors: int = 1):
        super().__init__()
        self.hidden = hidden
        gate_groups = channel_groups(hidden, colors).repeat(8)  # 2 directions x [o | f | i | g]
        # both directions' 1x1 input-to-state convs as one conv with 2 * 4h outputs
        self.input_to_state = MaskedConv2d(in_channels, 8 * hidden, 1, "B", colors,
                                           out_groups=gate_groups)
        # (direction, 4h out, h in, tap): tap 0 reads row r-1, tap 1 reads row r
        self.state_to_state = nn.Parameter(torch.empty(2, 4 * hidden, hidden, 2))
        bound = 1.0 / math.sqrt(2 * hidden)
        nn.init.uniform_(self.state_to_state, -bound, bound)
        with torch.no_grad():
            b = self.input_to_state.bias.view(2, 4, hidden)
            b[:, 1].fill_(1.0)  # forget gates start open

    def state_weight(self) -> torch.Tensor:  # (2, 2h, 4h), rows ordered tap-major
        h = self.hidden
        return self.state_to_state.permute(0, 3, 2, 1).reshape(2, 2 * h, 4 * h)

    def input_to_state_product(self, x: torch.Tensor) -> torch.Tensor:  # (H, W, B, Cin) -> (2, H, W, B, 4h)
        """Both directions' gate inputs without the bias (``lstm_scan`` adds it), in image
        coordinates: one (H, W, B, 2, 4h) matrix product, returned as a strided view."""
        H, W, B, Cin = x.shape
        w = self.input_to_state.masked_weight()[:, :, 0, 0]  # (8h, Cin)
        return F.linear(x, w).view(H, W, B, 2, 4 * self.hidden).permute(3, 0, 1, 2, 4)

    def forward(self, x: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        """(H, W, B, Cin) -> (H, W, B, h). ``cond``: an optional (H, W, B, 8h) term added to the
        input-to-state maps, in image coordinates: [left-to-right 4h | right-to-left 4h] (the
        second half is flipped with the map of its direction). For conditional networks; it must
        only depend on information that is known before the image is generated."""
        return self.band(x, cond, None)[0]

    def band(self, x: torch.Tensor, cond: torch.Tensor | None, state: torch.Tensor | None) -> tuple:
        """A band of rows (R, W, B, Cin) -> (R, W, B, h), and the state the band below starts
        from: both directions' hidden states of the band's last row (2, W, B, h) (the cell state
        is carried along a row, never down). ``state``: what the band above returned, or None at
        the top of the image (zeros)."""
        H, W = x.shape[:2]
        g = 4 * self.hidden
        pre = self.input_to_state_product(x)
        if cond is not None:
            pre = pre + cond.unflatten(-1, (2, g)).movedim(-2, 0)  # (2, ..., 4h), may broadcast
        # the right-to-left direction runs on the width-flipped map (mirror): its input and
        # output stay in image coordinates, so nothing is flipped here
        out, _ = lstm_scan_band(pre, self.state_weight(), state, None, DiagonalGeometry(H, W, mirror=(1,)),
                                bias=self.input_to_state.bias.view(2, g))  # (2, R, W, B, h)
        above = None if state is None else state[1]
        return AddShiftedDown.apply(out, above), out[:, -1].clone()  # a copy: not a view of all of out
