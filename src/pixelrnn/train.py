"""Training loop: checkpoints that resume exactly, progress, logs, distributed data parallel.

A run directory holds::

    config.json          every resolved setting (TrainConfig) plus data facts
    metrics.jsonl        one JSON object per log / evaluation event
    last.safetensors     the model after the latest saved step   (pixelrnn.load reads it)
    best.safetensors     the model with the best test NLL so far  (EMA weights if --ema)
    state.safetensors    everything needed to resume: raw weights, optimizer, EMA, step, data
                         position, RNG state, elapsed time (tensors in safetensors, the rest JSON)
    tb/                  TensorBoard event files (only when the tensorboard package is installed)

Every file is written atomically (temporary file + rename), so a crash or SIGKILL leaves either the
previous or the new version, never half a file. Data order is a pure function of (seed, epoch),
so resuming from a saved step replays exactly the batches an uninterrupted run would have seen;
with ``deterministic=True`` the final weights are identical.

Distributed: launched by ``torchrun`` (WORLD_SIZE > 1) every rank trains on its part of each
global batch (DistributedSampler, ``set_epoch`` every epoch), gradients are averaged by
DistributedDataParallel, rank 0 alone logs, shows progress and writes files, and evaluation shards
the test split and all-reduces the NLL sums and counts.
"""
from __future__ import annotations

import dataclasses
import math
import os
import signal
import sys
import time
import warnings
from dataclasses import dataclass, field

import torch
import torch.distributed as dist

from . import checkpoint as ckpt
from .data import DIHEDRAL, DataError, DataWarning, absolute_spec, augment, dihedral, load_dataset
from .evaluate import autocast_for, evaluate
from .models import PixelModel, model_from_config
from .errors import ArgumentError, RunError
from .training.config import MODEL_FIELDS, TrainConfig, init_model  # noqa: F401  (this module's names)
from .training.distributed import (Dist, close_distributed, init_distributed,  # noqa: F401
                                   rank_device, rank_weight_diff)
from .training.rundir import RESUMABLE_OVERRIDES, RunDir, RunWarning, resume_config  # noqa: F401
from .training.state import (STATE_FORMAT, STATE_VERSION, load_state, restore_state,  # noqa: F401
                             save_state)


class NonFiniteLoss(RuntimeError):
    pass


# -- the loop ---------------------------------------------------------------------------------
def make_optimizer(cfg: TrainConfig, params) -> torch.optim.Optimizer:
    if cfg.optimizer == "adam":
        return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay) if cfg.weight_decay \
            else torch.optim.Adam(params, lr=cfg.lr)
    return torch.optim.RMSprop(params, lr=cfg.lr, alpha=0.95, eps=1e-6, weight_decay=cfg.weight_decay)


def lr_factor(cfg: TrainConfig, step: int, total: int | None, time_fraction: float | None = None) -> float:
    """Multiplier of the base learning rate at ``step`` (0-based). The schedule runs over the
    steps when their number is known, else over the time budget (``time_fraction`` of
    --max-minutes used), whichever ends first."""
    if cfg.warmup and step < cfg.warmup:
        return (step + 1) / cfg.warmup
    if cfg.lr_schedule == "constant" or (not total and time_fraction is None):
        return 1.0
    progress = 0.0 if not total else (step - cfg.warmup) / max(1, total - cfg.warmup)
    if time_fraction is not None:
        progress = max(progress, time_fraction)
    progress = min(1.0, progress)
    if cfg.lr_schedule == "cosine":
        return 0.5 * (1 + math.cos(math.pi * progress))
    return 1.0 - progress  # linear


class _Interrupted(Exception):
    """Raised inside an evaluation that a signal asked to stop."""


