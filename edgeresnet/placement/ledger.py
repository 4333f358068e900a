"""The ledger: what edgeresnet wrote in a directory, and what it is writing there now, each with its owner.

One hidden file per directory (:data:`LEDGER_FILE`), read and rewritten under an ``flock`` on the directory:

- ``files``: every file the tool placed there (a relative path, nested for a published directory), with the
  sha256 it had then. A file is the tool's only while its bytes still match; a directory is the tool's when
  its own ledger lists its files.
- ``temporaries``: every temporary file or staging directory a run creates there, recorded by exact name
  *before* it is created, with its owner (pid, host, process start, run id) and the scope of the run (the
  output entry it writes). Clean-up removes only these, only when their owner is gone, and only within the
  scope of the run that cleans. Nothing is ever recognised by the shape of its name.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgeresnet.errors import PlacementError
from edgeresnet.limits import read_json
from edgeresnet.placement.durable import directory_lock, write_durably

LEDGER_FILE = ".edgeresnet-written.json"
_LEDGER_TEMPORARY = ".edgeresnet-written.json.tmp"  # reserved: only written under the directory lock
LEDGER_FORMAT = "edgeresnet-ledger"
LEDGER_VERSION = 2
JOURNAL_FILE = "publish.json"  # inside a staging directory: the set it publishes, written before the first move
# Names the tool keeps for its own bookkeeping: never a user's file, never part of what a run publishes.
RESERVED = frozenset({LEDGER_FILE, _LEDGER_TEMPORARY})

_ACTIVE_RUNS: set[str] = set()  # run ids of this process whose temporaries are in use


@dataclass(frozen=True)
class Owner:
    """Who created a temporary: enough to tell, on this host, whether that run still lives."""

    pid: int
    host: str
    start: str | None  # the process's start time (/proc), so a reused pid is not taken for the owner
    run: str

    def to_dict(self) -> dict[str, Any]:
        return {"pid": self.pid, "host": self.host, "start": self.start, "run": self.run}

    @classmethod
    def from_dict(cls, record: Any) -> Owner | None:
        if not isinstance(record, dict):
            return None
        pid, host, start, run = (record.get(key) for key in ("pid", "host", "start", "run"))
        if not isinstance(pid, int) or not isinstance(host, str) or not isinstance(run, str):
            return None
        return cls(pid, host, start if isinstance(start, str) else None, run)

    def alive(self) -> bool:
        """Whether the run may still use its temporaries; a run on another host is assumed alive."""
        if self.host != socket.gethostname():
            return True
        if self.pid == os.getpid():
            return self.run in _ACTIVE_RUNS
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            pass  # another user's live process
        return self.start is None or _process_start(self.pid) in (None, self.start)


def _process_start(pid: int) -> str | None:
    with contextlib.suppress(OSError, IndexError):
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[19]  # field 22: start time in clock ticks since boot
    return None


@contextlib.contextmanager
def run_owner() -> Iterator[Owner]:
    """A new owner for the temporaries of one run (one call), alive in this process until the block ends."""
    owner = Owner(os.getpid(), socket.gethostname(), _process_start(os.getpid()), secrets.token_hex(8))
    _ACTIVE_RUNS.add(owner.run)
    try:
        yield owner
    finally:
        _ACTIVE_RUNS.discard(owner.run)


@dataclass
class Temporary:
    kind: str  # "file" or "staging"
    scope: str  # what run it serves: the lock name of an output, or "file:NAME" for one file's write
    owner: Owner | None

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "scope": self.scope, "owner": self.owner.to_dict() if self.owner else None}


@dataclass
class Ledger:
    files: dict[str, str] = field(default_factory=dict)
    temporaries: dict[str, Temporary] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"format": LEDGER_FORMAT, "version": LEDGER_VERSION, "files": dict(sorted(self.files.items())),
                "temporaries": {name: t.to_dict() for name, t in sorted(self.temporaries.items())}}


def read_ledger(directory: Path) -> Ledger:
    """The ledger of ``directory``; empty when there is none. A file under its name that is not one is refused."""
    path = directory / LEDGER_FILE
    if not path.exists():  # also when ``directory`` is a file
        return Ledger()
    try:
        # The ledger sits in the user's folder: read with the size and depth limits of any untrusted JSON.
        record = read_json(path, what="ledger", error=PlacementError)
    except PlacementError as error:
        raise PlacementError(f"{path} is not a ledger edgeresnet can read ({error}): move it away") from error
    if isinstance(record, dict) and record.get("format") == LEDGER_FORMAT:
        return _parse(record)
    if isinstance(record, dict) and all(isinstance(v, str) for v in record.values()):
        return Ledger(files={str(k): v for k, v in record.items()})  # version 1: name -> sha256
    raise PlacementError(f"{path} is not a ledger edgeresnet wrote: move it away")


def _parse(record: dict[str, Any]) -> Ledger:
    files = record.get("files") if isinstance(record.get("files"), dict) else {}
    temporaries = record.get("temporaries") if isinstance(record.get("temporaries"), dict) else {}
    ledger = Ledger(files={str(k): v for k, v in files.items() if isinstance(v, str)})
    for name, value in temporaries.items():
        if _plain_name(name) and isinstance(value, dict) and value.get("kind") in ("file", "staging"):
            ledger.temporaries[name] = Temporary(value["kind"], str(value.get("scope", "")),
                                                 Owner.from_dict(value.get("owner")))
    return ledger


def _plain_name(name: Any) -> bool:
    """A name of an entry directly in the directory: no separator, not ``.``/``..``, not reserved."""
    return isinstance(name, str) and bool(name) and "/" not in name and "\\" not in name \
        and name not in (".", "..") and name not in RESERVED


@contextlib.contextmanager
def edit_ledger(directory: Path) -> Iterator[Ledger]:
    """Read, change and durably rewrite the ledger of ``directory``; an empty ledger is removed."""
    with directory_lock(directory):
        ledger = read_ledger(directory)
        before = ledger.to_dict()
        yield ledger
        if ledger.to_dict() == before:
            return
        path = directory / LEDGER_FILE
        if ledger.files or ledger.temporaries:
            data = (json.dumps(ledger.to_dict(), indent=1) + "\n").encode()
            write_durably(path, data, temporary=directory / _LEDGER_TEMPORARY)
        else:
            path.unlink(missing_ok=True)


def new_temporary_name(directory: Path, stem: str) -> str:
    """A fresh name in ``directory`` (not yet taken) for a temporary of ``stem``."""
    while True:
        name = f".{stem}.{secrets.token_hex(4)}.tmp"
        if not os.path.lexists(directory / name):
            return name


def record_temporary(directory: Path, name: str, *, kind: str, scope: str, owner: Owner) -> None:
    """Record a temporary before it is created, so a killed run's leftover is known by exact name."""
    with edit_ledger(directory) as ledger:
        ledger.temporaries[name] = Temporary(kind, scope, owner)


