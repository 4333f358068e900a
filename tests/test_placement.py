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
    LEDGER_FILE,
    LOCK_FILE,
    check_replaceable,
    interrupted_publish,
    place_outputs,
    publish,
    read_ledger,
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


def published_bundle(root: Path, name: str = "a", payload: bytes = b"model") -> Path:
    with place_outputs(root, overwrite=True) as staging:
        fake_bundle(staging.path / name, payload)
    return root / name


def test_a_bundle_with_files_the_user_added_is_refused(tmp_path: Path) -> None:
    bundle = published_bundle(tmp_path / "out")
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


def interrupt_moves(monkeypatch: pytest.MonkeyPatch, after: int) -> None:
    """Make the publish stop (as a kill would) after ``after`` renames into place."""
    import edgeresnet.placement.publishing as publish_module

    moves = []
    real = publish_module.move_into_place

    def move(incoming: Path, target: Path, *, aside: Path) -> None:
        if len(moves) == after:
            raise KeyboardInterrupt("killed")
        moves.append(target)
        real(incoming, target, aside=aside)

    monkeypatch.setattr(publish_module, "move_into_place", move)


def test_a_publish_killed_between_moves_is_rolled_forward_and_readers_see_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "out"
    with place_outputs(root) as staging:
        fake_bundle(staging.path / "a", b"old-a")
        fake_bundle(staging.path / "b", b"old-b")
        (staging.path / "summary.md").write_text("old")
    with monkeypatch.context() as patch:
        interrupt_moves(patch, after=1)
        with pytest.raises(KeyboardInterrupt), place_outputs(root, overwrite=True) as staging:
            fake_bundle(staging.path / "a", b"new-a")
            fake_bundle(staging.path / "b", b"new-b")
            (staging.path / "summary.md").write_text("new")
    assert (root / "a" / "model.onnx").read_bytes() == b"new-a"  # moved before the "kill"
    assert (root / "b" / "model.onnx").read_bytes() == b"old-b"  # the old set's other entry, whole
    assert interrupted_publish(root / "b") is not None  # readers refuse the mixed set
    with place_outputs(root, overwrite=True):
        pass
    assert (root / "a" / "model.onnx").read_bytes() == b"new-a"
    assert (root / "b" / "model.onnx").read_bytes() == b"new-b"
    assert (root / "summary.md").read_text() == "new"
    assert interrupted_publish(root / "b") is None
    assert read_ledger(root).temporaries == {}
    assert sorted(p.name for p in root.iterdir()) == [LEDGER_FILE, "a", "b", "summary.md"]
    # The roll-forward recorded what it moved: a later --overwrite replaces it without a word.
    with place_outputs(root, overwrite=True, expect=["a", "b", "summary.md"]) as staging:
        fake_bundle(staging.path / "a", b"newer-a")
        (staging.path / "summary.md").write_text("newer")
    assert (root / "summary.md").read_text() == "newer"


LOOKALIKES = (".export-k2j4_x9a", ".onnxruntime-fp32.old", ".a.ab12cd34.partial", ".report.json.zz12yy34.tmp",
              ".edgeresnet-staging-abcd1234", ".edgeresnet-staging.0123abcd.tmp", ".notes.20241201.tmp",
              ".export-settings", ".model.safetensors.a1b2c3d4.tmp")


def test_names_that_look_like_the_tools_temporaries_are_never_removed(tmp_path: Path) -> None:
    root = tmp_path / "out"
    root.mkdir()
    for name in LOOKALIKES:  # half as directories (with a file inside), half as files
        if len(name) % 2:
            (root / name).mkdir()
            (root / name / "inside.txt").write_text("mine")
        else:
            (root / name).write_text("mine")
    before = snapshot(root)
    with place_outputs(root) as staging:
        fake_bundle(staging.path / "a")
    with place_outputs(root, overwrite=True, expect=["a"]) as staging:
        fake_bundle(staging.path / "a", b"again")
    after = snapshot(root)
    assert {k: v for k, v in after.items() if not k.startswith(("a/", LEDGER_FILE))} == before
    assert sorted({p.name for p in root.iterdir()} - set(LOOKALIKES)) == ["a"]


