"""Architectures. ``create_model(arch, ...)`` builds one by name.

Each architecture is a distribution (:mod:`.distribution`) over the outputs of its network
(:mod:`.network`): ``pixelcnn.py``, ``row_lstm.py`` and ``diagonal_bilstm.py`` hold one network
class and one distribution class each; ``multiscale.py`` a distribution over two networks.
"""
from __future__ import annotations

import dataclasses

from ..errors import ArgumentError
from .config import ModelConfig
from .diagonal_bilstm import DiagonalBiLSTMPixelRNN
from .distribution import PixelModel, SingleNetworkModel
from .multiscale import MultiScalePixelRNN
from .network import PixelNetwork
from .pixelcnn import PixelCNN
from .row_lstm import RowLSTMPixelRNN

ARCHITECTURES: dict[str, type[PixelModel]] = {
    "pixelcnn": PixelCNN,
    "row_lstm": RowLSTMPixelRNN,
    "diagonal_bilstm": DiagonalBiLSTMPixelRNN,
    "multiscale": MultiScalePixelRNN,
}

# ModelConfig fields given as keyword arguments of create_model; the others are options
CONFIG_FIELDS = {f.name for f in dataclasses.fields(ModelConfig)} - {"arch", "options"}


def create_model(arch: str, *, channels: int = 1, levels: int = 256, hidden: int = 16,
                 layers: int = 7, **options) -> PixelModel:
    """Build a model by name: "pixelcnn", "row_lstm", "diagonal_bilstm" or "multiscale".

    Keyword arguments: ``channels`` (1 or 3), ``levels`` (>= 2 values per channel), ``hidden``
    (h: the residual stream has 2h features), ``layers`` (L residual blocks), ``head`` (maps in the
    output 1×1 layers, default 2h), ``skip`` (learned skip connections), ``first_kernel`` (7),
    ``mixtures`` (0: a categorical over the levels; K > 0: each value's distribution is a mixture
    of K discretized logistics, see :mod:`pixelrnn.nn.logistic`) and
    architecture options (``kernel`` for PixelCNN; for "multiscale": ``base`` (the architecture of
    both stages, default "row_lstm"), ``factor`` (2: the small image is x[..., ::2, ::2]),
    ``context`` (maps of the upsampled small image, default hidden) and ``kernel`` (base
    "pixelcnn" only); see :mod:`pixelrnn.models.multiscale`).
    """
    if arch not in ARCHITECTURES:
        raise ArgumentError(f"unknown architecture {arch!r}; choose one of {sorted(ARCHITECTURES)}")
    fields = {k: options.pop(k) for k in list(options) if k in CONFIG_FIELDS}
    config = ModelConfig(arch=arch, channels=channels, levels=levels, hidden=hidden, layers=layers,
                         options=options, **fields)
    return model_from_config(config)


def model_from_config(config: ModelConfig) -> PixelModel:
    if config.arch not in ARCHITECTURES:
        raise ArgumentError(f"unknown architecture {config.arch!r}; choose one of {sorted(ARCHITECTURES)}")
    return ARCHITECTURES[config.arch](config)


__all__ = ["ARCHITECTURES", "ModelConfig", "PixelModel", "PixelNetwork", "SingleNetworkModel",
           "create_model", "model_from_config", "PixelCNN", "RowLSTMPixelRNN",
           "DiagonalBiLSTMPixelRNN", "MultiScalePixelRNN"]
