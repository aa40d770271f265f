"""``imagenet32:DIR`` / ``imagenet64:DIR``: the downsampled ImageNet of Chrabaszcz, Loshchilov &
Hutter (2017), as distributed: ``train_data_batch_1.npz`` ... ``train_data_batch_10.npz`` (the
train split, in that order) and ``val_data.npz`` (the test split). Each holds ``data``, uint8
(N, 3·S·S) with the R plane, then G, then B (each S×S row-major), and ``labels``, 1 ... 1000.

The images are read batch file by batch file, never concatenated in memory: each file is one
shard of an :class:`ImageStore`. A member stored uncompressed is memory-mapped; a compressed one
(the files as distributed are ``np.savez_compressed``) is decompressed when a batch first needs
it and kept while it is among the last two used (:class:`CompressedMember`), so reading in order
(evaluation, ``pixelrnn prepare``) decompresses each file once.
"""
from __future__ import annotations

import warnings
import zipfile
from collections import OrderedDict
from pathlib import Path

import numpy as np

from ..errors import DataError
from .arrays import map_npz_member
from .dataset import DataWarning, Parts, check_labels, oneline
from .store import ImageStore

IMAGENET_TRAIN = tuple(f"train_data_batch_{i}.npz" for i in range(1, 11))
IMAGENET_TEST = ("val_data.npz",)
IMAGENET_CLASSES = [str(i) for i in range(1, 1001)]  # class k (0-based) is the files' label k + 1


class ArrayCache:
    """The last ``size`` arrays produced, by key (least recently used first out)."""

    def __init__(self, size: int = 2):
        self.size, self.arrays = size, OrderedDict()

    def get(self, key, make):
        if key in self.arrays:
            self.arrays.move_to_end(key)
            return self.arrays[key]
        while len(self.arrays) >= self.size:
            self.arrays.popitem(last=False)  # dropped before the new one is made: at most `size` held
        self.arrays[key] = make()
        return self.arrays[key]


class CompressedMember:
    """The images (N, 3, S, S) of the compressed ``data`` member of one batch file: its shape is
    read from the member's header, its pixels when :meth:`array` is first called (and again once
    the cache has dropped them)."""

    def __init__(self, path: Path, side: int, rows: int, cache: ArrayCache):
        self.path, self.side, self.cache = path, side, cache
        self.shape = (rows, 3, side, side)

    def array(self) -> np.ndarray:
        return self.cache.get(self.path, self._read)

    def _read(self) -> np.ndarray:
        try:
            with np.load(self.path, allow_pickle=False) as npz:
                data = npz["data"]
        except Exception as exc:  # noqa: BLE001 - zip and numpy errors of a damaged file
            raise DataError(f"cannot read {self.path}: {oneline(exc)}") from None
        if data.shape != (self.shape[0], 3 * self.side * self.side) or data.dtype != np.uint8:
            raise DataError(f"{self.path}: data changed while it was in use")
        return data.reshape(self.shape)


def _member_rows(path: Path, side: int) -> int:
    """The number of images in ``data`` of the batch file ``path``, from the member's .npy header
    (only its first bytes are decompressed); a DataError unless it is uint8 (N, 3·side·side)."""
    try:
        with zipfile.ZipFile(path) as zf, zf.open("data.npy") as f:
            version = np.lib.format.read_magic(f)
            read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else \
                np.lib.format.read_array_header_2_0
            shape, _, dtype = read_header(f)
    except KeyError:
        raise DataError(f"{path} has no array 'data' (not a downsampled-ImageNet batch file)") from None
    except Exception as exc:  # noqa: BLE001 - zip and numpy errors of a damaged file
        raise DataError(f"cannot read {path}: {oneline(exc)}") from None
    if len(shape) != 2 or shape[1] != 3 * side * side or shape[0] == 0 or dtype != np.uint8:
        raise DataError(f"{path}: data is {dtype} {shape}; expected uint8 (N, {3 * side * side}) "
                        f"for {side}x{side} images")
    return int(shape[0])


def _labels(path: Path, n: int) -> np.ndarray:
    """The 0-based labels (n,) of a batch file (stored 1 ... 1000)."""
    try:
        with np.load(path, allow_pickle=False) as npz:
            raw = np.asarray(npz["labels"])
    except KeyError:
        raise DataError(f"{path} has no array 'labels' (not a downsampled-ImageNet batch file)") from None
    except Exception as exc:  # noqa: BLE001
        raise DataError(f"cannot read the labels of {path}: {oneline(exc)}") from None
    where = f"{path}[labels]"
    if raw.dtype.kind in "iu" and raw.size and int(raw.min()) < 1:
        raise DataError(f"{where}: labels must be 1 ... 1000, found {int(raw.min())}")
    return check_labels(raw.astype(np.int64) - 1 if raw.dtype.kind in "iu" else raw, n, where,
                        IMAGENET_CLASSES)


def _shard(path: Path, side: int, cache: ArrayCache):
    """A memory map of an uncompressed ``data`` member, else a :class:`CompressedMember`."""
    rows = _member_rows(path, side)
    mapped = map_npz_member(path, "data")
    if mapped is not None:
        return mapped.reshape(rows, 3, side, side)
    return CompressedMember(path, side, rows, cache)


def load_imagenet(root: Path, split: str, side: int) -> Parts:
    """The train batch files and the validation file of ``root`` as stores with their labels."""
    if not root.is_dir():
        raise DataError(f"{root} is not a directory (imagenet{side}: expects the folder of the "
                        "train_data_batch_*.npz and val_data.npz files)")
    cache = ArrayCache(2)
    stores, labels = {}, {}
    for which, files in (("train", IMAGENET_TRAIN), ("test", IMAGENET_TEST)):
        if split not in (which, "all"):
            continue
        missing = [name for name in files if not (root / name).is_file()]
        if missing:
            raise DataError(f"{root} has no {missing[0]} (imagenet{side}: the downsampled ImageNet files)")
        shards = [_shard(root / name, side, cache) for name in files]
        stores[which] = ImageStore(shards)
        labels[which] = np.concatenate([_labels(root / name, s.shape[0]) for name, s in zip(files, shards)])
        compressed = sum(isinstance(s, CompressedMember) for s in shards)
        if compressed > cache.size:
            warnings.warn(DataWarning(
                f"imagenet{side}:{root}: the {which} batch files are compressed, so batches of images "
                f"drawn at random decompress them again and again; convert them once with "
                f"'pixelrnn prepare imagenet{side}:{root} OUT.npy' and use --data npy:OUT.npy"), stacklevel=4)
    return Parts(256, stores.get("train"), stores.get("test"), train_labels=labels.get("train"),
                 test_labels=labels.get("test"), class_names=IMAGENET_CLASSES)
