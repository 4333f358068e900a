"""One lock per output: a second run into the same output is refused with one line while the first runs.

The lock is an ``flock`` on a hidden file named by exact name (``.edgeresnet.lock`` for an output root,
``.NAME.lock`` beside one entry), so a killed run never leaves a lock that blocks the next: the kernel
drops it with the process, and the next run takes the file over.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import socket
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from edgeresnet.errors import PlacementError

LOCK_FILE = ".edgeresnet.lock"


_HOLDER = re.compile(r"^pid \d+ on \S+$")  # what a lock file of ours holds: its holder, or nothing yet


@contextlib.contextmanager
def output_lock(path: Path, root: Path, what: str) -> Iterator[None]:
    """Hold the lock file ``path`` for the output ``root`` (named ``what`` to the user) for the whole block.

    A file under that name that is not a lock of ours (a link, a directory, other content) is refused and
    left as it is.
    """
    import fcntl

    while True:
        handle = _open_lock(path)
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read(200).strip()
            handle.close()
            raise PlacementError(f"{root} is being written by another edgeresnet run ({holder or 'unknown'}); "
                                 f"wait for it to finish or choose another {what}") from None
        # Another run may have unlinked the file between our open and our lock: lock the file on disk.
        try:
            same = os.stat(path, follow_symlinks=False).st_ino == os.fstat(handle.fileno()).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        handle.close()
    handle.seek(0)
    if not _HOLDER.match(handle.read(200).strip() or "pid 0 on -"):
        handle.close()
        raise PlacementError(f"{path} is not a lock file edgeresnet made: move it away or choose another {what}")
    try:
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()} on {socket.gethostname()}")
        handle.flush()
        yield
    finally:
        path.unlink(missing_ok=True)
        handle.close()


def _open_lock(path: Path) -> IO[str]:
    """The lock file, opened without following a link and only if it is a plain file."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o666)
    except OSError as error:
        if error.errno in (errno.ELOOP, errno.EISDIR, errno.ENXIO):
            raise PlacementError(f"{path} is not a lock file edgeresnet made: move it away") from error
        raise
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise PlacementError(f"{path} is not a lock file edgeresnet made: move it away")
    return os.fdopen(fd, "r+", encoding="utf-8", errors="replace")
