"""Data-parallel training: shares of every global batch, a launcher that runs ``seqcast fit`` on
2 gloo ranks over loopback, the same weights as one process, and clear failures."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch
from safetensors.numpy import load_file

from seqcast.engines.distributed import (
    PEER_LOST,
    SPOKE_ENV,
    Launched,
    _failure,
    launch,
    mark_spoken,
)
from seqcast.errors import SeqcastError
from seqcast.training.loop import TrainData, _batches, _merge_short_tail
from seqcast.training.parallel import DataParallel

SEQCAST = [sys.executable, "-m", "seqcast"]


@pytest.mark.parametrize("world", [1, 2, 3, 5])
def test_shares_cover_every_row_once_and_none_is_empty(world: int) -> None:
    for rows in range(world, 40):
        shares = [DataParallel(rank, world).shard(rows) for rank in range(world)]
        covered = np.concatenate([np.arange(rows)[s] for s in shares])
        np.testing.assert_array_equal(covered, np.arange(rows))  # in order, each row once
        sizes = [s.stop - s.start for s in shares]
        assert min(sizes) >= 1 and max(sizes) - min(sizes) <= 1


def test_a_last_batch_too_short_for_the_ranks_joins_the_one_before() -> None:
    batches = [np.arange(0, 4), np.arange(4, 8), np.arange(8, 9)]
    merged = list(_merge_short_tail(iter(batches), 2))
    assert [b.tolist() for b in merged] == [[0, 1, 2, 3], [4, 5, 6, 7, 8]]
    kept = list(_merge_short_tail(iter(batches), 1))
    assert [b.tolist() for b in kept] == [b.tolist() for b in batches]


@pytest.mark.parametrize("world", [2, 3])
def test_each_rank_gathers_only_its_share_of_every_batch(world: int) -> None:
    generator = torch.Generator().manual_seed(0)
    data = TrainData(torch.randn(70, 4, 2, generator=generator),
                     torch.randn(70, 3, generator=generator),
                     torch.randn(70, 2, 1, generator=generator))  # fmt: skip
    whole = list(_batches(data, 16, seed=4, parallel=DataParallel(0, 1)))
    shares = [list(_batches(data, 16, seed=4, parallel=DataParallel(r, world)))
              for r in range(world)]  # fmt: skip
    for k, (batch, rows) in enumerate(whole):
        parts = [share[k] for share in shares]
        assert [count for _, count in parts] == [rows] * world  # every rank knows the total
        joined = torch.cat([part.window for part, _ in parts])
        assert torch.equal(joined, batch.window)  # the shares, in rank order, are the batch
        assert all(len(part) >= 1 for part, _ in parts)


def test_the_launcher_refuses_impossible_counts_before_starting_anything() -> None:
    with pytest.raises(SeqcastError, match="needs a rendezvous address"):
        launch(["fit"], 2, nnodes=2)
    with pytest.raises(SeqcastError, match="nproc_per_node must be at least 1"):
        launch(["fit"], 0)
    with pytest.raises(SeqcastError, match="nnodes must be at least 1"):
        launch(["fit"], 2, nnodes=0)


def _series_file(path: Path, n_series: int = 6) -> Path:
    rng = np.random.default_rng(2)
    rows = []
    for i in range(n_series):
        t = np.arange(50 + 4 * i)
        y = 5 + i + 2 * np.sin(2 * np.pi * t / 12) + rng.normal(0, 0.2, len(t))
        rows += [(f"s{i}", step, value) for step, value in zip(t, y, strict=True)]
    pd.DataFrame(rows, columns=["id", "ds", "y"]).to_csv(path, index=False)
    return path


def _fit(data: Path, out: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    command = [*SEQCAST, "fit", str(data), "--id-col", "id", "--time-col", "ds", "-m", "rnn",
               "--horizon", "3", "--season", "12", "--window", "10", "--hidden-size", "8",
               "--epochs", "3", "--patience", "0", "--batch-size", "16", "--seed", "1",
               "--out", str(out), *extra]  # fmt: skip
    environment = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE")}
    return subprocess.run(command, capture_output=True, text=True, timeout=240, env=environment)


def test_two_gloo_ranks_train_the_weights_of_one_process(tmp_path: Path) -> None:
    data = _series_file(tmp_path / "d.csv")
    one = _fit(data, tmp_path / "one")
    assert one.returncode == 0, one.stderr
    two = _fit(data, tmp_path / "two", "--nproc-per-node", "2")
    assert two.returncode == 0, two.stderr
    assert two.stderr.count("saved rnn to") == 1  # rank 0 alone speaks and writes
    a = load_file(tmp_path / "one" / "weights.safetensors")
    b = load_file(tmp_path / "two" / "weights.safetensors")
    assert a.keys() == b.keys()
    assert max(float(np.abs(a[k] - b[k]).max()) for k in a) <= 1e-5
    # The saved model forecasts in one process, as the single-process one does.
    forecasts = []
    for folder in ("one", "two"):
        run = subprocess.run([*SEQCAST, "predict", str(tmp_path / folder)], capture_output=True,
                             text=True, timeout=120, check=True)  # fmt: skip
        forecasts.append(pd.read_csv(__import__("io").StringIO(run.stdout)))
    np.testing.assert_allclose(forecasts[0]["y"], forecasts[1]["y"], rtol=1e-4, atol=1e-4)


def test_a_failing_rank_stops_the_fit_with_one_line_and_no_model(tmp_path: Path) -> None:
    data = _series_file(tmp_path / "d.csv")
    run = _fit(data, tmp_path / "m", "--nproc-per-node", "2", "--batch-size", "1")
    assert run.returncode == 2
    errors = [line for line in run.stderr.splitlines() if "error" in line.lower()]
    assert errors == [
        "seqcast: error: --batch-size 1 cannot be shared by 2 ranks; each needs a window of "
        "every batch"
    ], run.stderr  # rank 0's line alone: no launcher traceback, no second rank's copy
    assert "Traceback" not in run.stderr
    assert not (tmp_path / "m").exists()


def test_another_rank_failing_is_reported_by_its_last_error_line(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    log = logs / "run_x" / "attempt_0" / "1" / "stderr.log"
    log.parent.mkdir(parents=True)
    log.write_text("fitting ...\nseqcast: error: cannot read '/data/d.csv' on this node\n")
    failure = SimpleNamespace(local_rank=1, exitcode=2)
    ended = _failure(SimpleNamespace(failures={3: failure}), str(logs))
    assert ended == Launched(2, "rank 3: cannot read '/data/d.csv' on this node")
    silent = SimpleNamespace(failures={3: SimpleNamespace(local_rank=1, exitcode=-9)})
    other = tmp_path / "empty"
    other.mkdir()
    ended = _failure(silent, str(other))
    assert ended.status == -9 and f"its output is in {other}" in str(ended.message)
    first = {0: SimpleNamespace(local_rank=0, exitcode=2), 1: failure}
    assert _failure(SimpleNamespace(failures=first), str(other)) == Launched(2)
    assert not logs.exists()  # the logs of a failure that was reported are removed


def test_the_rank_that_failed_is_named_even_where_the_launcher_stopped_rank_0_first(
    tmp_path: Path,
) -> None:
    # Rank 1 failed; the launcher terminated rank 0 (SIGTERM) before rank 0 noticed its lost
    # peer: rank 1's own error is the message, not rank 0's silent status.
    log = tmp_path / "run_x" / "attempt_0" / "1" / "stderr.log"
    log.parent.mkdir(parents=True)
    log.write_text("seqcast: error: this rank cannot go on\n")
    failures = {0: SimpleNamespace(local_rank=0, exitcode=-15),
                1: SimpleNamespace(local_rank=1, exitcode=2)}  # fmt: skip
    ended = _failure(SimpleNamespace(failures=failures), str(tmp_path))
    assert ended == Launched(2, "rank 1: this rank cannot go on")
    killed = {0: SimpleNamespace(local_rank=0, exitcode=-9),
              1: SimpleNamespace(local_rank=1, exitcode=-15)}  # fmt: skip
    ended = _failure(SimpleNamespace(failures=killed), str(tmp_path / "gone"))
    assert ended == Launched(-9, "data-parallel training failed: rank 0 exited with status -9")


def test_rank_0_that_printed_its_error_is_not_repeated(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Both ranks failed alike; the launcher stopped rank 0 (SIGTERM) after it had printed its
    # line: its mark keeps the launcher from adding rank 1's copy.
    logs = tmp_path / "logs"
    log = logs / "run_x" / "attempt_0" / "1" / "stderr.log"
    log.parent.mkdir(parents=True)
    log.write_text("seqcast: error: --batch-size 1 cannot be shared by 2 ranks\n")
    monkeypatch.setenv(SPOKE_ENV, str(logs))
    monkeypatch.setenv("LOCAL_RANK", "0")
    mark_spoken()
    failures = {0: SimpleNamespace(local_rank=0, exitcode=-15),
                1: SimpleNamespace(local_rank=1, exitcode=2)}  # fmt: skip
    assert _failure(SimpleNamespace(failures=failures), str(logs)) == Launched(2)
    monkeypatch.setenv("LOCAL_RANK", "1")  # only local rank 0 marks
    other = tmp_path / "other"
    other.mkdir()
    monkeypatch.setenv(SPOKE_ENV, str(other))
    mark_spoken()
    assert not any(other.iterdir())


def test_ranks_that_all_lost_each_other_still_say_why() -> None:
    # Every rank exited with PEER_LOST (a collective failed for all): none spoke, so the
    # launcher must, even where local rank 0 is among them.
    lost = {r: SimpleNamespace(local_rank=r, exitcode=PEER_LOST) for r in (0, 1)}
    ended = _failure(SimpleNamespace(failures=lost), "/nonexistent")
    assert ended.status == PEER_LOST
    assert "every rank lost contact" in str(ended.message) and "--dist-timeout" in str(
        ended.message
    )


def test_nodes_that_never_meet_give_one_error_and_leave_the_callers_threads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    with pytest.raises(SeqcastError, match="did not all meet") as caught:
        launch(["fit"], 1, nnodes=2, rdzv_endpoint=f"127.0.0.1:{port}", timeout=2)
    assert set(caught.value.arguments) == {"rdzv_endpoint", "dist_timeout"}
    assert os.environ.get("OMP_NUM_THREADS") == "1"  # the caller's choice stays


def test_a_rank_whose_peers_never_come_gives_up_after_the_timeout(tmp_path: Path) -> None:
    data = _series_file(tmp_path / "d.csv")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    alone = {"RANK": "0", "LOCAL_RANK": "0", "WORLD_SIZE": "2", "MASTER_ADDR": "127.0.0.1",
             "MASTER_PORT": str(port)}  # fmt: skip
    command = [*SEQCAST, "fit", str(data), "--id-col", "id", "--time-col", "ds", "-m", "rnn",
               "--horizon", "3", "--season", "12", "--epochs", "1", "--out",
               str(tmp_path / "m"), "--dist-timeout", "3"]  # fmt: skip
    run = subprocess.run(command, capture_output=True, text=True, timeout=120,
                         env={**os.environ, **alone})  # fmt: skip
    assert run.returncode == 2, run.stderr
    lines = run.stderr.strip().splitlines()
    assert "rank 0 could not join the gloo process group" in lines[-1], run.stderr
    assert "within 3 s" in lines[-1] and "Traceback" not in run.stderr
    assert not (tmp_path / "m").exists()


def test_one_process_per_node_is_a_plain_fit(tmp_path: Path) -> None:
    data = _series_file(tmp_path / "d.csv")
    run = _fit(data, tmp_path / "m", "--nproc-per-node", "1")
    assert run.returncode == 0, run.stderr
    assert run.stderr.count("saved rnn to") == 1 and (tmp_path / "m" / "model.json").exists()


INJECT = """
import os
if os.environ.get("RANK") == "1" and os.environ.get("WORLD_SIZE") == "2":
    import torch.distributed as dist
    _exchange, _calls = dist.all_reduce, [0]
    def all_reduce(*args, **kwargs):
        _calls[0] += 1
        if _calls[0] == 5:
            from seqcast.errors import DataError
            raise DataError("this rank cannot go on")
        return _exchange(*args, **kwargs)
    dist.all_reduce = all_reduce
