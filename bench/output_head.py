"""Categorical output against a mixture of discretized logistics, at the same training budget.

    python bench/output_head.py --data photos32 --arch pixelcnn --hidden 32 --layers 5 --minutes 15 \
        --mixtures 0 10 [--eval-every 500] [--out runs/output_head]

Trains the same model once per ``--mixtures`` value (0 = the categorical head) with
``pixelrnn train``, all runs at the same time, one thread each, with ``OMP_WAIT_POLICY=PASSIVE`` (so
that the runs see the same machine load; on 2 cores give at most two values), Adam with a cosine
decay over the budget, and prints the exact test bits/dim at every evaluation and at the end.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pixelrnn


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default="photos32")
    p.add_argument("--arch", default="pixelcnn")
    p.add_argument("--hidden", type=int, default=32)
    p.add_argument("--layers", type=int, default=5)
    p.add_argument("--mixtures", type=int, nargs="+", default=[0, 10])
    p.add_argument("--minutes", type=float, default=15.0)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--eval-every", type=int, default=500)
    p.add_argument("--out", default="runs/output_head")
    a = p.parse_args(argv)
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE"}
    jobs = {}
    for k in a.mixtures:
        out = Path(a.out) / f"{a.data}-{a.arch}-h{a.hidden}-l{a.layers}-k{k}"
        shutil.rmtree(out, ignore_errors=True)
        cmd = [sys.executable, "-m", "pixelrnn", "train", "--data", a.data, "--arch", a.arch,
               "--hidden", str(a.hidden), "--layers", str(a.layers), "--mixtures", str(k),
               "--lr", str(a.lr), "--lr-schedule", "cosine", "--batch-size", str(a.batch_size),
               "--max-minutes", str(a.minutes), "--eval-every", str(a.eval_every),
               "--eval-batch-size", "100", "--threads", "1", "--no-progress", "--out", str(out)]
        jobs[k] = (out, subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    rows = []
    for k, (out, proc) in jobs.items():
        log, _ = proc.communicate()
        if proc.returncode != 0:
            sys.exit(f"--mixtures {k} failed (exit {proc.returncode}):\n{log}")
        records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
        curve = [(r["step"], r["test_bpd"]) for r in records if "test_bpd" in r]
        params = sum(t.numel() for t in pixelrnn.load(out / "last.safetensors").parameters())
        rows.append((k, params, curve))
    print(f"\n{a.data}, {a.arch} h={a.hidden} l={a.layers}, {a.minutes:g} min each (concurrently, 1 thread "
          f"each), batch {a.batch_size}, Adam lr {a.lr} cosine")
    print("| output | parameters | steps | test bits/dim at the end | curve: (step, test bits/dim) |")
    print("|---|---:|---:|---:|---|")
    for k, params, curve in rows:
        name = "categorical" if k == 0 else f"{k} logistics"
        print(f"| {name} | {params:,} | {curve[-1][0]} | {curve[-1][1]:.4f} | "
              + " ".join(f"({s}, {v:.4f})" for s, v in curve) + " |")


if __name__ == "__main__":
    main()
