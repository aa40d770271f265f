"""Cached sampling vs one teacher-forced forward pass vs naive sampling, per architecture and batch.

    python bench/sampling.py [--size 28] [--levels 256] [--hidden 64] [--layers 7] [--channels 1]
                             [--threads 2] [--batches 1 16 64] [--repeats 5] [--naive-steps 20]
                             [--naive-batch 16] [--archs pixelcnn row_lstm diagonal_bilstm]
                             [--device cpu|cuda] [--against OTHER_CHECKOUT] [--python-pass]

For each architecture and batch size: the time of ``model.sample`` (cached, the default method), the
time of one teacher-forced forward pass on a batch of the same size (``model.value_logits`` under
``torch.no_grad``), and their ratio: cached sampling computes every (layer, position) once, so the
ideal ratio is about 1. Forward and sampling are timed in interleaved rounds so that load on a
shared machine affects both alike; times and ratio are medians of ``--repeats``, and the last
column is the ratio of the fastest runs (min / min), which is less sensitive to other processes.

Naive sampling (one full forward pass per generated value, C·H·W passes) would take minutes, so it
is ESTIMATED at ``--naive-batch``: the time of ``--naive-steps`` naive steps (forward pass + value
choice), times C·H·W / steps. The speedup column is that estimate over the cached time.

``--against DIR``: before/after in ONE process (see ``bench/train_step.py``): the package of
another checkout builds each architecture with the same seed (so both sample the same images),
and ``model.sample`` of the two versions is timed in turn, the order alternating every round, at
each batch size; the table gives both medians and the median over the rounds of after / before.
``--python-pass``: the same table for the Python passes of the samplers (``PIXELRNN_NATIVE=0``
around each call) against the native ones, in this tree.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import torch

import pixelrnn
from pixelrnn.sampling.chooser import Chooser

from common import device_of, size_flags

ARCHS = ["pixelcnn", "row_lstm", "diagonal_bilstm"]


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(f, device: torch.device) -> float:
    sync(device)
    t0 = time.perf_counter()
    f()
    sync(device)
    return time.perf_counter() - t0


def naive_step_time(model, n: int, H: int, W: int, steps: int) -> float:
    """Seconds per naive step (one full teacher-forced pass + choosing the value), measured over
    ``steps`` steps in raster order."""
    C = model.channels
    device = model.device
    values = torch.zeros(n, C, H, W, dtype=torch.long, device=device)
    ch = Chooser(values, None, torch.Generator(device=device).manual_seed(0), 1.0, weights=False, record=False,
                 levels=model.levels, record_dtype=torch.float32)
    images = ch.images()
    positions = [(i, j, c) for i in range(H) for j in range(W) for c in range(C)][:steps]
    with torch.no_grad():
        model.value_logits(images.contiguous())  # warm-up
        sync(device)
        t0 = time.perf_counter()
        for i, j, c in positions:
            logits = model.value_logits(images.contiguous())[i, j, :, c]
            ch.choose(logits, c, i * W + j, i, i, W)
        sync(device)
        return (time.perf_counter() - t0) / len(positions)


def compare(a, device: torch.device) -> None:
    """Cached sampling of this tree against the checkout ``a.against``, interleaved."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from train_step import import_other
    other = import_other(a.against)
    H = W = a.size
    print(f"before: {a.against}; after: this tree; {a.repeats} interleaved rounds\n")
    print("| architecture | batch | before (ms) | after (ms) | after / before: median [min-max] over the rounds |")
    print("|---|---:|---:|---:|---:|")
    for arch in a.archs:
        models = {}
        for which, pkg in (("before", other), ("after", pixelrnn)):
            torch.manual_seed(0)
            models[which] = pkg.create_model(arch, channels=a.channels, levels=a.levels, hidden=a.hidden,
                                             layers=a.layers).to(device).eval()
        for n in a.batches:
            def draw(which):
                return models[which].sample(n, height=H, width=W,
                                            generator=torch.Generator(device=device).manual_seed(0))
            if not torch.equal(draw("before"), draw("after")):  # also the warm-up
                print(f"note: {arch} at batch {n}: the two versions drew different images")
            interleaved(arch, n, draw, a.repeats, device)


