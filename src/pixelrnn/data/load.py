"""``load_dataset``: a spec (built-in name or ``PREFIX:PATH``) to an :class:`ImageDataset` of one
split, cropped and requantized; the helpers around specs and levels."""
from __future__ import annotations

import functools
import numbers
import os
import re
from pathlib import Path

import numpy as np
import torch

from ..errors import ArgumentError, DataError
from .arrays import load_array_file
from .builtin import BUILTINS, DATASETS
from .dataset import SPLITS, ImageDataset, IndexNames, Parts, shape_str
from .formats import load_binarized_mnist_amat, load_cifar10, load_mnist_idx
from .imagenet import load_imagenet
from .images import load_folder
from .store import ImageStore, is_mapped

USER_FORMATS: dict[str, str] = {
    "folder:PATH": "PNG/JPEG files under PATH (train/ and test/ subfolders, or a seeded 90/10 split)",
    "npy:PATH": "a uint8 array NxHxW, NxHxWxC or NxCxHxW, memory-mapped (seeded 90/10 split, or the "
                "split of its .meta.json: pixelrnn prepare)",
    "npz:PATH": "arrays x_train/x_test (or train/test), or one array x/images/arr_0 (90/10 split)",
    "mnist-idx:DIR": "train-images-idx3-ubyte and t10k-images-idx3-ubyte (optionally .gz)",
    "cifar10:DIR": "the CIFAR-10 python batches data_batch_1..5 and test_batch",
    "imagenet32:DIR": "downsampled ImageNet 32x32: train_data_batch_1..10.npz, test = val_data.npz",
    "imagenet64:DIR": "downsampled ImageNet 64x64: train_data_batch_1..10.npz, test = val_data.npz",
    "binarized-mnist-amat:DIR": "Larochelle & Murray's binarized_mnist_{train,valid,test}.amat "
                                "(train = train + valid), 2 levels",
}

_USER_LOADERS = {
    "folder": load_folder,
    "npy": load_array_file,
    "npz": load_array_file,
    "mnist-idx": load_mnist_idx,
    "cifar10": load_cifar10,
    "imagenet32": functools.partial(load_imagenet, side=32),
    "imagenet64": functools.partial(load_imagenet, side=64),
    "binarized-mnist-amat": load_binarized_mnist_amat,
}


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


def convert_images(images: torch.Tensor, native_levels: int, channels: int, levels: int) -> torch.Tensor:
    """Images (N, C, H, W) with ``native_levels`` values -> ``channels`` and ``levels`` (uint8;
    int64 above 256 levels). To fewer levels, values are quantized as ``v * levels //
    native_levels``, the map of ``load_dataset(..., levels=K)``, so a dataset converted here
    matches the same data loaded with ``--levels``. RGB to gray (Pillow's luminance,
    ``convert("L")``) and more levels than the data go through 8 bits first (``round(v * 255 /
    (native - 1))``), then ``v * levels // 256``; gray is repeated into RGB. Unchanged when the
    channels and levels already match."""
    from PIL import Image

    from ..imaging import to_uint8
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


def absolute_spec(spec: str) -> str:
    """The spec with an absolute path (``npz:d.npz`` -> ``npz:/home/me/d.npz``), so that a run
    resumed from another working directory reads the same files; other specs unchanged."""
    prefix, sep, rest = spec.partition(":")
    if sep and prefix in _USER_LOADERS and rest.strip() and spec not in BUILTINS:
        return f"{prefix}:{os.path.abspath(os.path.expanduser(rest))}"
    return spec


def _load_parts(spec: str, split: str, crop: tuple[int, int] | None, skip_bad: bool) -> Parts:
    if spec in BUILTINS:
        return BUILTINS[spec](split)
    prefix, sep, rest = spec.partition(":")
    if sep and prefix in _USER_LOADERS:
        if not rest.strip():
            raise DataError(f"{spec!r}: no path after '{prefix}:'")
        path = Path(os.path.expanduser(rest))
        if not path.exists():
            raise DataError(f"{path} does not exist (dataset spec {spec!r})")
        if prefix == "folder":
            return load_folder(path, crop, skip_bad)
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


