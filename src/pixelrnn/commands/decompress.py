"""``pixelrnn decompress CHECKPOINT FILE.prnn -o DIR``: decode a file written by ``pixelrnn compress``.

    pixelrnn decompress run/best.safetensors digits.prnn -o restored/
    pixelrnn decompress run/best.safetensors test.prnn --npz restored.npz

Needs the checkpoint the file was compressed with (its fingerprint is checked), on the same kind of
device (``--device``, cpu by default) with the same software; the SHA-256 of the decoded pixels is
verified, so a corrupted file or another numerical environment is an error, never wrong pixels.

Output
    ``-o DIR``: one PNG per image, at its stored name with the suffix ``.png`` (``00000.png``...
    when no names were stored), values scaled from [0, levels) to 0..255 as ``pixelrnn sample``
    does (so 256-level images are written unchanged). ``--npz FILE``: arrays ``images`` (uint8
    N×C×H×W, all images of one size), ``levels`` and, when stored, ``names``. Existing files are
    not overwritten without ``--force``; nothing is written when decoding fails.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from .common import (CODING_DEVICE, add_progress_flags, check_coding_args, check_out_file,
                     file_in_the_way, load_model, progress_bar, save_npz)
from ..errors import ArgumentError


def register(sub) -> None:
    p = sub.add_parser("decompress", help="decode a file written by pixelrnn compress",
                       description=__doc__.split("\n\n")[0])
    p.add_argument("checkpoint")
    p.add_argument("file", help="the compressed file")
    out = p.add_mutually_exclusive_group(required=True)
    out.add_argument("-o", "--out", metavar="DIR", help="folder for the PNG files")
    out.add_argument("--npz", metavar="FILE", help="write the images (uint8 N,C,H,W), levels and "
                     "names to this .npz instead")
    p.add_argument("--force", action="store_true", help="overwrite existing output files")
    p.add_argument("--device", default=CODING_DEVICE, help="cpu (default) or cuda: the kind of "
                   "device the file was compressed on")
    p.add_argument("--threads", type=int, help="torch CPU threads for files of format version 1 "
                   "(a version-2 file records the encoder's count and is decoded with it)")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    add_progress_flags(p)
    p.set_defaults(func=run)


def _read_file(name: str) -> bytes:
    path = Path(name)
    if not path.exists():
        raise FileNotFoundError(f"{name} does not exist")
    if path.is_dir():
        raise IsADirectoryError(f"{name} is a directory, not a compressed file")
    return path.read_bytes()


def _check_npz(args, header) -> None:
    check_out_file(args.npz, "--npz", args.force)
    if len(set(header.shapes)) > 1:
        raise ArgumentError(f"the file holds images of {len(set(header.shapes))} different sizes: "
                            "an .npz holds one size; decompress to PNG files with -o DIR")


def _targets(args, header) -> list[Path]:
    """The PNG paths to write, checked before anything is decoded."""
    from ..compression.files import png_names
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"-o {args.out} exists and is not a directory")
    if header.levels > 256:
        raise ArgumentError(f"the images have {header.levels} levels: PNG holds 256; use --npz")
    paths = [out / r for r in png_names(header.names, header.count)]
    for p in paths:  # a file where a folder must go, e.g. DIR/sub is a file and an image is sub/x.png
        blocked = file_in_the_way(p)
        if blocked is not None:
            raise NotADirectoryError(f"{blocked} is not a directory, but {p} goes into it")
    if not args.force:
        existing = [p for p in paths if p.exists()]
        if existing:
            more = f" (and {len(existing) - 1} more)" if len(existing) > 1 else ""
            raise FileExistsError(f"{existing[0]} exists{more} (use --force to overwrite)")
    for p in paths:
        if p.is_dir():
            raise IsADirectoryError(f"{p} is a directory")
    return paths


def _write(args, header, decoded, targets) -> str:
    """Write the decoded images (PNG files or --npz); returns where they went."""
    from ..imaging import save_pngs, to_uint8
    levels = header.levels
    if not args.npz:
        save_pngs([to_uint8(d.image, levels).transpose(1, 2, 0) for d in decoded], targets)
        return args.out
    images = np.stack([d.image.numpy() for d in decoded]).astype(np.uint8 if levels <= 256 else np.int64)
    arrays = {"images": images, "levels": np.int64(levels)}
    if header.names is not None:
        arrays["names"] = np.array(header.names, dtype=str)
    if decoded and decoded[0].label is not None:  # a conditional model's file holds the labels
        arrays["labels"] = np.array([d.label for d in decoded], dtype=np.int64)
    save_npz(args.npz, **arrays)
    return args.npz


def _report(args, header, size: int, nll_bits: float, where: str, seconds: float) -> None:
    n, bits = header.count, 8 * size / header.values
    nll = nll_bits / header.values
    summary = {"images": n, "values": header.values, "bytes": size, "bits_per_dim": bits,
               "model_nll_bits_per_dim": nll, "seconds": seconds,
               "images_per_second": n / seconds if seconds > 0 else None, "out": where}
    if args.json:
        print(json.dumps(summary, indent=2))
        return
    print(f"decompressed {n} image(s) from {args.file} ({size:,} bytes, {bits:.4f} bits/dim; "
          f"model NLL {nll:.4f} bits/dim) into {where}; {seconds:.1f} s "
          f"({n / max(seconds, 1e-9):.1f} images/s)")


def run(args) -> int:
    from ..compression import check_model, decompress, read_header
    check_coding_args(args)
    data = _read_file(args.file)
    header = read_header(data)
    if args.npz:
        _check_npz(args, header)
    targets = None if args.npz else _targets(args, header)
    model, _ = load_model(args.checkpoint, args.device)  # a file or a pretrained name
    check_model(model, header)
    stats: dict = {}
    t0 = time.perf_counter()
    with progress_bar(args, header.values, "decompressing") as bar:
        decoded = decompress(model, data, progress=bar.part(0, header.values), stats=stats)
    seconds = time.perf_counter() - t0
    where = _write(args, header, decoded, targets)
    _report(args, header, len(data), stats["nll_bits"], where, seconds)
    return 0
