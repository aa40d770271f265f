"""The one place that turns a ``--device`` string into a device of this machine."""
from __future__ import annotations

import torch
from .errors import ArgumentError


def check_device_name(name: str, option: str = "--device", allow_auto: bool = True) -> None:
    """ValueError (one line) unless ``name`` is cpu, cuda, cuda:N (or auto, when allowed)."""
    ok = name == "cpu" or name == "cuda" or (name.startswith("cuda:") and name[5:].isdigit())
    if not ok and not (allow_auto and name == "auto"):
        choices = "auto, cpu, cuda or cuda:N" if allow_auto else "cpu, cuda or cuda:N"
        raise ArgumentError(f"{option} must be {choices}, got {name!r}")


def resolve_device(name: str, option: str = "--device", allow_auto: bool = True) -> str:
    """'auto' -> 'cuda' when this machine has one, else 'cpu'; 'cpu', 'cuda' or 'cuda:N' checked
    against this machine. A ValueError (one line) for anything else."""
    check_device_name(name, option, allow_auto)
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ArgumentError(f"{option} {name}: no CUDA device is available")
        if name != "cuda" and int(name[5:]) >= torch.cuda.device_count():
            raise ArgumentError(f"{option} {name}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    return name
