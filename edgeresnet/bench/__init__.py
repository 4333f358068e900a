"""The benchmark engine: accuracy × latency (× throughput) for bundles and checkpoints, one flat row each.

    from edgeresnet.bench import BenchmarkJob, recommend, run_benchmark
    job = BenchmarkJob(artifacts=("runs/export/onnxruntime-fp32", "runs/export/openvino-int8"),
                       data="fashion-mnist", batch_sizes=(1, 8), threads=2)
    result = run_benchmark(job)
    for row in result.rows:
        print(row.artifact, row.batch_size, row.latency_p50_ms, row.top1, row.error)  # top1 in percent
    for choice in recommend(result, max_accuracy_drop=job.max_accuracy_drop).values():
        print(choice.describe())

Without ``data`` the artifacts are timed on their golden inputs and accuracy is not measured. Reports
(table, Markdown, CSV, JSON, plot) are in :mod:`edgeresnet.report`. Importing this package is cheap:
runtimes and torch are imported when an artifact is opened.
"""

from __future__ import annotations

import importlib
from typing import Any

# Names resolved on first use, so that importing the job record (the CLI, ``import edgeresnet``) does
# not import numpy and the engine.
_EXPORTS = {
    "Artifact": "artifacts", "load_artifact": "artifacts", "open_runner": "artifacts", "synchronizer": "artifacts",
    "benchmark_environment": "engine", "run_benchmark": "engine",
    "EvalData": "evaluation", "Evaluation": "evaluation", "agreement_pct": "evaluation",
    "DEFAULT_BATCH_SIZES": "job", "DEFAULT_MAX_ACCURACY_DROP": "job", "DEFAULT_MIN_TIME_S": "job", "DEVICES": "job",
    "MODES": "job", "BenchmarkJob": "job", "Device": "job", "Mode": "job",
    "LatencyStats": "latency", "latency_stats": "latency", "measure_latency": "latency", "should_stop": "latency",
    "PeakMemory": "memory",
    "Recommendation": "recommendation", "accuracy_verdict": "recommendation", "best_within_budget": "recommendation",
    "busy_warning": "recommendation", "recommend": "recommendation", "star_eligibility": "recommendation",
    "ROW_FIELDS": "rows", "BenchmarkResult": "rows", "BenchmarkRow": "rows",
}
__all__ = list(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'edgeresnet.bench' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"edgeresnet.bench.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})
