"""``pixelrnn compress CHECKPOINT IMAGES... -o OUT.prnn``: lossless compression with a trained model.

    pixelrnn compress run/best.safetensors digits/ -o digits.prnn
    pixelrnn compress run/best.safetensors --npz test.npz -o test.prnn
    pixelrnn decompress run/best.safetensors digits.prnn -o restored/

Every value is entropy-coded with the model's exact conditional distribution (range coder, see
``pixelrnn.compression`` and docs/format.md); all images go into one file. Decoding needs the same
checkpoint (its fingerprint is checked), on the same kind of device with the same software.

Images
    IMAGES are PNG/JPEG files or folders (searched recursively; names relative to the folder). They
    may have different sizes. Compression is lossless, so a file is only accepted when the model
    represents its pixels exactly: its channels must be the model's (gray for a 1-channel model, RGB
    for 3; no transparency), and for a model with fewer than 256 levels every pixel must be one of
    the values ``round(v * 255 / (levels - 1))`` that decompress writes back (e.g. 0 and 255 for a
    binary model). ``--npz FILE`` takes an .npz/.npy instead: the array ``images`` (or ``x``,
    ``arr_0``, or the only array) as uint8 N×C×H×W, N×H×W×C or N×H×W with C the model's channels
    (N×C×H×W, what decompress writes, when both readings fit), values < levels; optional
    ``names`` (strings) and ``levels`` (checked against the model), as
    written by ``pixelrnn decompress --npz``.
Output
    ``-o OUT`` is written atomically and never overwritten without ``--force``. The summary gives
    the size, the bits per value (dim) of the whole file, and the model's NLL in bits/dim.
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from .common import check_out_file, resolve_device, set_threads
from ..errors import ArgumentError

DEFAULT_DEVICE = "cpu"
# Pillow modes whose conversion to gray ("L") or RGB keeps every pixel (alpha checked separately)
LOSSLESS_MODES = {"1", "L", "LA", "La", "P", "PA", "RGB", "RGBA", "RGBa", "RGBX"}


def register(sub) -> None:
    from ..compression import DEFAULT_CHUNK
    p = sub.add_parser("compress", help="lossless compression of images with a trained model",
                       description=__doc__.split("\n\n")[0],
                       epilog="Decode with: pixelrnn decompress CHECKPOINT OUT -o DIR")
    p.add_argument("checkpoint")
    p.add_argument("images", nargs="*", metavar="IMAGES", help="PNG/JPEG files or folders")
    p.add_argument("--npz", metavar="FILE", help="compress the images of this .npz/.npy instead")
    p.add_argument("-o", "--out", required=True, help="compressed file to write (e.g. images.prnn)")
    p.add_argument("--force", action="store_true", help="overwrite an existing output file")
    p.add_argument("--chunk", type=int, default=DEFAULT_CHUNK,
                   help=f"images coded together (speed only; default {DEFAULT_CHUNK})")
    p.add_argument("--device", default=DEFAULT_DEVICE,
                   help="cpu (default) or cuda; decompress must use the same kind of device")
    p.add_argument("--threads", type=int, help="torch CPU threads")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    add_progress_flags(p)
    p.set_defaults(func=run, trailing_positionals="images")


def add_progress_flags(p) -> None:
    g = p.add_mutually_exclusive_group()
    g.add_argument("--progress", dest="progress", action="store_true", default=None,
                   help="always show the progress bar (default: only on a terminal)")
    g.add_argument("--no-progress", dest="progress", action="store_false")


def progress_bar(enabled, total: int, desc: str):
    """A tqdm bar on stderr over ``total`` values (``enabled`` None: only on a terminal) and the
    ``f(done, total)`` callback that pixelrnn.compression calls."""
    from tqdm import tqdm
    bar = tqdm(total=total, desc=desc, unit="value", unit_scale=True, file=sys.stderr,
               disable=None if enabled is None else not enabled, dynamic_ncols=True, mininterval=0.25)

    def callback(done: int, _total: int) -> None:
        bar.update(done - bar.n)
    return bar, callback


def setup(args) -> None:
    """Checks shared by compress and decompress; sets the thread count."""
    resolve_device(args.device, allow_auto=False)  # the file records the kind: no guessing
    set_threads(args.threads)


def png_name(name: str) -> str:
    """The relative path (POSIX) that decompress writes an image named ``name`` to: the name with
    its suffix replaced by .png. ValueError for a name that could escape the output folder."""
    parts = name.replace("\\", "/").split("/")
    if (name.startswith(("/", "\\")) or any(p in ("", ".", "..") for p in parts)
            or any(ord(ch) < 32 for ch in name)):
        raise ArgumentError(f"unsafe image name {name!r}: names must be relative paths inside the output folder")
    stem, dot, suffix = parts[-1].rpartition(".")
    parts[-1] = (stem if dot and stem else parts[-1]) + ".png"
    return "/".join(parts)


def _check_names_unique(names: list[str], sources: list[str] | None = None) -> None:
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


def _file_entries(paths: list[str]) -> list[tuple[Path, str]]:
    """(file, name) of every image file: a file's name is its base name, a folder's files are
    named by their path relative to the folder."""
    from ..data import DataError, image_files
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


def read_lossless(path: Path, model) -> torch.Tensor:
    """uint8 (C, H, W) values of an image file for ``model``, or a DataError saying why the file
    cannot be coded losslessly."""
    from PIL import Image

    from ..data import DataError, read_image
    from ..imaging import to_uint8
    C, L = model.channels, model.levels
    try:
        with Image.open(path) as im:
            mode, info = im.mode, im.info
            alpha = None
            if "A" in im.getbands() or "a" in im.getbands() or "transparency" in info:
                alpha = im.convert("RGBA").getchannel("A").getextrema()
    except Exception:  # noqa: BLE001 - read_image below reports it
        mode, alpha = None, None
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
    allowed = to_uint8(np.arange(L), L)  # the pixel value decompress writes for each model value
    inverse = np.full(256, -1, np.int16)
    inverse[allowed] = np.arange(L)      # exact inverse of that (not the v * L // 256 of read_images)
    values = inverse[orig]
    if (values < 0).any():
        bad = int(orig[values < 0][0])
        shown = ", ".join(map(str, allowed[:6])) + (", ..." if len(allowed) > 6 else "")
        raise DataError(f"{path} has pixel value {bad}, which a {L}-level model cannot represent "
                        f"exactly (its values are {shown}): compression must be lossless")
    return torch.from_numpy(values.astype(np.uint8))


def read_npz(path: str, model) -> tuple[torch.Tensor, list[str] | None]:
    """uint8 (N, C, H, W) images and optional names of an .npz/.npy for ``model``."""
    from ..data import DataError, to_nchw
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
    names = levels = None
    try:
        if isinstance(loaded, np.ndarray):
            key, array = None, loaded
        else:
            with loaded as z:
                keys = [k for k in z.files if k not in ("names", "levels")]
                key = next((k for k in ("images", "x", "arr_0") if k in keys), None)
                if key is None:
                    if len(keys) != 1:
                        raise DataError(f"{path} has arrays {z.files}: expected one named images, x "
                                        "or arr_0 (or a single array)")
                    key = keys[0]
                array = z[key]
                if "names" in z.files:
                    names = z["names"]
                if "levels" in z.files:
                    levels = z["levels"]
    except DataError:
        raise
    except Exception as e:  # noqa: BLE001 - broken zip members, object arrays...
        raise DataError(f"cannot read {path}: {type(e).__name__}: {' '.join(str(e).split())}") from None
    where = f"{path}[{key}]" if key else str(path)
    C = model.channels
    if array.ndim == 4 and 0 not in array.shape and array.shape[1] != C and array.shape[3] == C:
        array = array.transpose(0, 3, 1, 2)  # channels last; N×C×H×W wins when both fit
    if array.dtype.kind in "iu" and model.levels > 256:
        if array.size == 0:
            raise DataError(f"{where} has shape {array.shape}: no images")
        array = array.astype(np.int64)  # values up to levels - 1, checked below
        if array.ndim == 3:
            array = array[:, None]
    elif array.ndim == 4 and 0 not in array.shape and array.shape[1] == C:
        array = to_nchw(array.transpose(0, 2, 3, 1), where)  # checks dtype and values, keeps the layout
    else:
        array = to_nchw(array, where)
    if array.ndim != 4:
        raise DataError(f"{where} has shape {array.shape}: expected N×C×H×W, N×H×W×C or N×H×W images")
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


def run(args) -> int:
    from ..compression import encode
    from ..checkpoint import load
    from ..files import atomic_write
    setup(args)
    if bool(args.images) == bool(args.npz):
        raise ArgumentError("give image files/folders or --npz FILE (exactly one of them)")
    if args.chunk < 1:
        raise ArgumentError(f"--chunk must be >= 1, got {args.chunk}")
    check_out_file(args.out, "-o", args.force)
    model = load(args.checkpoint, map_location=args.device)
    if args.npz:
        images, names = read_npz(args.npz, model)
        if names is not None:
            _check_names_unique(names)
        what = args.npz
    else:
        entries = _file_entries(args.images)
        names = [name for _, name in entries]
        _check_names_unique(names, [str(f) for f, _ in entries])
        images = [read_lossless(f, model) for f, _ in entries]
        what = f"{len(entries)} image file(s)"
    n = len(images)
    total = sum(int(im.numel()) for im in images)
    bar, callback = progress_bar(args.progress, total, "compressing")
    t0 = time.perf_counter()
    try:
        enc = encode(model, images, names, chunk=args.chunk, progress=callback)
    finally:
        bar.close()
    seconds = time.perf_counter() - t0
    atomic_write(args.out, lambda tmp: Path(tmp).write_bytes(enc.data))
    summary = {"images": n, "values": enc.values, "bytes": len(enc.data), "header_bytes": enc.header_bytes,
               "bits_per_dim": enc.bits_per_dim, "model_nll_bits_per_dim": enc.nll_bits_per_dim,
               "overhead": enc.bits_per_dim / enc.nll_bits_per_dim - 1 if enc.nll_bits else None,
               "seconds": seconds, "images_per_second": n / seconds if seconds > 0 else None,
               "out": args.out}
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        over = f" (+{100 * summary['overhead']:.2f} %)" if summary["overhead"] is not None else ""
        print(f"compressed {n} image(s) from {what} into {args.out}: {len(enc.data):,} bytes, "
              f"{enc.bits_per_dim:.4f} bits/dim; model NLL {enc.nll_bits_per_dim:.4f} bits/dim{over}; "
              f"{seconds:.1f} s ({n / max(seconds, 1e-9):.1f} images/s)")
    return 0