def test_a_killed_runs_recorded_temporary_is_removed_only_when_its_owner_is_gone(tmp_path: Path) -> None:
    from edgeresnet.placement.ledger import Owner, record_temporary

    root = tmp_path / "out"
    root.mkdir()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True)
    import socket

    gone = Owner(int(dead.stdout), socket.gethostname(), None, "r1")
    live = Owner(os.getppid(), socket.gethostname(), None, "r2")  # pytest's parent: alive
    for name, owner in ((".x.1.tmp", gone), (".y.2.tmp", live)):
        record_temporary(root, name, kind="file", scope="file:x", owner=owner)
        (root / name).write_text("half")
    record_temporary(root, ".z.3.tmp", kind="file", scope="file:other", owner=gone)  # another output's
    (root / ".z.3.tmp").write_text("half")
    with place_outputs(root, expect=["x"]):
        pass
    assert sorted(p.name for p in root.iterdir()) == [LEDGER_FILE, ".y.2.tmp", ".z.3.tmp"]


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


WRITES = ("card.json", "model.safetensors", "train_state.pt")  # what a run that rewrites in place writes


def claim(path: Path, **options: bool):  # a context manager
    from edgeresnet.placement import claim_directory

    def bundle_is_unsuitable(directory: Path) -> str | None:
        return f"{directory} is a bundle, not a checkpoint directory" if (directory / "manifest.json").exists() else None

    return claim_directory(path, writes=WRITES, unsuitable=bundle_is_unsuitable, **options)


def write_set(directory: Path, weights: bytes = b"w") -> None:
    from edgeresnet.placement import replace_files

    with replace_files(directory) as staged:
        (staged / "card.json").write_text(json.dumps({"format": "edgeresnet-checkpoint"}))
        (staged / "model.safetensors").write_bytes(weights)


def test_claim_directory_for_a_run_that_rewrites_in_place(tmp_path: Path) -> None:
    checkpoint = tmp_path / "runs" / "r20"
    with pytest.raises(RuntimeError), claim(checkpoint):
        raise RuntimeError("training failed before writing anything")
    assert not (tmp_path / "runs").exists()
    with claim(checkpoint) as directory:
        write_set(directory)
        write_set(directory, b"the next epoch")  # replaces the tool's own set
    with pytest.raises(PlacementError, match="pass --overwrite"), claim(checkpoint):
        pass
    with claim(checkpoint, resume=True), pytest.raises(PlacementError, match="another edgeresnet run"), \
            claim(checkpoint, overwrite=True):
        pass
    # A file of the user's beside a checkpoint is never touched by a run writing in place, so it blocks nothing.
    (checkpoint / "my-notes.txt").write_text("mine")
    with claim(checkpoint, resume=True) as directory:
        write_set(directory, b"a third epoch")
    assert (checkpoint / "my-notes.txt").read_text() == "mine"
    assert (checkpoint / "model.safetensors").read_bytes() == b"a third epoch"
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["r20"]  # the lock went with its run


def test_a_checkpoint_file_the_user_edited_is_not_replaced(tmp_path: Path) -> None:
    checkpoint = tmp_path / "ckpt"
    with claim(checkpoint) as directory:
        write_set(directory)
    (checkpoint / "model.safetensors").write_bytes(b"fine-tuned by hand")
    for options in ({"overwrite": True}, {"resume": True}):
        with pytest.raises(PlacementError, match="model.safetensors was edited since edgeresnet wrote it"), \
                claim(checkpoint, **options):
            pytest.fail("claimed a checkpoint the user edited")
    assert (checkpoint / "model.safetensors").read_bytes() == b"fine-tuned by hand"


def test_a_users_file_under_a_name_training_writes_is_never_replaced(tmp_path: Path) -> None:
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "model.safetensors").write_bytes(b"my weights")
    for overwrite in (False, True):
        with pytest.raises(PlacementError, match="model.safetensors that edgeresnet did not write.*even with"), \
                claim(mine, overwrite=overwrite):
            pytest.fail("claimed a directory holding the user's weights")
    (mine / "card.json").write_text(json.dumps({"format": "edgeresnet-checkpoint"}))  # a card: no proof
    with pytest.raises(PlacementError, match="card.json, model.safetensors that edgeresnet did not write"), \
            claim(mine, overwrite=True):
        pass
    assert snapshot(mine) == {"card.json": b'{"format": "edgeresnet-checkpoint"}', "model.safetensors": b"my weights"}


