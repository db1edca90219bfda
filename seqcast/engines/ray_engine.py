"""The Ray engine: partitions as Ray tasks, on a local Ray or a user's cluster."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from seqcast.engines.base import cpu_count, install_hint, results_of, run_with_threads
from seqcast.errors import SeqcastError

__all__ = ["RayEngine"]

T = TypeVar("T")
R = TypeVar("R")


class RayEngine:
    """Runs each partition as a Ray task of one CPU (its PyTorch on one thread).

    Args:
        workers: CPUs of the local Ray started when none is running (default: every core).
        address: a cluster to join (``auto``, ``ray://head:10001``); else the Ray already
            started in this process, or a local one started here.
    """

    name = "ray"

    def __init__(self, workers: int | None = None, address: str | None = None) -> None:
        try:
            import ray
        except ImportError as exc:
            raise install_hint("ray", "ray") from exc
        self._ray: Any = ray
        self.workers = workers or cpu_count()
        self.address = address
        self._started = False

    def map(self, fn: Callable[[T], R], items: Sequence[T]) -> list[R]:
        if not items:
            return []
        ray = self._ray
        if not ray.is_initialized():
            quiet = {"log_to_driver": False, "logging_level": "ERROR"}
            try:
                if self.address:
                    ray.init(address=self.address, **quiet)
                else:
                    ray.init(num_cpus=self.workers, include_dashboard=False, **quiet)
            except (ConnectionError, RuntimeError, ValueError, OSError) as exc:
                raise SeqcastError(
                    f"could not start or join Ray at {self.address or 'this machine'}: "
                    f"{' '.join(str(exc).split())[:300]}",
                    arguments=("address",),
                ) from exc
            self._started = True
        task = ray.remote(num_cpus=1, max_retries=0)(run_with_threads)
        pending = [task.remote(fn, item, 1) for item in items]
        try:
            return results_of(ray.get(pending))
        except ray.exceptions.RayTaskError as exc:
            for ref in pending:  # the rest are not wanted: stop them quietly
                ray.cancel(ref, force=True)
            cause = exc.cause if isinstance(exc.cause, BaseException) else None
            if cause is None:
                raise
            raise cause from None  # the task's own error, not Ray's wrapped traceback

    def close(self) -> None:
        """Shuts down the Ray this engine started (one started by the caller is left be)."""
        if self._started:
            self._ray.shutdown()
            self._started = False

    def __enter__(self) -> RayEngine:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
