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
