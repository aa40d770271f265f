"""Built-in out-of-distribution sets, made from the in-distribution test images or from other
data, with the reference's channels, size and levels (see :data:`OOD_SETS`)."""
from __future__ import annotations

import math

import numpy as np
import torch

from ..data import convert_images
from ..errors import ArgumentError

# Built-in OOD sets. "The in-distribution test images" are the images passed as ``reference``
# (for ``pixelrnn score --data mnist`` the 1000 MNIST test digits). Every set has the reference's
# channels, height, width and levels; random choices use np.random.default_rng(OOD_SEEDS[name]).
OOD_SETS: dict[str, str] = {
    "noise": "the in-distribution test images + Gaussian noise, sigma = 0.2 x full range "
             "(51 of 255), rounded and clipped",
    "inverted": "the in-distribution test images inverted (levels - 1 - v)",
    "rotated": "the in-distribution test images rotated by 90 degrees (180 if not square)",
    "shuffled": "the in-distribution test images cut into a 4x4 grid of patches (7x7 for 28x28), "
                "patches shuffled per image",
    "digits": "1000 of scikit-learn's 8x8 digits: 0..16 scaled to 0..255, resized (bilinear) to "
              "20/28 of the size and padded with 0 like MNIST (20x20 in 28x28)",
    "constant": "1000 constant images, one uniformly random level each",
    "uniform": "1000 images of independent uniformly random values",
    "photos": "photos32 test patches (386) converted to the model's channels (gray by luminance) "
              "and center-cropped (resized, bilinear, if smaller) to the image size",
}
OOD_SEEDS: dict[str, int] = {"noise": 7001, "shuffled": 7002, "digits": 7003, "constant": 7004,
                             "uniform": 7005}
OOD_SIZE = 1000  # images in the generated sets (constant, uniform, digits)
NOISE_SIGMA = 0.2  # of the full range (levels - 1)


def _resize(a8: np.ndarray, height: int, width: int) -> np.ndarray:
    """(N, C, h, w) uint8 -> (N, C, height, width) with Pillow's bilinear filter."""
    from PIL import Image
    out = np.empty((a8.shape[0], a8.shape[1], height, width), dtype=np.uint8)
    for i, im in enumerate(a8):
        for c, plane in enumerate(im):
            out[i, c] = np.asarray(Image.fromarray(plane).resize((width, height), Image.BILINEAR))
    return out


def _fit(a8: np.ndarray, height: int, width: int) -> np.ndarray:
    """Center-crop to height x width, resizing (bilinear) first where the image is smaller."""
    h, w = a8.shape[2:]
    if h < height or w < width:
        f = max(height / h, width / w)
        a8 = _resize(a8, max(height, math.ceil(h * f)), max(width, math.ceil(w * f)))
        h, w = a8.shape[2:]
    top, left = (h - height) // 2, (w - width) // 2
    return a8[:, :, top:top + height, left:left + width]


def _shuffled(ref: torch.Tensor, rng) -> torch.Tensor:
    """Each image cut into a 4x4 grid of patches, the patches shuffled per image (a remainder at
    the bottom and right, when H or W is not a multiple of 4, stays in place)."""
    n_ref, C, H, W = ref.shape
    ph, pw = H // 4, W // 4
    if ph == 0 or pw == 0:
        raise ArgumentError(f"'shuffled' needs images of at least 4x4 pixels, got {H}x{W}")
    a = ref.numpy().copy()
    core = a[:, :, :4 * ph, :4 * pw].reshape(n_ref, C, 4, ph, 4, pw).transpose(0, 2, 4, 1, 3, 5)
    core = core.reshape(n_ref, 16, C, ph, pw)
    perm = np.stack([rng.permutation(16) for _ in range(n_ref)])
    core = np.take_along_axis(core, perm[:, :, None, None, None], axis=1)
    core = core.reshape(n_ref, 4, 4, C, ph, pw).transpose(0, 3, 1, 4, 2, 5)
    a[:, :, :4 * ph, :4 * pw] = core.reshape(n_ref, C, 4 * ph, 4 * pw)
    return torch.from_numpy(a)


