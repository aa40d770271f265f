"""Diagonal BiLSTM PixelRNN (paper §3.2): L residual blocks around the Diagonal BiLSTM layer
(see ``pixelrnn.nn.diagonal_bilstm`` for the layer itself). Full causal context in every layer."""
from __future__ import annotations

import torch

from ..nn.blocks import RecurrentBlock, ResidualStack
from ..nn.diagonal_bilstm import DiagonalBiLSTM
from .base import ModelConfig, PixelModel


class DiagonalBiLSTMPixelRNN(PixelModel):
    def __init__(self, config: ModelConfig):
        super().__init__(config)
        h, C = config.hidden, config.channels
        blocks = [RecurrentBlock(DiagonalBiLSTM(2 * h, h, C), h, C) for _ in range(config.layers)]
        self.stack = ResidualStack(blocks, 2 * h, C, skip=config.skip, channels_last=True)

    def _body(self, features: torch.Tensor) -> torch.Tensor:  # (B, 2h, H, W) -> (H, W, B, 2h)
        return self.stack(features.permute(2, 3, 0, 1).contiguous())

    def _sampling_engine(self, n: int, height: int, width: int, schedule: str | None = None):
        from ..sampling.diagonal_bilstm import DiagonalBiLSTMEngine  # raster schedule only
        return DiagonalBiLSTMEngine(self, n, height, width)
