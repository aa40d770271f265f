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
from .dataset import Parts, check_labels, numbered_classes, oneline

IDX_FILES = {"train": "train-images-idx3-ubyte", "test": "t10k-images-idx3-ubyte"}
IDX_LABEL_FILES = {"train": "train-labels-idx1-ubyte", "test": "t10k-labels-idx1-ubyte"}
IDX_MAGIC = 0x00000803  # unsigned bytes, 3 dimensions
IDX_LABEL_MAGIC = 0x00000801  # unsigned bytes, 1 dimension


def _find_idx_file(root: Path, base: str, required: bool = True) -> Path | None:
    dotted = base.replace("-idx3", ".idx3").replace("-idx1", ".idx1")
    for name in (base, base + ".gz", dotted, dotted + ".gz"):
        if (root / name).is_file():
            return root / name
    if not required:
        return None
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


def _read_idx(path: Path, magic: int) -> np.ndarray:
    """The uint8 array of an idx file: (N, H, W) images (magic 0x803) or (N,) labels (0x801).
    The header is checked (magic, big-endian uint32 dims, exact data length)."""
    dims = magic & 0xFF
    kind, other = ("image", "label") if dims == 3 else ("label", "image")
    opener = gzip.open if path.name.endswith(".gz") else open
    try:
        with opener(path, "rb") as f:
            header = _read_exactly(f, 4 + 4 * dims)
            found = int.from_bytes(header[:4], "big")
            if len(header) >= 4 and found != magic:
                what = f" (an idx {other} file?)" if found in (IDX_MAGIC, IDX_LABEL_MAGIC) else ""
                raise DataError(f"{path} is not an idx {kind} file: magic 0x{found:08x}{what}, "
                                f"expected 0x{magic:08x}")
            if len(header) < 4 + 4 * dims:
                raise DataError(f"{path} is truncated: {len(header)}-byte header, expected {4 + 4 * dims} bytes")
            shape = struct.unpack(">" + "I" * dims, header[4:])
            described = f"{shape[0]} {kind}s" + (f" of {shape[1]}x{shape[2]}" if dims == 3 else "")
            if 0 in shape:
                raise DataError(f"{path} holds no {kind}s (dims {'x'.join(map(str, shape))})")
            expected = int(np.prod(shape))
            data = _read_exactly(f, expected)
            if len(data) < expected:
                raise DataError(f"{path} is truncated: {len(data)} bytes of data, expected {expected} "
                                f"for {described}")
            if f.read(1):
                raise DataError(f"{path} has data after the {described} its header announces")
    except DataError:
        raise
    except (OSError, EOFError, zlib.error) as exc:  # gzip.BadGzipFile is an OSError
        raise DataError(f"cannot read {path}: {oneline(exc)}") from None
    return np.frombuffer(data, dtype=np.uint8).reshape(shape)


def load_mnist_idx(root: Path, split: str) -> Parts:
    """``mnist-idx:DIR``: the idx image files of the splits asked for, with their label files
    when every one of them is there."""
    if not root.is_dir():
        raise DataError(f"{root} is not a directory (mnist-idx: expects the folder of the idx files)")
    needed = [which for which in ("train", "test") if split in (which, "all")]
    arrays = {which: _read_idx(_find_idx_file(root, IDX_FILES[which]), IDX_MAGIC)[:, None] for which in needed}
    label_files = {which: _find_idx_file(root, IDX_LABEL_FILES[which], required=False) for which in needed}
    missing = [IDX_LABEL_FILES[w] for w, path in label_files.items() if path is None]
    if missing:
        return Parts(256, arrays.get("train"), arrays.get("test"), labels_note=f"{root} has no {missing[0]}")
    labels = {}
    for which, path in label_files.items():
        labels[which] = check_labels(_read_idx(path, IDX_LABEL_MAGIC), len(arrays[which]), str(path))
    return Parts(256, arrays.get("train"), arrays.get("test"), train_labels=labels.get("train"),
                 test_labels=labels.get("test"), class_names=numbered_classes(*labels.values(), at_least=10))


# --------------------------------------------------------------------------------------------
# cifar10:DIR
# --------------------------------------------------------------------------------------------

CIFAR_TRAIN = tuple(f"data_batch_{i}" for i in range(1, 6))
CIFAR_TEST = ("test_batch",)
CIFAR_META = "batches.meta"
CIFAR_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


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


def _unpickle_dict(path: Path, what: str) -> dict:
    """The dict pickled in a CIFAR-10 file, read by the restricted unpickler."""
    try:
        with open(path, "rb") as f:
            batch = _CifarUnpickler(f, path).load()
    except DataError:
        raise
    except Exception as exc:  # noqa: BLE001 - truncated/corrupt pickles raise many kinds
        raise DataError(f"cannot read CIFAR-10 {what} {path}: {oneline(exc)}") from None
    if not isinstance(batch, dict):
        raise DataError(f"{path} is not a CIFAR-10 {what}: it holds a {type(batch).__name__}, not a dict")
    return batch


