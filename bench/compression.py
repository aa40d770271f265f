"""Lossless compression with a trained model against classical codecs, in bits per value (dim).

    python bench/compression.py [--datasets mnist binarized-mnist photos32] [--minutes 4]
    python bench/compression.py --checkpoint mnist=runs/anomaly-bench/last.safetensors --minutes 4
    python bench/compression.py --minutes 4 --budget mnist=10 --train-threads 1

For each dataset's test split (mnist, binarized-mnist: 1000 digits; photos32: 386 RGB patches):
a model is taken from ``--checkpoint DATASET=PATH`` or trained for ``--minutes`` of wall time
(``--budget DATASET=MINUTES`` overrides it per dataset)
(PixelCNN h=32, 5 layers, kernel 3; batch 16, Adam lr 2e-3 with a cosine decay over the budget,
which includes the trainer's final test evaluation) into ``<out>/<dataset>``; ``--minutes 0``
skips the datasets without a checkpoint (classical codecs only). Then:

ours
    ``pixelrnn.compression.encode`` of the whole split into ONE file: its total size (header
    included) in bits per value; the round trip is decoded and checked bit-exact. Encode and decode
    speed in images/s (``--threads``, default 1: on a shared 2-core machine one thread is both
    faster and steadier), ``--chunk`` images per cached-sampler batch.
model NLL
    the exact test NLL of the model (teacher-forced forward pass), bits/dim; overhead = ours / NLL - 1.
PNG
    per image, Pillow ``optimize=True`` (1-bit PNG for 2-level data), the sum of the file sizes;
    "mosaic": all images tiled into one near-square PNG (no gaps; empty cells are 0).
WebP
    lossless (Pillow, ``lossless=True, quality=100, method=6``), per image and as the mosaic;
    2-level data as 0/255 gray.
lzma
    ``lzma.compress(preset=9 | PRESET_EXTREME)`` of the raw values (one byte each, 0/1 for 2-level
    data) of consecutive batches of 100 images; the sum.
JPEG-XL
    lossless (effort 9) on the mosaic of the whole split, and "/100" on the mosaics of consecutive
    batches of 100 images (10×10, as in SPEC §3), when ``imagecodecs`` with JPEG-XL is installed
    (requirements.txt pins it), else n/a.

Prints the Markdown table, the models used and the exact budget. Every size counts whole files
(headers included), divided by the number of values (N * C * H * W).
"""
from __future__ import annotations

import argparse
import io
import lzma
import math
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image, features

from pixelrnn.compression import encode, decompress
from pixelrnn.data import load_dataset
from pixelrnn.checkpoint import load
from pixelrnn.train import TrainConfig, train

DATASETS = ["mnist", "binarized-mnist", "photos32"]
MODEL = dict(arch="pixelcnn", hidden=32, layers=5, kernel=3)


# --------------------------------------------------------------------------------------------
# Classical codecs: bytes for the whole split
# --------------------------------------------------------------------------------------------

def _pil(image: np.ndarray, levels: int) -> Image.Image:
    """(C, H, W) values -> a Pillow image: 1-bit for 2 levels, else L / RGB."""
    a = image.transpose(1, 2, 0)
    if levels == 2:
        return Image.fromarray((a[:, :, 0] * 255).astype(np.uint8)).convert("1")
    return Image.fromarray(a[:, :, 0] if a.shape[2] == 1 else a)


def _size(img: Image.Image, fmt: str, **kw) -> int:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.tell()


def mosaic(images: np.ndarray) -> np.ndarray:
    n, c, h, w = images.shape
    ncol = math.ceil(math.sqrt(n))
    nrow = math.ceil(n / ncol)
    out = np.zeros((c, nrow * h, ncol * w), dtype=images.dtype)
    for k in range(n):
        r, q = divmod(k, ncol)
        out[:, r * h:(r + 1) * h, q * w:(q + 1) * w] = images[k]
    return out


def png_bytes(images, levels) -> int:
    return sum(_size(_pil(im, levels), "PNG", optimize=True) for im in images)


def webp_bytes(images, levels) -> int:
    def one(im):
        img = _pil(im, levels)
        return _size(img.convert("L") if levels == 2 else img, "WEBP", lossless=True, quality=100, method=6)
    return sum(one(im) for im in images)


