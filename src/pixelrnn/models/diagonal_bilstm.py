"""Diagonal BiLSTM PixelRNN (paper §3.2): L residual blocks around the Diagonal BiLSTM layer
(see ``pixelrnn.nn.diagonal_bilstm`` for the layer itself). Full causal context in every layer."""
from __future__ import annotations

import torch

from ..nn.blocks import RecurrentBlock, ResidualStack
from ..nn.diagonal_bilstm import DiagonalBiLSTM
from .base import ModelConfig, PixelModel


class DiagonalBiLSTMPixelRNN(PixelModel):
    def __init__(self, config: ModelConfig, *, context_channels: int = 0):
        super().__init__(config)
        h, C = config.hidden, config.channels
        blocks = [RecurrentBlock(DiagonalBiLSTM(2 * h, h, C), h, C) for _ in range(config.layers)]
        self.stack = ResidualStack(blocks, 2 * h, C, skip=config.skip, channels_last=True)
        if context_channels:  # a conditional network (see PixelModel._init_context)
            self._init_context(context_channels)

    def _context_widths(self) -> list[int]:  # added to the input-to-state maps [l2r | r2l]
        return [8 * self.config.hidden] * self.config.layers

    def _body(self, features: torch.Tensor, conds: list[torch.Tensor] | None = None) -> torch.Tensor:
        # (B, 2h, H, W) -> (H, W, B, 2h); conds: channels-last per-block conditioning terms
        return self.stack(features.permute(2, 3, 0, 1).contiguous(), conds)

    def _sampling_engine(self, n: int, height: int, width: int, schedule: str | None = None,
                         context: torch.Tensor | None = None):
        from ..sampling.diagonal_bilstm import DiagonalBiLSTMEngine  # raster schedule only
        ctx = None if context is None else self._engine_context(context)
        return DiagonalBiLSTMEngine(self, n, height, width, context=ctx)
