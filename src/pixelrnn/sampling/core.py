"""The sampling driver shared by every architecture: the schedules (raster order or wavefront)
and ``generate``. The value choice and completion with particles are in ``chooser.py``, the parts
of the stack that are the same for all architectures (the first k×k mask-A convolution, the output
head, skip connections, the LSTM step) in ``parts.py``.

An *engine* (one per architecture and schedule, see ``row_lstm.py``, ``diagonal_bilstm.py``,
``pixelcnn.py``) holds the cached activations of the residual blocks. A raster-order engine
provides::

    engine.x0(j)        the (n, 2h) buffer that receives the first conv's output for pixel (i, j)
    engine.start_row(i) per-row work that only needs rows < i (e.g. state-to-state terms)
    engine.pixel(j)     run every block at pixel (i, j); returns the (n, 2h) stream for the head
    engine.end_row(i)   per-row work that needs the whole row i (e.g. right-to-left direction)

A wavefront engine has ``skew`` s (pixel (i, j) runs at step t = s*i + j) and ``max_rows`` and
provides ``begin_step(t, lo, hi)``, ``x0(t, lo, hi)`` and ``step(t, lo, hi)`` for the pixels
(i, t - s*i), i = lo..hi, of a step, as (S*n, features) matrices (row-major over (i, batch)).

``pixel``/``step`` only *write* activations of the current position(s) and only *read* those of
earlier ones, so they can run several times on the same pixels (once per colour channel, each time
with one more channel of the pixel known) and the last run leaves the exact state behind. An
engine with ``colour_slices = True`` takes the colour ``c`` as a last argument and computes only
colour group c of every layer in that pass (see ``parts``); the driver then runs every pass,
needed or not, and the first conv and the head take the same slices.
"""
from __future__ import annotations

from typing import Callable

import torch

from ..progress import as_progress
from .chooser import Chooser, resample
from .native_pass import NativePass, NativeRow
from .parts import FirstConv, Head, SkewedFirstConv

__all__ = ["generate", "resample"]


def _naive(logits_fn, ch: Chooser, prog) -> None:
    C, H, W = ch.C, ch.H, ch.W
    images = ch.images()
    for i in range(H):
        for j in range(W):
            t = i * W + j
            for c in range(C):
                if ch.needed(c, t, i, i, W):
                    logits = logits_fn(images.contiguous())[i, j, :, c]  # one full pass per value
                    ch.choose(logits, c, t, i, i, W)
            prog.advance(C)


def sliced(engine, C: int) -> bool:
    """Whether the passes of a pixel compute one colour group each (see ``parts``)."""
    return C > 1 and getattr(engine, "colour_slices", False)


def _raster(model, ch: Chooser, prog, engine) -> None:
    """Pixel-by-pixel schedule in raster order (for engines whose pixel (i, 0) needs all of row
    i - 1, like the Diagonal BiLSTM's)."""
    n, C, H, W = ch.n, ch.C, ch.H, ch.W
    first = FirstConv(model, n, H, W)
    head = Head(model, n)
    images = ch.images()
    by_colour = sliced(engine, C)
    fused = NativeRow.of(engine, first, head, by_colour)
    for i in range(H):
        first.start_row(i, images[:, :, i])
        engine.start_row(i)
        if fused is not None and ch.plain_row(i):  # every pass and draw of the row in one call
            fused.run(i, ch)
            prog.advance(C * W)
            engine.end_row(i, native=True)
            first.end_row(i)
            continue
        for j in range(W):
            x0 = engine.x0(j)
            t = i * W + j
            for c in range(C):
                need = ch.needed(c, t, i, i, W)
                if by_colour:
                    first.pixel(j, x0, c)
                    s = engine.pixel(j, c)
                    head.advance(s, c)
                elif need or c == C - 1:  # a pass that no logits need is skipped
                    first.pixel(j, x0)
                    s = engine.pixel(j)
                if need:
                    v = ch.choose(head.logits(s, c, by_colour), c, t, i, i, W)
                    if v is not None:  # the pixel's values, for the first conv of later passes/pixels
                        first.set_value(j, c, v[0])
            prog.advance(C)
        engine.end_row(i)
        first.end_row(i)


