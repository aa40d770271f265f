"""Image files: finding them (:func:`image_files`), decoding one (:func:`read_image`), the
``folder:PATH`` dataset and :func:`read_images` (files given on the command line)."""
from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import torch

from ..errors import DataError
from .dataset import DataWarning, ImageDataset, Parts, oneline, split_array

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")

_GRAY_MODES = {"1", "L", "LA", "La"}
_COLOR_MODES = {"P", "PA", "RGB", "RGBA", "RGBa", "RGBX", "CMYK", "YCbCr", "LAB", "HSV"}


def image_files(root: Path) -> list[Path]:
    """PNG/JPEG files under ``root`` (recursive, hidden entries skipped), sorted by relative path.
    Symlinked folders are followed, each folder visited once (a link loop ends there)."""
    found = []
    seen: set[tuple[int, int]] = set()
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        st = os.stat(dirpath)
        if (st.st_dev, st.st_ino) in seen:
            dirnames[:] = []
            continue
        seen.add((st.st_dev, st.st_ino))
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))  # a fixed visiting order
        for name in filenames:
            if name.startswith(".") or not name.lower().endswith(IMAGE_SUFFIXES):
                continue
            p = Path(dirpath) / name
            if p.is_file():  # regular files only: a FIFO named x.png would block
                found.append(p)
    return sorted(found, key=lambda p: p.relative_to(root).as_posix())


def _has_wide_samples(im) -> bool:
    """Whether the file stores more than 8 bits per sample. Pillow opens 16-bit RGB(A) and gray +
    alpha PNGs as its 8-bit modes (keeping the high byte); the raw mode of the file's tiles tells."""
    for tile in im.tile:  # (codec, box, offset, args); args: the raw mode, or a tuple starting with it
        args = tile[3] if len(tile) > 3 else None
        raw = args if isinstance(args, str) else args[0] if isinstance(args, tuple) and args else None
        if isinstance(raw, str) and (";16" in raw or ";32" in raw):
            return True
    return False


def read_image(path: Path) -> np.ndarray:
    """(H, W) gray or (H, W, 3) RGB uint8 pixels of one PNG/JPEG, upright: an EXIF orientation
    (phone photos) is applied, as image viewers do."""
    from PIL import Image, ImageOps
    try:
        with Image.open(path) as im:
            mode = im.mode
            if _has_wide_samples(im):  # e.g. a 16-bit RGB PNG: Pillow opens it as 8-bit "RGB"
                mode = mode if "16" in mode else f"{mode} with 16-bit samples"
            else:
                im = ImageOps.exif_transpose(im)  # after the tile check: this loads the pixels
                if mode in _GRAY_MODES:
                    return np.asarray(im.convert("L"))
            if mode in _COLOR_MODES:
                rgb = np.asarray(im.convert("RGB"))
                if mode in ("P", "PA") and (rgb[..., 0] == rgb[..., 1]).all() and (rgb[..., 1] == rgb[..., 2]).all():
                    return rgb[..., 0].copy()  # a palette of grays is a gray image
                return rgb
    except Exception as exc:  # noqa: BLE001 - PIL raises many kinds for bad files
        raise DataError(f"cannot read image {path}: {oneline(exc)}") from None
    raise DataError(f"cannot read image {path}: unsupported image mode {mode!r} "
                    "(only 8-bit gray or colour images)")


