"""`edgeresnet pipeline` end to end on a tiny subset: every stage runs and the report is complete."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from edgeresnet.cli import cli


def snapshot(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_pipeline_end_to_end_on_a_tiny_subset(tmp_path: Path, fashion_mnist: str) -> None:
    output = tmp_path / "pipeline"
    command = [
        "pipeline", "--model", "resnet20", "--data", fashion_mnist, "--output", str(output), "--epochs", "1",
        "--train-limit", "600", "--eval-limit", "200", "--calib-size", "64", "--batch-sizes", "1,4",
        "--min-time", "0.05", "--target", "onnxruntime", "--target", "openvino", "--max-accuracy-drop", "5",
    ]
    result = CliRunner().invoke(cli, command)
    assert result.exit_code == 0, result.output
    # The terminal ends with the table and one recommendation per batch size, not only a file name.
    assert "edgeresnet benchmark" in result.stdout and "openvino-int8" in result.stdout
    recommended = [line for line in result.stdout.splitlines() if line.startswith("recommended for latency at batch")]
    assert [line.split(":")[0] for line in recommended] == ["recommended for latency at batch 1",
                                                           "recommended for latency at batch 4"]
    # Re-running into the same output replaces nothing without --overwrite: not even the checkpoint.
    before = snapshot(output)
    again = CliRunner().invoke(cli, command)
    assert again.exit_code == 2 and again.stderr.count("\n") == 1, again.output
    assert "already exists: pass --overwrite" in again.stderr and "summary.md" in again.stderr
    assert snapshot(output) == before
    summary = (output / "summary.md").read_text()
    assert "Recommended artifact" in summary and "| export |" in summary
    assert "- batch 1: " in summary and "- batch 4: " in summary
    for name in ("onnxruntime-fp32", "onnxruntime-int8", "openvino-fp32", "openvino-int8", "openvino-fp16"):
        assert (output / "bundles" / name / "manifest.json").is_file(), name
        assert name in summary
    record = json.loads((output / "benchmark" / "benchmark.json").read_text())
    backends = {row["backend"] for row in record["rows"]}
    assert {"pytorch", "onnxruntime", "openvino"} <= backends
    assert all(row["error"] is None for row in record["rows"])
    assert (output / "benchmark" / "accuracy_latency.png").read_bytes()[:4] == b"\x89PNG"
    assert (output / "checkpoint" / "card.json").is_file()
