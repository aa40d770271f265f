"""Foreign dataset formats: ``mnist-idx:DIR`` (the idx files) and ``cifar10:DIR`` (the python
batches, read by a restricted unpickler)."""
from __future__ import annotations

import gzip
import pickle
import struct
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DataError
from .arrays import as_uint8
from .dataset import Parts, oneline

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
        raise DataError(f"cannot read {path}: {oneline(exc)}") from None
    return np.frombuffer(data, dtype=np.uint8).reshape(n, 1, h, w)


def load_mnist_idx(root: Path, split: str) -> Parts:
    if not root.is_dir():
        raise DataError(f"{root} is not a directory (mnist-idx: expects the folder of the idx files)")
    arrays = {which: _read_idx_images(_find_idx_file(root, base))
              for which, base in IDX_FILES.items() if split in (which, "all")}
    return Parts(256, arrays.get("train"), arrays.get("test"))


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
        raise DataError(f"cannot read CIFAR-10 batch {path}: {oneline(exc)}") from None
    if not isinstance(batch, dict):
        raise DataError(f"{path} is not a CIFAR-10 batch: it holds a {type(batch).__name__}, not a dict")
    data = batch.get(b"data", batch.get("data"))
    if not isinstance(data, np.ndarray):
        raise DataError(f"{path} is not a CIFAR-10 batch: no numpy array under b'data'")
    if data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or data.shape[0] == 0:
        raise DataError(f"{path}: b'data' has shape {data.shape}, expected (N, 3072)")
    return as_uint8(data, f"{path}[b'data']").reshape(-1, 3, 32, 32)


def load_cifar10(root: Path, split: str) -> Parts:
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
    return Parts(256, arrays.get("train"), arrays.get("test"))


