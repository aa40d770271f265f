"""Scene understanding with PixelRNN: what its likelihoods and features know about the labels.

    python bench/scene_understanding.py --conditional runs/mnist-cond/best.safetensors \\
        --unconditional mnist [--data mnist] [--per-label 20] [--budget-minutes 8] [--threads 1]

On the test split of ``--data`` (mnist: the 1000 test digits), with the training split for
everything that is fitted:

(a) the generative classifier p(y | x) = p(y) p(x | y) / p(x) of the conditional model: accuracy,
    expected calibration error (15 bins), log loss, the marginal NLL;
(b) linear probes (scikit-learn logistic regression on standardized features) on
    ``pixelrnn.features`` of every layer of each model, and of all layers together, beside the
    same probe on the raw pixels (one harness, one split);
(c) label agreement of conditional samples: ``--per-label`` samples of every label, judged by a
    small CNN trained on the real training images (its own test accuracy is printed too);
(d) with ``--budget-minutes M`` > 0: the test NLL of the same Row LSTM trained for M minutes on
    binarized-mnist without and with ``--conditional`` (the conditional one: given the labels and
    the marginal).

Checkpoints are files or pretrained names. Prints markdown tables.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

import pixelrnn
from pixelrnn.data import convert_images, load_dataset
from pixelrnn.understanding import classifier_report


def load(name: str):
    return pixelrnn.load(name) if Path(name).exists() else pixelrnn.pretrained(name)


def split(data: str, which: str, model) -> tuple[torch.Tensor, torch.Tensor]:
    ds = load_dataset(data, which)
    return convert_images(ds.batch(slice(0, len(ds))), ds.levels, model.channels, model.levels), ds.labels


# -- (b) linear probes ------------------------------------------------------------------------------
def probe_accuracy(train_x: np.ndarray, train_y, test_x: np.ndarray, test_y) -> float:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=3000, C=0.5))
    clf.fit(train_x, np.asarray(train_y))
    return float((clf.predict(test_x) == np.asarray(test_y)).mean())


def probes(name: str, model, data: str) -> list[tuple[str, str, float]]:
    """(model, layer, test accuracy) for every layer and all layers together."""
    tx, ty = split(data, "train", model)
    vx, vy = split(data, "test", model)
    ftrain, ftest = pixelrnn.features(model, tx).numpy(), pixelrnn.features(model, vx).numpy()
    width = 2 * model.config.hidden
    rows = []
    for layer in range(model.config.layers + 1):
        cols = slice(layer * width, (layer + 1) * width)
        label = "first (mask A)" if layer == 0 else f"block {layer}"
        rows.append((name, label, probe_accuracy(ftrain[:, cols], ty, ftest[:, cols], vy)))
    rows.append((name, "all layers", probe_accuracy(ftrain, ty, ftest, vy)))
    return rows


def raw_pixels_probe(data: str, model) -> float:
    tx, ty = split(data, "train", model)
    vx, vy = split(data, "test", model)
    return probe_accuracy(tx.flatten(1).float().numpy(), ty, vx.flatten(1).float().numpy(), vy)


# -- (c) samples judged by a classifier of real images ----------------------------------------------
class Judge(nn.Module):
    """A small CNN over images scaled to [0, 1]: conv 32 - conv 64 - pool - fc 128 - classes."""

    def __init__(self, channels: int, classes: int, size: int):
        super().__init__()
        self.c1 = nn.Conv2d(channels, 32, 3, padding=1)
        self.c2 = nn.Conv2d(32, 64, 3, padding=1)
        self.fc1 = nn.Linear(64 * (size // 4) ** 2, 128)
        self.fc2 = nn.Linear(128, classes)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.c1(x)), 2)
        x = F.max_pool2d(F.relu(self.c2(x)), 2)
        return self.fc2(F.relu(self.fc1(x.flatten(1))))


def train_judge(data: str, model, epochs: int = 8) -> tuple[Judge, float]:
    tx, ty = split(data, "train", model)
    vx, vy = split(data, "test", model)
    scale = 1.0 / (model.levels - 1)
    torch.manual_seed(0)
    judge = Judge(model.channels, model.classes, tx.shape[-1])
    opt = torch.optim.Adam(judge.parameters(), lr=1e-3)
    for _ in range(epochs):
        for idx in torch.randperm(len(tx)).split(64):
            loss = F.cross_entropy(judge(tx[idx].float() * scale), ty[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    judge.eval()
    with torch.no_grad():
        acc = (judge(vx.float() * scale).argmax(1) == vy).float().mean().item()
    return judge, acc


def sample_agreement(model, judge: Judge, per_label: int, size: tuple[int, int]) -> tuple[float, list[float]]:
    y = torch.arange(model.classes).repeat_interleave(per_label)
    g = torch.Generator().manual_seed(0)
    images = torch.cat([model.sample(len(part), *size, y=part, generator=g) for part in y.split(64)])
    with torch.no_grad():
        said = judge(images.float() / (model.levels - 1)).argmax(1)
    per = [(said[y == k] == k).float().mean().item() for k in range(model.classes)]
    return (said == y).float().mean().item(), per


# -- (d) conditional against unconditional at one budget --------------------------------------------
def budget_runs(minutes: float, threads: int, out: Path) -> list[tuple[str, float, float | None, int]]:
    """The two runs at the same time (so that both see the same machine), then the exact test NLL
    of each (the conditional one: marginal and given the labels)."""
    import subprocess
    import sys
    runs = {}
    for name, extra in (("unconditional", []), ("conditional", ["--conditional"])):
        run = out / name
        cmd = [sys.executable, "-m", "pixelrnn", "train", "--data", "binarized-mnist", "--arch", "row_lstm",
               "--hidden", "48", "--layers", "2", "--lr", "2e-3", "--lr-schedule", "cosine", "--max-minutes",
               str(minutes), "--eval-every", "1000000", "--save-every", "1000000", "--eval-batch-size", "100",
               "--threads", str(threads), "--no-progress", "--out", str(run), *extra]
        runs[name] = (run, subprocess.Popen(cmd, stdout=subprocess.DEVNULL))
    rows = []
    test = load_dataset("binarized-mnist", "test")
    for name, (run, proc) in runs.items():
        if proc.wait() != 0:
            raise SystemExit(f"the {name} run failed")
        model = pixelrnn.load(run / "last.safetensors")
        steps = json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])["step"]
        with torch.no_grad():
            batches = [slice(s, s + 100) for s in range(0, len(test), 100)]
            marginal = -torch.cat([model.log_prob(test.batch(b)) for b in batches]).double().mean().item()
            given = None if not model.classes else -torch.cat(
                [model.log_prob(test.batch(b), test.labels_of(b)) for b in batches]).double().mean().item()
        rows.append((name, marginal, given, steps))
    return rows


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--conditional", required=True, help="a conditional model (file or pretrained name)")
    p.add_argument("--unconditional", help="an unconditional model of the same data, for the probes")
    p.add_argument("--data", default="mnist")
    p.add_argument("--per-label", type=int, default=20, help="samples per label for (c) (0: skip)")
    p.add_argument("--budget-minutes", type=float, default=0.0, help="(d): minutes per run (0: skip)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default="runs/scene", help="where (d) trains")
    p.add_argument("--json", help="also write every figure to this JSON file")
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    cond = load(a.conditional)
    results: dict = {"data": a.data, "conditional": a.conditional, "unconditional": a.unconditional}
    t0 = time.time()
    vx, vy = split(a.data, "test", cond)
    rep = classifier_report(cond, vx, vy)
    results["classifier"] = {k: rep[k] for k in ("accuracy", "ece", "log_loss", "nll_nats")}
    print(f"(a) generative classifier on {len(vx)} {a.data} test images: accuracy {rep['accuracy']:.4f}, "
          f"ECE {rep['ece']:.4f}, log loss {rep['log_loss']:.4f}, marginal NLL {rep['nll_nats']:.2f} nats "
          f"({time.time() - t0:.0f} s)", flush=True)
    rows = [("raw pixels", "-", raw_pixels_probe(a.data, cond))]
    for name in filter(None, [a.unconditional, a.conditional]):
        rows += probes(name, load(name), a.data)
    results["probes"] = [{"model": m, "layer": layer, "accuracy": acc} for m, layer, acc in rows]
    print("\n(b) linear probe (logistic regression on standardized features), test accuracy")
    print("| features | layer | accuracy |\n|---|---|---:|")
    for m, layer, acc in rows:
        print(f"| {m} | {layer} | {acc:.4f} |")
    if a.per_label:
        judge, judge_acc = train_judge(a.data, cond)
        agree, per = sample_agreement(cond, judge, a.per_label, tuple(vx.shape[-2:]))
        results["samples"] = {"judge_test_accuracy": judge_acc, "agreement": agree, "per_label": per}
        print(f"\n(c) {a.per_label} samples per label: {agree:.4f} read as their label by a CNN trained on the "
              f"real training images (its test accuracy {judge_acc:.4f}); per label "
              + " ".join(f"{k}:{v:.2f}" for k, v in enumerate(per)))
    if a.budget_minutes > 0:
        rows_d = budget_runs(a.budget_minutes, a.threads, Path(a.out))
        results["budget"] = [{"model": m, "marginal_nll": nll, "given_labels_nll": g, "steps": s}
                             for m, nll, g, s in rows_d]
        print(f"\n(d) binarized-mnist, Row LSTM h=48 2 layers, {a.budget_minutes:g} min on {a.threads} thread(s)")
        print("| model | steps | test NLL (nats, marginal) | given the labels |\n|---|---:|---:|---:|")
        for m, nll, g, s in rows_d:
            print(f"| {m} | {s} | {nll:.2f} | {'-' if g is None else f'{g:.2f}'} |")
    if a.json:
        Path(a.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
