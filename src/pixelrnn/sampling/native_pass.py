"""The cached samplers' passes as native calls: a wavefront step (``nn/native/sampling.cpp``) and a
Diagonal BiLSTM row (``nn/native/diagonal.cpp``).

The wavefront schedule (``core._wavefront``) runs, for each step and colour, the first k×k conv
(``parts.SkewedFirstConv.pixel``), every residual block (the engine's ``step``) and the output
head (``parts.Head``) on the step's S*n rows. :class:`NativePass` does the same operations in one
call, the rows cut into blocks of whole image rows that run on separate threads: the same numbers
row by row (tested: samples and ``.prnn`` bytes equal to the Python pass's), about twice as fast
on two threads. An engine that supports it has ``native_layers(t, lo, hi, c)``, returning what
the native call needs for its blocks: ``(kind, buffers, weights, geometry, align)`` (the blocks
start at multiples of ``align`` image rows: see ``block_align``). :class:`NativeRow`, for the
raster-order Diagonal BiLSTM, below.
"""
from __future__ import annotations

import math

import torch

from ..nn import native
from ..nn.logistic import output_logits


def block_align(n: int, widths: list[int]) -> int:
    """The fewest image rows (of n images each) that fill a multiple of 64 elements of every
    buffer of the given row widths on which a native pass runs a torch element-wise operation as
    one contiguous range: blocks of rows that start there give every element the arithmetic of
    the Python pass (torch treats the last elements of a range apart: ``sampling.cpp``, Step)."""
    q = 1
    for w in widths:
        q = math.lcm(q, 64 // math.gcd(64, n * w))
    return q


class NativePass:
    """The passes of a wavefront engine's steps (with the first conv ``first`` and the head
    ``head`` of the schedule, n images, ``sliced``: one colour group per pass)."""

    def __init__(self, engine, first, head, n: int, sliced: bool):
        self.engine, self.first, self.head, self.n, self.sliced = engine, first, head, n, sliced
        self.colours: dict = {}  # per colour: the first conv's and the head's weights and columns

    @classmethod
    def of(cls, engine, first, head, n: int, sliced: bool) -> NativePass | None:
        """The native pass for this engine, or None where the Python pass runs: an engine
        without ``native_layers``, a device other than the CPU, or no native library."""
        if not hasattr(engine, "native_layers") or not native.sampling_usable(first.E):
            return None
        return cls(engine, first, head, n, sliced)

    def parts(self, c: int | None) -> tuple[list, list, list]:
        if c not in self.colours:
            fw, fg = self.first.native_args(c if self.sliced else None)
            hw, hg = self.head.native_args(0 if c is None else c, self.sliced)
            self.colours[c] = (fw + hw, fg, hg)
        return self.colours[c]

    @property
    def draws(self) -> bool:
        """Whether ``run`` can draw the values too (a categorical output: its logits are the head's
        numbers)."""
        return not self.head.mixtures

    def run(self, t: int, lo: int, hi: int, c: int, need: bool, plain: tuple | None = None,
            temperature: float = 1.0) -> torch.Tensor | None:
        """The pass of colour c over the step's pixels; their logits (S*n, levels) when ``need``.
        With ``plain`` = (uniforms (S*n, 1), the chooser's values there (S, n)) (``Chooser.plain``):
        the values drawn from them as ``chooser.draw`` draws, kept there and embedded for the first
        conv (``SkewedFirstConv.set_value``); nothing returned."""
        out = self.call(t, lo, hi, [c], need, [] if plain is None else [plain], temperature)
        if plain is not None or not need:
            return None
        return output_logits(out, self.head.levels, self.head.mixtures)

    def run_step(self, t: int, lo: int, hi: int, plains: list, temperature: float) -> None:
        """Every colour pass of the step in one call, when all their values are plain draws
        (``plains``: ``Chooser.plain`` of each colour): as ``run`` for each colour in turn."""
        self.call(t, lo, hi, list(range(len(plains))), True, plains, temperature)

    def call(self, t: int, lo: int, hi: int, colours: list, need: bool, plains: list, temperature: float):
        """The native call for the passes of ``colours`` in turn (see ``run`` and ``run_step``)."""
        S = hi - lo + 1
        weights, first, head, layer, keep, align = [], [], [], [], [], 1
        for c in colours:
            cc = c if self.sliced else None
            kind, bufs, w, g, a = self.engine.native_layers(t, lo, hi, cc)
            first_head, fg, hg = self.parts(cc)
            weights += first_head + w
            first += fg
            head += hg
            layer += g
            keep += [c, self.first.off]
            align = math.lcm(align, a)
        step = [t, lo, hi, self.engine.skew, self.n, native.threads_for(S), int(need), align, len(colours)]
        draws = [x for plain in plains for x in plain] + ([self.first.table] if plains else [])
        return torch.ops.pixelrnn_native.wave_pass(kind, [self.first.E, *self.head.scratch(S * self.n), *bufs],
                                                   weights, step, first, head, layer, draws, temperature, keep)


class NativeRow:
    """A raster-order engine's whole row as one native call when all its values are plain draws
    (``Chooser.plain_row``): every pixel and colour pass, the draws, and the values kept and
    embedded for the first conv. For the Diagonal BiLSTM (``native_row``), whose row must be
    sampled pixel by pixel: its images run on separate threads. Its element-wise arithmetic is
    its own (``nn/native/diagonal.cpp``), so it serves sampling only; coding, completion
    with known values in the row, particle weights and recorded logits take the Python pass."""

    def __init__(self, engine, first, head, sliced: bool):
        self.bufs, self.weights, self.geo, self.layout = engine.native_row(first, head, sliced)
        self.passes = engine.C if sliced else 1
        self.n, self.table = engine.n, first.table

    @classmethod
    def of(cls, engine, first, head, sliced: bool) -> NativeRow | None:
        """The native row for this engine, or None (as ``NativePass.of``; also a mixture output,
        whose logits the native draw does not compute)."""
        if not hasattr(engine, "native_row") or head.mixtures or not native.sampling_usable(first.erow):
            return None
        return cls(engine, first, head, sliced)

    def run(self, i: int, ch) -> None:
        """Row i: every value drawn from the chooser's uniforms, kept in its values."""
        rw, cols, fast = self.geo
        geo = [i, self.passes, rw, cols, fast, native.threads_for(self.n)] + self.layout
        torch.ops.pixelrnn_native.diag_row(self.bufs + [ch.u, ch.v, self.table], self.weights, geo, ch.temperature)
