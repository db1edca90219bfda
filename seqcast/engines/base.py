"""The engine contract, choosing an engine by name, and the threads each worker runs."""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, Protocol, TypeVar

from seqcast.errors import SeqcastError

__all__ = [
    "ENGINES",
    "Engine",
    "cpu_count",
    "engine_for",
    "get_engine",
    "results_of",
    "run_with_threads",
    "set_threads",
]

T = TypeVar("T")
R = TypeVar("R")

#: The engines by name.
ENGINES = ("local", "process", "ray", "dask")


class Engine(Protocol):
    """Maps a pure function over partitions; results come back in the partitions' order."""

    name: str

    def map(self, fn: Callable[[T], R], items: Sequence[T]) -> list[R]:
        """``[fn(item) for item in items]``, run wherever the engine runs work.

        ``fn`` must be a module-level function and ``items`` plain data (arrays, numbers,
        text, :class:`~seqcast.persistence.ModelSpec`), so that any engine can ship them."""
        ...

    def close(self) -> None:
        """Stops what the engine started (worker processes, a local cluster)."""
        ...

    def __enter__(self) -> Engine: ...

    def __exit__(self, *exc: Any) -> None: ...


def cpu_count() -> int:
    """The cores this process may use (its affinity mask, not the machine's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def set_threads(threads: int) -> None:
    """Runs PyTorch (and the BLAS and OpenMP it calls) on ``threads`` threads in this process:
    a worker's share of the cores, so that workers side by side never over-subscribe them."""
    import torch

    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[name] = str(threads)
    torch.set_num_threads(threads)


def run_with_threads(
    fn: Callable[[T], R], item: T, threads: int | None = None
) -> tuple[R, list[Warning]]:
    """``fn(item)`` with PyTorch on ``threads`` threads (None: as set), and the warnings it
    raised: what a worker runs. The caller re-issues them with :func:`results_of`, so that they
    reach the caller's own display (one line each, once) instead of a worker's stderr."""
    if threads is not None:
        set_threads(threads)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")
        # numpy's arithmetic warnings say nothing a user can act on (the command line's rule).
        warnings.filterwarnings(
            "ignore", r"(overflow|invalid value|divide by zero) encountered", RuntimeWarning
        )
        result = fn(item)
    return result, [w.message if isinstance(w.message, Warning) else UserWarning(w.message)
                    for w in caught]  # fmt: skip


def results_of(done: Iterable[tuple[R, list[Warning]]]) -> list[R]:
    """The results of :func:`run_with_threads`, its workers' warnings raised here."""
    results = []
    for result, raised in done:
        for warning in raised:
            warnings.warn(warning, stacklevel=3)
        results.append(result)
    return results


def get_engine(
    engine: str | Engine | None = None, *, workers: int | None = None, address: str | None = None
) -> Engine:
    """The engine for a name (``local``, ``process``, ``ray``, ``dask``), or ``engine`` itself
    when it already is one.

    Args:
        engine: the name, an engine, or None for ``local``.
        workers: processes of ``process``, or of a local Ray or Dask cluster (default: one per
            core).
        address: a Ray or Dask cluster to join (``ray://host:10001``, ``tcp://host:8786``)
            instead of starting a local one.

    Raises:
        SeqcastError: an unknown name, an address for an engine that takes none, or an engine
            whose package is not installed (with the command that installs it).
    """
    if engine is None:
        engine = "local"
    if not isinstance(engine, str):
        return engine
    if engine not in ENGINES:
        raise SeqcastError(
            f"unknown engine '{engine}'; choose from {', '.join(ENGINES)}", arguments=("engine",)
        )
    if workers is not None and workers < 1:
        raise SeqcastError(f"workers must be at least 1, got {workers}", arguments=("workers",))
    if address and engine in ("local", "process"):
        raise SeqcastError(
            f"engine '{engine}' runs on this machine and takes no address; use ray or dask",
            arguments=("address",),
        )
    found: Any
    if engine == "local":
        from seqcast.engines.local import LocalEngine

        found = LocalEngine()
    elif engine == "process":
        from seqcast.engines.process import ProcessEngine

        found = ProcessEngine(workers)
    elif engine == "ray":
        from seqcast.engines.ray_engine import RayEngine

        found = RayEngine(workers, address)
    else:
        from seqcast.engines.dask_engine import DaskEngine

        found = DaskEngine(workers, address)
    return found  # type: ignore[no-any-return]


@contextlib.contextmanager
def engine_for(engine: str | Engine | None) -> Iterator[Engine]:
    """The engine of :func:`get_engine` for a block of work: one started here from a name (or
    None) is stopped when the block ends; one passed in is left running for its owner."""
    runner = get_engine(engine)
    try:
        yield runner
    finally:
        if runner is not engine:
            runner.close()


def install_hint(package: str, extra: str) -> SeqcastError:
    """The error for an engine whose package is missing, with the command that installs it."""
    return SeqcastError(
        f"engine '{extra}' needs the {package} package: pip install 'seqcast[{extra}]' "
        "-c constraints.txt (the constraints file keeps the CPU build of torch)",
        arguments=("engine",),
    )
