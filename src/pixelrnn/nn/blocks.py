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
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

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
        y = self.out.pointwise(self.layer(x) if cond is None else self.layer(x, cond))
        return x + _drop(y, self.dropout, self.training)


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
        y = self.reduce(F.relu(x))
        y = self.conv(F.relu(y))
        if cond is not None:
            y = y + cond
        return x + _drop(self.expand(F.relu(y)), self.dropout, self.training)


class ResidualStack(nn.Module):
    """Blocks in sequence. With ``skip=True`` the output is the sum of a learned 1×1 mask-B
    projection of every block's output (skip connections to the output), else the last output.

    ``checkpoint_activations`` (a training setting, off by default): in training mode with
    gradients on, each block keeps only its input and recomputes its activations in the backward
    pass (``torch.utils.checkpoint``, the dropout draws replayed): the memory of one block
    instead of L, for about one more forward pass; the results are the same."""

    def __init__(self, blocks: list[nn.Module], width: int, colors: int, skip: bool = False,
                 channels_last: bool = False):
        super().__init__()
        self.blocks = nn.ModuleList(blocks)
        self.channels_last = channels_last
        self.skips = (nn.ModuleList(MaskedConv2d(width, width, 1, "B", colors) for _ in blocks)
                      if skip else None)
        self.checkpoint_activations = False

    def run_block(self, block: nn.Module, x: torch.Tensor, cond: torch.Tensor | None) -> torch.Tensor:
        if self.checkpoint_activations and self.training and torch.is_grad_enabled():
            return checkpoint(block, x, cond, use_reentrant=False)
        return block(x, cond)

    def forward(self, x: torch.Tensor, conds: list[torch.Tensor] | None = None,
                outputs: list | None = None) -> torch.Tensor:
        """``conds``: optional per-block conditioning terms (one per block, passed to the block's
        ``forward`` as ``cond``), for conditional networks. ``outputs``: a list that receives
        every block's output (learned features, :mod:`pixelrnn.understanding`)."""
        total = None
        for i, block in enumerate(self.blocks):
            x = self.run_block(block, x, None if conds is None else conds[i])
            if outputs is not None:
                outputs.append(x)
            if self.skips is not None:
                s = self.skips[i].pointwise(x) if self.channels_last else self.skips[i](x)
                total = s if total is None else total + s
        return x if total is None else total
