"""The training state: where a run is (:class:`TrainState`) and ``state.safetensors``, which
holds it with everything else a resume needs (raw weights, optimizer, EMA, RNG states).

Data order is a pure function of (seed, epoch), so resuming from a saved step replays exactly
the batches an uninterrupted run would have seen; with ``deterministic=True`` the final weights
are identical. The file: tensors ``model.*``, ``symmetry.*`` (--dihedral), ``optim.<i>.<name>``,
``ema.*``, ``rng.torch`` and ``rng.cuda``; metadata ``format``, ``format_version`` and ``meta``,
the JSON of :meth:`TrainState.to_meta` plus the optimizer's ``param_groups`` and its scalar
state (``optim_scalars``).
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from ..errors import RunError
from ..files import atomic_write

STATE_FORMAT = "pixelrnn-train-state"
STATE_VERSION = "1"


@dataclass
class TrainState:
    """Where a run is. The first nine fields are what state.safetensors stores (``meta``)."""

    step: int = 0  # optimizer steps done
    epoch: int = 0
    batch_in_epoch: int = 0  # batches of ``epoch`` done
    elapsed: float = 0.0  # seconds of training before this process started (summed over resumes)
    best_nll: float | None = None  # the best test NLL so far (nats per image)
    window_nll: float = 0.0  # the log window in progress: summed NLL of its training images
    window_images: int = 0  # (this rank's part; rank 0 also holds what a resume carried over)
    window_seconds: float = 0.0  # its age when saved
    finished: bool = False  # saved at the run's end (False: still running, or stopped by a signal)
    # this process's clocks (time.time()), not saved
    started: float = field(default_factory=time.time, repr=False)
    window_start: float = field(default_factory=time.time, repr=False)

    @classmethod
    def from_meta(cls, meta: dict, main: bool = True) -> "TrainState":
        """The state a saved ``meta`` describes; the log window's sums are global, so only rank 0
        (``main``) takes them over. A state from before ``finished`` was saved counts as finished."""
        return cls(step=meta["step"], epoch=meta["epoch"], batch_in_epoch=meta["batch_in_epoch"],
                   elapsed=meta["elapsed"], best_nll=meta.get("best_nll"),
                   window_nll=float(meta.get("window_nll", 0.0)) if main else 0.0,
                   window_images=int(meta.get("window_images", 0)) if main else 0,
                   window_seconds=float(meta.get("window_seconds", 0.0)),
                   finished=meta.get("finished", True))

    def start_clock(self) -> None:
        """Start this process's clocks (the window goes on from its saved age)."""
        now = time.time()
        self.started, self.window_start = now, now - self.window_seconds

    def seconds(self) -> float:
        """Seconds of training so far, over all resumes."""
        return self.elapsed + (time.time() - self.started)

    def advance(self, nll_sum: float, images: int) -> None:
        """One optimizer step done on ``images`` images of summed NLL ``nll_sum`` (nats)."""
        self.step += 1
        self.batch_in_epoch += 1
        self.window_nll += nll_sum
        self.window_images += images

    def new_window(self, now: float) -> None:
        self.window_nll, self.window_images, self.window_start = 0.0, 0, now

    def to_meta(self, window: list[float], finished: bool) -> dict[str, Any]:
        """What state.safetensors stores, now: ``window`` is the log window's global sums
        (NLL, images), ``finished`` whether the run ended at its limit."""
        return {"step": self.step, "epoch": self.epoch, "batch_in_epoch": self.batch_in_epoch,
                "elapsed": self.elapsed + (time.time() - self.started), "best_nll": self.best_nll,
                "window_nll": window[0], "window_images": int(window[1]),
                "window_seconds": time.time() - self.window_start, "finished": finished}


def save_state(path: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
               ema: torch.nn.Module | None, meta: dict,
               symmetry_bias: torch.nn.Module | None = None) -> None:
    """Write state.safetensors (atomically): the tensors of ``model``, ``symmetry_bias``,
    ``optimizer``, ``ema`` and the RNGs, and ``meta`` (TrainState.to_meta) as JSON."""
    tensors: dict[str, torch.Tensor] = {}
    for prefix, module in (("model", model), ("symmetry", symmetry_bias)):
        if module is not None:
            for k, v in module.state_dict().items():
                tensors[f"{prefix}.{k}"] = v.detach().cpu().contiguous()
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
    """The tensors and the ``meta`` dict of a state.safetensors; a RunError (one line) for a
    missing, foreign, newer or damaged file."""
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


def restore_state(model, optimizer, ema, tensors: dict, meta: dict, path: Path,
                  symmetry_bias: torch.nn.Module | None = None) -> None:
    """Load what :func:`load_state` read into the modules and the RNGs."""
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
