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

    def batch(self, index) -> torch.Tensor:
        """The images at ``index`` (a LongTensor (B,) or a slice) as int64 (B, C, H, W)."""
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


def shape_str(a: np.ndarray) -> str:
    """'CxHxW' of an (N, C, H, W) array."""
    return "x".join(str(d) for d in a.shape[1:])


def seeded_split(n: int) -> tuple[np.ndarray, np.ndarray]:
    """The 90/10 split for user data: test = the last max(1, n // 10) of a seed-0 permutation."""
    perm = np.random.default_rng(0).permutation(n)
    n_test = max(1, n // 10)
    return perm[:n - n_test], perm[n - n_test:]


def split_array(images: np.ndarray, names: list[str] | None = None) -> Parts:
    """Seeded 90/10 split of one array of 256-level images (one image: both splits)."""
    n = len(images)
    if n == 1:
        return Parts(256, images, images, names, names, same=True)
    train, test = seeded_split(n)
    pick = (lambda idx: [names[i] for i in idx]) if names is not None else (lambda idx: None)
    return Parts(256, images[train], images[test], pick(train), pick(test))


