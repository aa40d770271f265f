"""``pixelrnn compress CHECKPOINT IMAGES... -o OUT.prnn``: lossless compression with a trained model.

    pixelrnn compress run/best.safetensors digits/ -o digits.prnn
    pixelrnn compress run/best.safetensors --npz test.npz -o test.prnn
    pixelrnn compress mnist --data mnist -o mnist-test.prnn     # a pretrained model, a dataset
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
    written by ``pixelrnn decompress --npz``. ``--data SPEC`` takes a dataset (its channels and
    levels must be the model's; ``--levels K`` requantizes): ``--split``, else the test split of a
    built-in dataset and every image of the user's own data (``npz:PATH``, ``folder:PATH``, ...).
    CHECKPOINT is a file or a pretrained name (``pixelrnn models``).
Output
    ``-o OUT`` is written atomically and never overwritten without ``--force``. The summary gives
    the size, the bits per value (dim) of the whole file, and the model's NLL in bits/dim.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

from .common import (CODING_DEVICE, add_progress_flags, check_coding_args, check_out_file, data_note,
                     default_split, load_model, progress_bar)
from ..errors import ArgumentError


def register(sub) -> None:
    from ..compression import DEFAULT_CHUNK
    p = sub.add_parser("compress", help="lossless compression of images with a trained model",
                       description=__doc__.split("\n\n")[0],
                       epilog="Decode with: pixelrnn decompress CHECKPOINT OUT -o DIR")
    p.add_argument("checkpoint")
    p.add_argument("images", nargs="*", metavar="IMAGES", help="PNG/JPEG files or folders")
    p.add_argument("--npz", metavar="FILE", help="compress the images of this .npz/.npy instead")
    p.add_argument("--data", metavar="SPEC", help="compress a dataset instead (name or PREFIX:PATH)")
    p.add_argument("--split", choices=["train", "test", "all"],
                   help="split of --data (default: test for a built-in dataset, all for your own data)")
    p.add_argument("--levels", type=int, help="requantize --data to this many levels")
    p.add_argument("-o", "--out", required=True, help="compressed file to write (e.g. images.prnn)")
    p.add_argument("--force", action="store_true", help="overwrite an existing output file")
    p.add_argument("--chunk", type=int, default=DEFAULT_CHUNK,
                   help=f"images coded together (speed only; default {DEFAULT_CHUNK})")
    p.add_argument("--device", default=CODING_DEVICE,
                   help="cpu (default) or cuda; decompress must use the same kind of device")
    p.add_argument("--threads", type=int, help="torch CPU threads")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    add_progress_flags(p)
    p.set_defaults(func=run, trailing_positionals="images")


def _read_inputs(args, model):
    """(images: uint8 (C, H, W) each, names or None, what they are) of the files or --npz."""
    from ..compression.files import check_names_unique, file_entries, read_lossless, read_npz
    if args.data:
        return _read_dataset(args, model)
    if args.npz:
        images, names = read_npz(args.npz, model)
        if names is not None:
            check_names_unique(names)
        return images, names, f"{args.npz}: {len(images)} image{'s' if len(images) != 1 else ''}"
    entries = file_entries(args.images)
    names = [name for _, name in entries]
    check_names_unique(names, [str(f) for f, _ in entries])
    images = [read_lossless(f, model) for f, _ in entries]
    return images, names, f"{len(entries)} image file{'s' if len(entries) != 1 else ''}"


def _read_dataset(args, model):
    """(images, names, what) of ``--data``, checked against the model's channels and levels."""
    from ..data import load_dataset
    split = default_split(args.data, args.split)
    ds = load_dataset(args.data, split, levels=args.levels)
    if ds.channels != model.channels or ds.levels != model.levels:
        hint = f" (pass --levels {model.levels} to requantize)" if ds.levels > model.levels else ""
        raise ArgumentError(f"{args.data} has {ds.channels} channel(s) and {ds.levels} levels but the "
                            f"model expects {model.channels} and {model.levels}{hint}")
    return ds.images, list(ds.names), data_note(args.data, split, len(ds))


def _report(args, enc, n: int, what: str, seconds: float) -> None:
    summary = {"images": n, "values": enc.values, "bytes": len(enc.data), "header_bytes": enc.header_bytes,
               "bits_per_dim": enc.bits_per_dim, "model_nll_bits_per_dim": enc.nll_bits_per_dim,
               "overhead": enc.bits_per_dim / enc.nll_bits_per_dim - 1 if enc.nll_bits else None,
               "seconds": seconds, "images_per_second": n / seconds if seconds > 0 else None,
               "out": args.out}
    if args.json:
        print(json.dumps(summary, indent=2))
        return
    over = f" (+{100 * summary['overhead']:.2f} %)" if summary["overhead"] is not None else ""
    print(f"compressed {what} into {args.out}: {len(enc.data):,} bytes, "
          f"{enc.bits_per_dim:.4f} bits/dim; model NLL {enc.nll_bits_per_dim:.4f} bits/dim{over}; "
          f"{seconds:.1f} s ({n / max(seconds, 1e-9):.1f} images/s)")


def run(args) -> int:
    from ..compression import encode
    from ..files import atomic_write
    check_coding_args(args)
    if bool(args.images) + bool(args.npz) + bool(args.data) != 1:
        raise ArgumentError("give image files/folders, --npz FILE or --data SPEC (exactly one of them)")
    if (args.split is not None or args.levels is not None) and not args.data:
        raise ArgumentError("--split and --levels only apply to --data")
    if args.chunk < 1:
        raise ArgumentError(f"--chunk must be >= 1, got {args.chunk}")
    check_out_file(args.out, "-o", args.force)
    model, _ = load_model(args.checkpoint, args.device)
    images, names, what = _read_inputs(args, model)
    total = sum(int(im.numel()) for im in images)
    t0 = time.perf_counter()
    with progress_bar(args, total, "compressing") as bar:
        enc = encode(model, images, names, chunk=args.chunk, progress=bar.part(0, total))
    seconds = time.perf_counter() - t0
    atomic_write(args.out, lambda tmp: Path(tmp).write_bytes(enc.data))
    _report(args, enc, len(images), what, seconds)
    return 0