def lzma_bytes(images, batch: int = 100) -> int:
    return sum(len(lzma.compress(np.ascontiguousarray(images[a:a + batch]).tobytes(),
                                 preset=9 | lzma.PRESET_EXTREME)) for a in range(0, len(images), batch))


def jxl_bytes(images, levels, batch: int | None = None) -> int | None:
    """JPEG-XL lossless (effort 9) of the mosaic of all images, or with ``batch`` of the mosaics
    of consecutive batches of that many images (the sum)."""
    try:
        import imagecodecs
        if not imagecodecs.JPEGXL.available:
            return None
    except (ImportError, AttributeError):
        return None
    if batch is not None:
        return sum(jxl_bytes(images[a:a + batch], levels) for a in range(0, len(images), batch))
    m = mosaic(images).transpose(1, 2, 0)
    m = (m * 255).astype(np.uint8) if levels == 2 else m
    return len(imagecodecs.jpegxl_encode(m[:, :, 0] if m.shape[2] == 1 else m, lossless=True, effort=9))


# --------------------------------------------------------------------------------------------
# Models
# --------------------------------------------------------------------------------------------

def get_model(name: str, ckpt: str | None, minutes: float, a) -> tuple[torch.nn.Module | None, str]:
    if ckpt:
        model = load(ckpt)
        c = model.config
        return model, f"checkpoint {ckpt} ({c.arch}, h={c.hidden}, {c.layers} layers)"
    if minutes <= 0:
        return None, "no model (budget 0 minutes)"
    out = Path(a.out) / name
    shutil.rmtree(out, ignore_errors=True)
    cfg = TrainConfig(out=str(out), data=name, batch_size=16, lr=2e-3, max_minutes=minutes,
                      lr_schedule="cosine", eval_every=10**9, save_every=10**9, eval_batch_size=100,
                      threads=a.train_threads, progress=False, seed=a.seed, **MODEL)
    print(f"training {MODEL} on {name} for {minutes:g} min ...", file=sys.stderr, flush=True)
    res = train(cfg)
    model = load(out / "last.safetensors")
    return model, (f"PixelCNN h={MODEL['hidden']}, {MODEL['layers']} layers, kernel {MODEL['kernel']}, "
                   f"trained here for {minutes:g} min on {a.train_threads} CPU threads: {res.step} steps "
                   f"of batch 16, Adam lr 2e-3 cosine-decayed over the budget -> {out / 'last.safetensors'}")


def model_nll_bpd(model, x: torch.Tensor, batch: int = 100) -> float:
    with torch.no_grad():
        nats = sum(float(-model.log_prob(x[a:a + batch]).double().sum()) for a in range(0, len(x), batch))
    return nats / (math.log(2) * x.numel())


# --------------------------------------------------------------------------------------------

