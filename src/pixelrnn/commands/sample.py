"""``pixelrnn sample CHECKPOINT -n 64 --out grid.png``: draw new images from a trained model.

Writes a PNG grid of the samples (values scaled from [0, levels) to 0..255, near-square grid
with 1 px gaps) and optionally an .npz with ``images`` (uint8 N, C, H, W) and ``levels``. The
image size comes from ``--size HxW`` or from the checkpoint's ``image_size`` metadata. The same
``--seed`` (with the same ``--batch-size``) gives the same images. A conditional model draws images
of ``--label L [L ...]`` (numbers or class names; ``-n`` images per label, one grid row per label),
or of labels drawn from its prior. Outputs are written atomically; an existing file is not
overwritten without ``--force``.
"""
from __future__ import annotations

import sys

import numpy as np
import torch

from ..data import parse_size
from ..errors import ArgumentError
from ..imaging import grid, save_png, to_uint8
from .common import (GENERATION_DEVICE_HELP, add_progress_flags, check_generation_args, load_model,
                     parse_labels, progress_bar, save_npz)


def register(sub) -> None:
    p = sub.add_parser("sample", help="draw new images from a model (PNG grid, optional .npz)",
                       description=__doc__.split("\n\n")[0])
    p.add_argument("checkpoint")
    p.add_argument("-n", "--n", type=int, default=64, dest="n", help="number of images (64; per label with --label)")
    p.add_argument("--label", nargs="+", metavar="L",
                   help="conditional models: draw images of these labels (numbers or class names), "
                        "one grid row each (default: labels drawn from the model's prior)")
    p.add_argument("--out", required=True, help="PNG grid to write")
    p.add_argument("--size", help="HxW (default: the checkpoint's image_size metadata)")
    p.add_argument("--seed", type=int, default=0, help="random seed (0)")
    p.add_argument("--temperature", type=float, default=1.0,
                   help="divide the logits by T > 0 (1: the model's distribution)")
    p.add_argument("--npz", help="also write the images (uint8 N,C,H,W) and levels to this .npz")
    p.add_argument("--force", action="store_true", help="overwrite existing output files")
    p.add_argument("--method", choices=["cached", "naive"], default="cached",
                   help="cached (default, about one forward pass) or naive (reference, slow)")
    p.add_argument("--batch-size", type=int, default=64, help="images sampled together (64)")
    p.add_argument("--threads", type=int, help="torch CPU threads")
    p.add_argument("--device", default="auto", help=GENERATION_DEVICE_HELP)
    add_progress_flags(p)
    p.set_defaults(func=run)


def _metadata_size(meta) -> tuple[int, int]:
    """(H, W) from the checkpoint's image_size metadata (no --size given)."""
    if "image_size" not in meta:
        raise ArgumentError("the checkpoint has no image_size metadata: give --size HxW")
    return parse_size(meta["image_size"], "image_size metadata")


def _sample(args, model, H: int, W: int, labels: torch.Tensor | None) -> torch.Tensor:
    """One image per entry of ``labels`` (or args.n images; labels None: none given), (N, C, H,
    W) on the CPU, drawn in batches of --batch-size."""
    gen = torch.Generator(device=model.device).manual_seed(args.seed)
    per_image = model.channels * H * W
    n = args.n if labels is None else len(labels)
    chunks = []
    with progress_bar(args, n * per_image, "sampling") as bar:
        for start in range(0, n, args.batch_size):
            b = min(args.batch_size, n - start)
            y = None if labels is None else labels[start:start + b]
            chunks.append(model.sample(b, height=H, width=W, y=y, generator=gen,
                                       temperature=args.temperature, method=args.method,
                                       progress=bar.part(start * per_image, b * per_image)).cpu())
    return torch.cat(chunks)


def run(args) -> int:
    if args.n < 1:
        raise ArgumentError(f"-n must be >= 1, got {args.n}")
    check_generation_args(args)
    size = parse_size(args.size) if args.size is not None else None  # checked before loading
    model, meta = load_model(args.checkpoint, args.device)
    H, W = size or _metadata_size(meta)
    levels = model.levels
    labels = parse_labels(model, args.label)
    y = None if labels is None else torch.tensor(labels).repeat_interleave(args.n)
    images = _sample(args, model, H, W, y)
    save_png(grid(to_uint8(images, levels), ncol=None if y is None else args.n), args.out)
    if args.npz:
        save_npz(args.npz, images=images.to(torch.uint8).numpy() if levels <= 256 else images.numpy(),
                 levels=np.int64(levels))
    of_labels = "" if labels is None else f" ({args.n} per label: {' '.join(args.label)})"
    print(f"wrote {len(images)} samples of {model.channels}x{H}x{W}{of_labels} to {args.out}"
          + (f" and {args.npz}" if args.npz else ""), file=sys.stderr)
    return 0
