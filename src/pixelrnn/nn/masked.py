"""Masked convolutions: the only way information enters a PixelRNN layer from the current pixel.

Every feature map of every layer belongs to one colour group (R, G or B for RGB images; one group
for grayscale). ``channel_groups(n, C)`` splits ``n`` features into ``C`` contiguous groups.

A masked k×k kernel keeps the rows above the centre and, in the centre row, the taps left of the
centre. At the centre tap it keeps only the connections allowed between colour groups::

    spatial part (5×5)          centre tap, input group -> output group (RGB)

    1 1 1 1 1                        mask A              mask B
    1 1 1 1 1                    in:  R G B           in:  R G B
    1 1 c 0 0                out R:   0 0 0       out R:   1 0 0
    0 0 0 0 0                out G:   1 0 0       out G:   1 1 0
    0 0 0 0 0                out B:   1 1 0       out B:   1 1 1

Mask A (first layer only) forbids a group from reading its own colour at the centre; mask B (all
later layers) allows it. With one colour group mask A removes the centre tap and mask B keeps it.

The mask is applied functionally (``weight * mask``) on every call, so the stored weight is never
mutated and an optimizer step cannot re-open a masked connection. Rows below the centre are always
zero, so they are cropped away instead of being multiplied by zero.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F
from ..errors import ArgumentError


def channel_groups(n: int, colors: int) -> torch.Tensor:
    """Colour group (0..colors-1) of each of ``n`` features: contiguous, as equal as possible."""
    return torch.arange(n) * colors // n


def make_mask(out_groups: torch.Tensor, in_groups: torch.Tensor, kernel_size: tuple[int, int],
              mask_type: str) -> torch.Tensor:
    """The (out, in, kh, kw) 0/1 mask of a causal kernel; the centre is (kh // 2, kw // 2)."""
    if mask_type not in ("A", "B"):
        raise ArgumentError(f"mask_type must be 'A' or 'B', got {mask_type!r}")
    kh, kw = kernel_size
    ch, cw = kh // 2, kw // 2
    mask = torch.ones(len(out_groups), len(in_groups), kh, kw)
    mask[:, :, ch + 1:, :] = 0  # rows below the centre
    mask[:, :, ch, cw + 1:] = 0  # right of the centre in the centre row
    og, ig = out_groups[:, None], in_groups[None, :]
    allowed = ig < og if mask_type == "A" else ig <= og
    mask[:, :, ch, cw] = allowed.float()
    return mask


class MaskedConv2d(nn.Module):
    """A k×k convolution that only sees earlier pixels and earlier (or same, mask B) colours.

    ``in_groups`` / ``out_groups`` give each feature's colour group; by default the features are
    split evenly with :func:`channel_groups`. Input and output have the same H×W ("same" padding
    above, left and right; nothing below, since the lower rows of the kernel are masked).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int | tuple[int, int],
                 mask_type: str, colors: int = 1, *, in_groups: torch.Tensor | None = None,
                 out_groups: torch.Tensor | None = None, bias: bool = True):
        super().__init__()
        kh, kw = (kernel_size, kernel_size) if isinstance(kernel_size, int) else tuple(kernel_size)
        if kh % 2 == 0 or kw % 2 == 0:
            raise ArgumentError(f"kernel_size must be odd, got {(kh, kw)}")
        in_groups = channel_groups(in_channels, colors) if in_groups is None else in_groups
        out_groups = channel_groups(out_channels, colors) if out_groups is None else out_groups
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size, self.mask_type, self.colors = (kh, kw), mask_type, colors
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels, kh, kw))
        self.bias = nn.Parameter(torch.empty(out_channels)) if bias else None
        self.register_buffer("mask", make_mask(out_groups, in_groups, (kh, kw), mask_type),
                             persistent=False)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        # fan-in counted over the taps that are actually connected
        fan_in = max(1.0, float(self.mask.sum(dim=(1, 2, 3)).mean()))
        bound = 1.0 / math.sqrt(fan_in)
        nn.init.uniform_(self.weight, -bound * math.sqrt(3), bound * math.sqrt(3))
        if self.bias is not None:
            nn.init.uniform_(self.bias, -bound, bound)

    def masked_weight(self) -> torch.Tensor:
        """Weight times mask, cropped to the rows that can be non-zero: (out, in, kh//2 + 1, kw)."""
        rows = self.kernel_size[0] // 2 + 1
        return (self.weight * self.mask)[:, :, :rows]

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, in, H, W) -> (B, out, H, W)
        kh, kw = self.kernel_size
        w = self.masked_weight()
        if kh > 1 or kw > 1:
            x = F.pad(x, (kw // 2, kw // 2, kh // 2, 0))
        return F.conv2d(x, w, self.bias)

    def pointwise(self, x: torch.Tensor) -> torch.Tensor:  # (..., in) -> (..., out), 1×1 kernels only
        """Apply a 1×1 masked convolution to a channels-last tensor."""
        if self.kernel_size != (1, 1):
            raise ArgumentError("pointwise() needs a 1x1 kernel")
        return F.linear(x, (self.weight * self.mask)[:, :, 0, 0], self.bias)

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"mask_type={self.mask_type!r}, colors={self.colors}")
