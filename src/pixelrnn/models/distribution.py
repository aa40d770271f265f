"""The model is a distribution over images; its network is an implementation detail.

Like TensorFlow Probability's ``PixelCNN`` distribution, a :class:`PixelModel` offers
``log_prob(x)`` (exact, in nats: the sum of the log-probabilities of every value given all
earlier ones, in raster order, R -> G -> B inside a pixel), ``value_log_probs``, ``bits_per_dim``,
``sample`` and ``complete``, and checks every input. The networks that compute the conditionals
(:mod:`pixelrnn.models.network`) are private parts: a :class:`SingleNetworkModel` owns one
(``.net``), the multi-scale model two (:mod:`pixelrnn.models.multiscale`).

A model with ``classes`` = K > 0 is a distribution of images given a label y in [0, K) and
stores the label prior p(y) (:mod:`pixelrnn.models.labels`): ``log_prob(x, y)`` is
log p(x | y), ``log_prob(x)`` the marginal, ``classify(x)`` log p(y | x), and ``sample`` /
``complete`` take ``y`` (None: drawn from the prior).

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
from .labels import (check_labels, check_prior, draw_labels, label_context,
                     marginal_value_log_probs)
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
        self.class_names: list[str] | None = None  # names of the labels (saved with the model)
        if config.classes:  # p(y): uniform until set_prior (training: the split's label frequencies)
            self.register_buffer("prior", torch.full((config.classes,), 1.0 / config.classes))

    channels = property(lambda self: self.config.channels)
    levels = property(lambda self: self.config.levels)
    mixtures = property(lambda self: self.config.mixtures)  # 0: categorical; K: K logistics
    classes = property(lambda self: self.config.classes)  # 0: unconditional; K: labels 0..K-1

    def set_prior(self, p) -> "PixelModel":
        """Set the label prior from counts or probabilities (K,) (e.g. the training labels'
        frequencies)."""
        probs = check_prior(p, self.classes) if self.classes else check_labels(0, 1, 0, None)
        self.prior.copy_(probs.to(self.prior))
        return self

    def check_labels(self, y, n: int) -> torch.Tensor | None:
        """``y`` (None, an int or (n,) integer tensor) as int64 (n,) on the model's device."""
        return check_labels(y, n, self.classes, self.device)

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

    def set_checkpointing(self, on: bool, bands: int | None = None) -> "PixelModel":
        """Activation checkpointing in training (``--checkpoint-activations``): every network
        runs in ``bands`` bands of rows (None: unchanged, 8 at first), each recomputed in the
        backward pass instead of keeping its activations (see ``pixelrnn.models.network``); the
        same loss and gradients up to float rounding, with the memory of one band. A training
        setting, not saved with the model."""
        if not isinstance(on, bool):
            raise ArgumentError(f"checkpointing must be True or False, got {on!r}")
        if bands is not None and (isinstance(bands, bool) or not isinstance(bands, int) or bands < 1):
            raise ArgumentError(f"checkpoint bands must be an integer >= 1, got {bands!r}")
        for m in self.modules():
            if isinstance(m, PixelNetwork):
                m.checkpointing = on
                if bands is not None:
                    m.checkpoint_bands = bands
        return self

    def check_input(self, x: torch.Tensor) -> torch.Tensor:
        """Validate an image batch and return it as int64 on the model's device."""
        return check_images(x, self.channels, self.levels, self.device)

    # -- the distribution ---------------------------------------------------------------------
    def forward(self, x: torch.Tensor, y=None) -> torch.Tensor:
        """Logits (B, levels, C, H, W) of every value given all earlier ones (teacher forcing;
        a conditional model: and the labels ``y``); ``F.cross_entropy(logits, x)`` is the mean NLL
        per value in nats."""
        x = self.check_input(x)
        y = self.check_labels(y, x.shape[0])
        if self.classes and y is None:
            raise ArgumentError("a conditional model's logits need the labels y")
        return self.value_logits(x, y).permute(2, 4, 3, 0, 1)

    def value_logits(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """checked int (B, C, H, W) (and checked labels) -> logits (H, W, B, C, L),
        channels-last (see ``forward``)."""
        raise NotImplementedError

    def log_prob(self, x: torch.Tensor, y=None) -> torch.Tensor:
        """Exact log-likelihood of each image in nats: (B,). A conditional model gives
        log p(x | y) for labels ``y`` (int or (B,)), and the marginal log sum_y p(y) p(x | y)
        under the stored prior when ``y`` is None."""
        if self.classes and y is None:
            return self.joint_log_probs(x).logsumexp(dim=1)
        return self.value_log_probs(x, y).sum(dim=(1, 2, 3))

    def value_log_probs(self, x: torch.Tensor, y=None, *, terms: torch.Tensor | None = None) -> torch.Tensor:
        """log p(x[b, c, i, j] | all earlier values) for every value: (B, C, H, W), in nats;
        given the labels ``y`` for a conditional model (None: the marginal's conditionals, which
        sum to the marginal ``log_prob``). ``terms`` (B, ``term_width``): per-image vectors added
        to every layer's pre-activations (split over the layers), e.g. the symmetry of
        ``--dihedral`` training; None: none."""
        x = self.check_input(x)
        if self.classes and y is None:
            per_label = torch.stack([self.value_log_probs(x, k, terms=terms) for k in range(self.classes)])
            return marginal_value_log_probs(per_label, self.prior.log()).to(per_label.dtype)
        return self.labelled_log_probs(x, self.check_labels(y, x.shape[0]), terms)

    def labelled_log_probs(self, x: torch.Tensor, y: torch.Tensor | None, terms) -> torch.Tensor:
        """``value_log_probs`` of checked images and labels (None for an unconditional model)."""
        raise NotImplementedError

    def label_parameters(self) -> list[nn.Parameter]:
        """The label vectors of a conditional model (training may give them their own learning
        rate); [] for an unconditional one."""
        return [p for name, p in self.named_parameters() if name.split(".")[0].endswith("labels")]

    def layer_outputs(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The outputs of the first layer and of every residual block, (B, 2h, H, W) each, for
        checked images x (a conditional model: without a label); see :mod:`pixelrnn.understanding`."""
        raise NotImplementedError

    def joint_log_probs(self, x: torch.Tensor) -> torch.Tensor:
        """log p(y) + log p(x | y) for every image and label: (B, classes), in nats."""
        if not self.classes:
            raise ArgumentError("this model is unconditional (classes=0): it has no labels")
        x = self.check_input(x)
        B, K = x.shape[0], self.classes
        y = torch.arange(K, device=x.device).repeat_interleave(B)  # (K*B,): label k for block k
        lp = self.labelled_log_probs(x.repeat(K, 1, 1, 1), y, None).sum(dim=(1, 2, 3))
        return lp.view(K, B).t() + self.prior.log().to(lp.dtype)

    def classify(self, x: torch.Tensor) -> torch.Tensor:
        """log p(y | x) by Bayes' rule: (B, classes); every row log-sum-exps to 0 (normalised in
        float64, returned in the dtype of the model's log-probabilities)."""
        joint = self.joint_log_probs(x)
        wide = joint.double()
        return (wide - wide.logsumexp(dim=1, keepdim=True)).to(joint.dtype)

    @property
    def term_width(self) -> int:
        """The width of the per-image ``terms`` that ``value_log_probs`` takes: the sum of the
        pre-activation widths of all layers. ArgumentError for a model that takes none."""
        raise ArgumentError(f"{self.config.arch} takes no per-image terms")

    def bits_per_dim(self, x: torch.Tensor) -> torch.Tensor:
        """Negative log-likelihood in bits per value (B,): log2(levels) for a uniform model."""
        return -self.log_prob(x) / (math.log(2) * x[0].numel())

    # -- generation (see pixelrnn.sampling) ---------------------------------------------------
    def sample(self, n: int, height: int | None = None, width: int | None = None, *, y=None,
               generator: torch.Generator | None = None, temperature: float = 1.0,
               method: str = "cached", progress=False) -> torch.Tensor:
        """``n`` images drawn from the model: int64 (n, C, height, width) on the model's device.

        ``method="cached"`` (default) computes every (layer, position) once, about the cost of one
        forward pass; ``"naive"`` re-runs the whole network per value (reference). The same
        ``generator`` state gives the same images with both methods. ``temperature`` T > 0 divides
        the logits (T = 1: the model's distribution). ``progress``: True for a progress bar on
        stderr, or a callable ``f(done, total)``. Runs in eval mode under ``torch.no_grad``; the
        training flag is restored afterwards. A conditional model draws images of the labels
        ``y`` (an int or (n,) tensor; None: each image's label drawn from the prior first). See
        :mod:`pixelrnn.sampling`."""
        n = check_count("n (number of images)", n)
        height, width = check_size(height, width)
        t = check_sampling(self, temperature, method, generator)
        labels = self.check_labels(y, n)
        if self.classes and labels is None:
            labels = draw_labels(self.prior, n, generator)
        values = torch.zeros(n, self.channels, height, width, dtype=torch.long, device=self.device)
        return self.generate(values, None, y=labels, generator=generator, temperature=t,
                             method=method, progress=progress, desc="sampling")[0]

    def complete(self, x: torch.Tensor, known: torch.Tensor, generator: torch.Generator | None = None,
                 particles: int = 1, *, y=None, temperature: float = 1.0, method: str = "cached",
                 progress=False) -> torch.Tensor:
        """Fill in the values of ``x`` (int (B, C, H, W)) where ``known`` (bool, broadcastable to
        x, e.g. (B, 1, H, W) or (H, W)) is False; known values are returned exactly unchanged.
        ``particles=K`` > 1: K candidates per image (K times the work, run as one batch), one kept
        per image by the likelihood of the known values that follow an unknown one in raster
        order. A conditional model completes given the labels ``y`` (int or (B,)). With ``y``
        None: when every image's known values come before its unknown ones (a top part, a
        bottom half to fill; ``known_first``), each image's label is drawn from the exact
        posterior p(y | known values) (one teacher-forced pass per label) and one particle is
        exact; otherwise each particle draws its label from the prior and its weight carries
        p(known | y), so resampling infers the label. See :mod:`pixelrnn.sampling`."""
        return self.complete_with_weights(x, known, generator, particles, y=y, temperature=temperature,
                                          method=method, progress=progress)[0]

    def complete_with_weights(self, x, known, generator=None, particles: int = 1, *, y=None,
                              temperature: float = 1.0, method: str = "cached", progress=False):
        """``complete`` and the (B, K) float64 log-weights of the particles (None when K = 1)."""
        particles = check_count("particles", particles)
        t = check_sampling(self, temperature, method, generator)
        x, known = check_known(self, x, known)
        labels, infer = self.check_labels(y, x.shape[0]), False
        if labels is not None:
            labels = labels.repeat_interleave(particles)
        elif self.classes and bool(self.known_first(known).all()):  # exact: p(y | known values)
            labels = self.posterior_labels(x, known, generator).repeat_interleave(particles)
        elif self.classes:  # a label per particle from the prior; the weights see every known value
            labels, infer = draw_labels(self.prior, x.shape[0] * particles, generator), True
        images, _, log_w = self.generate(x, known, y=labels, weigh_all_known=infer, generator=generator,
                                         temperature=t, method=method, particles=particles,
                                         progress=progress, desc="completing")
        return images, log_w

    def known_first(self, known: torch.Tensor) -> torch.Tensor:
        """(B,) bool: whether every known value of an image comes before all of its unknown ones
        in the order that ``generate`` draws them (``known``: checked, (B, C, H, W)). Here never
        (the multi-scale model draws its small image first); single-network models: raster order."""
        return torch.zeros(known.shape[0], dtype=torch.bool, device=known.device)

    def posterior_labels(self, x: torch.Tensor, known: torch.Tensor, generator=None) -> torch.Tensor:
        """One label per image drawn from p(y | the known values of x) ∝ p(y) p(known | y), for
        checked x and known (B, C, H, W) whose known values come first (``known_first``): then
        p(known | y) is the product of their conditionals in one teacher-forced pass."""
        B, K = x.shape[0], self.classes
        y = torch.arange(K, device=x.device).repeat_interleave(B)  # label k for block k
        with torch.no_grad():
            lp = self.labelled_log_probs(x.repeat(K, 1, 1, 1), y, None)  # (K*B, C, H, W)
        lp = torch.where(known.repeat(K, 1, 1, 1), lp, 0.0).sum(dim=(1, 2, 3)).view(K, B).t()
        joint = lp.double() + self.prior.log().to(x.device)
        return torch.multinomial(joint.softmax(dim=1), 1, generator=generator).squeeze(1)

    def stage_values(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """The values that the stages of ``generate`` draw, in their order, for images x
        (n, C, H, W): here one stage, the whole image (a ``decide`` callback per stage sees them
        in this order; the multi-scale model draws its small image first)."""
        return (x,)

    def generate(self, values: torch.Tensor, known: torch.Tensor | None, *, y=None, **kwargs):
        """The sampling driver, arguments already checked: ``(images, logits, log_weights)``;
        ``y``: a conditional model's labels, one per row after the particles are repeated
        (int64 (B*K,)); keyword arguments as :func:`pixelrnn.sampling.core.generate`
        (``decide`` is the entropy coder's hook, ``weigh_all_known`` makes the particle weights
        count every known value, for a label drawn per particle)."""
        raise NotImplementedError

    @property
    def has_cached_sampler(self) -> bool:
        """True when ``method="cached"`` is available (else only ``"naive"``)."""
        raise NotImplementedError

    def extra_repr(self) -> str:
        c = self.config
        return (f"arch={c.arch!r}, channels={c.channels}, levels={c.levels}, hidden={c.hidden}, layers={c.layers}"
                + (f", mixtures={c.mixtures}" if c.mixtures else "") + (f", classes={c.classes}" if c.classes else ""))


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
        if config.classes:  # one vector per label, split over the layers (zero: no effect at first)
            self.labels = nn.Embedding(config.classes, self.term_width, _weight=torch.zeros(
                config.classes, self.term_width))
        self.register_state_dict_post_hook(_drop_net_prefix)
        self.register_load_state_dict_pre_hook(_add_net_prefix)

    device = property(lambda self: self.net.device)

    def terms_of(self, y: torch.Tensor | None, terms: torch.Tensor | None) -> torch.Tensor | None:
        """The per-image terms of labels ``y`` (checked, or None) plus ``terms``."""
        if y is None:
            return terms
        return self.labels(y) if terms is None else self.labels(y) + terms

    def value_logits(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        return self.net.logits(x, terms=self.terms_of(y, None))

    def labelled_log_probs(self, x: torch.Tensor, y: torch.Tensor | None, terms) -> torch.Tensor:
        return self.net.log_probs(self.net.embed(x), x, terms=self.terms_of(y, terms))

    def layer_outputs(self, x: torch.Tensor) -> list[torch.Tensor]:
        outputs: list[torch.Tensor] = []
        self.net.features(self.net.embed(x), outputs=outputs)
        return outputs

    @property
    def term_width(self) -> int:
        return sum(self.net.term_widths())

    def known_first(self, known: torch.Tensor) -> torch.Tensor:
        order = known.permute(0, 2, 3, 1).flatten(1)  # raster order: rows, columns, R -> G -> B
        return (order[:, 1:] <= order[:, :-1]).all(dim=1)  # never an unknown value, then a known one

    def generate(self, values: torch.Tensor, known: torch.Tensor | None, *, y=None, **kwargs):
        from ..sampling.core import generate
        if y is None:
            return generate(self.net, values, known, **kwargs)
        context = label_context(self.labels.weight, y, self.net.term_widths(), *values.shape[-2:])
        terms = self.labels(y)
        return generate(self.net, values, known, context=context,
                        logits_fn=lambda v: self.net.logits(v, terms=terms), **kwargs)

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
