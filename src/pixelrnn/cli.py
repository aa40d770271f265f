"""The ``pixelrnn`` command line: a thin layer over the library.

Each subcommand lives in ``pixelrnn/commands/<name>.py`` and provides ``register(subparsers)``,
which adds its parser and sets ``func(args) -> int``. Errors the user can fix (bad data, bad
checkpoint, bad arguments: ``pixelrnn.errors``) and file-system errors are printed as one line,
without a traceback, with exit status 2; any other exception is a bug and shows its traceback.
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys
import warnings

from . import __version__
from .errors import UserError

COMMANDS = ["train", "eval", "sample", "complete", "score", "compress", "decompress", "classify", "prepare", "info",
            "models", "serve", "demo"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pixelrnn", description="PixelRNN: train, evaluate, sample, complete, score and "
        "losslessly compress images with exact likelihoods (Row LSTM, Diagonal BiLSTM, PixelCNN, "
        "Multi-Scale).")
    parser.add_argument("--version", action="version", version=f"pixelrnn {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"pixelrnn.commands.{name}")
        except ModuleNotFoundError as e:
            if e.name == f"pixelrnn.commands.{name}":
                continue  # a command that is not part of this build
            raise
        module.register(sub)
    return parser


def _one_line_warnings(command: str, default):
    """Our own warnings (DataWarning, ...) as one line each, 'pixelrnn CMD: warning: ...'; others
    (torch's) as Python shows them."""
    def show(message, category, filename, lineno, file=None, line=None):
        if not category.__module__.startswith("pixelrnn"):
            return default(message, category, filename, lineno, file, line)
        text = str(message).strip().splitlines()
        print(f"pixelrnn {command}: warning: {text[0] if text else category.__name__}", file=file or sys.stderr)
    return show


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    # Python's argparse cannot take a variable-length positional (IMAGES...) after options;
    # commands that have one name it with set_defaults(trailing_positionals="dest") and the
    # positional words left over after the options are appended to it.
    args, extra = parser.parse_known_args(argv)
    if extra:
        dest = getattr(args, "trailing_positionals", None)
        if dest is None or any(e.startswith("-") for e in extra):
            parser.parse_args(argv)  # argparse's own "unrecognized arguments" error, exit 2
        getattr(args, dest).extend(extra)
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _one_line_warnings(args.command, warnings.showwarning)
            return int(args.func(args) or 0)
    except (UserError, OSError) as e:  # OSError: a bad path, a full disk, a name too long,
        # permissions... Anything else is a bug: its traceback is shown.
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        print(f"pixelrnn {args.command}: error: {msg}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"pixelrnn {args.command}: interrupted", file=sys.stderr)
        return 130


def entry() -> None:
    """The ``pixelrnn`` console script and ``python -m pixelrnn``: ``main()``, then exit with its
    status. A process started by torchrun (WORLD_SIZE > 1) leaves with ``os._exit`` once its
    output is flushed, skipping the interpreter's finalization: torch keeps the gloo process group
    of a DistributedDataParallel model alive after ``destroy_process_group`` (torch 2.13), and
    when one of its worker threads drops a finished collective while the interpreter shuts down,
    that thread cannot take the GIL and the process dies with SIGABRT ("terminate called without
    an active exception") after the run's work is all done and saved. Nothing is lost by
    skipping: checkpoints and metrics are written and closed before ``main()`` returns."""
    code = main()
    if os.environ.get("WORLD_SIZE", "1").strip() not in ("", "0", "1"):
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)


if __name__ == "__main__":
    entry()
