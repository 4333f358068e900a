"""Outputs rewritten in place: a directory a run holds while it replaces its own files in it, set by set.

Training writes its checkpoint every epoch and ``--resume`` continues from the last one, so nothing is
staged for the run as a whole: the run claims the directory (:func:`claim_directory`: the ownership checks,
one lock, the clean-up of its own killed writes), and each set of files it writes there (weights and card)
replaces the previous set through :func:`replace_files`, journaled and recorded like any publish.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from edgeresnet.errors import PlacementError
from edgeresnet.placement.ledger import read_ledger, run_owner
from edgeresnet.placement.locking import output_lock
from edgeresnet.placement.ownership import Adopter, files_within, judge_files, listing
from edgeresnet.placement.publishing import (
    commit,
    disk_full_or_same,
    make_directories,
    recover,
    remove_if_empty,
    staged,
    staged_names,
)

IN_PLACE = "in-place"  # the scope of the staging directories replace_files makes inside a claimed directory
Unsuitable = Callable[[Path], str | None]


@contextlib.contextmanager
def claim_directory(
    path: str | Path,
    *,
    writes: Iterable[str] = (),
    overwrite: bool = False,
    resume: bool = False,
    what: str = "--output",
    adopt: Adopter | None = None,
    unsuitable: Unsuitable | None = None,
    noun: str = "a checkpoint",
) -> Iterator[Path]:
    """Hold ``path`` for a run that rewrites its own files (``writes``) in place; see :func:`check_claimable`.

    A second run into the same directory is refused while the first runs; a killed run's journaled writes
    are finished and its recorded temporaries removed; on failure, the directories this run created are
    removed if nothing was written into them.
    """
    path = Path(path)
    names = tuple(writes)
    options = {"writes": names, "overwrite": overwrite, "resume": resume, "what": what, "adopt": adopt,
               "unsuitable": unsuitable, "noun": noun}
    check_claimable(path, **options)  # type: ignore[arg-type]
    created = make_directories(path, what)
    succeeded = False
    try:
        with output_lock(path.parent / f".{path.name}.lock", path, what):
            recover(path, scopes={IN_PLACE, *(f"file:{name}" for name in names)})
            # Again under the lock: another run may have written here since the first look.
            check_claimable(path, **options)  # type: ignore[arg-type]
            yield path
            succeeded = True
    finally:
        if not succeeded:
            remove_if_empty(created)


def check_claimable(
    path: Path, *, writes: Iterable[str] = (), overwrite: bool = False, resume: bool = False,
    what: str = "--output", adopt: Adopter | None = None, unsuitable: Unsuitable | None = None,
    noun: str = "a checkpoint",
) -> None:
    """Refuse unless a run that writes the files ``writes`` into the directory ``path`` in place loses nothing.

    An absent or empty directory is free. The tool's own output (its ledger lists files the run writes, or
    ``adopt`` recognises it) is continued with ``resume`` or rewritten with ``overwrite``, if the files the
    run replaces are still the bytes the tool wrote. In any other directory a file under a name the run
    writes is never replaced, even with ``overwrite``; its other files are never touched, and ``overwrite``
    lets the run write beside them. ``unsuitable`` is the caller's own reason to refuse a directory.
    """
    if not path.exists():
        if path.is_symlink():
            raise PlacementError(f"{what} {path} is a broken symbolic link")
        if resume:
            raise PlacementError(f"nothing to resume: {path} does not exist")
        return
    if not path.is_dir():
        raise PlacementError(f"{what} {path} is a file, not a directory")
    why = unsuitable(path) if unsuitable is not None else None
    if why:
        raise PlacementError(why)
    names = set(writes)
    present = files_within(path)
    temporaries = set(read_ledger(path).temporaries)
    # Whatever stands under a name the run writes (a file, a directory, a link) would be replaced.
    taken = sorted(name for name in names if os.path.lexists(path / name) and name not in temporaries)
    ledger = read_ledger(path)
    recorded = names & set(ledger.files) if names else set(ledger.files)
    if recorded or (adopt is not None and adopt(path) is not None):
        _check_own(path, taken, adopt=adopt, resume=resume, overwrite=overwrite, what=what, noun=noun)
        return
    if taken:
        them = "them" if len(taken) > 1 else "it"
        raise PlacementError(f"{path} holds {listing(taken)} that edgeresnet did not write: refusing to replace "
                             f"{them}, even with --overwrite; move {them} away or choose another {what}")
    if resume:
        raise PlacementError(f"nothing to resume: {path} is not {noun} edgeresnet wrote")
    if present and not overwrite:
        raise PlacementError(f"{path} is a directory edgeresnet did not write (it holds {listing(present)}): "
                             f"pass --overwrite to write beside its files, which are kept, or choose another {what}")


def _check_own(path: Path, taken: list[str], *, adopt: Adopter | None, resume: bool, overwrite: bool, what: str,
               noun: str) -> None:
    verdict = judge_files(path, taken, adopt=adopt)
    if verdict.foreign:
        them = "them" if len(verdict.foreign) > 1 else "it"
        raise PlacementError(f"{path} holds {listing(verdict.foreign)} that edgeresnet did not write: refusing to "
                             f"replace {them}, even with --overwrite; move {them} away or choose another {what}")
    if verdict.edited:
        raise PlacementError(f"{path / verdict.edited[0]} was edited since edgeresnet wrote it: refusing to "
                             f"replace it, even with --overwrite or --resume; move it away or choose another {what}")
    if not (resume or overwrite):
        raise PlacementError(f"{path} already holds {noun}: continue it with --resume, pass --overwrite to "
                             f"replace it, or choose another {what}")


@contextlib.contextmanager
def replace_files(directory: str | Path) -> Iterator[Path]:
    """Yield an empty staging directory; the files written there replace their namesakes in ``directory``
    together when the block ends (journaled first, so a kill leaves the old set or, after the next
    claim's roll-forward, the new one), and the ledger of ``directory`` records their sha256.

    The caller holds ``directory`` (:func:`claim_directory`) or created it; nothing else is checked here.
    A block that fails leaves ``directory`` as it was (a full disk is reported as such).
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    with run_owner() as owner, staged(directory, scope=IN_PLACE, owner=owner) as staging_dir:
        (staging_dir / "new").mkdir()
        try:
            yield staging_dir / "new"
        except Exception as error:
            raised = disk_full_or_same(error, directory)
            if raised is error:
                raise
            raise raised from error
        commit(staging_dir, directory, staged_names(staging_dir))
