"""``ModelConfig``: everything needed to rebuild a model, saved with every checkpoint."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from ..errors import ArgumentError

MAX_LEVELS = 65536  # values per channel: 16-bit images at most (the head has channels * levels maps)


@dataclass
class ModelConfig:
    """Everything needed to rebuild a model; saved with every checkpoint."""

    arch: str
    channels: int = 1
    levels: int = 256
    hidden: int = 16
    layers: int = 7
    head: int | None = None  # maps in the two output 1×1 layers; default 2 * hidden
    skip: bool = False  # learned skip connections from every block to the output
    first_kernel: int = 7
    options: dict[str, Any] = field(default_factory=dict)  # architecture-specific settings
    mixtures: int = 0  # output: 0 = a categorical over the levels; K > 0 = K discretized logistics
    classes: int = 0  # 0: unconditional; K > 0: a distribution of images given a label in [0, K)

    def __post_init__(self):
        for name in ("channels", "levels", "hidden", "layers", "first_kernel"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int):
                raise ArgumentError(f"{name} must be an integer, got {v!r}")
        if self.channels not in (1, 3):
            raise ArgumentError(f"channels must be 1 (gray) or 3 (RGB), got {self.channels}")
        if not 2 <= self.levels <= MAX_LEVELS:
            raise ArgumentError(f"levels must be in [2, {MAX_LEVELS}] (at most 16-bit values), got {self.levels}")
        if self.hidden < self.channels:
            raise ArgumentError(f"hidden must be >= channels ({self.channels}), got {self.hidden}")
        if self.layers < 1:
            raise ArgumentError(f"layers must be >= 1, got {self.layers}")
        if self.first_kernel < 1 or self.first_kernel % 2 == 0:
            raise ArgumentError(f"first_kernel must be a positive odd integer, got {self.first_kernel}")
        if self.head is None:
            self.head = 2 * self.hidden
        if isinstance(self.head, bool) or not isinstance(self.head, int) or self.head < self.channels:
            raise ArgumentError(f"head must be an integer >= channels, got {self.head!r}")
        if not isinstance(self.skip, bool):
            raise ArgumentError(f"skip must be True or False, got {self.skip!r}")
        if isinstance(self.mixtures, bool) or not isinstance(self.mixtures, int) or self.mixtures < 0:
            raise ArgumentError(f"mixtures must be 0 (categorical output) or a positive integer (a "
                             f"mixture of that many discretized logistics), got {self.mixtures!r}")
        if isinstance(self.classes, bool) or not isinstance(self.classes, int) or self.classes < 0:
            raise ArgumentError(f"classes must be 0 (unconditional) or the number of labels (>= 1), "
                                f"got {self.classes!r}")

    @property
    def outputs(self) -> int:
        """Numbers the head predicts per value: ``levels`` logits, or 3 per logistic."""
        return 3 * self.mixtures if self.mixtures else self.levels

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        for name in ("mixtures", "classes"):  # at 0: the dict (and fingerprint) of models from before the field
            if not d[name]:
                del d[name]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ModelConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ArgumentError(f"unknown model config keys: {sorted(unknown)}")
        return cls(**d)
