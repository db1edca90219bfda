"""Data-parallel training of one model across processes: PyTorch's launcher and process group.

``seqcast fit ... --nproc-per-node N`` starts PyTorch's elastic launcher (``torchrun``) with
``seqcast fit`` itself as the training entry point; the same command line runs under
``torchrun``, under Slurm (``srun torchrun ...``) or in Spark's ``TorchDistributor``, which all
set ``RANK``, ``WORLD_SIZE``, ``MASTER_ADDR`` and ``MASTER_PORT``. Each rank joins the process
group (gloo on the CPU, NCCL on CUDA) within a timeout, trains its share of every global batch
(:mod:`seqcast.training.parallel`), and rank 0 alone writes the model, atomically. Nothing turns
this on but the launcher: visible devices never do.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
import shutil
import signal
import sys
import tempfile
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from seqcast.engines.base import cpu_count
from seqcast.errors import DataError, SeqcastError
from seqcast.forecasters.base import Forecaster
from seqcast.training.device import training_device
from seqcast.training.parallel import DataParallel, data_parallel

__all__ = [
    "DEFAULT_TIMEOUT",
    "PEER_LOST",
    "Launched",
    "PeerLost",
    "launch",
    "launched",
    "launched_rank",
    "launched_world",
    "process_group",
    "rank_device",
]

#: Seconds the ranks wait for each other to join the group (and at most in any collective).
DEFAULT_TIMEOUT = 300.0

#: What the launcher sets in every rank's environment.
LAUNCHER_VARIABLES = ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


#: The exit status of a rank that stopped because another one failed first (it says nothing:
#: the launcher reports the rank that failed first).
PEER_LOST = 3


class PeerLost(SeqcastError):
    """Another rank of the group stopped while this one was exchanging with it."""


def launched() -> bool:
    """Whether this process is a rank started by a launcher (torchrun, TorchDistributor, or
    ``seqcast fit --nproc-per-node``), even one of a group of one."""
    return all(name in os.environ for name in LAUNCHER_VARIABLES)


def launched_rank() -> int:
    """This process's rank in the launcher's group (0 where none launched it)."""
    return int(os.environ["RANK"]) if launched() else 0


def launched_world() -> int:
    """The number of ranks the launcher started (1 where none launched it)."""
    return int(os.environ["WORLD_SIZE"]) if launched() else 1


def rank_device(forecaster: Forecaster) -> str:
    """Puts a launched rank's network on its own GPU (``cuda:LOCAL_RANK``) where its ``device``
    setting resolves to CUDA, and returns the backend of the group: ``nccl`` there, else
    ``gloo``.

    Raises:
        DataError: an unknown device, or fewer GPUs here than local ranks.
    """
    setting = forecaster.get_params().get("device")
    if setting is None or training_device(str(setting)).type != "cuda":
        return "gloo"
    import torch

    local = int(os.environ.get("LOCAL_RANK", "0"))
    if local >= torch.cuda.device_count():
        raise DataError(
            f"local rank {local} needs its own GPU, and PyTorch sees "
            f"{torch.cuda.device_count()} here; start fewer processes per node",
            arguments=("nproc_per_node",),
        )
    torch.cuda.set_device(local)
    forecaster.set_params(device=f"cuda:{local}")
    return "nccl"


def _peer_lost(error: BaseException) -> bool:
    """Whether an error is the group's transport losing another rank."""
    import torch.distributed as dist

    if isinstance(error, dist.DistBackendError):
        return True
    marks = ("Connection closed by peer", "Connection reset by peer", "gloo", "NCCL")
    return isinstance(error, RuntimeError) and any(mark in str(error) for mark in marks)


