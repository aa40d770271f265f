"""Heat maps: images beside their per-pixel -log p maps (see :func:`.scores.pixel_nll`)."""
from __future__ import annotations

import math

import numpy as np
import torch

from ..errors import ArgumentError
from ..imaging import grid, to_uint8


def heatmap(images: torch.Tensor, maps: torch.Tensor, levels: int, *, vmax: float | None = None,
            cmap: str = "inferno", pairs_per_row: int | None = None) -> tuple[np.ndarray, float]:
    """Each image beside its per-pixel NLL map, as one (H', W', 3) uint8 grid (use
    ``imaging.save_png(..., scale=...)`` to enlarge it with nearest-neighbour pixels).

    ``maps`` (B, H, W) is coloured with matplotlib's ``cmap`` on one scale shared by all images,
    from 0 to ``vmax`` nats (default: the 99th percentile of all map values, so one extreme pixel
    does not wash out the rest; larger values are clipped). Returns the grid and ``vmax``."""
    import matplotlib

    if images.dim() != 4 or maps.dim() != 3 or images.shape[0] != maps.shape[0] \
            or tuple(images.shape[2:]) != tuple(maps.shape[1:]):
        raise ArgumentError(f"images {tuple(images.shape)} and maps {tuple(maps.shape)} do not match")
    pix = to_uint8(images, levels)  # (B, C, H, W)
    if pix.shape[1] == 1:
        pix = np.repeat(pix, 3, axis=1)
    m = maps.detach().float().cpu().numpy()
    if vmax is None:
        vmax = float(np.percentile(m, 99)) if m.size else 1.0
    vmax = vmax if vmax > 0 and math.isfinite(vmax) else 1.0
    rgba = matplotlib.colormaps[cmap](np.clip(m / vmax, 0.0, 1.0))  # (B, H, W, 4) floats
    colours = np.rint(rgba[..., :3] * 255).astype(np.uint8).transpose(0, 3, 1, 2)
    n = pix.shape[0]
    pairs = np.stack([pix, colours], axis=1).reshape(2 * n, *pix.shape[1:])  # image, map, ...
    per_row = pairs_per_row or min(n, 4)
    return grid(pairs, ncol=2 * per_row), vmax


def heatmap_scale(height: int, width: int) -> int:
    """Nearest-neighbour enlargement that makes small images visible (28x28 -> 4x)."""
    return max(1, min(8, 128 // max(height, width)))
