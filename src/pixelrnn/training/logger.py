"""Where a run reports, rank 0 only: ``metrics.jsonl``, TensorBoard (when the tensorboard package
is installed) and the progress bar, all three from one record per log or evaluation step."""
from __future__ import annotations

import math
import time

from ..progress import Progress
from .config import TrainConfig
from .distributed import Dist
from .rundir import RunDir
from .state import TrainState

SCALARS = ("train_nll", "train_bpd", "test_nll", "test_bpd", "images_per_s", "lr")  # to TensorBoard


def open_tensorboard(run: RunDir, purge_step: int | None):
    """A SummaryWriter on ``run/tb`` (events after ``purge_step`` dropped), or None."""
    try:
        from torch.utils.tensorboard import SummaryWriter
        return SummaryWriter(str(run.path / "tb"), purge_step=purge_step)
    except Exception:  # noqa: BLE001 - tensorboard is an optional extra
        return None


def test_figures(test: dict) -> dict:
    """What a metrics record keeps of an evaluation: the test NLL and bits/dim, on how many test
    images (all, or the first --eval-limit), and whether given the labels (--conditional)."""
    figures = {"test_nll": test["nll_nats"], "test_bpd": test["bits_per_dim"], "test_images": test["images"]}
    return {**figures, "test_given_labels": True} if test.get("given_labels") else figures


class TrainLog:
    """The records of a run of ``dims`` values per image and ``total`` steps (None: a time
    budget of ``deadline`` seconds), written from the state of every step."""

    def __init__(self, run: RunDir, cfg: TrainConfig, d: Dist, state: TrainState, *, dims: int,
                 total: int | None, deadline: float | None, resume: bool):
        self.run, self.dist, self.dims, self.total, self.deadline = run, d, dims, total, deadline
        self.log_every = cfg.log_every
        self.tb = open_tensorboard(run, state.step if resume else None) if d.main else None
        self.bar = Progress(total, f"{cfg.arch} on {cfg.data}", bar=True, unit="step", leave=True,
                            initial=state.step) if d.main and cfg.progress else None
        self.figures: dict[str, str] = {}  # the bar's figures, kept between records

    def window(self, state: TrainState, lr: float) -> dict | None:
        """At a log step, the training figures of the window that ends now (summed over the
        ranks: every rank calls this), and a new window; else None."""
        if state.step % self.log_every and state.step != self.total:
            return None
        now = time.time()
        nll_sum, images = self.dist.all_sum(state.window_nll, state.window_images)
        train_nll = nll_sum / max(1, images)
        record = {"step": state.step, "epoch": state.epoch, "train_nll": train_nll,
                  "train_bpd": train_nll / (self.dims * math.log(2)),
                  "images_per_s": images / max(1e-9, now - state.window_start),
                  "lr": lr, "time": now, "elapsed": state.elapsed + now - state.started}
        state.new_window(now)
        return record

    def write(self, state: TrainState, record: dict | None, test: dict | None, lr: float) -> None:
        """The step's record (``window``'s, with the ``test`` result when there is one) to the
        files, and the step to the bar."""
        if test is not None:
            now = time.time()
            record = record or {"step": state.step, "epoch": state.epoch, "time": now,
                                "elapsed": state.elapsed + now - state.started, "lr": lr}
            record.update(test_figures(test))
        if record is not None and self.dist.main:
            self.run.append_metrics(record)
            if self.tb is not None:
                for k in SCALARS:
                    if k in record:
                        self.tb.add_scalar(k, record[k], state.step)
        if self.bar is not None:
            self.bar.advance()
            if record is not None:
                self.show(state, record)

    def show(self, state: TrainState, record: dict) -> None:
        """The bar's figures; an evaluation-only record keeps the last training figures."""
        if "train_nll" in record:
            self.figures.update({"nll": f"{record['train_nll']:.2f}", "bpd": f"{record['train_bpd']:.3f}",
                                 "img/s": f"{record['images_per_s']:.0f}"})
        if "test_nll" in record:
            self.figures["test"] = f"{record['test_nll']:.2f}"
        if self.deadline is not None and self.total is None:  # a time budget: its ETA
            left = max(0.0, self.deadline - state.seconds())
            self.figures["left"] = f"{int(left // 60)}:{int(left % 60):02d}"
        self.bar.show(**self.figures)

    def final(self, state: TrainState, record: dict) -> None:
        """The end-of-run record (rank 0 writes it)."""
        if self.dist.main:
            self.run.append_metrics({**record, "time": time.time(), "elapsed": state.seconds()})

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        if self.tb is not None:
            self.tb.close()

    def __enter__(self) -> "TrainLog":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
