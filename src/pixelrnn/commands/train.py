"""``pixelrnn train``: train a model on a built-in or user dataset, or resume a run."""
from __future__ import annotations

import json
import os
import sys

from ..models import ARCHITECTURES
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
    g = p.add_argument_group("data")
    g.add_argument("--data", help="dataset name or PREFIX:PATH (default binarized-mnist)")
    g.add_argument("--levels", type=int, help="quantize to this many levels per channel")
    g.add_argument("--crop", metavar="HxW", help="center-crop every image to HxW")
    g.add_argument("--skip-bad", action="store_true", default=None, help="skip unreadable files with a warning")
    g.add_argument("--dynamic-binarization", action="store_true", default=None,
                   help="redraw the binarized training images every epoch (binarized-mnist)")
    g = p.add_argument_group("regularisation (training only)")
    g.add_argument("--shift", type=int, metavar="S",
                   help="move every training image by a random (dy, dx) in [-S, S], edges repeated")
    g.add_argument("--hflip", action="store_true", default=None,
                   help="mirror every training image left-right with probability 1/2")
    g.add_argument("--dropout", type=float, metavar="P",
                   help="drop-out probability on every residual block's branch (default 0)")
    g.add_argument("--dihedral", type=float, metavar="P",
                   help="distribution augmentation (square images): with probability P train on "
                        "the image under one of the 7 other symmetries of the square, the model "
                        "told which by a learned bias per layer; the saved model is the identity's "
                        "(default 0: off)")
    g = p.add_argument_group("model")
    g.add_argument("--arch", choices=sorted(ARCHITECTURES), help="architecture (default diagonal_bilstm)")
    g.add_argument("--hidden", type=int, help="h: the residual stream has 2h features (default 16)")
    g.add_argument("--layers", type=int, help="number of residual blocks (default 7)")
    g.add_argument("--head", type=int, help="maps in the output 1x1 layers (default 2h)")
    g.add_argument("--skip", action="store_true", default=None, help="learned skip connections to the output")
    g.add_argument("--mixtures", type=int, metavar="K",
                   help="output a mixture of K discretized logistics per value instead of a "
                        "categorical over the levels (default 0: categorical)")
    g.add_argument("--kernel", type=int, help="PixelCNN: size of the masked convolutions (default 3)")
    g.add_argument("--base", choices=["row_lstm", "diagonal_bilstm", "pixelcnn"],
                   help="multiscale: architecture of both stages (default row_lstm)")
    g.add_argument("--factor", type=int,
                   help="multiscale: the small image is x[..., ::F, ::F] (default 2)")
    g.add_argument("--init", metavar="CHECKPOINT",
                   help="fine-tune: start from this checkpoint's architecture and weights "
                        "(a new run: fresh optimizer and schedule)")
    g = p.add_argument_group("optimisation")
    g.add_argument("--optimizer", choices=["adam", "rmsprop"])
    g.add_argument("--lr", type=float, help="learning rate (default 1e-3)")
    g.add_argument("--lr-schedule", choices=["constant", "cosine", "linear"])
    g.add_argument("--warmup", type=int, help="steps of linear learning-rate warm-up")
    g.add_argument("--weight-decay", type=float)
    g.add_argument("--grad-clip", type=float, help="max gradient norm, 0 = off (default 1.0)")
    g.add_argument("--ema", type=float, help="EMA decay of the weights used for evaluation, e.g. 0.999")
    g.add_argument("--batch-size", type=int, help="global batch size (default 16)")
    g = p.add_argument_group("length (the first limit reached ends the run)")
    g.add_argument("--epochs", type=int)
    g.add_argument("--steps", type=int, help="total optimizer steps (also when resuming)")
    g.add_argument("--max-minutes", type=float, help="wall-clock budget of training, summed over resumes")
    g = p.add_argument_group("output")
    g.add_argument("--out", help="run directory (default runs/pixelrnn)")
    g.add_argument("--eval-every", type=int, help="steps between test evaluations (default: once per epoch)")
    g.add_argument("--eval-batch-size", type=int)
    g.add_argument("--log-every", type=int)
    g.add_argument("--save-every", type=int, help="steps between checkpoints (default 200)")
    g.add_argument("--no-progress", dest="progress", action="store_false", default=None,
                   help="no progress bar")
    g.add_argument("--json", action="store_true", help="print the final summary as JSON")
    g = p.add_argument_group("execution")
    g.add_argument("--seed", type=int)
    g.add_argument("--deterministic", action="store_true", default=None,
                   help="deterministic algorithms: resumed runs end with identical weights")
    g.add_argument("--device", help=DEVICE_HELP)
    g.add_argument("--precision", choices=["fp32", "bf16"])
    g.add_argument("--compile", action="store_true", default=None, help="torch.compile the model (slow start)")
    g.add_argument("--threads", type=int, help="CPU threads (torch.set_num_threads)")
    p.set_defaults(func=run)


FIELDS = ["data", "levels", "crop", "skip_bad", "dynamic_binarization", "shift", "hflip",
          "dropout", "dihedral", "arch", "hidden", "layers", "head", "skip", "mixtures", "kernel", "base", "factor",
          "init", "optimizer", "lr", "lr_schedule", "warmup", "weight_decay", "grad_clip", "ema",
          "batch_size", "epochs", "steps", "max_minutes", "out", "eval_every", "eval_batch_size",
          "log_every", "save_every", "progress", "seed", "deterministic", "device", "precision",
          "compile", "threads"]


def run(args) -> int:
    from ..train import MODEL_FIELDS, NonFiniteLoss, TrainConfig, resume_config, train
    given = {k: getattr(args, k) for k in FIELDS}
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
