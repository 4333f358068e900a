"""Atomic file and directory writes: a reader sees the old version or the new one, never half of one.

Files go to a temporary name in the destination's directory and are renamed into place
(``os.replace`` is atomic within one filesystem). Directories go through the placement policy
(:mod:`edgeresnet.placement`), which also decides what may be replaced.
"""

from __future__ import annotations

import contextlib
import json
import os
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
    """Yield a new directory to fill; it appears at ``path`` only when the block succeeds.

    The placement policy decides (:func:`edgeresnet.placement.place_outputs`): an existing ``path`` is
    replaced only with ``overwrite`` and only if edgeresnet wrote it and nothing else was added to it.
    """
    from edgeresnet.placement import place_outputs

    path = Path(path).absolute()
    with place_outputs(path.parent, overwrite=overwrite, expect=[path.name], lock_name=f".{path.name}.lock") as staging:
        directory = staging.path / path.name
        directory.mkdir()
        yield directory
