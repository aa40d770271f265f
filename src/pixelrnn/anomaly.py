"""Anomaly (out-of-distribution) scores from exact likelihoods, per image and per pixel.

    from pixelrnn.anomaly import anomaly_scores, pixel_nll
    s = anomaly_scores(model, x, method="complexity")   # (B,) float64, higher = more anomalous
    m = pixel_nll(model, x)                             # (B, H, W) nats: -log p of each pixel

Why raw likelihood is not enough
--------------------------------
A likelihood model trained on one kind of image often gives *higher* likelihood to simpler images
it has never seen: a PixelCNN trained on CIFAR-10 rates SVHN as more likely, a model of
FashionMNIST rates MNIST as more likely (Nalisnick et al., "Do deep generative models know what
they don't know?", ICLR 2019). The NLL is dominated by how *compressible* an image is (smooth
regions, few distinct values, large constant backgrounds), not by whether it looks like the
training data. Serrà et al. ("Input complexity and out-of-distribution detection with
likelihood-based generative models", ICLR 2020) correct for this by subtracting the code length
that a generic lossless compressor needs for the same image:

    S(x) = NLL_bits(x) - L_codec(x)

An image the model explains *better than a generic codec does* gets a low score (it shares the
regularities of the training data); a simple image that any compressor finds cheap no longer
looks "normal" just because it is simple. The score is a log-likelihood ratio against a universal
model (the codec).

Methods (higher = more anomalous for all of them)
-------------------------------------------------
``nll``
    -log p(x) in nats per image (exact).
``bpd``
    NLL in bits per value: nll / (C·H·W·ln 2). For images of one size it ranks exactly like
    ``nll``; it only differs when images of different sizes are compared.
``complexity``
    NLL in bits minus the code length in bits of the image under a generic lossless codec
    (:func:`codec_bits`), **not** this package's model-based coder.

The codec (``codec="png"`` default, or ``"lzma"``) sees the image as 8-bit values: every value
``v`` in ``[0, levels)`` is scaled to ``round(v · 255 / (levels - 1))`` as
:func:`pixelrnn.imaging.to_uint8` does. That map is injective for ``levels <= 256``, so the codec
sees exactly the information the model sees (no values are merged); it is also what a PNG of the
image would contain, which is the setting of Serrà et al. The codec does not know that fewer than
256 values occur, so for few-level images its code length is longer than necessary; that affects
every image of a run alike and is the price of using an unmodified standard codec.

* ``png``: Pillow, ``optimize=True, compress_level=9``, gray (``L``) or ``RGB``; the length is the
  whole file (signature and chunk headers included, a near-constant ~57 bytes that shifts every
  score alike and does not change any ranking).
* ``lzma``: the raw 8-bit values (rows of pixels, channels interleaved) compressed by LZMA2,
  preset 9 + extreme, as a raw stream (no container header), with a dictionary as large as the
  image (at least 4 KiB) so that the result equals preset 9 while staying fast.

Per-pixel maps
--------------
:func:`pixel_nll` is -log p of each pixel given all earlier ones, summed over the pixel's
channels: a (B, H, W) map in nats that sums to the image's NLL. :func:`heatmap` renders images
beside their maps.

Evaluation
----------
:func:`make_ood_set` builds out-of-distribution sets (see :data:`OOD_SETS`) from an
in-distribution test set, :func:`evaluate_ood` reports ROC-AUC and AUPR (scikit-learn's
``roc_auc_score`` / ``average_precision_score``; OOD images are the positive class and higher
scores mean more anomalous) for every method, and :func:`save_histogram` plots the score
distributions.
"""
from __future__ import annotations

import io
import lzma
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from .data import convert_images
from .imaging import grid, save_png, to_uint8
from .models import PixelModel
from .errors import ArgumentError

__all__ = ["METHODS", "CODECS", "DEFAULT_CODEC", "OOD_SETS", "OOD_SEEDS", "anomaly_scores",
           "pixel_nll", "image_nll", "codec_bits", "scores_from_nll", "heatmap", "make_ood_set",
           "convert_images", "ood_metrics", "evaluate_ood", "OODReport", "OODResult",
           "save_histogram"]

METHODS = ("nll", "bpd", "complexity")
CODECS = ("png", "lzma")
DEFAULT_CODEC = "png"
LN2 = math.log(2)

