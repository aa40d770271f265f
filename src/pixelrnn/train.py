"""``pixelrnn.train``: the import path of training from before :mod:`pixelrnn.training` (kept, so
scripts that import from it go on working). New code imports from ``pixelrnn.training``."""
from .errors import RunError
from .training import (MODEL_FIELDS, RESUMABLE_OVERRIDES, STATE_FORMAT, STATE_VERSION, Dist, LogProb,
                       NonFiniteLoss, RunDir, RunWarning, SymmetryBias, TrainConfig, TrainResult,
                       TrainState, init_distributed, init_model, load_state, lr_factor, make_optimizer,
                       rank_device, rank_weight_diff, restore_state, resume_config, save_state, train)

__all__ = ["MODEL_FIELDS", "RESUMABLE_OVERRIDES", "STATE_FORMAT", "STATE_VERSION", "Dist", "LogProb",
           "NonFiniteLoss", "RunDir", "RunError", "RunWarning", "SymmetryBias", "TrainConfig",
           "TrainResult", "TrainState", "init_distributed", "init_model", "load_state",
           "lr_factor", "make_optimizer", "rank_device", "rank_weight_diff", "restore_state",
           "resume_config", "save_state", "train"]
