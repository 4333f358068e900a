"""Which artifact to ship: one recommendation per batch size, with ties and doubts said out loud.

* **Only what runs natively here.** A proxy row (a ``tensorrt-*`` bundle's ONNX measured through ONNX
  Runtime) stands in for an engine built elsewhere: it is shown, never recommended.
* **Accuracy by evidence** (the INT8 gate's rule): from the paired comparison with the FP32 reference, an
  artifact is *within budget* when the drop's 95% interval ends within ``max_accuracy_drop``, *over
  budget* when the interval starts above it (the data show the budget is missed) and *unresolved* when
  it straddles it. Only *over budget* excludes; *unresolved* and *not measured* stay eligible, marked.
* **Ties within noise.** The fastest eligible row is compared with each other one by a 95% interval on
  the ratio of their p50 latencies, bootstrapped from the timing samples in blocks (consecutive calls
  share the host's state, so single calls are not independent). Rows whose interval reaches 1 are tied
  with it; the tie goes to the better accuracy evidence, then the smaller file.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Literal

import numpy as np

from edgeresnet.accuracy import BUDGET_TOLERANCE, count_of, interval_verdict
from edgeresnet.bench.job import DEFAULT_MAX_ACCURACY_DROP
from edgeresnet.bench.rows import MODEL_MEASURE, THROUGHPUT_MEASURE, BenchmarkResult, BenchmarkRow

Verdict = Literal["reference", "within budget", "unresolved", "over budget", "not measured"]
_VERDICT_RANK = {"reference": 0, "within budget": 0, "unresolved": 1, "not measured": 2}
_IN_WORDS: dict[str, Verdict] = {"within": "within budget", "over": "over budget", "unresolved": "unresolved"}
# Floating-point slack so that a drop of exactly the budget counts as within it.
BOOTSTRAP_RESAMPLES = 500
BOOTSTRAP_BLOCKS = 20
BOOTSTRAP_SEED = 0
# p90 / p50 above this says other work interrupted the timed calls (1.1-1.3 on a quiet host).
BUSY_SPREAD = 2.0


def accuracy_verdict(drop_points: float | None, drop_ci95_points: tuple[float, float] | None,
                     max_accuracy_drop: float) -> Verdict:
    """The evidence rule on one paired comparison (drop and its 95% interval) against the budget.

    Without an interval (no paired comparison) the point estimate decides "over budget" alone;
    anything else it cannot resolve.
    """
    if drop_points is None:
        return "not measured"
    if drop_ci95_points is None:
        return "over budget" if drop_points > max_accuracy_drop + BUDGET_TOLERANCE else "unresolved"
    return _IN_WORDS[interval_verdict(*drop_ci95_points, max_accuracy_drop)]


def star_eligibility(row: BenchmarkRow, max_accuracy_drop: float = DEFAULT_MAX_ACCURACY_DROP) -> Verdict:
    """A row's accuracy verdict; only ``over budget`` rows may not carry the ★."""
    if row.reference:
        return "reference"
    if max_accuracy_drop == float("inf"):
        return "not measured"
    if row.drop_points is None and row.top1 is not None:
        return "unresolved"  # an accuracy without a paired comparison (other preprocessing than the reference)
    return accuracy_verdict(row.drop_points, row.drop_ci95_points, max_accuracy_drop)


@dataclass(frozen=True)
class Recommendation:
    """The artifact recommended at one batch size, and what the choice rests on."""

    batch_size: int
    measure: str
    row: BenchmarkRow
    verdict: Verdict
    tied: tuple[BenchmarkRow, ...] = ()  # other rows the timings cannot tell apart from the fastest
    fastest: BenchmarkRow | None = None  # the fastest eligible row, when the tie went to another one
    runner_up: BenchmarkRow | None = None
    ratio_ci95: tuple[float, float] | None = None  # runner-up p50 / fastest p50

    def describe(self) -> str:
        """One line: the choice, its figures, and why."""
        row = self.row
        if self.measure == THROUGHPUT_MEASURE:
            figure = f"{row.throughput_ips:,.0f} img/s with {row.streams} requests in flight"
        else:
            figure = f"p50 {row.latency_p50_ms:.3f} ms"
        text = f"batch {self.batch_size}: {row.artifact} ({figure}; accuracy {self.verdict})"
        if self.tied:
            others = ", ".join(t.artifact for t in self.tied)
            fastest = f"; {self.fastest.artifact} was fastest" if self.fastest is not None else ""
            text += f" — tied within noise with {others}{fastest}, chosen on accuracy evidence, then size"
        elif self.runner_up is not None and self.ratio_ci95 is not None:
            low, high = self.ratio_ci95
            text += f" — {self.runner_up.artifact} is {low:.2f} to {high:.2f}× slower (95% interval of the p50 ratio)"
        return text


def recommend(result: BenchmarkResult, *, max_accuracy_drop: float = DEFAULT_MAX_ACCURACY_DROP,
              measure: str = MODEL_MEASURE) -> dict[int, Recommendation]:
    """One recommendation per batch size among the eligible rows of ``measure`` (latency or throughput)."""
    reference = result.reference()
    if reference is None or reference.top1 is None:
        budget = float("inf")  # no FP32 reference accuracy: the budget cannot be checked, only speed decides
    else:
        budget = max_accuracy_drop
    chosen: dict[int, Recommendation] = {}
    for batch in result.batch_sizes:
        candidates = [row for row in result.rows
                      if row.batch_size == batch and row.measure == measure and _eligible(row, budget)]
        if candidates:
            chosen[batch] = _choose(batch, measure, candidates, budget)
    return chosen


