"""The benchmark row: the one flat record per (artifact, backend, device, precision, batch size).

Flat on purpose: a row is a CSV line, a JSON object and a table row without translation. A
measurement that failed keeps its row, with ``error`` saying why, instead of aborting the run.
"""

from __future__ import annotations

import dataclasses
from dataclasses import asdict, dataclass, field
from typing import Any

from edgeresnet.bench.latency import LatencyStats


@dataclass
class BenchmarkRow:
    """One artifact at one batch size. Accuracies are percentages (0-100), as everywhere in edgeresnet
    (:mod:`edgeresnet.evaluation`); latencies are milliseconds.

    ``agreement_pct`` is the percentage of evaluation images whose top-1 class matches the FP32
    reference's (the row with ``reference`` set); ``peak_memory_bytes`` is the process RSS
    high-water mark above the RSS before the artifact loaded (see ``edgeresnet.bench.memory``).
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
    eval_images: int | None = None
    reference: bool = False
    file_size_bytes: int | None = None
    peak_memory_bytes: int | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    def with_latency(self, stats: LatencyStats) -> BenchmarkRow:
        return dataclasses.replace(
            self,
            latency_mean_ms=stats.mean_ms,
            latency_p50_ms=stats.p50_ms,
            latency_p90_ms=stats.p90_ms,
            latency_p99_ms=stats.p99_ms,
            latency_std_ms=stats.std_ms,
            latency_min_ms=stats.min_ms,
            runs=stats.runs,
            throughput_ips=stats.throughput_ips,
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, record: dict[str, Any]) -> BenchmarkRow:
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{key: value for key, value in record.items() if key in known})


ROW_FIELDS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(BenchmarkRow))


@dataclass
class BenchmarkResult:
    """Every row of one benchmark run and the environment it ran in."""

    rows: list[BenchmarkRow]
    environment: dict[str, Any] = field(default_factory=dict)

    @property
    def batch_sizes(self) -> list[int]:
        return sorted({row.batch_size for row in self.rows})

    def reference(self) -> BenchmarkRow | None:
        """A row of the FP32 reference artifact (its accuracy is the same at every batch size)."""
        return next((row for row in self.rows if row.reference), None)

    def to_dict(self) -> dict[str, Any]:
        return {"rows": [row.to_dict() for row in self.rows], "environment": self.environment}

    @classmethod
    def from_dict(cls, record: dict[str, Any]) -> BenchmarkResult:
        return cls(rows=[BenchmarkRow.from_dict(row) for row in record["rows"]],
                   environment=dict(record.get("environment", {})))
