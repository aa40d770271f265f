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

import contextlib
import dataclasses
import json
import math
import os
import signal
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from . import checkpoint as ckpt
from .files import atomic_write
from .device import resolve_device
from .data import DIHEDRAL, DataError, DataWarning, absolute_spec, augment, dihedral, load_dataset
from .evaluate import autocast_for, evaluate
from .models import ModelConfig, PixelModel, model_from_config
from .errors import ArgumentError, RunError
from .training.config import MODEL_FIELDS, TrainConfig, init_model  # noqa: F401  (this module's names)

STATE_FORMAT = "pixelrnn-train-state"
STATE_VERSION = "1"
RESUMABLE_OVERRIDES = ("steps", "epochs", "max_minutes", "device", "threads", "progress",
                       "eval_every", "save_every", "log_every")


class RunWarning(UserWarning):
    """A resumed run that will not be exactly what an uninterrupted one would have been."""


class NonFiniteLoss(RuntimeError):
    pass


# -- distributed helpers ----------------------------------------------------------------------
@dataclass
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0


def init_distributed(device_kind: str) -> Dist:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device_kind == "cuda" else "gloo")
    return Dist(rank=dist.get_rank(), world=dist.get_world_size(),
                local_rank=int(os.environ.get("LOCAL_RANK", "0")))


def rank_device(name: str, world: int, local_rank: int) -> torch.device:
    """The device of this process (of ``world``, under torchrun): ``--device cuda`` (or auto on a
    CUDA machine) is the GPU of its LOCAL_RANK, and becomes the current CUDA device, before NCCL
    starts. A fixed ``cuda:N`` would put every process on one GPU: refused when world > 1."""
    if world > 1 and name.startswith("cuda:"):
        raise ArgumentError(f"--device {name} under torchrun would put all {world} processes on one "
                         "GPU: use --device cuda (each process takes the GPU of its LOCAL_RANK)")
    name = resolve_device(name)
    if name.startswith("cuda"):
        if name == "cuda":
            if local_rank >= torch.cuda.device_count():
                raise ArgumentError(f"LOCAL_RANK {local_rank}: this machine has "
                                 f"{torch.cuda.device_count()} CUDA device(s)")
            name = f"cuda:{local_rank}"
        torch.cuda.set_device(torch.device(name))
    return torch.device(name)


# -- run directory ----------------------------------------------------------------------------
class RunDir:
    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)

    config = property(lambda self: self.path / "config.json")
    metrics = property(lambda self: self.path / "metrics.jsonl")
    last = property(lambda self: self.path / "last.safetensors")
    best = property(lambda self: self.path / "best.safetensors")
    state = property(lambda self: self.path / "state.safetensors")

    def files(self) -> list[Path]:
        """The files a run writes (a new run refuses a folder that holds any of them)."""
        return [self.config, self.metrics, self.last, self.best, self.state]

    def write_json(self, path: Path, obj: Any) -> None:
        text = json.dumps(obj, indent=2, sort_keys=True) + "\n"
        atomic_write(path, lambda tmp: Path(tmp).write_text(text))

    def remove_stale_temporaries(self) -> None:
        """Delete the temporary files of files.atomic_write for this run's files ('.NAME.*.tmp')."""
        prefixes = tuple(f".{p.name[:32]}." for p in self.files())
        for tmp in self.path.glob(".*.tmp"):
            if tmp.name.startswith(prefixes) and tmp.is_file():
                tmp.unlink(missing_ok=True)

    def truncate_metrics(self, step: int) -> None:
        """Keep the records up to ``step`` (the saved state's) and drop the end-of-run ones: what
        an uninterrupted run would have written so far. A torn last line (a kill) goes too."""
        if not self.metrics.exists():
            return
        kept = []
        for line in self.metrics.read_text().splitlines():
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            if isinstance(rec, dict) and not rec.get("final") and isinstance(rec.get("step"), int) \
                    and rec["step"] <= step:
                kept.append(line + "\n")
        atomic_write(self.metrics, lambda tmp: Path(tmp).write_text("".join(kept)))

    def append_metrics(self, record: dict) -> None:
        with open(self.metrics, "a") as f:
            f.write(json.dumps(record, sort_keys=True) + "\n")
            f.flush()

    def load_model_config(self) -> ModelConfig:
        saved = self.load_config()
        try:
            return ModelConfig.from_dict(saved["model"])
        except (KeyError, TypeError, ValueError) as e:
            raise RunError(f"{self.config} has no valid model section: {e}") from None

    def load_config(self) -> dict:
        if not self.path.is_dir():
            raise RunError(f"run directory not found: {self.path}")
        if not self.config.exists():
            raise RunError(f"{self.path} is not a pixelrnn run directory (no config.json)")
        try:
            cfg = json.loads(self.config.read_text())
            if not isinstance(cfg, dict) or not isinstance(cfg.get("train"), dict):
                raise ArgumentError("missing 'train' section")
            return cfg
        except (ValueError, UnicodeDecodeError) as e:
            raise RunError(f"{self.config} is corrupt: {e}") from None


