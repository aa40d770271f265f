"""The training loop: :func:`train` runs (or resumes) the run of a :class:`TrainConfig`."""
from __future__ import annotations

import math
import os
from dataclasses import dataclass, field

import torch
import torch.distributed as dist

from ..evaluate import autocast_for
from .checkpoints import NonFiniteLoss, checkpoint, evaluate_now, last_good
from .config import TrainConfig
from .distributed import Dist, close_distributed, init_distributed, rank_device, rank_weight_diff
from .logger import TrainLog, test_figures
from .optim import lr_factor, set_lr
from .session import Session, prepare
from .signals import Signals
from .state import TrainState


@dataclass
class TrainResult:
    step: int
    epoch: int
    test: dict | None
    best_nll: float | None
    stopped_by: str  # "steps" | "epochs" | "time" | "signal"
    run_dir: str
    rank: int = 0
    skipped: list[str] = field(default_factory=list)
    train_images: int = 0


def train(cfg: TrainConfig, resume: bool = False) -> TrainResult:
    """Train (or resume) the run described by ``cfg``; returns a summary. Under torchrun, end the
    calling script as ``pixelrnn.cli.entry`` does (flush, then ``os._exit``): torch keeps a DDP
    model's gloo process group alive, and its threads can abort a normal interpreter shutdown."""
    cfg.validate()
    if cfg.deterministic:  # read when cuBLAS starts: before any CUDA work
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    device = rank_device(cfg.device, int(os.environ.get("WORLD_SIZE", "1")),
                         int(os.environ.get("LOCAL_RANK", "0")))
    owned = not (dist.is_available() and dist.is_initialized())
    d = init_distributed(device)
    finished = False
    try:
        result = run_session(cfg, resume, d, device)
        finished = True
        return result
    finally:
        close_distributed(d, owned, finished)


def run_session(cfg: TrainConfig, resume: bool, d: Dist, device: torch.device) -> TrainResult:
    """Set up, train until a limit or a signal, evaluate and save a last time."""
    s, state = prepare(cfg, resume, d, device)
    log = TrainLog(s.run, s.cfg, d, state, dims=s.dims, total=s.total, deadline=s.deadline, resume=resume)
    state.start_clock()
    with Signals() as signals, log:
        stop, last_test = train_steps(s, state, log, signals)
        stopped_by, last_test = finish(s, state, log, signals, stop, last_test)
    return TrainResult(step=state.step, epoch=state.epoch, test=last_test, best_nll=state.best_nll,
                       stopped_by=stopped_by, run_dir=str(s.run.path), rank=d.rank,
                       skipped=list(s.batches.data.skipped), train_images=len(s.batches.data))


def train_steps(s: Session, state: TrainState, log: TrainLog, signals: Signals) -> tuple[str, dict | None]:
    """Optimizer steps until the ranks agree to stop; returns why, and the latest test result."""
    cfg, autocast, last_test = s.cfg, autocast_for(s.device, s.cfg.precision), None
    s.model.train()
    while (stop := s.dist.agree(
            "signal" if signals.received is not None else s.limit_reached(state))) is None:
        lr = set_lr(s.optimizer, cfg.lr * lr_factor(cfg, state.step, s.total, time_fraction(s, state)))
        x, which, y = s.batches.next(state)
        with autocast:
            logp = s.net(x, which, y)  # (B,) exact log-likelihoods (given the labels y), nats
        loss = -logp.mean() / s.dims  # nats per dimension
        # one device-to-host copy for both figures (each sync stalls a GPU's queue)
        loss_value, batch_nll = torch.stack([loss.detach(), -logp.detach().sum()]).double().tolist()
        if not math.isfinite(s.dist.all_sum(loss_value)[0]):
            raise NonFiniteLoss(f"loss became {loss_value} at step {state.step + 1}; stopped. "
                                f"{last_good(s.run)}")
        s.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.grad_clip:
            torch.nn.utils.clip_grad_norm_(s.model.parameters(), cfg.grad_clip)
        s.optimizer.step()
        if s.ema is not None:
            s.ema.update_parameters(s.model)
        state.advance(batch_nll, x.shape[0])
        record = log.window(state, lr)  # the training figures, at a log step
        test = evaluate_now(s, state) if state.step % s.eval_every == 0 else None
        log.write(state, record, test, lr)
        if test is not None or state.step % cfg.save_every == 0:
            checkpoint(s, state, test)
        last_test = test or last_test
    return stop, last_test


def time_fraction(s: Session, state: TrainState) -> float | None:
    """The part of the time budget used (the same on every rank), or None without one."""
    if s.deadline is None:
        return None
    frac = state.seconds() / s.deadline
    return frac if s.dist.world == 1 else s.dist.all_sum(frac)[0] / s.dist.world


def finish(s: Session, state: TrainState, log: TrainLog, signals: Signals, stop: str,
           last_test: dict | None) -> tuple[str, dict | None]:
    """The end of a run: the final evaluation (unless a signal stopped the run, or stops the
    evaluation, or the last step evaluated), the final record and checkpoint. Returns why the
    run stopped and its latest test result."""
    final = {"step": state.step, "epoch": state.epoch, "final": True}
    if s.dist.world > 1:  # every rank must hold the same weights
        final["rank_max_weight_diff"] = rank_weight_diff(s.model)
    if stop != "signal" and (last_test is None or state.step % s.eval_every != 0):
        test = evaluate_now(s, state, signals)
        if test is None:
            stop = "signal"
        else:
            last_test = test
            final.update(test_figures(test))
    log.final(state, final)
    checkpoint(s, state, last_test if stop != "signal" else None, finished=stop != "signal")
    return stop, last_test
