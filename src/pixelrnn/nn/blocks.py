"""Residual blocks (PixelRNN paper Fig. 5) and the stack that chains them with optional skips.

The residual stream has 2h features everywhere. A PixelRNN block maps it to the 4h gate inputs
(h per gate) inside its LSTM layer, runs the recurrence to h features, and projects back with a
1×1 mask-B conv; the block input is added::

    PixelRNN block (channels-last)          PixelCNN block (NCHW)
    x (2h) -> LSTM -> h -> 1x1 -> 2h  + x   x (2h) -> ReLU, 1x1 -> h -> ReLU, kxk -> h
                                                   -> ReLU, 1x1 -> 2h  + x

Both blocks can drop out their branch (``dropout``: the probability of zeroing each value of the
branch output before it is added, in training mode only; 0 by default). Dropout acts value by
value, so it cannot break causality; it is a training setting, not part of the model's config
(``PixelModel.set_dropout``).

Bands of rows. Every block can also run a band of rows of its input (``band``) from the state the
band above left it: the Row LSTM's h and c of the band's last row, the Diagonal BiLSTM's last row
of h (both directions), the PixelCNN block's last k // 2 input rows (what its k×k conv reads
above). The bands run top to bottom give the whole map's output, up to float rounding (the matrix
products are cut differently); ``forward`` is one band, the whole map, from the top.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .masked import MaskedConv2d


def _drop(y: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    return F.dropout(y, p, training=True) if training and p > 0 else y


class RecurrentBlock(nn.Module):
    """x + 1×1(layer(x)) for a recurrent layer working on channels-last (H, W, B, 2h) maps."""

    def __init__(self, layer: nn.Module, hidden: int, colors: int):
        super().__init__()
        self.layer = layer
        self.out = MaskedConv2d(hidden, 2 * hidden, 1, "B", colors)
        self.dropout = 0.0

    def forward(self, x: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        """(H, W, B, 2h) -> (H, W, B, 2h). ``cond``: an optional term added to the layer's
        input-to-state map (see the layer's ``forward``), for conditional networks."""
        return self.band(x, cond, None)[0]

    def band(self, x: torch.Tensor, cond: torch.Tensor | None, state) -> tuple:
        """A band of rows (R, W, B, 2h) -> (R, W, B, 2h) and the layer's state at its end (see
        the layer's ``band``); ``state``: the band above's, None at the top of the image."""
        h, state = self.layer.band(x, cond, state)
        return x + _drop(self.out.pointwise(h), self.dropout, self.training), state


class ConvBlock(nn.Module):
    """The PixelCNN residual block with a k×k mask-B convolution in the middle (NCHW)."""

    def __init__(self, hidden: int, colors: int, kernel: int = 3):
        super().__init__()
        self.reduce = MaskedConv2d(2 * hidden, hidden, 1, "B", colors)
        self.conv = MaskedConv2d(hidden, hidden, kernel, "B", colors)
        self.expand = MaskedConv2d(hidden, 2 * hidden, 1, "B", colors)
        self.dropout = 0.0

    def forward(self, x: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        """(B, 2h, H, W) -> (B, 2h, H, W). ``cond``: an optional (B, h, H, W) term added to the
        output of the k×k masked conv (before its ReLU), for conditional networks."""
        return self.band(x, cond, None)[0]

    def band(self, x: torch.Tensor, cond: torch.Tensor | None, state: torch.Tensor | None) -> tuple:
        """A band of rows (B, 2h, R, W) -> (B, 2h, R, W), and what the band below needs: the last
        k // 2 rows of the input (the rows above it that the k×k conv reads), None when k = 1.
        ``state``: the band above's, None at the top of the image."""
        above = 0 if state is None else state.shape[2]
        xs = x if state is None else torch.cat([state, x], dim=2)  # (B, 2h, above + R, W)
        y = self.reduce(F.relu(xs))
        y = self.conv(F.relu(y))[:, :, above:]  # the rows above are only read
        if cond is not None:
            y = y + cond
        rows = self.conv.kernel_size[0] // 2
        state = xs[:, :, xs.shape[2] - rows:].clone() if rows else None  # a copy, not a view of xs
        return x + _drop(self.expand(F.relu(y)), self.dropout, self.training), state


class ResidualStack(nn.Module):
    """Blocks in sequence. With ``skip=True`` the output is the sum of a learned 1×1 mask-B
    projection of every block's output (skip connections to the output), else the last output.

    ``band`` runs a band of rows with the state every block reached at the end of the band above
    (activation checkpointing runs the network band by band: ``PixelNetwork.log_probs``)."""

    def __init__(self, blocks: list[nn.Module], width: int, colors: int, skip: bool = False,
                 channels_last: bool = False):
        super().__init__()
        self.blocks = nn.ModuleList(blocks)
        self.channels_last = channels_last
        self.skips = (nn.ModuleList(MaskedConv2d(width, width, 1, "B", colors) for _ in blocks)
                      if skip else None)

    def forward(self, x: torch.Tensor, conds: list[torch.Tensor] | None = None,
                outputs: list | None = None) -> torch.Tensor:
        """``conds``: optional per-block conditioning terms (one per block, passed to the block's
        ``forward`` as ``cond``), for conditional networks. ``outputs``: a list that receives
        every block's output (learned features, :mod:`pixelrnn.understanding`)."""
        return self.band(x, conds, [None] * len(self.blocks), outputs)[0]

    def band(self, x: torch.Tensor, conds: list[torch.Tensor] | None, states: list,
             outputs: list | None = None) -> tuple[torch.Tensor, list]:
        """A band of rows through every block -> (output, per block the state at the band's end).
        ``states``: per block what the band above left (None at the top of the image); ``conds``
        the band's rows of the conditioning terms."""
        total, after = None, []
        for i, block in enumerate(self.blocks):
            x, state = block.band(x, None if conds is None else conds[i], states[i])
            after.append(state)
            if outputs is not None:
                outputs.append(x)
            if self.skips is not None:
                s = self.skips[i].pointwise(x) if self.channels_last else self.skips[i](x)
                total = s if total is None else total + s
        return (x if total is None else total), after