def load_folder(root: Path, crop: tuple[int, int] | None, skip_bad: bool) -> Parts:
    """``folder:PATH``: the images under ``root``, split by ``train/`` and ``test/`` subfolders or
    by the seeded 90/10 split; labels from class subfolders (see :func:`folder_labels`)."""
    if not root.is_dir():
        raise DataError(f"{root} is not a directory (folder: expects a directory of PNG/JPEG files)")
    groups = _folder_groups(root)
    skipped: list[str] = []
    decoded = {which: _decode_files(root, which, files, crop, skip_bad, skipped)
               for which, files in groups.items()}
    everything = [item for items in decoded.values() for item in items]
    first_name, first = everything[0]
    for name, pixels in everything:
        if pixels.shape[:2] != first.shape[:2]:
            raise DataError(f"images in {root} differ in size: {first_name} is "
                            f"{first.shape[0]}x{first.shape[1]} but {name} is "
                            f"{pixels.shape[0]}x{pixels.shape[1]}; pass crop=(H, W) to center-crop them")
    rgb = any(pixels.ndim == 3 for _, pixels in everything)
    names = {which: [name for name, _ in items] for which, items in decoded.items()}
    labels, class_names, why = folder_labels(names)
    if "all" in decoded:
        parts = split_array(_stack(decoded["all"], rgb), names["all"], labels.get("all"), class_names)
    else:
        parts = Parts(256, _stack(decoded["train"], rgb), _stack(decoded["test"], rgb), names["train"],
                      names["test"], train_labels=labels.get("train"), test_labels=labels.get("test"),
                      class_names=class_names)
    parts.skipped, parts.labels_note = skipped, why
    return parts


def _folder_groups(root: Path) -> dict[str, list[Path]]:
    """The image files of each part of a folder: {"train": ..., "test": ...} or {"all": ...}."""
    if not ((root / "train").is_dir() and (root / "test").is_dir()):
        files = image_files(root)
        if not files:
            raise DataError(f"no images found in {root} (looked for {', '.join(IMAGE_SUFFIXES)} files)")
        return {"all": files}
    groups = {"train": image_files(root / "train"), "test": image_files(root / "test")}
    for which, files in groups.items():
        if not files:
            raise DataError(f"no images found in {root / which}")
    used = set(groups["train"]) | set(groups["test"])
    unused = [p for p in image_files(root) if p not in used]
    if unused:
        warnings.warn(DataWarning(f"{len(unused)} image(s) under {root} outside train/ and test/ are "
                                  f"not used (the first: {unused[0].relative_to(root).as_posix()})"),
                      stacklevel=4)
    return groups


def read_or_skip(path: Path, skip_bad: bool, skipped: list[str],
                 crop: tuple[int, int] | None = None) -> np.ndarray | None:
    """The pixels of ``path``, center-cropped to ``crop``; an unreadable (or too small) file
    raises its DataError, or with ``skip_bad`` is appended to ``skipped`` with a warning (None)."""
    try:
        pixels = read_image(path)
        if crop is not None:
            h, w = pixels.shape[:2]
            if crop[0] > h or crop[1] > w:
                raise DataError(f"{path} is {h}x{w}, smaller than crop {crop[0]}x{crop[1]}")
            top, left = (h - crop[0]) // 2, (w - crop[1]) // 2
            pixels = pixels[top:top + crop[0], left:left + crop[1]]
        return pixels
    except DataError as exc:
        if not skip_bad:
            raise
        warnings.warn(f"skipping {path}: {exc}", DataWarning, stacklevel=3)
        skipped.append(str(path))
        return None


def _decode_files(root: Path, which: str, files: list[Path], crop: tuple[int, int] | None,
                  skip_bad: bool, skipped: list[str]) -> list[tuple[str, np.ndarray]]:
    """(name relative to ``root``, pixels) of each readable file, center-cropped; unreadable
    ones raise, or with ``skip_bad`` are appended to ``skipped`` with a warning."""
    decoded = []
    for path in files:
        pixels = read_or_skip(path, skip_bad, skipped, crop)
        if pixels is not None:
            decoded.append((path.relative_to(root).as_posix(), pixels))
    if not decoded:
        where = root / which if which != "all" else root
        raise DataError(f"no readable images in {where} ({len(files)} skipped as unreadable)")
    return decoded


