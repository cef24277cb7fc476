"""Atomic file writes: a temp file in the same folder, fsync, then os.replace.

A reader (or a crash) sees either the old file or the new one, never half of one.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import functools
import os
import secrets
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def write_atomic(path: Path, data: bytes | str, *, durable: bool = True) -> None:
    """Write ``data`` to ``path`` so that the file is either old or new, never partial.

    ``durable=False`` skips both fsyncs, for callers that make many writes durable at
    once with :func:`sync_filesystem` before anything refers to them. Until then a
    power cut can leave the new name with partial content, so such callers must not
    trust an existing file blindly (see store.put).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = data.encode("utf-8") if isinstance(data, str) else data
    fd, tmp = _new_temp_file(path)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(payload)
            if durable:
                fh.flush()
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    if durable:
        fsync_dir(path.parent)


def _new_temp_file(path: Path) -> tuple[int, str]:
    """A new empty file beside ``path`` named ``.NAME.XXXXXXXX.tmp``, open for writing, made
    with mode 0666 less the umask as any written file is (tempfile.mkstemp makes 0600, and
    reading the umask back to fix that costs a read of /proc per file)."""
    for _ in range(100):
        tmp = os.path.join(path.parent, f".{path.name}.{secrets.token_hex(4)}.tmp")
        try:
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666), tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"no free temp name beside {path}")


def umask() -> int:
    """The process's umask, from /proc (setting it to read it is not thread-safe; that is the fallback)."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    current = os.umask(0o022)
    os.umask(current)
    return current


def sync_filesystem(folder: Path) -> None:
    """Make every write so far on the filesystem that holds ``folder`` durable (Linux syncfs)."""
    syncfs = _syncfs()
    if syncfs is None:
        raise OSError("syncfs is not available on this system")
    fd = os.open(folder, os.O_RDONLY)
    try:
        if syncfs(fd) != 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err), str(folder))
    finally:
        os.close(fd)


def can_sync_filesystem() -> bool:
    return _syncfs() is not None


@functools.lru_cache(maxsize=1)
def _syncfs() -> Any:
    """libc's syncfs(2), or None (not Linux, or a libc without it). ctypes releases the GIL."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        function = ctypes.CDLL(None, use_errno=True).syncfs
    except (OSError, AttributeError):
        return None
    function.argtypes = [ctypes.c_int]
    function.restype = ctypes.c_int
    return function


def fsync_dir(folder: Path) -> None:
    """Make a rename inside ``folder`` durable (a no-op where directories can't be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_directory(final: Path) -> Iterator[Path]:
    """Build a folder under a temp name beside ``final`` and rename it into place on success.

    On any exception the temp folder is removed and ``final`` is never created.
    Refuses to replace an existing ``final``: built folders (releases) are immutable.
    """
    final = Path(final)
    if final.exists():
        raise FileExistsError(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{final.name}.", suffix=".tmp"))
    try:
        os.chmod(tmp, 0o777 & ~umask())  # mkdtemp makes 0700; a built folder follows the umask
        yield tmp
        os.rename(tmp, final)
        fsync_dir(final.parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


@contextlib.contextmanager
def try_lock(folder: Path) -> Iterator[bool]:
    """Hold an exclusive lock (flock) on ``folder`` itself if no one else holds it.

    Yields whether it was acquired. The kernel drops the lock when its holder dies,
    so a killed command never leaves it behind, and no lock file is left either.
    """
    fd = os.open(folder, os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)


def remove_tree(folder: Path) -> None:
    """Remove ``folder`` so that a crash midway leaves a temp folder (removed later), not half of it."""
    doomed = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}.", suffix=".tmp"))
    os.rename(folder, doomed / folder.name)
    fsync_dir(folder.parent)
    shutil.rmtree(doomed, ignore_errors=True)
