"""The LSTM recurrence shared by the Row LSTM and the Diagonal BiLSTM, with a hand-written backward.

Both layers run an LSTM over the pixels of an (H, W) map in a fixed order of *steps*; all pixels of
a step are computed at once. Gates are ordered [o, f, i, g]; o, f, i use a sigmoid and g a tanh::

    [o, f, i, g] = act(pre[p] + K_ss * [h at the tap neighbours of p])
    c[p] = f * c[prev(p)] + i * g
    h[p] = o * tanh(c[p])

What changes between the layers is the *geometry*: which pixels form a step, which neighbours the
state-to-state kernel reads, and which cell state is carried::

    RowGeometry        step = one row, top to bottom; taps = (i-1, j-1), (i-1, j), (i-1, j+1);
                       c carried from (i-1, j); a learned initial state for row -1
    DiagonalGeometry   step = one diagonal r + j = k (a column of the skewed map), k = 0, 1, ...;
                       taps = (i-1, j) then (i, j-1); c carried from (i, j-1); zero initial state

Neighbours outside the image read zeros, so nothing ever flows from padding into the image. The
Diagonal BiLSTM's skewing is done with strided *views* (``torch.as_strided``) of the unskewed maps:
no skewed copy of the input, the states or the gradients is ever materialised.

Why a custom autograd.Function: written with ordinary ops, the backward of a 28- or 55-step loop
builds hundreds of tiny graph nodes, allocates full-size zero gradients for every slice, and
computes the state-to-state weight gradient in one small matrix product per step. Here the
backward walks the steps once, writes each gradient in place, and computes the weight gradient with
a single matrix product over all pixels. ``lstm_scan_reference`` is the plain-autograd version that
the tests compare against.

Layout: D independent directions (each with its own weights), then rows, columns, batch, features::

    pre     (D, H, W, N, 4h)   input-to-state pre-activations (bias included)
    weight  (D, k*h, 4h)       state-to-state kernel, rows ordered tap by tap
    h0, c0  broadcastable to (D, W, N, h): the state of "row -1" (RowGeometry); for the
            DiagonalGeometry h0 may give the hidden states of the row above (else zeros)
    returns (D, H, W, N, h)    hidden states

Bands of rows. A map can be scanned a band of rows at a time (activation checkpointing does,
:mod:`pixelrnn.nn.blocks`), each band starting from where the band above ended:
``lstm_scan_band`` returns that state with the hidden states and takes it as the start of the
next band; gradients flow through it. Row LSTM: (h, c) of the band's last row, the next band's
(h0, c0). Diagonal BiLSTM: h of the last row (c is carried along a row, never down).
"""
from __future__ import annotations

import torch

from . import native


def _tanh_(x: torch.Tensor) -> torch.Tensor:
    """In-place tanh as 2*sigmoid(2x) - 1: several times faster than torch.tanh on some CPU builds."""
    return x.mul_(2).sigmoid_().mul_(2).sub_(1)


def _activate_(a: torch.Tensor, h: int) -> torch.Tensor:
    """Gate pre-activations (..., 4h) -> [sigmoid(o), sigmoid(f), sigmoid(i), tanh(g)], in place."""
    a[..., 3 * h:].mul_(2)
    a.sigmoid_()
    a[..., 3 * h:].mul_(2).sub_(1)
    return a


class RowGeometry:
    """Steps are rows. Padded state buffers: hpad (D, H+1, W+2, N, h) holds h[i, j] at [i+1, j+1]
    (row 0 = the initial state, columns 0 and W+1 = zero padding); cpad (D, H+1, W, N, h) holds
    c[i, j] at [i+1, j] (row 0 = the initial cell state)."""

    taps = 3
    native_kind = 0  # the geometry's number in the native kernel (native/lstm_scan.cpp)
    contiguous_steps = True  # at(x, t) of a contiguous (1, H, W, N, X) tensor is contiguous

    def __init__(self, H: int, W: int):
        self.H, self.W, self.steps = H, W, H
        self.mirror: tuple[int, ...] = ()  # directions run right to left (see DiagonalGeometry)

    def hpad_shape(self, D, N, h):
        return (D, self.H + 1, self.W + 2, N, h)

    def cpad_shape(self, D, N, h):
        return (D, self.H + 1, self.W, N, h)

    def init_state(self, hpad, cpad, h0, c0):
        hpad[:, 0, 1:self.W + 1] = h0
        cpad[:, 0] = c0

    def initial_grads(self, dhpad, dcpad):
        return dhpad[:, 0, 1:self.W + 1], dcpad[:, 0]

    def at(self, x, t):  # (D, H, W, N, X) -> the pixels of step t: (D, W, N, X)
        return x[:, t]

    def h_at(self, hpad, t):
        return hpad[:, t + 1, 1:self.W + 1]

    def h_taps(self, hpad, t):
        return [hpad[:, t, d:d + self.W] for d in range(3)]

    def c_prev(self, cpad, t):
        return cpad[:, t]

    def c_at(self, cpad, t):
        return cpad[:, t + 1]

    def all_taps(self, hpad):  # every pixel's neighbours: k views of shape (D, H, W, N, h)
        return [hpad[:, :self.H, d:d + self.W] for d in range(3)]


