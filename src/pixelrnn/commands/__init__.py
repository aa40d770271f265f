"""Subcommands of the ``pixelrnn`` command line (see ``pixelrnn.cli``)."""


def resolve_device(name: str, option: str = "--device") -> str:
    """'auto' -> cuda when there is one, else cpu; 'cpu', 'cuda' or 'cuda:N' checked against this
    machine. A ValueError (one line) for anything else."""
    import torch
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name != "cpu" and not (name == "cuda" or (name.startswith("cuda:") and name[5:].isdigit())):
        raise ValueError(f"{option} must be auto, cpu, cuda or cuda:N, got {name!r}")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ValueError(f"{option} {name}: no CUDA device is available")
        if name != "cuda" and int(name[5:]) >= torch.cuda.device_count():
            raise ValueError(f"{option} {name}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    return name


def check_out_file(path: str, flag: str, force: bool = False) -> None:
    """Before any work: ``path`` can be written as a new file (or replaced, with ``force``). A
    one-line error for an empty name, a directory, an existing file, or a parent that is a file."""
    import os
    from pathlib import Path
    if not path or path.endswith(("/", os.sep)):
        raise ValueError(f"{flag} must name a file, got {path!r}")
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
