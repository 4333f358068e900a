"""BenchmarkJob: every benchmark option, declared once with its default and checked once.

The CLI (``benchmark`` and ``pipeline``) builds a job, :func:`edgeresnet.api.benchmark` takes one (or
its fields as keywords), and :func:`edgeresnet.bench.run_benchmark` reads its fields: a new option is
one field here plus its flag. Validation lives in ``__post_init__``, so a job that exists is a job
that can run; user mistakes are one-line :class:`~edgeresnet.errors.EdgeResNetError`.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

# Top-1 points an artifact may lose against FP32 and still be recommended: the export gate's budget too.
from edgeresnet.bundle.vocabulary import DEFAULT_MAX_ACCURACY_DROP
from edgeresnet.errors import EdgeResNetError

Device = Literal["cpu", "cuda"]
DEVICES: tuple[Device, ...] = ("cpu", "cuda")
Mode = Literal["latency", "throughput", "both"]
MODES: tuple[Mode, ...] = ("latency", "throughput", "both")

# The defaults of `benchmark` and `pipeline` alike, one constant each (this module is standard library only,
# so the CLI reads them for --help without the benchmark engine).
__all__ = ["DEFAULT_BATCH_SIZES", "DEFAULT_MAX_ACCURACY_DROP", "DEFAULT_MIN_TIME_S", "BenchmarkJob", "batch_sizes_text",
           "job_from"]
# Batch 1 is an app's latency; 8 is a small batch every edge target fits (32 ran out of memory on
# small devices and took most of the pipeline's benchmark time on 2 cores).
DEFAULT_BATCH_SIZES: tuple[int, ...] = (1, 8)
# Seconds of timed calls per artifact and batch size, at least: enough calls for a stable p50 of a
# millisecond model on a noisy host.
DEFAULT_MIN_TIME_S = 2.0


def batch_sizes_text(batch_sizes: tuple[int, ...] = DEFAULT_BATCH_SIZES) -> str:
    """``"1,8"``: batch sizes as the command line writes them."""
    return ",".join(map(str, batch_sizes))


DEFAULT_WARMUP = 10
DEFAULT_MIN_RUNS = 50
# A cap, so a slow model on a slow device cannot hold a benchmark hostage; min_runs may go unmet.
DEFAULT_MAX_TIME_S = 60.0
# Bounds that catch a typo before it allocates or spawns absurd amounts (one line, exit 2).
MAX_BATCH_SIZE = 4096
MAX_THREADS = 1024
MAX_STREAMS = 256


@dataclass(frozen=True)
class BenchmarkJob:
    """What to benchmark and how.

    Args:
        artifacts: bundle directories and/or checkpoint directories (a checkpoint is the PyTorch FP32
            eager row).
        data: the data source whose evaluation split measures accuracy; None times the artifacts on
            their golden inputs (or generated ones of their input spec) and records accuracy as not
            measured, as ``benchmark_app -m`` or ``trtexec --loadEngine`` would on a device.
        threads: CPU threads for every backend; None uses every core this process may run on.
        device: where the PyTorch baseline and ONNX Runtime run; a backend that cannot run there (a
            TensorRT engine, OpenVINO) runs on its own default device, and each row names its device.
        mode: ``latency`` (one request at a time), ``throughput`` (images/s at saturation: OpenVINO
            streams, concurrent ONNX Runtime sessions, several TensorRT contexts) or ``both``.
        streams: concurrent requests in throughput mode; None lets each backend choose (OpenVINO's
            optimal number of infer requests, one ONNX Runtime session per two threads, ...).
        checkpoint: the PyTorch baseline when no checkpoint is among ``artifacts``; by default the
            bundles' source checkpoint.
        eval_limit: evaluate on a class-balanced subset of this many images.
        max_accuracy_drop: top-1 points an artifact may lose against the FP32 reference and still be
            recommended (judged on the paired interval, see :mod:`edgeresnet.bench.recommendation`).
        allow_host_code: let version-compatible TensorRT engines load (they run the runtime they embed).
        images: image files and folders (searched recursively) for file → label rows.
        report: write benchmark.md/.csv/.json and the plot into this directory (``overwrite`` to replace
            an earlier benchmark's files there).
    """

    artifacts: tuple[Path, ...]
    data: str | None = None
    batch_sizes: tuple[int, ...] = DEFAULT_BATCH_SIZES
    threads: int | None = None
    device: Device = "cpu"
    mode: Mode = "latency"
    streams: int | None = None
    warmup: int = DEFAULT_WARMUP
    min_runs: int = DEFAULT_MIN_RUNS
    min_time_s: float = DEFAULT_MIN_TIME_S
    max_time_s: float = DEFAULT_MAX_TIME_S
    eval_limit: int | None = None
    checkpoint: Path | None = None
    max_accuracy_drop: float = DEFAULT_MAX_ACCURACY_DROP
    allow_host_code: bool = False
    images: tuple[Path, ...] = field(default=())
    report: Path | None = None
    overwrite: bool = False

    def __post_init__(self) -> None:
        # Normalise the containers first (a list or a str from Python callers), then check the values.
        set_ = object.__setattr__
        set_(self, "artifacts", tuple(Path(a) for a in _sequence(self.artifacts, "artifacts")))
        set_(self, "images", tuple(Path(p) for p in _sequence(self.images, "images")))
        set_(self, "batch_sizes", _batch_sizes(self.batch_sizes))
        for name in ("checkpoint", "report"):
            if getattr(self, name) is not None:
                set_(self, name, Path(getattr(self, name)))
        if not self.artifacts:
            raise EdgeResNetError("nothing to benchmark: give at least one bundle or checkpoint directory")
        if self.data is not None and not str(self.data).strip():
            raise EdgeResNetError("--data is empty: give a data source, or leave --data out to time without one")
        _choice(self.device, DEVICES, "device")
        _choice(self.mode, MODES, "mode")
        _whole(self.threads, "threads", 1, MAX_THREADS, optional=True)
        _whole(self.streams, "streams", 1, MAX_STREAMS, optional=True)
        _whole(self.warmup, "warmup", 0, 1_000_000)
        _whole(self.min_runs, "min_runs", 1, 100_000_000)
        _whole(self.eval_limit, "eval_limit", 1, 1 << 40, optional=True)
        _seconds(self.min_time_s, "min_time_s", allow_zero=True)
        _seconds(self.max_time_s, "max_time_s", allow_zero=False)
        if not isinstance(self.max_accuracy_drop, int | float) or not math.isfinite(self.max_accuracy_drop) \
                or self.max_accuracy_drop < 0:
            raise EdgeResNetError(f"max_accuracy_drop must be a finite number >= 0, got {self.max_accuracy_drop!r}")

    @property
    def latency(self) -> bool:
        return self.mode in ("latency", "both")

    @property
    def throughput(self) -> bool:
        return self.mode in ("throughput", "both")

    def replace(self, **changes: Any) -> BenchmarkJob:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """The job as JSON values (paths as strings), as the report records it."""
        record = dataclasses.asdict(self)
        for key, value in record.items():
            if isinstance(value, Path):
                record[key] = str(value)
            elif isinstance(value, tuple):
                record[key] = [str(v) if isinstance(v, Path) else v for v in value]
        return record


def job_from(job: BenchmarkJob | Sequence[str | Path] | str | Path, options: Mapping[str, Any]) -> BenchmarkJob:
    """A job given as a job, or as artifacts plus keyword fields (the keyword form of the API)."""
    if isinstance(job, BenchmarkJob):
        if options:
            raise TypeError(f"pass either a BenchmarkJob or keyword options, not both ({', '.join(options)})")
        return job
    known = {f.name for f in dataclasses.fields(BenchmarkJob)}
    unknown = sorted(set(options) - known)
    if unknown:
        raise TypeError(f"unknown benchmark option(s): {', '.join(unknown)} (known: {', '.join(sorted(known))})")
    artifacts = [job] if isinstance(job, str | Path) else list(job)
    return BenchmarkJob(artifacts=tuple(Path(a) for a in artifacts), **options)


def _sequence(value: Any, name: str) -> tuple[Any, ...]:
    if isinstance(value, str | Path):
        return (value,)
    try:
        return tuple(value)
    except TypeError:
        raise EdgeResNetError(f"{name} must be a list, got {value!r}") from None


def _batch_sizes(value: Any) -> tuple[int, ...]:
    sizes = _sequence(value, "batch_sizes")
    if not sizes or any(isinstance(b, bool) or not isinstance(b, int) or not 1 <= b <= MAX_BATCH_SIZE
                        for b in sizes):
        raise EdgeResNetError(f"batch sizes must be integers from 1 to {MAX_BATCH_SIZE}, got {list(sizes)}")
    return tuple(dict.fromkeys(sizes))


def _choice(value: Any, choices: tuple[str, ...], name: str) -> None:
    if value not in choices:
        raise EdgeResNetError(f"{name} must be one of {', '.join(choices)}, got {value!r}")


def _whole(value: Any, name: str, low: int, high: int, *, optional: bool = False) -> None:
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise EdgeResNetError(f"{name} must be an integer from {low} to {high:,}, got {value!r}")


def _seconds(value: Any, name: str, *, allow_zero: bool) -> None:
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or value < 0 or (value == 0 and not allow_zero) or value > 86_400:
        bound = ">= 0" if allow_zero else "> 0"
        raise EdgeResNetError(f"{name} must be a finite number of seconds {bound} and at most a day, got {value!r}")
