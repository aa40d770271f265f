"""Pixel values <-> viewable images: scaling to 8 bits, grids, PNG files (Pillow), one or many
written atomically."""
from __future__ import annotations

import math
import os
import tempfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .files import atomic_write, current_umask


def to_uint8(images: torch.Tensor | np.ndarray, levels: int) -> np.ndarray:
    """Values in [0, levels) -> uint8 in [0, 255] (0 -> 0, levels-1 -> 255), shape kept."""
    a = images.detach().cpu().numpy() if torch.is_tensor(images) else np.asarray(images)
    a = a.astype(np.float64) * (255.0 / max(1, levels - 1))
    return np.clip(np.rint(a), 0, 255).astype(np.uint8)


def grid(images: np.ndarray, ncol: int | None = None, gap: int = 1, fill: int = 128) -> np.ndarray:
    """(N, C, H, W) uint8 -> one (H', W', C) image: the N images row by row, ``ncol`` per row
    (default: a near-square grid), ``gap`` pixels of value ``fill`` between them."""
    n, c, h, w = images.shape
    ncol = ncol or max(1, math.ceil(math.sqrt(n)))
    nrow = math.ceil(n / ncol)
    out = np.full((nrow * (h + gap) - gap, ncol * (w + gap) - gap, c), fill, dtype=np.uint8)
    for k in range(n):
        r, q = divmod(k, ncol)
        y, x = r * (h + gap), q * (w + gap)
        out[y:y + h, x:x + w] = images[k].transpose(1, 2, 0)
    return out


def as_rgb(images: np.ndarray) -> np.ndarray:
    """(N, 1|3, H, W) uint8 -> (N, 3, H, W)."""
    return np.repeat(images, 3, axis=1) if images.shape[1] == 1 else images


def save_png(image: np.ndarray, path: str | Path, scale: int = 1) -> None:
    """Write an (H, W, C) or (H, W) uint8 array as PNG, atomically; ``scale`` enlarges it."""
    a = image[..., 0] if image.ndim == 3 and image.shape[2] == 1 else image
    img = Image.fromarray(a)
    if scale > 1:
        img = img.resize((img.width * scale, img.height * scale), Image.NEAREST)
    atomic_write(path, lambda tmp: img.save(tmp, format="PNG"))


def save_pngs(images: list[np.ndarray], paths: list[Path]) -> None:
    """Write each (H, W, C) uint8 image to its path as PNG: all of them or none. Each is written
    to a temporary file beside its target first (folders are created), then all are moved into
    place; an error or an interrupt before the moves removes the temporary files."""
    staged: list[str] = []
    mode = 0o666 & ~current_umask()  # what a plain open() would give (mkstemp makes 0600)
    try:
        for image, target in zip(images, paths):
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".prnn-", suffix=".tmp", dir=target.parent)
            os.close(fd)
            staged.append(tmp)
            Image.fromarray(image[..., 0] if image.shape[2] == 1 else image).save(tmp, format="PNG")
            os.chmod(tmp, mode)
        for tmp, target in zip(staged, paths):
            os.replace(tmp, target)
    except BaseException:
        for tmp in staged:
            if os.path.exists(tmp):
                os.unlink(tmp)
        raise
