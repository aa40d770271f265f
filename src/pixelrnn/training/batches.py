"""The training batches of one process: which images, in which order, augmented how.

The order of an epoch is a pure function of (seed, epoch), and every random draw of a batch's
augmentation one of (seed, step, rank): a resumed run sees exactly the batches an uninterrupted
one would have seen. Under torchrun each rank takes its part of every global batch.
"""
from __future__ import annotations

import torch
from torch.utils.data.distributed import DistributedSampler

from ..data import DIHEDRAL, ImageDataset, augment, dihedral
from ..errors import ArgumentError
from .config import TrainConfig
from .distributed import Dist
from .state import TrainState


class Batches:
    """The batches of ``data`` for this rank of ``d``, moved to ``device``."""

    def __init__(self, data: ImageDataset, cfg: TrainConfig, d: Dist, device: torch.device):
        n = len(data)
        global_batch = min(cfg.batch_size, n - n % d.world) if n >= d.world else 0
        if global_batch < d.world:
            raise ArgumentError(f"need at least {d.world} training images, got {n}")
        self.data, self.cfg, self.dist, self.device = data, cfg, d, device
        self.size = global_batch // d.world  # this rank's part of a batch
        self.sampler = DistributedSampler(range(n), num_replicas=d.world, rank=d.rank, shuffle=True,
                                          seed=cfg.seed, drop_last=True)
        self.per_epoch = len(self.sampler) // self.size  # steps per epoch
        self.order: torch.Tensor | None = None  # image indices of this rank in ``epoch``
        self.epoch: int | None = None

    def next(self, state: TrainState) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """The batch of the data position of ``state`` (which it moves to the next epoch when one
        is done): images int64 (B, C, H, W), with --dihedral their symmetries (B,) (else None),
        with --conditional their labels (B,) (else None)."""
        if state.batch_in_epoch >= self.per_epoch:
            state.epoch, state.batch_in_epoch = state.epoch + 1, 0
        if self.epoch != state.epoch:
            self.start_epoch(state.epoch)
        start = state.batch_in_epoch * self.size
        idx = self.order[start:start + self.size]
        x, which = self.augment(self.data.batch(idx), state.step)
        y = self.data.labels_of(idx).to(self.device) if self.cfg.conditional else None
        return x.to(self.device, non_blocking=True), which, y

    def start_epoch(self, epoch: int) -> None:
        """The order of ``epoch``, and with --dynamic-binarization its own binarization."""
        self.sampler.set_epoch(epoch)
        if self.cfg.dynamic_binarization:
            self.data.redraw(torch.Generator().manual_seed(self.cfg.seed * 100003 + epoch))
        self.order, self.epoch = torch.tensor(list(iter(self.sampler)), dtype=torch.long), epoch

    def augment(self, x: torch.Tensor, step: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        """--shift, --hflip and --dihedral on a batch (B, C, H, W) of ``step``."""
        cfg = self.cfg
        if not (cfg.shift or cfg.hflip or cfg.dihedral):
            return x, None
        gen = torch.Generator().manual_seed((cfg.seed * 1_000_003 + step) * self.dist.world + self.dist.rank)
        x = augment(x, shift=cfg.shift, hflip=cfg.hflip, generator=gen)
        if not cfg.dihedral:
            return x, None
        # the identity with probability 1 - P, else one of the other 7
        other = torch.rand(x.shape[0], generator=gen) < cfg.dihedral
        which = torch.where(other, torch.randint(1, len(DIHEDRAL), (x.shape[0],), generator=gen), 0)
        return dihedral(x, which), which.to(self.device)
