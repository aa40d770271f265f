"""What the subcommands share (a command never imports another command)."""
from ..device import resolve_device  # noqa: F401  (the subcommands take it from here)
from ..errors import ArgumentError


DEVICE_HELP = "auto (default: cuda when there is one) | cpu | cuda | cuda:N"


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
    import os
    from pathlib import Path
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
