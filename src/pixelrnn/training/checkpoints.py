"""Evaluation and checkpoints during a run: the test NLL now, and last / best / state files
that are written only while every weight is finite."""
from __future__ import annotations

import torch

from .. import checkpoint as ckpt
from ..errors import RunError
from ..evaluate import evaluate
from .rundir import RunDir
from .session import Session
from .signals import Interrupted, Signals
from .state import TrainState, save_state


class NonFiniteLoss(RuntimeError):
    """The loss or the weights became NaN / inf: the run stops, its last checkpoint is good."""


def last_good(run: RunDir) -> str:
    """Where the run can be taken up again, for the message of a stop by NaN / inf."""
    try:
        step = ckpt.describe(run.last)["metadata"].get("step", "?")
    except Exception:  # noqa: BLE001 - missing or unreadable: nothing to point to
        return "No checkpoint was saved yet."
    return f"The last good checkpoint is {run.last} (step {step})."


def evaluate_now(s: Session, state: TrainState, signals: Signals | None = None) -> dict | None:
    """The test NLL now (``EvalResult.to_dict()`` and the step); with ``signals`` (one process
    only: ranks must not leave a collective apart) None as soon as SIGINT / SIGTERM arrives, so
    a long final evaluation does not hold up the checkpoint of a run asked to stop (a resume then
    does the evaluation)."""
    def stop_early(_done: int, _total: int) -> None:
        if signals is not None and s.dist.world == 1 and signals.received is not None:
            raise Interrupted
    try:
        res = evaluate(s.eval_model, s.test_data, s.cfg.eval_batch_size, s.cfg.precision, progress=stop_early,
                       limit=s.cfg.eval_limit)
    except Interrupted:
        return None
    return {**res.to_dict(), "step": state.step}


def checkpoint(s: Session, state: TrainState, test: dict | None = None, finished: bool = False) -> None:
    """Save the run now (every rank calls this; rank 0 writes): best.safetensors when ``test``
    is the best so far, last.safetensors and state.safetensors. ``finished``: the run ended at
    its limit. NonFiniteLoss, and nothing written, when a weight is NaN / inf."""
    if not bool(torch.stack([p.detach().isfinite().all() for p in s.model.parameters()]).all()):
        raise NonFiniteLoss(f"the weights became non-finite at step {state.step}; stopped. "
                            f"{last_good(s.run)}")  # (a finite loss, inf/nan gradients)
    window = s.dist.all_sum(state.window_nll, state.window_images)  # the log window so far
    failure = None
    if s.dist.main:  # rank 0 writes; a failure (disk full) must not leave the others waiting
        try:
            write_checkpoint(s, state, test, window, finished)
        except Exception as e:  # noqa: BLE001 - re-raised below, after the others know
            failure = e
    if s.dist.world > 1 and s.dist.all_sum(float(failure is not None))[0] and failure is None:
        raise RunError("rank 0 could not write a checkpoint (its error is in its output); stopped")
    if failure is not None:
        raise failure


def write_checkpoint(s: Session, state: TrainState, test: dict | None, window: list[float],
                     finished: bool) -> None:
    data = s.test_data
    meta = {"image_size": f"{data.height}x{data.width}", "data": s.cfg.data, "step": str(state.step)}
    if test is not None and (state.best_nll is None or test["nll_nats"] < state.best_nll):
        state.best_nll = test["nll_nats"]
        ckpt.save(s.eval_model, s.run.best, metadata={**meta, "test_nll": f"{state.best_nll:.6f}"})
    ckpt.save(s.eval_model, s.run.last, metadata=meta)
    save_state(s.run.state, s.model, s.optimizer, s.ema, state.to_meta(window, finished), s.symmetry_bias)
