"""``pixelrnn complete CHECKPOINT (--data SPEC | IMAGES...) --mask MASK --out grid.png``:
fill in the hidden part of images (inpainting).

Images come from a dataset split (``--data``, ``--split``, the first ``--n``) or from PNG/JPEG
files (converted to the model's channels; values quantized as ``v * levels // 256``; all the same
size). ``--mask`` says which pixels are unknown:

    bottom-half   rows H//2 .. H-1          top-half   rows 0 .. H//2 - 1
    center        a centred (H//2)×(W//2) rectangle
    random:P      each pixel independently with probability P (drawn with --seed)
    MASK.png      white (> 127) pixels, an image of the same H×W

The grid has three rows: the occluded input (unknown pixels in red), the completions, the
originals. ``--particles K`` draws K candidates per image and keeps one by the likelihood of the
known pixels after the first unknown one (K times the work). A conditional model completes given
``--label L``, or, without it, each particle draws a label from the prior and the weights (of every
known pixel) infer it. Same --seed -> same images.
Outputs are written atomically; an existing file is not overwritten without ``--force``.
"""
from __future__ import annotations

import sys

import numpy as np
import torch

from ..errors import ArgumentError
from ..imaging import as_rgb, grid, save_png, to_uint8
from .common import (GENERATION_DEVICE_HELP, add_progress_flags, check_generation_args, load_model,
                     parse_labels, progress_bar, save_npz)

UNKNOWN_RGB = (255, 0, 0)


def register(sub) -> None:
    p = sub.add_parser("complete", help="fill in the hidden part of images (inpainting)",
                       description=__doc__.split("\n\n")[0])
    p.add_argument("checkpoint")
    p.add_argument("images", nargs="*", help="PNG/JPEG files (instead of --data)")
    p.add_argument("--data", help="dataset spec, e.g. binarized-mnist or npz:PATH (see pixelrnn.data)")
    p.add_argument("--split", default="test", help="dataset split (test)")
    p.add_argument("--n", type=int, default=None, help="number of images (default 8 from --data, "
                                                       "all files given)")
    p.add_argument("--mask", required=True,
                   help="bottom-half | top-half | center | random:P | MASK.png (white = unknown)")
    p.add_argument("--particles", type=int, default=1, help="candidates per image (1)")
    p.add_argument("--label", metavar="L", help="conditional models: complete as label L (a number or "
                                                "class name; default: inferred by the particles)")
    p.add_argument("--seed", type=int, default=0, help="random seed (0)")
    p.add_argument("--temperature", type=float, default=1.0, help="divide the logits by T > 0")
    p.add_argument("--method", choices=["cached", "naive"], default="cached")
    p.add_argument("--batch-size", type=int, default=64, help="images completed together (64)")
    p.add_argument("--out", required=True, help="PNG grid to write")
    p.add_argument("--npz", help="also write images, known (bool N,1,H,W), originals and levels")
    p.add_argument("--force", action="store_true", help="overwrite existing output files")
    p.add_argument("--threads", type=int, help="torch CPU threads")
    p.add_argument("--device", default="auto", help=GENERATION_DEVICE_HELP)
    add_progress_flags(p)
    p.set_defaults(func=run, trailing_positionals="images")


def load_images(args, channels: int, levels: int) -> np.ndarray:
    """int64 (N, channels, H, W) in [0, levels)."""
    from ..data import convert_images, load_dataset, read_images
    n = args.n
    if n is not None and n < 1:
        raise ArgumentError(f"--n must be >= 1, got {n}")
    if args.data and args.images:
        raise ArgumentError("give either --data or image files, not both")
    if args.data:
        ds = load_dataset(args.data, args.split)
        imgs = ds.images[:8 if n is None else n]
        if len(imgs) == 0:
            raise ArgumentError(f"{args.data} ({args.split}) has no images")
        return convert_images(imgs, ds.levels, channels, levels).numpy().astype(np.int64)
    if not args.images:
        raise ArgumentError("give --data SPEC or one or more image files")
    files = args.images[:n] if n is not None else args.images
    return read_images(files, channels=channels, levels=levels).images.numpy().astype(np.int64)