class DiagonalGeometry:
    """Steps are the diagonals k = i + j (the columns of the skewed map). Padded state buffers:
    hpad (D, H+1, W+1, N, h) holds h[i, j] at [i+1, j+1] (zero top row and left column); cpad
    (D, H, W+1, N, h) holds c[i, j] at [i, j+1] (zero left column). ``mirror``: the directions
    that run right to left, i.e. on the width-flipped map, with their pre-activations and hidden
    states in image coordinates all the same (what the Diagonal BiLSTM's second direction does)."""

    taps = 2
    native_kind = 1
    contiguous_steps = False

    def __init__(self, H: int, W: int, mirror: tuple[int, ...] = ()):
        self.H, self.W, self.steps = H, W, H + W - 1
        self.mirror = tuple(mirror)  # directions run right to left: on the width-flipped map
        self.ranges = [(max(0, k - W + 1), min(H - 1, k) + 1) for k in range(self.steps)]

    def hpad_shape(self, D, N, h):
        return (D, self.H + 1, self.W + 1, N, h)

    def cpad_shape(self, D, N, h):
        return (D, self.H, self.W + 1, N, h)

    def init_state(self, hpad, cpad, h0, c0):
        if h0 is not None:  # the hidden states of the row above (a band's start), else zeros
            hpad[:, 0, 1:] = h0

    def initial_grads(self, dhpad, dcpad):
        return dhpad[:, 0, 1:], None

    @staticmethod
    def _diag(x, k, lo, hi):
        """View of x[:, i, k - i] for i in lo..hi-1 of a contiguous (D, R, C, N, X) tensor."""
        D, R, C, N, X = x.shape
        s = x.stride()
        return x.as_strided((D, hi - lo, N, X), (s[0], s[1] - s[2], s[3], s[4]),
                            x.storage_offset() + lo * s[1] + (k - lo) * s[2])

    def at(self, x, t):  # (D, H, W, N, X) -> pixels (i, t - i) of diagonal t: (D, S', N, X)
        lo, hi = self.ranges[t]
        return self._diag(x, t, lo, hi)

    def h_at(self, hpad, t):  # h[i, j] sits at hpad[i + 1, j + 1]
        lo, hi = self.ranges[t]
        return self._diag(hpad[:, 1:, 1:], t, lo, hi)

    def h_taps(self, hpad, t):  # [h(i-1, j), h(i, j-1)] for the pixels (i, j) of diagonal t
        lo, hi = self.ranges[t]
        return [self._diag(hpad[:, :, 1:], t, lo, hi),  # row above: hpad[i, j + 1]
                self._diag(hpad[:, 1:, :], t, lo, hi)]  # left: hpad[i + 1, j]

    def c_prev(self, cpad, t):  # c(i, j-1) = cpad[i, j]
        lo, hi = self.ranges[t]
        return self._diag(cpad, t, lo, hi)

    def c_at(self, cpad, t):  # c(i, j) = cpad[i, j + 1]
        lo, hi = self.ranges[t]
        return self._diag(cpad[:, :, 1:], t, lo, hi)

    def all_taps(self, hpad):
        return [hpad[:, :self.H, 1:], hpad[:, 1:, :self.W]]


