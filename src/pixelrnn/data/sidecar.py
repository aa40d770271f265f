"""The files beside an image array ``x.npy`` (``pixelrnn prepare`` writes them):

``x.labels.npy``
    integer labels, one per image (N,).
``x.meta.json``
    a JSON object, every key optional: ``"levels"`` (the number of levels of the values, 256
    when absent), ``"train"`` (the first ``train`` images are the train split, the rest the
    test split; absent: the seeded 90/10 split), ``"class_names"`` (a list of strings; absent:
    "0" ... the largest label) and ``"source"`` (the spec it was prepared from, for people).
"""
from __future__ import annotations

import json
import numbers
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import DataError
from .dataset import Parts, check_labels, numbered_classes, oneline, split_array


def side_paths(path: Path) -> tuple[Path, Path]:
    """(labels, meta) files of the array ``path``: ``x.npy`` -> ``x.labels.npy``, ``x.meta.json``."""
    path = Path(path)
    stem = path.name[:-4] if path.name.endswith(".npy") else path.name
    return path.with_name(stem + ".labels.npy"), path.with_name(stem + ".meta.json")


@dataclass
class NpyMeta:
    """What ``x.meta.json`` says (defaults when the file or a key is absent)."""
    levels: int = 256
    train: int | None = None
    class_names: list[str] | None = None
    source: str | None = None


def read_meta(path: Path, n: int) -> NpyMeta:
    """The checked ``x.meta.json`` of the array ``path`` of ``n`` images."""
    meta_path = side_paths(path)[1]
    if not meta_path.is_file():
        return NpyMeta()
    try:
        raw = json.loads(meta_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot read {meta_path}: {oneline(exc)}") from None
    if not isinstance(raw, dict):
        raise DataError(f"{meta_path} must hold a JSON object")
    meta = NpyMeta(raw.get("levels", 256), raw.get("train"), raw.get("class_names"), raw.get("source"))
    if not _integer(meta.levels) or not 2 <= meta.levels <= 256:
        raise DataError(f"{meta_path}: levels must be an integer in 2..256, got {meta.levels!r}")
    if meta.train is not None and (not _integer(meta.train) or not 0 < meta.train < n):
        raise DataError(f"{meta_path}: train must be an integer in 1..{n - 1} (the array has {n} images), "
                        f"got {meta.train!r}")
    names = meta.class_names
    if names is not None and (not isinstance(names, list) or not names or
                              not all(isinstance(c, str) for c in names)):
        raise DataError(f"{meta_path}: class_names must be a list of strings")
    return meta


def _integer(v) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def read_side_labels(path: Path, n: int, class_names: list[str] | None) -> tuple[np.ndarray | None, list[str] | None]:
    """The labels (n,) of the array ``path`` from ``x.labels.npy`` and their class names
    (``class_names``, else "0" ... the largest label); (None, None) without the file."""
    labels_path = side_paths(path)[0]
    if not labels_path.is_file():
        return None, None
    try:
        labels = np.load(labels_path, allow_pickle=False)
    except Exception as exc:  # noqa: BLE001 - numpy raises many kinds for bad files
        raise DataError(f"cannot read the labels {labels_path}: {oneline(exc)}") from None
    labels = check_labels(labels, n, str(labels_path), class_names)
    return labels, class_names if class_names is not None else numbered_classes(labels)


def npy_parts(images, path: Path) -> Parts:
    """The splits of the images (N, C, H, W) of ``path`` (an array or a store over its mapping):
    the first ``train`` of ``x.meta.json`` and the rest (views), else the seeded 90/10 split;
    labels from ``x.labels.npy``."""
    meta = read_meta(path, len(images))
    labels, class_names = read_side_labels(path, len(images), meta.class_names)
    if meta.train is None:
        parts = split_array(images, None, labels, class_names)
    else:
        cut = meta.train
        parts = Parts(256, images[:cut], images[cut:], class_names=class_names,
                      train_labels=None if labels is None else labels[:cut],
                      test_labels=None if labels is None else labels[cut:])
    parts.levels = meta.levels
    return parts
