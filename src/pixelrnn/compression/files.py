"""Images and archives for the command line: reading image files and .npz/.npy archives exactly
as the model represents them (compression is lossless), and the PNG names that
``pixelrnn decompress`` writes back.

Image files are only accepted when the model represents their pixels exactly: their channels
must be the model's (gray for a 1-channel model, RGB for 3; no transparency), and for a model with
fewer than 256 levels every pixel must be one of the values ``round(v * 255 / (levels - 1))``
that decompress writes back (e.g. 0 and 255 for a binary model).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..errors import ArgumentError, DataError

# Pillow modes whose conversion to gray ("L") or RGB keeps every pixel (alpha checked separately)
LOSSLESS_MODES = {"1", "L", "LA", "La", "P", "PA", "RGB", "RGBA", "RGBa", "RGBX"}


# --------------------------------------------------------------------------------------------
# Names
# --------------------------------------------------------------------------------------------

def png_name(name: str) -> str:
    """The relative path (POSIX) that decompress writes an image named ``name`` to: the name with
    its suffix replaced by .png. ArgumentError for a name that could escape the output folder."""
    parts = name.replace("\\", "/").split("/")
    if (name.startswith(("/", "\\")) or any(p in ("", ".", "..") for p in parts)
            or any(ord(ch) < 32 for ch in name)):
        raise ArgumentError(f"unsafe image name {name!r}: names must be relative paths inside the output folder")
    stem, dot, suffix = parts[-1].rpartition(".")
    parts[-1] = (stem if dot and stem else parts[-1]) + ".png"
    return "/".join(parts)


def file_folder_clash(rel: list[str]) -> tuple[str, str] | None:
    """(a, b) when output path ``a`` is also a folder that ``b`` needs (x.png and x.png/y.png),
    compared without case as some file systems do; None when there is no such pair."""
    files = {r.lower(): r for r in rel}
    for r in rel:
        parts = r.split("/")
        for i in range(1, len(parts)):
            folder = "/".join(parts[:i]).lower()
            if folder in files:
                return files[folder], r
    return None


def check_names_unique(names: list[str], sources: list[str] | None = None) -> None:
    """ArgumentError unless the images named ``names`` (from the files ``sources``, when given)
    decompress to distinct PNG files, none of them the folder of another."""
    seen: dict[str, int] = {}
    for k, name in enumerate(names):
        out = png_name(name).lower()  # case-insensitive file systems exist
        if out in seen:
            j = seen[out]
            what = f"{sources[j]} and {sources[k]}" if sources else f"images {j} and {k}"
            raise ArgumentError(f"{what} would decompress to the same file {png_name(name)}; "
                                "rename one of them")
        seen[out] = k
    clash = file_folder_clash([png_name(name) for name in names])
    if clash:
        raise ArgumentError(f"{clash[0]} would decompress to a file and be the folder of {clash[1]}; "
                            "rename one of them")


def png_names(names: tuple[str, ...] | None, count: int) -> list[str]:
    """The relative PNG paths of ``count`` decoded images: their stored ``names`` with the suffix
    .png, or ``00000.png``... when no names were stored. ArgumentError for names that cannot all
    be written as files."""
    if names is None:
        width = max(5, len(str(count - 1)))
        return [f"{k:0{width}d}.png" for k in range(count)]
    rel = [png_name(name) for name in names]
    if len({r.lower() for r in rel}) != len(rel):
        raise ArgumentError("corrupted file: two images have the same name")
    clash = file_folder_clash(rel)
    if clash:
        raise ArgumentError(f"the image names clash: {clash[0]} would be a file and a folder "
                            f"(for {clash[1]}); decompress with --npz, which keeps the names")
    return rel


# --------------------------------------------------------------------------------------------
# Image files
# --------------------------------------------------------------------------------------------

def file_entries(paths: list[str]) -> list[tuple[Path, str]]:
    """(file, name) of every image file: a file's name is its base name, a folder's files are
    named by their path relative to the folder."""
    from ..data import image_files
    entries = []
    for arg in paths:
        p = Path(arg)
        if p.is_dir():
            files = image_files(p)
            if not files:
                raise DataError(f"no PNG/JPEG files found in {p}")
            entries += [(f, f.relative_to(p).as_posix()) for f in files]
        elif p.exists():
            entries.append((p, p.name))
        else:
            raise DataError(f"{p} does not exist")
    return entries


def _mode_and_alpha(path: Path):
    """(Pillow mode, (min, max) of the alpha channel or None) of an image file; (None, None)
    when Pillow cannot open it."""
    from PIL import Image
    try:
        with Image.open(path) as im:
            alpha = None
            if "A" in im.getbands() or "a" in im.getbands() or "transparency" in im.info:
                alpha = im.convert("RGBA").getchannel("A").getextrema()
            return im.mode, alpha
    except Exception:  # noqa: BLE001 - read_image reports it
        return None, None


def _exact_values(path: Path, pixels: np.ndarray, levels: int) -> np.ndarray:
    """The model values of 8-bit ``pixels`` (C, H, W), or a DataError when one of them is not
    a value that decompress writes back."""
    from ..imaging import to_uint8
    allowed = to_uint8(np.arange(levels), levels)  # the pixel value decompress writes for each model value
    inverse = np.full(256, -1, np.int16)
    inverse[allowed] = np.arange(levels)  # exact inverse of that (not the v * L // 256 of read_images)
    values = inverse[pixels]
    if (values < 0).any():
        bad = int(pixels[values < 0][0])
        shown = ", ".join(map(str, allowed[:6])) + (", ..." if len(allowed) > 6 else "")
        raise DataError(f"{path} has pixel value {bad}, which a {levels}-level model cannot represent "
                        f"exactly (its values are {shown}): compression must be lossless")
    return values


def read_lossless(path: Path, model) -> torch.Tensor:
    """uint8 (C, H, W) values of an image file for ``model``, or a DataError saying why the file
    cannot be coded losslessly."""
    from ..data import read_image
    C, L = model.channels, model.levels
    mode, alpha = _mode_and_alpha(path)
    native = read_image(path)  # DataError for unreadable files
    if mode not in LOSSLESS_MODES:
        raise DataError(f"{path}: image mode {mode} cannot be converted to gray/RGB without loss")
    if alpha is not None and alpha != (255, 255):
        raise DataError(f"{path} has transparent pixels: compression is lossless and the model has "
                        "no alpha channel")
    file_c = 1 if native.ndim == 2 else 3
    if file_c != C:
        kind = {1: "gray", 3: "RGB"}
        raise DataError(f"{path} is {kind[file_c]} but the model takes {kind.get(C, C)} images "
                        f"({C} channel(s)): compression is lossless, convert the images first")
    if L > 256:
        raise DataError(f"the model has {L} levels: image files have 256; use --npz")
    orig = native[None] if native.ndim == 2 else native.transpose(2, 0, 1)  # (C, H, W) uint8
    return torch.from_numpy(_exact_values(path, orig, L).astype(np.uint8))


# --------------------------------------------------------------------------------------------
# Archives
# --------------------------------------------------------------------------------------------

def _load_archive(path: str):
    """(key of the image array or None for an .npy, the array, names or None, levels or None)."""
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"{path} does not exist")
    if not p.is_file():
        raise DataError(f"{path} is not a regular file (expected a .npz or .npy file)")
    try:
        loaded = np.load(p, allow_pickle=False)
    except Exception as e:  # noqa: BLE001 - numpy raises many kinds for bad files
        raise DataError(f"cannot read {path} as .npz/.npy: {type(e).__name__}: "
                        f"{' '.join(str(e).split())}") from None
    if isinstance(loaded, np.ndarray):
        return None, loaded, None, None
    try:
        with loaded as z:
            keys = [k for k in z.files if k not in ("names", "levels")]
            key = next((k for k in ("images", "x", "arr_0") if k in keys), None)
            if key is None:
                if len(keys) != 1:
                    raise DataError(f"{path} has arrays {z.files}: expected one named images, x "
                                    "or arr_0 (or a single array)")
                key = keys[0]
            return (key, z[key], z["names"] if "names" in z.files else None,
                    z["levels"] if "levels" in z.files else None)
    except DataError:
        raise
    except Exception as e:  # noqa: BLE001 - broken zip members, object arrays...
        raise DataError(f"cannot read {path}: {type(e).__name__}: {' '.join(str(e).split())}") from None


def _nchw(array: np.ndarray, channels: int, levels: int, where: str) -> np.ndarray:
    """An image array of an archive as (N, C, H, W): N×C×H×W, N×H×W×C or N×H×W (N×C×H×W when
    both readings fit)."""
    from ..data import to_nchw
    if array.ndim == 4 and 0 not in array.shape and array.shape[1] != channels and array.shape[3] == channels:
        array = array.transpose(0, 3, 1, 2)  # channels last; N×C×H×W wins when both fit
    if array.dtype.kind in "iu" and levels > 256:
        if array.size == 0:
            raise DataError(f"{where} has shape {array.shape}: no images")
        array = array.astype(np.int64)  # values up to levels - 1, checked by the caller
        if array.ndim == 3:
            array = array[:, None]
    elif array.ndim == 4 and 0 not in array.shape and array.shape[1] == channels:
        array = to_nchw(array.transpose(0, 2, 3, 1), where)  # checks dtype and values, keeps the layout
    else:
        array = to_nchw(array, where)
    if array.ndim != 4:
        raise DataError(f"{where} has shape {array.shape}: expected N×C×H×W, N×H×W×C or N×H×W images")
    return array


def read_npz(path: str, model) -> tuple[torch.Tensor, list[str] | None]:
    """uint8 (N, C, H, W) images and optional names of an .npz/.npy for ``model``: the array
    ``images`` (or ``x``, ``arr_0``, or the only array) with values < levels, optional ``names``
    (strings) and ``levels`` (checked against the model), as ``pixelrnn decompress --npz`` writes."""
    key, array, names, levels = _load_archive(path)
    where = f"{path}[{key}]" if key else str(path)
    array = _nchw(array, model.channels, model.levels, where)
    if array.shape[1] != model.channels:
        raise DataError(f"{where} has {array.shape[1]} channel(s) (shape {array.shape}) but the "
                        f"model takes {model.channels}")
    if levels is not None:
        if levels.shape != () or levels.dtype.kind not in "iu" or int(levels) != model.levels:
            raise DataError(f"{path} says levels={levels!r} but the model has {model.levels} levels")
    hi = int(array.max())
    if hi >= model.levels:
        raise DataError(f"{where} has values up to {hi} but the model has {model.levels} levels "
                        f"(values 0..{model.levels - 1}): compression must be lossless")
    if names is not None:
        if names.ndim != 1 or names.dtype.kind != "U" or len(names) != len(array):
            raise DataError(f"{path}[names] must be {len(array)} strings, got {names.dtype} {names.shape}")
        names = [str(s) for s in names]
    return torch.from_numpy(np.ascontiguousarray(array)), names