def interleaved(arch: str, n: int, draw, repeats: int, device: torch.device) -> None:
    """Time draw("before") and draw("after") in alternating order; print the table's row."""
    times = {"before": [], "after": []}
    for r in range(repeats):
        for which in (("before", "after") if r % 2 == 0 else ("after", "before")):
            times[which].append(timed(lambda: draw(which), device))
    b, t = times["before"], times["after"]
    ratio = [y / x for x, y in zip(b, t)]
    print(f"| {arch} | {n} | {statistics.median(b) * 1000:.0f} | {statistics.median(t) * 1000:.0f} "
          f"| {statistics.median(ratio):.2f} [{min(ratio):.2f}-{max(ratio):.2f}] |", flush=True)


def compare_passes(a, device: torch.device) -> None:
    """Cached sampling on the Python passes (PIXELRNN_NATIVE=0 around each call; the engines in
    sampling/) against the native ones (nn/native/sampling.cpp, diagonal.cpp), interleaved."""
    H = W = a.size
    print(f"before: the Python passes; after: the native passes; {a.repeats} interleaved rounds\n")
    print("| architecture | batch | before (ms) | after (ms) | after / before: median [min-max] over the rounds |")
    print("|---|---:|---:|---:|---:|")
    for arch in a.archs:
        torch.manual_seed(0)
        model = pixelrnn.create_model(arch, channels=a.channels, levels=a.levels, hidden=a.hidden,
                                      layers=a.layers).to(device).eval()
        for n in a.batches:
            def draw(which):
                os.environ["PIXELRNN_NATIVE"] = "0" if which == "before" else "1"
                try:
                    return model.sample(n, height=H, width=W, generator=torch.Generator(device=device).manual_seed(0))
                finally:
                    os.environ["PIXELRNN_NATIVE"] = "1"
            if not torch.equal(draw("before"), draw("after")):  # also the warm-up
                print(f"note: {arch} at batch {n}: the two passes drew different images")
            interleaved(arch, n, draw, a.repeats, device)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    size_flags(p, batch=None)
    p.add_argument("--channels", type=int, default=1)
    p.add_argument("--batches", type=int, nargs="+", default=[1, 16, 64])
    p.add_argument("--naive-steps", type=int, default=20)
    p.add_argument("--naive-batch", type=int, default=16)
    p.add_argument("--archs", nargs="+", default=ARCHS, choices=ARCHS)
    p.add_argument("--against", metavar="DIR", help="another checkout: before/after in one process")
    p.add_argument("--python-pass", action="store_true",
                   help="the Python passes against the native ones (before/after in one process)")
    a = p.parse_args(argv)
    device = device_of(p, a)
    if a.against:
        compare(a, device)
        return 0
    if a.python_pass:
        compare_passes(a, device)
        return 0
    H = W = a.size
    C = a.channels
    values = C * H * W
    print(f"`python bench/sampling.py {' '.join(sys.argv[1:] if argv is None else argv)}`".replace(" `", "`"))
    print(f"{H}x{W}, {C} channel(s), {a.levels} levels, h={a.hidden}, {a.layers} layers, "
          f"{torch.cuda.get_device_name(device) if device.type == 'cuda' else f'{a.threads} threads'}, torch {torch.__version__}, median of {a.repeats}; "
          f"naive = estimate from {a.naive_steps} steps x {values} values\n")
    print("| architecture | batch | forward pass (ms) | cached sampling (ms) | ratio | "
          "naive (est., s) | speedup vs naive | ratio (min/min) |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for arch in a.archs:
        torch.manual_seed(0)
        model = pixelrnn.create_model(arch, channels=C, levels=a.levels, hidden=a.hidden,
                                      layers=a.layers).to(device).eval()
        for n in a.batches:
            x = torch.randint(0, a.levels, (n, C, H, W), device=device)
            g = torch.Generator(device=device).manual_seed(0)
            with torch.no_grad():
                model.value_logits(x)  # warm-up
            model.sample(n, height=min(H, 4), width=W, generator=g)  # warm-up
            fwd, smp = [], []
            for _ in range(a.repeats):
                with torch.no_grad():
                    fwd.append(timed(lambda: model.value_logits(x), device))
                smp.append(timed(lambda: model.sample(n, height=H, width=W, generator=g), device))
            f, s = statistics.median(fwd), statistics.median(smp)
            naive = speedup = "-"
            if n == a.naive_batch:
                est = naive_step_time(model, n, H, W, a.naive_steps) * values
                naive, speedup = f"{est:.0f}", f"{est / s:.0f}x"
            print(f"| {arch} | {n} | {f * 1000:.0f} | {s * 1000:.0f} | {s / f:.2f} | {naive} | {speedup} "
                  f"| {min(smp) / min(fwd):.2f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
