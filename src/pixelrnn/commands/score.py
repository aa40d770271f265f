"""``pixelrnn score CHECKPOINT (--data NAME | IMAGES...)``: anomaly scores from exact likelihoods.

Per image (higher = more anomalous)::

    pixelrnn score run/best.safetensors --data mnist --method complexity --json
    pixelrnn score run/best.safetensors photos/ a.png --csv scores.csv --heatmap maps.png

OOD evaluation (ROC-AUC / AUPR of every method against each OOD set; see pixelrnn.anomaly)::

    pixelrnn score run/best.safetensors --data mnist --ood noise --ood constant --ood digits

CHECKPOINT is a file or a pretrained name (``pixelrnn models``).

Images
    ``--data SPEC`` loads a split of a dataset: ``--split``, else the test split of a built-in
    dataset (mnist, ...) and every image of the user's own data (``npz:PATH``, ``folder:PATH``,
    ...); the command says which split and how many images it scored. Their channels and
    levels must be the model's (``--levels K`` requantizes 256-level data as ``v * K // 256``).
    IMAGES are PNG/JPEG files or folders (searched recursively), converted to the model's channels
    and levels by ``pixelrnn.data.read_images``; they must all have one size. They may come
    before or after the options.
OOD sets (``--ood NAME``, repeatable)
    A built-in set (``noise``, ``inverted``, ``rotated``, ``shuffled``, ``digits``, ``constant``,
    ``uniform``, ``photos``: see ``pixelrnn.anomaly.OOD_SETS``), built from the scored
    (in-distribution) images or resized to their shape, or a dataset spec, whose test split is
    converted to the model's channels and levels (``pixelrnn.anomaly.convert_images``) and must
    have the same height and width (a built-in name wins over a dataset of the same name, e.g.
    ``digits``). The histogram of the scores goes to ``--hist PATH``, by default next to the
    checkpoint: ``<checkpoint without suffix>.ood-hist.png``, replaced each time, skipped with a
    warning where it cannot be written (``--no-hist``: none).
Output
    Per image: a table (up to 20 images, else the 10 most anomalous and a summary), ``--json``
    (``{"method"[, "complexity_codec"], "scores": [{"image", "score", "nll_nats", "bits_per_dim"[,
    "complexity_bits"]}]}``)
    or ``--csv FILE`` (``-``: stdout). With ``--ood``: a Markdown table, ``--json`` or ``--csv``
    (ood, method, roc_auc, aupr, ood_images, in_images). ``--heatmap PNG`` shows the first
    ``--heatmap-count`` scored images beside their per-pixel -log p maps. ``--limit N`` scores only
    the first N images (and at most N per OOD set). Files are written atomically; a named output
    that exists is not overwritten without ``--force``.
"""
from __future__ import annotations

import csv
import io
import json
import math
import os
import sys
import warnings
from pathlib import Path

from ..errors import ArgumentError
from .common import (DEVICE_HELP, CommandWarning, check_out_file, data_note, default_split, load_model,
                     resolve_device, set_threads)


