"""Multi-Scale PixelRNN (the PixelRNN paper's fourth model; SPEC §1.6) with an exact likelihood.

An unconditional network models a subsampled image made of *picked* pixels, and a conditional
network models the full image given it::

    x                              (B, C, H, W)
    small = x[..., ::f, ::f]       (B, C, ceil(H/f), ceil(W/f)): the picked pixels
    small stage                    an unconditional ``base`` model over ``small``
    context                        embed(small) -> ConvTranspose2d(C -> c, kernel f, stride f)
                                   -> crop to H×W -> ReLU -> unmasked 3×3 conv:  (B, c, H, W)
    conditional stage              a ``base`` model over the full image x; for every layer an
                                   unmasked 1×1 conv maps the context to that layer's
                                   pre-activation width and it is ADDED there:
                                     Row LSTM         its input-to-state map (4h)
                                     Diagonal BiLSTM  its input-to-state maps (2 × 4h; the
                                                      right-to-left half flipped with its map)
                                     PixelCNN         the output of the block's k×k masked conv (h)

The transposed conv puts one c-vector per small pixel on the f×f block whose top-left corner is
that picked pixel (the last blocks are cropped when H or W is not a multiple of f). The context is
unmasked in space: it is a function of the small image only, which is complete (given) before
the conditional network runs.

Exact likelihood (the conditional network's outputs at the picked positions are not used)::

    log p(x) = log p_small(small) + sum over values v not in small of log p_cond(v | x_<v, small)

``forward(x)`` returns logits (B, levels, C, H, W) whose picked positions (i, j multiples of f)
hold the SMALL model's logits and the others the conditional model's, so that
``F.cross_entropy(model(x), x, reduction="sum") == -log p(x)`` exactly, and ``log_prob``,
``value_log_probs``, ``bits_per_dim``, training and evaluation work as for the other models.

Generation runs in two stages, each with the cached sampler of its network (``method="cached"``):
first the small image with the small model's sampler, then the full image with the conditional
model's sampler, the picked pixels given as KNOWN values and the context map computed once (the
engines add each layer's 1×1 conditioning term; see ``pixelrnn.sampling``). ``method="naive"`` is
the reference: one full forward pass of the WHOLE multi-scale model per value, in the same order.

Draw order (the same for both methods, so the same generator gives the same images): stage 1
draws one ``torch.rand(n, generator=...)`` per small-grid value position with an unknown value, in
raster order over the SMALL grid (row, column, R -> G -> B); stage 2 draws one per remaining
(non-picked) position with an unknown value, in raster order over the full image; with particles
one more ``torch.rand(B)`` picks the kept candidate. Inverse CDF in float64 as in
``pixelrnn.sampling``.

Completion (``complete(x, known)``; known values anywhere): stage 1 completes the small grid given
its known values, stage 2 the rest given the picked pixels and the known non-picked values.
``particles=K``: K candidates per image go through BOTH stages (K times the work) and one is kept by
importance resampling with the exact weight of the two-stage order: the likelihood of every known
value that comes after an unknown one in that order (small-grid values by the small model, the
rest by the conditional model: all known non-picked values when a picked value was sampled).

The model is a distribution over two networks (``small``: unconditional; ``cond``: conditional,
with ``context_proj``) and the upsampler; ``sample``, ``complete`` and ``generate`` work as for the
single-network models.
"""
from __future__ import annotations

import dataclasses

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import ArgumentError
from ..progress import as_progress
from .config import ModelConfig
from .diagonal_bilstm import DiagonalBiLSTMNetwork
from .distribution import PixelModel
from .labels import join_contexts, label_context
from .network import PixelNetwork
from .pixelcnn import PixelCNNNetwork
from .row_lstm import RowLSTMNetwork

BASES: dict[str, type[PixelNetwork]] = {
    "row_lstm": RowLSTMNetwork,
    "diagonal_bilstm": DiagonalBiLSTMNetwork,
    "pixelcnn": PixelCNNNetwork,
}


class ContextUpsampler(nn.Module):
    """Embedded small image (B, C, h, w) -> context map (B, c, H, W): ConvTranspose2d with kernel =
    stride = factor (one c-vector per small pixel on its f×f block, anchored at the picked pixel),
    cropped to H×W, then ReLU and an unmasked 3×3 conv (padding 1)."""

    def __init__(self, colors: int, channels: int, factor: int):
        super().__init__()
        self.deconv = nn.ConvTranspose2d(colors, channels, factor, stride=factor)
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, small: torch.Tensor, height: int, width: int) -> torch.Tensor:
        y = self.deconv(small)[:, :, :height, :width]  # (h*f, w*f) >= (H, W) always
        return self.conv(F.relu(y))


