"""Checkpoints: the architecture config and the weights in one ``.safetensors`` file (no pickle).

The config is stored as JSON in the safetensors header metadata under ``pixelrnn.config``; loading
never executes code from the file.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from .errors import CheckpointError
from .files import atomic_write
from .models import ModelConfig, PixelModel, model_from_config

FORMAT = "pixelrnn"
FORMAT_VERSION = "1"


def save(model: PixelModel, path: str | os.PathLike, metadata: dict[str, str] | None = None) -> None:
    """Write ``model`` (config + weights) to ``path`` atomically."""
    if not isinstance(model, PixelModel):
        raise TypeError(f"save() expects a pixelrnn model, got {type(model).__name__}")
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    meta = {"format": FORMAT, "format_version": FORMAT_VERSION,
            "pixelrnn.config": json.dumps(model.config.to_dict(), sort_keys=True)}
    if model.class_names is not None:
        meta["pixelrnn.class_names"] = json.dumps(list(model.class_names))
    for k, v in (metadata or {}).items():
        meta[f"user.{k}"] = str(v)
    atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata=meta))


def read_checkpoint(path: str | os.PathLike) -> tuple[ModelConfig, dict[str, torch.Tensor], dict[str, str]]:
    """Config, weights and user metadata of a checkpoint, or a CheckpointError saying what is wrong."""
    config, tensors, meta = read_all(path)
    return config, tensors, {k[5:]: v for k, v in meta.items() if k.startswith("user.")}


def read_all(path: str | os.PathLike) -> tuple[ModelConfig, dict[str, torch.Tensor], dict[str, str]]:
    """Config, weights and the whole header metadata of a checkpoint (CheckpointError if bad)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    if path.is_dir():
        raise CheckpointError(f"{path} is a directory, not a checkpoint file")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            if meta.get("format") != FORMAT or "pixelrnn.config" not in meta:
                raise CheckpointError(f"{path} is a safetensors file but not a pixelrnn checkpoint")
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except CheckpointError:
        raise
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise CheckpointError(f"{path} is not a readable pixelrnn checkpoint "
                              f"(truncated or foreign file): {str(e).splitlines()[0] if str(e) else type(e).__name__}") from None
    if meta.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"{path}: unsupported checkpoint format version {meta.get('format_version')!r}")
    try:
        config = ModelConfig.from_dict(json.loads(meta["pixelrnn.config"]))
    except (ValueError, TypeError) as e:
        raise CheckpointError(f"{path}: invalid model config in checkpoint: {e}") from None
    return config, tensors, meta


def load(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> PixelModel:
    """Rebuild a model saved with :func:`save`, in the dtype its weights were saved in, on
    ``map_location`` (a torch.device, or auto / cpu / cuda / cuda:N). Raises CheckpointError for a
    bad file, ValueError for a device this machine does not have."""
    if not isinstance(map_location, torch.device) or map_location.type == "cuda":
        from .device import resolve_device
        map_location = resolve_device(str(map_location), option="map_location")
    config, tensors, meta = read_all(path)
    return build(path, config, tensors, meta).to(map_location).eval()


def class_names_of(path, meta: dict[str, str], classes: int) -> list[str] | None:
    """The label names stored in a checkpoint's metadata (None when there are none)."""
    if "pixelrnn.class_names" not in meta:
        return None
    try:
        names = json.loads(meta["pixelrnn.class_names"])
    except ValueError:
        names = None
    if not isinstance(names, list) or len(names) != classes or not all(isinstance(n, str) for n in names):
        raise CheckpointError(f"{path}: invalid class names in checkpoint (need {classes} strings)")
    return names


def build(path, config: ModelConfig, tensors: dict[str, torch.Tensor], meta: dict[str, str]) -> PixelModel:
    """The model of a checkpoint's config, weights and metadata (CheckpointError if they do not fit)."""
    try:
        model = model_from_config(config)
    except (ValueError, TypeError) as e:
        raise CheckpointError(f"{path}: invalid model config in checkpoint: {e}") from None
    dtypes = {t.dtype for t in tensors.values() if t.is_floating_point()}
    if len(dtypes) == 1 and dtypes != {torch.float32}:
        model.to(dtypes.pop())  # e.g. a float64 model stays float64: load_state_dict would cast down
    try:
        model.load_state_dict(tensors, strict=True)
    except (ValueError, RuntimeError) as e:
        raise CheckpointError(f"{path}: weights do not match the stored config: "
                              f"{str(e).splitlines()[0]}") from None
    model.class_names = class_names_of(path, meta, config.classes)
    return model


def describe(path: str | os.PathLike) -> dict[str, Any]:
    """Config, parameter count and user metadata of a checkpoint that :func:`load` accepts, else
    the same CheckpointError."""
    config, tensors, meta = read_all(path)
    model = build(path, config, tensors, meta)
    return {"config": config.to_dict(), "parameters": sum(t.numel() for t in tensors.values()),
            "metadata": {k[5:]: v for k, v in meta.items() if k.startswith("user.")},
            "class_names": model.class_names}