def _finish(spec: str, split: str, parts: Parts, levels: int | None,
            crop: tuple[int, int] | None) -> ImageDataset:
    """The dataset of ``split`` from a loader's parts: selected, cropped, requantized; in memory
    a new tensor, memory-mapped parts stay a store (a view of the file)."""
    if not parts.same and parts.train is not None and parts.test is not None:  # whichever split is asked for
        tr, te = parts.train.shape[1:], parts.test.shape[1:]
        if tr[0] != te[0] or (crop is None and tr != te):
            raise DataError(f"{spec}: train images are {shape_str(parts.train)} but test images are "
                            f"{shape_str(parts.test)}")
    mapped = is_mapped(parts.train) or is_mapped(parts.test)
    store, names, probs, labels = _select(parts, split)
    if crop is not None:
        store = store.cropped(crop, spec)
        if probs is not None:
            probs = _center_crop(probs, crop, spec)
    store, levels = _requantize(store, parts.levels, levels, spec, sample=SAMPLE if mapped else None)
    return ImageDataset(
        images=store if mapped else torch.from_numpy(store.read()),
        levels=levels, name=spec, split=split, names=names, skipped=list(parts.skipped),
        probs=None if probs is None else torch.from_numpy(np.array(probs, dtype=np.float32, copy=True)),
        labels=None if labels is None else torch.from_numpy(np.array(labels, dtype=np.int64, copy=True)),
        class_names=None if labels is None else list(parts.class_names), labels_note=parts.labels_note,
    )


def _as_store(a) -> ImageStore:
    return a if isinstance(a, ImageStore) else ImageStore([a])


def _select(parts: Parts, split: str):
    """(store, names, probs, labels) of ``split``: the train part, the test part, or both in turn
    ("all"; a one-image folder holds its image once)."""
    def names_of(which: str):
        arr, names = (parts.train, parts.train_names) if which == "train" else (parts.test, parts.test_names)
        return list(names) if names is not None else IndexNames([(which, len(arr))])

    if split == "train" or (split == "all" and parts.same):
        probs = parts.train_probs if split == "train" else None
        return _as_store(parts.train), names_of("train"), probs, parts.train_labels
    if split == "test":
        return _as_store(parts.test), names_of("test"), None, parts.test_labels
    labels = None
    if parts.train_labels is not None and parts.test_labels is not None:
        labels = np.concatenate([parts.train_labels, parts.test_labels])
    store = ImageStore.concat(_as_store(parts.train), _as_store(parts.test))
    return store, names_of("train") + names_of("test"), None, labels


SAMPLE = 4096  # images of a memory-mapped dataset looked at by the check of levels=K


def _requantize(store: ImageStore, native: int, levels: int | None, spec: str,
                sample: int | None) -> tuple[ImageStore, int]:
    """Images of ``native`` levels read as ``levels`` levels (v * levels // native) and that
    number. A map that sends every value to one is an error (checked on the first ``sample``
    images, all when None)."""
    if levels is not None and levels > native:
        raise DataError(f"levels={levels} is more than the {native} levels of {spec}")
    if levels is None or levels == native:
        return store, native
    lut = (np.arange(256, dtype=np.uint16) * levels // native).astype(np.uint8)
    images = store.read(slice(0, sample))
    lo, hi = (int(images.min()), int(images.max())) if images.size else (0, 0)
    if lo != hi and lut[lo] == lut[hi]:  # e.g. 0/1 pixels with levels=2: all 0
        raise DataError(f"levels={levels} maps every value of {spec} to {int(lut[images.flat[0]])}: "
                        f"its values are {lo}..{hi} and requantizing takes v * {levels} // {native} "
                        f"(data with {native} levels); scale the data to 0..{native - 1} first")
    return store.requantized(lut), levels
