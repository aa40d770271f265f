"""Training on an ImageNet-sized memory-mapped .npy: start-up time and peak memory (issue 24 item 3).

    python bench/big_data.py [--path FILE.npy] [--keep] [--images 1281167] [--size 32] [--channels 3]
                             [--steps 50] [--batch 16] [--arch pixelcnn] [--hidden 16] [--layers 2]
                             [--threads 1] [--eval-limit 100] [--eval-every 25] [--runs cold warm]

Makes (or reuses, when ``--path`` names an existing file of the right shape) a synthetic uint8
``.npy`` of ``--images`` × C×S×S random images, written chunk by chunk through
``np.lib.format.open_memmap`` so that making it needs no more RAM than one chunk (1 281 167 ×
3×32×32 is 3.9 GB, the size of downsampled ImageNet 32×32). Then, for each of ``--runs``, it runs
``pixelrnn train --data npy:FILE`` in a child process for ``--steps`` steps (a small model, one
thread, the final and periodic evaluations on the first ``--eval-limit`` test images) and reports:

* start-up: from starting the child to the end of its first training step (the ``time`` of the
  first record of ``metrics.jsonl``, written with ``--log-every 1``; its ``elapsed`` is the first
  step alone); this includes starting Python and importing torch, which is also reported alone
  (``python -c "import torch, pixelrnn.training"``);
* peak RSS of the child (its ``VmHWM``, read from ``/proc/PID/status`` until it exits), and the
  peaks of its anonymous and file-backed resident memory (``RssAnon`` / ``RssFile``, polled every
  20 ms): the pages of the mapped file that were read count in RssFile;
* ms per step after the first.

Runs (``--runs``): ``cold``: the file's pages are first dropped from the page cache
(``posix_fadvise(DONTNEED)`` on this file only), so the run reads from disk; ``warm``: right after,
with whatever the page cache holds; ``small``: the same on a file of only ``--small`` images of
the same shape, made for the purpose: what start-up and memory cost whatever the data's size
(on a loaded machine the difference to it says more than the absolute times).
The file (default: ``$TMPDIR/pixelrnn-big-NxCxSxS.npy``) is deleted at the end unless ``--keep``
or unless it already existed (a kept file is reused by the next run).
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
CHUNK_BYTES = 256 << 20  # one chunk of the synthetic file in RAM at a time


def make_file(path: Path, shape: tuple[int, ...], seed: int = 0) -> float:
    """Write random uint8 images of ``shape`` (N, C, H, W) to the .npy ``path`` chunk by chunk;
    returns the seconds it took. ``open_memmap`` writes the header and sizes the file; each chunk
    is then mapped, written, flushed and unmapped alone, so this process never holds more than one
    chunk (its peak RSS is inherited by the children it starts: see ``MemoryWatch``)."""
    t0 = time.perf_counter()
    per_image = int(np.prod(shape[1:]))
    step = max(1, CHUNK_BYTES // per_image)
    rng = np.random.default_rng(seed)
    header = np.lib.format.open_memmap(path, mode="w+", dtype=np.uint8, shape=shape)
    offset = header.offset
    del header  # nothing written through it: no page touched
    for start in range(0, shape[0], step):
        stop = min(shape[0], start + step)
        chunk = np.memmap(path, dtype=np.uint8, mode="r+", offset=offset + start * per_image,
                          shape=(stop - start,) + shape[1:])
        chunk[:] = rng.integers(0, 256, size=chunk.shape, dtype=np.uint8)
        chunk.flush()
        del chunk
        drop_cache(path)  # the written pages leave the page cache as we go
    return time.perf_counter() - t0


def drop_cache(path: Path) -> None:
    """Ask the kernel to drop the page-cache pages of this one file (after writing them back)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def usable(path: Path, shape: tuple[int, ...]) -> bool:
    """Whether ``path`` is an .npy of uint8 images of ``shape``."""
    try:
        a = np.load(path, mmap_mode="r")
    except (OSError, ValueError):
        return False
    return a.dtype == np.uint8 and a.shape == shape


class MemoryWatch:
    """The peaks of RssAnon and RssFile (bytes) of process ``pid``, polled in a thread, and its
    VmHWM (the kernel's high-water mark of its RSS: exact, whenever it is read). ``ru_maxrss`` of
    ``wait4`` is not used: Linux carries the parent's high-water mark into a forked child."""

    def __init__(self, pid: int, every: float = 0.02):
        self.pid, self.every = pid, every
        self.peak = {"RssAnon": 0, "RssFile": 0, "VmHWM": 0}
        self.done = threading.Event()
        self.thread = threading.Thread(target=self.poll, daemon=True)
        self.thread.start()

    def poll(self) -> None:
        status = Path(f"/proc/{self.pid}/status")
        while not self.done.is_set():
            try:
                for line in status.read_text().splitlines():
                    key, _, value = line.partition(":")
                    if key in self.peak:
                        self.peak[key] = max(self.peak[key], int(value.split()[0]) * 1024)
            except (OSError, ValueError, IndexError):
                pass
            self.done.wait(self.every)

    def stop(self) -> dict[str, int]:
        self.done.set()
        self.thread.join()
        return self.peak