"""


def test_a_rank_failing_mid_training_is_named_and_its_peer_keeps_quiet(tmp_path: Path) -> None:
    data = _series_file(tmp_path / "d.csv")
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(INJECT)  # rank 1 fails at its 5th exchange
    command = [*SEQCAST, "fit", str(data), "--id-col", "id", "--time-col", "ds", "-m", "rnn",
               "--horizon", "3", "--season", "12", "--epochs", "3", "--out", str(tmp_path / "m"),
               "--nproc-per-node", "2"]  # fmt: skip
    environment = {**os.environ, "PYTHONPATH": str(hook)}
    run = subprocess.run(command, capture_output=True, text=True, timeout=240, env=environment)
    assert run.returncode == 2
    errors = [line for line in run.stderr.splitlines() if "error" in line.lower()]
    assert errors == ["seqcast: error: rank 1: this rank cannot go on; no model was written"], (
        run.stderr
    )
    assert not (tmp_path / "m").exists()


def test_a_model_without_a_device_setting_stays_on_gloo() -> None:
    from seqcast.engines.distributed import rank_device
    from seqcast.forecasters.registry import create_for

    naive = create_for("naive", {"horizon": 2})
    assert rank_device(naive) == "gloo" and "device" not in naive.get_params()
    rnn = create_for("rnn", {"device": "cpu"})
    assert rank_device(rnn) == "gloo" and rnn.get_params()["device"] == "cpu"
