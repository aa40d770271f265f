"""A small self-contained HTML report of a run: training curve, samples, completions, and the test
NLL next to the paper's figures and classical codecs."""
from __future__ import annotations

import html
import json
import math
from pathlib import Path

# Reference figures (SPEC §1.7 and §3). Binarized MNIST in nats per image; codecs in bits/dim.
PAPER_BINARIZED_MNIST = [
    ("PixelRNN paper: Diagonal BiLSTM, 7 layers, h=16", 79.20),
    ("PixelRNN paper: Diagonal BiLSTM, 1 layer, h=32", 80.75),
    ("PixelRNN paper: Row LSTM (≈)", 80.54),
    ("PixelRNN paper: PixelCNN (≈)", 81.30),
]
CODECS_BINARIZED_MNIST_BPD = [
    ("PNG, per image", 1.38),
    ("WebP lossless, per image", 0.85),
    ("lzma, 100-image batches", 0.35),
    ("JPEG-XL lossless, 10×10 mosaic", 0.22),
]


def plot_curves(metrics_path: Path, out_png: Path, dims: int) -> bool:
    """Train and test NLL (nats/image) against step. Returns False if nothing to plot."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    records = [json.loads(line) for line in Path(metrics_path).read_text().splitlines() if line.strip()]
    train = [(r["step"], r["train_nll"]) for r in records if "train_nll" in r]
    test = [(r["step"], r["test_nll"]) for r in records if "test_nll" in r]
    if not train and not test:
        return False
    fig, ax = plt.subplots(figsize=(6, 3.6), dpi=100)
    if train:
        ax.plot(*zip(*train), label="train (running mean)", lw=1)
    if test:
        ax.plot(*zip(*test), "o-", label="test (exact)", ms=3)
    ax.axhline(79.20, color="gray", ls="--", lw=0.8, label="paper: 79.20")
    ax.set_xlabel("step")
    ax.set_ylabel("NLL (nats / image)")
    lo = min(v for _, v in train + test)
    ax.set_ylim(max(0, min(75, lo - 5)), min(max(v for _, v in train + test), lo + 120))
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    from .files import atomic_write
    atomic_write(out_png, lambda tmp: fig.savefig(tmp, format="png"))
    plt.close(fig)
    return True


def write_report(out_html: Path, *, title: str, test: dict, config: dict, images: dict[str, str],
                 notes: list[str] | None = None) -> None:
    """``images``: caption -> PNG file name (relative to the report)."""
    nll, bpd = test["nll_nats"], test["bits_per_dim"]
    rows = [("<b>this run</b>", f"<b>{nll:.2f}</b>", f"<b>{bpd:.4f}</b>")]
    dims = test.get("dims_per_image", 784)
    for name, v in PAPER_BINARIZED_MNIST:
        rows.append((html.escape(name), f"{v:.2f}", f"{v / (dims * math.log(2)):.4f}"))
    for name, v in CODECS_BINARIZED_MNIST_BPD:
        rows.append((html.escape(name) + " (codec)", f"{v * dims * math.log(2):.1f}", f"{v:.3f}"))
    table = "\n".join(f"<tr><td>{a}</td><td>{b}</td><td>{c}</td></tr>" for a, b, c in rows)
    figs = "\n".join(f'<figure><img src="{html.escape(src)}" alt="{html.escape(cap)}">'
                     f"<figcaption>{html.escape(cap)}</figcaption></figure>"
                     for cap, src in images.items())
    note_html = "".join(f"<li>{html.escape(n)}</li>" for n in (notes or []))
    page = f"""<!doctype html>
<html><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 60em; margin: 2em auto; padding: 0 1em; }}
table {{ border-collapse: collapse; }} td, th {{ padding: .25em .8em; border-bottom: 1px solid #ddd; }}
td:nth-child(n+2) {{ text-align: right; }} figure {{ display: inline-block; margin: 1em; }}
img {{ image-rendering: pixelated; max-width: 100%; }} pre {{ background: #f6f6f6; padding: .5em; }}
</style></head><body>
<h1>{html.escape(title)}</h1>
<p>Exact test negative log-likelihood on the {test.get('images', '?')} held-out images
(lower is better). Classical codecs are converted at {dims} values per image.</p>
<table><tr><th>model / codec</th><th>nats / image</th><th>bits / dim</th></tr>
{table}</table>
<ul>{note_html}</ul>
{figs}
<h2>Configuration</h2><pre>{html.escape(json.dumps(config, indent=2, sort_keys=True))}</pre>
</body></html>
"""
    from .files import atomic_write
    atomic_write(out_html, lambda tmp: Path(tmp).write_text(page, encoding="utf-8"))
