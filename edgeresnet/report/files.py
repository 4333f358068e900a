"""The report files: CSV, JSON (and reading it back), and writing all four together."""

from __future__ import annotations

import csv
import io
import logging
from pathlib import Path
from typing import Any

from edgeresnet.atomic import atomic_write_json, atomic_write_text
from edgeresnet.bench.job import DEFAULT_MAX_ACCURACY_DROP
from edgeresnet.bench.recommendation import recommend
from edgeresnet.bench.rows import ROW_FIELDS, THROUGHPUT_MEASURE, BenchmarkResult
from edgeresnet.report.environment import environment_columns
from edgeresnet.report.tables import render_markdown

log = logging.getLogger(__name__)

REPORT_FORMAT = "edgeresnet-benchmark"
# 2: accuracies in percent and agreement_pct (version 1 stored fractions and agreement_top1).
REPORT_VERSION = 2
FILES = {"markdown": "benchmark.md", "csv": "benchmark.csv", "json": "benchmark.json",
         "plot": "accuracy_latency.png"}


def render_csv(result: BenchmarkResult) -> str:
    environment = environment_columns(result.environment)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=[*ROW_FIELDS, *environment], lineterminator="\n")
    writer.writeheader()
    for row in result.rows:
        values = row.to_dict()
        writer.writerow({**{k: "" if values[k] is None else values[k] for k in ROW_FIELDS}, **environment})
    return buffer.getvalue()


def report_record(result: BenchmarkResult, *, max_accuracy_drop: float = DEFAULT_MAX_ACCURACY_DROP) -> dict[str, Any]:
    """The JSON report: rows, environment, notes, and the recommendation per batch size."""
    latency = recommend(result, max_accuracy_drop=max_accuracy_drop)
    throughput = recommend(result, max_accuracy_drop=max_accuracy_drop, measure=THROUGHPUT_MEASURE)
    return {
        "format": REPORT_FORMAT,
        "format_version": REPORT_VERSION,
        "max_accuracy_drop": max_accuracy_drop,
        "best_within_budget": {str(batch): r.row.artifact for batch, r in sorted(latency.items())},
        "recommendations": [{"batch_size": r.batch_size, "measure": r.measure, "artifact": r.row.artifact,
                             "accuracy": r.verdict, "tied_with": [t.artifact for t in r.tied],
                             "p50_ratio_ci95": list(r.ratio_ci95) if r.ratio_ci95 else None,
                             "text": r.describe()}
                            for r in [*latency.values(), *throughput.values()]],
        **result.to_dict(),
    }


def read_report(path: str | Path) -> BenchmarkResult:
    """Load a ``benchmark.json`` back into a result (to re-render or compare runs)."""
    from edgeresnet.errors import EdgeResNetError
    from edgeresnet.limits import read_json

    record = read_json(path, what="benchmark report")  # bounded in size and depth
    if not isinstance(record, dict) or record.get("format") != REPORT_FORMAT:
        raise EdgeResNetError(f"{path} is not an edgeresnet benchmark report")
    version = record.get("format_version", 1)
    if not isinstance(version, int) or version > REPORT_VERSION:
        raise EdgeResNetError(f"{path} is a version {version} report; this edgeresnet reads up to {REPORT_VERSION}")
    if version == 1:
        record = {**record, "rows": [_row_from_version_1(row) for row in record["rows"]]}
    return BenchmarkResult.from_dict(record)


def _row_from_version_1(row: dict[str, Any]) -> dict[str, Any]:
    """Version 1 stored accuracies and agreement as fractions; every version since, in percent."""
    row = dict(row)
    for name in ("top1", "top5"):
        if row.get(name) is not None:
            row[name] = 100.0 * row[name]
    agreement = row.pop("agreement_top1", None)
    row["agreement_pct"] = None if agreement is None else 100.0 * agreement
    return row


def write_reports(
    result: BenchmarkResult, directory: str | Path, *, max_accuracy_drop: float = DEFAULT_MAX_ACCURACY_DROP
) -> dict[str, Path]:
    """Write benchmark.md, benchmark.csv, benchmark.json and accuracy_latency.png, each atomically."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    return {
        "markdown": atomic_write_text(directory / FILES["markdown"],
                                      render_markdown(result, max_accuracy_drop=max_accuracy_drop)),
        "csv": atomic_write_text(directory / FILES["csv"], render_csv(result)),
        "json": atomic_write_json(directory / FILES["json"],
                                  report_record(result, max_accuracy_drop=max_accuracy_drop)),
        **_plot_if_possible(result, directory / FILES["plot"], max_accuracy_drop),
    }


def _plot_if_possible(result: BenchmarkResult, path: Path, max_accuracy_drop: float) -> dict[str, Path]:
    """The plot needs matplotlib (the ``build`` extra); a runtime-only install writes the other reports."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        log.warning("no accuracy_latency.png: matplotlib is not installed (pip install 'edgeresnet[build]')")
        return {}
    from edgeresnet.report.plot import plot_accuracy_latency

    return {"plot": plot_accuracy_latency(result, path, max_accuracy_drop=max_accuracy_drop)}
