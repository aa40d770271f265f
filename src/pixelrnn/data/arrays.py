"""Arrays of images: ``npy:PATH`` / ``npz:PATH`` and the layout rule (:func:`to_nchw`)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import DataError
from .dataset import Parts, oneline, split_array

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


def load_array_file(path: Path, split: str) -> Parts:
    if not path.is_file():
        raise DataError(f"{path} is not a regular file (expected a .npy or .npz file)")
    try:
        loaded = np.load(path, allow_pickle=False)
    except Exception as exc:  # noqa: BLE001 - numpy raises ValueError/OSError/EOFError/zip errors
        raise DataError(f"cannot read {path} as .npy/.npz: {oneline(exc)}") from None
    if isinstance(loaded, np.ndarray):
        return split_array(to_nchw(loaded, str(path)))

    with loaded as npz:
        keys = list(npz.files)
        for train_key, test_key in (("x_train", "x_test"), ("train", "test")):
            if train_key in keys and test_key in keys:
                arrays = {}
                for which, key in (("train", train_key), ("test", test_key)):
                    if split in (which, "all"):
                        where = f"{path}[{key}]"
                        arrays[which] = to_nchw(_npz_array(npz, key, str(path)), where)
                return Parts(256, arrays.get("train"), arrays.get("test"))
        for key in ("x", "images", "arr_0"):
            if key in keys:
                break
        else:
            if len(keys) != 1:
                raise DataError(f"{path} has arrays {keys}: expected x_train and x_test, train and test, "
                                "or one array named x, images or arr_0")
            key = keys[0]
        return split_array(to_nchw(_npz_array(npz, key, str(path)), f"{path}[{key}]"))


