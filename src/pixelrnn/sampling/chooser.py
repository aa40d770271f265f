"""Turning logits into values, the same way for every method and schedule: the draws, the
known values, the particle weights (:class:`Chooser`), and importance resampling."""
from __future__ import annotations

from typing import Callable

import torch

from ..nn import native


def slab(x: torch.Tensor, c: int, t: int, lo: int, hi: int, s: int) -> torch.Tensor:
    """View of the positions (c, i, t - s*i), i = lo..hi, of a contiguous (C, H, W, n, ...)
    tensor: shape (S, n, ...). With s = W and lo = hi = i it is the single pixel (i, t - W*i)."""
    st = x.stride()
    S = hi - lo + 1
    row = st[1] - s * st[2] if S > 1 else 0
    return x.as_strided((S,) + tuple(x.shape[3:]), (row,) + st[3:],
                        x.storage_offset() + c * st[0] + lo * st[1] + (t - s * lo) * st[2])


def uniforms(P: int, n: int, generator, device) -> torch.Tensor:
    """P draws of ``torch.rand(n, generator=generator)`` in turn, stacked (P, n). On the CPU one
    call gives the same numbers (the generator fills a tensor serially: tested), on a GPU it does
    not (each call advances the generator by a rounded-up offset), so the calls are made there."""
    if torch.device(device).type == "cpu":
        return torch.rand(P, n, generator=generator, device=device)
    return torch.stack([torch.rand(n, generator=generator, device=device) for _ in range(P)])