def check_options(opts: dict, hidden: int) -> dict:
    """The multi-scale options (``base``, ``factor``, ``context``, ``kernel``) checked, ``context``
    filled in (default: hidden); returns the options of the two stages' networks."""
    base, factor, kernel = opts["base"], opts["factor"], opts["kernel"]
    if base == "multiscale":
        raise ArgumentError("base cannot be 'multiscale': the two stages are single-scale models; "
                            f"choose one of {sorted(BASES)}")
    if not isinstance(base, str) or base not in BASES:
        raise ArgumentError(f"unknown base architecture {base!r}; choose one of {sorted(BASES)}")
    if isinstance(factor, bool) or not isinstance(factor, int) or factor < 2:
        raise ArgumentError(f"factor must be an integer >= 2 (the small image is x[..., ::factor, "
                            f"::factor]), got {factor!r}")
    if opts["context"] is None:
        opts["context"] = hidden
    context = opts["context"]
    if isinstance(context, bool) or not isinstance(context, int) or context < 1:
        raise ArgumentError(f"context must be a positive integer (maps of the upsampled small "
                            f"image), got {context!r}")
    if kernel is not None and base != "pixelcnn":
        raise ArgumentError(f"kernel only applies to base='pixelcnn', not base={base!r}")
    return {} if kernel is None else {"kernel": kernel}