def forget_temporary(directory: Path, name: str) -> None:
    """Drop a temporary's record once it is gone; a full disk or a vanished directory only leaves it stale."""
    with contextlib.suppress(OSError, PlacementError), edit_ledger(directory) as ledger:
        ledger.temporaries.pop(name, None)


def dead_temporaries(ledger: Ledger, scopes: set[str]) -> list[tuple[str, Temporary]]:
    """The temporaries of these scopes whose owner is gone (or unknown): the next run's to clean."""
    return [(name, t) for name, t in sorted(ledger.temporaries.items())
            if t.scope in scopes and (t.owner is None or not t.owner.alive())]


def read_journal(staging_dir: Path) -> dict[str, Any] | None:
    """The journal of a staged publish: ``entries`` (names), ``files`` (sha256 of the entries that are files),
    ``dirs`` (sha256 of the ledgers of those that are directories) and ``withdrawn`` (names taken away)."""
    try:
        record = read_json(staging_dir / JOURNAL_FILE, what="publish journal", error=PlacementError)
    except PlacementError:
        return None
    names = record.get("entries") if isinstance(record, dict) else None
    if not isinstance(names, list) or not all(_plain_name(n) for n in names):
        return None
    journal: dict[str, Any] = {"entries": names}
    for key in ("files", "dirs"):  # sha256 of the entries that are files; of the ledger of those that are directories
        digests = record.get(key) if isinstance(record.get(key), dict) else {}
        journal[key] = {k: v for k, v in digests.items() if k in names and isinstance(v, str)}
    withdrawn = record.get("withdrawn")  # an earlier run's entries this publish takes away
    journal["withdrawn"] = ([n for n in withdrawn if _plain_name(n) and n not in names]
                            if isinstance(withdrawn, list) else [])
    return journal


def write_journal(staging_dir: Path, journal: dict[str, Any]) -> None:
    data = (json.dumps({**journal, "pid": os.getpid()}) + "\n").encode()
    write_durably(staging_dir / JOURNAL_FILE, data, temporary=staging_dir / f"{JOURNAL_FILE}.tmp")


def pending_files(directory: Path) -> dict[str, set[str]]:
    """Files that unfinished publishes into ``directory`` are moving there: name -> the sha256s journaled."""
    pending: dict[str, set[str]] = {}
    with contextlib.suppress(PlacementError):
        for name, temporary in read_ledger(directory).temporaries.items():
            journal = read_journal(directory / name) if temporary.kind == "staging" else None
            for entry, digest in (journal or {}).get("files", {}).items():
                pending.setdefault(entry, set()).add(digest)
    return pending
