"""Data-parallel training: the ranks of a ``torch.distributed`` process group train one model.

Every rank holds the whole training data and draws the same shuffled mini-batches from the
same seed; each computes the gradient of its contiguous share of a batch (the global batch
size stays ``batch_size`` whatever the number of ranks), the shares' gradients are summed
across ranks (all-reduce, weighted by their rows), and every rank takes the same optimiser
step. So N ranks follow the single process's path up to the order of floating-point sums.
Validation losses are summed across ranks too, so every rank makes the same early-stopping
and divergence decisions and none waits alone in a collective.

It is on only inside :func:`data_parallel`, entered by the training entry point that the
launcher starts (:mod:`seqcast.engines.distributed`): never because a process group or
several devices exist.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

import torch

from seqcast.errors import SeqcastError

__all__ = ["DataParallel", "active", "data_parallel"]


@dataclass(frozen=True)
class DataParallel:
    """This process's place in the group: ``rank`` of ``world_size``."""

    rank: int
    world_size: int

    def shard(self, rows: int) -> slice:
        """This rank's contiguous share of ``rows`` rows: shares differ by one row at most and
        the lower ranks take the larger ones. Empty only where ``rows`` < ``world_size``
        (training batches never are: see :func:`seqcast.training.loop.train`)."""
        base, extra = divmod(rows, self.world_size)
        start = self.rank * base + min(self.rank, extra)
        return slice(start, start + base + (self.rank < extra))

    def sum_(self, tensor: torch.Tensor) -> torch.Tensor:
        """Sums ``tensor`` over the ranks, in place; every rank gets the same values."""
        import torch.distributed as dist

        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        return tensor

    def from_first_(self, tensor: torch.Tensor) -> torch.Tensor:
        """Overwrites ``tensor`` with rank 0's, in place."""
        import torch.distributed as dist

        dist.broadcast(tensor, src=0)
        return tensor


_current: DataParallel | None = None


def active() -> DataParallel | None:
    """The data-parallel group training runs in, or None (one process)."""
    return _current


@contextlib.contextmanager
def data_parallel() -> Iterator[DataParallel]:
    """Trains every model fitted inside the block across the initialised process group.

    Raises:
        SeqcastError: no process group is initialised.
    """
    import torch.distributed as dist

    global _current
    if not (dist.is_available() and dist.is_initialized()):
        raise SeqcastError("data-parallel training needs an initialised torch.distributed group")
    previous = _current
    _current = DataParallel(dist.get_rank(), dist.get_world_size())
    try:
        yield _current
    finally:
        _current = previous
