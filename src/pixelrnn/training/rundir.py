"""The run directory: its files, its config.json, its metrics, and the config of a resume.

A run directory holds::

    config.json          every resolved setting (TrainConfig) plus data facts
    metrics.jsonl        one JSON object per log / evaluation event
    last.safetensors     the model after the latest saved step   (pixelrnn.load reads it)
    best.safetensors     the model with the best test NLL so far  (EMA weights if --ema)
    state.safetensors    everything needed to resume: raw weights, optimizer, EMA, step, data
                         position, RNG state, elapsed time (tensors in safetensors, the rest JSON)
    tb/                  TensorBoard event files (only when the tensorboard package is installed)

Every file is written atomically (temporary file + rename), so a crash or SIGKILL leaves either the
previous or the new version, never half a file.
"""
from __future__ import annotations

import dataclasses
import json
import os
import warnings
from pathlib import Path
from typing import Any

from ..errors import ArgumentError, RunError
from ..files import atomic_write
from ..models import ModelConfig
from .config import TrainConfig

RESUMABLE_OVERRIDES = ("steps", "epochs", "max_minutes", "device", "threads", "progress", "checkpoint_activations",
                       "checkpoint_bands",
                       "eval_every", "save_every", "log_every")


class RunWarning(UserWarning):
    """A resumed run that will not be exactly what an uninterrupted one would have been."""


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

    def check_new(self) -> None:
        """A RunError unless a new run may start here: no earlier run, none of its files."""
        if self.state.exists() or self.last.exists():
            raise RunError(f"{self.path} already holds a run; use --resume {self.path} to continue it "
                           f"or choose another --out")
        if present := [p.name for p in self.files() if os.path.lexists(p)]:
            raise RunError(f"{self.path} already holds {', '.join(present)}: a new run would replace "
                           f"{'it' if len(present) == 1 else 'them'}; choose another --out")

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

    def check_same_data(self, now: dict, world: int, warn: bool = True) -> None:
        """A resumed run must see the data it started with (else it is not exact, and
        best.safetensors would mix test NLLs of different test sets); a different number of
        processes (``world``) is allowed with a warning (when ``warn``: rank 0 only)."""
        saved = self.load_config()
        recorded = saved.get("data") if isinstance(saved.get("data"), dict) else {}
        changed = [f"{k.replace('_', ' ')} {recorded[k]} -> {v}" for k, v in now.items()
                   if k in recorded and recorded[k] != v]
        if changed:
            raise RunError(f"cannot resume {self.path}: its data changed since the run started "
                           f"({'; '.join(changed)})")
        started = saved.get("world_size")
        if isinstance(started, int) and started != world and warn:
            warnings.warn(RunWarning(f"resuming with {world} process(es), started with {started}: the "
                                     f"data order and random draws differ from an uninterrupted run"),
                          stacklevel=4)


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
