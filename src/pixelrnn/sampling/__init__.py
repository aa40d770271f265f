"""Sampling and completion (inpainting) for every PixelRNN-family model.

    x = model.sample(16, height=28, width=28, generator=g)             # int64 (16, C, 28, 28)
    y = model.complete(x, known, generator=g, particles=8)             # known values unchanged

Methods
-------
``method="cached"`` (default)
    Every (layer, position) is computed exactly once, so sampling costs about the arithmetic of
    ONE teacher-forced forward pass. Recurrent states and convolution activations are cached
    (per architecture: ``row_lstm.py``, ``diagonal_bilstm.py``, ``pixelcnn.py``; the first 7×7
    mask-A conv and the output head in ``parts.py``). For C = 3 the current pixel is visited
    once per colour, since the mask-B groups let G read R and B read R and G of the same pixel;
    the pass of colour c computes only colour group c of every layer (``parts.py``: the groups
    < c are final by then and the groups > c do not affect it), so an RGB pixel costs one pass of
    the network, not three.

    Schedules (``core._raster``, ``core._wavefront``): the Diagonal BiLSTM runs pixel by pixel in
    raster order (its pixel (i, 0) needs the right-to-left states of the whole row i - 1, which run
    once per row for all layers at once). PixelCNN and the Row LSTM have a bounded reach into the
    row above (the 7×7 first conv: 3 columns to the right; a 3×3 conv or the Row LSTM's state: 1),
    so they run on a wavefront: pixel (i, j) at step 4 i + j, all the pixels of a step at once;
    for 28×28 that is 136 steps of up to 7 pixels instead of 784 steps of one, with the same
    values and draws (the uniforms are drawn up front in raster order).
``method="naive"``
    The reference: one full teacher-forced pass (``net.logits``) per generated value, i.e.
    C·H·W passes. Only for tests and timing.

Randomness (the same for both methods, so that the same generator gives the same images)
------------------------------------------------------------------------------------------
Values are drawn in raster order (row by row, pixel by pixel, R -> G -> B) by inverse CDF: one
``torch.rand(n, generator=generator, device=model.device)`` per value position that has an unknown
value in the batch; the value is the number of entries of the cumulative ``softmax(logits / T)``,
computed in float64, that are < u. ``T = 1`` is the model's exact distribution up to the
resolution of u, a float32 in [0, 1) with steps of 2**-24 (a value of probability p is drawn with
probability within 2**-24 of p); ``T`` must be > 0 (lower is more conservative; a tiny T gives
the argmax). Cached and naive logits differ by float rounding (~1e-7 relative in
float32), so a draw can only differ when u falls within about that distance of a CDF boundary
(never observed in the tests; bit-for-bit identical for float64 models in practice).

Completion with particles
-------------------------
Known values are kept; unknown ones are sampled in raster order with the same cached pass.
Plain ancestral sampling ignores the known values that come AFTER an unknown one (e.g. the bottom
half of a hole). With ``particles=K`` each image gets K candidate completions, run together as one
batch of B·K (K times the work and memory of one completion); each candidate is weighted by the
exact model likelihood (T = 1) of the known values that come after an unknown value of its image,
obtained from the logits of the same pass, and one candidate per image is drawn by the normalised
weights with one extra ``torch.rand(B, generator=...)`` (importance resampling).
"""
from __future__ import annotations

from typing import Callable

import torch

from ..models.checks import METHODS

__all__ = ["sample", "complete", "generate", "METHODS"]


def sample(model, n: int, height: int | None = None, width: int | None = None, *, y=None,
           generator: torch.Generator | None = None, temperature: float = 1.0,
           method: str = "cached", progress: bool | Callable[[int, int], None] = False) -> torch.Tensor:
    """``model.sample(...)``: ``n`` new images of ``height`` × ``width``, int64 (n, C, height,
    width) on the model's device. ``progress``: True for a tqdm bar on stderr, or a callable
    ``f(done, total)`` (values)."""
    return model.sample(n, height, width, y=y, generator=generator, temperature=temperature,
                        method=method, progress=progress)


def complete(model, x: torch.Tensor, known: torch.Tensor, generator: torch.Generator | None = None,
             particles: int = 1, *, y=None, temperature: float = 1.0, method: str = "cached",
             progress: bool | Callable[[int, int], None] = False, return_weights: bool = False):
    """``model.complete(...)``: fill the unknown values of ``x`` (int (B, C, H, W)); ``known``
    (bool, broadcastable to x) marks the values to keep, which are returned exactly unchanged.
    ``particles=K`` > 1 draws K candidates per image and keeps one by importance resampling (see
    the module docstring). Returns int64 (B, C, H, W) on the model's device (and the (B, K)
    float64 log-weights if ``return_weights``; None when K = 1)."""
    out, log_w = model.complete_with_weights(x, known, generator, particles, y=y, temperature=temperature,
                                             method=method, progress=progress)
    return (out, log_w) if return_weights else out


def generate(model, values: torch.Tensor, known: torch.Tensor | None, **kwargs):
    """``model.generate(values, known, ...)``: the driver behind sample and complete, arguments
    unchecked (see :func:`pixelrnn.sampling.core.generate` for the keyword arguments)."""
    return model.generate(values, known, **kwargs)