# -- checkpoint of the whole training state ---------------------------------------------------
def save_state(path: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
               ema: torch.nn.Module | None, meta: dict,
               symmetry_bias: torch.nn.Module | None = None) -> None:
    tensors: dict[str, torch.Tensor] = {}
    for k, v in model.state_dict().items():
        tensors[f"model.{k}"] = v.detach().cpu().contiguous()
    if symmetry_bias is not None:
        for k, v in symmetry_bias.state_dict().items():
            tensors[f"symmetry.{k}"] = v.detach().cpu().contiguous()
    opt = optimizer.state_dict()
    scalars: dict[str, Any] = {}
    for idx, st in opt["state"].items():
        for k, v in st.items():
            if torch.is_tensor(v):
                tensors[f"optim.{idx}.{k}"] = v.detach().cpu().contiguous()
            else:
                scalars[f"{idx}.{k}"] = v
    if ema is not None:
        for k, v in ema.state_dict().items():
            tensors[f"ema.{k}"] = v.detach().cpu().contiguous()
    tensors["rng.torch"] = torch.get_rng_state()
    dev = next(model.parameters()).device
    if dev.type == "cuda":  # dropout draws on the GPU come from its own generator
        tensors["rng.cuda"] = torch.cuda.get_rng_state(dev)
    full = {"format": STATE_FORMAT, "format_version": STATE_VERSION,
            "meta": json.dumps({**meta, "param_groups": opt["param_groups"],
                                "optim_scalars": scalars})}
    atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata=full))


def load_state(path: Path) -> tuple[dict[str, torch.Tensor], dict]:
    if not path.exists():
        raise RunError(f"cannot resume: {path} is missing")
    try:
        with safe_open(str(path), framework="pt") as f:
            md = f.metadata() or {}
            if md.get("format") != STATE_FORMAT:
                raise RunError(f"{path} is not a pixelrnn training state")
            if md.get("format_version") != STATE_VERSION:
                raise RunError(f"{path}: unsupported training-state version {md.get('format_version')!r}")
            tensors = {k: f.get_tensor(k) for k in f.keys()}
        meta = json.loads(md["meta"])
    except RunError:
        raise
    except (SafetensorError, OSError, ValueError, KeyError, RuntimeError) as e:
        raise RunError(f"cannot resume: {path} is corrupt or truncated ({str(e).splitlines()[0] if str(e) else type(e).__name__})") from None
    return tensors, meta