def _digits(n: int, C: int, H: int, W: int, levels: int, rng) -> torch.Tensor:
    """``n`` of scikit-learn's 8x8 digits placed like MNIST digits (20x20 in 28x28) in H x W."""
    from ..data import load_dataset
    d = load_dataset("digits", "all").images.numpy()  # (1797, 1, 8, 8), 0..16
    d = d[rng.permutation(len(d))[:n]]
    d8 = np.rint(d.astype(np.float64) * 255 / 16).astype(np.uint8)
    ih, iw = max(1, round(H * 20 / 28)), max(1, round(W * 20 / 28))
    inner = _resize(d8, ih, iw)
    a8 = np.zeros((len(d8), 1, H, W), dtype=np.uint8)
    top, left = (H - ih) // 2, (W - iw) // 2
    a8[:, :, top:top + ih, left:left + iw] = inner
    return convert_images(torch.from_numpy(a8), 256, C, levels)


def _photos(limit: int | None, C: int, H: int, W: int, levels: int) -> torch.Tensor:
    """The photos32 test patches in the model's channels, fitted to H x W."""
    from ..data import load_dataset
    p = load_dataset("photos32", "test").images
    if limit is not None:
        p = p[:limit]
    p = convert_images(p, 256, C, 256).numpy()
    return convert_images(torch.from_numpy(np.ascontiguousarray(_fit(p, H, W))), 256, C, levels)


def _build(name: str, ref: torch.Tensor, levels: int, n: int, limit: int | None, rng) -> torch.Tensor:
    """The set ``name`` from the int64 reference images (N, C, H, W), before the limit."""
    _, C, H, W = ref.shape
    top = levels - 1
    if name == "inverted":
        return top - ref
    if name == "rotated":
        return torch.rot90(ref, 1 if H == W else 2, dims=(2, 3))
    if name == "noise":
        noise = rng.normal(0.0, NOISE_SIGMA * top, size=tuple(ref.shape))
        return torch.from_numpy(np.clip(np.rint(ref.numpy() + noise), 0, top).astype(np.int64))
    if name == "shuffled":
        return _shuffled(ref, rng)
    if name == "constant":
        values = rng.integers(0, levels, size=n)
        return torch.from_numpy(np.broadcast_to(values[:, None, None, None], (n, C, H, W)).copy())
    if name == "uniform":
        return torch.from_numpy(rng.integers(0, levels, size=(n, C, H, W)))
    if name == "digits":
        return _digits(n, C, H, W, levels, rng)
    return _photos(limit, C, H, W, levels)


def make_ood_set(name: str, reference: torch.Tensor, levels: int, *,
                 limit: int | None = None) -> torch.Tensor:
    """Build the built-in OOD set ``name`` (see :data:`OOD_SETS`) matching ``reference``, the
    in-distribution test images (N, C, H, W) with values in [0, levels): same channels, size and
    levels. Deterministic (fixed seeds). ``limit`` caps the number of images. Returns uint8."""
    if name not in OOD_SETS:
        raise ArgumentError(f"unknown OOD set {name!r}; built-in sets: {', '.join(OOD_SETS)}")
    if reference.dim() != 4 or reference.shape[0] == 0:
        raise ArgumentError(f"reference images must be a non-empty (N, C, H, W) tensor, got "
                            f"{tuple(reference.shape)}")
    ref = reference.cpu().to(torch.int64)
    n = OOD_SIZE if limit is None else min(OOD_SIZE, limit)
    rng = np.random.default_rng(OOD_SEEDS.get(name, 0))
    out = _build(name, ref, levels, n, limit, rng)
    if limit is not None:
        out = out[:limit]
    return out.to(torch.uint8).contiguous()
