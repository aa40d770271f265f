"""``TrainConfig``: every setting of a run, one field each, with its ``pixelrnn train`` flag.

Each field carries the metadata of its flag (``help``, ``metavar``, ``choices``, ``group``, and
``flag`` where the flag is not ``--field-name``): ``pixelrnn.commands.train`` builds its parser
from them, so a new field is a new flag. ``config.json`` of a run records the fields by name
(its "train" section), and a resume rebuilds the config from it.

The model fields are not listed here: they are the fields of :class:`pixelrnn.models.ModelConfig`,
each with its flag in ``MODEL_FLAGS`` (less those of ``NOT_FLAGS``: ``channels`` and ``levels``,
which the data fix, ``first_kernel``, ...), followed by the architecture options that
``ModelConfig.options`` holds, flattened (``kernel``, ``base``, ``factor``). A field added to
``ModelConfig`` without an entry in ``MODEL_FLAGS`` or ``NOT_FLAGS`` stops the import, so it
cannot be forgotten.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

from .. import checkpoint as ckpt
from ..data import parse_size
from ..device import check_device_name
from ..errors import ArgumentError
from ..models import ARCHITECTURES, ModelConfig, PixelModel, model_from_config
from ..pretrained import find_checkpoint

GROUPS = ("data", "regularisation (training only)", "model", "optimisation",
          "length (the first limit reached ends the run)", "output", "execution")  # of the flags
DATA, REGULARISATION, MODEL, OPTIMISATION, LENGTH, OUTPUT, EXECUTION = GROUPS


def flag(default: Any, help: str | None = None, *, group: str, metavar: str | None = None,
         choices: list[str] | None = None, name: str | None = None) -> Any:
    """A TrainConfig field with ``default`` and the metadata of its flag (``name``: the flag when
    it is not ``--field-name``, e.g. ``--no-progress``). Every flag defaults to None on the
    command line: a flag not given leaves the field's default (or a resumed run's value)."""
    return field(default=default, metadata={"help": help, "group": group, "metavar": metavar,
                                            "choices": choices, "flag": name})


# -- the model fields, derived from ModelConfig ------------------------------------------------
NOT_FLAGS = {"channels": "set by the data", "levels": "set by the data (--levels quantizes it)",
             "first_kernel": "the paper's 7 (a checkpoint's other value survives --init)",
             "options": "flattened into the architecture options below",
             "classes": "set by --conditional: the number of the dataset's labels"}
MODEL_FLAGS: dict[str, dict[str, Any]] = {  # every other ModelConfig field: its flag
    "arch": dict(default="diagonal_bilstm", help="architecture (default diagonal_bilstm)",
                 choices=sorted(ARCHITECTURES)),
    "hidden": dict(help="h: the residual stream has 2h features (default 16)"),
    "layers": dict(help="number of residual blocks (default 7)"),
    "head": dict(help="maps in the output 1x1 layers (default 2h)"),
    "skip": dict(help="learned skip connections to the output"),
    "mixtures": dict(metavar="K", help="output a mixture of K discretized logistics per value instead "
                     "of a categorical over the levels (default 0: categorical)"),
}
ARCH_OPTIONS = [  # ModelConfig.options, flattened: (name, type, field)
    ("kernel", "int", flag(3, "PixelCNN: size of the masked convolutions (default 3)", group=MODEL)),
    ("base", "str | None", flag(None, "multiscale: architecture of both stages (default row_lstm)",
                                group=MODEL, choices=["row_lstm", "diagonal_bilstm", "pixelcnn"])),
    ("factor", "int | None", flag(None, "multiscale: the small image is x[..., ::F, ::F] (default 2)",
                                  group=MODEL)),
]


def model_settings_fields() -> list[tuple[str, Any, Any]]:
    """The fields of ``ModelSettings``: ModelConfig's (less ``NOT_FLAGS``), then ARCH_OPTIONS."""
    derived = []
    for f in dataclasses.fields(ModelConfig):
        if f.name in NOT_FLAGS:
            continue
        if f.name not in MODEL_FLAGS:
            raise TypeError(f"ModelConfig.{f.name} has no flag: add it to MODEL_FLAGS (or NOT_FLAGS) "
                            f"in {__name__}")
        spec = dict(MODEL_FLAGS[f.name])
        derived.append((f.name, f.type, flag(spec.pop("default", f.default), group=MODEL, **spec)))
    stale = set(MODEL_FLAGS) - {name for name, _, _ in derived}
    if stale:
        raise TypeError(f"MODEL_FLAGS names fields ModelConfig does not have: {sorted(stale)}")
    return derived + ARCH_OPTIONS


