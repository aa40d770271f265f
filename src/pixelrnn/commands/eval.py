"""``pixelrnn eval CHECKPOINT --data NAME``: exact NLL over a whole split.

CHECKPOINT is a file or a pretrained name (``pixelrnn models``). The split is ``--split``, else
the test split of a built-in dataset and every image of the user's own data (``npz:PATH``, ...).
A conditional model reports the marginal NLL -log p(x) and, on labelled data, the NLL given the
labels -log p(x | y) too. ``--limit N``: the first N images only.
"""
from __future__ import annotations

import json

from ..errors import ArgumentError
from .common import DEVICE_HELP, data_note, default_split, load_model, resolve_device, set_threads


def register(sub) -> None:
    p = sub.add_parser("eval", help="exact test NLL (nats/image) and bits/dim of a checkpoint")
    p.add_argument("checkpoint")
    p.add_argument("--data", required=True, help="dataset name or PREFIX:PATH")
    p.add_argument("--split", choices=["train", "test", "all"],
                   help="default: test for a built-in dataset, all for your own data (PREFIX:PATH)")
    p.add_argument("--levels", type=int, help="quantize the data to this many levels")
    p.add_argument("--crop", metavar="HxW")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--limit", type=int, metavar="N", help="evaluate the first N images only")
    p.add_argument("--device", default="auto", help=DEVICE_HELP)
    p.add_argument("--threads", type=int, help="torch CPU threads")
    p.add_argument("--precision", default="fp32", choices=["fp32", "bf16"])
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..data import load_dataset, parse_size
    from ..evaluate import evaluate
    device = resolve_device(args.device)
    set_threads(args.threads)
    if args.batch_size < 1:
        raise ArgumentError("--batch-size must be >= 1")
    model, _ = load_model(args.checkpoint, device)
    crop = parse_size(args.crop, "--crop") if args.crop else None
    split = default_split(args.data, args.split)
    ds = load_dataset(args.data, split, levels=args.levels, crop=crop)
    if ds.channels != model.channels or ds.levels != model.levels:
        hint = (f" (pass --levels {model.levels} to requantize)"
                if ds.channels == model.channels and ds.levels > model.levels else "")
        raise ArgumentError(f"{args.data} has {ds.channels} channel(s) and {ds.levels} levels but the "
                         f"model expects {model.channels} and {model.levels}{hint}")
    if args.limit is not None and args.limit < 1:
        raise ArgumentError("--limit must be >= 1")
    res = evaluate(model, ds, args.batch_size, args.precision, limit=args.limit, marginal=True)
    given = None
    if model.classes and ds.labels is not None:
        given = evaluate(model, ds, args.batch_size, args.precision, limit=args.limit)
    if args.json:
        extra = {} if given is None else {"given_labels": {"nll_nats": given.nll, "bits_per_dim": given.bits_per_dim}}
        print(json.dumps({"checkpoint": args.checkpoint, "data": args.data, "split": split,
                          **res.to_dict(), **extra}, indent=2))
        return 0
    marginal = " (marginal)" if model.classes else ""
    print(f"{data_note(args.data, split, res.images, len(ds))}: NLL {res.nll:.4f} nats/image, "
          f"{res.bits_per_dim:.5f} bits/dim{marginal}")
    if given is not None:
        print(f"given the labels: NLL {given.nll:.4f} nats/image, {given.bits_per_dim:.5f} bits/dim")
    return 0
