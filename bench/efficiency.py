"""How close each architecture's training step runs to this machine's matrix-product peak.

    python bench/efficiency.py [--batch 16] [--size 28] [--levels 256] [--hidden 64] [--layers 7]
                               [--threads 2] [--repeats 7] [--gemm 2048] [--device cpu|cuda]
                               [--pytorch-scan]

One step = forward + backward of the mean NLL (no optimizer), as in ``bench/train_step.py``. Its
floating-point operations are counted once per architecture by
``torch.utils.flop_counter.FlopCounterMode`` (matrix products and convolutions; element-wise work
is not counted). The peak is a ``--gemm``² float32 matrix product timed in the same run: every
round times the sgemm (best of 3) and then one step of each architecture, so that load on a
shared machine affects them alike. Reported per architecture: GFLOP per step, ms, GFLOP/s, the
percentage of that round's sgemm rate, and the ratio to the PixelCNN step of the same round
(medians over the rounds, with the range min-max in brackets). ``--pytorch-scan`` adds rows for
the recurrent models with the LSTM scan's PyTorch version (PIXELRNN_NATIVE=0 for those steps),
timed in the same rounds.

The LSTM scan (``pixelrnn.nn.recurrence``) is a custom autograd Function; on the CPU it runs the
native kernel (``pixelrnn.nn.native``) when that is available, whose ops are registered with the
counter. The script checks both paths by counting one small scan of each geometry and comparing
with the analytic 3 x 2 x pixels x k*h x 4h (forward, the taps' gradient, the weight gradient);
a mismatch is printed as a warning.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

import pixelrnn
from pixelrnn.nn import recurrence

from common import device_of, size_flags

try:
    from pixelrnn.nn import native
except ImportError:  # a checkout from before the native kernel (PYTHONPATH=old/src: a before/after run)
    native = None

ARCHS = ["pixelcnn", "row_lstm", "diagonal_bilstm"]


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def train_step_scan(fn, scan: str | None) -> None:
    """fn() with ``scan`` = "pytorch": the LSTM scan's PyTorch version (PIXELRNN_NATIVE=0 meanwhile);
    None: the default."""
    old = os.environ.get("PIXELRNN_NATIVE")
    if scan == "pytorch":
        os.environ["PIXELRNN_NATIVE"] = "0"
    try:
        fn()
    finally:
        if scan == "pytorch":
            if old is None:
                del os.environ["PIXELRNN_NATIVE"]
            else:
                os.environ["PIXELRNN_NATIVE"] = old


def train_step(model, x, scan: str | None = None) -> None:
    """One forward + backward of the mean NLL (``scan``: see ``train_step_scan``)."""
    def step():
        model.zero_grad(set_to_none=True)
        loss = -model.log_prob(x).mean()
        loss.backward()
    train_step_scan(step, scan)


def counted_flops(fn) -> int:
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


def check_scan_counting(device: torch.device) -> str:
    """Count one small scan of each geometry, on the native kernel (when it runs here) and on the
    PyTorch version; return a line saying whether the counter saw every matrix product."""
    lines = []
    has_native = native is not None and device.type == "cpu" and native.usable_for(torch.zeros(1))
    paths = ["native", "pytorch"] if has_native else ["pytorch"]
    for path in paths:
        for name, D, k, geo in [("row", 1, 3, recurrence.RowGeometry(5, 6)),
                                ("diagonal", 2, 2, recurrence.DiagonalGeometry(5, 6))]:
            N, h = 3, 8
            pre = torch.randn(D, 5, 6, N, 4 * h, device=device, requires_grad=True)
            w = torch.randn(D, k * h, 4 * h, device=device, requires_grad=True)
            h0 = c0 = torch.zeros(h, device=device) if name == "row" else None
            step = (lambda: recurrence.lstm_scan(pre, w, h0, c0, geo).sum().backward())
            seen = counted_flops(lambda: train_step_scan(step, None if path == "native" else "pytorch"))
            analytic = 3 * 2 * D * 5 * 6 * N * k * h * 4 * h
            lines.append(f"{path} {name} {seen}/{analytic}")
            if seen != analytic:
                print(f"WARNING: FlopCounterMode counted {seen} FLOPs for a {name} scan ({path}), analytic "
                      f"{analytic}: the scan's matrix products are not all seen", file=sys.stderr)
    return "scan FLOPs counted/analytic: " + ", ".join(lines)


def time_gemm(a: torch.Tensor, device: torch.device) -> float:
    sync(device)
    t0 = time.perf_counter()
    torch.mm(a, a)
    sync(device)
    return time.perf_counter() - t0


def time_step(model, x, device: torch.device, scan: str | None) -> float:
    sync(device)
    t0 = time.perf_counter()
    train_step(model, x, scan)
    sync(device)
    return time.perf_counter() - t0


def fmt(values: list[float], spec: str) -> str:
    """median [min-max]"""
    return f"{statistics.median(values):{spec}} [{min(values):{spec}}-{max(values):{spec}}]"


def measure(runs: dict, x: torch.Tensor, a: argparse.Namespace, device: torch.device):
    """Interleaved rounds: per round the sgemm's time (best of 3) and each run's step time (s).
    ``runs``: label -> (model, scan)."""
    g = torch.randn(a.gemm, a.gemm, device=device)
    for m, scan in runs.values():  # warm-up (twice: the first CUDA step also sets up the kernels)
        train_step(m, x, scan)
        train_step(m, x, scan)
    time_gemm(g, device)
    gemm, steps = [], {label: [] for label in runs}
    for _ in range(a.repeats):
        gemm.append(min(time_gemm(g, device) for _ in range(3)))
        for label, (m, scan) in runs.items():
            steps[label].append(time_step(m, x, device, scan))
    return gemm, steps


def report(flops: dict, gemm: list, steps: dict, a, where: str) -> None:
    peak = [2 * a.gemm ** 3 / t / 1e9 for t in gemm]  # GFLOP/s per round
    print(f"batch {a.batch}, {a.size}x{a.size}, {a.levels} levels, h={a.hidden}, {a.layers} layers, {where}, "
          f"torch {torch.__version__}, {a.repeats} interleaved rounds: median [min-max]")
    print(f"sgemm {a.gemm}x{a.gemm}: {fmt(peak, '.0f')} GFLOP/s")
    print(f"| {'architecture':<30} | GFLOP/step | {'ms/step':>16} | {'GFLOP/s':>13} | "
          f"{'% of sgemm':>13} | {'vs PixelCNN':>17} |")
    print(f"|{'-' * 32}|{'-' * 11}:|{'-' * 17}:|{'-' * 14}:|{'-' * 14}:|{'-' * 18}:|")
    base = steps.get("pixelcnn")
    for label, times in steps.items():
        gf = flops[label] / 1e9
        rate = [gf / t for t in times]
        pct = [100 * r / p for r, p in zip(rate, peak)]
        ratio = fmt([t / b for t, b in zip(times, base)], ".2f") + "x" if base else "-"
        print(f"| {label:<30} | {gf:>10.3g} | {fmt([t * 1000 for t in times], '.0f'):>16} | "
              f"{fmt(rate, '.0f'):>13} | {fmt(pct, '.0f'):>13} | {ratio:>17} |")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    size_flags(p, repeats=7)
    p.add_argument("--gemm", type=int, default=2048, help="side of the square sgemm timed as the peak")
    p.add_argument("--archs", nargs="+", default=ARCHS, choices=ARCHS)
    p.add_argument("--pytorch-scan", action="store_true",
                   help="also time the recurrent models with the LSTM scan's PyTorch version (CPU)")
    a = p.parse_args(argv)
    device = device_of(p, a)
    torch.manual_seed(0)
    x = torch.randint(0, a.levels, (a.batch, 1, a.size, a.size), device=device)
    runs = {}
    for arch in a.archs:
        m = pixelrnn.create_model(arch, channels=1, levels=a.levels, hidden=a.hidden, layers=a.layers).to(device)
        runs[arch] = (m, None)
        if a.pytorch_scan and arch != "pixelcnn" and device.type == "cpu":
            runs[f"{arch} (PyTorch scan)"] = (m, "pytorch")
    status = native.status() if native is not None else "pure PyTorch (no native kernel in this checkout)"
    print(check_scan_counting(device) + f"; LSTM scan on the CPU: {status}")  # loads the kernel first
    flops = {label: counted_flops(lambda: train_step(m, x, scan)) for label, (m, scan) in runs.items()}
    gemm, steps = measure(runs, x, a, device)
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else f"{a.threads} threads"
    report(flops, gemm, steps, a, where)
    return 0


if __name__ == "__main__":
    sys.exit(main())
