"""Latency measurement: a lean timed loop, its stopping rule and its statistics.

The loop is as thin as benchmark_app's synchronous mode: the same preallocated input every call,
no per-call allocation on our side, the garbage collector paused, and the clock read right around
the call (plus an optional device synchronisation, so GPU work is inside the timed interval).
"""

from __future__ import annotations

import gc
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, TypeVar

import numpy as np

from edgeresnet.bench.job import DEFAULT_MAX_TIME_S, DEFAULT_MIN_RUNS, DEFAULT_MIN_TIME_S, DEFAULT_WARMUP
from edgeresnet.errors import EdgeResNetError

Batch = TypeVar("Batch")
__all__ = ["DEFAULT_MAX_TIME_S", "DEFAULT_MIN_RUNS", "DEFAULT_MIN_TIME_S", "DEFAULT_WARMUP", "LatencyStats",
           "check_settings", "latency_stats", "measure_latency", "should_stop"]


@dataclass(frozen=True)
class LatencyStats:
    """Per-call latency of one batch size, in milliseconds; throughput in images per second."""

    mean_ms: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    std_ms: float
    min_ms: float
    max_ms: float
    runs: int
    batch_size: int
    throughput_ips: float
    # The per-call timings in the order they were taken: the recommendation's interval on the p50
    # ratio of two rows is bootstrapped from them (see edgeresnet.bench.recommendation).
    samples_ms: tuple[float, ...] = field(default=(), repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        record = asdict(self)
        record.pop("samples_ms")
        return record


def latency_stats(samples_ms: Sequence[float] | np.ndarray, batch: int) -> LatencyStats:
    """Statistics of per-call timings in milliseconds for calls of ``batch`` images each.

    Percentiles interpolate linearly between order statistics (numpy's default, the one most tools
    quote); ``std`` is the sample standard deviation (0 for a single run).
    """
    samples = np.asarray(samples_ms, dtype=np.float64)
    if samples.ndim != 1 or samples.size == 0:
        raise EdgeResNetError("latency statistics need at least one timing")
    if batch < 1:
        raise EdgeResNetError(f"batch size must be at least 1, got {batch}")
    if not np.isfinite(samples).all() or (samples < 0).any():
        raise EdgeResNetError("latency timings must be finite and non-negative")
    p50, p90, p99 = np.percentile(samples, [50, 90, 99])
    mean = float(samples.mean())
    return LatencyStats(
        mean_ms=mean,
        p50_ms=float(p50),
        p90_ms=float(p90),
        p99_ms=float(p99),
        std_ms=float(samples.std(ddof=1)) if samples.size > 1 else 0.0,
        min_ms=float(samples.min()),
        max_ms=float(samples.max()),
        runs=int(samples.size),
        batch_size=batch,
        throughput_ips=batch * 1000.0 / mean if mean > 0 else math.inf,
        samples_ms=tuple(float(v) for v in samples),
    )


def should_stop(runs: int, elapsed_s: float, *, min_runs: int, min_time_s: float, max_time_s: float) -> bool:
    """The stopping rule: both ``min_runs`` and ``min_time_s`` reached, or ``max_time_s`` spent.

    Requiring both keeps fast models from stopping on a noisy handful of runs and slow ones from
    stopping before enough calls for a p90; the cap still ends a run after at least one call.
    """
    if runs < 1:
        return False
    if elapsed_s >= max_time_s:
        return True
    return runs >= min_runs and elapsed_s >= min_time_s


def check_settings(*, warmup: int, min_runs: int, min_time_s: float, max_time_s: float) -> None:
    """Reject settings that would make a measurement meaningless (one-line user errors)."""
    if warmup < 0:
        raise EdgeResNetError(f"warmup must be >= 0, got {warmup}")
    if min_runs < 1:
        raise EdgeResNetError(f"min_runs must be >= 1, got {min_runs}")
    if min_time_s < 0:
        raise EdgeResNetError(f"min_time_s must be >= 0, got {min_time_s}")
    if max_time_s <= 0:
        raise EdgeResNetError(f"max_time_s must be > 0, got {max_time_s}")


def measure_latency(
    fn: Callable[[Batch], object],
    batch: Batch,
    *,
    warmup: int = DEFAULT_WARMUP,
    min_runs: int = DEFAULT_MIN_RUNS,
    min_time_s: float = DEFAULT_MIN_TIME_S,
    max_time_s: float = DEFAULT_MAX_TIME_S,
    synchronize: Callable[[], object] | None = None,
    batch_size: int | None = None,
) -> LatencyStats:
    """Time ``fn(batch)`` until :func:`should_stop` says enough, after ``warmup`` untimed calls.

    Args:
        fn: one inference call; its result is discarded.
        batch: the input, built once by the caller and passed unchanged to every call.
        synchronize: called after each call inside the timed interval (``torch.cuda.synchronize``
            for asynchronous GPU work); None for synchronous backends.
        batch_size: images per call for the throughput; defaults to ``len(batch)``.
    """
    check_settings(warmup=warmup, min_runs=min_runs, min_time_s=min_time_s, max_time_s=max_time_s)
    size = batch_size if batch_size is not None else len(batch)  # type: ignore[arg-type]
    for _ in range(warmup):
        fn(batch)
    if synchronize is not None:
        synchronize()
    clock = time.perf_counter
    samples: list[float] = []
    append = samples.append
    # A collection pause inside a timed call is the loop's noise, not the model's latency.
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        start = clock()
        while True:
            before = clock()
            fn(batch)
            if synchronize is not None:
                synchronize()
            after = clock()
            append(after - before)
            if should_stop(len(samples), after - start, min_runs=min_runs, min_time_s=min_time_s,
                           max_time_s=max_time_s):
                break
    finally:
        if gc_was_enabled:
            gc.enable()
    return latency_stats(np.asarray(samples) * 1000.0, size)
