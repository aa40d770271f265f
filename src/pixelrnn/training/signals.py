"""SIGINT / SIGTERM during training: a flag checked between steps (the current step finishes,
a checkpoint is written, then the run exits)."""
from __future__ import annotations

import signal


class Interrupted(Exception):
    """Raised inside an evaluation that a signal asked to stop."""


class Signals:
    """While entered, SIGINT and SIGTERM set ``received`` (the signal's number) instead of
    stopping the process; a second SIGINT raises KeyboardInterrupt at once."""

    def __init__(self):
        self.received: int | None = None
        self.previous = {}

    def __enter__(self) -> "Signals":
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self.previous[sig] = signal.signal(sig, self.handle)
            except ValueError:  # not the main thread
                pass
        return self

    def handle(self, signum, frame) -> None:
        if self.received is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt  # second Ctrl-C: give up immediately
        self.received = signum

    def __exit__(self, *exc) -> None:
        for sig, old in self.previous.items():
            signal.signal(sig, old)
