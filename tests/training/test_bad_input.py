"""Bad input to `train`: one clear line, exit code 2, and nothing the user had is lost."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from edgeresnet.cli import cli
from tests.training.conftest import write_folder, write_npz

QUICK = ["--epochs", "1", "--batch-size", "32", "--threads", "1", "--no-progress"]


def _train(*args: str) -> object:
    return CliRunner().invoke(cli, ["train", *args])


def _one_line_error(result: object, *needles: str) -> None:
    assert result.exit_code == 2, result.output
    assert result.output.startswith("error:") and result.output.count("\n") == 1, result.output
    assert "Traceback" not in result.output
    for needle in needles:
        assert needle in result.output, result.output


def _digests(directory: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(directory.iterdir()) if p.is_file()}


@pytest.fixture(scope="module")
def npz_run(tmp_path_factory, fmnist_arrays) -> tuple[Path, str]:
    """A finished one-epoch checkpoint trained on a 4-class .npz."""
    images, labels = fmnist_arrays
    keep = labels < 4
    root = tmp_path_factory.mktemp("npzrun")
    data = write_npz(root / "four.npz", images[keep], labels[keep], ["a", "b", "c", "d"])
    output = root / "run"
    result = _train("--data", data, "--output", str(output), *QUICK)
    assert result.exit_code == 0, result.output
    return output, data


def test_one_class_is_refused(tmp_path, fmnist_arrays) -> None:
    images, _ = fmnist_arrays
    data = write_npz(tmp_path / "one.npz", images[:50], np.zeros(50, dtype=np.int64), ["only"])
    _one_line_error(_train("--data", data, "--output", str(tmp_path / "out"), *QUICK), "at least 2")
    assert not (tmp_path / "out").exists()  # a failed run leaves no directory behind


def test_a_class_whose_images_are_all_undecodable_is_refused(tmp_path, fmnist_arrays) -> None:
    images, labels = fmnist_arrays
    root = write_folder(tmp_path / "folder", images[:60], labels[:60] % 3, ["cat", "dog", "eel"])
    for path in (root / "eel").iterdir():
        path.write_bytes(b"not a png at all")
    _one_line_error(_train("--data", str(root), "--output", str(tmp_path / "out"), *QUICK), "'eel'", "decoded")
    assert not (tmp_path / "out").exists()


def test_npz_labels_far_outside_the_classes_are_refused(tmp_path, fmnist_arrays) -> None:
    images, labels = fmnist_arrays
    stray = labels[:100].copy()
    stray[0] = 1_000_000
    data = write_npz(tmp_path / "stray.npz", images[:100], stray)
    _one_line_error(_train("--data", data, "--output", str(tmp_path / "out"), *QUICK), "1000000", "class_names")
    assert not (tmp_path / "out").exists()


def test_resume_with_other_data_classes_or_channels_is_refused(tmp_path, npz_run, fmnist_arrays) -> None:
    output, data = npz_run
    before = _digests(output)
    images, labels = fmnist_arrays
    keep = labels < 4
    other_images = write_npz(tmp_path / "other.npz", images[keep][::-1].copy(), labels[keep][::-1].copy(),
                             ["a", "b", "c", "d"])
    other_names = write_npz(tmp_path / "names.npz", images[keep], labels[keep], ["w", "x", "y", "z"])
    cases = [
        (["--data", other_images], "other images"),
        (["--data", other_names], "classes"),
        (["--data", data, "--in-chans", "3"], "input channels"),
    ]
    for extra, needle in cases:
        result = _train(*extra, "--output", str(output), "--resume", "--epochs", "2", "--batch-size", "32",
                        "--threads", "1", "--no-progress")
        _one_line_error(result, "cannot resume", needle)
        assert _digests(output) == before


def test_resume_past_the_last_epoch_says_so_without_claiming_to_resume(npz_run) -> None:
    output, data = npz_run
    before = _digests(output)
    result = _train("--data", data, "--output", str(output), "--resume", *QUICK)
    _one_line_error(result, "already finished 1 epochs")
    assert "resuming" not in result.output and _digests(output) == before


def test_weights_and_state_the_tool_did_not_write_are_not_overwritten(tmp_path, npz_run) -> None:
    _, data = npz_run
    output = tmp_path / "mine"
    output.mkdir()
    (output / "model.safetensors").write_bytes(b"my own weights")
    (output / "notes.txt").write_text("keep me")
    for flags in ((), ("--overwrite",)):  # --overwrite replaces only what edgeresnet wrote
        _one_line_error(_train("--data", data, "--output", str(output), *flags, *QUICK),
                        "model.safetensors that edgeresnet did not write", "even with --overwrite")
        assert sorted(p.name for p in output.iterdir()) == ["model.safetensors", "notes.txt"]
        assert (output / "model.safetensors").read_bytes() == b"my own weights"
    (output / "model.safetensors").rename(tmp_path / "moved-away.safetensors")
    _one_line_error(_train("--data", data, "--output", str(output), *QUICK), "did not write", "--overwrite")
    result = _train("--data", data, "--output", str(output), "--overwrite", *QUICK)
    assert result.exit_code == 0, result.output
    assert json.loads((output / "card.json").read_text())["metrics"]["epoch"] == 1
    assert (output / "notes.txt").read_text() == "keep me"  # written beside the user's file, never over it


def test_a_failed_run_keeps_an_existing_checkpoint_untouched(tmp_path, npz_run, fmnist_arrays) -> None:
    output, _ = npz_run
    before = _digests(output)
    images, _ = fmnist_arrays
    one_class = write_npz(tmp_path / "one.npz", images[:40], np.zeros(40, dtype=np.int64), ["only"])
    _one_line_error(_train("--data", one_class, "--output", str(output), "--overwrite", *QUICK), "at least 2")
    assert _digests(output) == before


def test_a_failed_run_removes_the_directories_it_created(tmp_path, fmnist_arrays) -> None:
    images, _ = fmnist_arrays
    data = write_npz(tmp_path / "one.npz", images[:40], np.zeros(40, dtype=np.int64), ["only"])
    _one_line_error(_train("--data", data, "--output", str(tmp_path / "runs" / "new" / "out"), *QUICK), "at least 2")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["one.npz"]  # no runs/new/out, nor a lock file


def test_a_second_run_into_a_checkpoint_being_written_is_refused(npz_run) -> None:
    from edgeresnet.placement import claim_directory

    output, data = npz_run
    before = _digests(output)
    with claim_directory(output, resume=True):  # the first run, still training
        result = _train("--data", data, "--output", str(output), "--overwrite", *QUICK)
    _one_line_error(result, "being written by another edgeresnet run")
    assert _digests(output) == before


def test_resume_removes_a_killed_writes_temporaries_and_keeps_the_users_files(tmp_path, npz_run) -> None:
    import shutil

    output, data = npz_run
    copy = Path(shutil.copytree(output, tmp_path / "run"))
    from edgeresnet.placement.ledger import Owner, record_temporary

    # Killed inside a write: its temporary, recorded in the ledger with its (now gone) owner before it existed.
    record_temporary(copy, ".model.safetensors.k1ll3d_x.tmp", kind="file", scope="file:model.safetensors",
                     owner=Owner(pid=2**22 + 1, host=__import__("socket").gethostname(), start=None, run="killed"))
    (copy / ".model.safetensors.k1ll3d_x.tmp").write_bytes(b"half a file")
    (copy / ".model.safetensors.n0tm1ne.tmp").write_bytes(b"a look-alike: not recorded, so the user's")
    (copy / "notes.txt").write_text("mine")
    result = _train("--data", data, "--output", str(copy), "--resume", *QUICK, "--epochs", "2")  # one more epoch
    assert result.exit_code == 0, result.output
    assert json.loads((copy / "card.json").read_text())["metrics"]["epoch"] == 2
    assert sorted(p.name for p in copy.iterdir()) == [".edgeresnet-written.json", ".model.safetensors.n0tm1ne.tmp",
                                                      "card.json", "model.safetensors", "notes.txt", "train_state.pt"]
    assert (copy / "notes.txt").read_text() == "mine"