def _read_cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray | None]:
    """(N, 3, 32, 32) uint8 images of one batch and its labels (N,) int64 (None without)."""
    batch = _unpickle_dict(path, "batch")
    data = batch.get(b"data", batch.get("data"))
    if not isinstance(data, np.ndarray):
        raise DataError(f"{path} is not a CIFAR-10 batch: no numpy array under b'data'")
    if data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or data.shape[0] == 0:
        raise DataError(f"{path}: b'data' has shape {data.shape}, expected (N, 3072)")
    labels = batch.get(b"labels", batch.get("labels"))
    if labels is not None:
        labels = check_labels(labels, len(data), f"{path}[b'labels']")
    return as_uint8(data, f"{path}[b'data']").reshape(-1, 3, 32, 32), labels


def _cifar_class_names(root: Path) -> list[str]:
    """The label names of ``batches.meta`` when present, else CIFAR-10's ten."""
    path = root / CIFAR_META
    if not path.is_file():
        return list(CIFAR_CLASSES)
    names = _unpickle_dict(path, "meta file").get(b"label_names")
    if not isinstance(names, list) or not names or not all(isinstance(n, (bytes, str)) for n in names):
        raise DataError(f"{path} is not a CIFAR-10 meta file: no list of names under b'label_names'")
    return [n.decode("utf-8", "replace") if isinstance(n, bytes) else n for n in names]


def load_cifar10(root: Path, split: str) -> Parts:
    """``cifar10:DIR``: the python batches of the splits asked for, with labels when every batch
    has them (class names from batches.meta)."""
    if not root.is_dir():
        raise DataError(f"{root} is not a directory (cifar10: expects the folder of the python batches)")
    if not (root / CIFAR_TEST[0]).exists() and (root / "cifar-10-batches-py").is_dir():
        root = root / "cifar-10-batches-py"
    arrays, labels = {}, {}
    for which, files in (("train", CIFAR_TRAIN), ("test", CIFAR_TEST)):
        if split not in (which, "all"):
            continue
        batches = []
        for name in files:
            if not (root / name).is_file():
                raise DataError(f"{root} has no CIFAR-10 batch {name}")
            batches.append(_read_cifar_batch(root / name))
        arrays[which] = np.concatenate([images for images, _ in batches])
        if all(y is not None for _, y in batches):
            labels[which] = np.concatenate([y for _, y in batches])
    if len(labels) != len(arrays):
        return Parts(256, arrays.get("train"), arrays.get("test"),
                     labels_note=f"a CIFAR-10 batch in {root} has no b'labels'")
    class_names = _cifar_class_names(root)
    for which, y in labels.items():
        check_labels(y, len(y), f"the {which} batches of {root}", class_names)
    return Parts(256, arrays.get("train"), arrays.get("test"), train_labels=labels.get("train"),
                 test_labels=labels.get("test"), class_names=class_names)


# --------------------------------------------------------------------------------------------
# binarized-mnist-amat:DIR
# --------------------------------------------------------------------------------------------

AMAT_FILES = {"train": ("binarized_mnist_train.amat", "binarized_mnist_valid.amat"),
              "test": ("binarized_mnist_test.amat",)}
_AMAT_BYTES = np.zeros(256, dtype=bool)
_AMAT_BYTES[[ord("0"), ord("1"), ord(" "), ord("\t"), ord("\r"), ord("\n")]] = True


def read_amat(path: Path) -> np.ndarray:
    """The (N, 1, 28, 28) uint8 0/1 images of a Larochelle & Murray .amat file: one image per
    line, 784 values 0 or 1 separated by white space."""
    try:
        raw = np.frombuffer(path.read_bytes(), dtype=np.uint8)
    except OSError as exc:
        raise DataError(f"cannot read {path}: {oneline(exc)}") from None
    if not _AMAT_BYTES[raw].all():
        bad = int(np.flatnonzero(~_AMAT_BYTES[raw])[0])
        raise DataError(f"{path} is not a binarized-MNIST .amat file: byte {bad} is {bytes(raw[bad:bad + 1])!r}, "
                        "expected only 0, 1 and white space")
    digit = (raw == ord("0")) | (raw == ord("1"))
    if (digit[1:] & digit[:-1]).any():
        raise DataError(f"{path} is not a binarized-MNIST .amat file: a value other than 0 or 1 (two digits together)")
    line = np.cumsum(raw == ord("\n"))[digit]  # the line of each value
    per_line = np.bincount(line)
    per_line = per_line[per_line > 0]  # blank lines hold no image
    if not per_line.size or (per_line != 784).any():
        odd = int(per_line[per_line != 784][0]) if per_line.size else 0
        raise DataError(f"{path}: a line of {odd} values; expected 784 (28x28) per line")
    return (raw[digit] - ord("0")).astype(np.uint8).reshape(per_line.size, 1, 28, 28)


def load_binarized_mnist_amat(root: Path, split: str) -> Parts:
    """``binarized-mnist-amat:DIR``: train = the train then the valid file (60000), test = the
    test file (10000); 2 levels, no labels."""
    if not root.is_dir():
        raise DataError(f"{root} is not a directory (binarized-mnist-amat: expects the folder of the "
                        "binarized_mnist_{train,valid,test}.amat files)")
    arrays = {}
    for which, files in AMAT_FILES.items():
        if split not in (which, "all"):
            continue
        for name in files:
            if not (root / name).is_file():
                raise DataError(f"{root} has no {name}")
        arrays[which] = np.concatenate([read_amat(root / name) for name in files])
    return Parts(2, arrays.get("train"), arrays.get("test"))