# Built-in OOD sets. "The in-distribution test images" are the images passed as ``reference``
# (for ``pixelrnn score --data mnist`` the 1000 MNIST test digits). Every set has the reference's
# channels, height, width and levels; random choices use np.random.default_rng(OOD_SEEDS[name]).
OOD_SETS: dict[str, str] = {
    "noise": "the in-distribution test images + Gaussian noise, sigma = 0.2 x full range "
             "(51 of 255), rounded and clipped",
    "inverted": "the in-distribution test images inverted (levels - 1 - v)",
    "rotated": "the in-distribution test images rotated by 90 degrees (180 if not square)",
    "shuffled": "the in-distribution test images cut into a 4x4 grid of patches (7x7 for 28x28), "
                "patches shuffled per image",
    "digits": "1000 of scikit-learn's 8x8 digits: 0..16 scaled to 0..255, resized (bilinear) to "
              "20/28 of the size and padded with 0 like MNIST (20x20 in 28x28)",
    "constant": "1000 constant images, one uniformly random level each",
    "uniform": "1000 images of independent uniformly random values",
    "photos": "photos32 test patches (386) converted to the model's channels (gray by luminance) "
              "and center-cropped (resized, bilinear, if smaller) to the image size",
}
OOD_SEEDS: dict[str, int] = {"noise": 7001, "shuffled": 7002, "digits": 7003, "constant": 7004,
                             "uniform": 7005}
OOD_SIZE = 1000  # images in the generated sets (constant, uniform, digits)
NOISE_SIGMA = 0.2  # of the full range (levels - 1)


# --------------------------------------------------------------------------------------------
# Scores
# --------------------------------------------------------------------------------------------

def _check_method(method: str) -> None:
    if method not in METHODS:
        raise ArgumentError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")


def _check_codec(codec: str) -> None:
    if codec not in CODECS:
        raise ArgumentError(f"unknown complexity codec {codec!r}; choose one of {', '.join(CODECS)}")


