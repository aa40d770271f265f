"""The errors a user can cause and fix, one type per kind. The command line prints them as one
line (``pixelrnn CMD: error: ...``, exit status 2); any other exception is a bug and shows its
traceback. Each is also a ``ValueError``, so ``except ValueError`` keeps catching bad input."""
from __future__ import annotations


class UserError(Exception):
    """Base of every error caused by the user's input (shown as one line, exit status 2)."""


class ArgumentError(UserError, ValueError):
    """A bad argument: a value out of range, a wrong type or shape, options that do not combine."""


class DataError(UserError, ValueError):
    """A dataset that cannot be read or used (missing, unreadable, inconsistent files)."""


class CheckpointError(UserError, ValueError):
    """A model checkpoint that cannot be loaded (missing, truncated, foreign, inconsistent)."""


class RunError(UserError, ValueError):
    """A run directory that cannot be used (missing, corrupt, or would be overwritten)."""


class FormatError(UserError, ValueError):
    """A compressed file that cannot be decoded (truncated, damaged, not a pixelrnn file)."""


class ModelMismatchError(FormatError):
    """A compressed file coded with a different model (or software, or device type)."""