def test_a_directory_that_is_not_a_checkpoint_needs_overwrite_and_keeps_its_files(tmp_path: Path) -> None:
    from edgeresnet.placement import check_claimable

    empty = tmp_path / "empty"
    empty.mkdir()
    check_claimable(empty, writes=WRITES)  # nothing in it to lose
    (tmp_path / "yours").mkdir()
    (tmp_path / "yours" / "notes.txt").write_text("mine")
    with pytest.raises(PlacementError, match="directory edgeresnet did not write .*notes.txt.*pass --overwrite"):
        check_claimable(tmp_path / "yours", writes=WRITES)
    check_claimable(tmp_path / "yours", writes=WRITES, overwrite=True)
    with pytest.raises(PlacementError, match="nothing to resume: .* is not a checkpoint"):
        check_claimable(tmp_path / "yours", writes=WRITES, resume=True)
    with pytest.raises(PlacementError, match="nothing to resume: .* does not exist"):
        check_claimable(tmp_path / "absent", writes=WRITES, resume=True)
    (tmp_path / "file").write_text("x")
    with pytest.raises(PlacementError, match="is a file, not a directory"):
        check_claimable(tmp_path / "file", writes=WRITES, overwrite=True)


def test_training_into_a_bundle_is_refused(tmp_path: Path) -> None:
    published_bundle(tmp_path, "bundle")
    with pytest.raises(PlacementError, match="is a bundle, not a checkpoint directory"), \
            claim(tmp_path / "bundle", overwrite=True):
        pass


def test_a_claim_finishes_a_killed_set_and_keeps_look_alikes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from edgeresnet.placement import check_claimable

    checkpoint = tmp_path / "ckpt"
    with claim(checkpoint) as directory:
        write_set(directory, b"epoch 1")
    with monkeypatch.context() as patch, pytest.raises(KeyboardInterrupt), claim(checkpoint, resume=True) as directory:
        interrupt_moves(patch, after=1)  # killed after the card of epoch 2 moved in, before its weights
        write_set(directory, b"epoch 2")
    (checkpoint / ".train_state.pt.a1b2c3d4.tmp").write_bytes(b"a hidden file of the user's")
    check_claimable(checkpoint, writes=WRITES, resume=True)  # the half-moved set is the tool's, journaled
    with claim(checkpoint, resume=True):
        pass
    assert (checkpoint / "model.safetensors").read_bytes() == b"epoch 2"  # rolled forward
    assert sorted(p.name for p in checkpoint.iterdir()) == [
        ".edgeresnet-written.json", ".train_state.pt.a1b2c3d4.tmp", "card.json", "model.safetensors"]
    with claim(checkpoint, overwrite=True):  # and recorded: a later --overwrite takes it as the tool's
        pass


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


