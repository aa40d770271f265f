"""Row LSTM PixelRNN (paper §3.1): L residual blocks around the Row LSTM layer
(see ``pixelrnn.nn.row_lstm`` for the layer itself; the shared body is
``pixelrnn.models.network.RecurrentNetwork``)."""
from __future__ import annotations

from ..nn.row_lstm import RowLSTM
from .distribution import SingleNetworkModel
from .network import RecurrentNetwork


class RowLSTMNetwork(RecurrentNetwork):
    layer = RowLSTM
    state_maps = 4  # the input-to-state map [o, f, i, g]

    def sampling_engine(self, n: int, height: int, width: int, schedule: str | None = None, context=None):
        from ..sampling.row_lstm import RowLSTMEngine, RowLSTMWavefrontEngine
        if schedule == "raster":
            return RowLSTMEngine(self, n, height, width, context=context)
        return RowLSTMWavefrontEngine(self, n, height, width, context=context)


class RowLSTMPixelRNN(SingleNetworkModel):
    NETWORK = RowLSTMNetwork
