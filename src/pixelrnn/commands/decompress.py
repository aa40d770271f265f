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
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from .common import check_out_file, file_in_the_way
from .compress import DEFAULT_DEVICE, add_progress_flags, file_folder_clash, png_name, progress_bar, setup
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
    p.add_argument("--device", default=DEFAULT_DEVICE, help="cpu (default) or cuda: the kind of "
                   "device the file was compressed on")
    p.add_argument("--threads", type=int, help="torch CPU threads for files of format version 1 "
                   "(a version-2 file records the encoder's count and is decoded with it)")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    add_progress_flags(p)
    p.set_defaults(func=run)


def _targets(args, header) -> list[Path]:
    """The PNG paths to write, checked before anything is decoded."""
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"-o {args.out} exists and is not a directory")
    if header.levels > 256:
        raise ArgumentError(f"the images have {header.levels} levels: PNG holds 256; use --npz")
    if header.names is None:
        width = max(5, len(str(header.count - 1)))
        rel = [f"{k:0{width}d}.png" for k in range(header.count)]
    else:
        rel = [png_name(name) for name in header.names]
        if len({r.lower() for r in rel}) != len(rel):
            raise ArgumentError("corrupted file: two images have the same name")
        clash = file_folder_clash(rel)
        if clash:
            raise ArgumentError(f"the image names clash: {clash[0]} would be a file and a folder "
                             f"(for {clash[1]}); decompress with --npz, which keeps the names")
    paths = [out / r for r in rel]
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


def write_all(images: list[np.ndarray], targets: list[Path]) -> None:
    """All the PNGs or none: each is written to a temporary file beside its target first, then all
    are moved into place. An error or an interrupt before the moves removes the temporary files."""
    from PIL import Image

    from ..files import current_umask
    staged: list[str] = []
    mode = 0o666 & ~current_umask()  # what a plain open() would give (mkstemp makes 0600)
    try:
        for image, target in zip(images, targets):
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".prnn-", suffix=".tmp", dir=target.parent)
            os.close(fd)
            staged.append(tmp)
            Image.fromarray(image[..., 0] if image.shape[2] == 1 else image).save(tmp, format="PNG")
            os.chmod(tmp, mode)
        for tmp, target in zip(staged, targets):
            os.replace(tmp, target)
    except BaseException:
        for tmp in staged:
            if os.path.exists(tmp):
                os.unlink(tmp)
        raise


def run(args) -> int:
    from ..compression import check_model, decompress, read_header
    from ..imaging import to_uint8
    from ..checkpoint import load
    from .sample import save_npz
    setup(args)
    path = Path(args.file)
    if not path.exists():
        raise FileNotFoundError(f"{args.file} does not exist")
    if path.is_dir():
        raise IsADirectoryError(f"{args.file} is a directory, not a compressed file")
    data = path.read_bytes()
    header = read_header(data)
    if args.npz:
        check_out_file(args.npz, "--npz", args.force)
        if len(set(header.shapes)) > 1:
            raise ArgumentError(f"the file holds images of {len(set(header.shapes))} different sizes: "
                             "an .npz holds one size; decompress to PNG files with -o DIR")
        targets = None
    else:
        targets = _targets(args, header)
    model = load(args.checkpoint, map_location=args.device)
    check_model(model, header)
    bar, callback = progress_bar(args.progress, header.values, "decompressing")
    stats: dict = {}
    t0 = time.perf_counter()
    try:
        decoded = decompress(model, data, progress=callback, stats=stats)
    finally:
        bar.close()
    seconds = time.perf_counter() - t0
    levels = header.levels
    if args.npz:
        images = np.stack([d.image.numpy() for d in decoded]).astype(np.uint8 if levels <= 256 else np.int64)
        arrays = {"images": images, "levels": np.int64(levels)}
        if header.names is not None:
            arrays["names"] = np.array(header.names, dtype=str)
        save_npz(args.npz, **arrays)
        where = args.npz
    else:
        write_all([to_uint8(d.image, levels).transpose(1, 2, 0) for d in decoded], targets)
        where = args.out
    n, bits = header.count, 8 * len(data) / header.values
    nll = stats["nll_bits"] / header.values
    summary = {"images": n, "values": header.values, "bytes": len(data), "bits_per_dim": bits,
               "model_nll_bits_per_dim": nll, "seconds": seconds,
               "images_per_second": n / seconds if seconds > 0 else None, "out": where}
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(f"decompressed {n} image(s) from {args.file} ({len(data):,} bytes, {bits:.4f} bits/dim; "
              f"model NLL {nll:.4f} bits/dim) into {where}; {seconds:.1f} s "
              f"({n / max(seconds, 1e-9):.1f} images/s)")
    return 0