def register(sub) -> None:
    from ..anomaly import CODECS, DEFAULT_CODEC, METHODS, OOD_SETS
    p = sub.add_parser(
        "score", help="anomaly scores per image (nll, bpd, input-complexity), OOD evaluation",
        description="One anomaly score per image, higher = more anomalous. nll: -log p in nats; "
        "bpd: bits per value; complexity: NLL in bits minus a generic lossless codec's code length "
        "(Serrà et al. 2020), which corrects the known preference of likelihood models for simple "
        "images. With --ood: ROC-AUC / AUPR of every method against out-of-distribution sets.")
    p.add_argument("checkpoint")
    p.add_argument("images", nargs="*", metavar="IMAGES",
                   help="PNG/JPEG files or folders")
    p.add_argument("--data", help="dataset name or PREFIX:PATH (instead of IMAGES)")
    p.add_argument("--split", choices=["train", "test", "all"],
                   help="split of --data (default: test for a built-in dataset, all for your own "
                   "data, PREFIX:PATH)")
    p.add_argument("--levels", type=int, help="requantize --data to this many levels (v*K//native)")
    p.add_argument("--method", default="nll", help=f"{' | '.join(METHODS)} (default nll)")
    p.add_argument("--complexity-codec", default=DEFAULT_CODEC,
                   help=f"generic codec of the complexity method: {' | '.join(CODECS)} "
                   f"(default {DEFAULT_CODEC})")
    out = p.add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true", help="JSON on stdout")
    out.add_argument("--csv", metavar="FILE", help="write CSV to FILE ('-' for stdout)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--device", default="auto", help=DEVICE_HELP)
    p.add_argument("--threads", type=int, help="torch CPU threads")
    p.add_argument("--limit", type=int, help="score only the first N images (and N per OOD set)")
    p.add_argument("--heatmap", metavar="PNG", help="write images beside their per-pixel -log p maps")
    p.add_argument("--heatmap-count", type=int, default=32,
                   help="images shown in the heat map, in input order (default 32; 0 = all)")
    p.add_argument("--ood", action="append", metavar="NAME",
                   help=f"evaluate against an OOD set: {', '.join(OOD_SETS)} or a dataset spec; "
                   "repeatable")
    p.add_argument("--hist", metavar="PNG", help="histogram of the --ood scores (default: "
                   "<checkpoint without suffix>.ood-hist.png)")
    p.add_argument("--no-hist", action="store_true", help="do not write the --ood histogram")
    p.add_argument("--force", action="store_true", help="overwrite existing --csv / --heatmap / --hist "
                   "files (the default histogram path is always replaced)")
    p.set_defaults(func=run, trailing_positionals="images")


def _check_args(args) -> None:
    from ..anomaly import CODECS, METHODS, OOD_SETS
    from ..data import DATASETS, USER_FORMATS
    if args.method not in METHODS:
        raise ArgumentError(f"unknown method {args.method!r}; choose one of {', '.join(METHODS)}")
    if args.complexity_codec not in CODECS:
        raise ArgumentError(f"unknown --complexity-codec {args.complexity_codec!r}; choose one of "
                         f"{', '.join(CODECS)}")
    if bool(args.data) == bool(args.images):
        raise ArgumentError("give either --data NAME or image files/folders (exactly one of them)")
    if args.batch_size < 1:
        raise ArgumentError("--batch-size must be >= 1")
    if args.limit is not None and args.limit < 1:
        raise ArgumentError("--limit must be >= 1")
    if args.heatmap_count < 0:
        raise ArgumentError("--heatmap-count must be >= 0")
    if args.split is not None and not args.data:
        raise ArgumentError("--split only applies to --data")
    if args.levels is not None and not args.data:
        raise ArgumentError("--levels only applies to --data (image files are converted to the model's levels)")
    prefixes = {f.split(":")[0] for f in USER_FORMATS}
    for name in args.ood or []:
        if name not in OOD_SETS and name not in DATASETS and name.partition(":")[0] not in prefixes:
            raise ArgumentError(f"unknown OOD set {name!r}; built-in sets: {', '.join(OOD_SETS)}; "
                             f"or a dataset: {', '.join(DATASETS)}, {', '.join(USER_FORMATS)}")
    if args.ood and len(set(args.ood)) != len(args.ood):
        raise ArgumentError("an --ood set is given twice")
    if args.hist and args.no_hist:
        raise ArgumentError("--hist and --no-hist contradict each other")
    named = [(f, v) for f, v in (("--csv", args.csv), ("--heatmap", args.heatmap), ("--hist", args.hist))
             if v and v != "-"]
    for flag, path in named:
        check_out_file(path, flag, args.force)
    paths = [os.path.abspath(v) for _, v in named]
    if len(set(paths)) != len(paths):
        raise ArgumentError("two outputs (--csv, --heatmap, --hist) name the same file")


