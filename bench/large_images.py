"""Large images (issue 24 item 4): training-step time, peak training memory with and without
activation checkpointing, and cached sampling against one forward pass, per architecture and size.

    python bench/large_images.py [--archs pixelcnn row_lstm diagonal_bilstm multiscale]
                                 [--sizes 32 64 128] [--sample-sizes 32 64] [--multiscale-sizes 64]
                                 [--batch 8] [--hidden 64] [--layers 4] [--channels 3] [--levels 256]
                                 [--threads 2] [--repeats 3] [--device cpu|cuda]

Every (architecture, size) runs in fresh child processes, so that one configuration's memory
cannot hide in another's:

* **memory** (one child per setting of checkpointing): after the model and the batch exist (and
  one step on a single 8×8 image, which pays the one-time costs of a code path), the peak of one
  training step (forward + backward of the mean NLL) above that baseline. On the CPU
  this is the process's peak RSS above its RSS at the start of the step (the kernel's high-water
  mark ``VmHWM``, reset through ``/proc/self/clear_refs``), with glibc told to return every block
  of 64 KiB or more to the system at once (``mallopt``), so that RSS follows the memory in use; on
  a GPU ``torch.cuda.max_memory_allocated`` above the memory allocated before the step. The
  bytes the autograd graph keeps for the backward pass (``saved_tensors_hooks``, each storage
  counted once; with checkpointing only what is kept outside the recomputed bands) are
  reported beside it as a cross-check.
* **eval** (one child per setting): the peak of ``model.log_prob`` of ``--eval-batch`` images
  without gradients, as one pass over the whole image and in bands of rows (the default for large
  batches of large images), measured the same way (second table).
* **time** (one child): the training step without and with checkpointing in interleaved rounds
  (median of ``--repeats``), then, at the sizes of ``--sample-sizes``, one teacher-forced forward
  pass (``model.value_logits`` under ``no_grad``) and ``model.sample`` of the same batch, also
  interleaved; their ratio is the sampling column (1.0: sampling costs one forward pass).

The Multi-Scale model (``multiscale``, base ``row_lstm``) is measured at ``--multiscale-sizes``.
Sizes left out of ``--sample-sizes`` show "skipped" in the sampling columns (a 128×128 RGB
Diagonal BiLSTM samples 49 152 values one pixel at a time: minutes on a CPU).
"""
from __future__ import annotations

import argparse
import ctypes
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ARCHS = ["pixelcnn", "row_lstm", "diagonal_bilstm", "multiscale"]
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters


# ------------------------------------------------------------------------------------------
# The child: one measurement of one configuration, printed as JSON
# ------------------------------------------------------------------------------------------

def build(a):
    import torch

    import pixelrnn
    torch.manual_seed(0)
    options = {"base": "row_lstm"} if a.arch == "multiscale" else {}
    model = pixelrnn.create_model(a.arch, channels=a.channels, levels=a.levels, hidden=a.hidden,
                                  layers=a.layers, **options).to(a.device)
    x = torch.randint(0, a.levels, (a.batch, a.channels, a.size, a.size), device=a.device)
    return model, x


def train_step(model, x) -> None:
    import torch
    loss = -model.log_prob(x).mean()
    loss.backward()
    model.zero_grad(set_to_none=True)
    if x.device.type == "cuda":
        torch.cuda.synchronize()