@contextlib.contextmanager
def process_group(
    backend: str = "gloo", timeout: float = DEFAULT_TIMEOUT
) -> Iterator[DataParallel]:
    """Joins the launcher's process group and trains every model fitted inside the block across
    it; leaves the group at the end.

    Args:
        backend: ``gloo`` (CPU) or ``nccl`` (CUDA).
        timeout: seconds to wait for every rank to join, and at most in any collective, before
            failing with an error rather than hanging.

    Raises:
        SeqcastError: not started by a launcher, or the group did not form in time.
    """
    import torch.distributed as dist

    if launched_world() < 2:
        raise SeqcastError(
            "data-parallel training runs under a launcher: seqcast fit --nproc-per-node N, or "
            "torchrun -m seqcast fit ...",
            arguments=("nproc_per_node",),
        )
    try:
        dist.init_process_group(backend, timeout=dt.timedelta(seconds=timeout))
    except (RuntimeError, ValueError) as exc:  # DistStoreError is a RuntimeError
        detail = " ".join(str(exc).split())[:300]
        raise SeqcastError(
            f"rank {os.environ['RANK']} could not join the {backend} process group at "
            f"{os.environ['MASTER_ADDR']}:{os.environ['MASTER_PORT']} within {timeout:g} s "
            f"({detail}); check that every node started and can reach it",
            arguments=("dist_timeout",),
        ) from exc
    try:
        with data_parallel() as group:
            try:
                yield group
            except RuntimeError as exc:
                if _peer_lost(exc):
                    raise PeerLost(f"another rank stopped: {exc}") from exc
                raise
        dist.barrier()
    finally:
        dist.destroy_process_group()


def _check_counts(nproc_per_node: int, nnodes: int, rdzv_endpoint: str | None) -> None:
    if nproc_per_node < 1:
        raise SeqcastError(
            f"nproc_per_node must be at least 1, got {nproc_per_node}",
            arguments=("nproc_per_node",),
        )
    if nnodes < 1:
        raise SeqcastError(f"nnodes must be at least 1, got {nnodes}", arguments=("nnodes",))
    if nnodes > 1 and rdzv_endpoint is None:
        raise SeqcastError(
            "training on several nodes needs a rendezvous address (host:port) that every node "
            "reaches",
            arguments=("rdzv_endpoint",),
        )


@dataclass(frozen=True)
class Launched:
    """How a launch ended: ``status`` 0 when every rank finished; else ``message`` says why
    (None where local rank 0 failed, whose own message reached the console)."""

    status: int
    message: str | None = None


