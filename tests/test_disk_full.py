"""A really full disk (issue 19): the command line, run as a user runs it, on a tiny tmpfs.

tests/test_atomic.py fakes the full disk (os.fsync raising ENOSPC); here the file system itself
runs out of space, part-way through a save. Every command that writes into it must exit with 2
and one line naming the user's path and 'No space left on device', leave what was at that path
as it was (an older model folder still complete and loadable, an older file unchanged) and
leave nothing half-written beside it; the next save, once there is room, leaves no leftovers.

Mounting needs root (or CAP_SYS_ADMIN) and Linux; elsewhere the tests are skipped.
"""

from __future__ import annotations

import datetime as dt
import errno
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from seqcast.persistence import load_model

FULL = "No space left on device"
PAGE = os.sysconf("SC_PAGESIZE") if hasattr(os, "sysconf") else 4096
SMALL = 16 * PAGE  # 64 KiB with 4 KiB pages
LINEAR = ("-m", "linear", "--window", "7")  # a model other than the first one saved


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A folder on its own tmpfs of 16 pages, unmounted after the test."""
    mount, umount = shutil.which("mount"), shutil.which("umount")
    if not sys.platform.startswith("linux") or mount is None or umount is None:
        pytest.skip("needs Linux and the mount and umount commands")
    folder = tmp_path / "small"
    folder.mkdir()
    mounted = subprocess.run(
        [mount, "-t", "tmpfs", "-o", f"size={SMALL}", "tmpfs", str(folder)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    if mounted.returncode != 0:
        reason = mounted.stderr.strip() or f"exit code {mounted.returncode}"
        pytest.skip(f"cannot mount a tmpfs here (needs root or CAP_SYS_ADMIN): {reason}")
    try:
        stats = os.statvfs(folder)
        assert stats.f_blocks * stats.f_frsize == SMALL, "not the small tmpfs"
        yield folder
    finally:
        done = subprocess.run([umount, str(folder)], capture_output=True, timeout=30)
        if done.returncode != 0:  # something still holds it open: detach it
            subprocess.run([umount, "-l", str(folder)], capture_output=True, timeout=30)


def fill(folder: Path, leave: int = 0) -> Path:
    """Fills the file system holding ``folder`` up to ``leave`` free bytes (whole pages)."""
    filler = folder / "filler"
    handle = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        while True:
            os.write(handle, b"\0" * PAGE)
    except OSError as exc:
        assert exc.errno == errno.ENOSPC, exc
    finally:
        os.close(handle)
    if leave:
        os.truncate(filler, filler.stat().st_size - leave)
    assert os.statvfs(folder).f_bavail * os.statvfs(folder).f_frsize == leave
    return filler


def seqcast(*args: str | Path) -> subprocess.CompletedProcess[str]:
    """Runs the real command line in a fresh interpreter."""
    return subprocess.run(
        [sys.executable, "-m", "seqcast", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
    )


def assert_full_disk_refusal(result: subprocess.CompletedProcess[str], path: Path) -> None:
    """Exit code 2 and one line on stderr naming the user's path and the full disk."""
    assert result.returncode == 2, (result.returncode, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0] == f"seqcast: error: '{path}': {FULL}", lines[0]


def contents(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


@pytest.fixture
def series_csv(tmp_path: Path) -> Path:
    """60 daily values, on the ordinary disk."""
    start = dt.date(2020, 1, 1)
    days = [start + dt.timedelta(days=k) for k in range(60)]
    rows = [f"{day},{10 + (k * 7) % 5 + 0.1 * k:.2f}" for k, day in enumerate(days)]
    path = tmp_path / "series.csv"
    path.write_text("date,y\n" + "\n".join(rows) + "\n")
    return path


def test_a_model_save_that_runs_out_of_space_keeps_the_old_model(
    small_disk: Path, series_csv: Path
) -> None:
    model = small_disk / "M"
    fitted = seqcast("fit", series_csv, "-m", "naive", "--out", model, "--quiet")
    assert fitted.returncode == 0, fitted.stderr
    before = contents(model)
    assert sorted(before) == ["model.json", "weights.safetensors"]

    # One page left: the new weights fit, the new model.json does not.
    filler = fill(small_disk, leave=PAGE)
    refit = seqcast("fit", series_csv, *LINEAR, "--out", model, "--quiet")
    assert_full_disk_refusal(refit, model)
    assert contents(model) == before, "the old model folder was changed"
    assert load_model(model).forecaster.name == "naive"
    assert sorted(p.name for p in small_disk.iterdir()) == ["M", "filler"], "half-written save"

    filler.unlink()  # room again: the next save replaces the model and leaves nothing beside it
    refit = seqcast("fit", series_csv, *LINEAR, "--out", model, "--quiet")
    assert refit.returncode == 0, refit.stderr
    assert sorted(p.name for p in small_disk.iterdir()) == ["M"]
    assert load_model(model).forecaster.name == "linear"
    predicted = seqcast("predict", model, "--horizon", "3")
    assert predicted.returncode == 0, predicted.stderr
    assert len(predicted.stdout.strip().splitlines()) == 4, predicted.stdout  # header + 3 steps


def test_forecasts_and_results_written_to_a_full_disk_leave_the_old_files(
    small_disk: Path, series_csv: Path, tmp_path: Path
) -> None:
    model = tmp_path / "model"  # on the ordinary disk
    fitted = seqcast("fit", series_csv, "-m", "naive", "--out", model, "--quiet")
    assert fitted.returncode == 0, fitted.stderr
    forecast, results, fresh = small_disk / "f.csv", small_disk / "b.json", small_disk / "n.json"
    forecast.write_text("date,y\nold forecast,1\n")
    results.write_text('{"old": true}\n')
    fill(small_disk)

    predicted = seqcast("predict", model, "--horizon", "3", "--out", forecast)
    assert_full_disk_refusal(predicted, forecast)
    backtested = seqcast("backtest", series_csv, "-m", "naive", "--json", results, "--quiet")
    assert_full_disk_refusal(backtested, results)
    backtested = seqcast("backtest", series_csv, "-m", "naive", "--json", fresh, "--quiet")
    assert_full_disk_refusal(backtested, fresh)

    assert forecast.read_text() == "date,y\nold forecast,1\n"
    assert results.read_text() == '{"old": true}\n'
    assert sorted(p.name for p in small_disk.iterdir()) == ["b.json", "f.csv", "filler"]
