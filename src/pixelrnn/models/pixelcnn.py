"""PixelCNN (PixelRNN paper §3.4): residual blocks of masked convolutions, fully parallel.

Blocks: 2h -> ReLU, 1×1 -> h -> ReLU, k×k mask B -> h -> ReLU, 1×1 -> 2h, plus the input.
Bounded receptive field with the known blind spot to the upper right.
"""
from __future__ import annotations

import torch

from ..nn.blocks import ConvBlock, ResidualStack
from .base import ModelConfig, PixelModel


class PixelCNN(PixelModel):
    OPTIONS = {"kernel": 3}  # size of the masked convolution in each block

    def __init__(self, config: ModelConfig):
        super().__init__(config)
        kernel = config.options["kernel"]
        if isinstance(kernel, bool) or not isinstance(kernel, int) or kernel < 1 or kernel % 2 == 0:
            raise ValueError(f"kernel must be a positive odd integer, got {kernel!r}")
        h, C = config.hidden, config.channels
        self.stack = ResidualStack([ConvBlock(h, C, kernel) for _ in range(config.layers)],
                                   2 * h, C, skip=config.skip)

    def _body(self, features: torch.Tensor) -> torch.Tensor:  # (B, 2h, H, W) -> (H, W, B, 2h)
        return self.stack(features).permute(2, 3, 0, 1)

    def _sampling_engine(self, n: int, height: int, width: int, schedule: str | None = None):
        from ..sampling.pixelcnn import PixelCNNEngine, PixelCNNWavefrontEngine
        if schedule == "raster":
            return PixelCNNEngine(self, n, height, width)
        return PixelCNNWavefrontEngine(self, n, height, width)