class MultiScalePixelRNN(PixelModel):
    """Options: ``base`` ("row_lstm", "diagonal_bilstm" or "pixelcnn": the architecture of both
    stages), ``factor`` (f >= 2: the small image is x[..., ::f, ::f]), ``context`` (maps c of the
    upsampled context; default h = hidden) and ``kernel`` (base="pixelcnn" only: its masked conv
    size, default 3). ``hidden``, ``layers``, ``head``, ``skip`` and ``first_kernel`` apply to both
    stages. Parts: ``small`` (unconditional network), ``cond`` (conditional network, with
    ``context_proj``), ``upsample`` (:class:`ContextUpsampler`)."""

    OPTIONS = {"base": "row_lstm", "factor": 2, "context": None, "kernel": None}

    def __init__(self, config: ModelConfig):
        super().__init__(config)
        stage_options = check_options(config.options, config.hidden)
        network = BASES[self.base]

        def stage_config() -> ModelConfig:
            return dataclasses.replace(config, arch=self.base, options=dict(stage_options))

        self.small = network(stage_config())
        self.cond = network(stage_config(), context_channels=config.options["context"])
        self.upsample = ContextUpsampler(config.channels, config.options["context"], self.factor)
        if config.classes:  # a label table per network (zero: no effect at first)
            self.small_labels, self.cond_labels = (
                nn.Embedding(config.classes, w, _weight=torch.zeros(config.classes, w))
                for w in (sum(self.small.term_widths()), sum(self.cond.term_widths())))

    factor = property(lambda self: self.config.options["factor"])
    base = property(lambda self: self.config.options["base"])
    device = property(lambda self: self.small.device)

    def picked(self, height: int, width: int) -> torch.Tensor:
        """bool (H, W): True at the picked pixels (the small image), i and j multiples of f."""
        m = torch.zeros(height, width, dtype=torch.bool, device=self.device)
        m[::self.factor, ::self.factor] = True
        return m

    def context(self, es: torch.Tensor, height: int, width: int) -> torch.Tensor:
        """The embedded small image (B, C, h, w) -> the conditional network's context (B, c, H, W)."""
        return self.upsample(es, height, width)

    def label_terms(self, y: torch.Tensor | None):
        """The per-image terms of labels ``y`` (checked, or None) for (small, cond)."""
        return (None, None) if y is None else (self.small_labels(y), self.cond_labels(y))

    # -- the distribution ---------------------------------------------------------------------
    def value_logits(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """checked int (B, C, H, W) -> (H, W, B, C, L): small-network logits at the picked
        positions, conditional-network logits elsewhere."""
        return self.embedded_logits(self.small.embed(x), y)

    def embedded_logits(self, e: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """``value_logits`` of the embedded image e (B, C, H, W): differentiable in e."""
        f = self.factor
        es = e[:, :, ::f, ::f]
        ts, tc = self.label_terms(y)
        out = self.cond.head(self.cond.features(e, self.context(es, *e.shape[-2:]), tc))  # (H, W, B, C, L)
        out[::f, ::f] = self.small.head(self.small.features(es, terms=ts))
        return out

    def labelled_log_probs(self, x: torch.Tensor, y: torch.Tensor | None, terms) -> torch.Tensor:
        """log p of every value (B, C, H, W): the small network's at the picked positions, the
        conditional network's elsewhere (the same numbers as from ``model(x)``, without building
        the combined logits: training and evaluation go through here)."""
        if terms is not None:
            self.term_width  # raises: the multi-scale model takes no per-image terms
        f = self.factor
        H, W = x.shape[-2:]
        e = self.small.embed(x)
        es = e[:, :, ::f, ::f]
        ts, tc = self.label_terms(y)
        out = self.cond.log_probs(e, x, self.context(es, H, W), tc).clone()
        out[:, :, ::f, ::f] = self.small.log_probs(es, x[:, :, ::f, ::f], terms=ts)
        return out

    def layer_outputs(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The full-image (conditional) network's layers, given the small image."""
        e = self.small.embed(x)
        outputs: list[torch.Tensor] = []
        self.cond.features(e, self.context(e[:, :, ::self.factor, ::self.factor], *e.shape[-2:]), outputs=outputs)
        return outputs

    # -- generation ---------------------------------------------------------------------------
    @property
    def has_cached_sampler(self) -> bool:
        return self.small.has_sampling_engine and self.cond.has_sampling_engine

    def naive_logits(self, H: int, W: int, y: torch.Tensor | None):
        """The naive method's full passes of the WHOLE model, for stage 1 (on the small grid)
        and stage 2 (on the full image)."""
        f = self.factor

        def small_logits(s: torch.Tensor) -> torch.Tensor:
            full = torch.zeros(*s.shape[:2], H, W, dtype=s.dtype, device=s.device)
            full[:, :, ::f, ::f] = s
            return self.value_logits(full, y)[::f, ::f]
        return small_logits, lambda x: self.value_logits(x, y)

    def engine_contexts(self, small: torch.Tensor | None, y: torch.Tensor | None, H: int, W: int):
        """The cached samplers' contexts: stage 1 (the labels, or None), stage 2 (the upsampled
        ``small`` images (B*K, C, h, w) and the labels; None without ``small``)."""
        f = self.factor
        labels1 = labels2 = None
        if y is not None:
            labels1 = label_context(self.small_labels.weight, y, self.small.term_widths(), -(-H // f), -(-W // f))
            labels2 = label_context(self.cond_labels.weight, y, self.cond.term_widths(), H, W)
        if small is None:
            return labels1, None
        upsampled = self.cond.engine_context(self.context(self.small.embed(small), H, W))
        return labels1, join_contexts(upsampled, labels2)

    def stage_values(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """The small image x[..., ::f, ::f] (the first stage of ``generate``), then the whole image."""
        f = self.factor
        return x[:, :, ::f, ::f], x

    def generate(self, values: torch.Tensor, known: torch.Tensor | None, *, y=None, generator=None,
                 temperature: float = 1.0, method: str = "cached", particles: int = 1,
                 progress=False, record: bool = False, desc: str = "sampling",
                 keep_particles: bool = False, schedule: str | None = None, decide=None,
                 weigh_all_known: bool = False):
        """The two-stage counterpart of ``pixelrnn.sampling.core.generate`` (arguments checked),
        with the same arguments and results: ``(images, logits, log_weights)``. With ``record``
        the logits are the small stage's at the picked positions and the conditional stage's
        elsewhere (so they equal ``model(images)`` up to float rounding). ``decide`` (see
        ``generate``; the entropy coder's hook): one callback for both stages, or a pair (stage 1
        on the small image, stage 2 on the full image with the picked values known). ``y``: the
        labels of a conditional model, one per particle (B*K,)."""
        from ..sampling.core import generate, resample
        decide1, decide2 = decide if isinstance(decide, (tuple, list)) else (decide, decide)
        B, C, H, W = values.shape
        f, K, naive = self.factor, particles, method == "naive"
        first_part = C * (-(-H // f)) * (-(-W // f))  # values in the small image
        prog = as_progress(progress, C * H * W, desc)
        naive1, naive2 = self.naive_logits(H, W, y) if naive else (None, None)
        common = dict(generator=generator, temperature=temperature, method=method, record=record,
                      desc=desc, schedule=schedule)
        labels1 = None if naive else self.engine_contexts(None, y, H, W)[0]
        was_training = self.training
        try:
            self.eval()
            with torch.no_grad():
                small_known = None if known is None else known[:, :, ::f, ::f].contiguous()
                small, small_logits, log_w = generate(
                    self.small, values[:, :, ::f, ::f].contiguous(), small_known, particles=K,
                    keep_particles=True, decide=decide1, logits_fn=naive1, context=labels1,
                    weigh_all_known=weigh_all_known, progress=prog.part(0, first_part), **common)
                full, known2, kn = self.stage2_start(values, known, small, K)
                images, logits, _ = generate(
                    self.cond, full, known2, decide=decide2, logits_fn=naive2,
                    context=None if naive else self.engine_contexts(small, y, H, W)[1],
                    progress=prog.part(first_part, C * H * W - first_part), **common)
                if record:
                    logits[:, :, :, ::f, ::f] = small_logits
                if K > 1:
                    log_w = log_w + self.cond_weights(images, kn, y, weigh_all_known).view(B, K)
                    if not keep_particles:
                        images, logits = resample(log_w, generator, images, logits)
        finally:
            self.train(was_training)
            prog.close()
        return images, logits, log_w

    def stage2_start(self, values: torch.Tensor, known: torch.Tensor | None, small: torch.Tensor, K: int):
        """Stage 2's start from the (B, ...) ``values`` / ``known`` and the (B*K, ...) sampled
        small images: the full images (B*K, C, H, W) with ``small`` at the picked positions, what
        stage 2 knows (the picked pixels and the known values), and ``known`` per particle."""
        B, C, H, W = values.shape
        f = self.factor
        kn = None if known is None else (known.repeat_interleave(K, 0) if K > 1 else known)
        full = values.repeat_interleave(K, 0) if K > 1 else values.clone()
        full = full.masked_fill(~kn, 0) if kn is not None else torch.zeros_like(full)
        full[:, :, ::f, ::f] = small
        known2 = self.picked(H, W).expand(B * K, C, H, W)
        known2 = (known2 | kn if kn is not None else known2).contiguous()
        return full, known2, kn

    def cond_weights(self, images: torch.Tensor, known: torch.Tensor | None, y: torch.Tensor | None,
                     all_known: bool = False, chunk: int = 64) -> torch.Tensor:
        """Per image (float64 (n,)), the conditional model's exact (T = 1) log-likelihood of the
        known non-picked values that come after an unknown value in the two-stage order: all of
        them when a picked value was unknown (or ``all_known``), else those after the first
        unknown non-picked one in raster order."""
        n, C, H, W = images.shape
        out = torch.zeros(n, dtype=torch.float64, device=images.device)
        if known is None:
            return out
        picked = self.picked(H, W)
        raster = torch.arange(C * H * W, device=images.device).view(H, W, C).permute(2, 0, 1)
        rest = ~picked  # (H, W)
        small_unknown = (~known & picked).flatten(1).any(1) | all_known  # (n,)
        first = torch.where(~known & rest, raster, C * H * W).flatten(1).min(1).values  # (n,)
        after = small_unknown.view(-1, 1, 1, 1) | (raster > first.view(-1, 1, 1, 1))
        mask = known & rest & after
        f = self.factor
        for s in range(0, n, chunk):
            e = min(n, s + chunk)
            if not mask[s:e].any():
                continue
            context = self.context(self.small.embed(images[s:e, :, ::f, ::f]), H, W)
            terms = None if y is None else self.cond_labels(y[s:e])
            lg = self.cond.logits(images[s:e], context, terms).to(torch.float64)  # (H, W, b, C, L)
            lp = lg.log_softmax(-1).gather(-1, images[s:e].permute(2, 3, 0, 1).unsqueeze(-1))
            lp = lp.squeeze(-1).permute(2, 3, 0, 1)  # (b, C, H, W)
            out[s:e] = torch.where(mask[s:e], lp, 0.0).sum(dim=(1, 2, 3))
        return out

    def extra_repr(self) -> str:
        return super().extra_repr() + f", base={self.base!r}, factor={self.factor}"
