"""The placement policy: staged, all-or-nothing, locked, never losing what the tool did not write."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from edgeresnet.errors import PlacementError
from edgeresnet.placement import (
    JOURNAL_FILE,
    LOCK_FILE,
    check_replaceable,
    interrupted_publish,
    place_outputs,
    publish,
)


def snapshot(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def fake_bundle(directory: Path, payload: bytes = b"model") -> Path:
    directory.mkdir(parents=True)
    (directory / "model.onnx").write_bytes(payload)
    manifest = {"format": "edgeresnet-bundle", "files": {"model.onnx": "x"}}
    (directory / "manifest.json").write_text(json.dumps(manifest))
    return directory


def test_entries_land_together_and_a_second_run_needs_overwrite(tmp_path: Path) -> None:
    root = tmp_path / "out"
    with place_outputs(root) as staging:
        fake_bundle(staging.path / "a")
        (staging.path / "report.json").write_text("{}")
    assert sorted(p.name for p in root.iterdir() if not p.name.startswith(".")) == ["a", "report.json"]
    assert not any(p.name.startswith(".edgeresnet-staging") for p in root.iterdir())
    with pytest.raises(PlacementError, match="already exists: pass --overwrite"), place_outputs(root, expect=["a"]):
        raise AssertionError("the refusal must come before the work")
    with place_outputs(root, overwrite=True) as staging:
        fake_bundle(staging.path / "a", b"new")
        (staging.path / "report.json").write_text('{"new": 1}')
    assert (root / "a" / "model.onnx").read_bytes() == b"new"


def test_a_users_directory_or_file_is_never_replaced(tmp_path: Path) -> None:
    root = tmp_path / "out"
    (root / "a").mkdir(parents=True)
    (root / "a" / "notes.txt").write_text("mine")
    (root / "report.json").write_text("mine too")
    before = snapshot(root)
    for name in ("a", "report.json"):
        with pytest.raises(PlacementError, match="edgeresnet did not write"), place_outputs(root, overwrite=True) as staging:
            (staging.path / name).write_text("ours")
    assert snapshot(root) == before
    assert sorted(p.name for p in root.iterdir()) == ["a", "report.json"]


def test_a_bundle_with_files_the_user_added_is_refused(tmp_path: Path) -> None:
    bundle = fake_bundle(tmp_path / "out" / "a")
    (bundle / "my-labels.txt").write_text("added by hand")
    with pytest.raises(PlacementError, match=r"holds files edgeresnet did not write \(my-labels.txt\)"):
        check_replaceable(bundle, overwrite=True)
    (bundle / "my-labels.txt").unlink()
    check_replaceable(bundle, overwrite=True)


def test_a_failed_run_leaves_no_directories_and_no_staging(tmp_path: Path) -> None:
    root = tmp_path / "new" / "deeper" / "out"
    with pytest.raises(RuntimeError), place_outputs(root) as staging:
        fake_bundle(staging.path / "a")
        raise RuntimeError("build failed")
    assert list(tmp_path.iterdir()) == []


def test_a_second_run_into_the_same_output_is_refused_while_the_first_holds_the_lock(tmp_path: Path) -> None:
    root = tmp_path / "out"
    holder = subprocess.Popen(
        [sys.executable, "-c", ("import sys, time; from edgeresnet.placement import place_outputs\n"
         f"with place_outputs({str(root)!r}):\n    print('locked', flush=True); time.sleep(30)")],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        with pytest.raises(PlacementError, match="being written by another edgeresnet run"), place_outputs(root):
            pass
    finally:
        holder.kill()
        holder.wait()
    # kill -9 left the lock file: the lock itself died with its process.
    with place_outputs(root) as staging:
        (staging.path / "x").write_text("1")
    assert (root / "x").read_text() == "1" and not (root / LOCK_FILE).exists()


def test_a_publish_killed_between_moves_is_rolled_forward_and_readers_see_it(tmp_path: Path) -> None:
    root = tmp_path / "out"
    with place_outputs(root) as staging:
        fake_bundle(staging.path / "a", b"old-a")
        fake_bundle(staging.path / "b", b"old-b")
    # Simulate a kill after the journal was written and the first of two moves done.
    staging_dir = root / ".edgeresnet-staging-abcd1234"
    fake_bundle(staging_dir / "new" / "a", b"new-a")
    fake_bundle(staging_dir / "new" / "b", b"new-b")
    (staging_dir / "old").mkdir()
    os.replace(root / "a", staging_dir / "old" / "a")
    os.replace(staging_dir / "new" / "a", root / "a")
    (staging_dir / JOURNAL_FILE).write_text(json.dumps({"entries": ["a", "b"]}))
    assert interrupted_publish(root / "b") is not None  # readers refuse the mixed set
    with place_outputs(root, overwrite=True):
        pass
    assert (root / "a" / "model.onnx").read_bytes() == b"new-a"
    assert (root / "b" / "model.onnx").read_bytes() == b"new-b"
    assert interrupted_publish(root / "b") is None
    assert not staging_dir.exists()


def test_leftovers_of_older_versions_are_cleaned_but_lookalikes_are_kept(tmp_path: Path) -> None:
    root = tmp_path / "out"
    root.mkdir()
    (root / ".export-k2j4_x9a").mkdir()
    (root / ".export-k2j4_x9a" / "model_fp32.onnx").write_bytes(b"x")
    fake_bundle(root / ".onnxruntime-fp32.old")
    (root / ".a.ab12cd34.partial").mkdir()
    (root / ".report.json.zz12yy34.tmp").write_text("half")
    (root / ".export-notes").mkdir()  # not a name tempfile makes: the user's
    (root / ".mine.old").mkdir()  # no manifest: the user's
    with place_outputs(root):
        pass
    assert sorted(p.name for p in root.iterdir()) == [".export-notes", ".mine.old"]


def test_publish_checks_again_what_appeared_during_the_run(tmp_path: Path) -> None:
    root = tmp_path / "out"
    with pytest.raises(PlacementError, match="did not write"), place_outputs(root, overwrite=True) as staging:
        (root / "a").mkdir()
        (root / "a" / "user.txt").write_text("appeared meanwhile")
        fake_bundle(staging.path / "a")
    assert (root / "a" / "user.txt").read_text() == "appeared meanwhile"
    assert publish.__doc__


def test_a_file_in_the_way_of_the_output_root_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "out").write_text("a file")
    with pytest.raises(PlacementError, match="is a file, not a directory"), place_outputs(tmp_path / "out" / "sub"):
        pass
    assert (tmp_path / "out").read_text() == "a file"


def test_claim_directory_for_a_run_that_rewrites_in_place(tmp_path: Path) -> None:
    from edgeresnet.placement import claim_directory

    checkpoint = tmp_path / "runs" / "r20"
    with pytest.raises(RuntimeError), claim_directory(checkpoint):
        raise RuntimeError("training failed before writing anything")
    assert not (tmp_path / "runs").exists()
    with claim_directory(checkpoint) as directory:
        (directory / "card.json").write_text(json.dumps({"format": "edgeresnet-checkpoint"}))
        (directory / "model.safetensors").write_bytes(b"w")
    with pytest.raises(PlacementError, match="pass --overwrite"), claim_directory(checkpoint):
        pass
    with claim_directory(checkpoint, resume=True), pytest.raises(PlacementError, match="another edgeresnet run"), \
            claim_directory(checkpoint, overwrite=True):
        pass
    # A file of the user's beside a checkpoint is never touched by a run writing in place, so it blocks nothing.
    (checkpoint / "my-notes.txt").write_text("mine")
    with claim_directory(checkpoint, resume=True):
        pass
    assert (checkpoint / "my-notes.txt").read_text() == "mine"
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["r20"]  # the lock went with its run


def _checkpoint(directory: Path) -> Path:
    directory.mkdir(parents=True)
    (directory / "card.json").write_text(json.dumps({"format": "edgeresnet-checkpoint"}))
    (directory / "model.safetensors").write_bytes(b"ours")
    return directory


def test_a_users_file_under_a_name_training_writes_is_never_replaced(tmp_path: Path) -> None:
    from edgeresnet.placement import claim_directory

    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "model.safetensors").write_bytes(b"my weights")
    for overwrite in (False, True):
        with pytest.raises(PlacementError, match="model.safetensors that edgeresnet did not write.*even with"), \
                claim_directory(mine, overwrite=overwrite):
            pytest.fail("claimed a directory holding the user's weights")
    (mine / "card.json").write_text(json.dumps({"format": "someone-elses"}))  # a card, but not ours
    with pytest.raises(PlacementError, match="card.json, model.safetensors that edgeresnet did not write"), \
            claim_directory(mine, overwrite=True):
        pass
    assert snapshot(mine) == {"card.json": b'{"format": "someone-elses"}', "model.safetensors": b"my weights"}


def test_a_directory_that_is_not_a_checkpoint_needs_overwrite_and_keeps_its_files(tmp_path: Path) -> None:
    from edgeresnet.placement import check_claimable

    empty = tmp_path / "empty"
    empty.mkdir()
    check_claimable(empty)  # nothing in it to lose
    (tmp_path / "yours").mkdir()
    (tmp_path / "yours" / "notes.txt").write_text("mine")
    with pytest.raises(PlacementError, match="directory edgeresnet did not write .*notes.txt.*pass --overwrite"):
        check_claimable(tmp_path / "yours")
    check_claimable(tmp_path / "yours", overwrite=True)
    with pytest.raises(PlacementError, match="nothing to resume: .* is not a checkpoint"):
        check_claimable(tmp_path / "yours", resume=True)
    with pytest.raises(PlacementError, match="nothing to resume: .* does not exist"):
        check_claimable(tmp_path / "absent", resume=True)
    (tmp_path / "file").write_text("x")
    with pytest.raises(PlacementError, match="is a file, not a directory"):
        check_claimable(tmp_path / "file", overwrite=True)


def test_training_into_a_bundle_is_refused(tmp_path: Path) -> None:
    from edgeresnet.placement import check_claimable

    with place_outputs(tmp_path) as staging:
        fake_bundle(staging.path / "bundle")
    with pytest.raises(PlacementError, match="is a bundle, not a checkpoint directory"):
        check_claimable(tmp_path / "bundle", overwrite=True)


def test_a_claim_removes_a_killed_writes_temporaries_but_not_look_alikes(tmp_path: Path) -> None:
    from edgeresnet.placement import check_claimable, claim_directory

    checkpoint = _checkpoint(tmp_path / "ckpt")
    (checkpoint / ".train_state.pt.a1b2c3d4.tmp").write_bytes(b"half")
    (checkpoint / ".my-draft.txt").write_text("a hidden file of the user's")
    with claim_directory(checkpoint, resume=True):
        pass
    assert sorted(p.name for p in checkpoint.iterdir()) == [".my-draft.txt", "card.json", "model.safetensors"]
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    (fresh / ".model.safetensors.a1b2c3d4.tmp").write_bytes(b"half")  # the first epoch's write, killed
    check_claimable(fresh)  # a leftover is not the user's file: the directory counts as empty


def test_the_files_training_writes_are_checkpoint_files() -> None:
    from edgeresnet.checkpoint import CHECKPOINT_FILES as TOOL_FILES
    from edgeresnet.placement import CHECKPOINT_FILES

    # A checkpoint's own files are judged by this list: a file training writes outside it would look foreign.
    assert set(TOOL_FILES) <= CHECKPOINT_FILES


def test_a_staging_directory_in_use_by_another_run_is_left_alone(tmp_path: Path) -> None:
    root = tmp_path / "out"
    # A compile into out/x (its own lock) runs while an export into out starts: neither touches the other.
    with place_outputs(root, lock_name=".x.lock") as compile_staging:
        fake_bundle(compile_staging.path / "x")
        with place_outputs(root) as export_staging:
            fake_bundle(export_staging.path / "a")
        assert compile_staging.path.is_dir()
    assert (root / "x" / "manifest.json").is_file() and (root / "a" / "manifest.json").is_file()


def test_a_report_the_user_edited_is_not_replaced(tmp_path: Path) -> None:
    root = tmp_path / "out"
    with place_outputs(root) as staging:
        (staging.path / "summary.md").write_text("ours")
    (root / "summary.md").write_text("ours, with the user's notes")
    with pytest.raises(PlacementError, match="was edited since edgeresnet wrote it"), \
            place_outputs(root, overwrite=True, expect=["summary.md"]):
        pass
    assert (root / "summary.md").read_text() == "ours, with the user's notes"
