"""Training-step time per architecture and its ratio to PixelCNN, measured in one run.

    python bench/train_step.py [--batch 16] [--size 28] [--levels 256] [--hidden 64] [--layers 7]
                               [--threads 2] [--repeats 5] [--device cpu|cuda] [--precision fp32|bf16]
                               [--against OTHER_CHECKOUT]

One step = forward + backward of the mean NLL (no optimizer). The architectures are timed in
interleaved rounds and the median per architecture is reported, so that load on a shared machine
affects all of them alike. On a GPU every timing ends with ``torch.cuda.synchronize()``; bf16 is
autocast, as ``pixelrnn train --precision bf16`` does it.

``--against DIR``: before/after in ONE process. The package of another checkout (``DIR/src/pixelrnn``,
imported under the name ``pixelrnn_before``: the package's own imports are relative) builds each
architecture with the same seed, and the two versions are timed in turn, the order alternating
every round; the table gives both medians and the median over the rounds of after / before, with
its range. Load on a shared machine then affects both alike.
"""
from __future__ import annotations

import argparse
import contextlib
import importlib.util
import statistics
import sys
import time
from pathlib import Path

import torch

import pixelrnn

from common import device_of, size_flags

ARCHS = ["pixelcnn", "row_lstm", "diagonal_bilstm"]


def step(model, x, precision: str):
    autocast = (torch.autocast(x.device.type, dtype=torch.bfloat16) if precision == "bf16"
                else contextlib.nullcontext())
    with autocast:
        loss = -model.log_prob(x).mean()
    loss.backward()
    if x.device.type == "cuda":
        torch.cuda.synchronize()


def import_other(checkout: str, name: str = "pixelrnn_before"):
    """The pixelrnn package of another checkout, imported as ``name`` beside this one."""
    root = Path(checkout) / "src" / "pixelrnn"
    spec = importlib.util.spec_from_file_location(name, root / "__init__.py", submodule_search_locations=[str(root)])
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def compare(a, device: torch.device, other) -> None:
    """This tree against ``other`` (a pixelrnn package), interleaved; prints the table."""
    x = torch.randint(0, a.levels, (a.batch, 1, a.size, a.size), device=device)
    models = {}
    for arch in a.archs:
        for which, pkg in (("before", other), ("after", pixelrnn)):
            torch.manual_seed(0)
            models[arch, which] = pkg.create_model(arch, channels=1, levels=a.levels, hidden=a.hidden,
                                                   layers=a.layers).to(device)
            step(models[arch, which], x, a.precision)
    times = {k: [] for k in models}
    for r in range(a.repeats):
        for arch in a.archs:
            for which in (("before", "after") if r % 2 == 0 else ("after", "before")):
                m = models[arch, which]
                m.zero_grad(set_to_none=True)
                t0 = time.perf_counter()
                step(m, x, a.precision)
                times[arch, which].append(time.perf_counter() - t0)
    print(f"before: {a.against}; after: this tree; {a.repeats} interleaved rounds")
    print("| architecture | before (ms) | after (ms) | after / before: median [min-max] over the rounds |")
    print("|---|---:|---:|---:|")
    for arch in a.archs:
        b, t = times[arch, "before"], times[arch, "after"]
        r = [y / x for x, y in zip(b, t)]
        print(f"| {arch} | {statistics.median(b) * 1000:.1f} | {statistics.median(t) * 1000:.1f} "
              f"| {statistics.median(r):.2f} [{min(r):.2f}-{max(r):.2f}] |")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    size_flags(p)
    p.add_argument("--archs", nargs="+", default=ARCHS)
    p.add_argument("--precision", choices=["fp32", "bf16"], default="fp32")
    p.add_argument("--against", metavar="DIR", help="another checkout: before/after in one process")
    a = p.parse_args(argv)
    device = device_of(p, a)
    if a.against:
        compare(a, device, import_other(a.against))
        return 0
    torch.manual_seed(0)
    x = torch.randint(0, a.levels, (a.batch, 1, a.size, a.size), device=device)
    models = {arch: pixelrnn.create_model(arch, channels=1, levels=a.levels, hidden=a.hidden,
                                          layers=a.layers).to(device) for arch in a.archs}
    for m in models.values():  # warm-up (twice: the first CUDA step also sets up the kernels)
        step(m, x, a.precision)
        step(m, x, a.precision)
    times = {arch: [] for arch in a.archs}
    for _ in range(a.repeats):
        for arch, m in models.items():
            m.zero_grad(set_to_none=True)
            t0 = time.perf_counter()
            step(m, x, a.precision)
            times[arch].append(time.perf_counter() - t0)
    base = statistics.median(times["pixelcnn"]) if "pixelcnn" in times else None
    where = (torch.cuda.get_device_name(device) if device.type == "cuda" else f"{a.threads} threads")
    print(f"batch {a.batch}, {a.size}x{a.size}, {a.levels} levels, h={a.hidden}, {a.layers} layers, "
          f"{where}, {a.precision}, torch {torch.__version__}, median of {a.repeats}")
    print(f"| {'architecture':<16} | {'params':>8} | {'ms/step':>8} | {'images/s':>8} | {'vs PixelCNN':>11} |")
    print(f"|{'-' * 18}|{'-' * 10}|{'-' * 10}|{'-' * 10}|{'-' * 13}|")
    for arch, m in models.items():
        med = statistics.median(times[arch]) * 1000
        ratio = f"{med / (base * 1000):.2f}x" if base else "-"
        n = sum(p.numel() for p in m.parameters())
        print(f"| {arch:<16} | {n:>8} | {med:>8.1f} | {a.batch / med * 1000:>8.0f} | {ratio:>11} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
