"""Engines: one pure per-partition function mapped over independent work.

Everything that is independent per series or per cutoff (refit backtests, cross-validation
windows, batch forecasts of many series by partition) is a list of partitions and one
module-level function that turns a partition into its result. An engine maps the function over
the partitions, in order: :class:`LocalEngine` in this process, :class:`ProcessEngine` in a pool
of processes, :class:`RayEngine` and :class:`DaskEngine` on a Ray or Dask cluster (a local one,
or a user's own by address). Workers receive plain arrays and models as saved-model specs
(:class:`seqcast.persistence.ModelSpec`: safetensors and JSON), never live objects, and run
PyTorch on their share of the cores; results are the same as ``local``'s, bit for bit, except
where PyTorch's thread count changes a sum in training (3 of M3 monthly's 1,426 refits differ
by 1e-7 relative: BENCHMARKS.md).

Data-parallel training of one model across processes is :mod:`seqcast.engines.distributed`.
"""

from seqcast.engines.base import ENGINES, Engine, engine_for, get_engine
from seqcast.engines.local import LocalEngine
from seqcast.engines.process import ProcessEngine

__all__ = ["ENGINES", "Engine", "LocalEngine", "ProcessEngine", "engine_for", "get_engine"]
