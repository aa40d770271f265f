"""Row LSTM PixelRNN (paper §3.1): L residual blocks around the Row LSTM layer
(see ``pixelrnn.nn.row_lstm`` for the layer itself)."""
from __future__ import annotations

import torch

from ..nn.blocks import RecurrentBlock, ResidualStack
from ..nn.row_lstm import RowLSTM
from .base import ModelConfig, PixelModel


class RowLSTMPixelRNN(PixelModel):
    def __init__(self, config: ModelConfig, *, context_channels: int = 0):
        super().__init__(config)
        h, C = config.hidden, config.channels
        blocks = [RecurrentBlock(RowLSTM(2 * h, h, C), h, C) for _ in range(config.layers)]
        self.stack = ResidualStack(blocks, 2 * h, C, skip=config.skip, channels_last=True)
        if context_channels:  # a conditional network (see PixelModel._init_context)
            self._init_context(context_channels)

    def _context_widths(self) -> list[int]:  # added to the input-to-state map, [o, f, i, g]
        return [4 * self.config.hidden] * self.config.layers

    def _body(self, features: torch.Tensor, conds: list[torch.Tensor] | None = None) -> torch.Tensor:
        # (B, 2h, H, W) -> (H, W, B, 2h); conds: channels-last per-block conditioning terms
        return self.stack(features.permute(2, 3, 0, 1).contiguous(), conds)

    def _sampling_engine(self, n: int, height: int, width: int, schedule: str | None = None,
                         context: torch.Tensor | None = None):
        from ..sampling.row_lstm import RowLSTMEngine, RowLSTMWavefrontEngine
        ctx = None if context is None else self._engine_context(context)
        if schedule == "raster":
            return RowLSTMEngine(self, n, height, width, context=ctx)
        return RowLSTMWavefrontEngine(self, n, height, width, context=ctx)
