"""Benchmark reports: the accuracy-budget pick, the Pareto front, and every file format."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from rich.console import Console

from edgeresnet.bench import BenchmarkResult, BenchmarkRow
from edgeresnet.report import (
    BEST_MARK,
    best_within_budget,
    pareto_front,
    print_table,
    read_report,
    render_csv,
    render_markdown,
    write_reports,
)

ENVIRONMENT = {
    "platform": "Linux-test",
    "cpu": {"model": "Test CPU 9000", "machine": "x86_64", "logical_cores": 2, "usable_cores": 2,
            "flags": ["avx512_vnni"]},
    "versions": {"python": "3.11.7", "onnxruntime": "1.31.1", "openvino": "2026.4.1"},
    "threads": 2,
    "device": "cpu",
    "gpu": None,
    "data": "fashion-mnist",
    "eval_images": 100,
    "measurement": {"warmup": 10, "min_runs": 50, "min_time_s": 2.0, "max_time_s": 60.0, "peak_memory": "VmHWM"},
}


def _row(artifact: str, batch: int, p50: float | None, top1: float | None, **fields: object) -> BenchmarkRow:
    return BenchmarkRow(artifact=artifact, path=f"/runs/{artifact}", backend=fields.pop("backend", "onnxruntime"),
                        device="cpu", precision=fields.pop("precision", "int8"), batch_size=batch, threads=2,
                        latency_p50_ms=p50, latency_mean_ms=p50, latency_p90_ms=p50, latency_p99_ms=p50,
                        throughput_ips=None if p50 is None else batch * 1000 / p50, top1=top1, top5=top1,
                        file_size_bytes=1_000_000, peak_memory_bytes=50 * 2**20, **fields)


def synthetic_result() -> BenchmarkResult:
    rows = []
    for batch, scale in ((1, 1.0), (8, 6.0)):
        rows += [
            _row("pytorch", batch, 65.0 * scale, 91.0, backend="pytorch", precision="fp32", reference=True,
                 agreement_pct=100.0, eval_images=100),
            _row("ort-fp32", batch, 42.0 * scale, 91.0, precision="fp32", agreement_pct=100.0, drop_points=0.0,
                 drop_ci95_points=(-1.2, 1.2), eval_images=100),
            _row("ort-int8", batch, 12.6 * scale, 90.0, agreement_pct=98.0, drop_points=1.0,  # exactly 1.0 lost
                 drop_ci95_points=(0.2, 2.5), eval_images=100),
            _row("ov-int8-greedy", batch, 9.5 * scale, 88.0, backend="openvino", agreement_pct=95.0, drop_points=3.0,
                 drop_ci95_points=(1.5, 5.0), eval_images=100),
            _row("trt", batch, None, None, backend="tensorrt", error="TensorRT is not installed | here"),
        ]
    return BenchmarkResult(rows=rows, environment=dict(ENVIRONMENT))


def test_fastest_within_budget_per_batch_size() -> None:
    result = synthetic_result()
    best = best_within_budget(result, max_accuracy_drop=1.0)
    # ov-int8-greedy is fastest but loses 3 points; ort-int8 loses exactly the budget and qualifies.
    assert {batch: row.artifact for batch, row in best.items()} == {1: "ort-int8", 8: "ort-int8"}
    loose = best_within_budget(result, max_accuracy_drop=5.0)
    assert {row.artifact for row in loose.values()} == {"ov-int8-greedy"}
    strict = best_within_budget(result, max_accuracy_drop=0.0)
    assert {row.artifact for row in strict.values()} == {"ort-fp32"}


def test_without_a_reference_the_fastest_measured_row_wins() -> None:
    result = synthetic_result()
    for row in result.rows:
        row.reference = False
    assert best_within_budget(result)[1].artifact == "ov-int8-greedy"


def test_pareto_front() -> None:
    points = [(10.0, 0.90), (5.0, 0.80), (20.0, 0.95), (12.0, 0.85), (5.0, 0.80), (30.0, 0.94)]
    # (12, 0.85) is beaten by (10, 0.90); (30, 0.94) by (20, 0.95); the duplicate (5, 0.80) is dropped.
    assert pareto_front(points) == [1, 0, 2]
    assert pareto_front([]) == []


def test_markdown_has_environment_rows_and_errors() -> None:
    text = render_markdown(synthetic_result())
    assert "Test CPU 9000" in text and "avx512_vnni" in text and "tensorrt not installed" in text
    assert "- **GPU:** none detected" in text
    table = [line for line in text.splitlines() if line.startswith("| ")]
    assert len(table) == 1 + 1 + 10  # header, alignment, one line per row
    assert sum(BEST_MARK in line for line in table) == 2
    assert "## Errors" in text and "- trt (batch 8): TensorRT is not installed | here" in text


def test_accuracies_are_percent_and_drops_are_points() -> None:
    text = render_markdown(synthetic_result())
    line = next(line for line in text.splitlines() if line.startswith("| ★ | ort-int8 "))
    cells = [cell.strip() for cell in line.strip("|").split("|")]
    top1, drop, agree = cells[9:12]
    assert (top1, drop, agree) == ("90.00", "+1.00 (+0.20 to +2.50)", "98.00")
    assert "FP32 reference pytorch (91.00% on 100 images)" in text


def test_gpus_are_named_with_their_driver() -> None:
    from edgeresnet.environment import GpuInfo

    gpu = GpuInfo("NVIDIA H100 80GB HBM3", "9.0", "nvidia-smi", memory_mib=81559, driver_version="550.54.15")
    result = synthetic_result()
    result.environment["gpu"] = [gpu.to_dict()]
    assert "- **GPU:** NVIDIA H100 80GB HBM3 (sm 9.0, 81559 MiB, driver 550.54.15)" in render_markdown(result)
    assert next(csv.DictReader(io.StringIO(render_csv(result))))["env_gpu"].startswith("NVIDIA H100")


def test_version_1_reports_are_read_in_percent(tmp_path: Path) -> None:
    old = _row("ort-int8", 1, 12.6, None).to_dict()
    old.pop("agreement_pct")
    old.update(top1=0.9, top5=0.99, agreement_top1=0.98)
    path = tmp_path / "benchmark.json"
    path.write_text(json.dumps({"format": "edgeresnet-benchmark", "format_version": 1, "rows": [old]}))
    row = read_report(path).rows[0]
    assert (row.top1, row.top5, row.agreement_pct) == pytest.approx((90.0, 99.0, 98.0))


def test_csv_parses_back_with_every_row_and_the_environment() -> None:
    result = synthetic_result()
    rows = list(csv.DictReader(io.StringIO(render_csv(result))))
    assert len(rows) == len(result.rows)
    first = rows[0]
    assert first["artifact"] == "pytorch" and float(first["latency_p50_ms"]) == 65.0
    assert first["env_cpu"] == "Test CPU 9000" and first["env_onnxruntime"] == "1.31.1"
    assert rows[4]["error"].startswith("TensorRT") and rows[4]["latency_p50_ms"] == ""


def test_write_reports_writes_four_parseable_files(tmp_path: Path) -> None:
    result = synthetic_result()
    files = write_reports(result, tmp_path / "out", max_accuracy_drop=1.0)
    assert {path.name for path in files.values()} == {"benchmark.md", "benchmark.csv", "benchmark.json",
                                                        "accuracy_latency.png"}
    record = json.loads(files["json"].read_text())
    assert record["best_within_budget"] == {"1": "ort-int8", "8": "ort-int8"}
    assert record["environment"]["cpu"]["model"] == "Test CPU 9000"
    assert read_report(files["json"]) == result  # rows and environment round-trip
    assert files["plot"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list((tmp_path / "out").glob(".*"))  # no temporary files left behind


def test_plot_of_a_run_with_only_errors(tmp_path: Path) -> None:
    result = BenchmarkResult(rows=[_row("trt", 1, None, None, error="no GPU")], environment=dict(ENVIRONMENT))
    path = write_reports(result, tmp_path)["plot"]
    assert path.read_bytes()[:4] == b"\x89PNG"


def test_terminal_table_marks_the_best_and_lists_errors() -> None:
    console = Console(record=True, width=200)
    print_table(synthetic_result(), console=console)
    text = console.export_text()
    assert "pytorch (ref)" in text and "Test CPU 9000" in text
    assert text.count(BEST_MARK) >= 3  # two rows and the caption
    assert "error trt (batch 1): TensorRT is not installed" in text


def test_read_report_rejects_other_json(tmp_path: Path) -> None:
    from edgeresnet.errors import EdgeResNetError

    path = tmp_path / "x.json"
    path.write_text(json.dumps({"rows": []}))
    with pytest.raises(EdgeResNetError, match="not an edgeresnet benchmark report"):
        read_report(path)


def _crowded_result() -> BenchmarkResult:
    """Six artifacts of almost equal accuracy and latency: their labels would sit on top of each other."""
    rows = [_row("fp32-reference", 1, 10.0, 91.0, precision="fp32", reference=True, eval_images=500)]
    for k in range(6):
        rows.append(_row(f"int8-variant-{k}", 1, 5.0 + 0.02 * k, 90.8 + 0.01 * k, drop_points=0.2 - 0.01 * k,
                         drop_ci95_points=(-0.3, 0.7), eval_images=500))
        rows.append(_row(f"int8-variant-{k}", 8, 8 * (4.0 + 0.02 * k), 90.8 + 0.01 * k, drop_points=0.2 - 0.01 * k,
                         drop_ci95_points=(-0.3, 0.7), eval_images=500))
    return BenchmarkResult(rows=rows, environment=dict(ENVIRONMENT))


def test_plot_labels_never_overlap_and_latency_is_per_image() -> None:
    from edgeresnet.report import draw_accuracy_latency, text_extent

    figure, labels = draw_accuracy_latency(_crowded_result())
    renderer = figure.canvas.get_renderer()
    boxes = [text_extent(label, renderer) for label in labels]
    assert len(boxes) == 13
    overlapping = [(a, b) for a in range(len(boxes)) for b in range(a + 1, len(boxes)) if boxes[a].overlaps(boxes[b])]
    assert overlapping == []
    # Batch 8 at 32 ms per call is 4 ms per image: left of batch 1's 5 ms, as it should be.
    xs = {label.get_text().removeprefix(f"{BEST_MARK} "): label.xy[0] for label in labels}
    assert xs["int8-variant-0 (b8)"] == pytest.approx(4.0) and xs["int8-variant-0 (b1)"] == pytest.approx(5.0)


def test_plot_draws_each_front_and_the_int8_intervals() -> None:
    from edgeresnet.report import draw_accuracy_latency

    figure, _ = draw_accuracy_latency(synthetic_result())
    axes = figure.axes[0]
    fronts = {line.get_label(): list(line.get_xdata()) for line in axes.get_lines()
              if line.get_label().startswith("Pareto front")}
    # Batch 1 per-image: ov 9.5 (88%), ort-int8 12.6 (90%), ort-fp32 42 (91%); pytorch (65 ms, 91%) is dominated.
    assert fronts["Pareto front, batch 1"] == pytest.approx([9.5, 12.6, 42.0])
    assert fronts["Pareto front, batch 8"] == pytest.approx([9.5 * 6 / 8, 12.6 * 6 / 8, 42.0 * 6 / 8])
    bars = [c for c in axes.containers if type(c).__name__ == "ErrorbarContainer"]
    assert len(bars) == 6  # ort-fp32, ort-int8, ov-int8 at two batch sizes; never the reference
    segment = bars[1].lines[2][0].get_segments()[0]  # ort-int8, batch 1: 90 - (2.5 - 1.0) to 90 + (1.0 - 0.2)
    assert [point[1] for point in segment] == pytest.approx([88.5, 90.8])


def test_file_rows_get_their_own_table_and_never_win_the_budget() -> None:
    result = synthetic_result()
    result.rows.append(_row("ort-int8", 1, 1.0, 90.0, measure="file->label", decode_ms=0.4, preprocess_ms=0.2,
                            inference_ms=0.4, input_images=12, drop_points=1.0, drop_ci95_points=(0.2, 2.5)))
    assert best_within_budget(result)[1].artifact == "ort-int8"
    assert best_within_budget(result)[1].measure == "model"
    text = render_markdown(result)
    line = next(line for line in text.split("## File → label")[1].splitlines() if line.startswith("| ort-int8"))
    cells = [cell.strip() for cell in line.strip("|").split("|")]
    assert cells[4:8] == ["1.00", "1.00", "0.08", "0.40"]  # p50, per image, × model p50 (1 / 12.6), decode
