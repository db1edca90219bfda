"""The process engine: a pool of worker processes on this machine."""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import Any, TypeVar

from seqcast.engines.base import cpu_count, results_of, run_with_threads, set_threads

__all__ = ["ProcessEngine"]

T = TypeVar("T")
R = TypeVar("R")


class ProcessEngine:
    """Runs partitions in ``workers`` processes (default: one per core), each with its share
    of the cores as PyTorch threads.

    The workers are started (``spawn``: fresh interpreters, never forks of a process whose
    thread pools are running) by the first :meth:`map` of more than one partition and kept for
    the next ones until :meth:`close` (or the end of a ``with`` block, or of the program).
    Like every ``spawn`` pool, a script that uses it needs ``if __name__ == "__main__":``.
    """

    name = "process"

    def __init__(self, workers: int | None = None) -> None:
        self.workers = workers or cpu_count()
        self._pool: ProcessPoolExecutor | None = None

    def map(self, fn: Callable[[T], R], items: Sequence[T]) -> list[R]:
        if len(items) <= 1 or self.workers == 1:
            return [fn(item) for item in items]
        if self._pool is None:
            threads = max(1, cpu_count() // self.workers)
            self._pool = ProcessPoolExecutor(
                self.workers,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=set_threads,
                initargs=(threads,),
            )
        return results_of(self._pool.map(run_with_threads, [fn] * len(items), items))

    def close(self) -> None:
        """Stops the workers (a later :meth:`map` starts new ones)."""
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)
            self._pool = None

    def __enter__(self) -> ProcessEngine:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
