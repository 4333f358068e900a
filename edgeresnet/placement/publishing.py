"""Staged, all-or-nothing publishing into an output, and the roll-forward of a publish a kill interrupted.

A run writes into a staging directory inside the output root (same filesystem, so every move is a rename),
recorded in the root's ledger with its owner before it is created. Before the first move a journal
(``publish.json`` in the staging directory) names the entries and the sha256 of those that are files; a
directory entry gets its own ledger listing its files. The journal is the commit point: a run killed during
the moves is finished by the next run into the same output, which also records what was moved in the ledger,
so a later ``--overwrite`` knows the results as the tool's.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from edgeresnet.digests import sha256_file
from edgeresnet.errors import PlacementError
from edgeresnet.placement.durable import as_disk_full, exchange, fsync_directory, reason
from edgeresnet.placement.ledger import (
    JOURNAL_FILE,
    LEDGER_FILE,
    RESERVED,
    Owner,
    dead_temporaries,
    edit_ledger,
    forget_temporary,
    new_temporary_name,
    read_journal,
    read_ledger,
    record_temporary,
    write_journal,
)
from edgeresnet.placement.ownership import Adopter, check_replaceable, directory_record, judge


@dataclass
class Staging:
    """Where a run writes: every top-level entry of ``path`` lands in ``root`` under the same name."""

    root: Path
    path: Path
    overwrite: bool
    what: str = "--output"
    published: list[Path] = field(default_factory=list)
    # Expected entries this run did not produce: an earlier run's, withdrawn with the publish where they
    # are still as the tool wrote them, and left (for the caller to name) where the user changed them.
    withdrawn: list[Path] = field(default_factory=list)
    left: list[Path] = field(default_factory=list)


@contextlib.contextmanager
def staged(root: Path, *, scope: str, owner: Owner) -> Iterator[Path]:
    """A new staging directory in ``root``, recorded (with its owner) before it exists, removed after.

    One whose publish journal exists is left for the next run to finish (:func:`recover`).
    """
    name = new_temporary_name(root, "edgeresnet-staging")
    record_temporary(root, name, kind="staging", scope=scope, owner=owner)
    staging_dir = root / name
    try:
        staging_dir.mkdir()
        yield staging_dir
    finally:
        if not (staging_dir / JOURNAL_FILE).exists():
            shutil.rmtree(staging_dir, ignore_errors=True)
            forget_temporary(root, name)


def disk_full_or_same(error: Exception, where: Path) -> Exception:
    """What to raise for ``error`` raised while writing under ``where``: ENOSPC when the disk is full."""
    return as_disk_full(error, where) or error


def publish(staging: Staging, staging_dir: Path, *, expected: Iterable[str] = (), adopt: Adopter | None = None) -> None:
    """Move every entry of ``staging_dir/new`` into the root: checked first, then journaled, then moved.

    An ``expected`` entry this run did not stage is an earlier run's result this one no longer vouches for
    (an INT8 bundle the gate refused this time): it leaves with the same journaled publish when every file
    of it is still as the tool wrote it, and is otherwise left where it is and listed in ``staging.left``.
    """
    root = staging.root
    names = staged_names(staging_dir)
    for name in names:
        check_replaceable(root / name, overwrite=staging.overwrite, what=staging.what, adopt=adopt)
    stale = [name for name in dict.fromkeys(expected) if name not in names and os.path.lexists(root / name)]
    withdrawn = [name for name in stale if judge(root / name, adopt=adopt).ours]
    staging.published = commit(staging_dir, root, names, withdrawn)
    staging.withdrawn = [root / name for name in withdrawn]
    staging.left = [root / name for name in stale if name not in withdrawn]


def staged_names(staging_dir: Path) -> list[str]:
    return sorted(entry.name for entry in (staging_dir / "new").iterdir() if entry.name not in RESERVED)


def commit(staging_dir: Path, root: Path, names: list[str], withdrawn: Sequence[str] = ()) -> list[Path]:
    """Journal ``names`` (files with their sha256, directories with their own ledger) and the ``withdrawn``
    entries of ``root``, then move the first in and the second out."""
    if not names and not withdrawn:
        return []
    files: dict[str, str] = {}
    dirs: dict[str, str] = {}
    for name in names:
        entry = staging_dir / "new" / name
        if entry.is_dir() and not entry.is_symlink():
            record = directory_record(entry)
            with edit_ledger(entry) as ledger:
                ledger.files.update(record)
            dirs[name] = _ledger_digest(entry) or ""
        else:
            files[name] = sha256_file(entry)
    journal = {"entries": names, "files": files, "dirs": dirs, "withdrawn": list(withdrawn)}
    write_journal(staging_dir, journal)
    roll_forward(root, staging_dir, journal, judged=True)
    return [root / name for name in names]


def roll_forward(root: Path, staging_dir: Path, journal: dict, *, judged: bool = False) -> None:
    """Finish a journaled publish (again, after a kill: each step is done once), then record it.

    Args:
        judged: the withdrawn entries were judged the tool's by this run a moment ago (``publish``); a run
            finishing a killed one's publish has only the journal's word for them and judges them again.
    """
    new, old = staging_dir / "new", staging_dir / "old"
    old.mkdir(exist_ok=True)
    for name in journal["entries"]:
        incoming = new / name
        if name in journal["dirs"] and os.path.lexists(incoming) and _ledger_digest(incoming) != journal["dirs"][name]:
            os.replace(incoming, old / name)  # swapped in before the interruption: this is the old one
        elif os.path.lexists(incoming):
            move_into_place(incoming, root / name, aside=old / name)
    withdrawn = journal.get("withdrawn", [])
    for name in withdrawn:
        if os.path.lexists(root / name) and (judged or judge(root / name).ours):
            os.replace(root / name, old / name)  # removed with the staging directory below
    fsync_directory(root)
    with edit_ledger(root) as ledger:
        for name in [*journal["entries"], *withdrawn]:
            for key in [k for k in ledger.files if k == name or k.startswith(f"{name}/")]:
                del ledger.files[key]  # a directory carries its own ledger
            if name in journal["files"]:
                ledger.files[name] = journal["files"][name]
    (staging_dir / JOURNAL_FILE).unlink(missing_ok=True)  # committed: the staging directory is rubbish now
    shutil.rmtree(staging_dir, ignore_errors=True)
    forget_temporary(root, staging_dir.name)


def _ledger_digest(directory: Path) -> str | None:
    try:
        return sha256_file(directory / LEDGER_FILE)
    except OSError:
        return None


def move_into_place(incoming: Path, target: Path, *, aside: Path) -> None:
    """Put one entry of a journaled set in place in one step: a file by a rename, a directory by an atomic
    exchange with the one it replaces (moved to ``aside`` after). Where the filesystem cannot exchange,
    the old directory goes aside first: for that instant, readers see the journal and refuse the set.
    (Its own function: the kill tests stop a publish here.)
    """
    replaces_directory = os.path.lexists(target) and (incoming.is_dir() or target.is_dir())
    if replaces_directory and exchange(incoming, target):
        os.replace(incoming, aside)  # the old entry, swapped out; the target was checked as the tool's
        return
    if replaces_directory:
        os.replace(target, aside)
    os.replace(incoming, target)


def recover(root: Path, *, scopes: Iterable[str]) -> None:
    """Finish or remove what killed runs of these scopes left in ``root``: only what the ledger records.

    Call under the lock of the output; temporaries of live runs and of other outputs are left alone.
    """
    for name, temporary in dead_temporaries(read_ledger(root), set(scopes)):
        entry = root / name
        if temporary.kind == "staging" and entry.is_dir() and not entry.is_symlink():
            journal = read_journal(entry)
            if journal is not None:
                roll_forward(root, entry, journal)
                continue
            shutil.rmtree(entry, ignore_errors=True)
        elif temporary.kind == "file" and entry.is_file() and not entry.is_symlink():
            entry.unlink(missing_ok=True)
        forget_temporary(root, name)


def interrupted_publish(directory: Path) -> Path | None:
    """The journal of an unfinished publish naming ``directory``, if any: the set it belongs to is incomplete."""
    directory = Path(directory)
    with contextlib.suppress(OSError, PlacementError):
        for name, temporary in read_ledger(directory.parent).temporaries.items():
            journal = read_journal(directory.parent / name) if temporary.kind == "staging" else None
            if journal is not None and directory.name in journal["entries"]:
                return directory.parent / name / JOURNAL_FILE
    return None


def preflight(root: str | Path, names: Iterable[str], *, overwrite: bool, what: str = "--output",
              adopt: Adopter | None = None) -> None:
    """What :func:`edgeresnet.placement.place_outputs` would refuse, checked now without creating or locking."""
    root = Path(root)
    probe = root
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir():
        raise PlacementError(f"{what} {root}: {probe} is a file, not a directory")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise PlacementError(f"{what} {root}: {probe} is not writable")
    if probe == root:
        for name in names:
            check_replaceable(root / name, overwrite=overwrite, what=what, adopt=adopt)


def make_directories(root: Path, what: str) -> list[Path]:
    """Create ``root`` and missing parents; return what was created, deepest first."""
    created: list[Path] = []
    probe = root
    while not probe.exists() and probe != probe.parent:
        created.append(probe)
        probe = probe.parent
    if probe.exists() and not probe.is_dir() or root.is_file():
        raise PlacementError(f"{what} {root}: {probe} is a file, not a directory")
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise PlacementError(f"cannot create {what} {root}: {reason(error)}") from error
    if not os.access(root, os.W_OK | os.X_OK):
        raise PlacementError(f"{what} {root} is not writable")
    return created


def remove_if_empty(directories: list[Path]) -> None:
    for directory in directories:  # deepest first
        with contextlib.suppress(OSError):
            directory.rmdir()