def best_within_budget(result: BenchmarkResult, *, max_accuracy_drop: float = DEFAULT_MAX_ACCURACY_DROP
                       ) -> dict[int, BenchmarkRow]:
    """The recommended latency row per batch size (the ★ of the table)."""
    return {batch: r.row for batch, r in recommend(result, max_accuracy_drop=max_accuracy_drop).items()}


def _eligible(row: BenchmarkRow, max_accuracy_drop: float) -> bool:
    speed = row.throughput_ips if row.measure == THROUGHPUT_MEASURE else row.latency_p50_ms
    return (row.ok and speed is not None and row.proxy_for is None
            and star_eligibility(row, max_accuracy_drop) != "over budget")


def _choose(batch: int, measure: str, candidates: list[BenchmarkRow], budget: float) -> Recommendation:
    if measure == THROUGHPUT_MEASURE:
        ordered = sorted(candidates, key=lambda r: -(r.throughput_ips or 0.0))
        return Recommendation(batch, measure, ordered[0], star_eligibility(ordered[0], budget),
                              runner_up=ordered[1] if len(ordered) > 1 else None)
    ordered = sorted(candidates, key=lambda r: r.latency_p50_ms or float("inf"))
    fastest, others = ordered[0], ordered[1:]
    intervals = {id(row): _cached_ratio_interval(tuple(row.latency_samples_ms), tuple(fastest.latency_samples_ms))
                 for row in others}
    tied = [row for row in others if (ci := intervals[id(row)]) is not None and ci[0] <= 1.0]
    runner_up = others[0] if others else None
    if not tied:
        return Recommendation(batch, measure, fastest, star_eligibility(fastest, budget), runner_up=runner_up,
                              ratio_ci95=intervals.get(id(runner_up)) if runner_up is not None else None)
    pool = [fastest, *tied]
    best = min(pool, key=lambda row: _evidence_key(row, budget))
    return Recommendation(batch, measure, best, star_eligibility(best, budget),
                          tied=tuple(row for row in pool if row is not best),
                          fastest=fastest if best is not fastest else None)


def _evidence_key(row: BenchmarkRow, budget: float) -> tuple[float, float, float, float]:
    """Better accuracy evidence first (verdict, then the smaller estimated drop), then the smaller file."""
    drop = 0.0 if row.reference else (row.drop_points if row.drop_points is not None else float("inf"))
    size = row.file_size_bytes if row.file_size_bytes is not None else float("inf")
    return (_VERDICT_RANK.get(star_eligibility(row, budget), 3), drop, size, row.latency_p50_ms or float("inf"))


def p50_ratio_interval(slower: tuple[float, ...] | np.ndarray, faster: tuple[float, ...] | np.ndarray, *,
                       resamples: int = BOOTSTRAP_RESAMPLES, seed: int = BOOTSTRAP_SEED) -> tuple[float, float] | None:
    """A 95% interval on median(slower) / median(faster) by a seeded block bootstrap; None without samples."""
    a, b = np.asarray(slower, dtype=np.float64), np.asarray(faster, dtype=np.float64)
    if a.size < 2 or b.size < 2:
        return None
    rng = np.random.default_rng(seed)
    ratios = _block_medians(a, rng, resamples) / np.maximum(_block_medians(b, rng, resamples), 1e-12)
    low, high = np.percentile(ratios, [2.5, 97.5])
    return float(low), float(high)


@functools.lru_cache(maxsize=256)
def _cached_ratio_interval(slower: tuple[float, ...], faster: tuple[float, ...]) -> tuple[float, float] | None:
    # A report asks for the same recommendations several times (table, legend, JSON, plot, summary): the
    # seeded bootstrap gives the same interval each time, so it runs once per pair of sample sets.
    return p50_ratio_interval(slower, faster)


def _block_medians(samples: np.ndarray, rng: np.random.Generator, resamples: int) -> np.ndarray:
    """Medians of ``resamples`` circular block-bootstrap resamples of ``samples`` (kept in time order)."""
    n = samples.size
    length = max(1, n // BOOTSTRAP_BLOCKS)
    blocks = -(-n // length)
    starts = rng.integers(0, n, size=(resamples, blocks))
    indices = (starts[:, :, None] + np.arange(length)[None, None, :]) % n
    return np.median(samples[indices.reshape(resamples, -1)[:, :n]], axis=1)


def busy_rows(result: BenchmarkResult, *, threshold: float = BUSY_SPREAD) -> list[BenchmarkRow]:
    """Rows whose p90/p50 says the host was busy while they were timed."""
    return [row for row in result.rows if row.ok and (row.spread or 0.0) > threshold]


def busy_warning(result: BenchmarkResult, *, threshold: float = BUSY_SPREAD) -> str | None:
    """One line naming the rows timed on a busy host, or None."""
    rows = busy_rows(result, threshold=threshold)
    if not rows:
        return None
    worst = max(rows, key=lambda row: row.spread or 0.0)
    return (f"busy host: p90/p50 above {threshold:g} in {count_of(len(rows), 'row')} "
            f"(worst {worst.spread:.1f} for {worst.artifact}, batch {worst.batch_size}); other work interrupted "
            "the timed calls: rerun on a quiet host before trusting small differences")
