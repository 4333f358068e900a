"""The lowest floor of writing: bytes that survive a crash, a full disk named as such, directory locks.

Everything here works on paths and bytes; it knows nothing of what the files mean.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

# Below this many free bytes a failed write is taken for a full disk, whatever the writer's exception says
# (safetensors and torch.save report a full disk as their own error types, without the errno).
_NEARLY_FULL_BYTES = 1 << 20
_FULL_DISK_WORDS = ("no space left", "storagefull", "os error 28", "errno 28", "disk quota")


def write_durably(path: Path, data: bytes, *, temporary: Path) -> None:
    """Write ``data`` to ``temporary``, flush it to disk, rename it onto ``path``, flush the directory.

    ``temporary`` is a name the caller owns (recorded, or reserved by exact name): it is overwritten.
    """
    try:
        with open(temporary, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            temporary.unlink()
        raise
    fsync_directory(path.parent)


def fsync_file(path: Path) -> None:
    """Flush a file someone else wrote (a writer callback) to disk before it is renamed into place."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_directory(directory: Path) -> None:
    """Make renames and creations in ``directory`` durable (a crash after this keeps them)."""
    with contextlib.suppress(OSError):  # some filesystems refuse fsync on a directory; renames still happened
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def as_disk_full(error: BaseException, where: Path) -> OSError | None:
    """``error`` as an ENOSPC OSError naming ``where`` when the disk under ``where`` is full; else None.

    An ENOSPC OSError is named after ``where`` (not the temporary it hit); another OSError is taken as it is;
    another writer's error counts as a full disk when its words say so or when the filesystem has (nearly)
    nothing left.
    """
    if isinstance(error, OSError):
        if error.errno != errno.ENOSPC or error.filename == str(where):
            return None
        return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(where))
    words = str(error).lower()
    full = any(word in words for word in _FULL_DISK_WORDS)
    if not full:
        probe = where
        while not probe.exists() and probe != probe.parent:
            probe = probe.parent
        with contextlib.suppress(OSError):
            full = shutil.disk_usage(probe).free < _NEARLY_FULL_BYTES
    if not full:
        return None
    return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(where))


@contextlib.contextmanager
def directory_lock(directory: Path) -> Iterator[None]:
    """An exclusive ``flock`` on ``directory`` itself, for short read-modify-writes of its ledger.

    Locking the directory (not a file in it) leaves nothing behind, even when the holder is killed.
    """
    import fcntl

    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def reason(error: OSError) -> str:
    """An OSError as words, without the ``[Errno N]`` prefix."""
    return os.strerror(error.errno) if error.errno else str(error)


def exchange(first: Path, second: Path) -> bool:
    """Swap two paths in one atomic step (Linux ``renameat2(RENAME_EXCHANGE)``); False where unsupported.

    This is how a directory replaces a directory with no moment where neither is in place.
    """
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    result = renameat2(at_fdcwd, os.fsencode(first), at_fdcwd, os.fsencode(second), rename_exchange)
    return result == 0
