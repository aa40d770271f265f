"""Class labels: a model of images given a label y in [0, classes), and the label prior p(y).

As in the Conditional PixelCNN (van den Oord et al. 2016, "Conditional Image Generation with
PixelCNN Decoders"), a label is a learned vector per layer added to that layer's pre-activations,
the same at every pixel: the network's per-image ``terms`` (see :mod:`pixelrnn.models.network`).
It is fixed before the first value is drawn, so it opens no path from a later value: causality
and normalisation hold for every label. With the prior stored in the model::

    log p(x)     = log sum_y p(y) p(x | y)                                  (the marginal)
    log p(y | x) = log p(y) + log p(x | y) - log p(x)                       (Bayes' rule)
    log p(x_t | x_<t) = log p(x_<=t) - log p(x_<t),  log p(x_<=t) = log sum_y p(y) p(x_<=t | y)

The last line gives the marginal's per-value conditionals (they sum to log p(x)), used where a
conditional model is asked for value log-probabilities without a label (surprise maps, scores).

The cached samplers take a label as a context map (see ``PixelNetwork.engine_context``): a
one-hot map over the labels present in the batch, constant over the image, with the label
vectors of each layer as the 1×1 weights -- the same numbers the training path adds.
"""
from __future__ import annotations

import numbers

import torch
import torch.nn.functional as F

from ..errors import ArgumentError


def check_labels(y, n: int, classes: int, device: torch.device) -> torch.Tensor | None:
    """``y`` (None, an int, or an integer tensor of shape (n,) or ()) as int64 (n,) on
    ``device``; None stays None. ArgumentError for a label given to an unconditional model
    (``classes`` 0), a label out of range, a float or a wrong shape."""
    if y is None:
        return None
    if not classes:
        raise ArgumentError("this model is unconditional (classes=0): it takes no label y")
    if isinstance(y, numbers.Integral) and not isinstance(y, bool):
        y = torch.tensor(int(y))
    if not isinstance(y, torch.Tensor) or y.dtype.is_floating_point or y.dtype.is_complex \
            or y.dtype == torch.bool:
        raise ArgumentError(f"y must be an int or an integer tensor of labels in [0, {classes}), "
                            f"got {y.dtype if isinstance(y, torch.Tensor) else type(y).__name__}")
    if y.dim() == 0:
        y = y.expand(n)
    if tuple(y.shape) != (n,):
        raise ArgumentError(f"y must have shape ({n},) (one label per image), got {tuple(y.shape)}")
    lo, hi = int(y.min()), int(y.max())
    if lo < 0 or hi >= classes:
        raise ArgumentError(f"labels must be in [0, {classes - 1}], got min {lo}, max {hi}")
    return y.to(device=device, dtype=torch.long)


def draw_labels(prior: torch.Tensor, n: int, generator: torch.Generator | None) -> torch.Tensor:
    """``n`` labels drawn from ``prior`` (K,): int64 (n,) on its device."""
    return torch.multinomial(prior.float(), n, replacement=True, generator=generator)


def check_prior(p, classes: int) -> torch.Tensor:
    """Label counts or probabilities (K,) -> probabilities summing to 1 (float64)."""
    p = torch.as_tensor(p, dtype=torch.float64).flatten()
    if p.numel() != classes:
        raise ArgumentError(f"the prior needs {classes} values (one per label), got {p.numel()}")
    if not torch.isfinite(p).all() or (p < 0).any() or p.sum() <= 0:
        raise ArgumentError("the prior must be finite, >= 0 and not all 0")
    return p / p.sum()


def label_context(table: torch.Tensor, y: torch.Tensor, widths: list[int], H: int, W: int):
    """The labels ``y`` (n,) as a cached sampler's context: a one-hot map (n, U, H, W) over the U
    distinct labels of the batch (an expanded view: no memory per pixel) and per layer the
    (U, width) rows of the label table (K, sum of widths)."""
    uniq, inv = torch.unique(y, return_inverse=True)
    onehot = F.one_hot(inv, len(uniq)).to(table.dtype)  # (n, U)
    weights = list(table.detach()[uniq].split(widths, dim=1))
    return onehot[:, :, None, None].expand(-1, -1, H, W), weights


def join_contexts(a, b):
    """Two cached-sampler contexts as one: maps side by side, each layer's weights stacked."""
    if a is None or b is None:
        return a if b is None else b
    return torch.cat([a[0], b[0].to(a[0].dtype)], dim=1), [torch.cat([u, v]) for u, v in zip(a[1], b[1])]


def marginal_value_log_probs(per_label: torch.Tensor, log_prior: torch.Tensor) -> torch.Tensor:
    """(K, B, C, H, W) log p(x_t | x_<t, y) for every label -> (B, C, H, W) log p(x_t | x_<t)
    under the marginal (float64): differences of log p(x_<=t) in raster order (row, column,
    R -> G -> B)."""
    K, B, C, H, W = per_label.shape
    v = per_label.permute(1, 0, 3, 4, 2).reshape(B, K, H * W * C).double()
    prefix = torch.logsumexp(v.cumsum(-1) + log_prior.double().view(1, K, 1), dim=1)  # (B, N)
    per = torch.diff(prefix, dim=-1, prepend=prefix.new_zeros(B, 1))  # log p(empty) = 0
    return per.view(B, H, W, C).permute(0, 3, 1, 2)
