"""Out-of-distribution detection on MNIST with exact likelihoods: which score works where.

    python bench/anomaly.py [--minutes 4] [--limit 1000] [--threads 2] [--out runs/anomaly-bench]
    python bench/anomaly.py --checkpoint runs/x/best.safetensors [--limit 1000]

Trains a PixelCNN (h=32, 5 layers, kernel 3; batch 16, Adam lr 2e-3) on the 256-level ``mnist``
digits for a fixed CPU budget (``--minutes``, which includes the trainer's final exact test
evaluation), or takes a trained ``--checkpoint``. Then scores the 1000 MNIST test digits and each
built-in OOD set of ``pixelrnn.anomaly.OOD_SETS`` (up to ``--limit`` images each) with every score:
``nll`` (nats; ``bpd`` ranks identically for images of one size and is left out), and the
input-complexity score of Serrà et al. 2020 with both generic codecs (``complexity:png``,
``complexity:lzma``). Prints a Markdown table of ROC-AUC / AUPR (OOD = positive class) and, per
OOD set, which score wins. The score histogram is written to ``<out>/ood-hist.png``.
"""
from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

import torch

from pixelrnn.anomaly import OOD_SETS, evaluate_ood, make_ood_set, save_histogram
from pixelrnn.data import load_dataset
from pixelrnn.checkpoint import load
from pixelrnn.train import TrainConfig, train

MODEL = dict(arch="pixelcnn", hidden=32, layers=5, kernel=3)
COLUMNS = ["nll", "complexity:png", "complexity:lzma"]


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--minutes", type=float, default=4.0, help="training budget (default 4)")
    p.add_argument("--checkpoint", help="score this model instead of training one")
    p.add_argument("--out", default="runs/anomaly-bench")
    p.add_argument("--limit", type=int, default=1000, help="images per set (default 1000: all)")
    p.add_argument("--sets", nargs="+", default=list(OOD_SETS), choices=list(OOD_SETS))
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=100, help="scoring batch size")
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    out = Path(a.out)

    if a.checkpoint:
        model = load(a.checkpoint)
        budget = f"checkpoint {a.checkpoint} ({model.config.arch}, h={model.config.hidden}, " \
                 f"{model.config.layers} layers)"
    else:
        shutil.rmtree(out, ignore_errors=True)
        cfg = TrainConfig(out=str(out), data="mnist", batch_size=16, lr=2e-3, max_minutes=a.minutes,
                          eval_every=10**9, save_every=10**9, eval_batch_size=a.batch_size,
                          threads=a.threads, progress=False, seed=a.seed, **MODEL)
        print(f"training {MODEL} on mnist for {a.minutes:g} min ...", file=sys.stderr, flush=True)
        res = train(cfg)
        model = load(out / "last.safetensors")
        budget = (f"PixelCNN h={MODEL['hidden']}, {MODEL['layers']} layers, trained on mnist "
                  f"(256 levels) for {a.minutes:g} min on {a.threads} CPU threads: {res.step} steps of "
                  f"batch 16, Adam lr 2e-3; test NLL {res.test['nll_nats']:.1f} nats "
                  f"({res.test['bits_per_dim']:.3f} bits/dim)")
    if model.channels != 1 or model.levels != 256:
        raise SystemExit(f"the model must be 1-channel, 256-level (mnist); got {model.channels} "
                         f"channel(s), {model.levels} levels")

    t0 = time.time()
    mnist = load_dataset("mnist", "test").images[:a.limit]
    sets = {name: make_ood_set(name, mnist, model.levels, limit=a.limit) for name in a.sets}
    report = evaluate_ood(model, mnist, sets, columns=COLUMNS, batch_size=a.batch_size,
                          in_name="mnist test",
                          progress=lambda msg: print(msg, file=sys.stderr, flush=True))
    out.mkdir(parents=True, exist_ok=True)
    save_histogram(report, out / "ood-hist.png")
    scored = report.in_images + sum(r.images for r in report.results)

    print(f"\n{budget}.")
    print(f"Scored {scored} images in {time.time() - t0:.0f} s (batch {a.batch_size}). ROC-AUC / AUPR, "
          f"OOD = positive class, higher score = more anomalous; best ROC-AUC per row in bold.\n")
    print(report.table(title=False))
    print("\nWhich score wins (ROC-AUC, ties at 3 decimals shared):")
    wins = dict.fromkeys(report.columns, 0)
    for r in report.results:
        winners = r.winners()
        auc = {c: r.metrics[c]["roc_auc"] for c in report.columns}
        note = " (raw likelihood ranks this set as MORE likely than the test digits)" if auc["nll"] < 0.5 else ""
        if len(winners) == len(report.columns):
            print(f"- {r.name}: tie, every score {auc[winners[0]]:.3f}{note}")
            continue
        for c in winners:
            wins[c] += 1
        others = ", ".join(f"{c} {auc[c]:.3f}" for c in report.columns if c not in winners)
        print(f"- {r.name}: {' = '.join(winners)} ({auc[winners[0]]:.3f}); {others}{note}")
    print("- sets won outright or shared (ties of all scores not counted): "
          + ", ".join(f"{c} {n}" for c, n in wins.items()))
    print(f"\nhistogram: {out / 'ood-hist.png'}")


if __name__ == "__main__":
    main()