def _load_images(args, model):
    """(images uint8 (N, C, H, W), names, description) of what to score."""
    from ..data import load_dataset, read_images
    if args.data:
        split = default_split(args.data, args.split)
        ds = load_dataset(args.data, split, levels=args.levels)
        if ds.channels != model.channels:
            raise ArgumentError(f"{args.data} has {ds.channels} channel(s) but the model expects "
                             f"{model.channels}")
        if ds.levels != model.levels:
            hint = f" (pass --levels {model.levels} to requantize)" if ds.levels > model.levels else ""
            raise ArgumentError(f"{args.data} has {ds.levels} levels but the model expects "
                             f"{model.levels}{hint}")
    else:
        ds = read_images(args.images, channels=model.channels, levels=model.levels)
    images, names = ds.images, list(ds.names)
    if args.limit is not None:
        images, names = images[:args.limit], names[:args.limit]
    if args.data:
        return images, names, data_note(args.data, split, len(images), len(ds))
    return images, names, f"{len(ds)} image file{'s' if len(ds) != 1 else ''}" + (
        f" (the first {len(images)})" if len(images) < len(ds) else "")


def _ood_sets(args, model, reference):
    from ..anomaly import OOD_SETS, convert_images, make_ood_set
    from ..data import load_dataset
    sets, descriptions = {}, {}
    for name in args.ood:
        if name in OOD_SETS:
            sets[name] = make_ood_set(name, reference, model.levels, limit=args.limit)
            descriptions[name] = OOD_SETS[name]
            continue
        ds = load_dataset(name, "test")
        if (ds.height, ds.width) != tuple(reference.shape[2:]):
            raise ArgumentError(f"OOD set {name} has {ds.height}x{ds.width} images but the scored images "
                             f"are {reference.shape[2]}x{reference.shape[3]}")
        images = ds.images[:args.limit] if args.limit else ds.images
        sets[name] = convert_images(images, ds.levels, model.channels, model.levels)
        descriptions[name] = f"{name} test split ({ds.channels}x{ds.height}x{ds.width}, {ds.levels} "\
                             f"levels) converted to the model's {model.channels} channel(s), {model.levels} levels"
    return sets, descriptions


def _write_heatmap(args, model, images) -> str:
    from ..anomaly import heatmap, heatmap_scale, pixel_nll
    from ..imaging import save_png
    shown = images if args.heatmap_count == 0 else images[:args.heatmap_count]
    maps = pixel_nll(model, shown.to(model.device), args.batch_size)
    picture, vmax = heatmap(shown, maps, model.levels)
    save_png(picture, args.heatmap, scale=heatmap_scale(*shown.shape[2:]))
    return f"heat map of {shown.shape[0]} image(s) (-log p per pixel, 0..{vmax:.2f} nats, inferno) " \
           f"written to {args.heatmap}"


def _emit_csv(target: str, header: list[str], rows: list[list]) -> None:
    from ..files import atomic_write
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    if target == "-":
        sys.stdout.write(buf.getvalue())
    else:
        atomic_write(target, lambda tmp: Path(tmp).write_text(buf.getvalue()))


def run(args) -> int:
    _check_args(args)
    device = resolve_device(args.device)
    set_threads(args.threads)
    model, _ = load_model(args.checkpoint, device)
    if (args.ood or args.method == "complexity") and model.levels > 256:
        raise ArgumentError(f"the complexity score needs a generic codec, and those take at most 256 "
                         f"levels; the model has {model.levels} (use --method nll or bpd, without --ood)")
    images, names, what = _load_images(args, model)
    if args.json or args.csv == "-":  # else the output says it
        print(f"scoring {what}", file=sys.stderr)
    notes = []
    if args.ood:
        notes.append(_run_ood(args, model, images, what))
    else:
        _run_scores(args, model, images, names, what)
    if args.heatmap:
        notes.append(_write_heatmap(args, model, images))
    for note in notes:
        if note:
            print(note, file=sys.stderr if (args.json or args.csv == "-") else sys.stdout)
    return 0