def _wavefront(model, ch: Chooser, prog, engine) -> None:
    """Wavefront schedule: pixel (i, j) at step t = s*i + j, every pixel of a step at once.

    Pixel (i, j) needs the values and activations of the row above up to column j + s - 1 (the
    first conv reaches r columns right, a 3×3 conv or the Row LSTM's state one column), which are
    all at earlier steps when s = max(those reaches) + 1. s*(H-1) + W steps instead of H*W: for
    28×28 and s = 4, 136 steps of up to 7 pixels."""
    n, C, H, W = ch.n, ch.C, ch.H, ch.W
    s = engine.skew
    first = SkewedFirstConv(model, n, H, W, s, ch.images())
    head = Head(model, n * engine.max_rows)
    by_colour = sliced(engine, C)
    fused = NativePass.of(engine, first, head, n, by_colour)

    def python_pass(t: int, lo: int, hi: int, c: int, need: bool) -> torch.Tensor | None:
        cc = c if by_colour else None
        first.pixel(t, lo, hi, engine.x0(t, lo, hi), cc)
        out = engine.step(t, lo, hi, cc)
        if by_colour:
            head.advance(out, c)
        return head.logits(out, c, by_colour) if need else None

    run = fused.run if fused is not None else python_pass
    for t in range(s * (H - 1) + W):
        lo, hi = max(0, -((W - 1 - t) // s)), min(H - 1, t // s)
        engine.begin_step(t, lo, hi)
        if lo > hi:
            continue
        if fused is not None and fused.draws and by_colour:  # all colours' plain draws in one call
            plains = [ch.plain(c, t, lo, hi, s) for c in range(C)]
            if all(p is not None for p in plains):
                fused.run_step(t, lo, hi, plains, ch.temperature)
                prog.advance(C * (hi - lo + 1))
                continue
        for c in range(C):
            need = ch.needed(c, t, lo, hi, s)
            if not (by_colour or need or c == C - 1):  # without colour slices a pass no logits need
                continue
            plain = ch.plain(c, t, lo, hi, s) if need and fused is not None and fused.draws else None
            if plain is not None:  # the native pass draws, keeps and embeds the values as below
                fused.run(t, lo, hi, c, need, plain, ch.temperature)
                continue
            logits = run(t, lo, hi, c, need)
            v = ch.choose(logits, c, t, lo, hi, s) if need else None
            if v is not None:
                first.set_value(t, lo, hi, c, v)
        prog.advance(C * (hi - lo + 1))


def generate(net, values: torch.Tensor, known: torch.Tensor | None, *, generator=None,
             temperature: float = 1.0, method: str = "cached", particles: int = 1,
             progress: bool | Callable = False, record: bool = False, desc: str = "sampling",
             keep_particles: bool = False, schedule: str | None = None,
             decide: Callable | None = None, context=None, logits_fn: Callable | None = None,
             weigh_all_known: bool = False):
    """Core of sample()/complete() for ONE network (``net``: a PixelNetwork), arguments checked.

    values: int64 (B, C, H, W) on the network's device (unknown positions hold anything in range);
    known: bool (B, C, H, W) or None (nothing known). Returns ``(images, logits, log_weights)``:
    images int64 (B, C, H, W) (all B*K particles, unresampled, with ``keep_particles``); with
    ``record=True`` the logits (B*K, levels, C, H, W) of every value position as the sampler
    computed them, else None; log_weights (B, K) float64 (None when K = 1). ``schedule``
    ("raster" or "wavefront") overrides the engine's default schedule (for tests). ``decide``
    replaces the random draw by a callback (see :class:`~pixelrnn.sampling.chooser.Chooser`;
    particles must be 1). ``context``: a conditional network's engine context
    (``net.engine_context(map)``, cached method). ``logits_fn``: the naive method's full pass,
    int (n, C, H, W) -> (H, W, n, C, L) (default ``net.logits``). ``weigh_all_known``: the
    particle weights count every known value, not only those after the first unknown one (for
    particles that differ before it, e.g. by their label)."""
    B, C, H, W = values.shape
    K = particles
    if K > 1:
        values = values.repeat_interleave(K, dim=0)
        known = known.repeat_interleave(K, dim=0) if known is not None else None
    values = values.masked_fill(~known, 0) if known is not None else torch.zeros_like(values)
    prog = as_progress(progress, C * H * W, desc)
    was_training = net.training
    try:
        net.eval()
        with torch.no_grad():
            ch = Chooser(values, known, generator, temperature, weights=K > 1, record=record,
                         levels=net.levels, record_dtype=net.first.weight.dtype, decide=decide,
                         weigh_all_known=weigh_all_known)
            # the chooser's buffers are ordinary tensors (autograd and in-place operations take
            # them afterwards); the engine's are made and used in inference mode, which saves
            # ~15 % of the overhead of its many small operations
            with torch.inference_mode():
                if method == "naive":
                    _naive(logits_fn or net.logits, ch, prog)
                else:
                    engine = net.sampling_engine(ch.n, H, W, schedule=schedule, context=context)
                    schedule_of = _wavefront if getattr(engine, "skew", None) is not None else _raster
                    schedule_of(net, ch, prog, engine)
            images, logits, log_w = ch.images().contiguous(), ch.logits(), None
            if K > 1:
                log_w = ch.w.view(B, K)
                if not keep_particles:
                    images, logits = resample(log_w, generator, images, logits)
    finally:
        net.train(was_training)
        prog.close()
    return images, logits, log_w
