"""Row LSTM PixelRNN (paper §3.1): L residual blocks around the Row LSTM layer
(see ``pixelrnn.nn.row_lstm`` for the layer itself; the shared body is
``pixelrnn.models.base.RecurrentPixelModel``)."""
from __future__ import annotations

import torch

from ..nn.row_lstm import RowLSTM
from .base import RecurrentPixelModel


class RowLSTMPixelRNN(RecurrentPixelModel):
    layer = RowLSTM
    state_maps = 4  # the input-to-state map [o, f, i, g]

    def _sampling_engine(self, n: int, height: int, width: int, schedule: str | None = None,
                         context: torch.Tensor | None = None):
        from ..sampling.row_lstm import RowLSTMEngine, RowLSTMWavefrontEngine
        ctx = None if context is None else self._engine_context(context)
        if schedule == "raster":
            return RowLSTMEngine(self, n, height, width, context=ctx)
        return RowLSTMWavefrontEngine(self, n, height, width, context=ctx)
