"""``pixelrnn train``: train a model on a built-in or user dataset, or resume a run."""
from __future__ import annotations

import dataclasses
import json
import os
import sys
import typing

from .common import DEVICE_HELP
from ..errors import ArgumentError


def register(sub) -> None:
    from ..data import DATASETS
    p = sub.add_parser(
        "train", help="train a model (or --resume a run)",
        description="Train a PixelRNN / PixelCNN. Built-in datasets: "
        + "; ".join(f"{k}: {v}" for k, v in DATASETS.items())
        + ". User data: folder:PATH, npy:PATH, npz:PATH, mnist-idx:DIR, cifar10:DIR.")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR exactly where it stopped")
    add_config_flags(p, extra={"output": [("--json", dict(action="store_true",
                                                           help="print the final summary as JSON"))]})
    p.set_defaults(func=run)


def add_config_flags(parser, extra: dict[str, list] | None = None) -> None:
    """One flag per TrainConfig field, in groups (``GROUPS``), from the fields' metadata; each
    defaults to None (not given). ``extra``: more (flag, keywords) at the end of a group."""
    from ..training.config import GROUPS, TrainConfig
    hints = typing.get_type_hints(TrainConfig)
    for title in GROUPS:
        group = parser.add_argument_group(title)
        for f in dataclasses.fields(TrainConfig):
            if f.metadata["group"] == title:
                group.add_argument(f.metadata["flag"] or "--" + f.name.replace("_", "-"), dest=f.name,
                                   **flag_keywords(f, hints[f.name]))
        for name, keywords in (extra or {}).get(title, []):
            group.add_argument(name, **keywords)


def flag_keywords(f: dataclasses.Field, hint) -> dict:
    """argparse's keywords for the flag of TrainConfig field ``f`` (of type ``hint``)."""
    meta = f.metadata
    kinds = [t for t in typing.get_args(hint) if t is not type(None)] or [hint]
    help_text = DEVICE_HELP if f.name == "device" else meta["help"]
    if kinds[0] is bool:  # a switch: --name sets True, --no-name False
        action = "store_false" if (meta["flag"] or "").startswith("--no-") else "store_true"
        return dict(action=action, default=None, help=help_text)
    keywords = dict(default=None, help=help_text, metavar=meta["metavar"], choices=meta["choices"])
    if kinds[0] is not str:
        keywords["type"] = kinds[0]
    return keywords


def run(args) -> int:
    from ..training import MODEL_FIELDS, NonFiniteLoss, TrainConfig, resume_config, train
    given = {f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig)}
    if args.resume:
        if given.get("out") not in (None, args.resume):
            raise ArgumentError("--out cannot be combined with --resume (the run directory is RUN_DIR)")
        given.pop("out")
        cfg = resume_config(args.resume, given)
    else:
        model_flags = [k for k in MODEL_FIELDS if given[k] is not None]
        if args.init and model_flags:
            raise ArgumentError(f"--init takes the architecture from the checkpoint; drop "
                             f"{', '.join('--' + k for k in model_flags)}")
        cfg = TrainConfig(**{k: v for k, v in given.items() if v is not None})
    try:
        result = train(cfg, resume=bool(args.resume))
    except NonFiniteLoss as e:
        print(f"pixelrnn train: error: {e}", file=sys.stderr)
        return 1
    if result.rank != 0:  # under torchrun only rank 0 reports
        return 130 if result.stopped_by == "signal" else 0
    summary = {"run_dir": result.run_dir, "step": result.step, "epoch": result.epoch,
               "stopped_by": result.stopped_by, "test": result.test, "best_test_nll": result.best_nll,
               "skipped_files": len(result.skipped)}
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        t = result.test
        line = f"step {result.step} ({result.stopped_by})"
        if t:
            line += f": test NLL {t['nll_nats']:.3f} nats/image, {t['bits_per_dim']:.4f} bits/dim"
            if t.get("step") not in (None, result.step):
                line += f" (the evaluation at step {t['step']})"
        if result.skipped:
            line += f"; skipped {len(result.skipped)} unreadable file(s)"
        print(line)
        saved = [f"{result.run_dir}/{n}.safetensors" for n in ("last", "best")
                 if os.path.exists(f"{result.run_dir}/{n}.safetensors")]
        print(f"checkpoints: {', '.join(saved)}" if saved else "no checkpoint was saved")
    return 130 if result.stopped_by == "signal" else 0
