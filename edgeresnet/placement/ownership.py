"""Whose is this entry: proven by the ledgers (:mod:`edgeresnet.placement.ledger`), never guessed by name.

A file is the tool's when a ledger on its way up (its own directory's, or that of a directory above it up to
the entry being judged) lists it with the sha256 it has now, or an unfinished publish journaled it so. A
directory is the tool's when its own ledger lists files, or when the caller's ``adopt`` recognises it (an
output an older version wrote before directories carried a ledger): ``adopt`` returns the files the
caller's format says it wrote, each with its sha256 (None: known by name only).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from edgeresnet.digests import sha256_file
from edgeresnet.errors import PlacementError
from edgeresnet.placement.ledger import RESERVED, Ledger, pending_files, read_ledger

Adopter = Callable[[Path], Mapping[str, str | None] | None]


@dataclass
class Verdict:
    """What under an entry the tool did not write (``foreign``) or wrote and was changed since (``edited``)."""

    foreign: list[str] = field(default_factory=list)
    edited: list[str] = field(default_factory=list)

    @property
    def ours(self) -> bool:
        return not self.foreign and not self.edited


class _Records:
    """The ledgers (and unfinished journals) of the directories met while judging one entry, read once each."""

    def __init__(self) -> None:
        self._ledgers: dict[Path, Ledger] = {}
        self._pending: dict[Path, dict[str, set[str]]] = {}

    def ledger(self, directory: Path) -> Ledger:
        if directory not in self._ledgers:
            self._ledgers[directory] = read_ledger(directory)
        return self._ledgers[directory]

    def state(self, file: Path, top: Path, digest: str) -> str:
        """``ours``, ``edited`` (recorded with other bytes) or ``foreign`` for ``file`` under ``top``."""
        recorded = False
        directory = file.parent
        while True:
            key = file.relative_to(directory).as_posix()
            listed = self.ledger(directory).files.get(key)
            if listed == digest or digest in self.pending(directory).get(key, ()):
                return "ours"
            recorded = recorded or listed is not None
            if directory == top:
                break
            directory = directory.parent
        return "edited" if recorded else "foreign"

    def pending(self, directory: Path) -> dict[str, set[str]]:
        if directory not in self._pending:
            self._pending[directory] = pending_files(directory)
        return self._pending[directory]


def judge(path: Path, *, adopt: Adopter | None = None) -> Verdict:
    """Which files under ``path`` (a file or a directory entry) the tool did not write, or wrote and were edited."""
    if path.is_symlink() or not (path.is_dir() or path.is_file()):
        return Verdict(foreign=[path.name])
    records = _Records()
    if path.is_file():
        state = records.state(path, path.parent, sha256_file(path))
        return Verdict() if state == "ours" else Verdict(**{state: [path.name]})
    adopted = None if records.ledger(path).files or adopt is None else adopt(path)
    if not records.ledger(path).files and adopted is None:
        return Verdict(foreign=[path.name])
    return _judge_files(path, files_within(path), records, adopted or {})


def judge_files(directory: Path, names: list[str], *, adopt: Adopter | None = None) -> Verdict:
    """The same judgement for some files of ``directory`` only (the ones a run is about to replace)."""
    records = _Records()
    adopted = None if records.ledger(directory).files or adopt is None else adopt(directory)
    return _judge_files(directory, names, records, adopted or {})


def _judge_files(top: Path, names: list[str], records: _Records, adopted: Mapping[str, str | None]) -> Verdict:
    verdict = Verdict()
    for name in sorted(names):
        file = top / name
        if file.is_symlink() or not file.is_file():
            verdict.foreign.append(name)
            continue
        digest = sha256_file(file)
        state = records.state(file, top, digest)
        if state != "ours" and name in adopted:
            state = "ours" if adopted[name] in (None, digest) else "edited"
        if state != "ours":
            getattr(verdict, state).append(name)
    return verdict


def files_within(directory: Path) -> list[str]:
    """Every file and link under ``directory`` (relative, links not followed), less the tool's bookkeeping.

    The tool's bookkeeping is its ledgers (by their reserved names) and the temporaries its ledgers record.
    """
    found: list[str] = []
    temporaries = set(read_ledger(directory).temporaries)
    for path in directory.iterdir():
        if path.name in RESERVED or path.name in temporaries:
            continue
        if path.is_dir() and not path.is_symlink():
            found += [f"{path.name}/{name}" for name in files_within(path)]
        else:
            found.append(path.name)
    return sorted(found)


def listing(names: list[str]) -> str:
    return ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")


def check_replaceable(path: Path, *, overwrite: bool, what: str = "--output", adopt: Adopter | None = None) -> None:
    """Refuse unless writing ``path`` loses nothing: it is absent, or the tool's, unchanged, and ``overwrite``."""
    if not path.exists() and not path.is_symlink():
        return
    verdict = judge(path, adopt=adopt)
    if verdict.foreign == [path.name]:
        kind = "directory" if path.is_dir() else "file"
        raise PlacementError(f"{path} is a {kind} edgeresnet did not write: refusing to replace it; "
                             f"move it away or choose another {what}")
    if verdict.foreign:
        raise PlacementError(f"{path} holds files edgeresnet did not write ({listing(verdict.foreign)}): "
                             f"refusing to replace it; move them away or choose another {what}")
    if verdict.edited:
        edited = path if verdict.edited == [path.name] and path.is_file() else path / verdict.edited[0]
        more = f" (and {len(verdict.edited) - 1} more)" if len(verdict.edited) > 1 else ""
        raise PlacementError(f"{edited}{more} was edited since edgeresnet wrote it: refusing to replace "
                             f"{'it' if edited == path else path}; move it away or choose another {what}")
    if not overwrite:
        raise PlacementError(f"{path} already exists: pass --overwrite to replace it, or choose another {what}")


def directory_record(directory: Path) -> dict[str, str]:
    """The ledger entries for everything under a directory the tool just built (before it is published)."""
    return {name: sha256_file(directory / name) for name in files_within(directory)
            if (directory / name).is_file() and not (directory / name).is_symlink()}