def _restore(model, optimizer, ema, tensors: dict, meta: dict, path: Path,
             symmetry_bias: torch.nn.Module | None = None) -> None:
    try:
        model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
        if symmetry_bias is not None:
            symmetry_bias.load_state_dict({k[9:]: v for k, v in tensors.items() if k.startswith("symmetry.")})
        state: dict[int, dict] = {}
        for k, v in tensors.items():
            if k.startswith("optim."):
                _, idx, name = k.split(".", 2)
                state.setdefault(int(idx), {})[name] = v
        for k, v in meta.get("optim_scalars", {}).items():
            idx, name = k.split(".", 1)
            state.setdefault(int(idx), {})[name] = v
        optimizer.load_state_dict({"state": state, "param_groups": meta["param_groups"]})
        if ema is not None:
            ema.load_state_dict({k[4:]: v for k, v in tensors.items() if k.startswith("ema.")})
        if "rng.torch" in tensors:
            torch.set_rng_state(tensors["rng.torch"])
        dev = next(model.parameters()).device
        if "rng.cuda" in tensors and dev.type == "cuda":
            torch.cuda.set_rng_state(tensors["rng.cuda"], dev)
    except (RuntimeError, KeyError, ValueError) as e:
        raise RunError(f"cannot resume from {path}: state does not match the run's config "
                       f"({str(e).splitlines()[0]})") from None


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
    d = init_distributed(device.type)
    finished = False
    try:
        result = _train(cfg, resume, d, device)
        finished = True
        return result
    finally:
        if owned and d.world > 1 and dist.is_initialized():
            if finished:  # wait for every rank before the links close (a rank that left early
                dist.barrier()  # while another was still writing once aborted in gloo's teardown)
            dist.destroy_process_group()  # a clean exit: no gloo / NCCL threads killed at exit


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
    if not resume and (run.state.exists() or run.last.exists()):
        raise RunError(f"{run.path} already holds a run; use --resume {run.path} to continue it "
                       f"or choose another --out")
    if not resume and (present := [p.name for p in run.files() if os.path.lexists(p)]):
        raise RunError(f"{run.path} already holds {', '.join(present)}: a new run would replace "
                       f"{'it' if len(present) == 1 else 'them'}; choose another --out")
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
        _check_same_data(run, {"train_images": n_train, "test_images": len(test_ds), "channels": C,
                               "height": H, "width": W, "levels": train_ds.levels}, d)
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
        _restore(model, optimizer, ema, tensors, meta, run.state, symmetry_bias)
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

    reasons = [None, "steps", "epochs", "time", "signal"]

    def stop_reason(signals) -> str | None:
        """Why to stop now, agreed by every rank (a signal or the clock may reach ranks apart)."""
        reason = "signal" if signals.received is not None else reached_limit()
        if d.world > 1:
            code = torch.tensor([reasons.index(reason)], device=device)
            dist.all_reduce(code, op=dist.ReduceOp.MAX)
            reason = reasons[int(code)]
        return reason

    def all_sum(*values: float) -> list[float]:
        if d.world == 1:
            return list(values)
        t = torch.tensor(values, dtype=torch.float64, device=device)
        dist.all_reduce(t)
        return t.tolist()

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


def rank_weight_diff(model: torch.nn.Module) -> float:
    """Largest absolute difference between this rank's parameters and rank 0's, over all ranks."""
    flat = torch.cat([p.detach().reshape(-1).float() for p in model.parameters()])
    ref = flat.clone()
    dist.broadcast(ref, src=0)
    diff = (flat - ref).abs().max().reshape(1)
    dist.all_reduce(diff, op=dist.ReduceOp.MAX)
    return float(diff)


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


def _check_same_data(run: RunDir, now: dict, d: Dist) -> None:
    """A resumed run must see the data it started with (else it is not exact, and best.safetensors
    would mix test NLLs of different test sets); a different number of processes is allowed
    with a warning."""
    saved = run.load_config()
    recorded = saved.get("data") if isinstance(saved.get("data"), dict) else {}
    changed = [f"{k.replace('_', ' ')} {recorded[k]} -> {v}" for k, v in now.items()
               if k in recorded and recorded[k] != v]
    if changed:
        raise RunError(f"cannot resume {run.path}: its data changed since the run started "
                       f"({'; '.join(changed)})")
    world = saved.get("world_size")
    if isinstance(world, int) and world != d.world and d.main:
        warnings.warn(RunWarning(f"resuming with {d.world} process(es), started with {world}: the data "
                                 f"order and random draws differ from an uninterrupted run"), stacklevel=3)


def resume_config(run_dir: str, overrides: dict[str, Any]) -> TrainConfig:
    """The TrainConfig of an existing run, with the allowed overrides applied."""
    saved = RunDir(run_dir).load_config()["train"]
    defaults = {f.name: f.default for f in dataclasses.fields(TrainConfig)}  # fields newer than the run
    bad = [k for k, v in overrides.items() if v is not None and k not in RESUMABLE_OVERRIDES
           and saved.get(k, defaults.get(k)) != v]
    if bad:
        raise RunError(f"cannot change {', '.join('--' + b.replace('_', '-') for b in bad)} when "
                       f"resuming; only {', '.join('--' + k.replace('_', '-') for k in RESUMABLE_OVERRIDES)}")
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    cfg = TrainConfig(**{k: v for k, v in saved.items() if k in known})
    for k, v in overrides.items():
        if v is not None and k in RESUMABLE_OVERRIDES:
            setattr(cfg, k, v)
    cfg.out = run_dir
    try:
        cfg.validate()
    except (TypeError, AttributeError) as e:  # a hand-edited value of the wrong type
        raise RunError(f"{RunDir(run_dir).config} is corrupt: {e}") from None
    return cfg
