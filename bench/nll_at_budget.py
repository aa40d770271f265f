"""Test NLL on binarized MNIST after a fixed CPU training budget, per architecture.

    python bench/nll_at_budget.py [--minutes 10] [--threads 2] [--configs NAME ...] [--out runs/budget]

Each configuration trains with `pixelrnn train --max-minutes M` (the budget includes the periodic
exact test evaluations) and reports the exact NLL of the 1000 test digits of the final weights,
in nats per image (the paper's unit; its Diagonal BiLSTM reaches 79.20 after full training), and
the learning curve (test NLL at each evaluation).
"""
from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from pixelrnn.training import TrainConfig, train

CONFIGS = {
    "diagonal_bilstm-h16-l7": dict(arch="diagonal_bilstm", hidden=16, layers=7),
    "row_lstm-h16-l7": dict(arch="row_lstm", hidden=16, layers=7),
    "pixelcnn-h32-l7": dict(arch="pixelcnn", hidden=32, layers=7),
    # other sizes (bench/README.md, "Other sizes"): wider, shallower recurrent stacks use the
    # cores better than deep narrow ones; a wider PixelCNN
    "row_lstm-h48-l3": dict(arch="row_lstm", hidden=48, layers=3),
    "row_lstm-h48-l2": dict(arch="row_lstm", hidden=48, layers=2),
    "diagonal_bilstm-h32-l3": dict(arch="diagonal_bilstm", hidden=32, layers=3),
    "pixelcnn-h64-l7": dict(arch="pixelcnn", hidden=64, layers=7),
}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--minutes", type=float, default=10.0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--lr-schedule", default="cosine", choices=["constant", "cosine", "linear"],
                   help="over the time budget (default cosine, as in the demo)")
    p.add_argument("--eval-every", type=int, default=250)
    p.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    p.add_argument("--out", default="runs/budget")
    a = p.parse_args(argv)
    rows = []
    for name in a.configs:
        out = Path(a.out) / name
        shutil.rmtree(out, ignore_errors=True)
        cfg = TrainConfig(out=str(out), data="binarized-mnist", batch_size=a.batch_size, lr=a.lr,
                          lr_schedule=a.lr_schedule,
                          max_minutes=a.minutes, eval_every=a.eval_every, save_every=10**9,
                          eval_batch_size=100, threads=a.threads, progress=False, **CONFIGS[name])
        res = train(cfg)
        curve = [(r["step"], round(r["test_nll"], 2)) for r in map(json.loads, (out / "metrics.jsonl").read_text().splitlines())
                 if "test_nll" in r]
        rows.append((name, res.step, res.test["nll_nats"], res.test["bits_per_dim"], curve))
        print(f"{name}: {res.step} steps, test NLL {res.test['nll_nats']:.2f}", flush=True)
    print(f"\nbinarized-mnist, {a.minutes:g} min of training, {a.threads} threads, batch {a.batch_size}, "
          f"Adam lr {a.lr} ({a.lr_schedule})")
    print("| configuration | steps | test NLL (nats) | bits/dim | curve: (step, test NLL) |")
    print("|---|---|---|---|---|")
    for name, steps, nll, bpd, curve in rows:
        print(f"| {name} | {steps} | {nll:.2f} | {bpd:.4f} | {' '.join(f'({s}, {v})' for s, v in curve)} |")


if __name__ == "__main__":
    main()