def fmt(v, digits=3) -> str:
    return "n/a" if v is None else f"{v:.{digits}f}"


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--datasets", nargs="+", default=DATASETS, choices=DATASETS)
    p.add_argument("--checkpoint", action="append", default=[], metavar="DATASET=PATH",
                   help="use this model for DATASET instead of training one (repeatable)")
    p.add_argument("--minutes", type=float, default=4.0, help="training budget per dataset (4)")
    p.add_argument("--budget", action="append", default=[], metavar="DATASET=MINUTES",
                   help="training budget for one dataset (overrides --minutes; repeatable)")
    p.add_argument("--out", default="runs/compression-bench")
    p.add_argument("--limit", type=int, help="only the first N test images (default all)")
    p.add_argument("--threads", type=int, default=1, help="torch threads for coding (1)")
    p.add_argument("--train-threads", type=int, default=1, help="torch threads for training (1)")
    p.add_argument("--chunk", type=int, default=128, help="images per cached-sampler batch (128)")
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    ckpts = {}
    for item in a.checkpoint:
        name, sep, path = item.partition("=")
        if not sep or name not in DATASETS:
            p.error(f"--checkpoint expects DATASET=PATH with DATASET in {DATASETS}, got {item!r}")
        ckpts[name] = path
    budgets = {}
    for item in a.budget:
        name, sep, minutes = item.partition("=")
        try:
            budgets[name] = float(minutes)
        except ValueError:
            sep = ""
        if not sep or name not in DATASETS:
            p.error(f"--budget expects DATASET=MINUTES with DATASET in {DATASETS}, got {item!r}")

    rows, notes = [], []
    for name in a.datasets:
        ds = load_dataset(name, "test")
        x = ds.images[:a.limit] if a.limit else ds.images
        arr = x.numpy()
        L = ds.levels
        t0 = time.time()
        c = {"png": png_bytes(arr, L), "png mosaic": png_bytes(mosaic(arr)[None], L),
             "webp": webp_bytes(arr, L) if features.check("webp") else None,
             "webp mosaic": webp_bytes(mosaic(arr)[None], L) if features.check("webp") else None,
             "lzma/100": lzma_bytes(arr), "jpeg-xl mosaic/100": jxl_bytes(arr, L, 100),
             "jpeg-xl mosaic": jxl_bytes(arr, L)}
        dims = arr.size
        bpd = {k: (None if v is None else 8 * v / dims) for k, v in c.items()}
        best_name = min((k for k in bpd if bpd[k] is not None), key=lambda k: bpd[k])
        print(f"{name}: classical codecs in {time.time() - t0:.0f} s", file=sys.stderr, flush=True)

        model, how = get_model(name, ckpts.get(name), budgets.get(name, a.minutes), a)
        row = {"dataset": f"{name} test ({len(x)} × {'×'.join(map(str, arr.shape[1:]))}, {L} levels)",
               **bpd, "best": best_name}
        if model is not None:
            torch.set_num_threads(a.threads)
            xs = x.long()
            nll = model_nll_bpd(model, xs)
            t = time.perf_counter()
            enc = encode(model, xs, chunk=a.chunk)
            te = time.perf_counter() - t
            t = time.perf_counter()
            out = decompress(model, enc.data)
            td = time.perf_counter() - t
            exact = all(torch.equal(im, d.image) for im, d in zip(xs, out))
            if not exact:
                raise SystemExit(f"{name}: the round trip is not bit-exact")
            row.update(ours=enc.bits_per_dim, nll=nll, overhead=enc.bits_per_dim / nll - 1,
                       saving=1 - enc.bits_per_dim / bpd[best_name], enc=len(x) / te, dec=len(x) / td,
                       bytes=len(enc.data), header=enc.header_bytes)
            notes.append(f"- {name}: {how}; file {len(enc.data):,} bytes (header {enc.header_bytes} B), "
                         f"round trip bit-exact")
            print(f"{name}: ours {enc.bits_per_dim:.4f} bits/dim, encode {te:.1f} s, decode {td:.1f} s",
                  file=sys.stderr, flush=True)
        else:
            notes.append(f"- {name}: {how}")
        rows.append(row)

    cols = ["png", "png mosaic", "webp", "webp mosaic", "lzma/100", "jpeg-xl mosaic/100", "jpeg-xl mosaic"]
    print("\nBits per value (dim), whole files; lower is better. Ours: one file for the split.\n")
    print("| dataset | ours | model NLL | overhead | " + " | ".join(cols)
          + " | best classical | ours vs best | encode img/s | decode img/s |")
    print("|---|" + "---:|" * (3 + len(cols)) + "---|---:|---:|---:|")
    for r in rows:
        ours = r.get("ours")
        print(f"| {r['dataset']} | {fmt(ours, 4)} | {fmt(r.get('nll'), 4)} | "
              + (f"{100 * r['overhead']:+.2f} %" if ours is not None else "n/a") + " | "
              + " | ".join(fmt(r[k]) for k in cols)
              + f" | {r['best']} {r[r['best']]:.3f} | "
              + (("n/a" if ours is None else f"{100 * r['saving']:.1f} % smaller" if r["saving"] >= 0
                  else f"{-100 * r['saving']:.1f} % larger"))
              + f" | {fmt(r.get('enc'), 0)} | {fmt(r.get('dec'), 0)} |")
    print("\nModels:")
    print("\n".join(notes))
    print(f"\nCoding: {a.threads} torch thread(s), chunk {a.chunk}; torch {torch.__version__}.")


if __name__ == "__main__":
    main()
