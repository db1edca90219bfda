"""The Dask engine: partitions as Dask futures, on a local cluster or a user's scheduler."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from seqcast.engines.base import cpu_count, install_hint, results_of, run_with_threads
from seqcast.errors import SeqcastError

__all__ = ["DaskEngine"]

T = TypeVar("T")
R = TypeVar("R")


class DaskEngine:
    """Runs each partition as a Dask task, its PyTorch on one thread.

    Args:
        workers: processes of the local cluster (one thread each; default: one per core),
            started by the first :meth:`map` and kept until :meth:`close` when no address is
            given.
        address: a scheduler to use (``tcp://host:8786``), whose workers' threads then run one
            PyTorch thread each.
    """

    name = "dask"

    def __init__(self, workers: int | None = None, address: str | None = None) -> None:
        try:
            import distributed
        except ImportError as exc:
            raise install_hint("dask.distributed", "dask") from exc
        self._distributed: Any = distributed
        self.workers = workers or cpu_count()
        self.address = address
        self._cluster: Any = None
        self._client: Any = None

    def map(self, fn: Callable[[T], R], items: Sequence[T]) -> list[R]:
        if not items:
            return []
        client = self._connect()
        futures = client.map(
            run_with_threads, [fn] * len(items), list(items), [1] * len(items), pure=False
        )
        return results_of(client.gather(futures))

    def _connect(self) -> Any:
        if self._client is None:
            distributed = self._distributed
            if self.address:
                try:
                    self._client = distributed.Client(self.address, timeout="20s")
                except (OSError, TimeoutError, ValueError) as exc:
                    raise SeqcastError(
                        f"could not reach the Dask scheduler at {self.address}: "
                        f"{' '.join(str(exc).split())[:300]}",
                        arguments=("address",),
                    ) from exc
            else:
                self._cluster = distributed.LocalCluster(
                    n_workers=self.workers,
                    threads_per_worker=1,
                    processes=True,
                    dashboard_address=None,
                    silence_logs=50,
                )
                self._client = distributed.Client(self._cluster)
        return self._client

    def close(self) -> None:
        """Disconnects, and stops the local cluster if this engine started one."""
        if self._client is not None:
            self._client.close()
            self._client = None
        if self._cluster is not None:
            self._cluster.close()
            self._cluster = None

    def __enter__(self) -> DaskEngine:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
