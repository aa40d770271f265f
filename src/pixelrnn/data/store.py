"""Images read on demand: :class:`ImageStore`, chosen rows of one or more (N, C, H, W) uint8
arrays (memory-mapped files, or arrays a :class:`LazyArray` produces only when a batch needs
them), center-cropped and requantized as they are read.

A split of a memory-mapped file is a store over the same mapping with its own rows: a view,
never a copy. ``store.read(index)`` reads only the rows asked for::

    store = ImageStore([np.load("x.npy", mmap_mode="r")])   # (N, C, H, W)
    train = store[perm[:-100]]                            # a view: rows only
    batch = train.read(np.array([5, 17]))                 # uint8 (2, C, H, W), read now
"""
from __future__ import annotations

from typing import Protocol, Sequence

import numpy as np

from ..errors import DataError


class LazyArray(Protocol):
    """An (N, C, H, W) uint8 array known by its shape, produced by ``array()`` when needed."""

    shape: tuple[int, ...]

    def array(self) -> np.ndarray: ...


class ImageStore:
    """Rows ``rows`` (int64, indices into the shards laid end to end) of ``shards``, each an
    (N_i, C, H_i, W_i) uint8 array or :class:`LazyArray`; ``crop`` (h, w) center-crops each
    shard, ``lut`` (a uint8 table indexed by value) requantizes what is read."""

    def __init__(self, shards: Sequence, rows: np.ndarray | None = None,
                 crop: tuple[int, int] | None = None, lut: np.ndarray | None = None):
        self.shards = list(shards)
        self.starts = np.cumsum([0] + [int(s.shape[0]) for s in self.shards])
        self.rows = np.arange(self.starts[-1], dtype=np.int64) if rows is None else np.asarray(rows, np.int64)
        self.crop, self.lut = crop, lut

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def shape(self) -> tuple[int, int, int, int]:
        c, h, w = self.shards[0].shape[1:]
        return (len(self.rows), c) + (self.crop or (h, w))

    @property
    def ndim(self) -> int:
        return 4

    def __getitem__(self, index) -> "ImageStore":
        """The store of the rows ``self.rows[index]``: a view of the same shards."""
        return ImageStore(self.shards, self.rows[index], self.crop, self.lut)

    def cropped(self, crop: tuple[int, int], what: str = "the data") -> "ImageStore":
        """Each shard center-cropped to ``crop`` (h, w) (top = (H - h) // 2, left = (W - w) // 2);
        a DataError naming ``what`` when a shard is smaller."""
        for s in self.shards:
            if crop[0] > s.shape[2] or crop[1] > s.shape[3]:
                raise DataError(f"crop {crop[0]}x{crop[1]} is larger than the {s.shape[2]}x{s.shape[3]} "
                                f"images of {what}")
        return ImageStore(self.shards, self.rows, crop, self.lut)

    def requantized(self, lut: np.ndarray) -> "ImageStore":
        """Every value ``v`` read as ``lut[v]`` (after the table already in place, if any)."""
        return ImageStore(self.shards, self.rows, self.crop, lut if self.lut is None else lut[self.lut])

    @staticmethod
    def concat(a: "ImageStore", b: "ImageStore") -> "ImageStore":
        """The rows of ``a`` then those of ``b`` (same crop and table)."""
        if a.crop != b.crop or (a.lut is None) != (b.lut is None) or (a.lut is not None and
                                                                        not np.array_equal(a.lut, b.lut)):
            raise DataError("cannot join image stores that are cropped or requantized differently")
        return ImageStore(a.shards + b.shards, np.concatenate([a.rows, b.rows + a.starts[-1]]), a.crop, a.lut)

    def read(self, index=slice(None)) -> np.ndarray:
        """The images at ``index`` (an int, a slice or an integer array of positions in this
        store) as a new uint8 array (B, C, h, w) (an int: (C, h, w)), read shard by shard."""
        rows = self.rows[index]
        if np.ndim(rows) == 0:
            return self.read(np.array([index]))[0]
        if len(self.shards) == 1:
            out = np.ascontiguousarray(self._shard(0)[rows])
        else:
            out = np.empty((len(rows),) + self.shape[1:], dtype=np.uint8)
            which = np.searchsorted(self.starts, rows, side="right") - 1
            for k in np.unique(which):
                at = np.flatnonzero(which == k)
                out[at] = self._shard(int(k))[rows[at] - self.starts[k]]
        return out if self.lut is None else self.lut[out]

    def _shard(self, k: int) -> np.ndarray:
        shard = self.shards[k]
        a = shard if isinstance(shard, np.ndarray) else shard.array()
        if self.crop is None:
            return a
        (h, w), (H, W) = self.crop, a.shape[2:]
        top, left = (H - h) // 2, (W - w) // 2
        return a[:, :, top:top + h, left:left + w]

    def mapped(self) -> bool:
        """Whether some shard is not an ordinary in-memory array (a memory map or a LazyArray)."""
        return any(isinstance(s, np.memmap) or not isinstance(s, np.ndarray) for s in self.shards)


def is_mapped(a) -> bool:
    """Whether ``a`` is an :class:`ImageStore` over a memory-mapped file or lazy arrays."""
    return isinstance(a, ImageStore) and a.mapped()