def draw(logits: torch.Tensor, u: torch.Tensor, temperature: float) -> torch.Tensor:
    """Inverse-CDF draws: logits (N, levels), u float64 (N, 1) -> int64 (N, 1), per row the number
    of entries of the float64 cumulative softmax(logits / T) that are < u (at most levels - 1).
    With the native library, 64 rows or more run on several threads (``nn/native/sampling.cpp``):
    the same numbers."""
    parts = native.threads_for(logits.shape[0] // 32)
    if parts > 1 and native.usable_for(logits):
        return torch.ops.pixelrnn_native.draw(logits, u, temperature, parts)
    lg = logits.to(torch.float64)
    # T != 1: shift the maximum to 0 first, so that a tiny T sends the others to -inf (argmax)
    z = lg if temperature == 1.0 else (lg - lg.amax(-1, keepdim=True)) / temperature
    cdf = torch.softmax(z, -1).cumsum_(-1)
    return torch.searchsorted(cdf, u).clamp_max_(lg.shape[-1] - 1)


class Chooser:
    """Turns the logits of value positions into values, the same way for every method and schedule.

    Known values are kept. Unknown ones are drawn by inverse CDF: ONE ``torch.rand(n,
    generator=...)`` per value position that has an unknown value in the batch, all drawn up front
    in raster order (so the draws do not depend on the order in which a schedule visits the
    positions); the value is the number of entries of the float64 cumulative softmax(logits / T)
    that are < u. Also accumulates the particle log-weights: the model's exact (T = 1) log-prob of
    each known value that comes after an unknown value of the same image in raster order.

    State is kept channels-first, batch-last, (C, H, W, n), so that the positions of one step of
    any schedule are one strided view (see :func:`slab`).

    ``decide`` (optional) replaces the random draw: ``decide(logits, c, t, lo, hi, s, unknown)``
    gets the logits (S*n, levels) of channel c at the positions of a step that has unknown values,
    and ``unknown``, a bool (S, n) mask of them (None: all unknown), and returns the values, int64
    (S, n) (known ones are kept whatever it returns). No uniforms are drawn. Used by the entropy
    decoder of :mod:`pixelrnn.compression`, and by its encoder, which returns the true values."""

    def __init__(self, values, known, generator, temperature, weights: bool, record: bool,
                 levels: int, record_dtype, decide: Callable | None = None, weigh_all_known: bool = False):
        n, C, H, W = values.shape
        dev = values.device
        self.n, self.C, self.H, self.W = n, C, H, W
        self.temperature = float(temperature)
        self.v = values.permute(1, 2, 3, 0).contiguous()  # (C, H, W, n), updated in place
        if known is None:
            self.kn = None
            self.samp = self.anyk = None
            positions = None
        else:
            self.kn = known.permute(1, 2, 3, 0).contiguous()
            all_known = self.kn.all(-1)
            self.samp = (~all_known).tolist()  # [c][i][j]: some value is drawn here
            self.anyk = self.kn.any(-1).tolist()
            positions = (~all_known).permute(1, 2, 0).reshape(-1)  # raster order (i, j, c)
        self.decide = decide
        # the uniforms: one torch.rand(n) per position with an unknown value, in raster order
        P = 0 if decide is not None else C * H * W if positions is None else int(positions.sum())
        self.u = torch.zeros(H * W * C, n, dtype=torch.float64, device=dev)
        if P:
            stacked = uniforms(P, n, generator, dev).to(torch.float64)
            if positions is None:
                self.u.copy_(stacked)
            else:
                self.u[positions] = stacked
        self.u = self.u.view(H, W, C, n).permute(2, 0, 1, 3).contiguous()  # (C, H, W, n)
        self.w = self.needw = None
        if weights:
            self.w = torch.zeros(n, dtype=torch.float64, device=dev)
            if self.kn is not None:
                raster = torch.arange(C * H * W, device=dev).view(H, W, C).permute(2, 0, 1)
                big = torch.full_like(raster, C * H * W)
                first = torch.where(~self.kn, raster.unsqueeze(-1), big.unsqueeze(-1)).flatten(0, 2).min(0).values
                self.wm = self.kn & (raster.unsqueeze(-1) > first)  # (C, H, W, n)
                if weigh_all_known:  # particles with different labels: every known value counts
                    self.wm = self.kn.clone()
                self.needw = self.wm.any(-1).tolist()
        self.rec = None
        if record:
            self.rec = torch.full((C, H, W, n, levels), float("nan"), dtype=record_dtype, device=dev)

    def _flags(self, c: int, t: int, lo: int, hi: int, s: int) -> tuple[bool, bool, bool]:
        """(draw, mixed, weights) for the positions of a step."""
        if self.kn is None:
            return True, False, False
        js = [(i, t - s * i) for i in range(lo, hi + 1)]
        samp = any(self.samp[c][i][j] for i, j in js)
        mixed = samp and any(self.anyk[c][i][j] for i, j in js)  # some known values to keep
        needw = self.needw is not None and any(self.needw[c][i][j] for i, j in js)
        return samp, mixed, needw

    def needed(self, c: int, t: int, lo: int, hi: int, s: int) -> bool:
        """Whether the logits of channel c at these positions are used at all."""
        if self.rec is not None:
            return True
        samp, _, needw = self._flags(c, t, lo, hi, s)
        return samp or needw

    def choose(self, logits: torch.Tensor, c: int, t: int, lo: int, hi: int, s: int):
        """logits (S*n, levels) of channel c at the positions of a step -> new values (S, n), or
        None when all of them are known."""
        S, n = hi - lo + 1, self.n
        if self.rec is not None:
            slab(self.rec, c, t, lo, hi, s).copy_(logits.view(S, n, -1))
        if self.decide is not None:
            samp, mixed, _ = self._flags(c, t, lo, hi, s)
            if not samp:
                return None
            vals = slab(self.v, c, t, lo, hi, s)
            unknown = ~slab(self.kn, c, t, lo, hi, s) if mixed else None
            v = self.decide(logits, c, t, lo, hi, s, unknown)
            vals.copy_(v if unknown is None else torch.where(unknown, v, vals))
            return vals
        samp, mixed, needw = self._flags(c, t, lo, hi, s)
        v = None
        vals = slab(self.v, c, t, lo, hi, s)
        if samp:
            v = draw(logits, self.uniforms(c, t, lo, hi, s), self.temperature).view(S, n)
            if mixed:
                v = torch.where(slab(self.kn, c, t, lo, hi, s), vals, v)
            vals.copy_(v)
        if needw:
            logp = torch.log_softmax(logits.to(torch.float64), -1).gather(1, vals.reshape(S * n, 1)).view(S, n)
            self.w += torch.where(slab(self.wm, c, t, lo, hi, s), logp, 0.0).sum(0)
        return v

    def uniforms(self, c: int, t: int, lo: int, hi: int, s: int) -> torch.Tensor:
        """The uniforms of the positions of a step, (S*n, 1)."""
        return slab(self.u, c, t, lo, hi, s).reshape((hi - lo + 1) * self.n, 1).contiguous()

    def plain(self, c: int, t: int, lo: int, hi: int, s: int) -> tuple[torch.Tensor, torch.Tensor] | None:
        """When all values at the positions of a step are plain draws (none known, no particle
        weights, nothing recorded, no ``decide``): their uniforms (S*n, 1) and the view (S, n) that
        keeps their values, so that whoever computes the logits can draw them as ``draw`` does and
        write them there; else None."""
        if self.decide is not None or self.rec is not None:
            return None
        samp, mixed, needw = self._flags(c, t, lo, hi, s)
        if not samp or mixed or needw:
            return None
        return self.uniforms(c, t, lo, hi, s), slab(self.v, c, t, lo, hi, s)

    def plain_row(self, i: int) -> bool:
        """Whether every value of row i is a plain draw (see ``plain``): the uniforms and the values
        (C, H, W, n) are then ``u`` and ``v``."""
        if self.decide is not None or self.rec is not None:
            return False
        if self.kn is None:
            return True
        return all(self.samp[c][i][j] and not self.anyk[c][i][j] and not (self.needw and self.needw[c][i][j])
                   for c in range(self.C) for j in range(self.W))

    def images(self) -> torch.Tensor:  # (n, C, H, W)
        return self.v.permute(3, 0, 1, 2)

    def logits(self) -> torch.Tensor | None:  # (n, levels, C, H, W)
        return None if self.rec is None else self.rec.permute(3, 4, 0, 1, 2)


def resample(log_w: torch.Tensor, generator, images: torch.Tensor,
             logits: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Importance resampling: keep one of the K particles of each of the B images, drawn by the
    normalised weights ``log_w`` (B, K) with one ``torch.rand(B, generator=...)``. ``images``
    (B*K, ...) and ``logits`` (B*K, ... or None) -> their (B, ...) rows."""
    B, K = log_w.shape
    probs = torch.softmax(log_w, dim=1).cumsum_(1)
    u = torch.rand(B, generator=generator, device=images.device).to(torch.float64)
    pick = torch.searchsorted(probs, u.unsqueeze(1)).squeeze_(1).clamp_max_(K - 1)
    rows = torch.arange(B, device=images.device) * K + pick
    return images[rows], (logits[rows] if logits is not None else None)
