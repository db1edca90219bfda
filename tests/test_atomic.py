"""Atomic writes: a reader sees the old content or the new, and no temporary file survives."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from seqcast.atomic import atomic_directory, write_bytes, write_text


def test_write_text_creates_and_replaces(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "out.csv"
    write_text(target, "a,b\n")
    assert target.read_text() == "a,b\n"
    write_text(target, "é\n")
    assert target.read_bytes() == "é\n".encode()
    assert [p.name for p in target.parent.iterdir()] == ["out.csv"]


def test_failed_write_keeps_the_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "out.bin"
    write_bytes(target, b"old")

    def fail(*args: object) -> None:
        raise OSError("no space")

    monkeypatch.setattr(os, "fsync", fail)
    with pytest.raises(OSError, match="no space"):
        write_bytes(target, b"new")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.bin"]


def test_atomic_directory_success_and_failure(tmp_path: Path) -> None:
    target = tmp_path / "folder"
    with atomic_directory(target) as tmp:
        assert tmp.parent == tmp_path and tmp != target
        (tmp / "a.txt").write_text("1")
    assert (target / "a.txt").read_text() == "1"

    with pytest.raises(RuntimeError, match="midway"), atomic_directory(target) as tmp:
        (tmp / "b.txt").write_text("2")
        raise RuntimeError("midway")
    assert [p.name for p in target.iterdir()] == ["a.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["folder"]

    with atomic_directory(target) as tmp:
        (tmp / "c.txt").write_text("3")
    assert [p.name for p in target.iterdir()] == ["c.txt"]  # replaced whole
    assert [p.name for p in tmp_path.iterdir()] == ["folder"]


@pytest.mark.parametrize("mask", [0o022, 0o077, 0o002])
def test_artefacts_get_the_modes_of_open_and_mkdir(tmp_path: Path, mask: int) -> None:
    """Oracle: a file made by open() and a folder made by mkdir() under the same umask (the
    temporary files of mkstemp/mkdtemp would otherwise leave them private to their owner)."""
    old = os.umask(mask)
    try:
        write_text(tmp_path / "out.csv", "a\n")
        with atomic_directory(tmp_path / "model") as folder:
            (folder / "weights").write_bytes(b"w")
        (tmp_path / "plain.csv").write_text("a\n")
        (tmp_path / "plain").mkdir()
    finally:
        os.umask(old)
    assert (tmp_path / "out.csv").stat().st_mode == (tmp_path / "plain.csv").stat().st_mode
    assert (tmp_path / "model").stat().st_mode == (tmp_path / "plain").stat().st_mode
    assert (tmp_path / "out.csv").stat().st_mode & 0o777 == 0o666 & ~mask


# ------------------------------------------------------------------- kills during a save
#: A child process that saves a model to argv[1] and SIGKILLs itself at the K-th call
#: (argv[2]) of any step of the save that touches the disk; argv[3] == "rename" takes away
#: the one-step swap (as on a system without renameat2).
KILLER = """
import os, shutil, signal, sys
import numpy as np
from seqcast import atomic
from seqcast.data import load_series
from seqcast.forecasters import LinearRegression
from seqcast.persistence import save_model

folder, kill_at, mode = sys.argv[1], int(sys.argv[2]), sys.argv[3]
data = load_series(np.arange(40.0))
model = LinearRegression(window=3).fit([s.values for s in data.series], 1)
calls = 0

def step(real):
    def wrapped(*args, **kwargs):
        global calls
        calls += 1
        if calls == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
        return real(*args, **kwargs)
    return wrapped

if mode == "rename":
    atomic._exchange = lambda first, second: False
for module, name in ((os, "replace"), (os, "fsync"), (os, "rmdir"), (os, "chmod"),
                     (os, "unlink"), (shutil, "rmtree"), (atomic, "_exchange")):
    setattr(module, name, step(getattr(module, name)))
save_model(model, folder, data)
print(calls)
"""


def _saved_name(folder: Path) -> str:
    from seqcast.persistence import load_model

    return str(load_model(folder).forecaster.name)


@pytest.mark.parametrize("mode", ["swap", "rename"])
def test_a_save_killed_at_any_step_leaves_the_old_or_the_new_model_and_the_next_save_cleans(
    tmp_path: Path, mode: str
) -> None:
    """SIGKILL, in a real subprocess, at every disk step of replacing a model folder. With
    the one-step swap the path holds the complete old or the complete new model at every
    instant; with two renames a kill between them leaves the old model aside, which the next
    save puts back before replacing it. Either way the next save leaves no leftover."""
    import subprocess
    import sys

    import numpy as np

    from seqcast.data import load_series
    from seqcast.forecasters import MovingAverage, Naive
    from seqcast.persistence import save_model

    data = load_series(np.arange(40.0))
    folder = tmp_path / "models" / "M"
    outcomes = set()
    for kill_at in range(1, 60):
        save_model(Naive().fit([s.values for s in data.series], 1), folder, data)
        child = subprocess.run(
            [sys.executable, "-c", KILLER, str(folder), str(kill_at), mode],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        if child.returncode == 0:  # the save finished before the K-th step: all covered
            assert _saved_name(folder) == "linear"
            break
        assert child.returncode == -9, child.stderr
        if mode == "swap" or folder.exists():
            outcomes.add(_saved_name(folder))
            assert _saved_name(folder) in ("naive", "linear")
        else:
            outcomes.add("aside")
        save_model(MovingAverage(window=3).fit([s.values for s in data.series], 1), folder, data)
        assert _saved_name(folder) == "ma"
        assert sorted(p.name for p in folder.parent.iterdir()) == ["M"]  # no leftovers
    else:
        pytest.fail("the save never finished within 59 steps")
    assert kill_at > 3  # the kills landed inside the save, at several steps
    assert "naive" in outcomes and "linear" in outcomes
    if mode == "rename":
        assert "aside" in outcomes  # the window the swap closes


def test_a_symlinked_model_folder_is_replaced_through_the_link(tmp_path: Path) -> None:
    """Issue 19: `fit --out LINK` left a `.LINK.*.old` behind."""
    real = tmp_path / "real"
    with atomic_directory(real) as tmp:
        (tmp / "a.txt").write_text("old")
    link = tmp_path / "link"
    link.symlink_to(real, target_is_directory=True)
    with atomic_directory(link) as tmp:
        (tmp / "a.txt").write_text("new")
    assert link.is_symlink() and (link / "a.txt").read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link", "real"]


def test_a_full_disk_names_the_users_path_not_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 19: a full disk was 'internal error: OSError: [Errno 28]' with no path."""
    import errno

    def full(*args: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    target = tmp_path / "out.csv"
    with pytest.raises(OSError) as info:
        write_text(target, "a\n")
    assert info.value.filename == str(target) and info.value.errno == errno.ENOSPC
    folder = tmp_path / "model"
    with pytest.raises(OSError) as info, atomic_directory(folder) as tmp:
        (tmp / "weights").write_bytes(b"w")
    assert info.value.filename == str(folder)
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # nothing half-written
