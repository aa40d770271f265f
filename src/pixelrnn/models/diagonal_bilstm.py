"""Diagonal BiLSTM PixelRNN (paper §3.2): L residual blocks around the Diagonal BiLSTM layer
(see ``pixelrnn.nn.diagonal_bilstm`` for the layer itself; the shared body is
``pixelrnn.models.network.RecurrentNetwork``). Full causal context in every layer."""
from __future__ import annotations

from ..nn.diagonal_bilstm import DiagonalBiLSTM
from .distribution import SingleNetworkModel
from .network import RecurrentNetwork


class DiagonalBiLSTMNetwork(RecurrentNetwork):
    layer = DiagonalBiLSTM
    state_maps = 8  # the input-to-state maps of both directions [l2r | r2l]

    def sampling_engine(self, n: int, height: int, width: int, schedule: str | None = None, context=None):
        from ..sampling.diagonal_bilstm import DiagonalBiLSTMEngine  # raster schedule only
        return DiagonalBiLSTMEngine(self, n, height, width, context=context)


class DiagonalBiLSTMPixelRNN(SingleNetworkModel):
    NETWORK = DiagonalBiLSTMNetwork
