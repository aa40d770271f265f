"""PixelCNN (PixelRNN paper §3.4): residual blocks of masked convolutions, fully parallel.

Blocks: 2h -> ReLU, 1×1 -> h -> ReLU, k×k mask B -> h -> ReLU, 1×1 -> 2h, plus the input.
Bounded receptive field with the known blind spot to the upper right.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..errors import ArgumentError
from ..nn.blocks import ConvBlock, ResidualStack
from .config import ModelConfig
from .distribution import SingleNetworkModel
from .network import PixelNetwork


class PixelCNNNetwork(PixelNetwork):
    OPTIONS = {"kernel": 3}  # size of the masked convolution in each block

    def __init__(self, config: ModelConfig, *, context_channels: int = 0):
        super().__init__(config)
        kernel = config.options["kernel"]
        if isinstance(kernel, bool) or not isinstance(kernel, int) or kernel < 1 or kernel % 2 == 0:
            raise ArgumentError(f"kernel must be a positive odd integer, got {kernel!r}")
        h, C = config.hidden, config.channels
        self.stack = ResidualStack([ConvBlock(h, C, kernel) for _ in range(config.layers)],
                                   2 * h, C, skip=config.skip)
        if context_channels:
            self.init_context(context_channels)

    def term_widths(self) -> list[int]:  # added to the output of each block's k×k conv
        return [self.config.hidden] * self.config.layers

    def context_terms(self, context: torch.Tensor) -> list[torch.Tensor]:
        """context (B, c, H, W) -> per block the (B, h, H, W) term, all blocks in one 1×1 conv."""
        w = torch.cat([p.weight for p in self.context_proj])
        return list(F.conv2d(context, w).split(self.term_widths(), dim=1))

    def image_terms(self, terms: torch.Tensor) -> list[torch.Tensor]:  # (B, sum) -> (B, h, 1, 1) each
        return [t[:, :, None, None] for t in terms.split(self.term_widths(), dim=-1)]

    def body(self, features: torch.Tensor, conds: list[torch.Tensor] | None = None,
             outputs: list | None = None) -> torch.Tensor:
        # (B, 2h, H, W) -> (H, W, B, 2h); conds: (B, h, H, W) terms per block (context_terms)
        return self.stack(features, conds, outputs).permute(2, 3, 0, 1)

    def body_band(self, features: torch.Tensor, conds: list[torch.Tensor] | None, states: list):
        # (B, 2h, R, W) -> (R, W, B, 2h); conds: the band's rows of the terms (or broadcast ones)
        out, states = self.stack.band(features, conds, states)
        return out.permute(2, 3, 0, 1), states

    def sampling_engine(self, n: int, height: int, width: int, schedule: str | None = None, context=None):
        from ..sampling.pixelcnn import PixelCNNEngine, PixelCNNWavefrontEngine
        if schedule == "raster":
            return PixelCNNEngine(self, n, height, width, context=context)
        return PixelCNNWavefrontEngine(self, n, height, width, context=context)


class PixelCNN(SingleNetworkModel):
    NETWORK = PixelCNNNetwork
    OPTIONS = PixelCNNNetwork.OPTIONS
