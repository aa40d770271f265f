"""Anomaly scores per image (``nll``, ``bpd``, ``complexity``) and per pixel, from exact
likelihoods; the generic codecs of the complexity score (see the package docstring)."""
from __future__ import annotations

import io
import lzma
import math

import numpy as np
import torch

from ..errors import ArgumentError
from ..imaging import to_uint8
from ..models import PixelModel

METHODS = ("nll", "bpd", "complexity")
CODECS = ("png", "lzma")
DEFAULT_CODEC = "png"
LN2 = math.log(2)


def check_method(method: str) -> None:
    """ArgumentError unless ``method`` is one of :data:`METHODS`."""
    if method not in METHODS:
        raise ArgumentError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")


def check_codec(codec: str) -> None:
    """ArgumentError unless ``codec`` is one of :data:`CODECS`."""
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
    check_codec(codec)
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
    check_method(method)
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
    check_method(method)
    if method == "complexity":
        check_codec(codec)
    nll = image_nll(model, x, batch_size)
    return scores_from_nll(nll, x, model.levels, method, codec).to(x.device)
