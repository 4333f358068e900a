"""The benchmark row: the one flat record per (artifact, backend, device, precision, batch size).

Flat on purpose: a row is a CSV line, a JSON object and a table row without translation. A
measurement that failed keeps its row, with ``error`` saying why, instead of aborting the run.
"""

from __future__ import annotations

import dataclasses
from dataclasses import asdict, dataclass, field
from typing import Any

from edgeresnet.bench.latency import LatencyStats

MODEL_MEASURE = "model"
FILE_MEASURE = "file->label"
THROUGHPUT_MEASURE = "throughput"
# Timings kept per row for the recommendation's interval (evenly thinned, in time order): enough for a
# bootstrap of the median, small enough for the JSON report.
KEPT_SAMPLES = 1000


@dataclass
class BenchmarkRow:
    """One artifact at one batch size. Accuracies are percentages (0-100), as everywhere in edgeresnet
    (:mod:`edgeresnet.evaluation`); latencies are milliseconds.

    ``agreement_pct`` is the percentage of evaluation images whose top-1 class matches the FP32
    reference's (the row with ``reference`` set); ``drop_points`` is the reference's top-1 minus this
    row's on the same ``eval_images`` images and ``drop_ci95_points`` its paired 95% interval
    (:func:`edgeresnet.evaluation.compare_paired`); ``peak_memory_bytes`` is the process RSS
    high-water mark above the RSS before the artifact loaded (see ``edgeresnet.bench.memory``).

    ``measure`` is ``model`` (a preprocessed tensor bound once, as ``benchmark_app`` times it) or
    ``file->label`` (image files decoded, preprocessed and classified, as an app does). A file row's
    latencies are per call of ``batch_size`` files, run one after another; ``decode_ms``,
    ``preprocess_ms`` and ``inference_ms`` split its mean call; its ``throughput_ips`` is images per
    second of ``Classifier.predict_iter`` over the files (decoding overlapped with inference).

    A ``throughput`` row is the backend at saturation: ``streams`` requests in flight at once (OpenVINO
    streams and asynchronous requests, concurrent ONNX Runtime sessions, TensorRT execution contexts),
    ``throughput_ips`` the images per second completed and the latencies those of each request.

    ``proxy_for`` names the target a row stands in for (a ``tensorrt-*`` bundle's ONNX measured through
    ONNX Runtime): shown, never recommended. ``runtime`` says what ran it (device, versions and, for a
    TensorRT engine, its layer precisions). ``latency_samples_ms`` keeps up to 1,000 of the per-call
    timings (in the JSON report, not the CSV) for the interval on the p50 ratio of two rows.
    """

    artifact: str
    path: str
    backend: str
    device: str
    precision: str
    batch_size: int
    threads: int | None = None
    latency_mean_ms: float | None = None
    latency_p50_ms: float | None = None
    latency_p90_ms: float | None = None
    latency_p99_ms: float | None = None
    latency_std_ms: float | None = None
    latency_min_ms: float | None = None
    runs: int | None = None
    throughput_ips: float | None = None
    top1: float | None = None
    top5: float | None = None
    agreement_pct: float | None = None
    drop_points: float | None = None
    drop_ci95_points: tuple[float, float] | None = None
    eval_images: int | None = None
    reference: bool = False
    file_size_bytes: int | None = None
    peak_memory_bytes: int | None = None
    measure: str = MODEL_MEASURE
    decode_ms: float | None = None
    preprocess_ms: float | None = None
    inference_ms: float | None = None
    input_images: int | None = None
    streams: int | None = None
    proxy_for: str | None = None
    runtime: str | None = None
    error: str | None = None
    latency_samples_ms: tuple[float, ...] = field(default=(), repr=False, compare=False)

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def per_image_p50_ms(self) -> float | None:
        """p50 latency per image: a call's p50 over its batch size, so batch sizes compare."""
        if self.latency_p50_ms is None or self.batch_size < 1:
            return None
        return self.latency_p50_ms / self.batch_size

    def with_latency(self, stats: LatencyStats | None) -> BenchmarkRow:
        """This row with ``stats``' latency fields (all cleared when ``stats`` is None)."""
        return dataclasses.replace(
            self,
            latency_mean_ms=stats.mean_ms if stats else None,
            latency_p50_ms=stats.p50_ms if stats else None,
            latency_p90_ms=stats.p90_ms if stats else None,
            latency_p99_ms=stats.p99_ms if stats else None,
            latency_std_ms=stats.std_ms if stats else None,
            latency_min_ms=stats.min_ms if stats else None,
            runs=stats.runs if stats else None,
            throughput_ips=stats.throughput_ips if stats else None,
            latency_samples_ms=_thinned(stats.samples_ms) if stats else (),
        )

    @property
    def spread(self) -> float | None:
        """p90 over p50: near 1 on a quiet host, large when other work interrupted the timed calls."""
        if not self.latency_p50_ms or self.latency_p90_ms is None:
            return None
        return self.latency_p90_ms / self.latency_p50_ms

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, record: dict[str, Any]) -> BenchmarkRow:
        known = {f.name for f in dataclasses.fields(cls)}
        values = {key: value for key, value in record.items() if key in known}
        if values.get("drop_ci95_points") is not None:
            low, high = values["drop_ci95_points"]
            values["drop_ci95_points"] = (float(low), float(high))
        values["latency_samples_ms"] = tuple(float(v) for v in values.get("latency_samples_ms") or ())
        return cls(**values)


def _thinned(samples: tuple[float, ...]) -> tuple[float, ...]:
    if len(samples) <= KEPT_SAMPLES:
        return tuple(samples)
    step = len(samples) / KEPT_SAMPLES
    return tuple(samples[int(i * step)] for i in range(KEPT_SAMPLES))


# The CSV's columns: every field but the timing samples.
ROW_FIELDS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(BenchmarkRow) if f.name != "latency_samples_ms")


@dataclass
class BenchmarkResult:
    """Every row of one benchmark run and the environment it ran in."""

    rows: list[BenchmarkRow]
    environment: dict[str, Any] = field(default_factory=dict)
    # One line each: what was skipped or doubtful in this run (a PyTorch row that needs an extra, a
    # checkpoint changed since the export), printed with the table.
    notes: list[str] = field(default_factory=list)

    @property
    def batch_sizes(self) -> list[int]:
        return sorted({row.batch_size for row in self.rows})

    def reference(self) -> BenchmarkRow | None:
        """A row of the FP32 reference artifact (its accuracy is the same at every batch size)."""
        return next((row for row in self.rows if row.reference), None)

    def to_dict(self) -> dict[str, Any]:
        return {"rows": [row.to_dict() for row in self.rows], "environment": self.environment, "notes": self.notes}

    @classmethod
    def from_dict(cls, record: dict[str, Any]) -> BenchmarkResult:
        return cls(rows=[BenchmarkRow.from_dict(row) for row in record["rows"]],
                   environment=dict(record.get("environment", {})), notes=[str(n) for n in record.get("notes", [])])
