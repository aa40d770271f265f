"""Row LSTM layer (PixelRNN paper §3.1).

Processes the image one row at a time, top to bottom, all positions of a row at once::

    input-to-state   masked (mask B) 1×3 conv along the row, for the whole map in one call;
                     the right tap is masked away, so it reads (i, j-1) and (i, j)
    state-to-state   unmasked 1×3 conv over the previous row's hidden state h[i-1]:
                     reads (i-1, j-1), (i-1, j), (i-1, j+1)
    gates            [o, f, i, g] = sigmoid/tanh(K_ss * h[i-1] + K_is * x[i]);  tanh on g
                     c[i] = f * c[i-1] + i * g;   h[i] = o * tanh(c[i])
    initial state    learned vectors h0, c0 (one value per feature, the same at every column)

Receptive field: a triangle above the pixel plus the pixels left of it in its row.
Layout: channels-last with rows first, ``(H, W, B, C)``.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from .recurrence import RowGeometry, lstm_scan_band
from .masked import MaskedConv2d, channel_groups


class LeftAndCentre(torch.autograd.Function):
    """x (H, W, B, C) -> (H, W, B, 2C): [x(i, j-1) | x(i, j)], zeros for x(i, -1). Its backward
    adds the two halves of the gradient back together in two passes (clone, shifted add)."""

    @staticmethod
    def forward(ctx, x):
        C = x.shape[-1]
        pair = x.new_empty(*x.shape[:-1], 2 * C)
        pair[:, :1, :, :C].zero_()
        pair[:, 1:, :, :C].copy_(x[:, :-1])
        pair[..., C:].copy_(x)
        return pair

    @staticmethod
    def backward(ctx, grad):
        C = grad.shape[-1] // 2
        dx = grad[..., C:].clone(memory_format=torch.contiguous_format)
        dx[:, :-1] += grad[:, 1:, :, :C]
        return dx


class RowLSTM(nn.Module):
    def __init__(self, in_channels: int, hidden: int, colors: int = 1):
        super().__init__()
        self.hidden = hidden
        gate_groups = channel_groups(hidden, colors).repeat(4)  # [o | f | i | g], each split R/G/B
        self.input_to_state = MaskedConv2d(in_channels, 4 * hidden, (1, 3), "B", colors,
                                           out_groups=gate_groups)
        self.state_to_state = nn.Parameter(torch.empty(4 * hidden, hidden, 3))  # conv1d layout
        self.h0 = nn.Parameter(torch.zeros(hidden))
        self.c0 = nn.Parameter(torch.zeros(hidden))
        bound = 1.0 / math.sqrt(3 * hidden)
        nn.init.uniform_(self.state_to_state, -bound, bound)
        with torch.no_grad():
            self.input_to_state.bias[hidden:2 * hidden].fill_(1.0)  # forget gate starts open

    def input_to_state_product(self, x: torch.Tensor) -> torch.Tensor:  # (H, W, B, Cin) -> (H, W, B, 4h)
        """The masked 1×3 input-to-state conv without its bias (``lstm_scan`` adds the bias)."""
        w = self.input_to_state.masked_weight()[:, :, 0]  # (4h, Cin, 3); the right tap is all zero
        # one matrix product over [left neighbour | centre]; the pair is built by a small
        # autograd Function rather than with pad + cat or by writing into slices, whose backward
        # passes would allocate full-size zero gradients and copy them again
        return F.linear(LeftAndCentre.apply(x), torch.cat([w[:, :, 0], w[:, :, 1]], dim=1))

    def state_weight(self) -> torch.Tensor:  # (3h, 4h), rows ordered tap-major
        return self.state_to_state.permute(2, 1, 0).reshape(3 * self.hidden, 4 * self.hidden)

    def forward(self, x: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        """(H, W, B, Cin) -> (H, W, B, h). ``cond``: an optional (H, W, B, 4h) term added to the
        input-to-state map (a conditional network's unmasked conditioning; it must only depend on
        information that is known before the image is generated)."""
        return self.band(x, cond, None)[0]

    def band(self, x: torch.Tensor, cond: torch.Tensor | None, state: tuple | None) -> tuple:
        """A band of rows (R, W, B, Cin) -> (R, W, B, h), and the state the band below starts
        from: (h, c) of the band's last row, (W, B, h) each. ``state``: what the band above
        returned, or None at the top of the image (the learned initial state)."""
        pre = self.input_to_state_product(x)
        if cond is not None:
            pre = pre + cond
        pre = pre.unsqueeze(0)  # (1, R, W, B, 4h)
        h0, c0 = (self.h0, self.c0) if state is None else state
        h, c_last = lstm_scan_band(pre, self.state_weight().unsqueeze(0), h0, c0,
                                   RowGeometry(x.shape[0], x.shape[1]), bias=self.input_to_state.bias)
        h = h.squeeze(0)  # a view: its backward is free (indexing [0] would allocate zeros)
        return h, (h[-1].clone(), c_last.squeeze(0))  # a copy: a view would keep all of h alive
