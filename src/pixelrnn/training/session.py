"""The set-up of a training process: its data, model, optimizer and run directory, in a
:class:`Session`, and the :class:`TrainState` it starts from (new, or a resumed run's)."""
from __future__ import annotations

import dataclasses
import warnings
from dataclasses import dataclass

import torch

from ..data import DataWarning, ImageDataset, absolute_spec, load_dataset
from ..errors import ArgumentError, DataError, RunError
from ..models import PixelModel, model_from_config
from .batches import Batches
from .config import TrainConfig, init_model
from .distributed import Dist
from .objective import LogProb, SymmetryBias
from .optim import make_optimizer, param_groups
from .rundir import RunDir, RunWarning
from .state import TrainState, load_state, restore_state


@dataclass
class Session:
    """What one training process works with."""

    cfg: TrainConfig
    run: RunDir
    dist: Dist
    device: torch.device
    test_data: ImageDataset
    batches: Batches  # of the training data
    model: PixelModel
    symmetry_bias: SymmetryBias | None
    optimizer: torch.optim.Optimizer
    ema: torch.nn.Module | None  # torch.optim.swa_utils.AveragedModel of ``model``
    net: torch.nn.Module  # LogProb of the model, under DDP / torch.compile: what a step calls

    @property
    def eval_model(self) -> PixelModel:
        """The model evaluated and saved: the EMA weights with --ema."""
        return self.ema.module if self.ema is not None else self.model

    @property
    def dims(self) -> int:
        return self.test_data.channels * self.test_data.height * self.test_data.width

    @property
    def total(self) -> int | None:
        """The run's number of steps, if --steps or --epochs fix it (the smaller of the two)."""
        cfg = self.cfg
        if cfg.epochs is None:
            return cfg.steps
        by_epochs = cfg.epochs * self.batches.per_epoch
        return by_epochs if cfg.steps is None else min(cfg.steps, by_epochs)

    @property
    def deadline(self) -> float | None:
        """Seconds of training allowed (--max-minutes), summed over resumes."""
        return None if self.cfg.max_minutes is None else self.cfg.max_minutes * 60.0

    @property
    def eval_every(self) -> int:
        return self.cfg.eval_every or self.batches.per_epoch

    def limit_reached(self, state: TrainState) -> str | None:
        """"steps", "epochs" or "time" once ``state`` is at that limit, else None."""
        cfg, total = self.cfg, self.total
        if total is not None and state.step >= total:
            by_epochs = cfg.epochs is not None and (
                cfg.steps is None or cfg.epochs * self.batches.per_epoch <= cfg.steps)
            return "epochs" if by_epochs else "steps"
        if self.deadline is not None and state.seconds() >= self.deadline:
            return "time"
        return None


def prepare(cfg: TrainConfig, resume: bool, d: Dist, device: torch.device) -> tuple[Session, TrainState]:
    """The session of ``cfg`` (a resume: of the run in ``cfg.out``) and the state it starts from.
    A new run writes config.json and an empty metrics.jsonl; a resume drops the metrics after
    its saved step (a kill loses them: they are redone)."""
    run = RunDir(cfg.out)
    if not resume:  # config.json records where the data are, whatever the working directory
        cfg = dataclasses.replace(cfg, data=absolute_spec(cfg.data))
    set_execution(cfg, d)
    if not resume:
        run.check_new()
    if d.main and run.path.is_dir():  # temporary files a kill left behind while saving
        run.remove_stale_temporaries()
    train_data, test_data = load_data(cfg, run, resume, d)
    batches = Batches(train_data, cfg, d, device)
    torch.manual_seed(cfg.seed)
    model, symmetry_bias = build_model(cfg, run, resume, train_data, device)
    extra = [] if symmetry_bias is None else list(symmetry_bias.parameters())
    optimizer = make_optimizer(cfg, param_groups(cfg, model, extra))
    ema = None
    if cfg.ema:
        from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
        ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(cfg.ema), use_buffers=True)
    state = TrainState()
    if resume:
        tensors, meta = load_state(run.state)
        restore_state(model, optimizer, ema, tensors, meta, run.state, symmetry_bias)
        state = TrainState.from_meta(meta, d.main)
    elif d.main:
        run.path.mkdir(parents=True, exist_ok=True)
        run.write_json(run.config, {
            "train": dataclasses.asdict(cfg), "model": model.config.to_dict(),
            "data": {"spec": cfg.data, **data_facts(train_data, test_data), "skipped": train_data.skipped},
            "world_size": d.world, "torch": torch.__version__})
        run.metrics.write_text("")
    net = wrap(LogProb(model, symmetry_bias), cfg, d, device)
    s = Session(cfg, run, d, device, test_data, batches, model, symmetry_bias, optimizer, ema, net)
    if resume:
        check_not_done(s, state)
        if d.main:
            run.truncate_metrics(state.step)  # records after the saved step are redone
    return s, state


