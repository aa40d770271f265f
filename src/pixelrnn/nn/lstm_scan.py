"""The LSTM recurrence shared by the Row LSTM and the Diagonal BiLSTM, with a hand-written backward.

Both layers run an LSTM over a sequence of "steps" (rows for the Row LSTM, columns of the skewed map
for the Diagonal BiLSTM). A step holds S positions. The state-to-state term at position s of step t
is a 1-D convolution over the previous step's hidden state: it reads ``h[t-1, s + d]`` for every
offset ``d`` in ``taps`` (zero outside 0..S-1)::

    Row LSTM        taps (-1, 0, +1): the three pixels above-left, above, above-right
    Diagonal BiLSTM taps (-1, 0):     rows r-1 and r of the previous skewed column

Gates are ordered [o, f, i, g]; o, f, i use a sigmoid and g a tanh::

    [o, f, i, g] = act(pre[t] + K_ss * h[t-1])
    c[t] = f * c[t-1] + i * g
    h[t] = o * tanh(c[t])

``ranges[t] = (lo, hi)`` restricts step t to positions lo..hi-1; h and c are exactly zero
elsewhere (the skewed map's padding never carries state into the image).

Why a custom autograd.Function: written with ordinary ops, the backward of a 28-step loop builds
hundreds of tiny graph nodes and computes the state-to-state weight gradient in one small matrix
product per step. Here the backward walks the steps once and computes the weight gradient with a
single large matrix product over all steps. ``lstm_scan_reference`` is the plain-autograd version
that the tests compare against.

Tensor layout (all contiguous): D directions, T steps, S positions per step, N batch, h features::

    pre     (D, T, S, N, 4h)   input-to-state pre-activations (bias included)
    weight  (D, k*h, 4h)       state-to-state kernel, rows ordered tap-major
    h0, c0  (D, S, N, h)       initial state (broadcast views are fine)
    returns (D, T, S, N, h)    hidden states
"""
from __future__ import annotations

from collections.abc import Sequence

import torch

Ranges = Sequence[tuple[int, int]] | None


def _unfold(hbuf: torch.Tensor, taps: Sequence[int], pad: int, lo: int, hi: int) -> torch.Tensor:
    """(D, S+2*pad, N, h) padded states -> (D, hi-lo, N, k*h): neighbours at each tap, concatenated."""
    return torch.cat([hbuf[:, pad + lo + d: pad + hi + d] for d in taps], dim=-1)