class _Signals:
    """Turn SIGINT / SIGTERM into a flag checked between steps (the current step finishes, a
    checkpoint is written, then the run exits)."""

    def __init__(self):
        self.received: int | None = None
        self._old = {}

    def __enter__(self):
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self._old[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread
                pass
        return self

    def _handle(self, signum, frame):
        if self.received is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt  # second Ctrl-C: give up immediately
        self.received = signum

    def __exit__(self, *exc):
        for sig, old in self._old.items():
            signal.signal(sig, old)


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
        result = _train(cfg, resume, d, device)
        finished = True
        return result
    finally:
        close_distributed(d, owned, finished)


def _train(cfg: TrainConfig, resume: bool, d: Dist, device: torch.device) -> TrainResult:
    run = RunDir(cfg.out)
    if not resume:  # config.json records where the data are, whatever the working directory
        cfg = dataclasses.replace(cfg, data=absolute_spec(cfg.data))
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    if cfg.deterministic:
        torch.use_deterministic_algorithms(True)
    if cfg.batch_size % d.world:
        raise ArgumentError(f"--batch-size {cfg.batch_size} must be divisible by the number of "
                         f"processes ({d.world})")
    if not resume:
        run.check_new()
    if d.main and run.path.is_dir():  # temporary files a kill left behind while saving
        run.remove_stale_temporaries()

    # data
    crop = cfg.crop_size()
    train_ds = load_dataset(cfg.data, "train", levels=cfg.levels, crop=crop, skip_bad=cfg.skip_bad)
    with warnings.catch_warnings():  # the test split reads the same files: warned once, above
        warnings.simplefilter("ignore", DataWarning)
        test_ds = load_dataset(cfg.data, "test", levels=cfg.levels, crop=crop, skip_bad=cfg.skip_bad)
    if tuple(test_ds.images.shape[1:]) != tuple(train_ds.images.shape[1:]):
        raise DataError(f"{cfg.data}: train images are {'x'.join(map(str, train_ds.images.shape[1:]))} but "
                        f"test images are {'x'.join(map(str, test_ds.images.shape[1:]))}")
    if cfg.dynamic_binarization and train_ds.probs is None:
        raise ArgumentError("--dynamic-binarization needs a binarized dataset (binarized-mnist)")
    n_train = len(train_ds)
    C, H, W = train_ds.channels, train_ds.height, train_ds.width
    if cfg.shift >= min(H, W):
        raise ArgumentError(f"--shift {cfg.shift} must be smaller than the images ({H}x{W})")
    if resume:
        run.check_same_data({"train_images": n_train, "test_images": len(test_ds), "channels": C,
                             "height": H, "width": W, "levels": train_ds.levels}, d.world, warn=d.main)
    elif cfg.batch_size > n_train and d.main:
        warnings.warn(RunWarning(f"--batch-size {cfg.batch_size} is more than the {n_train} training "
                                 f"images: every step uses all of them"), stacklevel=2)

    # model, optimizer, EMA
    torch.manual_seed(cfg.seed)
    if resume:  # the model that config.json records (also one that came from --init)
        model = model_from_config(run.load_model_config()).to(device)
    elif cfg.init:
        model = init_model(cfg, C, train_ds.levels).to(device)
    else:
        model = model_from_config(cfg.model_config(C, train_ds.levels)).to(device)
    model.set_dropout(cfg.dropout)
    symmetry_bias = None
    if cfg.dihedral:
        if H != W:
            raise ArgumentError(f"--dihedral needs square images; {cfg.data} has {H}x{W} (try --crop)")
        try:
            width = model.term_width
        except ArgumentError:
            raise ArgumentError(f"--dihedral is not available for --arch {model.config.arch}") from None
        symmetry_bias = SymmetryBias(width).to(device)
    params = list(model.parameters()) + ([] if symmetry_bias is None else list(symmetry_bias.parameters()))
    optimizer = make_optimizer(cfg, params)  # the model's parameters first: their indices never change
    ema = None
    if cfg.ema:
        from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
        ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(cfg.ema), use_buffers=True)

    step, epoch, batch_in_epoch, elapsed, best = 0, 0, 0, 0.0, None
    if resume:
        tensors, meta = load_state(run.state)
        restore_state(model, optimizer, ema, tensors, meta, run.state, symmetry_bias)
        step, epoch, batch_in_epoch = meta["step"], meta["epoch"], meta["batch_in_epoch"]
        elapsed, best = meta["elapsed"], meta.get("best_nll")
    elif d.main:
        run.path.mkdir(parents=True, exist_ok=True)
        run.write_json(run.config, {
            "train": dataclasses.asdict(cfg), "model": model.config.to_dict(),
            "data": {"spec": cfg.data, "train_images": n_train, "test_images": len(test_ds),
                     "channels": C, "height": H, "width": W, "levels": train_ds.levels,
                     "skipped": train_ds.skipped},
            "world_size": d.world, "torch": torch.__version__})
        run.metrics.write_text("")

    net: torch.nn.Module = LogProb(model, symmetry_bias)
    if d.world > 1:
        net = torch.nn.parallel.DistributedDataParallel(
            net, device_ids=[device.index] if device.type == "cuda" else None)
    if cfg.compile:
        net = torch.compile(net)

    global_batch = min(cfg.batch_size, n_train - n_train % d.world) if n_train >= d.world else 0
    if global_batch < d.world:
        raise ArgumentError(f"need at least {d.world} training images, got {n_train}")
    local_batch = global_batch // d.world
    sampler = torch.utils.data.distributed.DistributedSampler(
        range(n_train), num_replicas=d.world, rank=d.rank, shuffle=True, seed=cfg.seed, drop_last=True)
    steps_per_epoch = len(sampler) // local_batch
    total = cfg.steps if cfg.steps is not None else (
        cfg.epochs * steps_per_epoch if cfg.epochs is not None else None)
    if cfg.steps is not None and cfg.epochs is not None:
        total = min(cfg.steps, cfg.epochs * steps_per_epoch)
    dims = C * H * W
    eval_every = cfg.eval_every or steps_per_epoch
    deadline = None if cfg.max_minutes is None else cfg.max_minutes * 60.0
    at_limit = (total is not None and step >= total) or (deadline is not None and elapsed >= deadline)
    # a run that a signal stopped at its limit still has its final evaluation to do: the loop
    # below then ends at once; one that finished has nothing left
    if resume and at_limit and meta.get("finished", True):
        limit = (f"{total} steps" if total is not None and step >= total
                 else f"--max-minutes {cfg.max_minutes:g}")
        raise RunError(f"{run.path} is already at step {step}, its limit of {limit}: nothing to do "
                       f"(give a larger --steps, --epochs or --max-minutes to go on)")
    if resume and d.main:
        run.truncate_metrics(step)  # records after the saved step are redone (a kill loses them)
    meta_common = {"image_size": f"{H}x{W}", "data": cfg.data}

    def evaluate_now(signals=None) -> dict | None:
        """The test NLL now; with ``signals`` (one process only: ranks must not leave a collective
        apart) None as soon as SIGINT / SIGTERM arrives, so a long final evaluation does not hold
        up the checkpoint of a run asked to stop (a resume then does the evaluation)."""
        def stop_early(_images: int) -> None:
            if signals is not None and d.world == 1 and signals.received is not None:
                raise _Interrupted
        model_for_eval = ema.module if ema is not None else model
        try:
            res = evaluate(model_for_eval, test_ds.images, cfg.eval_batch_size, cfg.precision,
                           progress=stop_early)
        except _Interrupted:
            return None
        return {**res.to_dict(), "step": step}

    def checkpoint(test: dict | None = None, finished: bool = False) -> None:
        if not bool(torch.stack([p.detach().isfinite().all() for p in model.parameters()]).all()):
            raise NonFiniteLoss(f"the weights became non-finite at step {step}; stopped. "
                                f"{_last_good(run)}")  # (a finite loss, inf/nan gradients)
        window = all_sum(window_nll, window_imgs)  # every rank: the sums of the log window so far
        failure = None
        if d.main:  # rank 0 writes; a failure (disk full) must not leave the others waiting
            try:
                write_checkpoint(test, window, finished)
            except Exception as e:  # noqa: BLE001 - re-raised below, after the others know
                failure = e
        if d.world > 1 and all_sum(float(failure is not None))[0] and failure is None:
            raise RunError("rank 0 could not write a checkpoint (its error is in its output); stopped")
        if failure is not None:
            raise failure

    def write_checkpoint(test: dict | None, window: list[float], finished: bool) -> None:
        nonlocal best
        eval_model = ema.module if ema is not None else model
        meta = {**meta_common, "step": str(step)}
        if test is not None and (best is None or test["nll_nats"] < best):
            best = test["nll_nats"]
            ckpt.save(eval_model, run.best, metadata={**meta, "test_nll": f"{best:.6f}"})
        ckpt.save(eval_model, run.last, metadata=meta)
        save_state(run.state, model, optimizer, ema,
                   {"step": step, "epoch": epoch, "batch_in_epoch": batch_in_epoch,
                    "elapsed": elapsed + (time.time() - t_start), "best_nll": best,
                    "window_nll": window[0], "window_images": int(window[1]),
                    "window_seconds": time.time() - window_t, "finished": finished},
                   symmetry_bias)

    tb = None
    if d.main:
        try:
            from torch.utils.tensorboard import SummaryWriter
            tb = SummaryWriter(str(run.path / "tb"), purge_step=step if resume else None)
        except Exception:  # tensorboard is an optional extra
            tb = None

    bar = None
    post: dict[str, str] = {}  # the progress bar's figures, kept between log records
    if d.main and cfg.progress:
        from tqdm.auto import tqdm
        bar = tqdm(total=total, initial=step, unit="step", dynamic_ncols=True, file=sys.stderr,
                   desc=f"{cfg.arch} on {cfg.data}")

    autocast = autocast_for(device, cfg.precision)
    t_start = time.time()
    window_nll, window_imgs, window_t = 0.0, 0, time.time()  # the log window in progress
    if resume:  # a window cut by the stop goes on (held by rank 0: the sums are global)
        window_nll = float(meta.get("window_nll", 0.0)) if d.main else 0.0
        window_imgs = int(meta.get("window_images", 0)) if d.main else 0
        window_t -= float(meta.get("window_seconds", 0.0))
    stopped_by, last_test = "steps", None
    images = train_ds.images
    model.train()

    def reached_limit() -> str | None:
        if total is not None and step >= total:
            by_epochs = cfg.epochs is not None and (cfg.steps is None or cfg.epochs * steps_per_epoch <= cfg.steps)
            return "epochs" if by_epochs else "steps"
        if deadline is not None and elapsed + (time.time() - t_start) >= deadline:
            return "time"
        return None

    def time_fraction() -> float | None:
        if deadline is None:
            return None
        frac = (elapsed + time.time() - t_start) / deadline
        if d.world > 1:  # every rank must use the same learning rate
            frac = all_sum(frac)[0] / d.world
        return frac

    def stop_reason(signals) -> str | None:
        """Why to stop now, agreed by every rank (a signal or the clock may reach ranks apart)."""
        return d.agree("signal" if signals.received is not None else reached_limit())

    all_sum = d.all_sum

    order, order_epoch = None, None
    with _Signals() as signals:
        try:
            while (stop := stop_reason(signals)) is None:
                if batch_in_epoch >= steps_per_epoch:
                    epoch, batch_in_epoch = epoch + 1, 0
                if order_epoch != epoch:  # data order is a function of (seed, epoch) only
                    sampler.set_epoch(epoch)
                    if cfg.dynamic_binarization:
                        train_ds.redraw(torch.Generator().manual_seed(cfg.seed * 100003 + epoch))
                        images = train_ds.images
                    order, order_epoch = torch.tensor(list(iter(sampler)), dtype=torch.long), epoch
                idx = order[batch_in_epoch * local_batch:(batch_in_epoch + 1) * local_batch]
                x = images[idx]
                which = None
                if cfg.shift or cfg.hflip or cfg.dihedral:  # draws: a function of (seed, step, rank)
                    gen = torch.Generator().manual_seed((cfg.seed * 1_000_003 + step) * d.world + d.rank)
                    x = augment(x, shift=cfg.shift, hflip=cfg.hflip, generator=gen)
                    if cfg.dihedral:  # identity with probability 1 - P, else one of the other 7
                        other = torch.rand(x.shape[0], generator=gen) < cfg.dihedral
                        pick = torch.randint(1, len(DIHEDRAL), (x.shape[0],), generator=gen)
                        which = torch.where(other, pick, 0)
                        x = dihedral(x, which)
                        which = which.to(device)
                x = x.to(device=device, dtype=torch.long, non_blocking=True)
                for g in optimizer.param_groups:
                    g["lr"] = cfg.lr * lr_factor(cfg, step, total, time_fraction())
                with autocast:
                    logp = net(x) if which is None else net(x, which)  # (B,) exact log-likelihoods, nats
                loss = -logp.mean() / dims  # nats per dimension
                # one device-to-host copy for both figures (each sync stalls a GPU's queue)
                loss_value, batch_nll = torch.stack([loss.detach(), -logp.detach().sum()]).double().tolist()
                if not math.isfinite(all_sum(loss_value)[0]):
                    raise NonFiniteLoss(f"loss became {loss_value} at step {step + 1}; stopped. "
                                        f"{_last_good(run)}")
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if cfg.grad_clip:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
                optimizer.step()
                if ema is not None:
                    ema.update_parameters(model)
                step += 1
                batch_in_epoch += 1
                window_nll += batch_nll
                window_imgs += x.shape[0]
                record = None
                if step % cfg.log_every == 0 or step == total:
                    now = time.time()
                    nll_sum, n_imgs = all_sum(window_nll, window_imgs)
                    train_nll = nll_sum / max(1, n_imgs)
                    record = {"step": step, "epoch": epoch, "train_nll": train_nll,
                              "train_bpd": train_nll / (dims * math.log(2)),
                              "images_per_s": n_imgs / max(1e-9, now - window_t),
                              "lr": optimizer.param_groups[0]["lr"], "time": now,
                              "elapsed": elapsed + now - t_start}
                    window_nll, window_imgs, window_t = 0.0, 0, now
                test = None
                if step % eval_every == 0:
                    test = last_test = evaluate_now()
                    record = record or {"step": step, "epoch": epoch, "time": time.time(),
                                        "elapsed": elapsed + time.time() - t_start,
                                        "lr": optimizer.param_groups[0]["lr"]}
                    record.update({"test_nll": test["nll_nats"], "test_bpd": test["bits_per_dim"]})
                if record is not None and d.main:
                    run.append_metrics(record)
                    if tb is not None:
                        for k in ("train_nll", "train_bpd", "test_nll", "test_bpd", "images_per_s", "lr"):
                            if k in record:
                                tb.add_scalar(k, record[k], step)
                if bar is not None:
                    bar.update(1)
                    if record is not None:  # an evaluation-only record keeps the last training figures
                        if "train_nll" in record:
                            post.update({"nll": f"{record['train_nll']:.2f}",
                                         "bpd": f"{record['train_bpd']:.3f}",
                                         "img/s": f"{record['images_per_s']:.0f}"})
                        if "test_nll" in record:
                            post["test"] = f"{record['test_nll']:.2f}"
                        if deadline is not None and total is None:  # a time budget: its ETA
                            left = max(0.0, deadline - elapsed - (time.time() - t_start))
                            post["left"] = f"{int(left // 60)}:{int(left % 60):02d}"
                        bar.set_postfix(post)
                if test is not None or step % cfg.save_every == 0:
                    checkpoint(test)
            stopped_by = stop
            final = {"step": step, "epoch": epoch, "final": True}
            if d.world > 1:  # every rank must hold the same weights
                final["rank_max_weight_diff"] = rank_weight_diff(model)
            if stopped_by != "signal" and (last_test is None or step % eval_every != 0):
                test = evaluate_now(signals)
                if test is None:
                    stopped_by = "signal"
                else:
                    last_test = test
                    final.update({"test_nll": test["nll_nats"], "test_bpd": test["bits_per_dim"]})
            if d.main:
                run.append_metrics({**final, "time": time.time(),
                                    "elapsed": elapsed + time.time() - t_start})
            checkpoint(last_test if stopped_by != "signal" else None, finished=stopped_by != "signal")
        finally:
            if bar is not None:
                bar.close()
            if tb is not None:
                tb.close()
    return TrainResult(step=step, epoch=epoch, test=last_test, best_nll=best, stopped_by=stopped_by,
                       run_dir=str(run.path), skipped=list(train_ds.skipped), rank=d.rank,
                       train_images=n_train)


