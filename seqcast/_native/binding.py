"""The binding of the compiled recurrence (:mod:`seqcast._native._recurrence`, C built at
install from ``recurrence.c`` beside this file): loading it, passing tensors by pointer and
strides, and the threads that forecasts without gradients run on.

:func:`available` says whether the compiled part loaded; ``SEQCAST_NATIVE=0`` turns it off.
"""

from __future__ import annotations

import ctypes
import os
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from functools import cache
from typing import Any, TypeVar

import torch

__all__ = [
    "Call",
    "available",
    "check",
    "lib",
    "one_worker",
    "over_rows",
    "own_threads",
    "pool",
    "run",
    "seq",
    "thread_count",
    "use_vector_kernels",
]

T = TypeVar("T")

_P = ctypes.c_void_p
_I = ctypes.c_int
_N = ctypes.c_longlong
#: Threads that split the rows of a forecast without gradients; None: torch's thread count.
_workers: int | None = None
_local = threading.local()
#: Guards :func:`own_threads`' shared state: how many are inside it, and the count to restore.
_state_lock = threading.Lock()
_entered = 0
_saved_threads = 1
_SEQ: list[Any] = [_P, _N, _N]  # pointer to time 0 of row 0, step stride, row stride (in floats)


@cache
def _library() -> ctypes.CDLL | None:
    if os.environ.get("SEQCAST_NATIVE", "1") == "0":
        return None
    try:
        from seqcast._native import _recurrence  # type: ignore[attr-defined]
    except ImportError:
        return None
    library = ctypes.CDLL(_recurrence.__file__)
    library.seq_select.argtypes = [_I]
    library.seq_select(1)
    library.seq_layer_forward.argtypes = [*[_I] * 5, *_SEQ, _P, _P, _P, _P, *_SEQ, *_SEQ, *_SEQ]
    library.seq_layer_backward.argtypes = [
        *[_I] * 5,
        *_SEQ,
        *_SEQ,
        *_SEQ,
        *_SEQ,
        *_SEQ,
        _P,
        _P,
        _P,
        _P,
        _P,
        _P,
        *_SEQ,
        _I,
    ]
    library.seq_head_loss.argtypes = [*[_I] * 3, *[_P] * 6, _N, _I, *[_P] * 5]
    library.seq_head_loss.restype = ctypes.c_double
    library.seq_adam.argtypes = [_N, _P, _P, _P, _P, *[ctypes.c_float] * 8, _I]
    library.seq_adam.restype = None
    return library


def available() -> bool:
    """Whether the compiled recurrence is built and enabled."""
    return _library() is not None


@contextmanager
def own_threads() -> Iterator[None]:
    """Runs PyTorch on one thread while forecasts without gradients split their rows over the
    threads PyTorch had. PyTorch's idle OpenMP workers spin for a while after each operation
    and would take the cores from the recurrence's threads (measured: 8,192 windows of the
    default rnn in 40 ms with both, 33 ms without). Nested and overlapping uses (two threads
    forecasting at once) share one setting: the first in saves PyTorch's count, the last out
    restores it. Does nothing inside :func:`one_worker`."""
    global _workers, _entered, _saved_threads
    if getattr(_local, "one_worker", False):
        yield
        return
    with _state_lock:
        if _entered == 0:
            _saved_threads = torch.get_num_threads()
            _workers = _saved_threads
            torch.set_num_threads(1)
        _entered += 1
    try:
        yield
    finally:
        with _state_lock:
            _entered -= 1
            if _entered == 0:
                torch.set_num_threads(_saved_threads)
                _workers = None


@contextmanager
def one_worker() -> Iterator[None]:
    """Keeps this thread's forecasts on this thread: for callers that already run several
    forecasts side by side on the threads of :func:`own_threads`."""
    _local.one_worker = True
    try:
        yield
    finally:
        _local.one_worker = False


def thread_count() -> int:
    """The threads forecasts without gradients use here: 1 inside :func:`one_worker`, else
    PyTorch's count (from before :func:`own_threads`)."""
    if getattr(_local, "one_worker", False):
        return 1
    return _workers or torch.get_num_threads()


def _worker_count(rows: int) -> int:
    """Threads for a forecast of ``rows`` rows without gradients: at least 256 rows each."""
    return max(1, min(thread_count(), rows // 256))


def use_vector_kernels(enabled: bool) -> bool:
    """Chooses the AVX2/FMA kernels (the default where the CPU has them) or the plain C ones;
    returns whether the vector kernels are in use now. For tests and comparisons."""
    return bool(lib().seq_select(int(enabled)))


def lib() -> ctypes.CDLL:
    library = _library()
    if library is None:
        raise RuntimeError("seqcast's compiled recurrence is not available")
    return library


def seq(tensor: torch.Tensor | None, reverse: bool = False) -> list[int]:
    """Pointer and strides of a (L, rows, W) float32 view, as the C functions take them;
    ``reverse`` points at the last step with a negative step stride."""
    if tensor is None:
        return [0, 0, 0]
    steps_stride, row_stride = tensor.stride(0), tensor.stride(1)
    pointer = tensor.data_ptr()
    if reverse:
        pointer += (tensor.shape[0] - 1) * steps_stride * tensor.element_size()
        steps_stride = -steps_stride
    return [pointer, steps_stride, row_stride]


def check(code: int) -> None:
    if code == -1:
        raise MemoryError("seqcast's compiled recurrence ran out of memory")
    if code != 0:
        raise ValueError(f"seqcast's compiled recurrence refused its arguments (code {code})")


#: A prepared call of the compiled recurrence: the function, its arguments, and the tensors
#: whose memory the arguments point into (kept alive with the call).
Call = tuple[Any, tuple[Any, ...], tuple[torch.Tensor, ...]]


def run(calls: list[Call]) -> None:
    for function, arguments, _ in calls:
        check(function(*arguments))


def over_rows(rows: int, most: int, run: Callable[[int, int], T]) -> list[T]:
    """``run(start, stop)`` over consecutive blocks of at most ``most`` rows, split over
    :func:`thread_count` threads when there are enough rows (PyTorch on one thread meanwhile);
    the results in row order."""
    workers = _worker_count(rows)
    block = max(1, min(most, -(-rows // workers)))
    starts = range(0, rows, block)
    if workers == 1:
        return [run(start, start + block) for start in starts]
    with own_threads():
        return list(pool(workers).map(lambda start: run(start, start + block), starts))


@cache
def pool(workers: int) -> ThreadPoolExecutor:
    """A shared pool of ``workers`` threads (made once per count)."""
    return ThreadPoolExecutor(max_workers=workers, thread_name_prefix="seqcast-recurrence")
