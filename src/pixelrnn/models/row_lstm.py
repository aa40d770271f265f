"""Row LSTM PixelRNN (paper §3.1): L residual blocks around the Row LSTM layer
(see ``pixelrnn.nn.row_lstm`` for the layer itself)."""
from __future__ import annotations

import torch

from ..nn.blocks import RecurrentBlock, ResidualStack
from ..nn.row_lstm import RowLSTM
from .base import ModelConfig, PixelModel


class RowLSTMPixelRNN(PixelModel):
    def __init__(self, config: ModelConfig):
        super().__init__(config)
        h, C = config.hidden, config.channels
        blocks = [RecurrentBlock(RowLSTM(2 * h, h, C), h, C) for _ in range(config.layers)]
        self.stack = ResidualStack(blocks, 2 * h, C, skip=config.skip, channels_last=True)

    def _body(self, features: torch.Tensor) -> torch.Tensor:  # (B, 2h, H, W) -> (H, W, B, 2h)
        return self.stack(features.permute(2, 3, 0, 1).contiguous())

    def _sampling_engine(self, n: int, height: int, width: int, schedule: str | None = None):
        from ..sampling.row_lstm import RowLSTMEngine, RowLSTMWavefrontEngine
        if schedule == "raster":
            return RowLSTMEngine(self, n, height, width)
        return RowLSTMWavefrontEngine(self, n, height, width)
