"""Layers: masked convolutions, the Row LSTM and Diagonal BiLSTM layers, residual blocks."""
from .blocks import ConvBlock, RecurrentBlock, ResidualStack
from .diagonal_bilstm import DiagonalBiLSTM, skew, unskew
from .logistic import mixture_log_prob_at, mixture_log_probs
from .recurrence import lstm_scan, lstm_scan_band, lstm_scan_reference
from .masked import MaskedConv2d, channel_groups, make_mask
from .row_lstm import RowLSTM

__all__ = ["ConvBlock", "DiagonalBiLSTM", "MaskedConv2d", "RecurrentBlock", "ResidualStack",
           "RowLSTM", "channel_groups", "lstm_scan", "lstm_scan_band", "lstm_scan_reference", "make_mask",
           "mixture_log_prob_at", "mixture_log_probs", "skew",
           "unskew"]
