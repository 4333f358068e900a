"""sha256 of files and of JSON records: the one implementation (ground floor, standard library only).

Bundles list every file with its sha256, checkpoints record their weights' hash, calibration tables the
model's, and the placement ledger the files it published: all of them hash here, so "the same bytes"
means the same thing everywhere.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, BinaryIO

_CHUNK = 1 << 20


def sha256_file(path: str | Path) -> str:
    """The hex sha256 of a file's bytes, read in 1 MiB chunks."""
    with open(path, "rb") as handle:
        return sha256_stream(handle)


def sha256_stream(handle: BinaryIO) -> str:
    """The hex sha256 of what is left in an open binary file (one the caller opened its own careful way)."""
    digest = hashlib.sha256()
    for chunk in iter(lambda: handle.read(_CHUNK), b""):
        digest.update(chunk)
    return digest.hexdigest()


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_json(record: Any) -> str:
    """The hex sha256 of a JSON value serialised canonically (sorted keys, json's default separators)."""
    return hashlib.sha256(json.dumps(record, sort_keys=True).encode("utf-8")).hexdigest()