def rss_status(key: str) -> int:
    """``key`` (VmRSS, VmHWM) of this process, bytes."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024
    raise KeyError(key)


def return_freed_memory() -> None:
    """glibc: serve blocks of 64 KiB and more by mmap and give the top of the heap back at once,
    so that freed tensors leave the RSS (the measurement's premise)."""
    libc = ctypes.CDLL("libc.so.6")
    libc.mallopt(M_MMAP_THRESHOLD, 64 << 10)
    libc.mallopt(M_TRIM_THRESHOLD, 128 << 10)
    libc.malloc_trim(0)


def peak_of(run, device: str) -> int:
    """Peak memory of ``run()`` above the memory in use before it (RSS on the CPU, allocated CUDA
    memory on a GPU)."""
    import torch
    if device == "cpu":
        base = rss_status("VmRSS")
        Path("/proc/self/clear_refs").write_text("5")  # VmHWM := VmRSS
    else:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    run()
    peak = rss_status("VmHWM") if device == "cpu" else torch.cuda.max_memory_allocated()
    return peak - base


def measure_memory(a) -> dict:
    """Peak memory of one training step above the baseline after model creation, and the bytes
    saved for the backward pass."""
    import torch
    if a.device == "cpu":
        return_freed_memory()
    model, x = build(a)
    model.train()
    model.set_checkpointing(a.checkpointing)
    train_step(model, x[:1, :, :8, :8])  # one-time costs (code paths, thread pools) before the baseline
    saved: dict[int, int] = {}

    def pack(t):
        s = t.untyped_storage()
        saved[s.data_ptr()] = s.nbytes()
        return t

    def step():
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            train_step(model, x)
    return {"peak": peak_of(step, a.device), "saved": sum(saved.values())}


def measure_eval_memory(a) -> dict:
    """Peak memory of the log-likelihoods of ``--eval-batch`` images without gradients (what an
    evaluation does per batch), in bands of rows (the default) or as one pass (``--whole``)."""
    import torch

    from pixelrnn.models.network import PixelNetwork
    if a.device == "cpu":
        return_freed_memory()
    if a.whole:
        PixelNetwork.band_values = 1 << 62  # never more than one band
    a.batch = a.eval_batch
    model, x = build(a)
    model.eval()
    with torch.no_grad():
        model.log_prob(x[:1, :, :8, :8])
        return {"peak": peak_of(lambda: model.log_prob(x), a.device)}


def timed(f, device: str) -> float:
    """Seconds of one call of ``f`` (on a GPU: to the end of its work)."""
    import torch
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    f()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return time.perf_counter() - t0


def measure_time(a) -> dict:
    """Training step without / with checkpointing (interleaved), and forward / cached sampling
    (interleaved, when ``a.sample``), medians of ``a.repeats`` in seconds."""
    import torch
    model, x = build(a)
    model.train()
    out: dict[str, list[float]] = {"step": [], "step_ckpt": [], "forward": [], "sample": []}
    for on in (False, True):  # warm-up
        model.set_checkpointing(on)
        train_step(model, x)
    for _ in range(a.repeats):
        for on, key in ((False, "step"), (True, "step_ckpt")):
            model.set_checkpointing(on)
            out[key].append(timed(lambda: train_step(model, x), a.device))
    if a.sample:
        model.eval()
        g = torch.Generator(device=a.device).manual_seed(0)
        with torch.no_grad():
            model.value_logits(x)  # warm-up
        model.sample(a.batch, height=min(a.size, 4), width=a.size, generator=g)
        for _ in range(a.repeats):
            with torch.no_grad():
                out["forward"].append(timed(lambda: model.value_logits(x), a.device))
            out["sample"].append(timed(lambda: model.sample(a.batch, height=a.size, width=a.size,
                                                                  generator=g), a.device))
    res = {k: statistics.median(v) for k, v in out.items() if v}
    res.update({f"{k}_all": v for k, v in out.items() if v})
    if a.sample:
        res["ratio_min"] = min(out["sample"]) / min(out["forward"])
    res["params"] = sum(p.numel() for p in model.parameters())
    return res


def child(a) -> int:
    import torch
    torch.set_num_threads(a.threads)
    res = {"memory": measure_memory, "eval": measure_eval_memory, "time": measure_time}[a.what](a)
    print(json.dumps(res))
    return 0


# ------------------------------------------------------------------------------------------
# The parent: children per configuration, one table
# ------------------------------------------------------------------------------------------

def run_child(a, what: str, arch: str, size: int, **extra) -> dict:
    cmd = [sys.executable, __file__, "--child", what, "--archs", arch, "--sizes", str(size),
           "--batch", str(a.batch), "--hidden", str(a.hidden), "--layers", str(a.layers),
           "--channels", str(a.channels), "--levels", str(a.levels), "--threads", str(a.threads),
           "--repeats", str(a.repeats), "--device", a.device]
    cmd += ["--checkpointing"] if extra.get("checkpointing") else []
    cmd += ["--whole"] if extra.get("whole") else []
    cmd += ["--eval-batch", str(a.eval_batch)]
    cmd += ["--sample"] if extra.get("sample") else []
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src") + os.pathsep + os.environ.get("PYTHONPATH", ""))
    r = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"{what} {arch} {size}: child failed\n{r.stderr[-3000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def configurations(a) -> list[tuple[str, int]]:
    out = []
    for arch in a.archs:
        sizes = a.multiscale_sizes if arch == "multiscale" else a.sizes
        out += [(arch, s) for s in sizes]
    return out


def row(a, arch: str, size: int) -> str:
    mem = {on: run_child(a, "memory", arch, size, checkpointing=on) for on in (False, True)}
    sample = size in a.sample_sizes
    t = run_child(a, "time", arch, size, sample=sample)
    mb = 1e6
    name = "multiscale (row_lstm)" if arch == "multiscale" else arch
    cells = [name, f"{size}²", f"{t['params']:,}", f"{t['step'] * 1000:.0f}", f"{t['step_ckpt'] * 1000:.0f}",
             f"{mem[False]['peak'] / mb:.0f}", f"{mem[True]['peak'] / mb:.0f}",
             f"{mem[False]['peak'] / mem[True]['peak']:.2f}x",
             f"{mem[False]['saved'] / mb:.0f} / {mem[True]['saved'] / mb:.0f}"]
    if sample:
        spread = "–".join(f"{v:.2f}" for v in (min(t["sample_all"]) / max(t["forward_all"]),
                                               max(t["sample_all"]) / min(t["forward_all"])))
        cells += [f"{t['forward'] * 1000:.0f}", f"{t['sample'] * 1000:.0f}",
                  f"**{t['sample'] / t['forward']:.2f}**", f"{t['ratio_min']:.2f}", spread]
    else:
        cells += ["skipped"] * 5
    return "| " + " | ".join(cells) + " |"


def parse(argv):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--archs", nargs="+", default=ARCHS, choices=ARCHS)
    p.add_argument("--sizes", type=int, nargs="+", default=[32, 64, 128])
    p.add_argument("--sample-sizes", type=int, nargs="+", default=[32, 64],
                   help="sizes whose sampling is timed (others: skipped)")
    p.add_argument("--multiscale-sizes", type=int, nargs="+", default=[64])
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--channels", type=int, default=3)
    p.add_argument("--levels", type=int, default=256)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    p.add_argument("--eval-batch", type=int, default=64,
                   help="batch of the evaluation-memory table (default 64, pixelrnn train's --eval-batch-size)")
    p.add_argument("--child", choices=["memory", "eval", "time"], dest="what", help=argparse.SUPPRESS)
    p.add_argument("--checkpointing", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--sample", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--whole", action="store_true", help=argparse.SUPPRESS)
    return p, p.parse_args(argv)


def main(argv=None) -> int:
    p, a = parse(argv)
    if a.what:
        a.arch, a.size = a.archs[0], a.sizes[0]
        return child(a)
    from pixelrnn.device import resolve_device
    try:
        a.device = resolve_device(a.device)
    except ValueError as e:
        p.error(str(e))
    import torch
    where = torch.cuda.get_device_name(a.device) if a.device.startswith("cuda") else f"{a.threads} threads"
    try:  # the LSTM scan's implementation (issue 25), where the package has a choice
        from pixelrnn.nn import native
        where += f"; LSTM scan: {native.status()}"
    except ImportError:
        pass
    print(f"`python bench/large_images.py {' '.join(sys.argv[1:] if argv is None else argv)}`".replace(" `", "`"))
    print(f"{'RGB' if a.channels == 3 else 'gray'}, {a.levels} levels, h={a.hidden}, {a.layers} layers, "
          f"batch {a.batch}, {where}, torch {torch.__version__}, medians of {a.repeats}; memory: peak "
          f"{'RSS' if a.device == 'cpu' else 'CUDA memory'} of one training step above the baseline "
          f"after model creation; saved: bytes kept for the backward pass (saved_tensors_hooks)\n")
    print("| architecture | size | params | step (ms) | step, ckpt (ms) | peak (MB) | peak, ckpt (MB) "
          "| memory cut | saved / ckpt (MB) | forward (ms) | cached sampling (ms) | ratio | ratio min/min "
          "| ratio range |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for arch, size in configurations(a):
        print(row(a, arch, size), flush=True)
    print(f"\nEvaluation without gradients (log_prob of a batch of {a.eval_batch}, what `pixelrnn train` "
          "evaluates per batch by default): peak above the baseline, one pass over the whole image "
          "against bands of rows (the default; `PixelNetwork.band_values`)\n")
    print("| architecture | size | peak, one pass (MB) | peak, bands (MB) | cut |")
    print("|---|---:|---:|---:|---:|")
    for arch, size in configurations(a):
        whole, bands = (run_child(a, "eval", arch, size, whole=w)["peak"] for w in (True, False))
        name = "multiscale (row_lstm)" if arch == "multiscale" else arch
        cut = f"{whole / bands:.2f}x" if bands > 0 else "–"
        print(f"| {name} | {size}² | {whole / 1e6:.0f} | {bands / 1e6:.0f} | {cut} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
