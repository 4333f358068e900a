"""The progress bar of long commands (predict over folders, benchmark): tqdm on stderr, or silence."""

from __future__ import annotations

import sys
from typing import Any, Self


class ProgressBar:
    """A tqdm bar on stderr when enabled, a silent stand-in otherwise (so callers never branch on it)."""

    def __init__(self, total: int, *, enabled: bool, unit: str = "it") -> None:
        self._bar: Any = None
        if enabled:
            from tqdm import tqdm

            self._bar = tqdm(total=total, unit=unit, file=sys.stderr, dynamic_ncols=True)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._bar is not None:
            self._bar.close()

    def set_description_str(self, text: str) -> None:
        if self._bar is not None:
            self._bar.set_description_str(text)

    def update(self, n: int = 1) -> None:
        if self._bar is not None:
            self._bar.update(n)