def launch(
    arguments: Sequence[str],
    nproc_per_node: int,
    *,
    nnodes: int = 1,
    rdzv_endpoint: str | None = None,
    rdzv_id: str = "seqcast",
    timeout: float = DEFAULT_TIMEOUT,
) -> Launched:
    """Runs ``python -m seqcast <arguments>`` on ``nproc_per_node`` ranks here through PyTorch's
    elastic launcher (what ``torchrun`` runs): a standalone rendezvous on one node, else the
    c10d rendezvous at ``rdzv_endpoint`` for job ``rdzv_id``, which every node joins within
    ``timeout`` seconds. A rank that fails stops the job (no restarts). Local rank 0 writes to
    the console; the others' output goes to log files, and the first failed one's last error
    line becomes the message.

    Raises:
        SeqcastError: impossible counts, several nodes without an endpoint, or nodes that did
            not all join within ``timeout``.
    """
    from torch.distributed.elastic.multiprocessing import DefaultLogsSpecs, Std
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.elastic.rendezvous.api import RendezvousError
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    _check_counts(nproc_per_node, nnodes, rdzv_endpoint)
    logs = tempfile.mkdtemp(prefix="seqcast-ranks-")
    others = {rank: Std.ALL for rank in range(1, nproc_per_node)}
    config = LaunchConfig(
        min_nodes=nnodes,
        max_nodes=nnodes,
        nproc_per_node=nproc_per_node,
        logs_specs=DefaultLogsSpecs(log_dir=logs, redirects=others),
        run_id=str(uuid.uuid4()) if rdzv_endpoint is None else rdzv_id,
        rdzv_endpoint=rdzv_endpoint or "localhost:0",
        rdzv_backend="c10d",
        rdzv_configs={"join_timeout": int(timeout)} if rdzv_endpoint else {"rank": 0},
        max_restarts=0,
    )
    agent = logging.getLogger("torch.distributed.elastic")
    level, agent.level = agent.level, logging.CRITICAL  # its failure report is ours to give
    # Each rank's share of the cores, unless the caller chose.
    chosen = "OMP_NUM_THREADS" in os.environ
    if not chosen:
        os.environ["OMP_NUM_THREADS"] = str(max(1, cpu_count() // nproc_per_node))
    os.environ[SPOKE_ENV] = logs  # the ranks inherit it
    try:
        elastic_launch(config, sys.executable)("-m", "seqcast", *arguments)
    except ChildFailedError as exc:
        return _failure(exc, logs)
    except RendezvousError as exc:
        shutil.rmtree(logs, ignore_errors=True)
        raise SeqcastError(
            f"the {nnodes} nodes did not all meet at {rdzv_endpoint} within {timeout:g} s "
            f"({type(exc).__name__}); start the same command on every node",
            arguments=("rdzv_endpoint", "dist_timeout"),
        ) from exc
    finally:
        agent.level = level
        os.environ.pop(SPOKE_ENV, None)
        if not chosen:
            os.environ.pop("OMP_NUM_THREADS", None)
    shutil.rmtree(logs, ignore_errors=True)
    return Launched(0)


#: Where a launched local rank 0 leaves word that it printed its own error (the launcher's
#: temporary log folder): it then says nothing more, however the launcher stopped rank 0.
SPOKE_ENV = "SEQCAST_LAUNCH_LOGS"
SPOKE_FILE = "rank0-spoke"


def mark_spoken() -> None:
    """Called where the command line printed its error: in local rank 0 of a launch, leaves
    the mark :func:`_failure` reads. Does nothing elsewhere."""
    logs = os.environ.get(SPOKE_ENV)
    if logs and os.environ.get("LOCAL_RANK") == "0":
        with contextlib.suppress(OSError):
            Path(logs, SPOKE_FILE).touch()


def _failure(error: Any, logs: str) -> Launched:
    """What a failed launch says: nothing more where local rank 0 failed by itself (it spoke),
    else the last error line of the rank that failed first, or where its output lies."""
    # A rank that failed by itself comes first, then one killed (out of memory, say); last
    # the ones that only stopped because another failed: those that lost their peers, and
    # those the launcher terminated when it saw the failure (which may reach a rank before
    # that rank notices its lost peer).
    rank, failure = min(
        error.failures.items(), key=lambda item: (_victim(item[1].exitcode), item[0])
    )
    if Path(logs, SPOKE_FILE).exists():  # local rank 0 printed its own error: enough
        shutil.rmtree(logs, ignore_errors=True)
        return Launched(failure.exitcode if failure.exitcode > 0 else 2)
    if failure.exitcode == PEER_LOST:  # every rank lost the others: a collective failed for all
        shutil.rmtree(logs, ignore_errors=True)
        return Launched(
            PEER_LOST,
            "data-parallel training failed: every rank lost contact with the others (a "
            "collective failed or timed out; --dist-timeout sets how long ranks wait); no model "
            "was written",
        )
    if failure.local_rank == 0 and failure.exitcode > 0:
        shutil.rmtree(logs, ignore_errors=True)
        return Launched(failure.exitcode)
    said = ""
    for path in sorted(Path(logs).glob(f"**/{failure.local_rank}/stderr.log")):
        lines = [line for line in path.read_text().splitlines() if line.startswith("seqcast: ")]
        said = lines[-1].removeprefix("seqcast: error: ") if lines else said
    if said:
        shutil.rmtree(logs, ignore_errors=True)
        return Launched(failure.exitcode or 1, f"rank {rank}: {said}")
    where = f"; its output is in {logs}"
    if failure.local_rank == 0:  # its output reached the console
        shutil.rmtree(logs, ignore_errors=True)
        where = ""
    return Launched(
        failure.exitcode or 1,
        f"data-parallel training failed: rank {rank} exited with status {failure.exitcode}{where}",
    )


def _victim(status: int) -> int:
    """How surely a rank's exit status says it stopped because another rank failed: 0 a
    failure of its own, 1 killed by a signal, 2 terminated by the launcher (SIGTERM), 3 lost
    its peers."""
    if status == PEER_LOST:
        return 3
    if status == -signal.SIGTERM:
        return 2
    return 1 if status < 0 else 0
