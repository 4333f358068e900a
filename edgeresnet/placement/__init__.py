"""The one placement policy for everything edgeresnet writes: bundles, checkpoints, reports, pipeline outputs.

    with place_outputs(Path("runs/export"), overwrite=False, expect=["onnxruntime-fp32"]) as staging:
        build_bundle(staging.path / "onnxruntime-fp32")
    # every entry of staging.path is now in runs/export, or none is

The ground floor of the package: it works on paths, bytes and records of its own, and knows nothing of
bundles or checkpoints (a caller that must recognise an output an older version wrote passes ``adopt``).
The rules, each in one module:

- **Staged, then moved into place only when complete, all or nothing** (:mod:`.publish`): a journal names
  the set before the first move; a run killed during the moves is finished by the next run into the output.
- **Ownership proven by record, never guessed by name** (:mod:`.ledger`, :mod:`.ownership`): the ledger
  of a directory lists what the tool wrote there with its sha256, and every temporary a run creates, by exact
  name, with its owner, before it exists. ``--overwrite`` replaces only entries whose every file still has
  the recorded bytes; clean-up removes only recorded temporaries whose owner is gone, within the output the
  run was given. A user's file is never removed, renamed or replaced, whatever its name.
- **One lock per output** (:mod:`.locking`): a second run into the same output is refused while one runs.
- **Written to disk before it is named** (:mod:`.durable`): every file is flushed before its rename, and a
  full disk is reported as one (``no space left on device``), the previous output left whole.
- **Rewritten in place** (:mod:`.claim`): a training run claims its directory and replaces its file set
  each epoch through the same journal.
- **A failed run leaves no empty directories**: the root and parents it created are removed if empty.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from pathlib import Path

from edgeresnet.placement.claim import check_claimable, claim_directory, replace_files
from edgeresnet.placement.ledger import JOURNAL_FILE, LEDGER_FILE, RESERVED, read_ledger, run_owner
from edgeresnet.placement.locking import LOCK_FILE, output_lock
from edgeresnet.placement.ownership import Adopter, check_replaceable, judge
from edgeresnet.placement.publishing import (
    Staging,
    disk_full_or_same,
    interrupted_publish,
    make_directories,
    preflight,
    publish,
    recover,
    remove_if_empty,
    staged,
)


@contextlib.contextmanager
def place_outputs(
    root: str | Path,
    *,
    overwrite: bool = False,
    expect: Iterable[str] = (),
    what: str = "--output",
    lock_name: str = LOCK_FILE,
    adopt: Adopter | None = None,
) -> Iterator[Staging]:
    """Lock ``root``, finish or clean this output's killed runs, yield a staging area, publish it all-or-nothing.

    Args:
        expect: the entry names the run will publish, checked now so a refusal costs no work. One the run
            does not stage after all takes an earlier run's entry of that name away with the publish
            (``staging.withdrawn``), unless the user changed it (``staging.left``).
        what: how the user named ``root`` (``--output``, ``--report``), for the messages.
        lock_name: the lock file inside ``root``; two runs with the same one exclude each other, and a run
            cleans only what runs with its lock left (``compile --output a/b`` never what an export into ``a``
            left).
        adopt: recognises a directory entry an older version wrote (see :mod:`.ownership`).
    """
    root = Path(root)
    names = list(expect)
    created = make_directories(root, what)
    succeeded = False
    try:
        with output_lock(root / lock_name, root, what), run_owner() as owner:
            recover(root, scopes={lock_name, *(f"file:{name}" for name in names)})
            for name in names:
                check_replaceable(root / name, overwrite=overwrite, what=what, adopt=adopt)
            with staged(root, scope=lock_name, owner=owner) as staging_dir:
                staging = Staging(root=root, path=staging_dir / "new", overwrite=overwrite, what=what)
                staging.path.mkdir()
                try:
                    yield staging
                except Exception as error:
                    raised = disk_full_or_same(error, root)
                    if raised is error:
                        raise
                    raise raised from error
                publish(staging, staging_dir, expected=names, adopt=adopt)
            succeeded = True
    finally:
        if not succeeded:
            remove_if_empty(created)


__all__ = ["JOURNAL_FILE", "LEDGER_FILE", "LOCK_FILE", "RESERVED", "Adopter", "Staging", "check_claimable", "check_replaceable",
           "claim_directory", "interrupted_publish", "judge", "output_lock", "place_outputs",
           "preflight", "publish", "read_ledger", "recover", "replace_files"]
