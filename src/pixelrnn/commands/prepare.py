"""``pixelrnn prepare SOURCE OUT.npy``: any dataset once into a uint8 .npy that later runs
memory-map (``--data npy:OUT.npy``), with OUT.labels.npy and OUT.meta.json beside it."""
from __future__ import annotations

from ..errors import ArgumentError
from .common import add_progress_flags, check_out_file, progress_bar


def register(sub) -> None:
    p = sub.add_parser("prepare", help="convert a dataset once into a memory-mappable .npy (npy:OUT.npy)",
                       description="Write the train then the test images of SOURCE (any --data spec: "
                       "folder:, mnist-idx:, cifar10:, imagenet32:, binarized-mnist-amat:, ...) to the "
                       "uint8 (N, C, H, W) array OUT.npy, with OUT.labels.npy when the source has labels "
                       "and OUT.meta.json (levels, split, class names), so that --data npy:OUT.npy gives "
                       "the same splits and is memory-mapped. See docs/datasets.md.")
    p.add_argument("source", help="dataset spec, e.g. cifar10:DIR or imagenet32:DIR")
    p.add_argument("out", help="the .npy file to write")
    p.add_argument("--levels", type=int, help="quantize the data to this many levels")
    p.add_argument("--crop", metavar="HxW", help="center-crop every image")
    p.add_argument("--skip-bad", action="store_true", help="skip unreadable image files (folder:)")
    p.add_argument("--force", action="store_true", help="replace OUT and the files beside it")
    add_progress_flags(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from ..data import parse_size
    from ..data.prepare import prepare
    from ..data.sidecar import side_paths
    if not args.out.endswith(".npy"):
        raise ArgumentError(f"OUT must be a .npy file, got {args.out!r}")
    for path in (args.out, *map(str, side_paths(args.out))):
        check_out_file(path, "OUT", args.force)
    crop = parse_size(args.crop, "--crop") if args.crop else None
    bars = []  # the bar, made when prepare() knows how many images there are

    def report(done: int, total: int) -> None:
        if not bars:
            bars.append(progress_bar(args, total, "prepare"))
        bars[0].moveto(done)
    try:
        done = prepare(args.source, args.out, levels=args.levels, crop=crop, skip_bad=args.skip_bad,
                       progress=report)
    finally:
        for bar in bars:
            bar.close()
    n, c, h, w = done.shape
    labels = f"; {done.classes} classes in {done.labels_path}" if done.labels_path else "; no labels"
    print(f"wrote {done.path}: {n} images ({done.train} train, {n - done.train} test) of {c}x{h}x{w}, "
          f"{done.levels} levels{labels}; use --data npy:{done.path}")
    return 0