def train_once(a, data: Path, out: Path) -> dict:
    """One ``pixelrnn train`` child on ``data``: start-up (s), peak RSS (bytes), ms per step."""
    cmd = [sys.executable, "-m", "pixelrnn", "train", "--data", f"npy:{data}", "--arch", a.arch,
           "--hidden", str(a.hidden), "--layers", str(a.layers), "--batch-size", str(a.batch),
           "--steps", str(a.steps), "--threads", str(a.threads), "--eval-limit", str(a.eval_limit),
           "--eval-every", str(a.eval_every), "--eval-batch-size", str(a.eval_batch), "--log-every", "1",
           "--save-every", str(a.steps), "--no-progress", "--device", "cpu", "--out", str(out)]
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src") + os.pathsep + os.environ.get("PYTHONPATH", ""))
    t0 = time.time()
    child = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    watch = MemoryWatch(child.pid)
    output = child.stdout.read()
    _, status, _ = os.wait4(child.pid, 0)
    peaks = watch.stop()
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != 0:
        raise SystemExit(f"pixelrnn train failed (exit {child.returncode}):\n{output[-3000:]}")
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in records if "train_nll" in r]
    first, last = steps[0], steps[-1]
    per_step = (last["time"] - first["time"]) / max(1, last["step"] - first["step"])
    return {"startup": first["time"] - t0, "step1": first["elapsed"], "peak_rss": peaks["VmHWM"],
            "peak_anon": peaks["RssAnon"], "peak_file": peaks["RssFile"], "ms_per_step": per_step * 1000,
            "total": time.time() - t0, "test_images": [r.get("test_images") for r in records if "test_nll" in r]}


def import_time() -> float:
    """Seconds to start Python and import torch and pixelrnn.training, in a child."""
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src") + os.pathsep + os.environ.get("PYTHONPATH", ""))
    t0 = time.time()
    subprocess.run([sys.executable, "-c", "import torch, pixelrnn.training"], env=env, check=True)
    return time.time() - t0


def parse(argv) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--path", type=Path, help="the .npy to use (made there if missing or of another shape)")
    p.add_argument("--keep", action="store_true", help="keep the .npy at the end")
    p.add_argument("--images", type=int, default=1_281_167)
    p.add_argument("--size", type=int, default=32)
    p.add_argument("--channels", type=int, default=3)
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--arch", default="pixelcnn")
    p.add_argument("--hidden", type=int, default=16)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--eval-limit", type=int, default=100)
    p.add_argument("--eval-every", type=int, default=25)
    p.add_argument("--eval-batch", type=int, default=64, help="--eval-batch-size (the CLI's default: 64)")
    p.add_argument("--runs", nargs="+", choices=["cold", "warm", "small"], default=["cold", "warm", "small"])
    p.add_argument("--small", type=int, default=10_000, help="images of the 'small' reference file")
    p.add_argument("--rounds", type=int, default=1, help="run --runs this many times (one row each)")
    return p.parse_args(argv)


def table(a, path: Path, work: Path) -> None:
    """One row per run of ``a.runs``, ``a.rounds`` times."""
    print("| run | start-up to step 1 (s) | of which step 1 (s) | peak RSS (MB) | peak RssAnon (MB) "
          "| peak RssFile (MB) | ms/step | test images per evaluation |")
    print("|---|---:|---:|---:|---:|---:|---:|---|")
    small = work / "small.npy"
    for k in range(a.rounds * len(a.runs)):
        which, data = a.runs[k % len(a.runs)], path
        if which == "cold":
            drop_cache(path)
        elif which == "small":
            data = small
            if not small.exists():
                make_file(small, (a.small,) + tuple(np.load(path, mmap_mode="r").shape[1:]))
        r = train_once(a, data, work / f"run{k}")
        label = f"small ({a.small} images)" if which == "small" else f"{which} ({a.images} images)"
        print(f"| {label} | {r['startup']:.1f} | {r['step1']:.2f} | {r['peak_rss'] / 1e6:.0f} "
              f"| {r['peak_anon'] / 1e6:.0f} | {r['peak_file'] / 1e6:.0f} | {r['ms_per_step']:.0f} "
              f"| {r['test_images']} |", flush=True)


def main(argv=None) -> int:
    a = parse(argv)
    shape = (a.images, a.channels, a.size, a.size)
    work = Path(tempfile.mkdtemp(prefix="pixelrnn-bigdata-"))
    path = a.path or Path(tempfile.gettempdir()) / f"pixelrnn-big-{a.images}x{a.channels}x{a.size}x{a.size}.npy"
    existed = path.exists() and usable(path, shape)
    made = 0.0
    if not existed:
        path.parent.mkdir(parents=True, exist_ok=True)
        made = make_file(path, shape)
    print(f"`python bench/big_data.py {' '.join(sys.argv[1:] if argv is None else argv)}`".replace(" `", "`"))
    print(f"{path}: {a.images} x {a.channels}x{a.size}x{a.size} uint8, {path.stat().st_size / 1e9:.2f} GB"
          + (f", written in {made:.0f} s" if made else ", reused"))
    print(f"pixelrnn train: {a.arch} h={a.hidden} {a.layers} layers, batch {a.batch}, {a.steps} steps, "
          f"{a.threads} thread(s), --eval-limit {a.eval_limit} every {a.eval_every} steps (batches of "
          f"{a.eval_batch}); python + import torch, pixelrnn.training alone: {import_time():.1f} s\n")
    try:
        table(a, path, work)
    finally:
        if not (a.keep or existed):
            path.unlink(missing_ok=True)
        for f in sorted(work.rglob("*"), reverse=True):
            f.unlink() if f.is_file() else f.rmdir()
        work.rmdir()
    # the benchmark process itself stayed small too (one chunk while writing)
    print(f"\nthis script's own peak RSS: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e3:.0f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
