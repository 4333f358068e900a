"""Atomic file and directory writes: a reader sees the old version or the new one, never half of one.

Files go to a temporary name in the destination's directory and are renamed into place
(``os.replace`` is atomic within one filesystem). Directories (bundles) are assembled under a
temporary name and renamed at the end, so an interrupted export leaves nothing that looks finished.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    return atomic_write_with(path, lambda tmp: tmp.write_bytes(data))


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write_with(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def atomic_write_json(path: str | Path, record: Any) -> Path:
    return atomic_write_text(path, json.dumps(record, indent=2, sort_keys=False) + "\n")


def atomic_write_with(path: str | Path, write: Callable[[Path], object]) -> Path:
    """Call ``write(temporary_path)`` and rename the result onto ``path`` only if it succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        write(tmp)
        # mkstemp creates 0600 files; give the result the permissions a plain open() would.
        os.chmod(tmp, 0o666 & ~_current_umask())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_directory(path: str | Path, *, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary directory beside ``path``; rename it to ``path`` when the block succeeds.

    With ``overwrite`` an existing directory is replaced only after the new one is complete.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent))
    try:
        yield tmp
        os.chmod(tmp, 0o777 & ~_current_umask())
        if path.exists() and not overwrite:
            raise FileExistsError(f"{path} already exists")
        replace_directory(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def replace_directory(new: str | Path, destination: str | Path) -> Path:
    """Move the finished directory ``new`` onto ``destination``, on the same filesystem.

    An existing destination is set aside first and removed only after the new one is in place, so
    at every moment one complete version exists under the name (or beside it, mid-swap).
    """
    new, destination = Path(new), Path(destination)
    old = destination.with_name(f".{destination.name}.old")
    if destination.exists():
        shutil.rmtree(old, ignore_errors=True)
        os.replace(destination, old)
    os.replace(new, destination)
    shutil.rmtree(old, ignore_errors=True)
    return destination