class _LSTMScan(torch.autograd.Function):
    @staticmethod
    def forward(ctx, pre, weight, h0, c0, taps, ranges):
        D, T, S, N, G = pre.shape
        h = G // 4
        pad = max(abs(d) for d in taps)
        full = ranges is None
        hbuf = pre.new_zeros(D, T + 1, S + 2 * pad, N, h)  # hbuf[:, t+1] = h[t], padded along S
        hbuf[:, 0, pad:pad + S] = h0
        cs = pre.new_zeros(D, T, S, N, h) if not full else pre.new_empty(D, T, S, N, h)
        acts = pre.new_zeros(D, T, S, N, G) if not full else pre.new_empty(D, T, S, N, G)
        c_prev = c0.expand(D, S, N, h)
        for t in range(T):
            lo, hi = (0, S) if full else ranges[t]
            if hi <= lo:
                c_prev = cs[:, t]
                continue
            n = (hi - lo) * N
            u = _unfold(hbuf[:, t], taps, pad, lo, hi).view(D, n, -1)
            a = torch.baddbmm(pre[:, t, lo:hi].reshape(D, n, G), u, weight)  # (D, n, 4h)
            a[..., :3 * h].sigmoid_()
            a[..., 3 * h:].tanh_()
            a = a.view(D, hi - lo, N, G)
            o, f, i, g = a.split(h, dim=-1)
            c = torch.addcmul(f * c_prev[:, lo:hi], i, g)
            cs[:, t, lo:hi] = c
            torch.mul(o, torch.tanh(c), out=hbuf[:, t + 1, pad + lo:pad + hi])
            acts[:, t, lo:hi] = a
            c_prev = cs[:, t]
        ctx.save_for_backward(weight, hbuf, cs, acts, c0)
        ctx.taps, ctx.ranges, ctx.pad = tuple(taps), ranges, pad
        ctx.h0_shape = h0.shape
        return hbuf[:, 1:, pad:pad + S]

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_h):
        weight, hbuf, cs, acts, c0 = ctx.saved_tensors
        taps, ranges, pad = ctx.taps, ctx.ranges, ctx.pad
        D, T, S, N, h = cs.shape
        G = 4 * h
        full = ranges is None
        grad_h = grad_h.contiguous()
        dpre = grad_h.new_zeros(D, T, S, N, G) if not full else grad_h.new_empty(D, T, S, N, G)
        dh_rec = grad_h.new_zeros(D, S + 2 * pad, N, h)  # gradient reaching h[t] from step t+1
        dc = grad_h.new_zeros(D, S, N, h)  # gradient reaching c[t] from step t+1
        w_t = weight.transpose(1, 2)  # (D, 4h, k*h)
        c0 = c0.expand(D, S, N, h)
        for t in reversed(range(T)):
            lo, hi = (0, S) if full else ranges[t]
            new_rec = grad_h.new_zeros(D, S + 2 * pad, N, h)
            new_dc = torch.zeros_like(dc)
            if hi > lo:
                a = acts[:, t, lo:hi]
                o, f, i, g = a.split(h, dim=-1)
                tc = torch.tanh(cs[:, t, lo:hi])
                c_prev = (cs[:, t - 1] if t > 0 else c0)[:, lo:hi]
                dh = grad_h[:, t, lo:hi] + dh_rec[:, pad + lo:pad + hi]
                dct = torch.addcmul(dc[:, lo:hi], dh * o, 1 - tc * tc)
                da = dpre[:, t, lo:hi]
                do, df, di, dg = da.split(h, dim=-1)
                torch.mul(dh * tc, o * (1 - o), out=do)
                torch.mul(dct * c_prev, f * (1 - f), out=df)
                torch.mul(dct * g, i * (1 - i), out=di)
                torch.mul(dct * i, 1 - g * g, out=dg)
                new_dc[:, lo:hi] = dct * f
                du = torch.bmm(da.reshape(D, -1, G), w_t).view(D, hi - lo, N, -1)
                for k, d in enumerate(taps):
                    new_rec[:, pad + lo + d:pad + hi + d] += du[..., k * h:(k + 1) * h]
            dh_rec, dc = new_rec, new_dc
        # weight gradient: one matrix product over all steps (dpre is zero outside the ranges)
        u_all = torch.cat([hbuf[:, :T, pad + d:pad + d + S] for d in taps], dim=-1)
        dw = torch.bmm(u_all.reshape(D, T * S * N, -1).transpose(1, 2), dpre.view(D, T * S * N, G))
        dh0 = dh_rec[:, pad:pad + S]
        return dpre, dw, dh0, dc, None, None


def lstm_scan(pre: torch.Tensor, weight: torch.Tensor, h0: torch.Tensor, c0: torch.Tensor,
              taps: Sequence[int], ranges: Ranges = None) -> torch.Tensor:
    """Run the LSTM recurrence; see the module docstring for shapes. Differentiable."""
    D, T, S, N, G = pre.shape
    h0 = h0.expand(D, S, N, G // 4)
    c0 = c0.expand(D, S, N, G // 4)
    return _LSTMScan.apply(pre.contiguous(), weight.contiguous(), h0, c0, tuple(taps), ranges)


def lstm_scan_reference(pre: torch.Tensor, weight: torch.Tensor, h0: torch.Tensor, c0: torch.Tensor,
                        taps: Sequence[int], ranges: Ranges = None) -> torch.Tensor:
    """The same recurrence with plain autograd ops (slow; used by the tests)."""
    D, T, S, N, G = pre.shape
    h = G // 4
    pad = max(abs(d) for d in taps)
    h_prev = h0.expand(D, S, N, h)
    c_prev = c0.expand(D, S, N, h)
    out = []
    for t in range(T):
        lo, hi = (0, S) if ranges is None else ranges[t]
        hp = torch.nn.functional.pad(h_prev, (0, 0, 0, 0, pad, pad))
        u = torch.cat([hp[:, pad + d: pad + d + S] for d in taps], dim=-1)  # (D, S, N, k*h)
        a = pre[:, t] + torch.einsum("dsnk,dkg->dsng", u, weight)
        o, f, i = torch.sigmoid(a[..., :3 * h]).split(h, dim=-1)
        g = torch.tanh(a[..., 3 * h:])
        c = f * c_prev + i * g
        hh = o * torch.tanh(c)
        valid = torch.zeros(S, 1, 1, dtype=pre.dtype, device=pre.device)
        valid[lo:hi] = 1
        c_prev, h_prev = c * valid, hh * valid
        out.append(h_prev)
    return torch.stack(out, dim=1)
