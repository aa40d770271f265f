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
the same arrangement explicitly (and the tests check that the two agree).

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

from .recurrence import DiagonalGeometry, lstm_scan
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

    def input_to_state_map(self, x: torch.Tensor) -> torch.Tensor:  # (H, W, B, Cin) -> (2, H, W, B, 4h)
        """Both directions' gate inputs; the right-to-left one on the width-flipped map."""
        H, W, B, Cin = x.shape
        w = self.input_to_state.masked_weight()[:, :, 0, 0].view(2, 4 * self.hidden, Cin)
        b = self.input_to_state.bias.view(2, 1, 4 * self.hidden)
        x2 = torch.stack([x, x.flip(1)]).view(2, H * W * B, Cin)
        return torch.baddbmm(b, x2, w.transpose(1, 2)).view(2, H, W, B, 4 * self.hidden)

    def forward(self, x: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        """(H, W, B, Cin) -> (H, W, B, h). ``cond``: an optional (H, W, B, 8h) term added to the
        input-to-state maps, in image coordinates: [left-to-right 4h | right-to-left 4h] (the
        second half is flipped with the map of its direction). For conditional networks; it must
        only depend on information that is known before the image is generated."""
        H, W = x.shape[:2]
        pre = self.input_to_state_map(x)
        if cond is not None:
            g = 4 * self.hidden
            pre = pre + torch.stack([cond[..., :g], cond[..., g:].flip(1)])
        out = lstm_scan(pre, self.state_weight(), None, None,
                        DiagonalGeometry(H, W))  # (2, H, W, B, h)
        right_to_left = out[1].flip(1)[:-1]  # flipped back; the last row is shifted out
        return out[0] + F.pad(right_to_left, (0, 0, 0, 0, 0, 0, 1, 0))  # shifted down one row
