"""What the page asks of a model: complete a drawing, sample, inspect a drawing, read an upload.

The page sends a drawing as 8-bit pixel values, a flat list in (row, column, channel) order
(``H*W*C`` numbers in 0..255); the model sees them quantized to its levels as ``v * levels //
256``, the rule of the datasets. Images come back as PNG data URLs at the model's size (the page
enlarges them) and as the same flat 8-bit lists, so a result can be drawn on again.

The ``check_*`` methods run in the request handler, before anything is queued, and raise
ArgumentError with the message the page shows; the work methods run in the worker thread
(:mod:`.jobs`) and take a ``progress(done, total)`` callback.
"""
from __future__ import annotations

import base64
import binascii
import io
import math
import secrets

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from ..errors import ArgumentError
from ..imaging import to_uint8

REGIONS = {"bottom": "bottom half", "right": "right half", "painted": "the painted region"}
LIMITS = {"completions": (1, 16), "particles": (1, 32), "samples": (1, 64)}
MAX_UPLOAD_PIXELS = 40_000_000


def png_data_url(image: np.ndarray) -> str:
    """(H, W, C) or (H, W) uint8 -> ``data:image/png;base64,...``."""
    a = image[..., 0] if image.ndim == 3 and image.shape[2] == 1 else image
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(a)).save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def png_size(image: np.ndarray) -> int:
    """Bytes of the smallest PNG Pillow writes of an (H, W, C) uint8 image (the size to beat)."""
    a = image[..., 0] if image.shape[2] == 1 else image
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(a)).save(buf, format="PNG", optimize=True, compress_level=9)
    return buf.tell()


