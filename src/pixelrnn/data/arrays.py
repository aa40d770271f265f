"""Arrays of images: ``npy:PATH`` / ``npz:PATH`` and the layout rule (:func:`to_nchw`).

A uint8 ``.npy`` file, and the uint8 members an ``.npz`` stores uncompressed (``np.savez``), are
memory-mapped: their splits are :class:`ImageStore` views read batch by batch. Other arrays
(compressed members, other integer dtypes) are read into memory."""
from __future__ import annotations

import struct
import zipfile
from pathlib import Path

import numpy as np

from ..errors import DataError
from .dataset import Parts, check_labels, numbered_classes, oneline, split_array
from .sidecar import npy_parts
from .store import ImageStore


def as_uint8(a: np.ndarray, where: str) -> np.ndarray:
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
    a = as_uint8(a, where)
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
        raise DataError(f"cannot read array {key!r} of {where}: {oneline(exc)}") from None


IMAGE_PAIRS = (("x_train", "x_test"), ("train", "test"))   # the splits of an .npz
IMAGE_KEYS = ("x", "images", "arr_0")                        # one array to split 90/10
LABEL_PAIRS = (("y_train", "y_test"), ("train_labels", "test_labels"))
LABEL_KEYS = ("labels", "y")
CLASS_NAMES_KEY = "class_names"


def load_array_file(path: Path, split: str) -> Parts:
    """``npy:PATH`` / ``npz:PATH``: one array split 90/10, or an .npz's own splits; labels from
    the .npz's label arrays or, for an .npy, from the files beside it (:mod:`.sidecar`)."""
    if not path.is_file():
        raise DataError(f"{path} is not a regular file (expected a .npy or .npz file)")
    try:
        loaded = np.load(path, mmap_mode="r", allow_pickle=False)
    except Exception as exc:  # noqa: BLE001 - numpy raises ValueError/OSError/EOFError/zip errors
        raise DataError(f"cannot read {path} as .npy/.npz: {oneline(exc)}") from None
    if isinstance(loaded, np.ndarray):
        return npy_parts(mapped_images(to_nchw(loaded, str(path))), path)
    with loaded as npz:
        return _load_npz(npz, path, split)


def mapped_images(a: np.ndarray) -> np.ndarray | ImageStore:
    """An ImageStore over a memory-mapped (N, C, H, W) array (so that splits are views), else ``a``."""
    return ImageStore([a]) if isinstance(a, np.memmap) else a


def map_npz_member(path: Path, key: str) -> np.memmap | None:
    """The array ``key`` of the .npz ``path`` memory-mapped, when the member is stored
    uncompressed (``np.savez``) in C or Fortran order without Python objects; else None."""
    try:
        with zipfile.ZipFile(path) as zf:
            info = zf.getinfo(key + ".npy")
        if info.compress_type != zipfile.ZIP_STORED:
            return None
        with open(path, "rb") as f:
            f.seek(info.header_offset)
            local = f.read(30)  # the local file header: its name and extra field come next
            if len(local) < 30 or local[:4] != b"PK\x03\x04":
                return None
            name_len, extra_len = struct.unpack("<HH", local[26:30])
            f.seek(info.header_offset + 30 + name_len + extra_len)
            version = np.lib.format.read_magic(f)
            read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else \
                np.lib.format.read_array_header_2_0
            shape, fortran, dtype = read_header(f)
            offset = f.tell()
    except (OSError, KeyError, ValueError, zipfile.BadZipFile):
        return None
    if dtype.hasobject or not shape:
        return None
    return np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=shape, order="F" if fortran else "C")


def _npz_images(npz, key: str, path: Path) -> np.ndarray | ImageStore:
    """The images of member ``key``: memory-mapped when it is stored uncompressed."""
    a = map_npz_member(path, key)
    a = _npz_array(npz, key, str(path)) if a is None else a
    return mapped_images(to_nchw(a, f"{path}[{key}]"))


def _load_npz(npz, path: Path, split: str) -> Parts:
    keys = list(npz.files)
    for train_key, test_key in IMAGE_PAIRS:
        if train_key in keys and test_key in keys:
            arrays = {which: _npz_images(npz, key, path)
                      for which, key in (("train", train_key), ("test", test_key)) if split in (which, "all")}
            labels, class_names, why = _pair_labels(npz, path, {w: len(a) for w, a in arrays.items()})
            return Parts(256, arrays.get("train"), arrays.get("test"), train_labels=labels.get("train"),
                         test_labels=labels.get("test"), class_names=class_names, labels_note=why)
    label_key = next((k for k in LABEL_KEYS if k in keys), None)
    candidates = [k for k in keys if k not in (label_key, CLASS_NAMES_KEY)] or keys
    key = next((k for k in IMAGE_KEYS if k in keys), None)
    if key is None:
        if len(candidates) != 1:
            raise DataError(f"{path} has arrays {keys}: expected x_train and x_test, train and test, "
                            "or one array named x, images or arr_0")
        key = candidates[0]
    images = _npz_images(npz, key, path)
    if label_key is None or label_key == key:
        return split_array(images)
    where = f"{path}[{label_key}]"
    labels = check_labels(_npz_array(npz, label_key, str(path)), len(images), where)
    return split_array(images, None, labels, _class_names(npz, path, labels))


def _pair_labels(npz, path: Path, sizes: dict[str, int]) -> tuple[dict[str, np.ndarray], list[str] | None, str]:
    """The labels of an .npz with its own splits ({split: int64 (N,)} for the splits in
    ``sizes``), the class names and why there are none: labels need both arrays of a pair."""
    keys, why = list(npz.files), ""
    for pair in LABEL_PAIRS:
        present = [k for k in pair if k in keys]
        if len(present) == 1:
            why = f"{path} has {present[0]!r} but no {pair[1 - pair.index(present[0])]!r}"
        if len(present) != 2:
            continue
        every = {}
        for which, key in zip(("train", "test"), pair):
            a = _npz_array(npz, key, str(path))
            every[which] = check_labels(a, sizes.get(which, len(np.asarray(a))), f"{path}[{key}]")
        return {w: a for w, a in every.items() if w in sizes}, _class_names(npz, path, *every.values()), ""
    return {}, None, why


def _class_names(npz, path: Path, *labels: np.ndarray) -> list[str]:
    """The .npz's ``class_names`` (a 1-D array of strings), else "0", "1", ... up to the largest
    label; every label must name a class."""
    if CLASS_NAMES_KEY not in npz.files:
        return numbered_classes(*labels)
    names = _npz_array(npz, CLASS_NAMES_KEY, str(path))
    if names.ndim != 1 or names.dtype.kind not in "US" or not names.size:
        raise DataError(f"{path}[{CLASS_NAMES_KEY}] must be a 1-D array of strings, got "
                        f"{names.dtype} {names.shape}")
    names = [n.decode() if isinstance(n, bytes) else str(n) for n in names.tolist()]
    for a in labels:
        check_labels(a, len(a), f"{path}[labels]", names)
    return names
