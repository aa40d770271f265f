"""Distributed data parallel: the process's rank and device, and what the ranks agree on.

Launched by ``torchrun`` (WORLD_SIZE > 1) every rank trains on its part of each global batch
(DistributedSampler, ``set_epoch`` every epoch), gradients are averaged by
DistributedDataParallel, rank 0 alone logs, shows progress and writes files, and evaluation shards
the test split and all-reduces the NLL sums and counts. A single process is ``Dist()``: every
collective below is then a no-op.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field

import torch
import torch.distributed as dist

from ..device import resolve_device
from ..errors import ArgumentError

STOP_REASONS = (None, "steps", "epochs", "time", "signal")  # by urgency: the ranks take the last


@dataclass
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))  # of the collectives

    @property
    def main(self) -> bool:
        return self.rank == 0

    def all_sum(self, *values: float) -> list[float]:
        """The sums of ``values`` over the ranks (float64)."""
        if self.world == 1:
            return list(values)
        t = torch.tensor(values, dtype=torch.float64, device=self.device)
        dist.all_reduce(t)
        return t.tolist()

    def agree(self, reason: str | None) -> str | None:
        """The reason to stop of the rank with the most urgent one (``STOP_REASONS``): a signal
        or the clock may reach the ranks apart, and they must stop at the same step."""
        if self.world == 1:
            return reason
        code = torch.tensor([STOP_REASONS.index(reason)], device=self.device)
        dist.all_reduce(code, op=dist.ReduceOp.MAX)
        return STOP_REASONS[int(code)]


def init_distributed(device: torch.device) -> Dist:
    """The process group of torchrun (started here unless it already is), or ``Dist()``."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist(device=device)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return Dist(rank=dist.get_rank(), world=dist.get_world_size(),
                local_rank=int(os.environ.get("LOCAL_RANK", "0")), device=device)


def rank_device(name: str, world: int, local_rank: int) -> torch.device:
    """The device of this process (of ``world``, under torchrun): ``--device cuda`` (or auto on a
    CUDA machine) is the GPU of its LOCAL_RANK, and becomes the current CUDA device, before NCCL
    starts. A fixed ``cuda:N`` would put every process on one GPU: refused when world > 1."""
    if world > 1 and name.startswith("cuda:"):
        raise ArgumentError(f"--device {name} under torchrun would put all {world} processes on one "
                            "GPU: use --device cuda (each process takes the GPU of its LOCAL_RANK)")
    name = resolve_device(name)
    if name.startswith("cuda"):
        if name == "cuda":
            if local_rank >= torch.cuda.device_count():
                raise ArgumentError(f"LOCAL_RANK {local_rank}: this machine has "
                                    f"{torch.cuda.device_count()} CUDA device(s)")
            name = f"cuda:{local_rank}"
        torch.cuda.set_device(torch.device(name))
    return torch.device(name)


def rank_weight_diff(model: torch.nn.Module) -> float:
    """Largest absolute difference between this rank's parameters and rank 0's, over all ranks."""
    flat = torch.cat([p.detach().reshape(-1).float() for p in model.parameters()])
    ref = flat.clone()
    dist.broadcast(ref, src=0)
    diff = (flat - ref).abs().max().reshape(1)
    dist.all_reduce(diff, op=dist.ReduceOp.MAX)
    return float(diff)


def close_distributed(d: Dist, owned: bool, finished: bool) -> None:
    """End the process group this run started (``owned``): after a barrier when the run
    ``finished`` (a rank that left early while another was still writing once aborted in gloo's
    teardown), so that no gloo / NCCL thread is killed at exit."""
    if owned and d.world > 1 and dist.is_initialized():
        if finished:
            dist.barrier()
        dist.destroy_process_group()
