"""What the timing scripts under bench/ share: the flags that size the model and the run, and the
device they run on (imported as ``common``: Python puts the script's folder on the path)."""
from __future__ import annotations

import argparse

import torch

from pixelrnn.device import resolve_device


def size_flags(p: argparse.ArgumentParser, *, batch: int | None = 16, repeats: int = 5) -> None:
    """--batch (unless ``batch`` is None), --size, --levels, --hidden, --layers, --threads,
    --repeats and --device, with the defaults every timing script uses (a 28×28, 256-level
    model with h = 64 and 7 layers, on 2 CPU threads)."""
    if batch is not None:
        p.add_argument("--batch", type=int, default=batch)
    p.add_argument("--size", type=int, default=28)
    p.add_argument("--levels", type=int, default=256)
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--layers", type=int, default=7)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=repeats)
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")


def device_of(p: argparse.ArgumentParser, a: argparse.Namespace) -> torch.device:
    """The device of --device (a parser error when it is not there) with --threads set."""
    try:
        device = torch.device(resolve_device(a.device))
    except ValueError as e:
        p.error(str(e))
    torch.set_num_threads(a.threads)
    return device