ModelSettings = dataclasses.make_dataclass("ModelSettings", model_settings_fields())
ModelSettings.__module__ = __name__
ModelSettings.__doc__ = "The model fields of TrainConfig (see the module docstring)."
MODEL_FIELDS = tuple(f.name for f in dataclasses.fields(ModelSettings))
CONFIG_FIELDS = MODEL_FIELDS[:-len(ARCH_OPTIONS)]  # the ModelConfig fields among them


# -- the run's settings ------------------------------------------------------------------------
@dataclass
class TrainConfig(ModelSettings):
    """Every setting of a run; the model fields come first (``ModelSettings``)."""

    out: str = flag("runs/pixelrnn", "run directory (default runs/pixelrnn)", group=OUTPUT)
    data: str = flag("binarized-mnist", "dataset name or PREFIX:PATH (default binarized-mnist)",
                     group=DATA)
    levels: int | None = flag(None, "quantize to this many levels per channel", group=DATA)
    crop: str | None = flag(None, "center-crop every image to HxW", group=DATA, metavar="HxW")
    skip_bad: bool = flag(False, "skip unreadable files with a warning", group=DATA)
    dynamic_binarization: bool = flag(
        False, "redraw the binarized training images every epoch (binarized-mnist)", group=DATA)
    # regularisation (training only: evaluation, checkpoints and the model config are unaffected)
    shift: int = flag(0, "move every training image by a random (dy, dx) in [-S, S], edges repeated",
                      group=REGULARISATION, metavar="S")
    hflip: bool = flag(False, "mirror every training image left-right with probability 1/2",
                       group=REGULARISATION)
    dropout: float = flag(0.0, "drop-out probability on every residual block's branch (default 0)",
                          group=REGULARISATION, metavar="P")
    dihedral: float = flag(  # distribution augmentation: P(a symmetry of the square other than identity)
        0.0, "distribution augmentation (square images): with probability P train on the image under "
        "one of the 7 other symmetries of the square, the model told which by a learned bias per "
        "layer; the saved model is the identity's (default 0: off)",
        group=REGULARISATION, metavar="P")
    conditional: bool = flag(
        False, "train a class-conditional model on the dataset's labels (p(x | y); its label prior "
        "is the training split's label frequencies)", group=MODEL)
    init: str | None = flag(  # start from this model checkpoint's architecture and weights
        None, "fine-tune: start from this checkpoint's architecture and weights (a new run: fresh "
        "optimizer and schedule)", group=MODEL, metavar="CHECKPOINT")
    # optimisation
    optimizer: str = flag("adam", group=OPTIMISATION, choices=["adam", "rmsprop"])
    lr: float = flag(1e-3, "learning rate (default 1e-3)", group=OPTIMISATION)
    label_lr: float | None = flag(
        None, "--conditional: the learning rate of the label vectors (default: --lr); higher when "
        "labels are added to a trained model (--init), whose other weights want a small one",
        group=OPTIMISATION, metavar="LR")
    lr_schedule: str = flag("constant", group=OPTIMISATION, choices=["constant", "cosine", "linear"])
    warmup: int = flag(0, "steps of linear learning-rate warm-up", group=OPTIMISATION)
    weight_decay: float = flag(0.0, group=OPTIMISATION)
    grad_clip: float = flag(1.0, "max gradient norm, 0 = off (default 1.0)", group=OPTIMISATION)
    ema: float = flag(0.0, "EMA decay of the weights used for evaluation, e.g. 0.999", group=OPTIMISATION)
    batch_size: int = flag(16, "global batch size (default 16)", group=OPTIMISATION)
    # length: the first limit reached ends the run
    epochs: int | None = flag(None, group=LENGTH)
    steps: int | None = flag(None, "total optimizer steps (also when resuming)", group=LENGTH)
    max_minutes: float | None = flag(None, "wall-clock budget of training, summed over resumes",
                                     group=LENGTH)
    # evaluation, logging, checkpoints
    eval_every: int = flag(0, "steps between test evaluations (default: once per epoch)",
                           group=OUTPUT)  # 0 = once per epoch and at the end
    eval_batch_size: int = flag(64, group=OUTPUT)
    eval_limit: int | None = flag(None, "evaluate on the first N test images only (periodic and final "
                                  "evaluations)", group=OUTPUT, metavar="N")
    log_every: int = flag(20, group=OUTPUT)
    save_every: int = flag(200, "steps between checkpoints (default 200)",
                           group=OUTPUT)  # also saved at every evaluation and at the end
    progress: bool = flag(True, "no progress bar", group=OUTPUT, name="--no-progress")
    # execution
    seed: int = flag(0, group=EXECUTION)
    deterministic: bool = flag(False, "deterministic algorithms: resumed runs end with identical weights",
                               group=EXECUTION)
    device: str = flag("auto", group=EXECUTION)  # auto | cpu | cuda | cuda:N (help: the command's)
    precision: str = flag("fp32", group=EXECUTION, choices=["fp32", "bf16"])
    compile: bool = flag(False, "torch.compile the model (slow start)", group=EXECUTION)
    checkpoint_activations: bool = flag(
        False, "run the network in bands of rows (--checkpoint-bands), each recomputed in the backward "
        "pass: the memory of one band (5-7x less at 128x128 with 8), about one more forward pass per "
        "step, the same results up to float rounding", group=EXECUTION)
    checkpoint_bands: int = flag(
        8, "bands of rows with --checkpoint-activations (default 8; more: less memory, more but "
        "smaller operations)", group=EXECUTION, metavar="N")
    threads: int | None = flag(None, "CPU threads (torch.set_num_threads)", group=EXECUTION)

    def validate(self) -> None:
        """An ArgumentError (one line, naming the flag) for the first setting out of range."""
        if not str(self.out).strip():
            raise ArgumentError("--out must name a run directory")
        if self.optimizer not in ("adam", "rmsprop"):
            raise ArgumentError(f"--optimizer must be adam or rmsprop, got {self.optimizer!r}")
        if self.lr_schedule not in ("constant", "cosine", "linear"):
            raise ArgumentError(f"--lr-schedule must be constant, cosine or linear, got {self.lr_schedule!r}")
        if self.precision not in ("fp32", "bf16"):
            raise ArgumentError(f"--precision must be fp32 or bf16, got {self.precision!r}")
        check_device_name(self.device)
        for name in ("batch_size", "eval_batch_size", "log_every", "save_every"):
            if getattr(self, name) < 1:
                raise ArgumentError(f"--{name.replace('_', '-')} must be >= 1")
        for name in ("epochs", "steps"):
            v = getattr(self, name)
            if v is not None and v < 0:
                raise ArgumentError(f"--{name} must be >= 0")
        for name in ("lr", "weight_decay", "grad_clip", "ema", "dropout", "dihedral", "max_minutes"):
            v = getattr(self, name)
            if v is not None and not math.isfinite(v):
                raise ArgumentError(f"--{name.replace('_', '-')} must be a finite number, got {v}")
        if self.max_minutes is not None and self.max_minutes <= 0:
            raise ArgumentError("--max-minutes must be > 0")
        if self.lr <= 0 or (self.label_lr is not None and not (0 < self.label_lr < math.inf)):
            raise ArgumentError("--lr and --label-lr must be finite numbers > 0")
        if self.label_lr is not None and not self.conditional:
            raise ArgumentError("--label-lr applies to --conditional training only")
        if self.weight_decay < 0:
            raise ArgumentError("--weight-decay must be >= 0")
        if isinstance(self.checkpoint_bands, bool) or not isinstance(self.checkpoint_bands, int) \
                or self.checkpoint_bands < 1:
            raise ArgumentError(f"--checkpoint-bands must be an integer >= 1, got {self.checkpoint_bands!r}")
        if self.threads is not None and self.threads < 1:
            raise ArgumentError(f"--threads must be >= 1, got {self.threads}")
        if not 0 <= self.seed < 2 ** 32:
            raise ArgumentError(f"--seed must be in [0, 2**32), got {self.seed}")
        if not 0 <= self.ema < 1:
            raise ArgumentError("--ema must be in [0, 1)")
        if not 0 <= self.dropout < 1:
            raise ArgumentError("--dropout must be in [0, 1)")
        if not 0 <= self.dihedral < 1:
            raise ArgumentError("--dihedral must be in [0, 1): the probability of training on a "
                                "symmetry of the square other than the identity")
        if isinstance(self.shift, bool) or not isinstance(self.shift, int) or self.shift < 0:
            raise ArgumentError("--shift must be an integer >= 0")
        if isinstance(self.mixtures, bool) or not isinstance(self.mixtures, int) or self.mixtures < 0:
            raise ArgumentError(f"--mixtures must be an integer >= 0 (0: categorical output), got {self.mixtures!r}")
        if self.eval_limit is not None and self.eval_limit < 1:
            raise ArgumentError(f"--eval-limit must be >= 1, got {self.eval_limit}")
        if self.grad_clip < 0 or self.warmup < 0 or self.eval_every < 0:
            raise ArgumentError("--grad-clip, --warmup and --eval-every must be >= 0")
        if self.steps is None and self.epochs is None and self.max_minutes is None:
            raise ArgumentError("give at least one of --steps, --epochs, --max-minutes")
        if self.arch != "multiscale" and (self.base is not None or self.factor is not None):
            raise ArgumentError("--base and --factor only apply to --arch multiscale")

    def model_options(self) -> dict[str, Any]:
        """Architecture options for create_model (ModelConfig.options)."""
        if self.arch == "pixelcnn":
            return {"kernel": self.kernel}
        if self.arch == "multiscale":
            base = "row_lstm" if self.base is None else self.base
            opts: dict[str, Any] = {"base": base, "factor": 2 if self.factor is None else self.factor}
            if base == "pixelcnn":
                opts["kernel"] = self.kernel
            return opts
        return {}

    def model_config(self, channels: int, levels: int, classes: int = 0) -> ModelConfig:
        """The ModelConfig of a new model of this config for data of ``channels`` and ``levels``
        (and ``classes`` labels, for a conditional model)."""
        return ModelConfig(channels=channels, levels=levels, classes=classes, options=self.model_options(),
                           **{name: getattr(self, name) for name in CONFIG_FIELDS})

    def crop_size(self) -> tuple[int, int] | None:
        return parse_size(self.crop, "--crop") if self.crop else None


