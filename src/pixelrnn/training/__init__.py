"""Training: ``train(TrainConfig(...))`` runs, or resumes, a run in its own directory.

The package, in dependency order: ``config`` (:class:`TrainConfig`, its flags, the model fields
derived from ``ModelConfig``), ``rundir`` (the run directory's files, :func:`resume_config`),
``state`` (:class:`TrainState` and ``state.safetensors``) and ``distributed`` (torchrun: ranks,
devices, what the ranks agree on).
"""
from .config import MODEL_FIELDS, TrainConfig, init_model
from .distributed import Dist, init_distributed, rank_device, rank_weight_diff
from .rundir import RESUMABLE_OVERRIDES, RunDir, RunWarning, resume_config
from .state import STATE_FORMAT, STATE_VERSION, TrainState, load_state, restore_state, save_state

__all__ = ["MODEL_FIELDS", "RESUMABLE_OVERRIDES", "STATE_FORMAT", "STATE_VERSION", "Dist", "RunDir",
           "RunWarning", "TrainConfig", "TrainState", "init_distributed", "init_model", "load_state",
           "rank_device", "rank_weight_diff", "restore_state", "resume_config", "save_state"]
