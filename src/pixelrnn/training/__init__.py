"""Training: ``train(TrainConfig(...))`` runs, or resumes, a run in its own directory.

The package, in dependency order: ``config`` (:class:`TrainConfig`, its flags, the model fields
derived from ``ModelConfig``).
"""
from .config import MODEL_FIELDS, TrainConfig, init_model

__all__ = ["MODEL_FIELDS", "TrainConfig", "init_model"]
