"""One lock per output: a second run into the same output is refused with one line while the first runs.

The lock is an ``flock`` on a hidden file named by exact name (``.edgeresnet.lock`` for an output root,
``.NAME.lock`` beside one entry), so a killed run never leaves a lock that blocks the next: the kernel
drops it with the process, and the next run takes the file over.
"""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from edgeresnet.errors import PlacementError

LOCK_FILE = ".edgeresnet.lock"


@contextlib.contextmanager
def output_lock(path: Path, root: Path, what: str) -> Iterator[None]:
    """Hold the lock file ``path`` for the output ``root`` (named ``what`` to the user) for the whole block."""
    import fcntl

    while True:
        handle: IO[str] = open(path, "a+", encoding="utf-8")  # noqa: SIM115 (held for the whole run)
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip()
            handle.close()
            raise PlacementError(f"{root} is being written by another edgeresnet run ({holder or 'unknown'}); "
                                 f"wait for it to finish or choose another {what}") from None
        # Another run may have unlinked the file between our open and our lock: lock the file on disk.
        try:
            same = os.stat(path).st_ino == os.fstat(handle.fileno()).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        handle.close()
    try:
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()} on {socket.gethostname()}")
        handle.flush()
        yield
    finally:
        path.unlink(missing_ok=True)
        handle.close()
