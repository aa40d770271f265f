"""What training optimizes: :class:`LogProb`, the module that DDP / torch.compile wrap, and
:class:`SymmetryBias`, the learned per-symmetry bias of ``--dihedral``."""
from __future__ import annotations

import torch

from ..data import DIHEDRAL
from ..models import PixelModel


class SymmetryBias(torch.nn.Module):
    """Distribution augmentation (Jun et al., 2020, "Distribution Augmentation for Generative
    Modeling"): with ``--dihedral P`` the network also learns the distributions of the training
    images under the other 7 symmetries of the square, and is told which one it is looking at.
    The telling is one learned vector per symmetry, split over the layers and added to each
    layer's pre-activations at every pixel (where a conditional network adds its context). The
    identity's vector is fixed at zero, so the model itself is the identity's distribution:
    evaluation, checkpoints, sampling and coding use it unchanged, and the vectors of the other
    symmetries (training only) live in the run's state.safetensors."""

    def __init__(self, width: int):
        super().__init__()
        self.table = torch.nn.Parameter(torch.zeros(len(DIHEDRAL) - 1, width))  # rows 1..7

    def forward(self, which: torch.Tensor) -> torch.Tensor:  # (B,) in 0..7 -> (B, width)
        full = torch.cat([self.table.new_zeros(1, self.table.shape[1]), self.table])
        return full[which]


class LogProb(torch.nn.Module):
    """``forward(x) = model.log_prob(x)``: the module that DDP / torch.compile wrap. With a
    ``SymmetryBias``, ``forward(x, which)`` is the log-likelihood of images under the symmetries
    ``which`` (B,) -- the plain ``log_prob`` where ``which`` is 0. A conditional model's
    ``forward(x, which, y)`` is log p(x | y) for the labels ``y`` (B,)."""

    def __init__(self, model: PixelModel, symmetry_bias: SymmetryBias | None = None):
        super().__init__()
        self.model = model
        self.symmetry_bias = symmetry_bias

    def forward(self, x: torch.Tensor, which: torch.Tensor | None = None,
                y: torch.Tensor | None = None) -> torch.Tensor:
        if which is None or self.symmetry_bias is None:
            return self.model.log_prob(x, y)
        return self.model.value_log_probs(x, y, terms=self.symmetry_bias(which)).sum(dim=(1, 2, 3))
