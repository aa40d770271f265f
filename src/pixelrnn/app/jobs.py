"""The model's work queue: one worker thread runs every job, so that the web server's event loop
never waits on the model and two requests never use the model at once.

A job is a function ``fn(progress) -> result`` (``progress(done, total)`` reports how far it got);
:meth:`Jobs.submit` queues it and returns at once with a :class:`Job` that the page polls by id.
Short jobs (``priority`` 0: inspecting a drawing) run before queued long ones (1: sampling,
completing); a job submitted with a ``key`` replaces a queued, not yet started job of the same key
(a new drawing's inspection makes the old one's pointless). Finished jobs are kept for
``keep_seconds`` and at most ``keep`` of them.
"""
from __future__ import annotations

import itertools
import queue
import threading
import time
import traceback
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable

from ..errors import UserError

QUEUED, RUNNING, DONE, FAILED, CANCELLED = "queued", "running", "done", "error", "cancelled"


class QueueFull(Exception):
    """More jobs wait than the queue takes (the page says: busy, try again)."""


@dataclass
class Job:
    """One unit of model work and what the page sees of it (:meth:`view`)."""

    kind: str
    fn: Callable[[Callable[[int, int], None]], Any]
    priority: int = 1
    key: str | None = None
    id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    status: str = QUEUED
    done: int = 0
    total: int = 0
    result: Any = None
    error: str | None = None
    created: float = field(default_factory=time.monotonic)
    started: float | None = None
    finished: float | None = None

    def progress(self, done: int, total: int) -> None:
        self.done, self.total = int(done), int(total)

    @property
    def over(self) -> bool:
        return self.status in (DONE, FAILED, CANCELLED)

    def view(self) -> dict:
        """The JSON the page polls: status, progress (0..1), seconds, and the result or error."""
        seconds = None
        if self.started is not None:
            seconds = (self.finished or time.monotonic()) - self.started
        out = {"id": self.id, "kind": self.kind, "status": self.status,
               "progress": self.done / self.total if self.total else (1.0 if self.status == DONE else 0.0),
               "seconds": seconds}
        if self.status == DONE:
            out["result"] = self.result
        if self.error is not None:
            out["error"] = self.error
        return out


class Jobs:
    """A priority queue of jobs and the one worker thread that runs them (started at once;
    :meth:`close` stops it)."""

    def __init__(self, max_queued: int = 16, keep: int = 64, keep_seconds: float = 600.0):
        self.max_queued, self.keep, self.keep_seconds = max_queued, keep, keep_seconds
        self.jobs: dict[str, Job] = {}
        self.lock = threading.Lock()
        self.queue: queue.PriorityQueue = queue.PriorityQueue()
        self.order = itertools.count()
        self.worker = threading.Thread(target=self.run, name="pixelrnn-model-worker", daemon=True)
        self.worker.start()

    def submit(self, kind: str, fn, priority: int = 1, key: str | None = None) -> Job:
        """Queue ``fn`` as a new job; QueueFull when ``max_queued`` jobs already wait."""
        job = Job(kind, fn, priority, key)
        with self.lock:
            self.forget_old()
            waiting = [j for j in self.jobs.values() if j.status == QUEUED]
            if key is not None:
                for old in waiting:
                    if old.key == key:
                        old.status, old.error, old.finished = CANCELLED, "replaced by a newer request", time.monotonic()
                waiting = [j for j in waiting if j.status == QUEUED]
            if len(waiting) >= self.max_queued:
                raise QueueFull(f"busy: {len(waiting)} jobs are waiting; try again in a moment")
            self.jobs[job.id] = job
        self.queue.put((priority, next(self.order), job))
        return job

    def get(self, job_id: str) -> Job | None:
        with self.lock:
            return self.jobs.get(job_id)

    def forget_old(self) -> None:
        """Drop finished jobs older than ``keep_seconds`` and all but the newest ``keep`` (the
        caller holds the lock)."""
        now = time.monotonic()
        finished = sorted((j for j in self.jobs.values() if j.over), key=lambda j: j.finished or 0)
        for k, j in enumerate(finished):
            if k < len(finished) - self.keep or now - (j.finished or now) > self.keep_seconds:
                del self.jobs[j.id]

    def run(self) -> None:
        """The worker: take the most urgent queued job, run it, record its result or error."""
        while True:
            _, _, job = self.queue.get()
            if job is None:
                return
            if job.status != QUEUED:  # cancelled while it waited
                continue
            job.status, job.started = RUNNING, time.monotonic()
            try:
                job.result = job.fn(job.progress)
                job.status = DONE
            except UserError as e:  # bad input the checks before the queue could not see
                job.status, job.error = FAILED, str(e).splitlines()[0] if str(e) else type(e).__name__
            except Exception as e:  # a bug: keep serving, and say what happened
                traceback.print_exc()
                job.status, job.error = FAILED, f"internal error: {type(e).__name__}: {e}"
            job.finished = time.monotonic()

    def close(self) -> None:
        """Stop the worker after the job it is running (queued jobs are dropped)."""
        self.queue.put((-1, -1, None))
        self.worker.join(timeout=30)
