"""The dataset type: :class:`ImageDataset`, and :class:`Parts`, the two splits a loader returns
before :func:`pixelrnn.data.load.load_dataset` selects, crops and requantizes them."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from torch.utils.data import Dataset

from ..errors import DataError

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

@dataclass(eq=False, repr=False)
class ImageDataset(Dataset):
    """Images (N, C, H, W) uint8 in [0, levels) plus where they came from.

    Read it through ``len(ds)``, ``ds.batch(idx)`` (int64 (B, C, H, W)), ``ds.channels``,
    ``ds.height``, ``ds.width`` and ``ds.levels``, so that the storage behind it may change.
    ``ds[i]`` is the int64 (C, H, W) tensor of image ``i``, so it can be given to a DataLoader.
    """

    images: torch.Tensor
    levels: int
    name: str
    split: str
    names: list[str]
    skipped: list[str] = field(default_factory=list)
    probs: torch.Tensor | None = None
    labels: torch.Tensor | None = None      # int64 (N,) in [0, len(class_names)), or None
    class_names: list[str] | None = None
    labels_note: str = ""                   # why there are no labels, when the data could have them

    def __post_init__(self):
        if self.images.dtype != torch.uint8 or self.images.dim() != 4:
            raise DataError(f"{self.name}: images must be a uint8 (N, C, H, W) tensor, got "
                            f"{self.images.dtype} {tuple(self.images.shape)}")
        if len(self.names) != len(self.images):
            raise DataError(f"{self.name}: {len(self.names)} names for {len(self.images)} images")
        if self.probs is not None and self.probs.shape != self.images.shape:
            raise DataError(f"{self.name}: probs shape {tuple(self.probs.shape)} does not match "
                            f"images {tuple(self.images.shape)}")
        if self.labels is not None:
            if not isinstance(self.labels, torch.Tensor) or self.labels.dtype != torch.int64:
                raise DataError(f"{self.name}: labels must be an int64 tensor")
            if self.class_names is None:
                raise DataError(f"{self.name}: labels without class names")
            check_labels(self.labels.numpy(), len(self.images), self.name, self.class_names)

    @property
    def num_classes(self) -> int:
        """The number of classes (``len(class_names)``); 0 without labels."""
        return 0 if self.labels is None or self.class_names is None else len(self.class_names)

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

    def batch(self, index) -> torch.Tensor:
        """The images at ``index`` (a LongTensor (B,) or a slice) as int64 (B, C, H, W)."""
        return self.images[index].long()

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
        c, h, w = self.images.shape[1:]
        extra = f", skipped={len(self.skipped)}" if self.skipped else ""
        extra += ", redrawable" if self.probs is not None else ""
        extra += f", classes={self.num_classes}" if self.labels is not None else ""
        return (f"ImageDataset({self.name!r}, split={self.split!r}, n={len(self)}, "
                f"shape={c}x{h}x{w}, levels={self.levels}{extra})")


@dataclass
class Parts:
    """What a loader returns: the arrays of the train and test splits, before selection."""
    levels: int                          # native number of levels
    train: np.ndarray | None             # (N, C, H, W) uint8; None when the split does not need it
    test: np.ndarray | None
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
