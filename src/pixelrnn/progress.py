"""The one progress helper: a count of work done toward a total, shown as a tqdm bar on stderr,
reported to a callback ``f(done, total)``, both or neither.

Library functions take ``progress`` as False (silent), True (a bar) or a callable
``f(done, total)``; :func:`as_progress` turns that into a :class:`Progress`. Work made of parts
(batches of a command, chunks of a file, the two stages of the multi-scale sampler) gives each
part the callback of :meth:`Progress.part`, which maps the part's own ``(done, total)`` onto its
share of the whole::

    with Progress(n * values, "sampling", bar=None) as prog:     # bar=None: only on a terminal
        for start in range(0, n, b):
            model.sample(b, H, W, progress=prog.part(start * values, b * values))
"""
from __future__ import annotations

import sys
from typing import Callable

Callback = Callable[[int, int], None]


class Progress:
    """``total`` units of work. ``bar``: True (a tqdm bar on stderr), False (none) or None (a
    bar only when stderr is a terminal); ``callback(done, total)`` is called at every change."""

    def __init__(self, total: int, desc: str = "", *, bar: bool | None = False,
                 callback: Callback | None = None, unit: str = "value", leave: bool = False,
                 initial: int = 0, postfix: dict | None = None):
        self.total, self.done, self.callback, self.bar = total, initial, callback, None
        if bar is not False:
            from tqdm.auto import tqdm
            self.bar = tqdm(total=total, initial=initial, desc=desc, unit=unit, file=sys.stderr,
                            leave=leave, dynamic_ncols=True, mininterval=0.25, unit_scale=unit != "step",
                            disable=None if bar is None else False, postfix=postfix)

    def moveto(self, done: int) -> None:
        """Set the count of work done (never moves back)."""
        if done <= self.done:
            return
        if self.bar is not None:
            self.bar.update(done - self.done)
        self.done = done
        if self.callback is not None:
            self.callback(done, self.total)

    def advance(self, k: int = 1) -> None:
        self.moveto(self.done + k)

    def part(self, start: int, size: int) -> Callback:
        """The callback ``f(done, total)`` of a part that covers units [start, start + size)."""
        def report(done: int, total: int) -> None:
            self.moveto(start + (done * size) // max(1, total))
        return report

    def show(self, **figures: str) -> None:
        """Figures beside the bar (e.g. the training loss); nothing without a bar."""
        if self.bar is not None:
            self.bar.set_postfix(figures)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def as_progress(progress: bool | Callback | None, total: int, desc: str = "") -> Progress:
    """The ``progress`` argument of a library function (False, True: a bar, or ``f(done,
    total)``) as a :class:`Progress` over ``total`` units."""
    if callable(progress):
        return Progress(total, desc, callback=progress)
    return Progress(total, desc, bar=bool(progress))
