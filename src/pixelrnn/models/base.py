"""The shared PixelRNN stack and the distribution interface every architecture inherits.

    x (B, C, H, W) int in [0, levels)
      -> scale to [-1, 1]
      -> 7×7 conv, mask A                      (B, 2h, H, W)
      -> L residual blocks (the architecture)  (B, 2h, H, W)
      -> ReLU -> 1×1 mask B -> ReLU -> 1×1 mask B   (H, W, B, C * levels), channels-last
      -> logits (B, levels, C, H, W): a categorical over `levels` per value
         (mixtures=K: the head predicts 3K numbers per value instead, and the logits are the exact
         log-probabilities of a mixture of K discretized logistics: see pixelrnn.nn.logistic)

The model is a distribution: ``log_prob(x)`` is the exact log-likelihood in nats (the sum of
the log-probabilities of every value given all earlier ones, in raster order, R->G->B inside a
pixel). Subclasses only provide the body (``_body``).

Internally the head works channels-last with rows first, (H, W, B, ...): the recurrent bodies
already produce that layout, and a log-softmax over a contiguous last dimension is several times
faster than over dimension 1 of an NCHW tensor. ``forward`` returns a permuted view.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..nn.blocks import ConvBlock, RecurrentBlock, ResidualStack
from ..nn.logistic import mixture_log_prob_at, output_logits
from ..nn.masked import MaskedConv2d
from ..errors import ArgumentError

MAX_LEVELS = 65536  # values per channel: 16-bit images at most (the head has channels * levels maps)


@dataclass
class ModelConfig:
    """Everything needed to rebuild a model; saved with every checkpoint."""

    arch: str
    channels: int = 1
    levels: int = 256
    hidden: int = 16
    layers: int = 7
    head: int | None = None  # maps in the two output 1×1 layers; default 2 * hidden
    skip: bool = False  # learned skip connections from every block to the output
    first_kernel: int = 7
    options: dict[str, Any] = field(default_factory=dict)  # architecture-specific settings
    mixtures: int = 0  # output: 0 = a categorical over the levels; K > 0 = K discretized logistics

    def __post_init__(self):
        for name in ("channels", "levels", "hidden", "layers", "first_kernel"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int):
                raise ArgumentError(f"{name} must be an integer, got {v!r}")
        if self.channels not in (1, 3):
            raise ArgumentError(f"channels must be 1 (gray) or 3 (RGB), got {self.channels}")
        if not 2 <= self.levels <= MAX_LEVELS:
            raise ArgumentError(f"levels must be in [2, {MAX_LEVELS}] (at most 16-bit values), got {self.levels}")
        if self.hidden < self.channels:
            raise ArgumentError(f"hidden must be >= channels ({self.channels}), got {self.hidden}")
        if self.layers < 1:
            raise ArgumentError(f"layers must be >= 1, got {self.layers}")
        if self.first_kernel < 1 or self.first_kernel % 2 == 0:
            raise ArgumentError(f"first_kernel must be a positive odd integer, got {self.first_kernel}")
        if self.head is None:
            self.head = 2 * self.hidden
        if isinstance(self.head, bool) or not isinstance(self.head, int) or self.head < self.channels:
            raise ArgumentError(f"head must be an integer >= channels, got {self.head!r}")
        if not isinstance(self.skip, bool):
            raise ArgumentError(f"skip must be True or False, got {self.skip!r}")
        if isinstance(self.mixtures, bool) or not isinstance(self.mixtures, int) or self.mixtures < 0:
            raise ArgumentError(f"mixtures must be 0 (categorical output) or a positive integer (a "
                             f"mixture of that many discretized logistics), got {self.mixtures!r}")

    @property
    def outputs(self) -> int:
        """Numbers the head predicts per value: ``levels`` logits, or 3 per logistic."""
        return 3 * self.mixtures if self.mixtures else self.levels

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        if not self.mixtures:  # categorical: the dict (and fingerprint) of models from before the field
            del d["mixtures"]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ModelConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ArgumentError(f"unknown model config keys: {sorted(unknown)}")
        return cls(**d)


def log_probs_of(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Logits (H, W, B, C, L) and values int (B, C, H, W) -> log p of each value (B, C, H, W),
    computed in float32 (at least: a float64 model gives float64)."""
    logp = logits.to(torch.promote_types(logits.dtype, torch.float32)).log_softmax(dim=-1)  # (H, W, B, C, L)
    picked = logp.gather(-1, x.permute(2, 3, 0, 1).unsqueeze(-1)).squeeze(-1)  # (H, W, B, C)
    return picked.permute(2, 3, 0, 1)


