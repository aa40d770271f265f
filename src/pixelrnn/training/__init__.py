"""Training: ``train(TrainConfig(...))`` runs, or resumes, a run in its own directory.

The package, in dependency order: ``config`` (:class:`TrainConfig`, its flags, the model fields
derived from ``ModelConfig``), ``rundir`` (the run directory's files, :func:`resume_config`),
``state`` (:class:`TrainState` and ``state.safetensors``), ``distributed`` (torchrun: ranks,
devices, what the ranks agree on), ``objective`` (:class:`LogProb`, :class:`SymmetryBias`),
``optim`` (optimizer, learning-rate schedule), ``batches`` (the batches of one process),
``logger`` (metrics.jsonl, TensorBoard, the progress bar), ``session`` (the set-up of a
process), ``signals``, ``checkpoints`` (evaluation and saving during a run) and ``loop`` (the
loop itself, :func:`train`).
"""
from .checkpoints import NonFiniteLoss
from .config import MODEL_FIELDS, TrainConfig, init_model
from .distributed import Dist, init_distributed, rank_device, rank_weight_diff
from .loop import TrainResult, train
from .objective import LogProb, SymmetryBias
from .optim import lr_factor, make_optimizer
from .rundir import RESUMABLE_OVERRIDES, RunDir, RunWarning, resume_config
from .state import STATE_FORMAT, STATE_VERSION, TrainState, load_state, restore_state, save_state

__all__ = ["MODEL_FIELDS", "RESUMABLE_OVERRIDES", "STATE_FORMAT", "STATE_VERSION", "Dist", "LogProb",
           "NonFiniteLoss", "RunDir", "RunWarning", "SymmetryBias", "TrainConfig", "TrainResult",
           "TrainState", "init_distributed", "init_model", "load_state", "lr_factor", "make_optimizer",
           "rank_device", "rank_weight_diff", "restore_state", "resume_config", "save_state", "train"]
