"""The input checks of a distribution: images, counts, sampling arguments, known-value masks.
Each raises :class:`pixelrnn.errors.ArgumentError` naming the problem."""
from __future__ import annotations

import math
import numbers

import torch

from ..errors import ArgumentError

METHODS = ("cached", "naive")  # sampling methods: the cached engines, or one full pass per value


def check_images(x, channels: int, levels: int, device: torch.device) -> torch.Tensor:
    """Validate an image batch and return it as int64 on ``device``."""
    if not isinstance(x, torch.Tensor):
        raise ArgumentError(f"expected a torch.Tensor of shape (B, C, H, W), got {type(x).__name__}")
    if x.dtype.is_floating_point or x.dtype.is_complex or x.dtype == torch.bool:
        raise ArgumentError(f"expected an integer tensor of pixel values in [0, {levels}), "
                            f"got dtype {x.dtype}")
    if x.dim() != 4:
        raise ArgumentError(f"expected shape (B, C, H, W), got {tuple(x.shape)}")
    if x.shape[1] != channels:
        raise ArgumentError(f"expected {channels} channel(s), got {x.shape[1]} (shape {tuple(x.shape)})")
    if x.shape[0] < 1 or x.shape[2] < 1 or x.shape[3] < 1:
        raise ArgumentError(f"empty image batch: shape {tuple(x.shape)}")
    if x.dtype in (torch.uint16, torch.uint32, torch.uint64):  # no min/max kernels for these
        x = x.to(torch.int64)  # (uint64 above 2**63 - 1 wraps negative: refused below)
    lo, hi = torch.stack(torch.aminmax(x)).tolist()  # one device-to-host copy
    if lo < 0 or hi >= levels:
        raise ArgumentError(f"pixel values must be in [0, {levels - 1}], got min {lo}, max {hi}")
    return x.to(device=device, dtype=torch.long)


def check_count(name: str, v, minimum: int = 1) -> int:
    if isinstance(v, bool) or not isinstance(v, numbers.Integral):
        raise ArgumentError(f"{name} must be an integer >= {minimum}, got {v!r}")
    if v < minimum:
        raise ArgumentError(f"{name} must be an integer >= {minimum}, got {v}")
    return int(v)


def check_sampling(model, temperature, method, generator=None) -> float:
    """The arguments every generation takes; returns the temperature as a float."""
    if generator is not None:
        if not isinstance(generator, torch.Generator):
            raise ArgumentError(f"generator must be a torch.Generator or None, got {type(generator).__name__}")
        if generator.device.type != model.device.type:
            raise ArgumentError(f"the generator is on {generator.device.type} but the model on "
                                f"{model.device.type}: use torch.Generator(device=model.device)")
    if method not in METHODS:
        raise ArgumentError(f"unknown sampling method {method!r}; choose one of {', '.join(METHODS)}")
    if method == "cached" and not model.has_cached_sampler:
        raise ArgumentError(f"cached sampling is not implemented for {type(model).__name__}; "
                            f"use method='naive'")
    if isinstance(temperature, bool) or not isinstance(temperature, numbers.Real):
        raise ArgumentError(f"temperature must be a number > 0, got {temperature!r}")
    t = float(temperature)
    if not (t > 0) or not math.isfinite(t):
        raise ArgumentError(f"temperature must be a finite number > 0, got {temperature!r}")
    return t


def check_size(height, width) -> tuple[int, int]:
    if height is None or width is None:
        raise ArgumentError("sample() needs the image size: height=H, width=W")
    return check_count("height", height), check_count("width", width)


def check_known(model, x, known) -> tuple[torch.Tensor, torch.Tensor]:
    """``x`` (its known values checked; unknown positions may hold anything) as int64 and
    ``known`` expanded to its shape, both on the model's device."""
    if not isinstance(x, torch.Tensor):
        raise ArgumentError(f"expected x as a torch.Tensor of shape (B, C, H, W), got {type(x).__name__}")
    if not isinstance(known, torch.Tensor):
        raise ArgumentError(f"known must be a bool torch.Tensor broadcastable to x {tuple(x.shape)}, "
                            f"got {type(known).__name__}")
    if known.dtype != torch.bool:
        raise ArgumentError(f"known must be a bool tensor (True = keep the value), got dtype {known.dtype}")
    if x.dim() != 4:
        model.check_input(x)  # raises with the standard message
    try:
        shape = torch.broadcast_shapes(known.shape, x.shape)
    except RuntimeError:
        shape = None
    if shape != tuple(x.shape):
        raise ArgumentError(f"known of shape {tuple(known.shape)} is not broadcastable to x of shape "
                            f"{tuple(x.shape)}")
    known = known.to(x.device).expand(x.shape)
    if x.dtype.is_floating_point or x.dtype.is_complex or x.dtype == torch.bool:
        model.check_input(x)  # raises: integer values needed
    x = model.check_input(torch.where(known, x, torch.zeros((), dtype=x.dtype, device=x.device)))
    return x, known.to(x.device).contiguous()
