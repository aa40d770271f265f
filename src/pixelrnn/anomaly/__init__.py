"""Anomaly (out-of-distribution) scores from exact likelihoods, per image and per pixel.

    from pixelrnn.anomaly import anomaly_scores, pixel_nll
    s = anomaly_scores(model, x, method="complexity")   # (B,) float64, higher = more anomalous
    m = pixel_nll(model, x)                             # (B, H, W) nats: -log p of each pixel

Why raw likelihood is not enough
--------------------------------
A likelihood model trained on one kind of image often gives *higher* likelihood to simpler images
it has never seen: a PixelCNN trained on CIFAR-10 rates SVHN as more likely, a model of
FashionMNIST rates MNIST as more likely (Nalisnick et al., "Do deep generative models know what
they don't know?", ICLR 2019). The NLL is dominated by how *compressible* an image is (smooth
regions, few distinct values, large constant backgrounds), not by whether it looks like the
training data. Serrà et al. ("Input complexity and out-of-distribution detection with
likelihood-based generative models", ICLR 2020) correct for this by subtracting the code length
that a generic lossless compressor needs for the same image:

    S(x) = NLL_bits(x) - L_codec(x)

An image the model explains *better than a generic codec does* gets a low score (it shares the
regularities of the training data); a simple image that any compressor finds cheap no longer
looks "normal" just because it is simple. The score is a log-likelihood ratio against a universal
model (the codec).

Methods (higher = more anomalous for all of them)
-------------------------------------------------
``nll``
    -log p(x) in nats per image (exact).
``bpd``
    NLL in bits per value: nll / (C·H·W·ln 2). For images of one size it ranks exactly like
    ``nll``; it only differs when images of different sizes are compared.
``complexity``
    NLL in bits minus the code length in bits of the image under a generic lossless codec
    (:func:`codec_bits`), **not** this package's model-based coder.

The codec (``codec="png"`` default, or ``"lzma"``) sees the image as 8-bit values: every value
``v`` in ``[0, levels)`` is scaled to ``round(v · 255 / (levels - 1))`` as
:func:`pixelrnn.imaging.to_uint8` does. That map is injective for ``levels <= 256``, so the codec
sees exactly the information the model sees (no values are merged); it is also what a PNG of the
image would contain, which is the setting of Serrà et al. The codec does not know that fewer than
256 values occur, so for few-level images its code length is longer than necessary; that affects
every image of a run alike and is the price of using an unmodified standard codec.

* ``png``: Pillow, ``optimize=True, compress_level=9``, gray (``L``) or ``RGB``; the length is the
  whole file (signature and chunk headers included, a near-constant ~57 bytes that shifts every
  score alike and does not change any ranking).
* ``lzma``: the raw 8-bit values (rows of pixels, channels interleaved) compressed by LZMA2,
  preset 9 + extreme, as a raw stream (no container header), with a dictionary as large as the
  image (at least 4 KiB) so that the result equals preset 9 while staying fast.

Per-pixel maps
--------------
:func:`pixel_nll` is -log p of each pixel given all earlier ones, summed over the pixel's
channels: a (B, H, W) map in nats that sums to the image's NLL. :func:`heatmap` renders images
beside their maps.

Evaluation
----------
:func:`make_ood_set` builds out-of-distribution sets (see :data:`OOD_SETS`) from an
in-distribution test set, :func:`evaluate_ood` reports ROC-AUC and AUPR (scikit-learn's
``roc_auc_score`` / ``average_precision_score``; OOD images are the positive class and higher
scores mean more anomalous) for every method, and :func:`save_histogram` plots the score
distributions.
"""
from ..data import convert_images
from .evaluation import OODReport, OODResult, evaluate_ood, ood_metrics, save_histogram
from .heatmaps import heatmap, heatmap_scale
from .oodsets import NOISE_SIGMA, OOD_SEEDS, OOD_SETS, OOD_SIZE, make_ood_set
from .scores import (CODECS, DEFAULT_CODEC, LN2, METHODS, anomaly_scores, codec_bits, image_nll,
                     pixel_nll, scores_from_nll)

__all__ = ["METHODS", "CODECS", "DEFAULT_CODEC", "OOD_SETS", "OOD_SEEDS", "anomaly_scores",
           "pixel_nll", "image_nll", "codec_bits", "scores_from_nll", "heatmap", "make_ood_set",
           "convert_images", "ood_metrics", "evaluate_ood", "OODReport", "OODResult",
           "save_histogram", "LN2", "heatmap_scale", "OOD_SIZE", "NOISE_SIGMA"]