def _check_batch(x: torch.Tensor, batch_size: int) -> None:
    if not isinstance(x, torch.Tensor):
        raise ArgumentError(f"expected a torch.Tensor of shape (B, C, H, W), got {type(x).__name__}")
    if x.dim() != 4 or x.shape[0] == 0:
        raise ArgumentError(f"expected a non-empty image batch of shape (B, C, H, W), got {tuple(x.shape)}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ArgumentError(f"batch_size must be a positive integer, got {batch_size!r}")


def _batched(model: PixelModel, x: torch.Tensor, batch_size: int, fn) -> list[torch.Tensor]:
    """``fn(model, batch)`` for every batch of ``x``, in eval mode without gradients (the model's
    training flag is restored afterwards); the results are moved to the CPU."""
    _check_batch(x, batch_size)
    was_training = model.training
    model.eval()
    out = []
    try:
        with torch.no_grad():
            for i in range(0, x.shape[0], batch_size):
                out.append(fn(model, x[i:i + batch_size]).cpu())
    finally:
        model.train(was_training)
    return out


def image_nll(model: PixelModel, x: torch.Tensor, batch_size: int = 64) -> torch.Tensor:
    """Exact NLL in nats of each image, ``-model.log_prob(x)``, computed in batches: (B,) float64
    on the CPU."""
    parts = _batched(model, x, batch_size, lambda m, xb: -m.log_prob(xb).double())
    return torch.cat(parts)


def pixel_nll(model: PixelModel, x: torch.Tensor, batch_size: int = 64) -> torch.Tensor:
    """-log p of every pixel given all earlier ones, summed over its channels: (B, H, W) float32
    in nats, on ``x``'s device. ``pixel_nll(model, x).sum((1, 2))`` is the NLL of each image."""
    parts = _batched(model, x, batch_size, lambda m, xb: -m.value_log_probs(xb).sum(dim=1))
    return torch.cat(parts).to(x.device)


def codec_bits(x: torch.Tensor | np.ndarray, levels: int, codec: str = DEFAULT_CODEC) -> torch.Tensor:
    """Code length in bits of each image (B, C, H, W) with values in [0, levels) under a generic
    lossless codec ("png" or "lzma"; see the module docstring): (B,) float64 on the CPU.

    The values are scaled to 8 bits first (``to_uint8``), which keeps all the information."""
    _check_codec(codec)
    a = x.detach().cpu().numpy() if torch.is_tensor(x) else np.asarray(x)
    if a.ndim != 4 or a.shape[1] not in (1, 3):
        raise ArgumentError(f"expected images of shape (B, C, H, W) with C = 1 or 3, got {a.shape}")
    if a.dtype.kind not in "iu":
        raise ArgumentError(f"expected integer pixel values, got dtype {a.dtype}")
    if not 2 <= levels <= 256:
        raise ArgumentError(f"levels must be in 2..256 for a generic codec, got {levels}")
    if a.size and (a.min() < 0 or a.max() >= levels):
        raise ArgumentError(f"pixel values must be in [0, {levels - 1}], got {a.min()}..{a.max()}")
    pixels = to_uint8(a, levels).transpose(0, 2, 3, 1)  # (B, H, W, C) uint8
    encode = _png_bytes if codec == "png" else _lzma_bytes
    return torch.tensor([8.0 * encode(p) for p in pixels], dtype=torch.float64)


def _png_bytes(hwc: np.ndarray) -> int:
    from PIL import Image
    buf = io.BytesIO()
    image = Image.fromarray(np.ascontiguousarray(hwc[..., 0] if hwc.shape[2] == 1 else hwc))
    image.save(buf, format="PNG", optimize=True, compress_level=9)
    return buf.tell()


def _lzma_bytes(hwc: np.ndarray) -> int:
    raw = np.ascontiguousarray(hwc).tobytes()
    filters = [{"id": lzma.FILTER_LZMA2, "preset": 9 | lzma.PRESET_EXTREME,
                "dict_size": max(4096, len(raw))}]
    return len(lzma.compress(raw, format=lzma.FORMAT_RAW, filters=filters))


def scores_from_nll(nll: torch.Tensor, x: torch.Tensor, levels: int, method: str,
                    codec: str = DEFAULT_CODEC) -> torch.Tensor:
    """Turn per-image NLLs in nats (B,) of images ``x`` into the scores of ``method`` (float64,
    CPU). Lets one NLL computation serve every method."""
    _check_method(method)
    nll = nll.detach().double().cpu()
    if method == "nll":
        return nll
    if method == "bpd":
        return nll / (x[0].numel() * LN2)
    return nll / LN2 - codec_bits(x, levels, codec)


def anomaly_scores(model: PixelModel, x: torch.Tensor, method: str = "nll", *,
                   codec: str = DEFAULT_CODEC, batch_size: int = 64) -> torch.Tensor:
    """One anomaly score per image, higher = more anomalous: (B,) float64 on ``x``'s device.

    ``x`` is an integer tensor (B, C, H, W) with values in [0, model.levels), as for
    ``model.log_prob``. ``method``: "nll" (nats), "bpd" (bits per value) or "complexity"
    (NLL in bits minus the code length in bits under ``codec``, "png" or "lzma"; Serrà et al. 2020).
    Computed in batches of ``batch_size`` without gradients in eval mode, on the model's device.
    """
    _check_method(method)
    if method == "complexity":
        _check_codec(codec)
    nll = image_nll(model, x, batch_size)
    return scores_from_nll(nll, x, model.levels, method, codec).to(x.device)


# --------------------------------------------------------------------------------------------
# Heat maps
# --------------------------------------------------------------------------------------------

def heatmap(images: torch.Tensor, maps: torch.Tensor, levels: int, *, vmax: float | None = None,
            cmap: str = "inferno", pairs_per_row: int | None = None) -> tuple[np.ndarray, float]:
    """Each image beside its per-pixel NLL map, as one (H', W', 3) uint8 grid (use
    ``imaging.save_png(..., scale=...)`` to enlarge it with nearest-neighbour pixels).

    ``maps`` (B, H, W) is coloured with matplotlib's ``cmap`` on one scale shared by all images,
    from 0 to ``vmax`` nats (default: the 99th percentile of all map values, so one extreme pixel
    does not wash out the rest; larger values are clipped). Returns the grid and ``vmax``."""
    import matplotlib

    if images.dim() != 4 or maps.dim() != 3 or images.shape[0] != maps.shape[0] \
            or tuple(images.shape[2:]) != tuple(maps.shape[1:]):
        raise ArgumentError(f"images {tuple(images.shape)} and maps {tuple(maps.shape)} do not match")
    pix = to_uint8(images, levels)  # (B, C, H, W)
    if pix.shape[1] == 1:
        pix = np.repeat(pix, 3, axis=1)
    m = maps.detach().float().cpu().numpy()
    if vmax is None:
        vmax = float(np.percentile(m, 99)) if m.size else 1.0
    vmax = vmax if vmax > 0 and math.isfinite(vmax) else 1.0
    rgba = matplotlib.colormaps[cmap](np.clip(m / vmax, 0.0, 1.0))  # (B, H, W, 4) floats
    colours = np.rint(rgba[..., :3] * 255).astype(np.uint8).transpose(0, 3, 1, 2)
    n = pix.shape[0]
    pairs = np.stack([pix, colours], axis=1).reshape(2 * n, *pix.shape[1:])  # image, map, ...
    per_row = pairs_per_row or min(n, 4)
    return grid(pairs, ncol=2 * per_row), vmax


def heatmap_scale(height: int, width: int) -> int:
    """Nearest-neighbour enlargement that makes small images visible (28x28 -> 4x)."""
    return max(1, min(8, 128 // max(height, width)))


# --------------------------------------------------------------------------------------------
# Out-of-distribution sets
# --------------------------------------------------------------------------------------------

def _resize(a8: np.ndarray, height: int, width: int) -> np.ndarray:
    """(N, C, h, w) uint8 -> (N, C, height, width) with Pillow's bilinear filter."""
    from PIL import Image
    out = np.empty((a8.shape[0], a8.shape[1], height, width), dtype=np.uint8)
    for i, im in enumerate(a8):
        for c, plane in enumerate(im):
            out[i, c] = np.asarray(Image.fromarray(plane).resize((width, height), Image.BILINEAR))
    return out


def _fit(a8: np.ndarray, height: int, width: int) -> np.ndarray:
    """Center-crop to height x width, resizing (bilinear) first where the image is smaller."""
    h, w = a8.shape[2:]
    if h < height or w < width:
        f = max(height / h, width / w)
        a8 = _resize(a8, max(height, math.ceil(h * f)), max(width, math.ceil(w * f)))
        h, w = a8.shape[2:]
    top, left = (h - height) // 2, (w - width) // 2
    return a8[:, :, top:top + height, left:left + width]


def make_ood_set(name: str, reference: torch.Tensor, levels: int, *,
                 limit: int | None = None) -> torch.Tensor:
    """Build the built-in OOD set ``name`` (see :data:`OOD_SETS`) matching ``reference``, the
    in-distribution test images (N, C, H, W) with values in [0, levels): same channels, size and
    levels. Deterministic (fixed seeds). ``limit`` caps the number of images. Returns uint8."""
    if name not in OOD_SETS:
        raise ArgumentError(f"unknown OOD set {name!r}; built-in sets: {', '.join(OOD_SETS)}")
    if reference.dim() != 4 or reference.shape[0] == 0:
        raise ArgumentError(f"reference images must be a non-empty (N, C, H, W) tensor, got "
                         f"{tuple(reference.shape)}")
    ref = reference.cpu().to(torch.int64)
    n_ref, C, H, W = ref.shape
    n = OOD_SIZE if limit is None else min(OOD_SIZE, limit)
    rng = np.random.default_rng(OOD_SEEDS.get(name, 0))
    top = levels - 1

    if name == "inverted":
        out = top - ref
    elif name == "rotated":
        out = torch.rot90(ref, 1 if H == W else 2, dims=(2, 3))
    elif name == "noise":
        noise = rng.normal(0.0, NOISE_SIGMA * top, size=tuple(ref.shape))
        out = torch.from_numpy(np.clip(np.rint(ref.numpy() + noise), 0, top).astype(np.int64))
    elif name == "shuffled":
        ph, pw = H // 4, W // 4
        if ph == 0 or pw == 0:
            raise ArgumentError(f"'shuffled' needs images of at least 4x4 pixels, got {H}x{W}")
        a = ref.numpy().copy()
        core = a[:, :, :4 * ph, :4 * pw].reshape(n_ref, C, 4, ph, 4, pw).transpose(0, 2, 4, 1, 3, 5)
        core = core.reshape(n_ref, 16, C, ph, pw)
        perm = np.stack([rng.permutation(16) for _ in range(n_ref)])
        core = np.take_along_axis(core, perm[:, :, None, None, None], axis=1)
        core = core.reshape(n_ref, 4, 4, C, ph, pw).transpose(0, 3, 1, 4, 2, 5)
        a[:, :, :4 * ph, :4 * pw] = core.reshape(n_ref, C, 4 * ph, 4 * pw)
        out = torch.from_numpy(a)
    elif name == "constant":
        values = rng.integers(0, levels, size=n)
        out = torch.from_numpy(np.broadcast_to(values[:, None, None, None], (n, C, H, W)).copy())
    elif name == "uniform":
        out = torch.from_numpy(rng.integers(0, levels, size=(n, C, H, W)))
    elif name == "digits":
        from .data import load_dataset
        d = load_dataset("digits", "all").images.numpy()  # (1797, 1, 8, 8), 0..16
        d = d[rng.permutation(len(d))[:n]]
        d8 = np.rint(d.astype(np.float64) * 255 / 16).astype(np.uint8)
        ih, iw = max(1, round(H * 20 / 28)), max(1, round(W * 20 / 28))
        inner = _resize(d8, ih, iw)
        a8 = np.zeros((len(d8), 1, H, W), dtype=np.uint8)
        top_, left = (H - ih) // 2, (W - iw) // 2
        a8[:, :, top_:top_ + ih, left:left + iw] = inner
        out = convert_images(torch.from_numpy(a8), 256, C, levels)
    else:  # photos
        from .data import load_dataset
        p = load_dataset("photos32", "test").images
        if limit is not None:
            p = p[:limit]
        p = convert_images(p, 256, C, 256).numpy()
        out = convert_images(torch.from_numpy(np.ascontiguousarray(_fit(p, H, W))), 256, C, levels)
    if limit is not None:
        out = out[:limit]
    return out.to(torch.uint8).contiguous()


# --------------------------------------------------------------------------------------------
# Evaluation
# --------------------------------------------------------------------------------------------

def ood_metrics(in_scores, out_scores) -> dict[str, float]:
    """ROC-AUC and AUPR of separating ``out_scores`` (positive class) from ``in_scores``, higher
    score = more anomalous (scikit-learn's roc_auc_score and average_precision_score)."""
    from sklearn.metrics import average_precision_score, roc_auc_score
    s_in = np.asarray(in_scores, dtype=np.float64).ravel()
    s_out = np.asarray(out_scores, dtype=np.float64).ravel()
    if s_in.size == 0 or s_out.size == 0:
        raise ArgumentError("need at least one in-distribution and one OOD score")
    y = np.concatenate([np.zeros(s_in.size), np.ones(s_out.size)])
    s = np.concatenate([s_in, s_out])
    return {"roc_auc": float(roc_auc_score(y, s)), "aupr": float(average_precision_score(y, s))}


def _columns(columns: Sequence[str], codec: str) -> list[tuple[str, str, str]]:
    """Column names -> (label, method, codec). "complexity:lzma" names a codec explicitly."""
    parsed = []
    for col in columns:
        method, _, c = col.partition(":")
        _check_method(method)
        if c:
            if method != "complexity":
                raise ArgumentError(f"only complexity takes a codec, got {col!r}")
            _check_codec(c)
        parsed.append((col, method, c or codec))
    return parsed


@dataclass
class OODResult:
    name: str
    description: str
    images: int
    scores: dict[str, np.ndarray]              # column -> (N,) scores
    metrics: dict[str, dict[str, float]]       # column -> {"roc_auc", "aupr"}

    def best(self, key: str = "roc_auc") -> str:
        """The column with the highest ``key`` (the first one on a tie)."""
        return max(self.metrics, key=lambda col: self.metrics[col][key])

    def winners(self, key: str = "roc_auc", decimals: int = 3) -> list[str]:
        """Every column whose ``key`` equals the best one when rounded to ``decimals``."""
        top = round(self.metrics[self.best(key)][key], decimals)
        return [col for col in self.metrics if round(self.metrics[col][key], decimals) == top]


@dataclass
class OODReport:
    columns: list[str]
    in_name: str
    in_images: int
    in_scores: dict[str, np.ndarray]
    results: list[OODResult] = field(default_factory=list)
    codec: str = DEFAULT_CODEC

    def table(self, title: bool = True) -> str:
        """A Markdown table: one row per OOD set, ROC-AUC / AUPR for every column; the best
        ROC-AUC of each row (ties at 3 decimals included) in bold."""
        head = "| OOD set | n | " + " | ".join(f"{c} AUROC | {c} AUPR" for c in self.columns) + " | best |"
        lines = [head, "|" + "---|" * (3 + 2 * len(self.columns))]
        for r in self.results:
            winners = r.winners()
            cells = []
            for c in self.columns:
                auc = f"{r.metrics[c]['roc_auc']:.3f}"
                cells += [f"**{auc}**" if c in winners else auc, f"{r.metrics[c]['aupr']:.3f}"]
            best = "tie" if len(winners) == len(self.columns) > 1 else " = ".join(winners)
            lines.append(f"| {r.name} | {r.images} | " + " | ".join(cells) + f" | {best} |")
        if title:
            lines.insert(0, f"in-distribution: {self.in_name}, {self.in_images} images "
                            f"(OOD = positive class; complexity codec: {self.codec})\n")
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return {"in_distribution": {"data": self.in_name, "images": self.in_images},
                "methods": list(self.columns), "complexity_codec": self.codec,
                "ood": [{"name": r.name, "description": r.description, "images": r.images,
                         "best": r.winners(), **r.metrics} for r in self.results]}


def evaluate_ood(model: PixelModel, in_images: torch.Tensor, ood: dict[str, torch.Tensor], *,
                 columns: Sequence[str] = METHODS, codec: str = DEFAULT_CODEC, batch_size: int = 64,
                 in_name: str = "in-distribution", descriptions: dict[str, str] | None = None,
                 progress=None) -> OODReport:
    """ROC-AUC / AUPR of every scoring column for every OOD set against ``in_images``.

    ``columns``: methods ("nll", "bpd", "complexity") or "complexity:CODEC" for a specific codec;
    plain "complexity" uses ``codec``. The NLL of each image is computed once.
    ``progress(message)`` is called before each set is scored."""
    cols = _columns(columns, codec)
    if not ood:
        raise ArgumentError("no OOD sets given")

    def score(x: torch.Tensor) -> dict[str, np.ndarray]:
        nll = image_nll(model, x, batch_size)
        bits: dict[str, torch.Tensor] = {}
        out = {}
        for label, method, c in cols:
            if method == "complexity" and c not in bits:
                bits[c] = codec_bits(x, model.levels, c)
            if method == "complexity":
                out[label] = (nll / LN2 - bits[c]).numpy()
            else:
                out[label] = scores_from_nll(nll, x, model.levels, method).numpy()
        return out

    if progress:
        progress(f"scoring {in_name} ({in_images.shape[0]} images)")
    in_scores = score(in_images)
    report = OODReport([c[0] for c in cols], in_name, int(in_images.shape[0]), in_scores, codec=codec)
    for name, x in ood.items():
        if tuple(x.shape[1:]) != tuple(in_images.shape[1:]):
            raise ArgumentError(f"OOD set {name} has images of shape {_shape(x)} but the "
                             f"in-distribution images are {_shape(in_images)}")
        if progress:
            progress(f"scoring {name} ({x.shape[0]} images)")
        s = score(x)
        metrics = {label: ood_metrics(in_scores[label], s[label]) for label in report.columns}
        desc = (descriptions or {}).get(name, OOD_SETS.get(name, name))
        report.results.append(OODResult(name, desc, int(x.shape[0]), s, metrics))
    return report


def _shape(x: torch.Tensor) -> str:
    return "x".join(str(d) for d in x.shape[1:])


def save_histogram(report: OODReport, path: str | Path, bins: int = 50) -> None:
    """One panel per scoring column: the in-distribution scores (filled) and each OOD set's
    (outlines), as densities on common bins, written atomically as a PNG."""
    import matplotlib
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    cols = report.columns
    fig = Figure(figsize=(10, 2.6 * len(cols)), dpi=90)
    canvas = FigureCanvasAgg(fig)
    colours = matplotlib.colormaps["tab10"]
    for k, col in enumerate(cols):
        ax = fig.add_subplot(len(cols), 1, k + 1)
        values = [report.in_scores[col]] + [r.scores[col] for r in report.results]
        finite = np.concatenate([v[np.isfinite(v)] for v in values])
        edges = np.histogram_bin_edges(finite if finite.size else [0.0, 1.0], bins=bins)
        ax.hist(report.in_scores[col], bins=edges, density=True, color="0.6", alpha=0.7,
                label=f"{report.in_name} (in)")
        for j, r in enumerate(report.results):
            ax.hist(r.scores[col], bins=edges, density=True, histtype="step", lw=1.4,
                    color=colours(j % 10), label=f"{r.name} (AUROC {r.metrics[col]['roc_auc']:.2f})")
        ax.set_title(f"{col} score (higher = more anomalous)", fontsize=9)
        ax.tick_params(labelsize=8)
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    fig.tight_layout()
    canvas.draw()
    save_png(np.asarray(canvas.buffer_rgba())[..., :3].copy(), path)
