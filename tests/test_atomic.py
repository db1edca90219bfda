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
