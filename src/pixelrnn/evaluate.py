"""Exact evaluation: NLL in nats per image and bits per dimension over a whole split.

Every image is scored exactly once: no dropped last batch, no duplicates. Under
``torch.distributed`` each rank scores a disjoint contiguous shard and the NLL sums and image
counts are all-reduced before dividing, so the distributed result equals the single-process one.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
import torch.distributed as dist

from .models import PixelModel
from .errors import ArgumentError
from .progress import Callback, as_progress


@dataclass
class EvalResult:
    nll: float  # nats per image
    bits_per_dim: float
    images: int
    dims_per_image: int
    given_labels: bool = False  # a conditional model's -log p(x | y) (else its marginal -log p(x))

    def to_dict(self) -> dict:
        d = {"nll_nats": self.nll, "bits_per_dim": self.bits_per_dim, "images": self.images,
             "dims_per_image": self.dims_per_image}
        return {**d, "given_labels": True} if self.given_labels else d


def shard_range(n: int, rank: int, world: int) -> tuple[int, int]:
    """Contiguous, disjoint [start, stop) of n items for one rank; the shards cover 0..n-1."""
    base, extra = divmod(n, world)
    start = rank * base + min(rank, extra)
    return start, start + base + (1 if rank < extra else 0)


def image_reader(images, with_labels: bool = False) -> tuple[int, int, Callable]:
    """``images`` as (count, values per image, ``read(start, stop)`` -> (images, labels or
    None)): a tensor (N, C, H, W), or a dataset read through ``len(ds)``, ``ds.batch(slice)``,
    ``ds.labels_of(slice)`` (``with_labels``) and its ``channels``, ``height``, ``width`` (an
    :class:`pixelrnn.data.ImageDataset`)."""
    if isinstance(images, torch.Tensor) and images.dim() == 4:
        return images.shape[0], math.prod(images.shape[1:]), lambda a, b: (images[a:b], None)
    if not isinstance(images, torch.Tensor) and hasattr(images, "batch"):
        dims = images.channels * images.height * images.width
        return len(images), dims, lambda a, b: (images.batch(slice(a, b)),
                                                images.labels_of(slice(a, b)) if with_labels else None)
    raise ArgumentError(f"expected images as a (N, C, H, W) tensor, got "
                        f"{tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__}")


@torch.no_grad()
def evaluate(model: PixelModel, images, batch_size: int = 64,
             precision: str = "fp32", progress: bool | Callback = False, *,
             limit: int | None = None, marginal: bool = False) -> EvalResult:
    """Exact NLL of ``images`` (uint8/int (N, C, H, W), or a dataset: see :func:`image_reader`)
    under ``model``, read ``batch_size`` images at a time; only the first ``limit`` images when
    given. ``progress``: a bar (True) or ``f(done, total)`` over the images this process scores.
    A conditional model scores -log p(x | y) with the labels of a labelled dataset, else (or
    with ``marginal``) the marginal -log p(x) (one pass per label).

    Distributed-aware: if a process group is initialised, each rank takes its shard of
    ``images`` (every rank must pass the same full set) and the sums are all-reduced.
    """
    given = bool(model.classes) and not marginal and getattr(images, "labels", None) is not None
    n, dims, read = image_reader(images, with_labels=given)
    if limit is not None:
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise ArgumentError(f"limit must be a positive integer, got {limit!r}")
        n = min(n, limit)
    if n == 0:
        raise ArgumentError("cannot evaluate an empty split")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ArgumentError(f"batch_size must be a positive integer, got {batch_size!r}")
    autocast = autocast_for(model.device, precision)  # checks precision before the model is touched
    world = dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1
    rank = dist.get_rank() if world > 1 else 0
    start, stop = shard_range(n, rank, world)
    was_training = model.training
    model.eval()
    device = model.device
    total = torch.zeros((), dtype=torch.float64, device=device)
    count = torch.zeros((), dtype=torch.float64, device=device)
    try:
        with as_progress(progress, stop - start, "evaluating") as prog:
            for i in range(start, stop, batch_size):
                x, y = read(i, min(i + batch_size, stop))  # log_prob checks dtype and values
                with autocast:
                    logp = model.log_prob(x.to(device), y)
                total -= logp.double().sum()
                count += x.shape[0]
                prog.advance(x.shape[0])
    finally:
        model.train(was_training)
    if world > 1:
        buf = torch.stack([total, count])
        dist.all_reduce(buf)
        total, count = buf[0], buf[1]
    nll = (total / count).item()
    return EvalResult(nll=nll, bits_per_dim=nll / (dims * math.log(2)), images=int(count.item()),
                      dims_per_image=dims, given_labels=given)


def autocast_for(device: torch.device, precision: str):
    """The autocast context of ``--precision`` (fp32: autocast off; bf16: bfloat16)."""
    if precision == "bf16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    if precision != "fp32":
        raise ArgumentError(f"precision must be fp32 or bf16, got {precision!r}")
    return torch.autocast(device_type=device.type, enabled=False)
