"""The benchmark engine: accuracy × latency for bundles and checkpoints, one flat row each.

    from edgeresnet.bench import run_benchmark
    result = run_benchmark(["runs/export/onnxruntime-fp32", "runs/export/openvino-int8"],
                           data="fashion-mnist", batch_sizes=(1, 8), threads=2)
    for row in result.rows:
        print(row.artifact, row.batch_size, row.latency_p50_ms, row.top1, row.error)  # top1 in percent

Reports (table, Markdown, CSV, JSON, plot) are in :mod:`edgeresnet.report`. Importing this package
is cheap: runtimes and torch are imported when an artifact is opened.
"""

from __future__ import annotations

from edgeresnet.bench.artifacts import Artifact, load_artifact, open_runner, synchronizer
from edgeresnet.bench.engine import DEVICES, Device, benchmark_environment, run_benchmark
from edgeresnet.bench.eval_data import EvalData, Evaluation, agreement_pct
from edgeresnet.bench.latency import LatencyStats, latency_stats, measure_latency, should_stop
from edgeresnet.bench.memory import PeakMemory
from edgeresnet.bench.rows import ROW_FIELDS, BenchmarkResult, BenchmarkRow

__all__ = [
    "DEVICES",
    "ROW_FIELDS",
    "Artifact",
    "BenchmarkResult",
    "BenchmarkRow",
    "Device",
    "EvalData",
    "Evaluation",
    "LatencyStats",
    "PeakMemory",
    "agreement_pct",
    "benchmark_environment",
    "latency_stats",
    "load_artifact",
    "measure_latency",
    "open_runner",
    "run_benchmark",
    "should_stop",
    "synchronizer",
]
