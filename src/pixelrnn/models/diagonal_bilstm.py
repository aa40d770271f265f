"""Diagonal BiLSTM PixelRNN (paper §3.2): L residual blocks around the Diagonal BiLSTM layer
(see ``pixelrnn.nn.diagonal_bilstm`` for the layer itself; the shared body is
``pixelrnn.models.base.RecurrentPixelModel``). Full causal context in every layer."""
from __future__ import annotations

import torch

from ..nn.diagonal_bilstm import DiagonalBiLSTM
from .base import RecurrentPixelModel


class DiagonalBiLSTMPixelRNN(RecurrentPixelModel):
    layer = DiagonalBiLSTM
    state_maps = 8  # the input-to-state maps of both directions [l2r | r2l]

    def _sampling_engine(self, n: int, height: int, width: int, schedule: str | None = None,
                         context: torch.Tensor | None = None):
        from ..sampling.diagonal_bilstm import DiagonalBiLSTMEngine  # raster schedule only
        ctx = None if context is None else self._engine_context(context)
        return DiagonalBiLSTMEngine(self, n, height, width, context=ctx)