def check_int(name: str, value, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise ArgumentError(f"{name} must be a whole number from {lo} to {hi}, got {value!r}")
    return value


def check_temperature(value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (0.05 <= value <= 5):
        raise ArgumentError(f"the temperature must be a number from 0.05 to 5, got {value!r}")
    return float(value)


def check_seed(value) -> int:
    """A request's seed, or a fresh one (None): the result says which, to draw it again."""
    return secrets.randbelow(2**31) if value is None else check_int("the seed", value, 0, 2**63 - 1)


def needs_particles(known: torch.Tensor, label_inferred: bool) -> bool:
    """Whether particles can change anything: only when a known value follows an unknown one in
    raster order (or every known value weighs a label drawn per particle). A bottom-half
    completion is exact with one particle (a conditional model draws the label from its exact
    posterior first: ``PixelModel.complete``)."""
    if label_inferred:
        return True
    flat = known.flatten()
    unknown = (~flat).nonzero()
    return bool(unknown.numel()) and bool(flat[int(unknown[0]):].any())


class ModelService:
    """A model, its name, the image size the page draws at, and its card (or None)."""

    def __init__(self, model, name: str, size: tuple[int, int], card=None):
        self.model, self.name, self.card = model.eval(), name, card
        self.height, self.width = size
        self.names = list(model.class_names or [str(k) for k in range(model.classes)])

    @classmethod
    def for_pretrained(cls, name: str, device: str = "cpu") -> "ModelService":
        """The service of a shipped model (``pixelrnn.pretrained_names()``), at its card's size."""
        from ..data import parse_size
        from ..pretrained import model_card, pretrained
        card = model_card(name)
        return cls(pretrained(name, device), name, parse_size(card.image_size, "image_size"), card)

    # -- what the page is told about the model --------------------------------------------------
    def info(self) -> dict:
        m, c = self.model, self.model.config
        out = {"name": self.name, "height": self.height, "width": self.width, "channels": m.channels,
               "levels": m.levels, "classes": m.classes, "class_names": self.names,
               "architecture": f"{c.arch}, hidden {c.hidden}, {c.layers} layers",
               "parameters": sum(p.numel() for p in m.parameters()),
               "regions": REGIONS, "limits": LIMITS, "title": "", "test": None, "bytes": None}
        if self.card is not None:
            out.update(title=self.card.title, test=self.card.test, bytes=self.card.bytes,
                       architecture=self.card.architecture)
        return out

    # -- checks of a request ------------------------------------------------------------------
    def check_pixels(self, pixels) -> torch.Tensor:
        """The page's flat 8-bit list -> int64 (1, C, H, W) in the model's levels."""
        C, H, W = self.model.channels, self.height, self.width
        if not isinstance(pixels, list) or len(pixels) != H * W * C:
            raise ArgumentError(f"the drawing must be {H * W * C} pixel values ({H}x{W}x{C}), got "
                                f"{len(pixels) if isinstance(pixels, list) else type(pixels).__name__}")
        if not all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= 255 for v in pixels):
            raise ArgumentError("pixel values must be whole numbers from 0 to 255")
        a = torch.tensor(pixels, dtype=torch.long).view(H, W, C).permute(2, 0, 1)
        return (a * self.model.levels // 256).unsqueeze(0)

    def check_region(self, region, mask) -> torch.Tensor:
        """``known`` (H, W) bool: False where the completion fills in."""
        H, W = self.height, self.width
        known = torch.ones(H, W, dtype=torch.bool)
        if region == "bottom":
            known[H // 2:] = False
        elif region == "right":
            known[:, W // 2:] = False
        elif region == "painted":
            if not isinstance(mask, list) or len(mask) != H * W or not all(v in (0, 1) for v in mask):
                raise ArgumentError(f"the painted region must be {H * W} values 0 or 1")
            known = torch.tensor(mask, dtype=torch.long).view(H, W) == 0
            if known.all():
                raise ArgumentError("paint the region to fill first (the 'region' brush)")
        else:
            raise ArgumentError(f"the region must be one of {', '.join(REGIONS)}, got {region!r}")
        return known

    def check_label(self, label) -> int | None:
        """None (no label: drawn from the prior, or inferred by a completion) or a label index."""
        if label is None or label == "":
            return None
        if not self.model.classes:
            raise ArgumentError("this model is unconditional: it takes no label")
        if isinstance(label, str) and label in self.names:
            return self.names.index(label)
        return check_int("the label", label, 0, self.model.classes - 1)

    # -- the work ------------------------------------------------------------------------------
    def images(self, x: torch.Tensor) -> list[dict]:
        """int (N, C, H, W) in the model's levels -> [{"png": data URL, "pixels": flat 8-bit}]."""
        pix = to_uint8(x, self.model.levels).transpose(0, 2, 3, 1)  # (N, H, W, C)
        return [{"png": png_data_url(p), "pixels": p.reshape(-1).tolist()} for p in pix]

    def complete(self, x, known, n: int, particles: int, label, temperature: float, seed: int,
                 progress) -> dict:
        """``n`` completions of ``x`` (1, C, H, W) where ``known`` is False, each the particle
        kept of ``particles`` by importance resampling (one when particles cannot matter)."""
        dev = self.model.device
        m = self.model
        full = known.expand(1, m.channels, *known.shape[-2:])
        inferred = m.classes > 0 and label is None and not bool(m.known_first(full).all())
        K = particles if needs_particles(known, inferred) else 1
        g = torch.Generator(device=dev).manual_seed(seed)
        batch = x.to(dev).repeat(n, 1, 1, 1)
        out = self.model.complete(batch, known.to(dev), g, particles=K, y=label,
                                  temperature=temperature, progress=progress)
        return {"images": self.images(out), "particles": K, "seed": seed,
                "unknown_pixels": int((~known).sum())}

    def sample(self, n: int, label, temperature: float, seed: int, progress) -> dict:
        g = torch.Generator(device=self.model.device).manual_seed(seed)
        out = self.model.sample(n, self.height, self.width, y=label, generator=g,
                                temperature=temperature, progress=progress)
        return {"images": self.images(out), "seed": seed}

    def inspect(self, x: torch.Tensor, progress) -> dict:
        """NLL and bits/dim, the per-pixel surprise map, p(y | x) of a conditional model, and the
        drawing's size coded by the model against PNG."""
        from ..anomaly import heatmap
        m = self.model
        x = x.to(m.device)
        progress(0, 3)
        with torch.no_grad():
            surprise = -m.value_log_probs(x).sum(dim=1).float().cpu()  # (1, H, W) nats
        nll = float(surprise.double().sum())
        picture, vmax = heatmap(x.cpu(), surprise, m.levels, pairs_per_row=1)
        out = {"nll_nats": nll, "bits_per_dim": nll / (x[0].numel() * math.log(2)),
               "heatmap": png_data_url(picture), "heatmap_max_nats": vmax, "classes": None}
        progress(1, 3)
        if m.classes:
            with torch.no_grad():
                probs = m.classify(x).exp()[0].cpu().tolist()
            out["classes"] = [{"name": name, "p": p} for name, p in zip(self.names, probs)]
        progress(2, 3)
        out.update(self.sizes(x))
        progress(3, 3)
        return out

    def sizes(self, x: torch.Tensor) -> dict:
        """Bytes of the drawing compressed by the model (a whole .prnn file and its payload) and
        as an optimized PNG."""
        png = png_size(to_uint8(x[0], self.model.levels).transpose(1, 2, 0))
        try:
            from ..compression import encode
            enc = encode(self.model, x)
        except ImportError:  # the range coder (constriction) is not installed
            return {"png_bytes": png, "model_bytes": None, "model_payload_bytes": None}
        return {"png_bytes": png, "model_bytes": len(enc.data),
                "model_payload_bytes": len(enc.data) - enc.header_bytes}

    def decode_upload(self, data_url) -> dict:
        """An uploaded image file (a data URL) -> the flat 8-bit pixels of the model's size:
        centre-cropped to its aspect ratio, resized, converted to gray or RGB (transparent parts
        black)."""
        if not isinstance(data_url, str) or "," not in data_url:
            raise ArgumentError("no file data in the upload")
        try:
            raw = base64.b64decode(data_url.split(",", 1)[1], validate=True)
            im = Image.open(io.BytesIO(raw))
            if im.width * im.height > MAX_UPLOAD_PIXELS:
                raise ArgumentError(f"the image is too large ({im.width}x{im.height})")
            im.load()
        except (binascii.Error, UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as e:
            if isinstance(e, ArgumentError):
                raise
            raise ArgumentError("the file is not an image this page can read (PNG, JPEG, GIF, BMP, WebP)") from None
        pixels = self.fit(im)
        return {"pixels": pixels.reshape(-1).tolist(), "source_size": [im.width, im.height]}

    def fit(self, im: Image.Image) -> np.ndarray:
        """A Pillow image -> (H, W, C) uint8 at the model's size and channels."""
        rgba = im.convert("RGBA")
        flat = Image.new("RGBA", rgba.size, (0, 0, 0, 255))
        flat.alpha_composite(rgba)
        im = flat.convert("L" if self.model.channels == 1 else "RGB")
        target = self.width / self.height
        w, h = im.size
        if w / h > target:  # too wide: crop the sides
            cw = round(h * target)
            im = im.crop(((w - cw) // 2, 0, (w - cw) // 2 + cw, h))
        elif w / h < target:
            ch = round(w / target)
            im = im.crop((0, (h - ch) // 2, w, (h - ch) // 2 + ch))
        im = im.resize((self.width, self.height), Image.Resampling.LANCZOS)
        a = np.asarray(im, dtype=np.uint8)
        return a[..., None] if a.ndim == 2 else a
