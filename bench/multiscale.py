"""Multi-scale vs single-scale PixelRNN at the same training time: test bits/dim and sample grids.

    .venv/bin/python bench/multiscale.py [--minutes 3] [--threads 2] [--base pixelcnn]
        [--datasets photos32 mnist] [--hidden 32] [--layers 5] [--samples 16] [--png-dir bench]

For every dataset two models are trained for the same training time (``--minutes`` of forward,
backward and optimizer steps each; data loading of a batch included, evaluation excluded), with the
same hidden size, layers, batch, initialisation seed, data order, Adam learning rate and gradient
clipping (1.0, as the trainer): the single-scale base (``arch=BASE``) and the multi-scale model
(``arch="multiscale", base=BASE, factor=2``), whose step costs more (its small stage and context
path), so it gets fewer steps. The machine is shared and its load changes by the minute, so the two
models train in interleaved time slices of a few seconds (single, multi, single, ...), each slice
timed and charged to its model: both see the same background load. The table gives the exact test
NLL in bits/dim of the final weights (``pixelrnn.evaluate``). Then ``--samples`` images are drawn
from each model with the same seed (cached sampler; two-stage for the multi-scale one) and written
side by side, single-scale | multi-scale, to ``PNG_DIR/multiscale_<data>.png`` (enlarged 2× when
the file stays under 100 KB), so that a reader can judge global coherence.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

import pixelrnn
from pixelrnn.data import load_dataset
from pixelrnn.evaluate import evaluate
from pixelrnn.imaging import as_rgb, grid, to_uint8

MAX_PNG_BYTES = 100_000


def labelled_pair(left: np.ndarray, right: np.ndarray, labels: tuple[str, str], scale: int) -> Image.Image:
    """Two (H, W, 3) uint8 grids side by side, enlarged ``scale``×, each with a caption above."""
    imgs = [Image.fromarray(a).resize((a.shape[1] * scale, a.shape[0] * scale), Image.NEAREST)
            for a in (left, right)]
    gap, top = 8, 14
    w = imgs[0].width + gap + imgs[1].width
    h = top + max(i.height for i in imgs)
    out = Image.new("RGB", (w, h), (255, 255, 255))
    draw = ImageDraw.Draw(out)
    x = 0
    for img, label in zip(imgs, labels):
        out.paste(img, (x, top))
        draw.text((x + 1, 1), label, fill=(0, 0, 0))
        x += img.width + gap
    return out


def save_small_png(make, path: Path) -> int:
    """Write the largest enlargement (2×, else 1×) whose PNG stays under MAX_PNG_BYTES."""
    for scale in (2, 1):
        make(scale).save(path, format="PNG", optimize=True)
        if path.stat().st_size < MAX_PNG_BYTES:
            break
    return scale


class Trainee:
    """One model with its optimizer, data order and the training time charged to it."""

    def __init__(self, model, images: torch.Tensor, batch: int, lr: float, seed: int):
        self.model, self.images, self.batch = model, images, batch
        self.opt = torch.optim.Adam(model.parameters(), lr=lr)
        self.gen = torch.Generator().manual_seed(seed)  # the same data order for every model
        self.order, self.pos = None, 0
        self.steps, self.seconds = 0, 0.0
        self.dims = images[0].numel()

    def step(self) -> None:
        if self.order is None or self.pos + self.batch > len(self.order):
            self.order, self.pos = torch.randperm(len(self.images), generator=self.gen), 0
        x = self.images[self.order[self.pos:self.pos + self.batch]].long()
        self.pos += self.batch
        loss = -self.model.log_prob(x).mean() / self.dims
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
        self.opt.step()
        self.steps += 1


def train_interleaved(trainees: list[Trainee], seconds: float, slice_s: float = 5.0) -> None:
    """Train every model for ``seconds`` of its own (timed) steps, in turns of about ``slice_s``."""
    for t in trainees:
        t.model.train()
    while any(t.seconds < seconds for t in trainees):
        for t in trainees:
            t0 = time.perf_counter()
            while t.seconds + (time.perf_counter() - t0) < seconds and time.perf_counter() - t0 < slice_s:
                t.step()
            t.seconds += time.perf_counter() - t0


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--minutes", type=float, default=3.0, help="training time per model")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--base", default="pixelcnn", choices=["pixelcnn", "row_lstm", "diagonal_bilstm"])
    p.add_argument("--datasets", nargs="+", default=["photos32", "mnist"])
    p.add_argument("--hidden", type=int, default=32)
    p.add_argument("--layers", type=int, default=5)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--samples", type=int, default=16)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="runs/multiscale", help="checkpoints of the trained models")
    p.add_argument("--png-dir", default="bench")
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    rows = []
    for data in a.datasets:
        train_ds, test_ds = load_dataset(data, "train"), load_dataset(data, "test")
        C, H, W, levels = train_ds.channels, train_ds.height, train_ds.width, train_ds.levels
        names = [a.base, f"multiscale-{a.base}"]
        trainees = []
        for arch in (a.base, "multiscale"):
            torch.manual_seed(a.seed)
            opts = {"base": a.base, "factor": 2} if arch == "multiscale" else {}
            model = pixelrnn.create_model(arch, channels=C, levels=levels, hidden=a.hidden,
                                          layers=a.layers, **opts)
            trainees.append(Trainee(model, train_ds.images, a.batch_size, a.lr, a.seed))
        train_interleaved(trainees, a.minutes * 60)
        grids, labels = [], []
        for name, t in zip(names, trainees):
            model = t.model.eval()
            pixelrnn.save(model, Path(a.out) / f"{data}-{name}.safetensors",
                          metadata={"image_size": f"{H}x{W}", "steps": t.steps})
            res = evaluate(model, test_ds.images, batch_size=50)
            params = sum(q.numel() for q in model.parameters())
            model.sample(1, height=2, width=2)  # warm-up (first-call costs)
            t0 = time.perf_counter()
            s = model.sample(a.samples, height=H, width=W,
                             generator=torch.Generator().manual_seed(a.seed))
            t_sample = time.perf_counter() - t0
            grids.append(grid(as_rgb(to_uint8(s, levels)), gap=1))
            labels.append("multi-scale (f=2)" if name.startswith("multiscale") else "single-scale")
            rows.append((data, name, params, t.steps, 1000 * t.seconds / max(1, t.steps),
                         res.bits_per_dim, t_sample))
            print(f"{data} {name}: {t.steps} steps in {t.seconds:.0f} s, test "
                  f"{res.bits_per_dim:.4f} bits/dim, {a.samples} samples in {t_sample:.1f} s", flush=True)
        png = Path(a.png_dir) / f"multiscale_{data}.png"
        png.parent.mkdir(parents=True, exist_ok=True)
        scale = save_small_png(lambda k: labelled_pair(grids[0], grids[1], tuple(labels), k), png)
        print(f"wrote {png} ({png.stat().st_size / 1000:.0f} KB, {scale}x)", flush=True)
    print(f"\n{a.minutes:g} min of training per model (interleaved), {a.threads} threads, batch "
          f"{a.batch_size}, Adam lr {a.lr}, grad clip 1.0, h = {a.hidden}, {a.layers} layers, seed {a.seed}")
    print("| data | model | parameters | steps | ms/step | test bits/dim | "
          f"{a.samples} samples (cached) |")
    print("|---|---|---|---|---|---|---|")
    for data, name, params, steps, ms, bpd, ts in rows:
        print(f"| {data} | {name} | {params:,} | {steps} | {ms:.0f} | {bpd:.4f} | {ts:.1f} s |")


if __name__ == "__main__":
    main()
