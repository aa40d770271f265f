"""Learned features: what a trained pixel model knows about an image, for downstream tasks.

An autoregressive pixel model must understand an image to predict its next value; its
intermediate activations, averaged over positions, are features a linear classifier can use
(iGPT, Chen et al. 2020, "Generative Pretraining from Pixels": the best layer is in the middle of
the network, not at its output). Layer 0 is the first (mask A) convolution, layer l >= 1 the
output of residual block l; every layer has 2h maps.

    feats = pixelrnn.features(model, x)            # (B, (L + 1) * 2h): every layer, side by side
    feats = pixelrnn.features(model, x, layer=4)   # (B, 2h): the output of block 4

A conditional model's features are computed without a label (its label vectors left out), so
they never carry a label that was given; the multi-scale model's are those of its full-image
(conditional) network, given the small image.
"""
from __future__ import annotations

import numbers

import torch

from .errors import ArgumentError

FEATURE_VALUES = 2 ** 26  # at most this many activations kept per forward pass (256 MB in float32)


def features(model, x: torch.Tensor, layer: int | None = None, *, batch_size: int = 64) -> torch.Tensor:
    """Position-averaged activations of ``x`` (int (B, C, H, W)): float32 (B, D) on the CPU.
    ``layer``: None (every layer, concatenated), or one layer in [0, L] (negative: from the end).
    Runs in eval mode under ``torch.no_grad`` in batches of ``batch_size``, smaller where every
    layer's output for that many images would pass ``FEATURE_VALUES`` (large images: at 128² with
    h = 64 and 4 layers, 6 images at a time; the same features up to float rounding)."""
    x = model.check_input(x)
    layers = model.config.layers + 1
    if layer is not None:
        if isinstance(layer, bool) or not isinstance(layer, numbers.Integral) or not -layers <= layer < layers:
            raise ArgumentError(f"layer must be None or an integer in [0, {layers - 1}] (or from "
                                f"-{layers} counting from the end), got {layer!r}")
        layer = int(layer) % layers
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ArgumentError(f"batch_size must be an integer >= 1, got {batch_size!r}")
    kept = layers * 2 * model.config.hidden * x.shape[2] * x.shape[3]  # activations per image
    batch_size = max(1, min(batch_size, FEATURE_VALUES // kept))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            parts = [pooled(model.layer_outputs(x[s:s + batch_size]), layer)
                     for s in range(0, x.shape[0], batch_size)]
    finally:
        model.train(was_training)
    return torch.cat(parts)


def pooled(outputs: list[torch.Tensor], layer: int | None) -> torch.Tensor:
    """Each layer's (B, 2h, H, W) output averaged over positions; one layer or all side by side."""
    means = [o.float().mean(dim=(2, 3)).cpu() for o in outputs]
    return means[layer] if layer is not None else torch.cat(means, dim=1)


# -- the generative classifier -------------------------------------------------------------------
def posteriors(model, x: torch.Tensor, *, batch_size: int = 64, progress=False) -> tuple[torch.Tensor, torch.Tensor]:
    """For a conditional model: log p(y | x) (B, classes) and the marginal NLL -log p(x) (B,),
    float64 on the CPU, in batches (each costs ``classes`` forward passes)."""
    from .progress import as_progress
    if not model.classes:
        raise ArgumentError("classification needs a conditional model (trained with labels: classes > 0)")
    x = model.check_input(x)
    log_post, nll = [], []
    was_training = model.training
    model.eval()
    prog = as_progress(progress, x.shape[0], "classifying")
    try:
        with torch.no_grad():
            for s in range(0, x.shape[0], batch_size):
                joint = model.joint_log_probs(x[s:s + batch_size]).double().cpu()  # (b, K)
                marginal = joint.logsumexp(dim=1)
                log_post.append(joint - marginal[:, None])
                nll.append(-marginal)
                prog.moveto(min(x.shape[0], s + batch_size))
    finally:
        model.train(was_training)
        prog.close()
    return torch.cat(log_post), torch.cat(nll)


def calibration_error(probs: torch.Tensor, labels: torch.Tensor, bins: int = 15) -> float:
    """Expected calibration error: the gap between confidence (the top probability) and
    accuracy, averaged over ``bins`` equal-width confidence bins weighted by their counts."""
    conf, pred = probs.max(dim=1)
    right = (pred == labels).double()
    edges = torch.linspace(0, 1, bins + 1, dtype=conf.dtype)
    which = torch.bucketize(conf, edges[1:-1], right=True)  # bin of each confidence: 0..bins-1
    ece = 0.0
    for b in range(bins):
        inside = which == b
        if inside.any():
            ece += inside.double().mean().item() * abs(conf[inside].mean().item() - right[inside].mean().item())
    return ece


def classifier_report(model, x: torch.Tensor, labels: torch.Tensor, *, batch_size: int = 64,
                      progress=False) -> dict:
    """The generative classifier on labelled images: accuracy, the marginal image NLL (nats per
    image), the log loss -log p(y | x), the expected calibration error, the confusion matrix
    (rows: true label, columns: predicted) and every image's prediction and probabilities."""
    labels = torch.as_tensor(labels, dtype=torch.long).cpu()
    if labels.shape != (x.shape[0],):
        raise ArgumentError(f"need one label per image: {x.shape[0]} images, labels of shape {tuple(labels.shape)}")
    log_post, nll = posteriors(model, x, batch_size=batch_size, progress=progress)
    probs, pred, K = log_post.exp(), log_post.argmax(dim=1), model.classes
    confusion = torch.zeros(K, K, dtype=torch.long)
    confusion.index_put_((labels, pred), torch.ones_like(labels), accumulate=True)
    return {"accuracy": (pred == labels).double().mean().item(), "nll_nats": nll.mean().item(),
            "log_loss": -log_post.gather(1, labels[:, None]).mean().item(),
            "ece": calibration_error(probs, labels), "confusion": confusion.tolist(),
            "predictions": [{"image": i, "label": int(labels[i]), "predicted": int(pred[i]),
                             "probs": [round(p, 6) for p in probs[i].tolist()]} for i in range(len(labels))]}