class PixelModel(nn.Module):
    """Base class: a PixelRNN-family model over images of ``channels`` × H × W with ``levels``
    values per channel. Any H×W works at run time."""

    OPTIONS: dict[str, Any] = {}  # architecture-specific options and their defaults

    def __init__(self, config: ModelConfig):
        super().__init__()
        self._set_config(config)
        self.context_proj: nn.ModuleList | None = None  # conditional networks: see _init_context
        C, h = config.channels, config.hidden
        self.first = MaskedConv2d(C, 2 * h, config.first_kernel, "A", C)
        self.head1 = MaskedConv2d(2 * h, config.head, 1, "B", C)
        self.head2 = MaskedConv2d(config.head, C * config.outputs, 1, "B", C)
        with torch.no_grad():  # start close to the uniform distribution (log2(levels) bits/dim)
            self.head2.weight.mul_(0.1)
            self.head2.bias.zero_()
            if config.mixtures:  # K equal bumps side by side, each 2/K wide, tiling [-1, 1]
                K = config.mixtures
                bias = self.head2.bias.view(C, 3, K)  # per channel: logits, means, log-scales
                bias[:, 1] = (torch.arange(K) * 2 + 1) / K - 1
                bias[:, 2] = math.log(1 / K)  # a logistic of scale s is about 4s wide at half height

    def _set_config(self, config: ModelConfig) -> None:
        """Check the architecture options against ``OPTIONS``, fill in their defaults, keep config."""
        unknown = set(config.options) - set(self.OPTIONS)
        if unknown:
            raise ArgumentError(f"unknown option(s) for {config.arch!r}: {sorted(unknown)}"
                             + (f"; it takes {sorted(self.OPTIONS)}" if self.OPTIONS else ""))
        config.options = {**self.OPTIONS, **config.options}
        self.config = config

    # -- properties ---------------------------------------------------------------------------
    @property
    def channels(self) -> int:
        return self.config.channels

    @property
    def levels(self) -> int:
        return self.config.levels

    @property
    def device(self) -> torch.device:
        return self.first.weight.device

    def set_dropout(self, p: float) -> "PixelModel":
        """Drop out each value of every residual block's branch with probability ``p`` in
        training mode (0: off, the default). Evaluation, sampling and coding run in eval mode
        and are unaffected. Not saved with the model: it is a training setting."""
        if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0 <= p < 1:
            raise ArgumentError(f"dropout must be a number in [0, 1), got {p!r}")
        for m in self.modules():
            if isinstance(m, (RecurrentBlock, ConvBlock)):
                m.dropout = float(p)
        return self

    # -- the network --------------------------------------------------------------------------
    def _body(self, features: torch.Tensor) -> torch.Tensor:  # (B, 2h, H, W) -> (H, W, B, 2h)
        raise NotImplementedError

    def _embed(self, x: torch.Tensor) -> torch.Tensor:  # int (B, C, H, W) -> float in [-1, 1]
        return x.to(self.first.weight.dtype) * (2.0 / (self.levels - 1)) - 1.0

    @property
    def mixtures(self) -> int:
        """0 for a categorical output; K for a mixture of K discretized logistics."""
        return self.config.mixtures

    def _head_params(self, features: torch.Tensor) -> torch.Tensor:  # (H, W, B, 2h) -> (H, W, B, C, outputs)
        out = self.head2.pointwise(F.relu(self.head1.pointwise(F.relu(features))))
        return out.unflatten(-1, (self.channels, self.config.outputs))

    def _head(self, features: torch.Tensor) -> torch.Tensor:  # (H, W, B, 2h) -> (H, W, B, C, levels)
        return output_logits(self._head_params(features), self.levels, self.mixtures)

    def _logits(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        """checked int (B, C, H, W) -> (H, W, B, C, L). ``context``: see :meth:`_init_context`."""
        return self._logits_embedded(self._embed(x), context)

    def _logits_embedded(self, e: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        """The network on an embedded image (float (B, C, H, W) in [-1, 1]) -> (H, W, B, C, L)."""
        return self._head(self._features(e, context))

    def _features(self, e: torch.Tensor, context: torch.Tensor | None = None,
                  image_terms: torch.Tensor | None = None) -> torch.Tensor:
        """Embedded image (B, C, H, W) -> the last block's output (H, W, B, 2h), before the head.
        ``image_terms``: see :meth:`_image_terms` (training with distribution augmentation)."""
        features = self.first(e)
        if context is None and image_terms is None:
            return self._body(features)
        conds = None if context is None else self._context_terms(context)
        if image_terms is not None:
            extra = self._image_terms(image_terms)
            conds = extra if conds is None else [c + t for c, t in zip(conds, extra)]
        return self._body(features, conds)

    # -- conditioning (conditional networks, e.g. the second stage of the multi-scale model) ------
    # A conditional network gets a context map (B, c, H, W) that is KNOWN before the image is
    # generated; for every layer an unmasked 1×1 conv maps it to that layer's pre-activation width
    # and the result is added there (Row LSTM / Diagonal BiLSTM: the input-to-state map; PixelCNN:
    # the output of the block's k×k masked conv). Unconditional models have no such parameters.
    def _context_widths(self) -> list[int]:
        """Per layer, the width of the map the conditioning term is added to."""
        raise NotImplementedError(f"{type(self).__name__} cannot be conditioned")

    def _init_context(self, channels: int) -> None:
        """Make this a conditional network on a ``channels``-map context (called by the
        architectures' constructors with ``context_channels`` > 0): one unmasked 1×1 conv per
        layer, ``context_proj.{l}.weight`` (width, channels, 1, 1), no bias."""
        if isinstance(channels, bool) or not isinstance(channels, int) or channels < 1:
            raise ArgumentError(f"context channels must be a positive integer, got {channels!r}")
        self.context_proj = nn.ModuleList(nn.Conv2d(channels, w, 1, bias=False)
                                          for w in self._context_widths())

    @property
    def context_channels(self) -> int:
        """Channels of the context map of a conditional network; 0 for an unconditional one."""
        return 0 if self.context_proj is None else self.context_proj[0].in_channels

    def _check_context(self, context: torch.Tensor, B: int, H: int, W: int) -> None:
        if self.context_proj is None:
            raise ArgumentError(f"{type(self).__name__} is not a conditional network (no context)")
        if tuple(context.shape) != (B, self.context_channels, H, W):
            raise ArgumentError(f"context must have shape {(B, self.context_channels, H, W)}, "
                             f"got {tuple(context.shape)}")

    def _context_terms(self, context: torch.Tensor) -> list[torch.Tensor]:
        """context (B, c, H, W) -> per layer the term to add (what ``_body`` takes as ``conds``):
        here channels-last (H, W, B, width), all layers in one matrix product."""
        w = torch.cat([p.weight[:, :, 0, 0] for p in self.context_proj])  # (sum of widths, c)
        return list(F.linear(context.permute(2, 3, 0, 1), w).split(self._context_widths(), dim=-1))

    def _image_terms(self, terms: torch.Tensor) -> list[torch.Tensor]:
        """One vector per image, (B, sum of the layer widths), -> per layer a term constant over
        the image, shaped to broadcast where the conditioning is added: here channels-last
        (1, 1, B, width). It is added at every pixel alike, so it cannot break causality."""
        return [t[None, None] for t in terms.split(self._context_widths(), dim=-1)]

    def _engine_context(self, context: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """What a cached-sampling engine needs to add the conditioning: the context map
        (n, c, H, W) and per layer the (c, width) matrix of its 1×1 conv (detached copies)."""
        return context.detach(), [p.weight[:, :, 0, 0].t().detach().clone() for p in self.context_proj]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (B, levels, C, H, W) of every value given all earlier ones (teacher forcing);
        ``F.cross_entropy(logits, x)`` is the mean NLL per value in nats."""
        return self._logits(self.check_input(x)).permute(2, 4, 3, 0, 1)

    # -- the distribution ---------------------------------------------------------------------
    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """Exact log-likelihood of each image in nats: (B,)."""
        return self.value_log_probs(x).sum(dim=(1, 2, 3))

    def value_log_probs(self, x: torch.Tensor, *, terms: torch.Tensor | None = None) -> torch.Tensor:
        """log p(x[b, c, i, j] | all earlier values) for every value: (B, C, H, W), in nats.
        ``terms`` (B, ``term_width``): per-image vectors added to every layer's pre-activations
        (split over the layers), e.g. the symmetry of ``--dihedral`` training; None: none."""
        x = self.check_input(x)
        return self._log_probs_embedded(self._embed(x), x, image_terms=terms)

    @property
    def term_width(self) -> int:
        """The width of the per-image ``terms`` that ``value_log_probs`` takes: the sum of the
        pre-activation widths of all layers. ArgumentError for a model that takes none."""
        try:
            return sum(self._context_widths())
        except NotImplementedError:
            raise ArgumentError(f"{self.config.arch} takes no per-image terms") from None

    def _log_probs_embedded(self, e: torch.Tensor, x: torch.Tensor,
                            context: torch.Tensor | None = None,
                            image_terms: torch.Tensor | None = None) -> torch.Tensor:
        """log p of the values x (checked int (B, C, H, W)) from the network on their embedding e:
        (B, C, H, W). A mixture output evaluates only the bins of x (K numbers per value, not
        K x levels); the result equals the entries of the full distribution. ``image_terms``: see
        :meth:`_image_terms`."""
        features = self._features(e, context, image_terms)
        if not self.mixtures:
            return log_probs_of(self._head(features), x)
        params = self._head_params(features)  # (H, W, B, C, 3K)
        return mixture_log_prob_at(params, x.permute(2, 3, 0, 1), self.levels, self.mixtures).permute(2, 3, 0, 1)

    def bits_per_dim(self, x: torch.Tensor) -> torch.Tensor:
        """Negative log-likelihood in bits per value (B,): log2(levels) for a uniform model."""
        return -self.log_prob(x) / (math.log(2) * x[0].numel())

    def check_input(self, x: torch.Tensor) -> torch.Tensor:
        """Validate an image batch and return it as int64 on the model's device."""
        if not isinstance(x, torch.Tensor):
            raise ArgumentError(f"expected a torch.Tensor of shape (B, C, H, W), got {type(x).__name__}")
        if x.dtype.is_floating_point or x.dtype.is_complex or x.dtype == torch.bool:
            raise ArgumentError(f"expected an integer tensor of pixel values in [0, {self.levels}), "
                             f"got dtype {x.dtype}")
        if x.dim() != 4:
            raise ArgumentError(f"expected shape (B, C, H, W), got {tuple(x.shape)}")
        if x.shape[1] != self.channels:
            raise ArgumentError(f"expected {self.channels} channel(s), got {x.shape[1]} "
                             f"(shape {tuple(x.shape)})")
        if x.shape[0] < 1 or x.shape[2] < 1 or x.shape[3] < 1:
            raise ArgumentError(f"empty image batch: shape {tuple(x.shape)}")
        if x.dtype in (torch.uint16, torch.uint32, torch.uint64):  # no min/max kernels for these
            x = x.to(torch.int64)  # (uint64 above 2**63 - 1 wraps negative: refused below)
        lo, hi = torch.stack(torch.aminmax(x)).tolist()  # one device-to-host copy
        if lo < 0 or hi >= self.levels:
            raise ArgumentError(f"pixel values must be in [0, {self.levels - 1}], got min {lo}, max {hi}")
        return x.to(device=self.device, dtype=torch.long)

    # -- generation (see pixelrnn.sampling) ---------------------------------------------------
    def sample(self, n: int, height: int | None = None, width: int | None = None, *,
               generator: torch.Generator | None = None, temperature: float = 1.0,
               method: str = "cached", progress=False) -> torch.Tensor:
        """``n`` images drawn from the model: int64 (n, C, height, width) on the model's device.

        ``method="cached"`` (default) computes every (layer, position) once, about the cost of one
        forward pass; ``"naive"`` re-runs the whole network per value (reference). The same
        ``generator`` state gives the same images with both methods. ``temperature`` T > 0 divides
        the logits (T = 1: the model's distribution). ``progress``: True for a progress bar on
        stderr, or a callable ``f(done, total)``. Runs in eval mode under ``torch.no_grad``; the
        training flag is restored afterwards. See :mod:`pixelrnn.sampling`."""
        from ..sampling import sample
        return sample(self, n, height, width, generator=generator, temperature=temperature,
                      method=method, progress=progress)

    def complete(self, x: torch.Tensor, known: torch.Tensor, generator: torch.Generator | None = None,
                 particles: int = 1, *, temperature: float = 1.0, method: str = "cached",
                 progress=False) -> torch.Tensor:
        """Fill in the values of ``x`` (int (B, C, H, W)) where ``known`` (bool, broadcastable to
        x, e.g. (B, 1, H, W) or (H, W)) is False; known values are returned exactly unchanged.
        ``particles=K`` > 1: K candidates per image (K times the work, run as one batch), one kept
        per image by the likelihood of the known values that follow an unknown one in raster
        order. See :mod:`pixelrnn.sampling`."""
        from ..sampling import complete
        return complete(self, x, known, generator, particles, temperature=temperature,
                        method=method, progress=progress)

    def _sampling_engine(self, n: int, height: int, width: int, schedule: str | None = None,
                         context: torch.Tensor | None = None):
        """The cached-sampling engine of the body (see pixelrnn.sampling.core); per architecture.
        ``schedule``: None (the architecture's fastest), "raster" or "wavefront". ``context``
        (conditional networks only): the (n, c, H, W) context map, fixed for the whole run."""
        raise NotImplementedError(f"no cached sampler for {type(self).__name__}")

    def _has_sampling_engine(self) -> bool:
        return type(self)._sampling_engine is not PixelModel._sampling_engine

    @property
    def has_cached_sampler(self) -> bool:
        """True when ``method="cached"`` is available (else only ``"naive"``)."""
        return self._has_sampling_engine()

    def generate(self, values: torch.Tensor, known: torch.Tensor | None, **kwargs):
        """The sampling driver (arguments checked by the caller): ``(images, logits,
        log_weights)``; see :func:`pixelrnn.sampling.core.generate` for the keyword arguments
        (``decide`` is the entropy coder's hook)."""
        from ..sampling.core import generate
        return generate(self, values, known, **kwargs)

    def extra_repr(self) -> str:
        c = self.config
        return (f"arch={c.arch!r}, channels={c.channels}, levels={c.levels}, hidden={c.hidden}, layers={c.layers}"
                + (f", mixtures={c.mixtures}" if c.mixtures else ""))


class RecurrentPixelModel(PixelModel):
    """The body shared by the two PixelRNNs: L residual blocks around a recurrent layer
    (``layer``: RowLSTM or DiagonalBiLSTM), computed channels-last (H, W, B, 2h) throughout.
    ``state_maps``: the width of the layer's input-to-state map in units of h (4 gates; 8 for
    the two directions of the Diagonal BiLSTM) -- where a conditional network adds its terms."""

    layer: type[nn.Module]
    state_maps: int

    def __init__(self, config: ModelConfig, *, context_channels: int = 0):
        super().__init__(config)
        h, C = config.hidden, config.channels
        blocks = [RecurrentBlock(self.layer(2 * h, h, C), h, C) for _ in range(config.layers)]
        self.stack = ResidualStack(blocks, 2 * h, C, skip=config.skip, channels_last=True)
        if context_channels:  # a conditional network (see PixelModel._init_context)
            self._init_context(context_channels)

    def _context_widths(self) -> list[int]:
        return [self.state_maps * self.config.hidden] * self.config.layers

    def _body(self, features: torch.Tensor, conds: list[torch.Tensor] | None = None) -> torch.Tensor:
        # (B, 2h, H, W) -> (H, W, B, 2h); conds: channels-last per-block conditioning terms
        return self.stack(features.permute(2, 3, 0, 1).contiguous(), conds)