def settings_of(mc: ModelConfig) -> dict[str, Any]:
    """The TrainConfig model fields that describe the model of ``mc`` (model_options inverted)."""
    values = {name: getattr(mc, name) for name in CONFIG_FIELDS}
    if mc.head == 2 * mc.hidden:
        values["head"] = None
    multiscale = mc.arch == "multiscale"
    values.update(kernel=mc.options.get("kernel", TrainConfig.kernel),
                  base=mc.options.get("base") if multiscale else None,
                  factor=mc.options.get("factor") if multiscale else None)
    return values


def init_model(cfg: TrainConfig, channels: int, levels: int, classes: int = 0) -> PixelModel:
    """The model of ``cfg.init`` (architecture and weights), checked against the data; ``cfg``'s
    model fields are set from it so that the run's config.json describes the model it trains.
    A model field of ``cfg`` that differs from its default and from the checkpoint is an error.
    ``classes`` > 0 (--conditional): the model of that many labels; an unconditional checkpoint
    becomes one whose label vectors start at zero (at first the checkpoint's distribution for
    every label)."""
    model = ckpt.load(find_checkpoint(cfg.init))
    mc = model.config
    if mc.classes != classes and (mc.classes or not classes):
        raise ArgumentError(f"--init {cfg.init} models {mc.classes} label(s) but the run "
                            f"{f'has {classes} (--conditional)' if classes else 'is unconditional'}")
    if classes and not mc.classes:
        labelled = model_from_config(dataclasses.replace(mc, classes=classes))
        labelled.load_state_dict(model.state_dict(), strict=False)  # all but the labels and prior
        model = labelled
    if (mc.channels, mc.levels) != (channels, levels):
        raise ArgumentError(f"--init {cfg.init} models {mc.channels} channel(s) with {mc.levels} levels, "
                            f"but --data {cfg.data} has {channels} channel(s) with {levels} levels")
    from_ckpt = settings_of(mc)
    defaults = TrainConfig()
    for name in MODEL_FIELDS:
        given, default = getattr(cfg, name), getattr(defaults, name)
        if given != default and given != from_ckpt[name]:
            raise ArgumentError(f"--{name} {given} conflicts with the --init checkpoint "
                                f"({name} {from_ckpt[name]}); the architecture comes from the checkpoint")
    for name, value in from_ckpt.items():
        setattr(cfg, name, value)
    return model