def test_a_live_runs_temporary_in_the_same_folder_is_never_removed(tmp_path: Path) -> None:
    """A predict writing its CSV into the folder where a compile lands: the compile leaves its temporary alone."""
    root = tmp_path / "out"
    root.mkdir()
    writer = subprocess.Popen(
        [sys.executable, "-c", (
            "import sys, time\nfrom pathlib import Path\nfrom edgeresnet.atomic import atomic_write_with\n"
            f"def slow(tmp):\n    tmp.write_text('rows'); print(tmp.name, flush=True); time.sleep(30)\n"
            f"atomic_write_with(Path({str(root / 'preds.csv')!r}), slow)")],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert writer.stdout is not None
        temporary = root / writer.stdout.readline().strip()
        assert temporary.is_file()
        for expect, lock in ((["ov"], ".ov.lock"), (["preds.csv"], LOCK_FILE)):
            with place_outputs(root, expect=expect, lock_name=lock) as staging:
                if expect == ["ov"]:
                    fake_bundle(staging.path / "ov")
            assert temporary.read_text() == "rows"  # the live writer's, untouched
    finally:
        writer.kill()
        writer.wait()
    # Its owner gone, the next write of that same file removes it (and nothing else does).
    from edgeresnet.atomic import atomic_write_text

    atomic_write_text(root / "preds.csv", "mine now")
    assert not temporary.exists() and sorted(p.name for p in root.iterdir()) == ["ov", "preds.csv"]


@pytest.mark.parametrize("kind", ["file", "link", "directory"])
def test_a_users_file_under_the_lock_name_is_refused_and_kept(tmp_path: Path, kind: str) -> None:
    root = tmp_path / "out"
    root.mkdir()
    (tmp_path / "elsewhere.txt").write_text("precious")
    lock = root / LOCK_FILE
    if kind == "file":
        lock.write_text("my own notes")
    elif kind == "link":
        lock.symlink_to(tmp_path / "elsewhere.txt")
    else:
        lock.mkdir()
    before = snapshot(tmp_path)
    with pytest.raises(PlacementError, match="is not a lock file edgeresnet made"), place_outputs(root):
        pass
    assert snapshot(tmp_path) == before and os.path.lexists(lock)


@pytest.mark.parametrize("shape", ["deep", "huge"])
def test_a_hostile_ledger_is_refused_in_one_line(tmp_path: Path, shape: str) -> None:
    # The ledger lives in the user's folder: too deep, or a valid ledger padded past the JSON size limit (read
    # whole before), is a one-line refusal, never a traceback or an unbounded read.
    from edgeresnet.placement.ledger import LEDGER_FILE, Ledger, read_ledger

    valid = json.dumps(Ledger().to_dict())
    content = "[" * 5000 + "]" * 5000 if shape == "deep" else valid + " " * (70 * 1024 * 1024)
    (tmp_path / LEDGER_FILE).write_text(content)
    with pytest.raises(PlacementError) as raised:
        read_ledger(tmp_path)
    assert "move it away" in str(raised.value) and "\n" not in str(raised.value)


def test_an_expected_entry_a_run_did_not_make_takes_the_earlier_runs_away(tmp_path: Path) -> None:
    # An --overwrite export whose INT8 bundle is refused this time must not leave last run's INT8 bundle
    # beside the new FP32 one, looking current.
    root = tmp_path / "out"
    names = ["fp32", "int8", "report.json"]
    with place_outputs(root, expect=names) as staging:
        fake_bundle(staging.path / "fp32", b"old")
        fake_bundle(staging.path / "int8", b"old")
        (staging.path / "report.json").write_text("old")
    with place_outputs(root, overwrite=True, expect=names) as staging:
        fake_bundle(staging.path / "fp32", b"new")
        (staging.path / "report.json").write_text("new")
    assert staging.withdrawn == [root / "int8"] and staging.left == []
    assert sorted(p.name for p in root.iterdir()) == [LEDGER_FILE, "fp32", "report.json"]
    assert not any(key == "int8" or key.startswith("int8/") for key in read_ledger(root).files)
    with place_outputs(root, overwrite=True, expect=["other"]) as staging:  # not expected: not touched
        (staging.path / "other").write_text("x")
    assert (root / "fp32").is_dir() and staging.withdrawn == []


def test_an_earlier_entry_the_user_changed_is_left_and_named(tmp_path: Path) -> None:
    root = tmp_path / "out"
    with place_outputs(root, expect=["fp32", "int8"]) as staging:
        fake_bundle(staging.path / "fp32")
        fake_bundle(staging.path / "int8")
    (root / "int8" / "model.onnx").write_bytes(b"edited by hand")
    with pytest.raises(PlacementError, match="was edited since"), place_outputs(root, overwrite=True,
                                                                                 expect=["fp32", "int8"]):
        raise AssertionError("refused before the work, as any entry the run may replace")
    (root / "int8" / "model.onnx").write_bytes(b"model")
    with place_outputs(root, overwrite=True, expect=["fp32", "int8"]) as staging:
        fake_bundle(staging.path / "fp32", b"new")
        (root / "int8" / "model.onnx").write_bytes(b"edited during the run")
        before = snapshot(root / "int8")
    assert staging.withdrawn == [] and staging.left == [root / "int8"]
    assert snapshot(root / "int8") == before


def test_a_withdrawal_a_kill_interrupted_is_finished_by_the_next_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "out"
    with place_outputs(root, expect=["a", "b", "int8"]) as staging:
        for name in ("a", "b", "int8"):
            fake_bundle(staging.path / name, b"old")
    with monkeypatch.context() as patch:
        interrupt_moves(patch, after=1)
        with pytest.raises(KeyboardInterrupt), place_outputs(root, overwrite=True, expect=["a", "b", "int8"]) as staging:
            fake_bundle(staging.path / "a", b"new")
            fake_bundle(staging.path / "b", b"new")
    assert (root / "int8").is_dir() and interrupted_publish(root / "b") is not None
    with place_outputs(root, overwrite=True):
        pass
    assert not (root / "int8").exists() and (root / "b" / "model.onnx").read_bytes() == b"new"
    assert read_ledger(root).temporaries == {}
