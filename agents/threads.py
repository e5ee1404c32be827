"""The worker's thread pools, owned in one place and shut down with the worker.

One thread owns the GPU (every model stage runs on it, one batch at a time); the CPU stages
(ingest, subject, animate), decoding and the ledger's markers run on two threads beside it, so
one alert's GIF encodes while the next one denoises; a stage's images move to and from the
store on the IO threads; the web port's store reads have threads of their own, so many viewers
or a slow store never hold up a stage.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass, field

from .topology import uses_gpu


class WorkerStopping(asyncio.CancelledError):
    """The worker is shutting down: what was in flight ends here with nothing sent and no offset
    committed, so the partition's next owner reads the input again. Never a failure record: a
    scale-in or a rolling update must not turn alerts in flight into failures. A CancelledError,
    so no `except Exception` on the way out stops it."""


def _pool(n: int, name: str) -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=n, thread_name_prefix=f"alertanim-{name}")


@dataclass
class Threads:
    io_threads: int = 4
    page_threads: int = 2
    gpu: Executor = field(default=None)  # type: ignore[assignment]
    cpu: Executor = field(default=None)  # type: ignore[assignment]
    io: Executor = field(default=None)  # type: ignore[assignment]
    page: Executor = field(default=None)  # type: ignore[assignment]
    closed: bool = False  # set first thing in close(): from then on nothing new is recorded

    def __post_init__(self) -> None:
        self.gpu = self.gpu or _pool(1, "gpu")
        self.cpu = self.cpu or _pool(2, "cpu")
        self.io = self.io or _pool(self.io_threads, "io")
        self.page = self.page or _pool(self.page_threads, "page")

    @classmethod
    def from_settings(cls, settings) -> "Threads":
        return cls(io_threads=settings.io_threads)

    def for_stage(self, stage: str) -> Executor:
        return self.gpu if uses_gpu(stage) else self.cpu

    def close(self, wait: bool = False) -> None:
        """Stop taking work; `wait` waits for what is running (a stage mid-batch) to end."""
        self.closed = True
        for pool in (self.page, self.io, self.cpu, self.gpu):
            pool.shutdown(wait=wait, cancel_futures=True)
