"""The reliability sweep's findings (issue 12), each reproduced through the command a user ran.

Every refusal must be exit code 2 with one line naming the problem, and leave the user's files
byte-identical. The model is a resnet20 weights file exported FP32 without data (a few seconds).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from edgeresnet.cli import cli
from tests.adversarial import placement_fixtures

ONE_TARGET = ["--target", "onnxruntime"]
weights = placement_fixtures.weights  # the one random-init ResNet-20 weights file of the suites


def snapshot(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, [str(a) for a in args])


def assert_one_line_refusal(result: Result, *needles: str) -> None:
    assert result.exit_code == 2, result.output
    # Progress lines ("· ...") may come first; the failure is one line, the last.
    lines = [line for line in result.stderr.strip().splitlines() if not line.startswith("· ")]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.output and "[Errno" not in result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


@pytest.fixture(scope="module")
def exported(weights: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    output = tmp_path_factory.mktemp("export") / "out"
    result = run("export", "resnet20", "--weights", weights, "--output", output, *ONE_TARGET)
    assert result.exit_code == 0, result.output
    return output


def test_an_fp32_export_of_a_weights_file_needs_no_data_and_says_accuracy_was_not_measured(
    exported: Path, weights: Path
) -> None:
    from edgeresnet.bundle import read_manifest, sha256_file
    from edgeresnet.verify import verify_bundle

    manifest = read_manifest(exported / "onnxruntime-fp32")
    assert manifest.accuracy is not None and manifest.accuracy.measured is False
    assert "not measured" in (manifest.accuracy.note or "")
    assert manifest.parity[0].inputs.startswith("generated") and manifest.parity[0].top1_agreement_pct == 100.0
    assert manifest.provenance.weights == str(weights.resolve())
    assert manifest.provenance.weights_sha256 == sha256_file(weights)
    assert verify_bundle(exported / "onnxruntime-fp32").passed


def test_export_never_replaces_a_users_directory_named_like_a_bundle(weights: Path, tmp_path: Path) -> None:
    output = tmp_path / "out"
    (output / "onnxruntime-fp32").mkdir(parents=True)
    (output / "onnxruntime-fp32" / "thesis.tex").write_text("three years of work")
    before = snapshot(output)
    for extra in ([], ["--overwrite"]):
        result = run("export", "resnet20", "--weights", weights, "--output", output, *ONE_TARGET, *extra)
        assert_one_line_refusal(result, "onnxruntime-fp32", "edgeresnet did not write")
        assert snapshot(output) == before


def test_a_file_in_the_way_of_a_bundle_is_neither_replaced_nor_renamed(weights: Path, tmp_path: Path) -> None:
    output = tmp_path / "out"
    output.mkdir()
    (output / "onnxruntime-fp32").write_text("my notes")
    result = run("export", "resnet20", "--weights", weights, "--output", output, *ONE_TARGET, "--overwrite")
    assert_one_line_refusal(result, "is a file edgeresnet did not write")
    assert sorted(p.name for p in output.iterdir()) == ["onnxruntime-fp32"]  # no hidden .onnxruntime-fp32.old


def test_a_second_export_needs_overwrite_and_then_replaces_only_its_own(exported: Path, weights: Path) -> None:
    before = snapshot(exported)
    result = run("export", "resnet20", "--weights", weights, "--output", exported, *ONE_TARGET)
    assert_one_line_refusal(result, "already exists: pass --overwrite")
    assert snapshot(exported) == before
    (exported / "notes.txt").write_text("the user's, beside the bundles")
    result = run("export", "resnet20", "--weights", weights, "--output", exported, *ONE_TARGET, "--overwrite")
    assert result.exit_code == 0, result.output
    assert (exported / "notes.txt").read_text() == "the user's, beside the bundles"


def test_a_bundle_the_user_added_files_to_is_not_replaced(exported: Path, weights: Path) -> None:
    added = exported / "onnxruntime-fp32" / "my-labels.txt"
    added.write_text("hand-written labels")
    try:
        before = snapshot(exported)
        result = run("export", "resnet20", "--weights", weights, "--output", exported, *ONE_TARGET, "--overwrite")
        assert_one_line_refusal(result, "holds files edgeresnet did not write (my-labels.txt)")
        assert snapshot(exported) == before
    finally:
        added.unlink()


def test_a_second_export_into_an_output_being_written_is_refused(weights: Path, tmp_path: Path) -> None:
    output = tmp_path / "busy"
    holder = subprocess.Popen(
        [sys.executable, "-c", ("import time\nfrom edgeresnet.placement import place_outputs\n"
                                f"with place_outputs({str(output)!r}):\n    print('locked', flush=True)\n"
                                "    time.sleep(60)")],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        result = run("export", "resnet20", "--weights", weights, "--output", output, *ONE_TARGET)
        assert_one_line_refusal(result, "being written by another edgeresnet run")
    finally:
        holder.kill()
        holder.wait()


def test_a_set_left_half_moved_by_a_kill_is_refused_by_readers(exported: Path, tmp_path: Path) -> None:
    import shutil

    from edgeresnet.placement import JOURNAL_FILE
    from edgeresnet.placement.ledger import Owner, record_temporary

    output = Path(shutil.copytree(exported, tmp_path / "killed"))
    # What a run killed between its moves leaves: a recorded staging directory holding its journal.
    record_temporary(output, ".edgeresnet-staging.abcd1234.tmp", kind="staging", scope=".edgeresnet.lock",
                     owner=Owner(pid=2**22 + 1, host=__import__("socket").gethostname(), start=None, run="killed"))
    staging = output / ".edgeresnet-staging.abcd1234.tmp"
    (staging / "new").mkdir(parents=True)
    (staging / JOURNAL_FILE).write_text(json.dumps({"entries": ["onnxruntime-fp32", "export_report.json"]}))
    from PIL import Image

    image = tmp_path / "image.png"
    Image.new("L", (28, 28), 128).save(image)
    for command in (["verify", output / "onnxruntime-fp32"], ["predict", output / "onnxruntime-fp32", image]):
        assert_one_line_refusal(run(*command), "interrupted while moving its results into place")


def test_a_missing_checkpoint_path_is_not_an_unknown_model(tmp_path: Path) -> None:
    result = run("export", tmp_path / "runs" / "r20", "--output", tmp_path / "out")
    assert_one_line_refusal(result, "checkpoint directory not found")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("content", ["[1, 2]", '"card"', "3", "null"])
def test_a_card_that_is_json_but_not_an_object_is_one_line(tmp_path: Path, content: str) -> None:
    checkpoint = tmp_path / "ckpt"
    checkpoint.mkdir()
    (checkpoint / "card.json").write_text(content)
    before = snapshot(tmp_path)
    assert_one_line_refusal(run("export", checkpoint, "--output", tmp_path / "out"), "card.json")
    assert snapshot(tmp_path) == before


def test_os_errors_are_words_not_errno(weights: Path, tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a directory")
    result = run("export", "resnet20", "--weights", weights, "--output", tmp_path / "file" / "out", *ONE_TARGET)
    assert_one_line_refusal(result, "is a file, not a directory")
    assert (tmp_path / "file").read_text() == "not a directory"


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        (lambda r: r["labels"].append("extra-class"), "11 labels"),
        (lambda r: r.update(labels=r["labels"][:3]), "3 labels"),
    ],
)
def test_verify_fails_a_resigned_manifest_whose_labels_contradict_the_model(
    exported: Path, tmp_path: Path, change: object, needle: str
) -> None:
    import shutil

    from tests.runtime.tiny_bundle import rewrite_manifest

    bundle = Path(shutil.copytree(exported / "onnxruntime-fp32", tmp_path / "b"))
    rewrite_manifest(bundle, change)
    assert_one_line_refusal(run("verify", bundle), "verify failed", needle)


def test_an_absurd_input_size_is_refused_before_any_image_is_resized(exported: Path, tmp_path: Path) -> None:
    import shutil

    from tests.runtime.tiny_bundle import rewrite_manifest

    bundle = Path(shutil.copytree(exported / "onnxruntime-fp32", tmp_path / "b"))

    def huge(record: dict) -> None:
        record["preprocessing"]["input_size"] = [100000, 100000]
        record["preprocessing"]["resize_to"] = None
        record["input"]["shape"][2:] = [100000, 100000]

    rewrite_manifest(bundle, huge)
    image = tmp_path / "x.png"
    from PIL import Image

    Image.new("RGB", (40, 30), (200, 10, 10)).save(image)
    for command in (["verify", bundle], ["predict", bundle, image]):
        assert_one_line_refusal(run(*command), "100000×100000")


def test_verify_fails_a_resigned_input_size_that_contradicts_the_model(exported: Path, tmp_path: Path) -> None:
    import shutil

    from tests.runtime.tiny_bundle import rewrite_manifest

    bundle = Path(shutil.copytree(exported / "onnxruntime-fp32", tmp_path / "b"))

    def smaller(record: dict) -> None:
        record["preprocessing"]["input_size"] = [24, 24]
        record["preprocessing"]["resize_to"] = None
        record["input"]["shape"][2:] = [24, 24]

    rewrite_manifest(bundle, smaller)
    assert_one_line_refusal(run("verify", bundle), "takes 3×32×32 inputs but the manifest says 3×24×24")


BENCH_FAST = ["--data", "fashion-mnist", "--eval-limit", "20", "--batch-sizes", "1", "--warmup", "0",
              "--min-time", "0", "--min-runs", "2", "--threads", "1"]


def test_benchmark_shows_the_pytorch_row_of_a_bundle_exported_from_a_weights_file(exported: Path) -> None:
    from edgeresnet.bundle import read_manifest, sha256_file

    manifest = read_manifest(exported / "onnxruntime-fp32")
    checkpoint = exported / "pytorch-fp32"
    assert manifest.provenance.checkpoint == str(checkpoint.absolute())
    assert manifest.provenance.checkpoint_sha256 == sha256_file(checkpoint / "model.safetensors")
    report = exported / "bench"
    result = run("benchmark", exported / "onnxruntime-fp32", *BENCH_FAST, "--report", report)
    assert result.exit_code == 0, result.output
    rows = json.loads((report / "benchmark.json").read_text())["rows"]
    pytorch = [row for row in rows if row["backend"] == "pytorch"]
    assert pytorch and all(row["error"] is None for row in pytorch)
    # A second run into the same --report refuses before measuring anything.
    before = snapshot(report)
    again = run("benchmark", exported / "onnxruntime-fp32", *BENCH_FAST, "--report", report)
    assert_one_line_refusal(again, "already exists: pass --overwrite")
    assert snapshot(report) == before


def test_benchmark_fails_when_every_artifact_given_failed(exported: Path, tmp_path: Path) -> None:
    import shutil

    bundle = Path(shutil.copytree(exported / "onnxruntime-fp32", tmp_path / "broken"))
    (bundle / "model.onnx").write_bytes(b"not an onnx model")
    result = run("benchmark", bundle, *BENCH_FAST, "--checkpoint", exported / "pytorch-fp32")
    assert result.exit_code == 2, result.output
    assert result.stderr.strip().splitlines()[-1].startswith("error: every artifact given failed")


def test_weights_of_another_architecture_get_no_hint_that_fails_too(weights: Path, tmp_path: Path) -> None:
    # resnet20 weights given to resnet32 with another head: suggesting `train --weights` would fail too.
    result = run("export", "resnet32", "--weights", weights, "--num-classes", "5", "--output", tmp_path / "o",
                 *ONE_TARGET)
    assert_one_line_refusal(result, "do not fit resnet32")
    assert "edgeresnet train" not in result.stderr
    fits = run("export", "resnet20", "--weights", weights, "--num-classes", "5", "--output", tmp_path / "o",
               *ONE_TARGET)
    assert_one_line_refusal(fits, "fine-tune first (edgeresnet train --model resnet20")


def test_a_calibration_table_run_does_not_ask_about_a_calib_size_never_passed(
    weights: Path, tmp_path: Path
) -> None:
    import numpy as np

    from tests.runtime.tiny_bundle import blob_images

    images, labels = blob_images(300, seed=3)  # 30 calibration images: fewer than the default 512
    data = tmp_path / "blobs.npz"
    np.savez(data, images=images, labels=labels)
    first = run("export", "resnet20", "--weights", weights, "--int8", "--data", data, "--calib-size", "16",
                "--calib-method", "minmax", "--max-accuracy-drop", "100", "--output", tmp_path / "a", *ONE_TARGET)
    assert first.exit_code == 0, first.output
    table = tmp_path / "a" / "onnxruntime-int8" / "calibration.json"
    again = run("export", "resnet20", "--weights", weights, "--int8", "--data", data, "--calib-table", table,
                "--max-accuracy-drop", "100", "--output", tmp_path / "b", *ONE_TARGET)
    assert again.exit_code == 0, again.output
    assert "--calib-size" not in again.output


def test_a_full_disk_is_one_line_and_leaves_no_directories(
    weights: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import errno
    import os
    import shutil

    import edgeresnet.bundle.files

    def full(source: object, target: object) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(target))

    monkeypatch.setattr(edgeresnet.bundle.files, "shutil", type("S", (), {"copyfile": staticmethod(full),
                                                                          "rmtree": shutil.rmtree}))
    result = run("export", "resnet20", "--weights", weights, "--output", tmp_path / "runs" / "out", *ONE_TARGET)
    assert_one_line_refusal(result, "no space left on device")
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_a_compiled_bundle_keeps_the_link_to_its_source(exported: Path, tmp_path: Path) -> None:
    pytest.importorskip("openvino")
    from edgeresnet.bundle import read_manifest, sha256_file

    source = exported / "onnxruntime-fp32"
    result = run("compile", source, "--target", "openvino", "--precision", "fp16", "--output", tmp_path / "ov")
    assert result.exit_code == 0, result.output
    parent, compiled = read_manifest(source).provenance, read_manifest(tmp_path / "ov").provenance
    assert (compiled.checkpoint, compiled.checkpoint_sha256) == (parent.checkpoint, parent.checkpoint_sha256)
    assert (compiled.weights, compiled.weights_sha256) == (parent.weights, parent.weights_sha256)
    assert compiled.parent_manifest_sha256 == sha256_file(source / "manifest.json")
    assert compiled.parent_bundle == str(source.resolve()) and compiled.parent_precision == "fp32"
