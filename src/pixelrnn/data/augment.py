"""Training-time augmentations of a batch: random shifts and flips, the symmetries of the square."""
from __future__ import annotations

import numbers

import torch

from ..errors import ArgumentError


def augment(images: torch.Tensor, *, shift: int = 0, hflip: bool = False,
            generator: torch.Generator | None = None) -> torch.Tensor:
    """Training-time augmentation of a batch (B, C, H, W), any dtype; a new tensor, same shape.

    ``shift=s``: every image moves by its own random (dy, dx), each uniform in [-s, s]; the rows
    and columns that come in repeat the edge (zeros for MNIST's black border, no black bands on
    photos). ``hflip``: every image is mirrored left-right with probability 1/2. Values are only
    moved, never interpolated, so the result has exactly the levels of the input. The draws come
    from ``generator`` (CPU), in the order dy, dx, flip."""
    if isinstance(shift, bool) or not isinstance(shift, numbers.Integral) or shift < 0:
        raise ArgumentError(f"shift must be an integer >= 0, got {shift!r}")
    shift = int(shift)
    if images.dim() != 4:
        raise ArgumentError(f"expected a batch (B, C, H, W), got shape {tuple(images.shape)}")
    B, C, H, W = images.shape
    if not shift and not hflip:
        return images.clone()
    rows = torch.arange(H).expand(B, H)
    cols = torch.arange(W).expand(B, W)
    if shift:
        dy = torch.randint(-shift, shift + 1, (B, 1), generator=generator)
        dx = torch.randint(-shift, shift + 1, (B, 1), generator=generator)
        rows, cols = (rows - dy).clamp(0, H - 1), (cols - dx).clamp(0, W - 1)  # (B, H), (B, W)
    if hflip:
        flip = torch.rand(B, 1, generator=generator) < 0.5
        cols = torch.where(flip, cols.flip(-1), cols)
    rows, cols = rows.to(images.device), cols.to(images.device)
    out = images.gather(2, rows[:, None, :, None].expand(B, C, H, W))
    return out.gather(3, cols[:, None, None, :].expand(B, C, H, W))


DIHEDRAL = ("identity", "rot90", "rot180", "rot270", "transpose", "rot90+transpose",
            "rot180+transpose", "rot270+transpose")  # the 8 symmetries of the square, by index


def dihedral(images: torch.Tensor, which: torch.Tensor) -> torch.Tensor:
    """Each image of a square batch (B, C, N, N) under its own symmetry of the square:
    ``which[b]`` in 0..7 names it (``DIHEDRAL``: t % 4 quarter turns counter-clockwise, then a
    transpose when t >= 4; 0 leaves the image as it is). A new tensor; values are only moved."""
    if images.dim() != 4 or images.shape[2] != images.shape[3]:
        raise ArgumentError(f"the symmetries of the square need square images (B, C, N, N), got "
                         f"shape {tuple(images.shape)}")
    which = torch.as_tensor(which).reshape(-1).cpu()
    if which.shape[0] != images.shape[0]:
        raise ArgumentError(f"need one symmetry per image: {which.shape[0]} for {images.shape[0]} images")
    if which.numel() and not (0 <= int(which.min()) and int(which.max()) < len(DIHEDRAL)):
        raise ArgumentError(f"symmetry indices must be in [0, {len(DIHEDRAL) - 1}]")
    out = images.clone()
    for t in range(1, len(DIHEDRAL)):
        idx = (which == t).nonzero().flatten().to(images.device)
        if idx.numel():
            y = torch.rot90(images[idx], t % 4, dims=(2, 3))
            out[idx] = y.transpose(2, 3) if t >= 4 else y
    return out


