"""``pixelrnn sample CHECKPOINT -n 64 --out grid.png``: draw new images from a trained model.

Writes a PNG grid of the samples (values scaled from [0, levels) to 0..255, near-square grid
with 1 px gaps) and optionally an .npz with ``images`` (uint8 N, C, H, W) and ``levels``. The
image size comes from ``--size HxW`` or from the checkpoint's ``image_size`` metadata. The same
``--seed`` (with the same ``--batch-size``) gives the same images. Outputs are written atomically;
an existing file is not overwritten without ``--force``.
"""
from __future__ import annotations

import math
import os
import sys

import numpy as np
import torch

from ..data import parse_size
from ..imaging import grid, save_png, to_uint8
from .common import DEVICE_HELP, check_out_file, resolve_device, set_threads
from ..errors import ArgumentError

GENERATION_DEVICE_HELP = DEVICE_HELP + "; a --seed gives the same images again on the same kind of device"


def load_model(path: str, device: str = "cpu"):
    """(model on ``device``, user metadata) of a checkpoint; CheckpointError / FileNotFoundError
    otherwise."""
    from ..checkpoint import load, read_checkpoint
    _, _, user = read_checkpoint(path)
    return load(path, map_location=device), user


def save_npz(path: str, **arrays) -> None:
    from ..files import atomic_write

    def write(tmp):
        with open(tmp, "wb") as f:
            np.savez_compressed(f, **arrays)
    atomic_write(path, write)


def make_progress(enabled, total: int, desc: str):
    """A tqdm bar over ``total`` values on stderr (``enabled`` None: only when stderr is a
    terminal) and the callback that model.sample/complete call with (done, total) positions of one
    batch; call ``callback.set_batch(b)`` before each batch of b images."""
    from tqdm import tqdm
    disable = None if enabled is None else not enabled
    bar = tqdm(total=total, desc=desc, unit="value", file=sys.stderr, disable=disable,
               dynamic_ncols=True, mininterval=0.25, unit_scale=True)
    state = {"last": 0, "scale": 1}

    def callback(done: int, batch_total: int) -> None:
        bar.update((done - state["last"]) * state["scale"])
        state["last"] = 0 if done >= batch_total else done

    def set_batch(b: int) -> None:
        state["scale"], state["last"] = b, 0

    callback.set_batch = set_batch
    return bar, callback


def check_generation_args(args) -> None:
    """The checks `sample` and `complete` share: batch size, temperature, threads, output paths."""
    if args.batch_size < 1:
        raise ArgumentError(f"--batch-size must be >= 1, got {args.batch_size}")
    if not (args.temperature > 0) or not math.isfinite(args.temperature):
        raise ArgumentError(f"--temperature must be a finite number > 0, got {args.temperature}")
    set_threads(args.threads)
    args.device = resolve_device(args.device)
    check_out_file(args.out, "--out", args.force)
    if args.npz:
        check_out_file(args.npz, "--npz", args.force)
        if os.path.abspath(args.npz) == os.path.abspath(args.out):
            raise ArgumentError("--out and --npz name the same file")


def register(sub) -> None:
    p = sub.add_parser("sample", help="draw new images from a model (PNG grid, optional .npz)",
                       description=__doc__.split("\n\n")[0])
    p.add_argument("checkpoint")
    p.add_argument("-n", "--n", type=int, default=64, dest="n", help="number of images (64)")
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
    g = p.add_mutually_exclusive_group()
    g.add_argument("--progress", dest="progress", action="store_true", default=None,
                   help="always show the progress bar (default: only on a terminal)")
    g.add_argument("--no-progress", dest="progress", action="store_false")
    p.set_defaults(func=run)


def run(args) -> int:
    if args.n < 1:
        raise ArgumentError(f"-n must be >= 1, got {args.n}")
    check_generation_args(args)
    size = parse_size(args.size) if args.size is not None else None
    model, meta = load_model(args.checkpoint, args.device)
    if size is None:
        if "image_size" not in meta:
            raise ArgumentError("the checkpoint has no image_size metadata: give --size HxW")
        size = parse_size(meta["image_size"], "image_size metadata")
    H, W = size
    C, levels = model.channels, model.levels
    gen = torch.Generator(device=model.device).manual_seed(args.seed)
    bar, callback = make_progress(args.progress, args.n * C * H * W, "sampling")
    chunks = []
    try:
        for start in range(0, args.n, args.batch_size):
            b = min(args.batch_size, args.n - start)
            callback.set_batch(b)
            chunks.append(model.sample(b, height=H, width=W, generator=gen,
                                       temperature=args.temperature, method=args.method,
                                       progress=callback).cpu())
    finally:
        bar.close()
    images = torch.cat(chunks)
    save_png(grid(to_uint8(images, levels)), args.out)
    if args.npz:
        save_npz(args.npz, images=images.to(torch.uint8).numpy() if levels <= 256 else images.numpy(),
                 levels=np.int64(levels))
    print(f"wrote {args.n} samples of {C}x{H}x{W} to {args.out}" + (f" and {args.npz}" if args.npz else ""),
          file=sys.stderr)
    return 0
