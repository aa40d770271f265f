"""``pixelrnn classify CHECKPOINT --data SPEC [--split test] [--json]``: a conditional model as a
generative classifier, p(y | x) = p(y) p(x | y) / sum_y' p(y') p(x | y').

Prints the accuracy, the marginal NLL of the images (nats per image), the log loss -log p(y | x),
the expected calibration error (15 bins) and the confusion matrix (rows: true label, columns:
predicted). ``--json`` prints ``{"accuracy", "nll_nats", "log_loss", "ece", "confusion", "split",
"images", "predictions": [{"image", "label", "predicted", "probs"}]}``. Each image costs one forward
pass per label.
"""
from __future__ import annotations

import json
import sys

from ..errors import ArgumentError
from .common import (DEVICE_HELP, add_progress_flags, data_note, default_split, load_model, progress_bar,
                     resolve_device, set_threads)


def register(sub) -> None:
    p = sub.add_parser("classify", help="classify labelled images with a conditional model (Bayes' rule)",
                       description=__doc__.split("\n\n")[0])
    p.add_argument("checkpoint")
    p.add_argument("--data", required=True, help="a dataset with labels, e.g. mnist or folder:PATH")
    p.add_argument("--split", help="train | test | all (default: test for built-in datasets, all for your own)")
    p.add_argument("--limit", type=int, help="only the first N images")
    p.add_argument("--batch-size", type=int, default=64, help="images per batch (64)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--threads", type=int, help="torch CPU threads")
    p.add_argument("--device", default="auto", help=DEVICE_HELP)
    add_progress_flags(p)
    p.set_defaults(func=run)


def labelled_images(args, model):
    """(images (N, C, H, W) int64, labels (N,), split) of --data, converted to the model's
    channels and levels; one-line errors for data without labels or with other labels."""
    from ..data import convert_images, load_dataset
    split = default_split(args.data, args.split)
    ds = load_dataset(args.data, split)
    n = len(ds) if args.limit is None else min(len(ds), args.limit)
    labels = ds.labels_of(slice(0, n))  # DataError when the data have no labels
    if ds.num_classes != model.classes:
        raise ArgumentError(f"{args.data} has {ds.num_classes} labels but the model {model.classes}")
    images = convert_images(ds.batch(slice(0, n)), ds.levels, model.channels, model.levels)
    print(f"classifying {data_note(args.data, split, n, len(ds))}", file=sys.stderr)
    return images, labels, split


def print_report(report: dict, names: list[str]) -> None:
    print(f"accuracy {report['accuracy']:.4f} on {report['images']} images ({report['split']} split)")
    print(f"NLL {report['nll_nats']:.3f} nats/image (marginal), log loss {report['log_loss']:.4f}, "
          f"ECE {report['ece']:.4f}")
    width = max(5, *(len(n) for n in names))
    print("confusion (rows: true, columns: predicted)")
    print(" " * width + "".join(f"{n[:width]:>{width + 1}}" for n in names))
    for name, row in zip(names, report["confusion"]):
        print(f"{name[:width]:>{width}}" + "".join(f"{v:>{width + 1}}" for v in row))


def run(args) -> int:
    from ..understanding import classifier_report
    if args.batch_size < 1 or (args.limit is not None and args.limit < 1):
        raise ArgumentError("--batch-size and --limit must be >= 1")
    set_threads(args.threads)
    model, _ = load_model(args.checkpoint, resolve_device(args.device))
    if not model.classes:
        raise ArgumentError(f"{args.checkpoint} is not a conditional model (train one with --conditional)")
    images, labels, split = labelled_images(args, model)
    with progress_bar(args, len(images), "classifying") as bar:
        report = classifier_report(model, images, labels, batch_size=args.batch_size,
                                   progress=bar.part(0, len(images)))
    report.update(split=split, images=len(images))
    if args.json:
        print(json.dumps(report))
    else:
        print_report(report, model.class_names or [str(k) for k in range(model.classes)])
    return 0
