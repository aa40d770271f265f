"""What the subcommands share (a command never imports another command): device and thread
flags, output-file checks, the progress flags and bar, loading a model (a file or a pretrained
name), the default split of a dataset spec, writing an .npz."""
from __future__ import annotations

import math
import os
from pathlib import Path

from ..device import resolve_device
from ..errors import ArgumentError
from ..progress import Progress
from ..pretrained import find_checkpoint

DEVICE_HELP = "auto (default: cuda when there is one) | cpu | cuda | cuda:N"
GENERATION_DEVICE_HELP = DEVICE_HELP + "; a --seed gives the same images again on the same kind of device"
CODING_DEVICE = "cpu"  # compress / decompress: the file records the kind of device, so no "auto"

__all__ = ["DEVICE_HELP", "GENERATION_DEVICE_HELP", "CODING_DEVICE", "resolve_device", "set_threads",
           "CommandWarning", "check_out_file", "file_in_the_way", "add_progress_flags", "progress_bar",
           "find_checkpoint", "load_model", "default_split", "data_note", "save_npz",
           "check_generation_args", "check_coding_args"]


def set_threads(threads: int | None) -> None:
    """``--threads N``: torch's CPU threads (None: torch's default, one per core)."""
    if threads is not None:
        if threads < 1:
            raise ArgumentError(f"--threads must be >= 1, got {threads}")
        import torch
        torch.set_num_threads(threads)


class CommandWarning(UserWarning):
    """Something a command could not do that does not stop it (shown as one line)."""


def check_out_file(path: str, flag: str, force: bool = False) -> None:
    """Before any work: ``path`` can be written as a new file (or replaced, with ``force``). A
    one-line error for an empty name, a directory, an existing file, or a parent that is a file."""
    if not path or path.endswith(("/", os.sep)):
        raise ArgumentError(f"{flag} must name a file, got {path!r}")
    p = Path(path)
    if p.is_dir():
        raise IsADirectoryError(f"{flag} {path} is a directory")
    if os.path.lexists(p) and not force:
        raise FileExistsError(f"{path} exists (use --force to overwrite)")
    blocked = file_in_the_way(p)
    if blocked is not None:
        raise NotADirectoryError(f"{flag} {path}: {blocked} is not a directory")


def file_in_the_way(path):
    """The nearest existing ancestor of ``path`` when it is not a folder (so ``path`` cannot be
    created), else None."""
    for parent in path.absolute().parents:
        if parent.exists():
            return None if parent.is_dir() else parent
    return None


def add_progress_flags(p) -> None:
    """``--progress`` / ``--no-progress`` (default None: a bar only on a terminal)."""
    g = p.add_mutually_exclusive_group()
    g.add_argument("--progress", dest="progress", action="store_true", default=None,
                   help="always show the progress bar (default: only on a terminal)")
    g.add_argument("--no-progress", dest="progress", action="store_false")


def progress_bar(args, total: int, desc: str) -> Progress:
    """The command's bar over ``total`` values on stderr, as ``--progress`` says; give the
    library ``bar.part(start, size)`` for each part of the work."""
    return Progress(total, desc, bar=args.progress, leave=True)


def load_model(spec: str, device: str = "cpu"):
    """(model on ``device``, user metadata) of a checkpoint file or pretrained name (see
    :func:`find_checkpoint`); CheckpointError / FileNotFoundError otherwise."""
    from ..checkpoint import load, read_checkpoint
    path = find_checkpoint(spec)
    _, _, user = read_checkpoint(path)
    return load(path, map_location=device), user


def default_split(spec: str, given: str | None) -> str:
    """The split a command reads of the dataset ``spec`` when ``--split`` is ``given`` or not
    (None): a built-in dataset (mnist, ...) its test split, the user's own data (any
    ``PREFIX:PATH`` spec: npy:, npz:, folder:, mnist-idx:, ...) every image ("all"): a user
    scoring or compressing a file means the whole file."""
    from ..data import DATASETS
    if given is not None:
        return given
    return "test" if spec in DATASETS else "all"


def data_note(spec: str, split: str, used: int, total: int | None = None) -> str:
    """What a command read, to print: ``"mnist, test split: 1000 images"``, ``"npz:my.npz, every
    image: the first 5 of 20 images"``."""
    what = "every image" if split == "all" else f"{split} split"
    count = f"{used} image{'s' if used != 1 else ''}"
    if total is not None and total != used:
        count = f"the first {used} of {total} images"
    return f"{spec}, {what}: {count}"


def save_npz(path: str, **arrays) -> None:
    """Write ``arrays`` to a compressed .npz, atomically."""
    import numpy as np

    from ..files import atomic_write

    def write(tmp):
        with open(tmp, "wb") as f:
            np.savez_compressed(f, **arrays)
    atomic_write(path, write)


def check_generation_args(args) -> None:
    """The checks `sample` and `complete` share: batch size, temperature, threads, device, output
    paths (``args.device`` becomes the resolved device)."""
    if args.batch_size < 1:
        raise ArgumentError(f"--batch-size must be >= 1, got {args.batch_size}")
    if not (args.temperature > 0) or not math.isfinite(args.temperature):
        raise ArgumentError(f"--temperature must be a finite number > 0, got {args.temperature}")
    set_threads(args.threads)
    args.device = resolve_device(args.device)
    check_out_file(args.out, "--out", args.force)
    if args.npz:
        check_out_file(args.npz, "--npz", args.force)
        if os.path.abspath(args.npz) == os.path.abspath(args.out):
            raise ArgumentError("--out and --npz name the same file")


def check_coding_args(args) -> None:
    """The checks `compress` and `decompress` share (a device kind, not "auto": the file records
    it); sets the thread count."""
    resolve_device(args.device, allow_auto=False)
    set_threads(args.threads)


def parse_labels(model, words: list[str] | None) -> list[int] | None:
    """``--label`` words (numbers, or the model's class names) as label indices; None when no
    label was given. A one-line error for an unconditional model or an unknown label."""
    if not words:
        return None
    if not model.classes:
        raise ArgumentError("--label needs a conditional model (trained with --conditional); this one has no labels")
    names = list(model.class_names or [])
    out = []
    for w in words:
        if w in names:
            out.append(names.index(w))
        elif w.lstrip("-").isdigit() and 0 <= int(w) < model.classes:
            out.append(int(w))
        else:
            known = f" or one of {', '.join(names)}" if names else ""
            raise ArgumentError(f"--label {w!r}: need a label in 0..{model.classes - 1}{known}")
    return out
