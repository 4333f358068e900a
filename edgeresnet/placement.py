"""The one placement policy for everything edgeresnet writes: bundles, checkpoints, reports, pipeline outputs.

    with place_outputs(Path("runs/export"), overwrite=False, expect=["onnxruntime-fp32"]) as staging:
        build_bundle(staging.path / "onnxruntime-fp32")
    # every entry of staging.path is now in runs/export, or none is

The rules, each in one function below:

- **Staged, then moved into place only when complete.** A run writes into a staging directory inside the
  output root (same filesystem, so every move is a rename). Nothing appears under a final name before the
  whole set is built.
- **All-or-nothing.** Before the first move a journal (``publish.json`` in the staging directory) names
  the entries. The journal is the commit point: a run killed during the moves is finished (rolled
  forward) by the next run into the same root, and readers refuse a bundle named by an unfinished
  journal (:func:`interrupted_publish`). A staging directory whose owner still runs (an ``flock`` on
  its ``.owner`` file) is never touched by another run.
- **Never removes or renames what it did not write.** A directory is ours only if it holds our
  ``manifest.json``, ``card.json`` or served model's ``edgeresnet.json``, and even then only if it holds no file that we did not write
  (files the user added make the run refuse). A plain file is ours only if the ledger
  (``.edgeresnet-written.json``) recorded it with the same sha256. Anything else is refused, with or
  without ``--overwrite``.
- **Refuses without ``--overwrite``**, before any work when the caller names its entries up front.
- **One lock per output**: a second run into the same root is refused with one line while the first runs.
  The lock is an ``flock`` on a hidden file, so a killed run never leaves a lock that blocks the next.
- **Leftovers of a killed run** (our staging directories, the ``.export-*``, ``.NAME.old``, ``*.partial``
  and ``.NAME.compile.*`` directories older versions wrote, ``.NAME.*.tmp`` files) are recognised by name
  and ownership and removed by the next run.
- **A failed run leaves no empty directories**: the root and parents it created are removed if empty.

A run that must rewrite files in place (``train``: a checkpoint every epoch, which ``--resume`` continues)
claims its directory instead (:func:`claim_directory`): the same ownership, lock and cleanup, without staging.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import socket
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from edgeresnet.checkpoint import CHECKPOINT_FILES as TRAIN_WRITES
from edgeresnet.errors import PlacementError

LOCK_FILE = ".edgeresnet.lock"
JOURNAL_FILE = "publish.json"  # inside a staging directory: written before its first move
OWNER_FILE = ".owner"  # inside a staging directory: flock-held by the run that owns it
LEDGER_FILE = ".edgeresnet-written.json"
STAGING_PREFIX = ".edgeresnet-staging-"
# The files that make a directory ours: a bundle's manifest and a checkpoint's card.
OWNER_FILES = ("manifest.json", "card.json")
SERVED_MODEL_RECORD = "edgeresnet.json"  # in a model repository's model directory (edgeresnet.serve.repository)
# Files a checkpoint directory of ours may hold (the card lists none): what train writes now, and the
# metrics files earlier versions wrote beside it.
CHECKPOINT_FILES = frozenset(TRAIN_WRITES) | {"metrics.json", "metrics.csv", "history.json"}

# Names of the temporaries this and older versions of edgeresnet created (tempfile's 8-character suffix).
_TEMP = r"[a-z0-9_]{8}"
_LEFTOVER_PATTERNS = (
    re.compile(rf"^{re.escape(STAGING_PREFIX)}{_TEMP}$"),
    re.compile(rf"^\.export-{_TEMP}$"),
    re.compile(rf"^\..+\.{_TEMP}\.partial$"),
    re.compile(rf"^\..+\.compile\.{_TEMP}$"),
    re.compile(rf"^\..+\.{_TEMP}\.tmp$"),
)
_OLD_PATTERN = re.compile(r"^\..+\.old$")


@dataclass
class Staging:
    """Where a run writes: every top-level entry of ``path`` lands in ``root`` under the same name."""

    root: Path
    path: Path
    overwrite: bool
    what: str = "--output"
    published: list[Path] = field(default_factory=list)

    def destination(self, name: str) -> Path:
        return self.root / name


@contextlib.contextmanager
def place_outputs(
    root: str | Path,
    *,
    overwrite: bool = False,
    expect: Iterable[str] = (),
    what: str = "--output",
    lock_name: str = LOCK_FILE,
) -> Iterator[Staging]:
    """Lock ``root``, clean a killed run's leftovers, yield a staging area, publish it all-or-nothing.

    Args:
        expect: the entry names the run will publish, checked now so a refusal costs no work.
        what: how the user named ``root`` (``--output``, ``--report``), for the messages.
        lock_name: the lock file inside ``root``; two runs with the same one exclude each other.
    """
    root = Path(root)
    created = _make_directories(root, what)
    staging_dir: Path | None = None
    succeeded = False
    try:
        with _lock(root / lock_name, root, what):
            recover(root)
            for name in expect:
                check_replaceable(root / name, overwrite=overwrite, what=what)
            staging_dir = _new_staging(root)
            with _owned(staging_dir / OWNER_FILE):
                staging = Staging(root=root, path=staging_dir / "new", overwrite=overwrite, what=what)
                staging.path.mkdir()
                yield staging
                staging.published = publish(staging_dir, root, overwrite=overwrite, what=what)
            succeeded = True
    finally:
        # A journal left by a failed move is the next run's to finish; anything else goes now.
        if staging_dir is not None and not (staging_dir / JOURNAL_FILE).exists():
            shutil.rmtree(staging_dir, ignore_errors=True)
        if not succeeded:
            _remove_if_empty(created)


@contextlib.contextmanager
def claim_directory(
    path: str | Path,
    *,
    writes: Iterable[str] = TRAIN_WRITES,
    overwrite: bool = False,
    resume: bool = False,
    what: str = "--output",
) -> Iterator[Path]:
    """Hold ``path`` for a run that rewrites its own files in place (training writes its checkpoint every epoch).

    Nothing is staged: a resumed run must find the state the last epoch wrote, so the caller writes each
    of its files (``writes``) atomically into ``path`` (``edgeresnet.atomic``). :func:`check_claimable`
    decides, before any work and again under the lock, whether this run may write there. A second run into
    the same directory is refused while the first runs; a killed run's temporaries are removed; on failure,
    the directories this run created are removed if nothing was written into them.
    """
    path = Path(path)
    names = frozenset(writes)
    check_claimable(path, writes=names, overwrite=overwrite, resume=resume, what=what)
    created = _make_directories(path, what)
    succeeded = False
    try:
        with _lock(path.parent / f".{path.name}.lock", path, what):
            # Again under the lock: another run may have written here since the first look.
            check_claimable(path, writes=names, overwrite=overwrite, resume=resume, what=what)
            recover(path)
            yield path
            succeeded = True
    finally:
        if not succeeded:
            _remove_if_empty(created)


def check_claimable(
    path: Path, *, writes: Iterable[str] = TRAIN_WRITES, overwrite: bool = False, resume: bool = False,
    what: str = "--output",
) -> None:
    """Refuse unless a run that writes the files ``writes`` into the directory ``path`` in place loses nothing.

    An absent or empty directory is free. Our checkpoint (its card) is continued with ``resume`` or rewritten
    with ``overwrite``. Any other directory is not ours: a file in it under a name the run writes is never
    replaced, even with ``overwrite``; its other files are never touched, and ``overwrite`` lets the run
    write beside them. Leftovers of a killed run (which :func:`recover` removes) do not count.
    """
    if not path.exists():
        if path.is_symlink():
            raise PlacementError(f"{what} {path} is a broken symbolic link")
        if resume:
            raise PlacementError(f"nothing to resume: {path} does not exist")
        return
    if not path.is_dir():
        raise PlacementError(f"{what} {path} is a file, not a directory")
    if (path / "manifest.json").is_file() and _owned_files(path) is not None:  # our bundle's manifest
        raise PlacementError(f"{path} is a bundle, not a checkpoint directory: choose another {what}")
    if _is_checkpoint(path):
        if not (resume or overwrite):
            raise PlacementError(f"{path} already holds a checkpoint: continue it with --resume, pass --overwrite "
                                 f"to replace it, or choose another {what}")
        return
    present = _files_within(path)
    taken = sorted(present & set(writes))
    if taken:
        raise PlacementError(f"{path} holds {_listing(taken)} that edgeresnet did not write (no checkpoint card): "
                             f"refusing to replace {'them' if len(taken) > 1 else 'it'}, even with --overwrite; "
                             f"move {'them' if len(taken) > 1 else 'it'} away or choose another {what}")
    if resume:
        raise PlacementError(f"nothing to resume: {path} is not a checkpoint directory edgeresnet wrote")
    if present and not overwrite:
        raise PlacementError(f"{path} is a directory edgeresnet did not write (it holds {_listing(sorted(present))}): "
                             f"pass --overwrite to write beside its files, which are kept, or choose another {what}")


def _files_within(directory: Path) -> set[str]:
    """The files under ``directory`` (relative names), without the leftovers :func:`recover` removes."""
    return {p.relative_to(directory).as_posix() for p in directory.rglob("*")
            if (p.is_file() or p.is_symlink()) and not _is_leftover_name(p.relative_to(directory).parts[0])}


def _listing(names: list[str]) -> str:
    return ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")


def preflight(root: str | Path, names: Iterable[str], *, overwrite: bool, what: str = "--output") -> None:
    """What :func:`place_outputs` would refuse, checked now without creating or locking anything."""
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
            check_replaceable(root / name, overwrite=overwrite, what=what)


def check_replaceable(path: Path, *, overwrite: bool, what: str = "--output") -> None:
    """Refuse unless writing ``path`` loses nothing: it is absent, or ours and ``overwrite`` is given.

    This is the one judge of "is this ours" for an entry replaced whole; :func:`check_claimable` applies
    the same ownership (our card) to a checkpoint directory rewritten in place.
    """
    if not path.exists() and not path.is_symlink():
        return
    foreign = foreign_files(path)
    if foreign:
        kind = "directory" if path.is_dir() else "file"
        listed = ", ".join(foreign[:3]) + (f" and {len(foreign) - 3} more" if len(foreign) > 3 else "")
        if foreign == [path.name] and path.is_file() and path.name in _read_ledger(path.parent):
            raise PlacementError(f"{path} was edited since edgeresnet wrote it: refusing to replace it; "
                                 f"move it away or choose another {what}")
        if foreign == [path.name]:
            raise PlacementError(f"{path} is a {kind} edgeresnet did not write: refusing to replace it; "
                                 f"move it away or choose another {what}")
        raise PlacementError(f"{path} holds files edgeresnet did not write ({listed}): refusing to replace "
                             f"it; move them away or choose another {what}")
    if not overwrite:
        raise PlacementError(f"{path} already exists: pass --overwrite to replace it, or choose another {what}")


def foreign_files(path: Path) -> list[str]:
    """What under ``path`` edgeresnet did not write (``[path.name]`` when the whole entry is not ours)."""
    if path.is_symlink() or not (path.is_dir() or path.is_file()):
        return [path.name]
    if path.is_file():
        return [] if _ledger_owns(path) else [path.name]
    owned = _owned_files(path)
    if owned is None:
        return [path.name]
    present = {p.relative_to(path).as_posix() for p in path.rglob("*") if p.is_file() or p.is_symlink()}
    return sorted(present - owned)


def _owned_files(directory: Path) -> set[str] | None:
    """The files of a directory we wrote, by its manifest or card; None when it holds neither."""
    manifest = directory / "manifest.json"
    if manifest.is_file():
        record = _read_json(manifest)
        files = record.get("files") if isinstance(record, dict) else None
        if not isinstance(record, dict) or record.get("format") != "edgeresnet-bundle" or not isinstance(files, dict):
            return None
        return {str(name) for name in files} | {"manifest.json"}
    if (directory / "card.json").is_file():
        return set(CHECKPOINT_FILES) if _is_checkpoint(directory) else None
    if (directory / SERVED_MODEL_RECORD).is_file():  # a model directory `serve-repo` wrote: its record lists its files
        record = _read_json(directory / SERVED_MODEL_RECORD)
        files = record.get("files") if isinstance(record, dict) else None
        if not isinstance(files, dict) or record.get("format") != "edgeresnet-serving-model":
            return None
        return {str(name) for name in files} | {SERVED_MODEL_RECORD}
    return None


def _is_checkpoint(directory: Path) -> bool:
    """Whether ``directory`` holds our checkpoint card (``edgeresnet.checkpoint.CARD_FORMAT``)."""
    record = _read_json(directory / "card.json")
    return isinstance(record, dict) and record.get("format") == "edgeresnet-checkpoint"


def publish(staging_dir: Path, root: Path, *, overwrite: bool, what: str = "--output") -> list[Path]:
    """Move every entry of ``staging_dir/new`` into ``root``: checked first, then journaled, then moved."""
    names = sorted(entry.name for entry in (staging_dir / "new").iterdir())
    if not names:
        return []
    for name in names:
        check_replaceable(root / name, overwrite=overwrite, what=what)
    _write_json(staging_dir / JOURNAL_FILE, {"entries": names, "pid": os.getpid()})
    _roll_forward(root, staging_dir, names)
    return [root / name for name in names]


def recover(root: Path) -> None:
    """Finish interrupted publishes in ``root`` and remove killed runs' leftovers. Call under the lock.

    Staging directories whose owner is still running (another output's run in the same root) are left alone.
    """
    for entry in sorted(root.iterdir()):
        if entry.is_symlink():
            continue
        if entry.name.startswith(STAGING_PREFIX) and _is_leftover_name(entry.name) and entry.is_dir():
            if _is_held(entry / OWNER_FILE):
                continue
            names = _journal_entries(entry)
            if names is not None:
                _roll_forward(root, entry, names)
            else:
                shutil.rmtree(entry, ignore_errors=True)
        elif _is_leftover_name(entry.name):
            if entry.is_dir():
                shutil.rmtree(entry, ignore_errors=True)
            elif entry.name.endswith(".tmp"):
                entry.unlink(missing_ok=True)
        elif _OLD_PATTERN.match(entry.name) and entry.is_dir() and _owned_files(entry) is not None \
                and not foreign_files(entry):
            # A bundle older versions set aside mid-swap: ours (our manifest, only our files).
            shutil.rmtree(entry, ignore_errors=True)


def interrupted_publish(directory: Path) -> Path | None:
    """The journal of an unfinished publish naming ``directory``, if any: the set it belongs to is incomplete."""
    directory = Path(directory)
    with contextlib.suppress(OSError):
        for entry in directory.parent.iterdir():
            if entry.name.startswith(STAGING_PREFIX) and directory.name in (_journal_entries(entry) or ()):
                return entry / JOURNAL_FILE
    return None


def _journal_entries(staging_dir: Path) -> list[str] | None:
    record = _read_json(staging_dir / JOURNAL_FILE)
    names = record.get("entries") if isinstance(record, dict) else None
    if not isinstance(names, list) or not all(
            isinstance(n, str) and n and "/" not in n and n not in (".", "..") for n in names):
        return None
    return names


def _roll_forward(root: Path, staging_dir: Path, names: list[str]) -> None:
    new, old = staging_dir / "new", staging_dir / "old"
    old.mkdir(exist_ok=True)
    ledger = _read_ledger(root)
    for name in names:
        incoming = new / name
        if not incoming.exists():
            continue  # moved before the interruption
        target = root / name
        if target.exists() or target.is_symlink():
            os.replace(target, old / name)  # checked as ours before the journal was written
        os.replace(incoming, target)
        if target.is_file():
            ledger[name] = _sha256(target)
        else:
            ledger.pop(name, None)  # a directory proves itself ours by its manifest or card
    if ledger != _read_ledger(root):
        _write_json(root / LEDGER_FILE, ledger)
    (staging_dir / JOURNAL_FILE).unlink(missing_ok=True)  # committed: the staging directory is rubbish now
    shutil.rmtree(staging_dir, ignore_errors=True)


def _ledger_owns(path: Path) -> bool:
    recorded = _read_ledger(path.parent).get(path.name)
    return recorded is not None and recorded == _sha256(path)


def _read_ledger(root: Path) -> dict[str, str]:
    record = _read_json(root / LEDGER_FILE)
    if not isinstance(record, dict):
        return {}
    return {str(k): str(v) for k, v in record.items() if isinstance(v, str)}


def _is_leftover_name(name: str) -> bool:
    return any(pattern.match(name) for pattern in _LEFTOVER_PATTERNS)


def _new_staging(root: Path) -> Path:
    import tempfile

    return Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=root))


@contextlib.contextmanager
def _owned(path: Path) -> Iterator[None]:
    """Hold an flock on ``path`` (in a staging directory) for as long as its run lives."""
    import fcntl

    with open(path, "w", encoding="utf-8") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        handle.write(f"pid {os.getpid()} on {socket.gethostname()}")
        handle.flush()
        yield


def _is_held(path: Path) -> bool:
    """Whether a live run holds the flock on ``path``."""
    import fcntl

    try:
        with open(path, encoding="utf-8") as handle:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:
        return False
    return False


@contextlib.contextmanager
def _lock(path: Path, root: Path, what: str) -> Iterator[None]:
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


def _make_directories(root: Path, what: str) -> list[Path]:
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
        raise PlacementError(f"cannot create {what} {root}: {_reason(error)}") from error
    if not os.access(root, os.W_OK | os.X_OK):
        raise PlacementError(f"{what} {root} is not writable")
    return created


def _remove_if_empty(directories: list[Path]) -> None:
    for directory in directories:  # deepest first
        with contextlib.suppress(OSError):
            directory.rmdir()


def _reason(error: OSError) -> str:
    """An OSError as words, without the ``[Errno N]`` prefix."""
    return os.strerror(error.errno) if error.errno else str(error)


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return None


def _write_json(path: Path, record: Any) -> None:
    from edgeresnet.atomic import atomic_write_json

    atomic_write_json(path, record)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


__all__ = ["LOCK_FILE", "Staging", "check_claimable", "check_replaceable", "claim_directory", "foreign_files", "interrupted_publish",
           "place_outputs", "preflight", "publish", "recover"]
