"""Evaluation against out-of-distribution sets: ROC-AUC and AUPR of every scoring method
(OOD images are the positive class), a Markdown table, and a histogram of the scores."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from ..errors import ArgumentError
from ..imaging import save_png
from ..models import PixelModel
from .oodsets import OOD_SETS
from .scores import (DEFAULT_CODEC, LN2, METHODS, check_codec, check_method, codec_bits, image_nll,
                     scores_from_nll)


def ood_metrics(in_scores, out_scores) -> dict[str, float]:
    """ROC-AUC and AUPR of separating ``out_scores`` (positive class) from ``in_scores``, higher
    score = more anomalous (scikit-learn's roc_auc_score and average_precision_score)."""
    from sklearn.metrics import average_precision_score, roc_auc_score
    s_in = np.asarray(in_scores, dtype=np.float64).ravel()
    s_out = np.asarray(out_scores, dtype=np.float64).ravel()
    if s_in.size == 0 or s_out.size == 0:
        raise ArgumentError("need at least one in-distribution and one OOD score")
    y = np.concatenate([np.zeros(s_in.size), np.ones(s_out.size)])
    s = np.concatenate([s_in, s_out])
    return {"roc_auc": float(roc_auc_score(y, s)), "aupr": float(average_precision_score(y, s))}


def _columns(columns: Sequence[str], codec: str) -> list[tuple[str, str, str]]:
    """Column names -> (label, method, codec). "complexity:lzma" names a codec explicitly."""
    parsed = []
    for col in columns:
        method, _, c = col.partition(":")
        check_method(method)
        if c:
            if method != "complexity":
                raise ArgumentError(f"only complexity takes a codec, got {col!r}")
            check_codec(c)
        parsed.append((col, method, c or codec))
    return parsed


@dataclass
class OODResult:
    name: str
    description: str
    images: int
    scores: dict[str, np.ndarray]              # column -> (N,) scores
    metrics: dict[str, dict[str, float]]       # column -> {"roc_auc", "aupr"}

    def best(self, key: str = "roc_auc") -> str:
        """The column with the highest ``key`` (the first one on a tie)."""
        return max(self.metrics, key=lambda col: self.metrics[col][key])

    def winners(self, key: str = "roc_auc", decimals: int = 3) -> list[str]:
        """Every column whose ``key`` equals the best one when rounded to ``decimals``."""
        top = round(self.metrics[self.best(key)][key], decimals)
        return [col for col in self.metrics if round(self.metrics[col][key], decimals) == top]


@dataclass
class OODReport:
    columns: list[str]
    in_name: str
    in_images: int
    in_scores: dict[str, np.ndarray]
    results: list[OODResult] = field(default_factory=list)
    codec: str = DEFAULT_CODEC

    def table(self, title: bool = True) -> str:
        """A Markdown table: one row per OOD set, ROC-AUC / AUPR for every column; the best
        ROC-AUC of each row (ties at 3 decimals included) in bold."""
        head = "| OOD set | n | " + " | ".join(f"{c} AUROC | {c} AUPR" for c in self.columns) + " | best |"
        lines = [head, "|" + "---|" * (3 + 2 * len(self.columns))]
        for r in self.results:
            winners = r.winners()
            cells = []
            for c in self.columns:
                auc = f"{r.metrics[c]['roc_auc']:.3f}"
                cells += [f"**{auc}**" if c in winners else auc, f"{r.metrics[c]['aupr']:.3f}"]
            best = "tie" if len(winners) == len(self.columns) > 1 else " = ".join(winners)
            lines.append(f"| {r.name} | {r.images} | " + " | ".join(cells) + f" | {best} |")
        if title:
            lines.insert(0, f"in-distribution: {self.in_name}, {self.in_images} images "
                            f"(OOD = positive class; complexity codec: {self.codec})\n")
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return {"in_distribution": {"data": self.in_name, "images": self.in_images},
                "methods": list(self.columns), "complexity_codec": self.codec,
                "ood": [{"name": r.name, "description": r.description, "images": r.images,
                         "best": r.winners(), **r.metrics} for r in self.results]}


def _column_scores(model: PixelModel, x: torch.Tensor, cols: list[tuple[str, str, str]],
                   batch_size: int) -> dict[str, np.ndarray]:
    """{label: (N,) scores} of the images ``x`` for every parsed column; the NLL of each image is
    computed once, the code length once per codec."""
    nll = image_nll(model, x, batch_size)
    bits: dict[str, torch.Tensor] = {}
    out = {}
    for label, method, c in cols:
        if method == "complexity" and c not in bits:
            bits[c] = codec_bits(x, model.levels, c)
        if method == "complexity":
            out[label] = (nll / LN2 - bits[c]).numpy()
        else:
            out[label] = scores_from_nll(nll, x, model.levels, method).numpy()
    return out


def evaluate_ood(model: PixelModel, in_images: torch.Tensor, ood: dict[str, torch.Tensor], *,
                 columns: Sequence[str] = METHODS, codec: str = DEFAULT_CODEC, batch_size: int = 64,
                 in_name: str = "in-distribution", descriptions: dict[str, str] | None = None,
                 progress=None) -> OODReport:
    """ROC-AUC / AUPR of every scoring column for every OOD set against ``in_images``.

    ``columns``: methods ("nll", "bpd", "complexity") or "complexity:CODEC" for a specific codec;
    plain "complexity" uses ``codec``. The NLL of each image is computed once.
    ``progress(message)`` is called before each set is scored."""
    cols = _columns(columns, codec)
    if not ood:
        raise ArgumentError("no OOD sets given")

    if progress:
        progress(f"scoring {in_name} ({in_images.shape[0]} images)")
    in_scores = _column_scores(model, in_images, cols, batch_size)
    report = OODReport([c[0] for c in cols], in_name, int(in_images.shape[0]), in_scores, codec=codec)
    for name, x in ood.items():
        if tuple(x.shape[1:]) != tuple(in_images.shape[1:]):
            raise ArgumentError(f"OOD set {name} has images of shape {_shape(x)} but the "
                                f"in-distribution images are {_shape(in_images)}")
        if progress:
            progress(f"scoring {name} ({x.shape[0]} images)")
        s = _column_scores(model, x, cols, batch_size)
        metrics = {label: ood_metrics(in_scores[label], s[label]) for label in report.columns}
        desc = (descriptions or {}).get(name, OOD_SETS.get(name, name))
        report.results.append(OODResult(name, desc, int(x.shape[0]), s, metrics))
    return report


def _shape(x: torch.Tensor) -> str:
    return "x".join(str(d) for d in x.shape[1:])


def save_histogram(report: OODReport, path: str | Path, bins: int = 50) -> None:
    """One panel per scoring column: the in-distribution scores (filled) and each OOD set's
    (outlines), as densities on common bins, written atomically as a PNG."""
    import matplotlib
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    cols = report.columns
    fig = Figure(figsize=(10, 2.6 * len(cols)), dpi=90)
    canvas = FigureCanvasAgg(fig)
    colours = matplotlib.colormaps["tab10"]
    for k, col in enumerate(cols):
        ax = fig.add_subplot(len(cols), 1, k + 1)
        values = [report.in_scores[col]] + [r.scores[col] for r in report.results]
        finite = np.concatenate([v[np.isfinite(v)] for v in values])
        edges = np.histogram_bin_edges(finite if finite.size else [0.0, 1.0], bins=bins)
        ax.hist(report.in_scores[col], bins=edges, density=True, color="0.6", alpha=0.7,
                label=f"{report.in_name} (in)")
        for j, r in enumerate(report.results):
            ax.hist(r.scores[col], bins=edges, density=True, histtype="step", lw=1.4,
                    color=colours(j % 10), label=f"{r.name} (AUROC {r.metrics[col]['roc_auc']:.2f})")
        ax.set_title(f"{col} score (higher = more anomalous)", fontsize=9)
        ax.tick_params(labelsize=8)
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    fig.tight_layout()
    canvas.draw()
    save_png(np.asarray(canvas.buffer_rgba())[..., :3].copy(), path)
