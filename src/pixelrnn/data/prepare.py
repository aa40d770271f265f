"""``prepare``: any dataset once into a uint8 ``.npy`` that later runs memory-map (``npy:OUT.npy``),
with its labels (``OUT.labels.npy``) and what the array alone cannot say (``OUT.meta.json``: the
levels, where the train split ends, the class names; see :mod:`.sidecar`).

The array holds the train images, then the test images, in the order of the source's splits, so
``npy:OUT.npy`` gives the same splits, images, labels and levels as the source. It is written
batch by batch into a memory-mapped temporary file, so a source read batch by batch (ImageNet's
batch files) never needs its whole size in RAM.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import DataError
from ..files import atomic_write
from ..progress import as_progress
from .dataset import ImageDataset
from .load import load_dataset
from .sidecar import side_paths

CHUNK_BYTES = 1 << 25  # pixels copied per step (32 MiB)


@dataclass
class Prepared:
    """What :func:`prepare` wrote: the array's path and shape, the split and the label files."""
    path: Path
    shape: tuple[int, int, int, int]
    train: int
    levels: int
    labels_path: Path | None
    meta_path: Path
    classes: int


def prepare(spec: str, out: str | os.PathLike, *, levels: int | None = None,
            crop: tuple[int, int] | None = None, skip_bad: bool = False, progress=False) -> Prepared:
    """Write the train and test splits of ``spec`` to the uint8 (N, C, H, W) array ``out`` (an
    .npy), each file atomically; a stale ``OUT.labels.npy`` of an unlabelled source is removed.
    ``progress``: False, True (a bar) or ``f(done, total)`` over the images."""
    out = Path(out)
    splits = [load_dataset(spec, s, levels=levels, crop=crop, skip_bad=skip_bad) for s in ("train", "test")]
    train, test = splits
    labels_path, meta_path = side_paths(out)
    labelled = train.labels is not None and test.labels is not None
    if train.shape[1:] != test.shape[1:]:
        raise DataError(f"{spec}: train images are {'x'.join(map(str, train.shape[1:]))} but test images are "
                        f"{'x'.join(map(str, test.shape[1:]))}; pass crop=(H, W) to center-crop them")
    shape = (len(train) + len(test), train.channels, train.height, train.width)
    with as_progress(progress, shape[0], "prepare") as prog:
        def write(tmp):
            array = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=shape)
            _copy_into(array, splits, prog)
            array.flush()
            del array
        atomic_write(out, write)
    meta = {"source": spec, "levels": train.levels, "train": len(train)}
    if labelled:
        meta["class_names"] = list(train.class_names)
        labels = np.concatenate([train.labels.numpy(), test.labels.numpy()])
        atomic_write(labels_path, lambda tmp: _save_npy(tmp, labels))
    elif labels_path.exists():
        labels_path.unlink()
    atomic_write(meta_path, lambda tmp: Path(tmp).write_text(json.dumps(meta, indent=1) + "\n"))
    return Prepared(out, shape, len(train), train.levels, labels_path if labelled else None, meta_path,
                    train.num_classes if labelled else 0)


def _copy_into(array: np.ndarray, splits: list[ImageDataset], prog) -> None:
    """The images of ``splits`` one after the other into ``array``, a chunk at a time."""
    at = 0
    for ds in splits:
        step = max(1, CHUNK_BYTES // max(1, int(np.prod(ds.shape[1:]))))
        for start in range(0, len(ds), step):
            stop = min(len(ds), start + step)
            if ds.store is not None:
                array[at + start:at + stop] = ds.store.read(slice(start, stop))
            else:
                array[at + start:at + stop] = ds.images[start:stop].numpy()
            prog.advance(stop - start)
        at += len(ds)


def _save_npy(path, a: np.ndarray) -> None:
    with open(path, "wb") as f:
        np.save(f, a)
