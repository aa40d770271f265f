"""The network of a PixelRNN-family model: first layer, body, head. A distribution
(:mod:`pixelrnn.models.distribution`) owns one or two of them and turns their outputs into
log-probabilities, samples and completions; the cached samplers (:mod:`pixelrnn.sampling`) read
their layers directly.

    x (B, C, H, W) int in [0, levels)
      -> embed: scale to [-1, 1]
      -> 7×7 conv, mask A                      (B, 2h, H, W)
      -> L residual blocks (the body)          (H, W, B, 2h), channels-last
      -> ReLU -> 1×1 mask B -> ReLU -> 1×1 mask B   (H, W, B, C * outputs)
      -> logits (H, W, B, C, levels): a categorical over `levels` per value
         (mixtures=K: the head predicts 3K numbers per value instead, and the logits are the exact
         log-probabilities of a mixture of K discretized logistics: see pixelrnn.nn.logistic)

The head works channels-last with rows first, (H, W, B, ...): the recurrent bodies already
produce that layout, and a log-softmax over a contiguous last dimension is several times faster
than over dimension 1 of an NCHW tensor. In ``log_probs`` it runs on pieces of whole rows of at
most ``head_chunk`` logits each.

Activation checkpointing (``checkpointing``, in training with gradients on): ``log_probs`` runs the
whole network -- first layer, blocks, head -- on ``checkpoint_bands`` bands of rows, top to
bottom, each band a ``torch.utils.checkpoint`` that keeps only its inputs: the rows of the image
(and of a context map) and, per block, the small state the band above ended with (see
:mod:`pixelrnn.nn.blocks`; the first layer re-reads the image rows its 7×7 kernel reaches above).
In the backward pass each band is recomputed in turn, from the bottom: the activations of one
band instead of the whole image, for about one more forward pass. The loss and gradients are those
of the whole network up to float rounding (products over a band, sums of per-band gradients);
the dropout draws differ (one per band), with the same distribution.

Without gradients (evaluation, scoring) a large batch of large images runs band by band too, with
nothing to recompute: bands of rows whose residual stream holds at most ``band_values`` values
(a 64×64 batch of 64 at h = 64 is 4 bands, 128×128 is 16; small images are one band, the whole
pass as before). The log-probabilities are the same up to float rounding; the memory is one band's.

Conditioning. A network can add, in every layer, a term to its pre-activations (Row LSTM /
Diagonal BiLSTM: the input-to-state map; PixelCNN: the output of the block's k×k masked conv):
- a *context map* (B, c, H, W) known before the image is generated (the upsampled small image of
  the multi-scale model), through one unmasked 1×1 conv per layer (``context_proj``);
- per-image *terms* (B, sum of ``term_widths()``): one vector per image, split over the layers and
  added at every pixel alike (a label's embedding, a ``--dihedral`` symmetry's bias).
Both are functions of things fixed before the first value is drawn, so neither opens a path from a
later value: causality and normalisation hold for every context and every term.
"""
from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

from ..errors import ArgumentError
from ..nn.blocks import RecurrentBlock, ResidualStack
from ..nn.logistic import mixture_log_prob_at, output_logits
from ..nn.masked import MaskedConv2d
from .config import ModelConfig


def fill_options(config: ModelConfig, defaults: dict[str, Any]) -> None:
    """Check ``config.options`` against an architecture's ``defaults`` and fill in the missing
    ones (the saved config lists every option)."""
    unknown = set(config.options) - set(defaults)
    if unknown:
        raise ArgumentError(f"unknown option(s) for {config.arch!r}: {sorted(unknown)}"
                            + (f"; it takes {sorted(defaults)}" if defaults else ""))
    config.options = {**defaults, **config.options}