class SymmetryBias(torch.nn.Module):
    """Distribution augmentation (Jun et al., 2020, "Distribution Augmentation for Generative
    Modeling"): with ``--dihedral P`` the network also learns the distributions of the training
    images under the other 7 symmetries of the square, and is told which one it is looking at.
    The telling is one learned vector per symmetry, split over the layers and added to each
    layer's pre-activations at every pixel (where a conditional network adds its context). The
    identity's vector is fixed at zero, so the model itself is the identity's distribution:
    evaluation, checkpoints, sampling and coding use it unchanged, and the vectors of the other
    symmetries (training only) live in the run's state.safetensors."""

    def __init__(self, width: int):
        super().__init__()
        self.table = torch.nn.Parameter(torch.zeros(len(DIHEDRAL) - 1, width))  # rows 1..7

    def forward(self, which: torch.Tensor) -> torch.Tensor:  # (B,) in 0..7 -> (B, width)
        full = torch.cat([self.table.new_zeros(1, self.table.shape[1]), self.table])
        return full[which]


class LogProb(torch.nn.Module):
    """``forward(x) = model.log_prob(x)``: the module that DDP / torch.compile wrap. With a
    ``SymmetryBias``, ``forward(x, which)`` is the log-likelihood of images under the symmetries
    ``which`` (B,) -- the plain ``log_prob`` where ``which`` is 0."""

    def __init__(self, model: PixelModel, symmetry_bias: SymmetryBias | None = None):
        super().__init__()
        self.model = model
        self.symmetry_bias = symmetry_bias

    def forward(self, x: torch.Tensor, which: torch.Tensor | None = None) -> torch.Tensor:
        if which is None or self.symmetry_bias is None:
            return self.model.log_prob(x)
        return self.model.value_log_probs(x, terms=self.symmetry_bias(which)).sum(dim=(1, 2, 3))


def _last_good(run: RunDir) -> str:
    """Where the run can be taken up again, for the message of a stop by NaN / inf."""
    try:
        step = ckpt.describe(run.last)["metadata"].get("step", "?")
    except Exception:  # noqa: BLE001 - missing or unreadable: nothing to point to
        return "No checkpoint was saved yet."
    return f"The last good checkpoint is {run.last} (step {step})."
