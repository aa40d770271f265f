"""The model is a distribution over images; its network is an implementation detail.

Like TensorFlow Probability's ``PixelCNN`` distribution, a :class:`PixelModel` offers
``log_prob(x)`` (exact, in nats: the sum of the log-probabilities of every value given all
earlier ones, in raster order, R -> G -> B inside a pixel), ``value_log_probs``, ``bits_per_dim``,
``sample`` and ``complete``, and checks every input. The networks that compute the conditionals
(:mod:`pixelrnn.models.network`) are private parts: a :class:`SingleNetworkModel` owns one
(``.net``), the multi-scale model two (:mod:`pixelrnn.models.multiscale`).

Generation goes through one method, ``generate(values, known, ...)``, which both ``sample``
(nothing known) and ``complete`` (some values known) call after checking their arguments; the
entropy coder (:mod:`pixelrnn.compression`) calls it too, with its ``decide`` hook.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn

from ..errors import ArgumentError
from ..nn.blocks import ConvBlock, RecurrentBlock
from .checks import check_count, check_images, check_known, check_sampling, check_size
from .config import ModelConfig
from .network import PixelNetwork, fill_options


class PixelModel(nn.Module):
    """A distribution over images of ``channels`` × H × W with ``levels`` values per channel (any
    H×W at run time). Subclasses provide ``value_logits``, ``value_log_probs``, ``generate``,
    ``has_cached_sampler`` and ``device``."""

    OPTIONS: dict = {}  # architecture-specific options and their defaults

    def __init__(self, config: ModelConfig):
        super().__init__()
        fill_options(config, self.OPTIONS)
        self.config = config

    channels = property(lambda self: self.config.channels)
    levels = property(lambda self: self.config.levels)
    mixtures = property(lambda self: self.config.mixtures)  # 0: categorical; K: K logistics

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

    def check_input(self, x: torch.Tensor) -> torch.Tensor:
        """Validate an image batch and return it as int64 on the model's device."""
        return check_images(x, self.channels, self.levels, self.device)

    # -- the distribution ---------------------------------------------------------------------
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (B, levels, C, H, W) of every value given all earlier ones (teacher forcing);
        ``F.cross_entropy(logits, x)`` is the mean NLL per value in nats."""
        return self.value_logits(self.check_input(x)).permute(2, 4, 3, 0, 1)

    def value_logits(self, x: torch.Tensor) -> torch.Tensor:
        """checked int (B, C, H, W) -> logits (H, W, B, C, L), channels-last (see ``forward``)."""
        raise NotImplementedError

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """Exact log-likelihood of each image in nats: (B,)."""
        return self.value_log_probs(x).sum(dim=(1, 2, 3))

    def value_log_probs(self, x: torch.Tensor, *, terms: torch.Tensor | None = None) -> torch.Tensor:
        """log p(x[b, c, i, j] | all earlier values) for every value: (B, C, H, W), in nats.
        ``terms`` (B, ``term_width``): per-image vectors added to every layer's pre-activations
        (split over the layers), e.g. the symmetry of ``--dihedral`` training; None: none."""
        raise NotImplementedError

    @property
    def term_width(self) -> int:
        """The width of the per-image ``terms`` that ``value_log_probs`` takes: the sum of the
        pre-activation widths of all layers. ArgumentError for a model that takes none."""
        raise ArgumentError(f"{self.config.arch} takes no per-image terms")

    def bits_per_dim(self, x: torch.Tensor) -> torch.Tensor:
        """Negative log-likelihood in bits per value (B,): log2(levels) for a uniform model."""
        return -self.log_prob(x) / (math.log(2) * x[0].numel())

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
        n = check_count("n (number of images)", n)
        height, width = check_size(height, width)
        t = check_sampling(self, temperature, method, generator)
        values = torch.zeros(n, self.channels, height, width, dtype=torch.long, device=self.device)
        return self.generate(values, None, generator=generator, temperature=t, method=method,
                             progress=progress, desc="sampling")[0]

    def complete(self, x: torch.Tensor, known: torch.Tensor, generator: torch.Generator | None = None,
                 particles: int = 1, *, temperature: float = 1.0, method: str = "cached",
                 progress=False) -> torch.Tensor:
        """Fill in the values of ``x`` (int (B, C, H, W)) where ``known`` (bool, broadcastable to
        x, e.g. (B, 1, H, W) or (H, W)) is False; known values are returned exactly unchanged.
        ``particles=K`` > 1: K candidates per image (K times the work, run as one batch), one kept
        per image by the likelihood of the known values that follow an unknown one in raster
        order. See :mod:`pixelrnn.sampling`."""
        return self.complete_with_weights(x, known, generator, particles, temperature=temperature,
                                          method=method, progress=progress)[0]

    def complete_with_weights(self, x, known, generator=None, particles: int = 1, *,
                              temperature: float = 1.0, method: str = "cached", progress=False):
        """``complete`` and the (B, K) float64 log-weights of the particles (None when K = 1)."""
        particles = check_count("particles", particles)
        t = check_sampling(self, temperature, method, generator)
        x, known = check_known(self, x, known)
        images, _, log_w = self.generate(x, known, generator=generator, temperature=t, method=method,
                                         particles=particles, progress=progress, desc="completing")
        return images, log_w

    def generate(self, values: torch.Tensor, known: torch.Tensor | None, **kwargs):
        """The sampling driver, arguments already checked: ``(images, logits, log_weights)``;
        keyword arguments as :func:`pixelrnn.sampling.core.generate` (``decide`` is the entropy
        coder's hook)."""
        raise NotImplementedError

    @property
    def has_cached_sampler(self) -> bool:
        """True when ``method="cached"`` is available (else only ``"naive"``)."""
        raise NotImplementedError

    def extra_repr(self) -> str:
        c = self.config
        return (f"arch={c.arch!r}, channels={c.channels}, levels={c.levels}, hidden={c.hidden}, layers={c.layers}"
                + (f", mixtures={c.mixtures}" if c.mixtures else ""))


class SingleNetworkModel(PixelModel):
    """The distribution of one network (``NETWORK``, built from the config, kept as ``.net``).

    Its weights are stored under the names they had before the distribution and its network were
    separated (``first.weight``, ``stack.blocks.0...``, not ``net.first.weight``): two state-dict
    hooks drop and restore the ``net.`` prefix, so checkpoints, training states and the
    fingerprints of compressed files keep their meaning."""

    NETWORK: type[PixelNetwork]

    def __init__(self, config: ModelConfig):
        super().__init__(config)
        self.net = self.NETWORK(config)
        self.register_state_dict_post_hook(_drop_net_prefix)
        self.register_load_state_dict_pre_hook(_add_net_prefix)

    device = property(lambda self: self.net.device)

    def value_logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.net.logits(x)

    def value_log_probs(self, x: torch.Tensor, *, terms: torch.Tensor | None = None) -> torch.Tensor:
        x = self.check_input(x)
        return self.net.log_probs(self.net.embed(x), x, terms=terms)

    @property
    def term_width(self) -> int:
        return sum(self.net.term_widths())

    def generate(self, values: torch.Tensor, known: torch.Tensor | None, **kwargs):
        from ..sampling.core import generate
        return generate(self.net, values, known, **kwargs)

    @property
    def has_cached_sampler(self) -> bool:
        return self.net.has_sampling_engine


def _drop_net_prefix(module, state_dict, prefix, local_metadata) -> None:
    for key in [k for k in state_dict if k.startswith(prefix + "net.")]:
        state_dict[prefix + key[len(prefix) + 4:]] = state_dict.pop(key)


def _add_net_prefix(module, state_dict, prefix, local_metadata, strict, missing, unexpected, errors) -> None:
    names = tuple(prefix + name + "." for name, _ in module.net.named_children())
    for key in [k for k in state_dict if k.startswith(names)]:
        state_dict[prefix + "net." + key[len(prefix):]] = state_dict.pop(key)