class PixelNetwork(nn.Module):
    """First layer, body and head; subclasses provide the body (``stack`` and ``body``), the
    widths where conditioning is added (``term_widths``) and their cached sampler
    (``sampling_engine``). ``context_channels`` > 0 makes a conditional network."""

    OPTIONS: dict[str, Any] = {}  # architecture-specific options and their defaults
    head_chunk = 1 << 22  # logits per piece of the head in log_probs (16 MiB of float32)
    checkpoint_bands = 8  # bands of rows of an image with activation checkpointing
    band_values = 1 << 23  # without gradients: residual-stream values per band (32 MiB of float32)

    def __init__(self, config: ModelConfig):
        super().__init__()
        fill_options(config, self.OPTIONS)
        self.config = config
        self.context_proj: nn.ModuleList | None = None  # see init_context
        self.checkpointing = False  # recompute band by band in the backward pass (log_probs)
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

    channels = property(lambda self: self.config.channels)
    levels = property(lambda self: self.config.levels)
    mixtures = property(lambda self: self.config.mixtures)  # 0: categorical; K: K logistics
    device = property(lambda self: self.first.weight.device)

    # -- the forward pass ---------------------------------------------------------------------
    def body(self, features: torch.Tensor, conds: list[torch.Tensor] | None = None,
             outputs: list | None = None) -> torch.Tensor:
        """(B, 2h, H, W) -> (H, W, B, 2h); ``conds``: per-layer terms (see ``context_terms``);
        ``outputs``: a list that receives every block's output (B, 2h, H, W)."""
        raise NotImplementedError

    def body_band(self, features: torch.Tensor, conds: list[torch.Tensor] | None,
                  states: list) -> tuple[torch.Tensor, list]:
        """A band of rows (B, 2h, R, W) -> (R, W, B, 2h) and the blocks' states at its end;
        ``states``: the band above's (None each at the top), ``conds`` the band's terms."""
        raise NotImplementedError

    def embed(self, x: torch.Tensor) -> torch.Tensor:  # int (B, C, H, W) -> float in [-1, 1]
        return x.to(self.first.weight.dtype) * (2.0 / (self.levels - 1)) - 1.0

    def features(self, e: torch.Tensor, context: torch.Tensor | None = None,
                 terms: torch.Tensor | None = None, outputs: list | None = None) -> torch.Tensor:
        """Embedded image (B, C, H, W) -> the last block's output (H, W, B, 2h), before the head,
        with the conditioning of a context map and/or per-image terms. ``outputs``: a list that
        receives the first layer's and every block's output, (B, 2h, H, W) each."""
        features = self.first(e)
        if outputs is not None:
            outputs.append(features)
        return self.body(features, self.conditioning(context, terms), outputs)

    def conditioning(self, context: torch.Tensor | None, terms: torch.Tensor | None) -> list | None:
        """The per-layer terms of a context map and/or per-image terms (None: neither)."""
        if context is None and terms is None:
            return None
        conds = None if context is None else self.context_terms(context)
        if terms is not None:
            extra = self.image_terms(terms)
            conds = extra if conds is None else [c + t for c, t in zip(conds, extra)]
        return conds

    def head_params(self, features: torch.Tensor) -> torch.Tensor:  # (H, W, B, 2h) -> (H, W, B, C, outputs)
        out = self.head2.pointwise(F.relu(self.head1.pointwise(F.relu(features))))
        return out.unflatten(-1, (self.channels, self.config.outputs))

    def head(self, features: torch.Tensor) -> torch.Tensor:  # (H, W, B, 2h) -> (H, W, B, C, levels)
        return output_logits(self.head_params(features), self.levels, self.mixtures)

    def logits(self, x: torch.Tensor, context: torch.Tensor | None = None,
               terms: torch.Tensor | None = None) -> torch.Tensor:
        """checked int (B, C, H, W) -> logits (H, W, B, C, L) of every value given the earlier ones."""
        return self.head(self.features(self.embed(x), context, terms))

    def value_log_probs_at(self, features: torch.Tensor, xl: torch.Tensor) -> torch.Tensor:
        """Features (H, W, B, 2h) and the values there, channels-last int (H, W, B, C) -> log p of
        each value (H, W, B, C), in float32 at least. A mixture output evaluates only the bins of
        the values (K numbers per value, not K x levels); the result equals the entries of the
        full distribution."""
        if self.mixtures:
            return mixture_log_prob_at(self.head_params(features), xl, self.levels, self.mixtures)
        logits = self.head(features)  # (H, W, B, C, L)
        logp = logits.to(torch.promote_types(logits.dtype, torch.float32)).log_softmax(dim=-1)
        return logp.gather(-1, xl.unsqueeze(-1)).squeeze(-1)

    def log_probs(self, e: torch.Tensor, x: torch.Tensor, context: torch.Tensor | None = None,
                  terms: torch.Tensor | None = None) -> torch.Tensor:
        """log p of the values x (checked int (B, C, H, W)) from the network on their embedding e:
        (B, C, H, W). With ``checkpointing`` on in training, band by band (see the module's
        docstring)."""
        if self.checkpointing and self.training and torch.is_grad_enabled():
            return self.banded_log_probs(e, x, context, terms, self.checkpoint_bands)
        if not torch.is_grad_enabled():
            B, _, H, W = x.shape
            bands = -(-H // max(1, self.band_values // (W * B * 2 * self.config.hidden)))
            if bands > 1:
                return self.banded_log_probs(e, x, context, terms, bands, recompute=False)
        return self.head_log_probs(self.features(e, context, terms), x)

    def head_log_probs(self, features: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Features (H, W, B, 2h) and the values there, int (B, C, H, W) -> log p (B, C, H, W):
        the head on pieces of whole rows of at most ``head_chunk`` logits."""
        xl = x.permute(2, 3, 0, 1)  # (H, W, B, C)
        H, W, B, C = xl.shape
        rows = max(1, self.head_chunk // (W * B * C * self.config.outputs))
        parts = [self.value_log_probs_at(features[r:r + rows], xl[r:r + rows]) for r in range(0, H, rows)]
        return (parts[0] if len(parts) == 1 else torch.cat(parts)).permute(2, 3, 0, 1)

    def banded_log_probs(self, e: torch.Tensor, x: torch.Tensor, context: torch.Tensor | None,
                         terms: torch.Tensor | None, bands: int, recompute: bool = True) -> torch.Tensor:
        """``log_probs`` computed on ``bands`` bands of rows, top to bottom, each one recomputed in
        the backward pass (``recompute``; else run as it is, e.g. without gradients)."""
        H = x.shape[2]
        rows = -(-H // bands)
        states: list = [None] * self.config.layers
        parts = []
        for top in range(0, H, rows):
            args = (e, x, context, terms, top, min(H, top + rows), states)
            logp, states = (checkpoint(self.band_log_probs, *args, use_reentrant=False) if recompute
                            else self.band_log_probs(*args))
            parts.append(logp.permute(2, 3, 0, 1))  # (R, W, B, C): the head's own layout
        return torch.cat(parts).permute(2, 3, 0, 1)  # laid out as log_probs of the whole image

    def band_log_probs(self, e, x, context, terms, top: int, bottom: int, states: list) -> tuple:
        """log p (B, C, R, W) of rows top..bottom-1 of x and the blocks' states at the band's end,
        from the states the band above left (``states``; None each for the first band)."""
        reach = self.first.kernel_size[0] // 2  # rows above that the first layer's kernel reads
        start = max(0, top - reach)
        features = self.first(e[:, :, start:bottom])[:, :, top - start:]  # (B, 2h, R, W)
        context = None if context is None else context[:, :, top:bottom]
        out, states = self.body_band(features, self.conditioning(context, terms), states)
        return self.head_log_probs(out, x[:, :, top:bottom]), states

    # -- conditioning -------------------------------------------------------------------------
    def term_widths(self) -> list[int]:
        """Per layer, the width of the pre-activation map the conditioning is added to."""
        raise NotImplementedError

    def init_context(self, channels: int) -> None:
        """Make this a conditional network on a ``channels``-map context: one unmasked 1×1 conv
        per layer, ``context_proj.{l}.weight`` (width, channels, 1, 1), no bias."""
        if isinstance(channels, bool) or not isinstance(channels, int) or channels < 1:
            raise ArgumentError(f"context channels must be a positive integer, got {channels!r}")
        self.context_proj = nn.ModuleList(nn.Conv2d(channels, w, 1, bias=False)
                                          for w in self.term_widths())

    @property
    def context_channels(self) -> int:
        """Channels of the context map of a conditional network; 0 for an unconditional one."""
        return 0 if self.context_proj is None else self.context_proj[0].in_channels

    def check_context(self, context: torch.Tensor, B: int, H: int, W: int) -> None:
        if self.context_proj is None:
            raise ArgumentError(f"{type(self).__name__} is not a conditional network (no context)")
        if tuple(context.shape) != (B, self.context_channels, H, W):
            raise ArgumentError(f"context must have shape {(B, self.context_channels, H, W)}, "
                                f"got {tuple(context.shape)}")

    def context_terms(self, context: torch.Tensor) -> list[torch.Tensor]:
        """context (B, c, H, W) -> per layer the term to add (what ``body`` takes as ``conds``):
        here channels-last (H, W, B, width), all layers in one matrix product."""
        w = torch.cat([p.weight[:, :, 0, 0] for p in self.context_proj])  # (sum of widths, c)
        return list(F.linear(context.permute(2, 3, 0, 1), w).split(self.term_widths(), dim=-1))

    def image_terms(self, terms: torch.Tensor) -> list[torch.Tensor]:
        """Per-image vectors (B, sum of the layer widths) -> per layer a term constant over the
        image, shaped to broadcast where the conditioning is added: here (1, 1, B, width)."""
        return [t[None, None] for t in terms.split(self.term_widths(), dim=-1)]

    def engine_context(self, context: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """What a cached-sampling engine needs to add the conditioning: the context map
        (n, c, H, W) and per layer the (c, width) matrix of its 1×1 conv (detached copies)."""
        return context.detach(), [p.weight[:, :, 0, 0].t().detach().clone() for p in self.context_proj]

    # -- generation ---------------------------------------------------------------------------
    def sampling_engine(self, n: int, height: int, width: int, schedule: str | None = None,
                        context: tuple[torch.Tensor, list[torch.Tensor]] | None = None):
        """The cached-sampling engine of the body (see pixelrnn.sampling.core). ``schedule``: None
        (the architecture's fastest), "raster" or "wavefront". ``context``: what
        ``engine_context`` returns, fixed for the whole run (conditional networks)."""
        raise NotImplementedError(f"no cached sampler for {type(self).__name__}")

    @property
    def has_sampling_engine(self) -> bool:
        return type(self).sampling_engine is not PixelNetwork.sampling_engine


class RecurrentNetwork(PixelNetwork):
    """The body shared by the two PixelRNNs: L residual blocks around a recurrent layer
    (``layer``: RowLSTM or DiagonalBiLSTM), computed channels-last (H, W, B, 2h) throughout.
    ``state_maps``: the width of the layer's input-to-state map in units of h (4 gates; 8 for
    the two directions of the Diagonal BiLSTM) -- where the conditioning is added."""

    layer: type[nn.Module]
    state_maps: int

    def __init__(self, config: ModelConfig, *, context_channels: int = 0):
        super().__init__(config)
        h, C = config.hidden, config.channels
        blocks = [RecurrentBlock(self.layer(2 * h, h, C), h, C) for _ in range(config.layers)]
        self.stack = ResidualStack(blocks, 2 * h, C, skip=config.skip, channels_last=True)
        if context_channels:
            self.init_context(context_channels)

    def term_widths(self) -> list[int]:
        return [self.state_maps * self.config.hidden] * self.config.layers

    def body(self, features: torch.Tensor, conds: list[torch.Tensor] | None = None,
             outputs: list | None = None) -> torch.Tensor:
        # (B, 2h, H, W) -> (H, W, B, 2h); conds: channels-last per-block conditioning terms
        blocks = None if outputs is None else []
        out = self.stack(features.permute(2, 3, 0, 1).contiguous(), conds, blocks)
        if outputs is not None:
            outputs.extend(b.permute(2, 3, 0, 1) for b in blocks)  # (B, 2h, H, W) each
        return out

    def body_band(self, features: torch.Tensor, conds: list[torch.Tensor] | None, states: list):
        # (B, 2h, R, W) -> (R, W, B, 2h); conds: the band's rows of the terms (or broadcast ones)
        return self.stack.band(features.permute(2, 3, 0, 1).contiguous(), conds, states)