def set_execution(cfg: TrainConfig, d: Dist) -> None:
    """Threads and deterministic algorithms; a batch that the processes can share."""
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    if cfg.deterministic:
        torch.use_deterministic_algorithms(True)
    if cfg.batch_size % d.world:
        raise ArgumentError(f"--batch-size {cfg.batch_size} must be divisible by the number of "
                            f"processes ({d.world})")


def data_facts(train: ImageDataset, test: ImageDataset) -> dict:
    """What config.json records of the data, and a resume checks."""
    return {"train_images": len(train), "test_images": len(test), "channels": train.channels,
            "height": train.height, "width": train.width, "levels": train.levels}


def load_data(cfg: TrainConfig, run: RunDir, resume: bool, d: Dist) -> tuple[ImageDataset, ImageDataset]:
    """The train and test splits of ``cfg.data``, checked against each other, the options and
    (a resume) the data the run started with."""
    crop = cfg.crop_size()
    train = load_dataset(cfg.data, "train", levels=cfg.levels, crop=crop, skip_bad=cfg.skip_bad)
    with warnings.catch_warnings():  # the test split reads the same files: warned once, above
        warnings.simplefilter("ignore", DataWarning)
        test = load_dataset(cfg.data, "test", levels=cfg.levels, crop=crop, skip_bad=cfg.skip_bad)
    shape, test_shape = (train.channels, train.height, train.width), (test.channels, test.height, test.width)
    if shape != test_shape:
        raise DataError(f"{cfg.data}: train images are {'x'.join(map(str, shape))} but "
                        f"test images are {'x'.join(map(str, test_shape))}")
    if cfg.dynamic_binarization and train.probs is None:
        raise ArgumentError("--dynamic-binarization needs a binarized dataset (binarized-mnist)")
    if cfg.conditional and (train.labels is None or test.labels is None):
        raise DataError(f"--conditional needs a dataset with labels; {cfg.data} has none"
                        + (f" ({train.labels_note})" if train.labels_note else ""))
    if cfg.shift >= min(train.height, train.width):
        raise ArgumentError(f"--shift {cfg.shift} must be smaller than the images ({train.height}x{train.width})")
    if resume:
        run.check_same_data(data_facts(train, test), d.world, warn=d.main)
    elif cfg.batch_size > len(train) and d.main:
        warnings.warn(RunWarning(f"--batch-size {cfg.batch_size} is more than the {len(train)} training "
                                 f"images: every step uses all of them"), stacklevel=2)
    return train, test


def build_model(cfg: TrainConfig, run: RunDir, resume: bool, data: ImageDataset,
                device: torch.device) -> tuple[PixelModel, SymmetryBias | None]:
    """The run's model (a resume: the one config.json records, also one from --init) with its
    dropout and checkpointing, a conditional model with its label prior and names, and with
    --dihedral its symmetry bias."""
    classes = data.num_classes if cfg.conditional else 0
    if resume:
        model = model_from_config(run.load_model_config())
    elif cfg.init:
        model = init_model(cfg, data.channels, data.levels, classes)
    else:
        model = model_from_config(cfg.model_config(data.channels, data.levels, classes))
    if classes:  # p(y): the training split's label frequencies (a resume restores the same)
        model.set_prior(torch.bincount(data.labels, minlength=classes))
        model.class_names = list(data.class_names)
    model = model.to(device)
    model.set_dropout(cfg.dropout)
    model.set_checkpointing(cfg.checkpoint_activations, bands=cfg.checkpoint_bands)
    if not cfg.dihedral:
        return model, None
    if data.height != data.width:
        raise ArgumentError(f"--dihedral needs square images; {cfg.data} has {data.height}x{data.width} (try --crop)")
    try:
        width = model.term_width
    except ArgumentError:
        raise ArgumentError(f"--dihedral is not available for --arch {model.config.arch}") from None
    return model, SymmetryBias(width).to(device)


def wrap(net: LogProb, cfg: TrainConfig, d: Dist, device: torch.device) -> torch.nn.Module:
    """``net`` under DistributedDataParallel (torchrun) and torch.compile (--compile)."""
    if d.world > 1:
        net = torch.nn.parallel.DistributedDataParallel(
            net, device_ids=[device.index] if device.type == "cuda" else None)
    return torch.compile(net) if cfg.compile else net


def check_not_done(s: Session, state: TrainState) -> None:
    """A resume of a run that finished at its limit has nothing to do. One that a signal stopped
    at its limit still has its final evaluation to do (its loop then ends at once)."""
    total, deadline = s.total, s.deadline
    at_limit = (total is not None and state.step >= total) or (deadline is not None and state.elapsed >= deadline)
    if at_limit and state.finished:
        limit = (f"{total} steps" if total is not None and state.step >= total
                 else f"--max-minutes {s.cfg.max_minutes:g}")
        raise RunError(f"{s.run.path} is already at step {state.step}, its limit of {limit}: nothing to do "
                       f"(give a larger --steps, --epochs or --max-minutes to go on)")