def _stack(items: list[tuple[str, np.ndarray]], rgb: bool) -> np.ndarray:
    """(N, C, H, W) uint8 of decoded images; gray ones repeated into RGB when ``rgb``."""
    arrays = []
    for _, pixels in items:
        if pixels.ndim == 2:
            pixels = np.repeat(pixels[:, :, None], 3, axis=2) if rgb else pixels[:, :, None]
        arrays.append(pixels)
    return np.stack(arrays).transpose(0, 3, 1, 2)


def folder_labels(names: dict[str, list[str]]) -> tuple[dict[str, np.ndarray], list[str] | None, str]:
    """Labels of a folder's images from their class subfolders: an image's class is the first
    folder of its path under PATH (under ``train/`` or ``test/`` when the folder has both), the
    classes are those folders' names sorted (both splits together). An image directly in PATH
    (or in train/, test/) has no class; unless every image has one, the folder has no labels.
    ``names``: {part: paths relative to PATH} -> ({part: int64 labels}, class names, why none)."""
    classes_of = {}
    for which, rel_names in names.items():
        cut = 0 if which == "all" else len(which) + 1  # "train/cat/x.png" -> "cat/x.png"
        classes_of[which] = [name[cut:].split("/")[0] if "/" in name[cut:] else None for name in rel_names]
    loose = [name for which, rel_names in names.items() for name, c in zip(rel_names, classes_of[which])
             if c is None]
    if loose:
        return {}, None, (f"{len(loose)} image(s) are not inside a class subfolder (the first: {loose[0]}); "
                          "labels come from one subfolder per class")
    class_names = sorted({c for classes in classes_of.values() for c in classes})
    index = {name: i for i, name in enumerate(class_names)}
    return {which: np.array([index[c] for c in classes], dtype=np.int64)
            for which, classes in classes_of.items()}, class_names, ""


def read_images(paths, *, channels: int, levels: int = 256, skip_bad: bool = False) -> ImageDataset:
    """Read PNG/JPEG files (folders are searched recursively) into one batch for a model with
    ``channels`` (1: RGB files become gray by luminance; 3: gray files are repeated) and ``levels``
    (values quantized as ``v * levels // 256``). All images must share one size. Names are the
    paths as given. Unreadable files raise DataError naming them, or with ``skip_bad`` are skipped
    with a warning and listed in ``ds.skipped``."""
    from PIL import Image
    if channels not in (1, 3):
        raise DataError(f"channels must be 1 or 3, got {channels!r}")
    if not 2 <= levels <= 256:
        raise DataError(f"levels must be in 2..256 for image files, got {levels!r}")
    files: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            files.extend(image_files(p))
        elif p.exists():
            files.append(p)
        else:
            raise DataError(f"{p} does not exist")
    if not files:
        raise DataError("no image files given")
    arrays, names, skipped = [], [], []
    for path in files:
        pixels = read_or_skip(path, skip_bad, skipped)
        if pixels is None:
            continue
        if channels == 1 and pixels.ndim == 3:
            pixels = np.asarray(Image.fromarray(pixels).convert("L"))
        pixels = pixels[:, :, None] if pixels.ndim == 2 else pixels
        if channels == 3 and pixels.shape[2] == 1:
            pixels = np.repeat(pixels, 3, axis=2)
        if arrays and pixels.shape != arrays[0].shape:
            raise DataError(f"images must all have the same size: {names[0]} is {arrays[0].shape[0]}x"
                            f"{arrays[0].shape[1]} but {path} is {pixels.shape[0]}x{pixels.shape[1]}")
        arrays.append(pixels)
        names.append(str(path))
    if not arrays:
        raise DataError(f"none of the {len(files)} image files could be read")
    images = torch.from_numpy((np.stack(arrays).transpose(0, 3, 1, 2).astype(np.int64) * levels
                               // 256).astype(np.uint8))
    return ImageDataset(images=images, levels=levels, name="files", split="all", names=names,
                        skipped=skipped)

