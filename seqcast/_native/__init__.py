"""The compiled recurrence (C, built at install from ``recurrence.c``) and the one switch that
decides where it runs.

Everything that may run compiled asks :func:`compiled`; where it says no (no C compiler at
install, ``SEQCAST_NATIVE=0``, another dtype or device, a cell it does not know), PyTorch's own
``nn.RNN``/``nn.LSTM``/``nn.GRU``, autograd and ``torch`` operations compute the same function.
"""

from __future__ import annotations

import torch

from seqcast._native.binding import (
    available,
    one_worker,
    own_threads,
    pool,
    thread_count,
    use_vector_kernels,
)
from seqcast._native.stack import CELLS, CompiledStack, recurrent_stack
from seqcast._native.step import LOSSES, HeadLoss, adam_step

__all__ = [
    "CELLS",
    "LOSSES",
    "CompiledStack",
    "HeadLoss",
    "adam_step",
    "available",
    "compiled",
    "one_worker",
    "own_threads",
    "pool",
    "recurrent_stack",
    "thread_count",
    "use_vector_kernels",
]


def compiled(*tensors: torch.Tensor, cell: str | None = None) -> bool:
    """Whether the compiled code runs work on ``tensors`` (and, given, a recurrent ``cell``):
    the library is built and enabled, and every tensor is float32 on the CPU. The one place
    where seqcast chooses between its compiled code and PyTorch's."""
    if not available() or (cell is not None and cell not in CELLS):
        return False
    return all(t.dtype == torch.float32 and t.device.type == "cpu" for t in tensors)