def build_unknown(spec: str, n: int, H: int, W: int, seed: int) -> torch.Tensor:
    """bool (n, 1, H, W): True where the value is unknown (to be sampled)."""
    unknown = torch.zeros(n, 1, H, W, dtype=torch.bool)
    if spec == "bottom-half":
        unknown[:, :, H // 2:] = True
    elif spec == "top-half":
        unknown[:, :, :H // 2] = True
    elif spec == "center":
        h, w = max(1, H // 2), max(1, W // 2)
        top, left = (H - h) // 2, (W - w) // 2
        unknown[:, :, top:top + h, left:left + w] = True
    elif spec.startswith("random:"):
        try:
            p = float(spec[len("random:"):])
        except ValueError:
            p = float("nan")
        if not (0.0 <= p <= 1.0):
            raise ArgumentError(f"bad --mask {spec!r}: random:P needs 0 <= P <= 1")
        g = torch.Generator().manual_seed(seed)
        unknown = torch.rand(n, 1, H, W, generator=g) < p
    elif spec.lower().endswith((".png", ".jpg", ".jpeg", ".bmp", ".gif")) or "/" in spec:
        from PIL import Image, ImageOps, UnidentifiedImageError
        try:
            with Image.open(spec) as im:  # upright, like the images (EXIF orientation applied)
                m = np.asarray(ImageOps.exif_transpose(im).convert("L"), dtype=np.uint8)
        except FileNotFoundError:
            raise FileNotFoundError(f"mask image not found: {spec}") from None
        except (UnidentifiedImageError, OSError, ValueError) as e:
            raise ArgumentError(f"cannot read mask image {spec}: {str(e).splitlines()[0] if str(e) else type(e).__name__}") from None
        if m.shape != (H, W):
            raise ArgumentError(f"mask {spec} is {m.shape[1]}x{m.shape[0]} but the images are {W}x{H}")
        unknown[:] = torch.from_numpy(m > 127)
    else:
        raise ArgumentError(f"bad --mask {spec!r}: use bottom-half, top-half, center, random:P or a PNG file")
    return unknown


def _complete(args, model, originals: torch.Tensor, known: torch.Tensor, y: int | None) -> torch.Tensor:
    """The completions (N, C, H, W) on the CPU, in batches of --batch-size."""
    N, C, H, W = originals.shape
    gen = torch.Generator(device=model.device).manual_seed(args.seed)
    x = originals.masked_fill(~known, 0)
    per_image = C * H * W
    chunks = []
    with progress_bar(args, N * per_image, "completing") as bar:
        for s in range(0, N, args.batch_size):
            e = min(N, s + args.batch_size)
            chunks.append(model.complete(x[s:e], known[s:e], gen, args.particles, y=y,
                                         temperature=args.temperature, method=args.method,
                                         progress=bar.part(s * per_image, (e - s) * per_image)).cpu())
    return torch.cat(chunks)


def _grid(originals: torch.Tensor, unknown: torch.Tensor, done: torch.Tensor, levels: int) -> np.ndarray:
    """Three rows: the occluded input (unknown pixels in red), the completions, the originals."""
    occluded = as_rgb(to_uint8(originals, levels)).transpose(0, 2, 3, 1).copy()  # (N, H, W, 3)
    occluded[unknown[:, 0].numpy()] = UNKNOWN_RGB
    rows = [occluded.transpose(0, 3, 1, 2), as_rgb(to_uint8(done, levels)),
            as_rgb(to_uint8(originals, levels))]
    return grid(np.concatenate(rows), ncol=originals.shape[0])


def run(args) -> int:
    if args.particles < 1:
        raise ArgumentError(f"--particles must be >= 1, got {args.particles}")
    check_generation_args(args)
    model, _ = load_model(args.checkpoint, args.device)
    label = parse_labels(model, None if args.label is None else [args.label])
    levels = model.levels
    originals = torch.from_numpy(load_images(args, model.channels, levels))
    N, _, H, W = originals.shape
    unknown = build_unknown(args.mask, N, H, W, args.seed)
    known = ~unknown
    done = _complete(args, model, originals, known, None if label is None else label[0])
    save_png(_grid(originals, unknown, done, levels), args.out)
    if args.npz:
        dtype = np.uint8 if levels <= 256 else np.int64
        save_npz(args.npz, images=done.numpy().astype(dtype), known=known.numpy(),
                 originals=originals.numpy().astype(dtype), levels=np.int64(levels))
    print(f"wrote {N} completions ({args.mask}, {args.particles} particle(s)) to {args.out}",
          file=sys.stderr)
    return 0
