"""Datasets: built-in image sets and user data, each with a fixed, documented train/test split.

    from pixelrnn.data import load_dataset
    ds = load_dataset("binarized-mnist", "train")
    ds.images        # torch.uint8 (N, C, H, W), values in [0, ds.levels)
    ds.batch(idx)    # torch.int64 (B, C, H, W) for a LongTensor or slice of indices
    ds[0]            # torch.int64 (C, H, W): an ImageDataset is also a torch Dataset
    ds.redraw(g)     # dynamic binarization (binarized-mnist train only)
    ds.labels        # torch.int64 (N,) class indices, or None; ds.class_names: list[str] or None
    ds.labels_of(idx)  # torch.int64 (B,): the labels of ds.batch(idx)

Every dataset, its split, its levels, the file formats and the errors are specified in
``docs/datasets.md``. Every problem with the data raises :class:`DataError` (a ``ValueError``)
with a one-line message that names the spec, path or file at fault.

The package, in dependency order: ``store`` (:class:`ImageStore`: images of memory-mapped
files, read batch by batch), ``dataset`` (the :class:`ImageDataset` type and the seeded split),
``augment`` (training-time augmentations), ``images`` (image files and ``folder:``), ``sidecar``
(the labels and meta files beside an .npy), ``arrays`` (``npy:`` / ``npz:``), ``formats``
(``mnist-idx:``, ``cifar10:``, ``binarized-mnist-amat:``), ``imagenet`` (``imagenet32:``,
``imagenet64:``), ``builtin`` (the datasets that ship with packages), ``load``
(:func:`load_dataset` and the spec helpers) and ``prepare`` (``pixelrnn prepare``: any dataset
into a memory-mappable .npy).
"""
from ..errors import DataError
from .arrays import to_nchw
from .augment import DIHEDRAL, augment, dihedral
from .builtin import DATASETS, PHOTOS32_TEST, PHOTOS32_TRAIN
from .dataset import SPLITS, DataWarning, ImageDataset
from .images import IMAGE_SUFFIXES, image_files, read_image, read_images
from .load import USER_FORMATS, absolute_spec, convert_images, load_dataset, parse_size
from .store import ImageStore

__all__ = ["DATASETS", "USER_FORMATS", "PHOTOS32_TRAIN", "PHOTOS32_TEST", "SPLITS", "IMAGE_SUFFIXES",
           "DataError", "DataWarning", "ImageDataset", "ImageStore", "load_dataset", "parse_size", "absolute_spec",
           "convert_images", "read_images", "read_image", "image_files", "to_nchw", "augment",
           "DIHEDRAL", "dihedral"]