def _run_scores(args, model, images, names, what) -> None:
    from ..anomaly import LN2, codec_bits, image_nll
    nll = image_nll(model, images, args.batch_size)
    dims = images[0].numel()
    bpd = nll / (dims * LN2)
    bits = codec_bits(images, model.levels, args.complexity_codec) if args.method == "complexity" else None
    score = {"nll": nll, "bpd": bpd}.get(args.method)
    if score is None:
        score = nll / LN2 - bits
    rows = []
    for i, name in enumerate(names):
        row = {"image": name, "score": float(score[i]), "nll_nats": float(nll[i]),
               "bits_per_dim": float(bpd[i])}
        if bits is not None:
            row["complexity_bits"] = float(bits[i])
        rows.append(row)
    if args.json:
        doc = {"method": args.method, "scores": rows}
        if bits is not None:
            doc["complexity_codec"] = args.complexity_codec
        print(json.dumps(doc, indent=2))
        return
    if args.csv:
        header = ["image", "score", "nll_nats", "bits_per_dim"] + (["complexity_bits"] if bits is not None else [])
        _emit_csv(args.csv, header, [[r[k] for k in header] for r in rows])
        if args.csv != "-":
            print(f"wrote {len(rows)} {args.method} scores of {what} to {args.csv}")
        return
    _print_table(args, rows, what)


def _print_table(args, rows, what) -> None:
    method = args.method + (f" ({args.complexity_codec})" if args.method == "complexity" else "")
    print(f"{method} anomaly scores of {what}; higher = more anomalous")
    shown = rows
    if len(rows) > 20:
        shown = sorted(rows, key=lambda r: -r["score"])[:10]
        print("the 10 most anomalous:")
    width = max(5, min(60, max(len(str(r["image"])) for r in shown)))
    extra = "  complexity_bits" if "complexity_bits" in rows[0] else ""
    print(f"{'image':<{width}}  {'score':>12}  {'nll_nats':>12}  {'bits/dim':>9}{extra}")
    for r in shown:
        name = str(r["image"])
        name = name if len(name) <= width else "..." + name[-(width - 3):]
        line = f"{name:<{width}}  {r['score']:>12.3f}  {r['nll_nats']:>12.3f}  {r['bits_per_dim']:>9.4f}"
        if extra:
            line += f"  {r['complexity_bits']:>15.0f}"
        print(line)
    if len(rows) > 1:
        s = sorted(r["score"] for r in rows)
        mean = math.fsum(s) / len(s)
        median = s[len(s) // 2] if len(s) % 2 else 0.5 * (s[len(s) // 2 - 1] + s[len(s) // 2])
        print(f"score: mean {mean:.3f}, median {median:.3f}, min {s[0]:.3f}, max {s[-1]:.3f}"
              + ("  (all scores: --json or --csv FILE)" if len(rows) > 20 else ""))


def _run_ood(args, model, images, what) -> str:
    from ..anomaly import evaluate_ood, save_histogram
    sets, descriptions = _ood_sets(args, model, images)
    report = evaluate_ood(model, images, sets, codec=args.complexity_codec,
                          batch_size=args.batch_size, in_name=what, descriptions=descriptions)
    hist = args.hist
    if hist:
        save_histogram(report, hist)  # checked before any work (_check_args)
    elif not args.no_hist:  # the default, next to the checkpoint: a convenience, so never fatal
        ckpt = Path(args.checkpoint)
        hist = str(ckpt.with_name(ckpt.stem + ".ood-hist.png"))
        try:
            save_histogram(report, hist)
        except OSError as e:
            warnings.warn(CommandWarning(f"no histogram: cannot write {hist} ({e.strerror or e}); "
                                         "pass --hist PATH or --no-hist"))
            hist = None
    if args.json:
        print(json.dumps({"checkpoint": args.checkpoint, **report.to_dict(), "histogram": hist}, indent=2))
    elif args.csv:
        rows = [[r.name, col, r.metrics[col]["roc_auc"], r.metrics[col]["aupr"], r.images,
                 report.in_images] for r in report.results for col in report.columns]
        _emit_csv(args.csv, ["ood", "method", "roc_auc", "aupr", "ood_images", "in_images"], rows)
        if args.csv != "-":
            print(f"wrote the OOD metrics of {len(report.results)} set(s) to {args.csv}")
    else:
        print(report.table())
    return f"score histogram written to {hist}" if hist else ""
