"""Atomic file writes: a reader sees the old version or the new one, never half of one.

A file goes to a temporary name in the destination's directory, recorded (with its owner) in that
directory's ledger before it is created, is flushed to disk, and is renamed into place (``os.replace`` is
atomic within one filesystem). A run killed mid-write leaves a temporary that the next write of the same
file removes; a temporary of a live run (another process writing the same folder) is never touched. A full
disk is an ``OSError`` (ENOSPC) whatever the writer raised, and the previous file stays as it was.
Sets of files and directories go through the placement policy (:mod:`edgeresnet.placement`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edgeresnet.placement.durable import as_disk_full, fsync_directory, fsync_file
from edgeresnet.placement.ledger import forget_temporary, new_temporary_name, record_temporary, run_owner
from edgeresnet.placement.publishing import recover


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    return atomic_write_with(path, lambda tmp: tmp.write_bytes(data))


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write_with(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def atomic_write_json(path: str | Path, record: Any) -> Path:
    return atomic_write_text(path, json.dumps(record, indent=2, sort_keys=False) + "\n")


def atomic_write_with(path: str | Path, write: Callable[[Path], object]) -> Path:
    """Call ``write(temporary_path)`` and rename the result onto ``path`` only if it succeeds."""
    path = Path(path)
    directory = path.parent
    directory.mkdir(parents=True, exist_ok=True)
    scope = f"file:{path.name}"
    recover(directory, scopes={scope})  # a killed write of this same file: its recorded temporary goes
    with run_owner() as owner:
        name = new_temporary_name(directory, path.name)
        record_temporary(directory, name, kind="file", scope=scope, owner=owner)
        tmp = directory / name
        try:
            # Created with the permissions a plain open() gives (0666 less the umask), never over anything.
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
            write(tmp)
            fsync_file(tmp)
            os.replace(tmp, path)
            fsync_directory(directory)
        except BaseException as error:
            tmp.unlink(missing_ok=True)
            full = as_disk_full(error, path) if isinstance(error, Exception) else None
            if full is not None:
                raise full from error
            raise
        finally:
            forget_temporary(directory, name)
    return path
