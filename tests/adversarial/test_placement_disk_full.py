"""A full disk during train, export and compile: one line, exit 2, the previous checkpoint or bundle intact.

A real small disk (a tmpfs, mounted as root; skipped where that is refused) is filled by a file beside the
output, leaving less room than the run needs; nothing of the previous run may change and no temporary may
stay behind.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.adversarial import placement_fixtures as fixtures
from tests.adversarial.placement_fixtures import (
    ONE_TARGET,
    TRAIN_QUICK,
    assert_one_line_refusal,
    fill,
    run,
    snapshot,
)

blobs, small_disk, weights = fixtures.blobs, fixtures.small_disk, fixtures.weights


def test_train_on_a_full_disk_keeps_the_previous_checkpoint(small_disk: Path, blobs: Path) -> None:
    output = small_disk / "run"
    first = run("train", "--data", blobs, "--output", output, *TRAIN_QUICK)
    assert first.exit_code == 0, first.output
    before = snapshot(output)
    fill(small_disk, leave=200_000)  # room for a ledger, not for a checkpoint
    result = run("train", "--data", blobs, "--output", output, *TRAIN_QUICK, "--epochs", "2", "--resume")
    assert_one_line_refusal(result, "no space left on device")
    assert snapshot(output) == before
    (small_disk / "filler.bin").unlink()
    again = run("train", "--data", blobs, "--output", output, *TRAIN_QUICK, "--epochs", "2", "--resume")
    assert again.exit_code == 0, again.output  # nothing the failed run left stands in the way


def test_export_on_a_full_disk_keeps_the_previous_bundles(small_disk: Path, weights: Path) -> None:
    output = small_disk / "out"
    first = run("export", "resnet20", "--weights", weights, "--output", output, *ONE_TARGET)
    assert first.exit_code == 0, first.output
    before = snapshot(output)
    fill(small_disk, leave=300_000)
    result = run("export", "resnet20", "--weights", weights, "--output", output, *ONE_TARGET, "--overwrite")
    assert_one_line_refusal(result, "no space left on device")
    assert snapshot(output) == before
    assert sorted(p.name for p in small_disk.iterdir()) == ["filler.bin", "out"]


def test_compile_on_a_full_disk_keeps_the_previous_bundle(small_disk: Path, weights: Path, tmp_path: Path) -> None:
    pytest.importorskip("openvino")
    source = tmp_path / "exported"
    assert run("export", "resnet20", "--weights", weights, "--output", source, *ONE_TARGET).exit_code == 0
    output = small_disk / "ov"
    command = ["compile", source / "onnxruntime-fp32", "--target", "openvino", "--precision", "fp16",
               "--output", output]
    first = run(*command)
    assert first.exit_code == 0, first.output
    before = snapshot(output)
    fill(small_disk, leave=150_000)
    result = run(*command, "--overwrite")
    assert_one_line_refusal(result, "no space left on device")
    assert snapshot(output) == before
    assert sorted(p.name for p in small_disk.iterdir()) == ["filler.bin", "ov"]


def test_a_writer_that_hides_a_full_disk_in_its_own_error_is_reported_as_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """safetensors and torch.save raise their own error types on ENOSPC: the write layer names it."""
    import shutil as shutil_module

    from edgeresnet.atomic import atomic_write_with

    (tmp_path / "w.bin").write_bytes(b"previous")

    def writer(path: Path) -> None:
        path.write_bytes(b"half")
        raise RuntimeError("PytorchStreamWriter failed writing file data/0: file write failed")

    usage = shutil_module.disk_usage(tmp_path)
    monkeypatch.setattr("edgeresnet.placement.durable.shutil.disk_usage",
                        lambda _: usage._replace(free=4096))
    with pytest.raises(OSError, match="No space left on device"):
        atomic_write_with(tmp_path / "w.bin", writer)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["w.bin"]
    assert (tmp_path / "w.bin").read_bytes() == b"previous"
