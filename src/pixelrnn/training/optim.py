"""The optimizer of ``--optimizer`` and the learning-rate schedule."""
from __future__ import annotations

import math

import torch

from .config import TrainConfig


def param_groups(cfg: TrainConfig, model, extra: list) -> list:
    """The optimizer's parameters: the model's (their indices never change), its label vectors
    in a group of their own when --label-lr is given (``lr_scale`` = label-lr / lr), then
    ``extra`` (the --dihedral symmetry bias)."""
    labels = model.label_parameters() if cfg.label_lr is not None else []
    if not labels:
        return list(model.parameters()) + extra
    own = {id(p) for p in labels}
    groups = [{"params": [p for p in model.parameters() if id(p) not in own]},
              {"params": labels, "lr_scale": cfg.label_lr / cfg.lr}]
    return groups + ([{"params": extra}] if extra else [])


def make_optimizer(cfg: TrainConfig, params) -> torch.optim.Optimizer:
    if cfg.optimizer == "adam":
        return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay) if cfg.weight_decay \
            else torch.optim.Adam(params, lr=cfg.lr)
    return torch.optim.RMSprop(params, lr=cfg.lr, alpha=0.95, eps=1e-6, weight_decay=cfg.weight_decay)


def lr_factor(cfg: TrainConfig, step: int, total: int | None, time_fraction: float | None = None) -> float:
    """Multiplier of the base learning rate at ``step`` (0-based). The schedule runs over the
    steps when their number is known, else over the time budget (``time_fraction`` of
    --max-minutes used), whichever ends first."""
    if cfg.warmup and step < cfg.warmup:
        return (step + 1) / cfg.warmup
    if cfg.lr_schedule == "constant" or (not total and time_fraction is None):
        return 1.0
    progress = 0.0 if not total else (step - cfg.warmup) / max(1, total - cfg.warmup)
    if time_fraction is not None:
        progress = max(progress, time_fraction)
    progress = min(1.0, progress)
    if cfg.lr_schedule == "cosine":
        return 0.5 * (1 + math.cos(math.pi * progress))
    return 1.0 - progress  # linear


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> float:
    """Every group's learning rate: ``lr`` times the group's ``lr_scale`` (--label-lr)."""
    for g in optimizer.param_groups:
        g["lr"] = lr * g.get("lr_scale", 1.0)
    return lr
