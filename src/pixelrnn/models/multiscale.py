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

``pixelrnn.sampling.sample/complete/generate`` drive ONE network: use this model's own
``sample``/``complete`` methods (the CLI does).
"""
from __future__ import annotations

import dataclasses

import torch
import torch.nn as nn
import torch.nn.functional as F

from .base import ModelConfig, PixelModel
from .diagonal_bilstm import DiagonalBiLSTMPixelRNN
from .pixelcnn import PixelCNN
from .row_lstm import RowLSTMPixelRNN
from ..errors import ArgumentError

BASES: dict[str, type[PixelModel]] = {
    "row_lstm": RowLSTMPixelRNN,
    "diagonal_bilstm": DiagonalBiLSTMPixelRNN,
    "pixelcnn": PixelCNN,
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


class _Stage:
    """One stage of the two-stage sampler as ``pixelrnn.sampling.core.generate`` sees a model:
    the network's own attributes (first conv, head, stack, levels, training flag, ...) with the
    teacher-forced logits (naive method) or the engine factory (cached method) replaced."""

    def __init__(self, net: PixelModel, logits=None, engine=None):
        self.__dict__.update(_net=net, _logits_fn=logits, _engine_fn=engine)

    def __getattr__(self, name):
        return getattr(self._net, name)

    def _logits(self, x: torch.Tensor) -> torch.Tensor:
        return self._logits_fn(x)

    def _sampling_engine(self, n: int, height: int, width: int, schedule: str | None = None):
        return self._engine_fn(n, height, width, schedule)


class MultiScalePixelRNN(PixelModel):
    """Options: ``base`` ("row_lstm", "diagonal_bilstm" or "pixelcnn": the architecture of both
    stages), ``factor`` (f >= 2: the small image is x[..., ::f, ::f]), ``context`` (maps c of the
    upsampled context; default h = hidden) and ``kernel`` (base="pixelcnn" only: its masked conv
    size, default 3). ``hidden``, ``layers``, ``head``, ``skip`` and ``first_kernel`` apply to both
    stages. Submodules: ``small`` (unconditional), ``cond`` (conditional, with ``context_proj``),
    ``upsample`` (:class:`ContextUpsampler`)."""

    OPTIONS = {"base": "row_lstm", "factor": 2, "context": None, "kernel": None}

    def __init__(self, config: ModelConfig):
        nn.Module.__init__(self)  # no first conv / head of its own: the two stages have theirs
        self._set_config(config)
        self.context_proj = None  # the multi-scale model itself takes no context
        opts = config.options
        base, factor, context, kernel = opts["base"], opts["factor"], opts["context"], opts["kernel"]
        if base == "multiscale":
            raise ArgumentError("base cannot be 'multiscale': the two stages are single-scale models; "
                             f"choose one of {sorted(BASES)}")
        if not isinstance(base, str) or base not in BASES:
            raise ArgumentError(f"unknown base architecture {base!r}; choose one of {sorted(BASES)}")
        if isinstance(factor, bool) or not isinstance(factor, int) or factor < 2:
            raise ArgumentError(f"factor must be an integer >= 2 (the small image is x[..., ::factor, "
                             f"::factor]), got {factor!r}")
        if context is None:
            context = opts["context"] = config.hidden
        if isinstance(context, bool) or not isinstance(context, int) or context < 1:
            raise ArgumentError(f"context must be a positive integer (maps of the upsampled small "
                             f"image), got {context!r}")
        sub_options = {}
        if kernel is not None:
            if base != "pixelcnn":
                raise ArgumentError(f"kernel only applies to base='pixelcnn', not base={base!r}")
            sub_options["kernel"] = kernel
        cls = BASES[base]

        def stage_config() -> ModelConfig:
            return dataclasses.replace(config, arch=base, options=dict(sub_options))

        self.small = cls(stage_config())
        self.cond = cls(stage_config(), context_channels=context)
        self.upsample = ContextUpsampler(config.channels, context, factor)

    def __getattr__(self, name: str):
        if name in ("first", "head1", "head2", "stack"):  # what the single-network drivers use
            raise AttributeError(
                f"MultiScalePixelRNN has no single {name!r}: it is two networks (.small and "
                f".cond); sample with model.sample() / model.complete() "
                f"(pixelrnn.sampling.sample/complete/generate drive one network)")
        return super().__getattr__(name)

    # -- properties ---------------------------------------------------------------------------
    @property
    def factor(self) -> int:
        return self.config.options["factor"]

    @property
    def base(self) -> str:
        return self.config.options["base"]

    @property
    def device(self) -> torch.device:
        return self.small.device

    def picked(self, height: int, width: int) -> torch.Tensor:
        """bool (H, W): True at the picked pixels (the small image), i and j multiples of f."""
        m = torch.zeros(height, width, dtype=torch.bool, device=self.device)
        m[::self.factor, ::self.factor] = True
        return m

    # -- the network --------------------------------------------------------------------------
    def _embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.small._embed(x)

    def _context(self, small_embedded: torch.Tensor, height: int, width: int) -> torch.Tensor:
        return self.upsample(small_embedded, height, width)

    def _logits(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        """checked int (B, C, H, W) -> (H, W, B, C, L): small-model logits at the picked positions,
        conditional-model logits elsewhere."""
        if context is not None:
            raise ArgumentError("the multi-scale model takes no context")
        return self._logits_embedded(self._embed(x))

    def _logits_embedded(self, e: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        if context is not None:
            raise ArgumentError("the multi-scale model takes no context")
        f = self.factor
        H, W = e.shape[-2:]
        es = e[:, :, ::f, ::f]
        out = self.cond._logits_embedded(e, self._context(es, H, W))  # (H, W, B, C, L)
        out[::f, ::f] = self.small._logits_embedded(es)
        return out

    def value_log_probs(self, x: torch.Tensor) -> torch.Tensor:
        """log p of every value (B, C, H, W): the small model's at the picked positions, the
        conditional model's elsewhere (the same numbers as from ``model(x)``, without building the
        combined logits: training and evaluation go through here)."""
        x = self.check_input(x)
        f = self.factor
        H, W = x.shape[-2:]
        e = self._embed(x)
        es = e[:, :, ::f, ::f]
        out = self.cond._log_probs_embedded(e, x, self._context(es, H, W)).clone()
        out[:, :, ::f, ::f] = self.small._log_probs_embedded(es, x[:, :, ::f, ::f])
        return out

    def _body(self, features):  # pragma: no cover - the stages have their own bodies
        raise NotImplementedError("MultiScalePixelRNN has two bodies: .small and .cond")

    # -- generation ---------------------------------------------------------------------------
    def _sampling_engine(self, n: int, height: int, width: int, schedule: str | None = None,
                         context: torch.Tensor | None = None):
        raise ArgumentError("the multi-scale model samples in two stages: use its sample() / "
                         "complete() methods (pixelrnn.sampling.generate drives one network)")

    def sample(self, n: int, height: int | None = None, width: int | None = None, *,
               generator: torch.Generator | None = None, temperature: float = 1.0,
               method: str = "cached", progress=False) -> torch.Tensor:
        """``n`` images (int64 (n, C, height, width)) in two stages (see the module docstring for
        the draw order); otherwise as :meth:`PixelModel.sample`."""
        from ..sampling import _sample_start
        values, t = _sample_start(self, n, height, width, temperature, method, generator)
        out, _, _ = self._generate(values, None, generator=generator, temperature=t, method=method,
                                   progress=progress, desc="sampling")
        return out

    def complete(self, x: torch.Tensor, known: torch.Tensor, generator: torch.Generator | None = None,
                 particles: int = 1, *, temperature: float = 1.0, method: str = "cached",
                 progress=False) -> torch.Tensor:
        """Fill in the values of ``x`` where ``known`` is False (known values are returned
        unchanged), in two stages; ``particles=K`` weights K candidates over both stages (see the
        module docstring). Otherwise as :meth:`PixelModel.complete`."""
        from ..sampling import _check_common, _check_int, _check_known
        particles = _check_int("particles", particles)
        t = _check_common(self, temperature, method, generator)
        x, known = _check_known(self, x, known)
        out, _, _ = self._generate(x, known, generator=generator, temperature=t, method=method,
                                   particles=particles, progress=progress, desc="completing")
        return out

    @property
    def has_cached_sampler(self) -> bool:
        return self.small.has_cached_sampler and self.cond.has_cached_sampler

    def generate(self, values: torch.Tensor, known: torch.Tensor | None, **kwargs):
        """The two-stage sampling driver: see :meth:`_generate`."""
        return self._generate(values, known, **kwargs)

    def _stages(self, method: str, H: int, W: int, context: torch.Tensor | None):
        """(stage 1, stage 2) models for ``generate`` for H×W images; stage 2 of the cached method
        needs the (n, c, H, W) context map of the sampled small images."""
        if method == "naive":  # the whole multi-scale model, one full pass per value
            def small_logits(s: torch.Tensor) -> torch.Tensor:
                full = torch.zeros(*s.shape[:2], H, W, dtype=s.dtype, device=s.device)
                full[:, :, ::self.factor, ::self.factor] = s
                return self._logits(full)[::self.factor, ::self.factor]
            return _Stage(self.small, logits=small_logits), _Stage(self.cond, logits=self._logits)
        return self.small, _Stage(self.cond, engine=lambda n, H, W, schedule: (
            self.cond._sampling_engine(n, H, W, schedule, context=context)))

    def _generate(self, values: torch.Tensor, known: torch.Tensor | None, *, generator=None,
                  temperature: float = 1.0, method: str = "cached", particles: int = 1,
                  progress=False, record: bool = False, desc: str = "sampling",
                  keep_particles: bool = False, schedule: str | None = None, decide=None, **kwargs):
        """The two-stage counterpart of ``pixelrnn.sampling.core.generate`` (arguments checked),
        with the same arguments and results: ``(images, logits, log_weights)``. With ``record``
        the logits are the small stage's at the picked positions and the conditional stage's
        elsewhere (so they equal ``model(images)`` up to float rounding). ``decide`` (see
        ``generate``; the entropy coder's hook): one callback for both stages, or a pair (stage 1
        on the small image, stage 2 on the full image with the picked values known). Extra keyword
        arguments go to ``generate`` of both stages."""
        decide1, decide2 = decide if isinstance(decide, (tuple, list)) else (decide, decide)
        from ..sampling.core import _Progress, generate, resample
        B, C, H, W = values.shape
        f, K = self.factor, particles
        n = B * K
        s1 = C * (-(-H // f)) * (-(-W // f))
        total = C * H * W
        prog = _Progress(progress, total, desc)
        last = [0]

        def report(done: int) -> None:
            if done > last[0]:
                prog.update(done - last[0])
                last[0] = done

        cb1 = (lambda done, _total: report(done)) if progress else False
        cb2 = (lambda done, t2: report(s1 + (done * (total - s1)) // t2)) if progress else False
        picked = self.picked(H, W)
        was_training = self.training
        try:
            self.eval()
            with torch.no_grad():
                # stage 1: the small image
                stage1, _ = self._stages(method, H, W, None)
                small_known = None if known is None else known[:, :, ::f, ::f].contiguous()
                small, small_logits, log_w = generate(
                    stage1, values[:, :, ::f, ::f].contiguous(), small_known, generator=generator,
                    temperature=temperature, method=method, particles=K, progress=cb1,
                    record=record, desc=desc, keep_particles=True, schedule=schedule,
                    decide=decide1, **kwargs)
                # stage 2: the rest, the picked pixels known
                kn = None if known is None else (known.repeat_interleave(K, 0) if K > 1 else known)
                full = values.repeat_interleave(K, 0) if K > 1 else values.clone()
                full = full.masked_fill(~kn, 0) if kn is not None else torch.zeros_like(full)
                full[:, :, ::f, ::f] = small
                known2 = picked.expand(n, C, H, W)
                known2 = (known2 | kn if kn is not None else known2).contiguous()
                context = None
                if method != "naive" or K > 1:
                    context = self._context(self._embed(small), H, W)
                _, stage2 = self._stages(method, H, W, context)
                images, logits, _ = generate(
                    stage2, full, known2, generator=generator, temperature=temperature,
                    method=method, particles=1, progress=cb2, record=record, desc=desc,
                    schedule=schedule, decide=decide2, **kwargs)
                if record:
                    logits[:, :, :, ::f, ::f] = small_logits
                if K > 1:
                    log_w = log_w + self._cond_weights(images, kn, picked, context).view(B, K)
                    if not keep_particles:
                        images, logits = resample(log_w, generator, images, logits)
        finally:
            self.train(was_training)
            prog.close()
        return images, logits, log_w

    def _cond_weights(self, images: torch.Tensor, known: torch.Tensor | None, picked: torch.Tensor,
                      context: torch.Tensor, chunk: int = 64) -> torch.Tensor:
        """Per image (float64 (n,)), the conditional model's exact (T = 1) log-likelihood of the
        known non-picked values that come after an unknown value in the two-stage order: all of
        them when a picked value was unknown, else those after the first unknown non-picked one
        in raster order."""
        n, C, H, W = images.shape
        out = torch.zeros(n, dtype=torch.float64, device=images.device)
        if known is None:
            return out
        raster = torch.arange(C * H * W, device=images.device).view(H, W, C).permute(2, 0, 1)
        rest = ~picked  # (H, W)
        small_unknown = (~known & picked).flatten(1).any(1)  # (n,)
        first = torch.where(~known & rest, raster, C * H * W).flatten(1).min(1).values  # (n,)
        after = small_unknown.view(-1, 1, 1, 1) | (raster > first.view(-1, 1, 1, 1))
        mask = known & rest & after
        for s in range(0, n, chunk):
            e = min(n, s + chunk)
            if not mask[s:e].any():
                continue
            lg = self.cond._logits(images[s:e], context[s:e]).to(torch.float64)  # (H, W, b, C, L)
            lp = lg.log_softmax(-1).gather(-1, images[s:e].permute(2, 3, 0, 1).unsqueeze(-1))
            lp = lp.squeeze(-1).permute(2, 3, 0, 1)  # (b, C, H, W)
            out[s:e] = torch.where(mask[s:e], lp, 0.0).sum(dim=(1, 2, 3))
        return out

    def extra_repr(self) -> str:
        return super().extra_repr() + f", base={self.base!r}, factor={self.factor}"
