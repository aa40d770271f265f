"""The dataset type: :class:`ImageDataset`, and :class:`Parts`, the two splits a loader returns
before :func:`pixelrnn.data.load.load_dataset` selects, crops and requantizes them."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch.utils.data import Dataset

from ..errors import DataError
from .store import ImageStore

SPLITS = ("train", "test", "all")


class DataWarning(UserWarning):
    """Data left out: a bad file skipped because of ``skip_bad=True``, or images outside ``train/``
    and ``test/`` of a folder that has both."""


def oneline(exc: BaseException) -> str:
    """An exception as one line of text for an error message: ``Type: message``."""
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


# --------------------------------------------------------------------------------------------
# The dataset object
# --------------------------------------------------------------------------------------------

class ImageDataset(Dataset):
    """Images (N, C, H, W) uint8 in [0, levels) plus where they came from.

    Read it through ``len(ds)``, ``ds.batch(idx)`` (int64 (B, C, H, W)), ``ds.labels_of(idx)``,
    ``ds.channels``, ``ds.height``, ``ds.width`` and ``ds.levels``: they work whatever holds the
    images. ``images`` is a uint8 tensor in memory, or an :class:`ImageStore` (a memory-mapped
    file, read batch by batch; ``ds.store``), in which case ``ds.images`` reads them all into a
    new tensor at each access. ``ds[i]`` is the int64 (C, H, W) tensor of image ``i``, so it can
    be given to a DataLoader.
    """

    def __init__(self, images: torch.Tensor | ImageStore, levels: int, name: str, split: str,
                 names: Sequence[str], skipped: list[str] | None = None, probs: torch.Tensor | None = None,
                 labels: torch.Tensor | None = None, class_names: list[str] | None = None,
                 labels_note: str = ""):
        self.store: ImageStore | None = images if isinstance(images, ImageStore) else None
        self._images = None if self.store is not None else images
        self.levels, self.name, self.split, self.names = levels, name, split, names
        self.skipped = [] if skipped is None else skipped
        self.probs = probs
        self.labels = labels                 # int64 (N,) in [0, len(class_names)), or None
        self.class_names = class_names
        self.labels_note = labels_note       # why there are no labels, when the data could have them
        self._check()

    def _check(self) -> None:
        if self.store is None and (not isinstance(self._images, torch.Tensor) or self._images.dtype != torch.uint8
                                   or self._images.dim() != 4):
            raise DataError(f"{self.name}: images must be a uint8 (N, C, H, W) tensor, got "
                            f"{getattr(self._images, 'dtype', type(self._images).__name__)} "
                            f"{tuple(getattr(self._images, 'shape', ()))}")
        if len(self.names) != len(self):
            raise DataError(f"{self.name}: {len(self.names)} names for {len(self)} images")
        if self.probs is not None and tuple(self.probs.shape) != self.shape:
            raise DataError(f"{self.name}: probs shape {tuple(self.probs.shape)} does not match "
                            f"images {self.shape}")
        if self.labels is not None:
            if not isinstance(self.labels, torch.Tensor) or self.labels.dtype != torch.int64:
                raise DataError(f"{self.name}: labels must be an int64 tensor")
            if self.class_names is None:
                raise DataError(f"{self.name}: labels without class names")
            check_labels(self.labels.numpy(), len(self), self.name, self.class_names)

    @property
    def images(self) -> torch.Tensor:
        """All the images, uint8 (N, C, H, W) (from a store: read into a new tensor now)."""
        return self._images if self.store is None else torch.from_numpy(self.store.read())

    @images.setter
    def images(self, value: torch.Tensor) -> None:
        self._images, self.store = value, None

    @property
    def shape(self) -> tuple[int, int, int, int]:
        """(N, C, H, W)."""
        return tuple(self.store.shape if self.store is not None else self._images.shape)

    @property
    def channels(self) -> int:
        return self.shape[1]

    @property
    def height(self) -> int:
        return self.shape[2]

    @property
    def width(self) -> int:
        return self.shape[3]

    @property
    def num_classes(self) -> int:
        """The number of classes (``len(class_names)``); 0 without labels."""
        return 0 if self.labels is None or self.class_names is None else len(self.class_names)

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, index):
        return self.batch(index)

    def batch(self, index) -> torch.Tensor:
        """The images at ``index`` (a LongTensor (B,), an integer array or a slice) as int64
        (B, C, H, W); from a store only those images are read."""
        if self.store is None:
            return self._images[index].long()
        if isinstance(index, torch.Tensor):
            index = index.cpu().numpy()
        return torch.from_numpy(self.store.read(index)).long()

    def labels_of(self, index) -> torch.Tensor:
        """The labels of the images at ``index`` (as for :meth:`batch`), int64 (B,)."""
        if self.labels is None:
            why = f": {self.labels_note}" if self.labels_note else ""
            raise DataError(f"{self.name} ({self.split}) has no labels{why}")
        return self.labels[index]

    def redraw(self, generator: torch.Generator | None = None) -> None:
        """Re-binarize ``images`` from ``probs`` (dynamic binarization): pixel = U(0,1) < prob."""
        if self.probs is None:
            raise DataError(f"{self.name} ({self.split}) cannot be redrawn: it has no probabilities "
                            "(only binarized-mnist train has)")
        u = torch.rand(self.probs.shape, generator=generator, device=self.probs.device)
        self.images = (u < self.probs).to(torch.uint8)

    def __repr__(self) -> str:
        c, h, w = self.shape[1:]
        extra = f", skipped={len(self.skipped)}" if self.skipped else ""
        extra += ", redrawable" if self.probs is not None else ""
        extra += f", classes={self.num_classes}" if self.labels is not None else ""
        extra += ", memory-mapped" if self.store is not None else ""
        return (f"ImageDataset({self.name!r}, split={self.split!r}, n={len(self)}, "
                f"shape={c}x{h}x{w}, levels={self.levels}{extra})")


class IndexNames(Sequence):
    """The names "train/0", "train/1", ..., "test/0", ... of images without file names, made
    when asked for (a million-image split holds no million strings). ``parts``: (prefix, count)
    in order. Equal to a list of the same names."""

    def __init__(self, parts: list[tuple[str, int]]):
        self.parts = [(prefix, int(n)) for prefix, n in parts if n]

    def __len__(self) -> int:
        return sum(n for _, n in self.parts)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[k] for k in range(*i.indices(len(self)))]
        k = i + len(self) if i < 0 else i
        for prefix, n in self.parts:
            if 0 <= k < n:
                return f"{prefix}/{k}"
            k -= n
        raise IndexError("image name index out of range")

    def __add__(self, other):
        if isinstance(other, IndexNames):
            return IndexNames(self.parts + other.parts)
        return list(self) + list(other)

    def __eq__(self, other) -> bool:
        return isinstance(other, Sequence) and not isinstance(other, str) and list(self) == list(other)

    def __repr__(self) -> str:
        return f"IndexNames({self.parts})"


@dataclass
class Parts:
    """What a loader returns: the arrays of the train and test splits, before selection."""
    levels: int                          # native number of levels
    train: np.ndarray | ImageStore | None  # (N, C, H, W) uint8; None when the split does not need it
    test: np.ndarray | ImageStore | None   # (an ImageStore: memory-mapped, read batch by batch)
    train_names: list[str] | None = None  # None: "train/i"
    test_names: list[str] | None = None
    train_probs: np.ndarray | None = None
    same: bool = False                   # train and test are the same images (a one-image folder)
    skipped: list[str] = field(default_factory=list)
    train_labels: np.ndarray | None = None  # int64 (N,) of a split read, or None (no labels)
    test_labels: np.ndarray | None = None
    class_names: list[str] | None = None
    labels_note: str = ""                   # why there are no labels (for the error of labels_of)


def shape_str(a: np.ndarray) -> str:
    """'CxHxW' of an (N, C, H, W) array."""
    return "x".join(str(d) for d in a.shape[1:])


def seeded_split(n: int) -> tuple[np.ndarray, np.ndarray]:
    """The 90/10 split for user data: test = the last max(1, n // 10) of a seed-0 permutation."""
    perm = np.random.default_rng(0).permutation(n)
    n_test = max(1, n // 10)
    return perm[:n - n_test], perm[n - n_test:]


def split_array(images: np.ndarray, names: list[str] | None = None,
                labels: np.ndarray | None = None, class_names: list[str] | None = None) -> Parts:
    """Seeded 90/10 split of one array of 256-level images (one image: both splits); the names
    and labels (N,) follow their images."""
    n = len(images)
    if n == 1:
        return Parts(256, images, images, names, names, same=True, train_labels=labels,
                     test_labels=labels, class_names=class_names)
    train, test = seeded_split(n)
    pick = (lambda idx: [names[i] for i in idx]) if names is not None else (lambda idx: None)
    pick_labels = (lambda idx: labels[idx]) if labels is not None else (lambda idx: None)
    return Parts(256, images[train], images[test], pick(train), pick(test), train_labels=pick_labels(train),
                 test_labels=pick_labels(test), class_names=class_names)


def check_labels(labels, n: int, where: str, class_names: list[str] | None = None) -> np.ndarray:
    """``labels`` as an int64 (n,) array of class indices, or a DataError naming ``where``: they
    must be integers (not bool, not float), one per image, >= 0 and < len(class_names)."""
    a = np.asarray(labels)
    if a.dtype.kind not in "iu":
        raise DataError(f"{where}: labels must be integers, got dtype {a.dtype}")
    if a.shape != (n,):
        raise DataError(f"{where}: expected {n} labels (one per image), got shape {a.shape}")
    if n and int(a.min()) < 0:
        raise DataError(f"{where}: labels must be >= 0, found {int(a.min())}")
    if n and class_names is not None and int(a.max()) >= len(class_names):
        raise DataError(f"{where}: label {int(a.max())} is out of range for {len(class_names)} classes")
    return a.astype(np.int64)


def numbered_classes(*labels: np.ndarray | None, at_least: int = 0) -> list[str]:
    """Class names "0", "1", ... for the labels of every split: max(at_least, 1 + largest)."""
    top = max([int(a.max()) + 1 for a in labels if a is not None and a.size] + [at_least])
    return [str(i) for i in range(top)]