class _LSTMScan(torch.autograd.Function):
    @staticmethod
    def forward(ctx, pre, weight, h0, c0, geo):
        D, H, W, N, G = pre.shape
        h = G // 4
        hpad = pre.new_zeros(geo.hpad_shape(D, N, h))
        cpad = pre.new_zeros(geo.cpad_shape(D, N, h))
        geo.init_state(hpad, cpad, h0, c0)
        acts = torch.empty_like(pre)  # activated gates [o, f, i, g]; every pixel is written once
        tcs = pre.new_empty(D, H, W, N, h)  # tanh of the cell states
        contiguous = geo.contiguous_steps and D == 1
        for t in range(geo.steps):
            u = torch.cat(geo.h_taps(hpad, t), dim=-1)  # (D, S, N, k*h)
            p = geo.at(pre, t)
            S = p.shape[1]
            if contiguous:  # write the gates straight into their final place
                a = geo.at(acts, t)
                torch.baddbmm(p.view(D, S * N, G), u.view(D, S * N, -1), weight, out=a.view(D, S * N, G))
            else:
                a = torch.baddbmm(p.reshape(D, S * N, G), u.view(D, S * N, -1), weight).view(D, S, N, G)
            _activate_(a, h)
            o, f, i, g = a.split(h, dim=-1)
            c = geo.c_at(cpad, t)
            torch.mul(f, geo.c_prev(cpad, t), out=c)
            c.addcmul_(i, g)
            tc = geo.at(tcs, t)
            _tanh_(tc.copy_(c))
            torch.mul(o, tc, out=geo.h_at(hpad, t))
            if not contiguous:
                geo.at(acts, t).copy_(a)
        ctx.save_for_backward(weight, hpad, cpad, tcs, acts)
        ctx.geo, ctx.given = geo, (h0 is not None, c0 is not None)
        row = isinstance(geo, RowGeometry)
        c_last = cpad[:, H].clone() if row else pre.new_empty(0)  # (D, W, N, h): rows only
        if not row:
            ctx.mark_non_differentiable(c_last)
        return hpad[:, 1:, 1:W + 1], c_last  # (D, H, W, N, h)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_h, grad_c):
        saved = ctx.saved_tensors  # unpacked once (activation checkpointing allows no more)
        with torch.autocast(device_type=grad_h.device.type, enabled=False):
            grad_c = grad_c.to(saved[0].dtype) if grad_c is not None and grad_c.numel() else None
            dpre, dw, dh0, dc0, _ = scan_backward(saved, ctx.geo, grad_h.to(saved[0].dtype), grad_c)
            return dpre, dw, dh0 if ctx.given[0] else None, dc0 if ctx.given[1] else None, None


def scan_backward(saved: tuple[torch.Tensor, ...], geo, grad_h: torch.Tensor, grad_c: torch.Tensor | None = None):
    """The backward pass of the LSTM scan from its saved tensors: the gradients of
    (pre, weight, h0, c0, geometry). ``grad_c``: the gradient of the last row's cell states (rows)."""
    weight, hpad, cpad, tcs, acts = saved
    D, H, W, N, G = acts.shape
    h = G // 4
    grad_h = grad_h.contiguous()
    dpre = torch.empty_like(acts)
    dhpad = torch.zeros_like(hpad)  # gradient reaching each h from later steps
    dcpad = torch.zeros_like(cpad)  # gradient reaching each c from later steps
    if grad_c is not None:
        dcpad[:, H] = grad_c  # rows: cpad[:, H] holds the last row's cells
    w_t = weight.transpose(1, 2).contiguous()  # (D, 4h, k*h)
    for t in reversed(range(geo.steps)):
        a = geo.at(acts, t)
        o, f, i, g = a.split(h, dim=-1)
        tc = geo.at(tcs, t)
        dh = geo.at(grad_h, t) + geo.h_at(dhpad, t)
        # dc = (gradient from the next step) + dh * o * tanh'(c)
        dct = torch.addcmul(geo.c_at(dcpad, t), dh * o, 1 - tc * tc)
        da = torch.cat([dh * tc, dct * geo.c_prev(cpad, t), dct * g, dct * i], dim=-1)
        deriv = a * (1 - a)  # sigmoid' for o, f, i ...
        deriv[..., 3 * h:] = 1 - g * g  # ... and tanh' for g
        dgate = da.mul_(deriv)  # (D, S, N, 4h), contiguous
        geo.at(dpre, t).copy_(dgate)  # a copy; writing into a strided view with out= is no faster
        geo.c_prev(dcpad, t).addcmul_(dct, f)
        S = dgate.shape[1]
        du = torch.bmm(dgate.view(D, S * N, G), w_t).view(D, S, N, -1)
        for k, view in enumerate(geo.h_taps(dhpad, t)):
            view += du[..., k * h:(k + 1) * h]
    # weight gradient: one matrix product over every pixel
    u_all = torch.cat(geo.all_taps(hpad), dim=-1).reshape(D, H * W * N, -1)
    dw = torch.bmm(u_all.transpose(1, 2), dpre.view(D, H * W * N, G))
    dh0, dc0 = geo.initial_grads(dhpad, dcpad)
    return dpre, dw, dh0, dc0, None


