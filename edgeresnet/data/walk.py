"""Walking a folder the user named: never out of it through a link, never round a link loop.

Image folders (training data) and ``predict DIR`` list files through :func:`walk_files`. A symbolic link
may organise a folder (a class folder linked from elsewhere in it), but a link leading out of the
folder is not followed, and each real directory and each real file is listed once, so a folder holding
a link to itself (or two) lists every image once and finishes.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path


def inside(path: str | Path, root: str | Path) -> bool:
    """Whether ``path``, with every symbolic link resolved, lies within ``root`` (itself resolved)."""
    return Path(os.path.realpath(path)).is_relative_to(os.path.realpath(root))


def walk_files(top: str | Path, root: str | Path | None = None) -> Iterator[Path]:
    """Every non-hidden file under ``top``, in sorted order, that resolves inside ``root`` (default ``top``).

    Directories are entered once per real directory; a file reached twice (through a link) is given once.
    """
    root_real = os.path.realpath(root if root is not None else top)
    seen_dirs: set[str] = set()
    seen_files: set[str] = set()
    for dirpath, dirnames, filenames in os.walk(top, followlinks=True):
        real = os.path.realpath(dirpath)
        if real in seen_dirs or not Path(real).is_relative_to(root_real):
            dirnames[:] = []
            continue
        seen_dirs.add(real)
        dirnames[:] = sorted(name for name in dirnames if not name.startswith("."))
        base = Path(dirpath)
        for name in sorted(filenames):
            if name.startswith("."):
                continue
            file_real = os.path.realpath(base / name)
            if file_real in seen_files or not Path(file_real).is_relative_to(root_real):
                continue
            seen_files.add(file_real)
            yield base / name
