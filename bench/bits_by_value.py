"""Where a model's code length goes: the test split's bits, grouped by the true value.

    python bench/bits_by_value.py CHECKPOINT [--data mnist] [--split test] [--threads 1]

Each value's cost is -log2 p(value | everything before it), the exact teacher-forced conditional;
their sum is the model's NLL (and, within the coder's overhead, the size of a `pixelrnn compress`
file). Values are grouped by range: 0, the low half, the high half without the top 2 %, and the
top 2 % (for 256 levels: 0, 1-127, 128-250, 251-255; each value alone for 16 levels or fewer),
plus the zeros whose 5×5 neighbourhood is all zero ("background"). Prints a Markdown table.
"""
from __future__ import annotations

import argparse
import math

import torch

import pixelrnn
from pixelrnn.data import load_dataset


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("checkpoint")
    ap.add_argument("--data", default="mnist")
    ap.add_argument("--split", default="test")
    ap.add_argument("--batch-size", type=int, default=100)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    model = pixelrnn.load(args.checkpoint)
    x = load_dataset(args.data, args.split).images.long()  # (N, C, H, W)
    with torch.no_grad():
        bits = torch.cat([-model.value_log_probs(x[i:i + args.batch_size]) / math.log(2)
                          for i in range(0, len(x), args.batch_size)])  # (N, C, H, W)
    total = float(bits.sum())
    top = model.levels - 1
    hi = top - max(1, round(0.02 * model.levels))  # the top 2 % of the levels
    mid = (top + 1) // 2
    nonzero = (x > 0).float().amax(1, keepdim=True)  # (N, 1, H, W)
    near = torch.nn.functional.max_pool2d(nonzero, 5, 1, 2) > 0
    groups = [("0", x == 0), ("background 0 (5×5 all 0)", (x == 0) & ~near)]
    if model.levels <= 16:  # few levels: every value on its own
        groups += [(str(v), x == v) for v in range(1, model.levels)]
    else:
        groups += [(f"1-{mid - 1}", (x > 0) & (x < mid)), (f"{mid}-{hi}", (x >= mid) & (x <= hi)),
                   (f"{hi + 1}-{top}" if hi + 1 < top else str(top), x > hi)]
    print(f"{args.checkpoint} on {args.data}/{args.split}: {len(x)} images, "
          f"{total / x.numel():.4f} bits/dim\n")
    print("| true value | share of values | share of bits | bits per value |")
    print("|---|---:|---:|---:|")
    for name, mask in groups:
        n = int(mask.sum())
        b = float(bits[mask].sum())
        print(f"| {name} | {n / x.numel():.1%} | {b / total:.1%} | "
              f"{b / n if n else float('nan'):.3f} |")


if __name__ == "__main__":
    main()