def lstm_scan(pre: torch.Tensor, weight: torch.Tensor, h0: torch.Tensor | None,
              c0: torch.Tensor | None, geometry: RowGeometry | DiagonalGeometry,
              bias: torch.Tensor | None = None) -> torch.Tensor:
    """Run the LSTM recurrence; see the module docstring for shapes. Differentiable. ``bias``:
    an optional term broadcastable to (D, 4h), added to ``pre`` (the native kernel adds it, and
    sums its gradient, inside its loop: no pass over the map of its own).

    Runs in float32, or float64 for a float64 ``pre``: under bf16 / fp16 autocast ``pre`` arrives
    in half precision, but the cell state carried over 28 rows (or 55 diagonals) and the gradients
    summed back over them keep float32; the result is cast back to ``pre``'s dtype. Autocast
    itself is switched off inside, since the loop writes into preallocated buffers.

    On the CPU the native kernel (:mod:`pixelrnn.nn.native`) runs it when it is available and
    ``PIXELRNN_NATIVE`` is not 0; otherwise, and on other devices, the PyTorch version here."""
    return lstm_scan_band(pre, weight, h0, c0, geometry, bias)[0]


def lstm_scan_band(pre: torch.Tensor, weight: torch.Tensor, h0: torch.Tensor | None,
                   c0: torch.Tensor | None, geometry: RowGeometry | DiagonalGeometry,
                   bias: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """``lstm_scan`` that also returns the last row's cell states c_last (D, W, N, h) of a
    RowGeometry (an empty tensor for diagonals), differentiable: scanning a map in bands of rows,
    each band's (h0, c0) is the band above's (last row of h, c_last); a DiagonalGeometry band's h0
    is the band above's last row of h."""
    D, H, W, N, G = pre.shape
    out_dtype = pre.dtype
    dt = torch.float32 if pre.dtype in (torch.bfloat16, torch.float16) else pre.dtype
    pre, weight = pre.to(dt), weight.to(dt)
    bias = None if bias is None else bias.to(dt).expand(D, G)
    h0 = None if h0 is None else h0.to(dt).expand(D, W, N, G // 4)
    c0 = None if c0 is None or not isinstance(geometry, RowGeometry) else c0.to(dt).expand(D, W, N, G // 4)
    with torch.autocast(device_type=pre.device.type, enabled=False):
        if native.usable_for(pre):
            out, c_last = native_scan_band(pre, weight, h0, c0, geometry, bias=bias)
        else:
            out, c_last = pytorch_scan_band(pre, weight, h0, c0, geometry, bias)
        return out.to(out_dtype), c_last.to(out_dtype)


def pytorch_scan(pre: torch.Tensor, weight: torch.Tensor, h0: torch.Tensor | None, c0: torch.Tensor | None,
                 geometry: RowGeometry | DiagonalGeometry, bias: torch.Tensor | None = None) -> torch.Tensor:
    """The scan with PyTorch operations (any device; h0, c0 already (D, W, N, h) for rows):
    the bias added and the mirrored directions flipped by ordinary (differentiable) operations."""
    return pytorch_scan_band(pre, weight, h0, c0, geometry, bias)[0]


def pytorch_scan_band(pre, weight, h0, c0, geometry, bias=None) -> tuple[torch.Tensor, torch.Tensor]:
    """``pytorch_scan`` and c_last (see ``lstm_scan_band``)."""
    D, H, W, N, G = pre.shape
    if bias is not None:
        pre = pre + bias.reshape(D, 1, 1, 1, G)
    flip = [d in geometry.mirror for d in range(D)]

    def flipped(t, dim):  # the mirrored directions of t flipped along its columns (dim of t[d])
        return torch.stack([p.flip(dim) if f else p for p, f in zip(t.unbind(0), flip)])
    if any(flip):
        pre = flipped(pre, 1)
        h0 = None if h0 is None else flipped(h0, 0)  # diagonals only: rows are never mirrored
    out, c_last = _LSTMScan.apply(pre.contiguous(), weight.contiguous(), h0, c0, geometry)
    return (flipped(out, 1) if any(flip) else out), c_last


def native_scan(pre: torch.Tensor, weight: torch.Tensor, h0: torch.Tensor | None, c0: torch.Tensor | None,
                geometry: RowGeometry | DiagonalGeometry, chunks: int | None = None,
                bias: torch.Tensor | None = None) -> torch.Tensor:
    """The scan on the native kernel (CPU, float32/64; h0, c0 already (D, W, N, h) for rows).
    ``chunks``: parts each direction's batch is cut into, one per thread (default: enough for
    every thread). Raises RuntimeError when the kernel is not available."""
    return native_scan_band(pre, weight, h0, c0, geometry, chunks, bias)[0]


def native_scan_band(pre, weight, h0, c0, geometry, chunks=None, bias=None) -> tuple[torch.Tensor, torch.Tensor]:
    """``native_scan`` and c_last (see ``lstm_scan_band``)."""
    if not native.available():
        raise RuntimeError(native.status())
    D, H, W, N, G = pre.shape
    if chunks is None:
        chunks = native.chunks_for(D, N)
    h0 = pre.new_empty(0) if h0 is None else h0.contiguous()
    c0 = c0.contiguous() if isinstance(geometry, RowGeometry) else pre.new_empty(0)
    bias = pre.new_zeros(D, G) if bias is None else bias.expand(D, G).contiguous()
    if pre.stride(-1) != 1 or not dense(pre):
        pre = pre.contiguous()
    mirror = sum(1 << d for d in geometry.mirror)
    return native.NativeLSTMScan.apply(pre, weight.contiguous(), bias, h0, c0, geometry.native_kind, chunks, mirror)


def dense(t: torch.Tensor) -> bool:
    """Whether t's elements fill its storage span exactly once, in some order of its dimensions."""
    expected = 1
    for d in sorted(range(t.dim()), key=t.stride):
        if t.size(d) != 1 and t.stride(d) != expected:
            return False
        expected *= t.size(d)
    return True


def lstm_scan_reference(pre: torch.Tensor, weight: torch.Tensor, h0: torch.Tensor | None,
                        c0: torch.Tensor | None, geometry: RowGeometry | DiagonalGeometry) -> torch.Tensor:
    """The same recurrence pixel by pixel with plain autograd ops (slow; used by the tests)."""
    D, H, W, N, G = pre.shape
    h = G // 4
    zero = pre.new_zeros(D, N, h)
    row = isinstance(geometry, RowGeometry)
    hs: dict[tuple[int, int], torch.Tensor] = {}
    cs: dict[tuple[int, int], torch.Tensor] = {}

    def h_of(i, j):
        if row and i == -1 and 0 <= j < W:
            return h0.expand(D, W, N, h)[:, j]
        return hs.get((i, j), zero)

    def c_of(i, j):
        if row and i == -1:
            return c0.expand(D, W, N, h)[:, j]
        return cs.get((i, j), zero)

    for i in range(H):
        for j in range(W):
            if row:
                u = torch.cat([h_of(i - 1, j - 1), h_of(i - 1, j), h_of(i - 1, j + 1)], dim=-1)
                c_prev = c_of(i - 1, j)
            else:
                u = torch.cat([h_of(i - 1, j), h_of(i, j - 1)], dim=-1)
                c_prev = c_of(i, j - 1)
            a = pre[:, i, j] + torch.einsum("dnk,dkg->dng", u, weight)
            o, f, ig = torch.sigmoid(a[..., :3 * h]).split(h, dim=-1)
            g = torch.tanh(a[..., 3 * h:])
            cs[i, j] = f * c_prev + ig * g
            hs[i, j] = o * torch.tanh(cs[i, j])
    return torch.stack([torch.stack([hs[i, j] for j in range(W)], dim=1) for i in range(H)], dim=1)
