"""Writing artefacts so that a reader sees the old file or the new one, never half of it.

A folder is replaced by swapping it with its complete new version in one system call (Linux's
``renameat2`` with ``RENAME_EXCHANGE``), so a crash or a kill at any instant leaves the complete
old or the complete new folder at the path, never none; the old content, now in the temporary
folder, is removed after. Where the system cannot swap, the old folder is renamed aside first,
and a crash between the two renames leaves it aside: the next save puts it back. Leftovers of an
interrupted save (hidden ``.NAME.*.tmp`` and ``.NAME.*.old`` beside the path) are removed by the
next save to the same path.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

__all__ = ["atomic_directory", "holds_current_folder", "set_aside", "write_bytes", "write_text"]


def _umask() -> int:
    """The process's file-creation mask (read, not changed, where Linux reports it)."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    mask = os.umask(0o022)  # elsewhere the only way to read it is to set it and put it back
    os.umask(mask)
    return mask


def write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Writes ``data`` to a temporary file beside ``path``, syncs it, then renames it over."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    _recover(target)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        # mkstemp makes the file private (0600); give it the mode open() would have.
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException as exc:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        _name_target(exc, target, Path(tmp))
        raise


def write_text(path: str | os.PathLike[str], text: str) -> None:
    """:func:`write_bytes` for UTF-8 text."""
    write_bytes(path, text.encode("utf-8"))


def holds_current_folder(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is the current folder or one above it: a folder that
    :func:`atomic_directory` cannot replace (the process stands in it), and that a user would
    not want replaced whole."""
    target = Path(path).resolve()
    here = Path.cwd().resolve()
    return target == here or target in here.parents


@contextlib.contextmanager
def atomic_directory(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yields a temporary folder beside ``path``; on success it replaces ``path`` whole.

    If the block raises, the temporary folder is removed and ``path`` is left as it was. A
    symbolic link is followed: the folder it points to is replaced, the link kept.
    """
    target = Path(path)
    if target.is_symlink():
        target = target.resolve()
    target.parent.mkdir(parents=True, exist_ok=True)
    _recover(target)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    try:
        os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp's 0700 would hide the folder from others
        yield tmp
        for child in tmp.iterdir():
            with open(child, "rb") as handle:
                os.fsync(handle.fileno())
        if not target.exists():
            os.replace(tmp, target)
        elif _exchange(tmp, target):  # one step: the old content is now in tmp
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            old = Path(
                tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".old", dir=target.parent)
            )
            os.rmdir(old)
            os.replace(target, old)
            os.replace(tmp, target)
            shutil.rmtree(old, ignore_errors=True)
        _sync_folder(target.parent)
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        _name_target(exc, target, tmp)
        raise


def _name_target(exc: BaseException, target: Path, tmp: Path) -> None:
    """Makes an OS error of a save name the user's path (a full disk raises with no file
    name, or with the hidden temporary one) instead of nothing or a path the user never gave."""
    if not isinstance(exc, OSError) or exc.errno is None:
        return
    named = exc.filename is None or str(tmp) in str(exc.filename)
    if named and (exc.filename2 is None or str(tmp) in str(exc.filename2)):
        exc.filename = str(target)
        if exc.filename2 is not None:
            exc.filename2 = str(target)


def _exchange(first: Path, second: Path) -> bool:
    """Swaps two paths in one step (Linux ``renameat2(RENAME_EXCHANGE)``); False where the
    system or the file system cannot."""
    swap = getattr(ctypes.CDLL(None, use_errno=True), "renameat2", None)
    if swap is None:
        return False
    here, exchange = -100, 2  # AT_FDCWD, RENAME_EXCHANGE
    if swap(here, os.fsencode(first), here, os.fsencode(second), exchange) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
        return False
    raise OSError(code, os.strerror(code), str(first), None, str(second))


def set_aside(path: str | os.PathLike[str]) -> Path | None:
    """The folder an interrupted save left ``path``'s old content in (the newest), when
    nothing took its place; else None."""
    target = Path(path)
    if target.exists():
        return None
    aside = sorted(target.parent.glob(f".{target.name}.*.old"), key=lambda p: p.stat().st_mtime)
    return aside[-1] if aside else None


def _recover(target: Path) -> None:
    """Cleans what an interrupted save to ``target`` left: puts an old folder renamed aside
    back when nothing took its place, and removes the other leftovers."""
    aside = sorted(target.parent.glob(f".{target.name}.*.old"), key=lambda p: p.stat().st_mtime)
    if aside and not target.exists():
        os.replace(aside.pop(), target)
    for leftover in [*aside, *target.parent.glob(f".{target.name}.*.tmp")]:
        if leftover.is_dir() and not leftover.is_symlink():
            shutil.rmtree(leftover, ignore_errors=True)
        else:
            with contextlib.suppress(FileNotFoundError):
                leftover.unlink()


def _sync_folder(folder: Path) -> None:
    """Makes the renames in ``folder`` durable (where the system allows opening a folder)."""
    with contextlib.suppress(OSError):
        handle = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(handle)
        finally:
            os.close(handle)
