"""The recommendation: evidence verdicts, no proxies, ties within noise from the timing samples, busy hosts."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgeresnet.bench import BenchmarkResult, BenchmarkRow, accuracy_verdict, busy_warning, recommend
from edgeresnet.bench.recommendation import p50_ratio_interval
from edgeresnet.report import recommendation_lines, render_markdown


def _samples(p50: float, spread: float, n: int = 400, seed: int = 0) -> tuple[float, ...]:
    rng = np.random.default_rng(seed)
    return tuple(float(v) for v in p50 * (1 + spread * rng.standard_normal(n)))


def _row(name: str, p50: float, *, batch: int = 1, spread: float = 0.01, seed: int = 0, **fields: object) -> BenchmarkRow:
    samples = _samples(p50, spread, seed=seed)
    return BenchmarkRow(artifact=name, path=name, backend=str(fields.pop("backend", "onnxruntime")), device="cpu",
                        precision=str(fields.pop("precision", "int8")), batch_size=batch, threads=2,
                        latency_p50_ms=float(np.median(samples)), latency_p90_ms=float(np.percentile(samples, 90)),
                        latency_samples_ms=samples, file_size_bytes=int(fields.pop("size", 1_000_000)),
                        top1=fields.pop("top1", 90.0), **fields)  # type: ignore[arg-type]


def _reference(batch: int = 1) -> BenchmarkRow:
    return _row("fp32-ref", 10.0 * batch, batch=batch, precision="fp32", backend="pytorch", reference=True, top1=91.0)


@pytest.mark.parametrize(
    ("drop", "interval", "verdict"),
    [
        (0.2, (-0.3, 0.8), "within budget"),  # the interval ends within the budget
        (1.5, (1.1, 2.0), "over budget"),  # the interval starts above it: the data show the miss
        (0.5, (-0.5, 1.6), "unresolved"),  # it straddles the budget (one image of 30 flipped, say)
        (1.0, (0.2, 1.0), "within budget"),  # exactly the budget is within it
        (None, None, "not measured"),
        (2.0, None, "over budget"),  # no interval: only the estimate can say "over"
    ],
)
def test_the_gate_rule_gives_three_verdicts(drop: float | None, interval: tuple[float, float] | None,
                                            verdict: str) -> None:
    assert accuracy_verdict(drop, interval, 1.0) == verdict


def test_over_budget_is_excluded_unresolved_stays_eligible_and_is_marked() -> None:
    rows = [_reference(),
            _row("int8-over", 2.0, drop_points=3.0, drop_ci95_points=(1.5, 5.0)),
            _row("int8-unsure", 4.0, drop_points=0.5, drop_ci95_points=(-0.5, 1.6))]
    choice = recommend(BenchmarkResult(rows=rows), max_accuracy_drop=1.0)[1]
    assert choice.row.artifact == "int8-unsure" and choice.verdict == "unresolved"
    text = render_markdown(BenchmarkResult(rows=rows))
    assert "| ★ | int8-unsure (Δ unresolved) |" in text


def test_a_proxy_row_is_shown_but_never_recommended() -> None:
    rows = [_reference(), _row("tensorrt-int8 (QDQ via onnxruntime)", 1.0, proxy_for="tensorrt", drop_points=0.0,
                               drop_ci95_points=(-0.2, 0.2)),
            _row("ort-int8", 3.0, drop_points=0.0, drop_ci95_points=(-0.2, 0.2))]
    result = BenchmarkResult(rows=rows)
    assert recommend(result)[1].row.artifact == "ort-int8"
    text = render_markdown(result)
    assert "tensorrt-int8 (QDQ via onnxruntime) [proxy]" in text and "build the engine on the device" in text


def test_rows_the_timings_cannot_tell_apart_are_tied_and_the_tie_goes_to_evidence_then_size() -> None:
    # 0.24 vs 0.29 ms with a p90 of 0.3-2.8 ms (a busy host): the samples overlap widely.
    fast = _row("ort-int8", 0.24, spread=1.5, seed=1, drop_points=0.5, drop_ci95_points=(-0.5, 1.6))
    close = _row("ov-int8", 0.25, spread=1.5, seed=2, drop_points=0.1, drop_ci95_points=(-0.4, 0.6), size=500_000)
    slow = _row("ov-fp32", 0.60, spread=0.01, seed=3, precision="fp32", drop_points=0.0, drop_ci95_points=(-0.2, 0.2))
    choice = recommend(BenchmarkResult(rows=[_reference(), fast, close, slow]))[1]
    assert choice.row.artifact == "ov-int8"  # within budget beats unresolved
    assert [row.artifact for row in choice.tied] == ["ort-int8"] and choice.fastest is fast
    assert "tied within noise with ort-int8" in choice.describe()
    # Same evidence: the smaller file wins the tie.
    twin = _row("ort-int8-small", 0.25, spread=1.5, seed=4, drop_points=0.5, drop_ci95_points=(-0.5, 1.6), size=10)
    assert recommend(BenchmarkResult(rows=[_reference(), fast, twin]))[1].row.artifact == "ort-int8-small"


def test_a_clear_winner_carries_the_interval_of_its_lead() -> None:
    fast = _row("ov-int8", 1.0, drop_points=0.1, drop_ci95_points=(-0.4, 0.6))
    slow = _row("ort-int8", 1.5, seed=5, drop_points=0.1, drop_ci95_points=(-0.4, 0.6))
    choice = recommend(BenchmarkResult(rows=[_reference(), fast, slow]))[1]
    assert choice.row is fast and not choice.tied
    low, high = choice.ratio_ci95
    assert 1.4 < low < 1.5 < high < 1.6
    assert f"ort-int8 is {low:.2f} to {high:.2f}× slower" in choice.describe()


def test_one_recommendation_per_batch_size_and_the_lines_say_so() -> None:
    rows = [_reference(1), _reference(32), _row("ort-int8", 1.0, batch=1, drop_points=0.0, drop_ci95_points=(-.1, .1)),
            _row("ov-int8", 2.0, batch=1, seed=2, drop_points=0.0, drop_ci95_points=(-.1, .1)),
            _row("ort-int8", 40.0, batch=32, drop_points=0.0, drop_ci95_points=(-.1, .1)),
            _row("ov-int8", 10.0, batch=32, seed=2, drop_points=0.0, drop_ci95_points=(-.1, .1))]
    result = BenchmarkResult(rows=rows)
    assert {batch: c.row.artifact for batch, c in recommend(result).items()} == {1: "ort-int8", 32: "ov-int8"}
    lines = recommendation_lines(result)
    assert lines[0].startswith("recommended for latency at batch 1: ort-int8")
    assert lines[1].startswith("recommended for latency at batch 32: ov-int8")


def test_the_interval_is_seeded_and_brackets_the_true_ratio() -> None:
    a, b = _samples(2.0, 0.05, seed=1), _samples(1.0, 0.05, seed=2)
    assert p50_ratio_interval(a, b) == p50_ratio_interval(a, b)
    low, high = p50_ratio_interval(a, b)
    assert low < 2.0 < high and high - low < 0.1
    assert p50_ratio_interval((1.0,), b) is None


def test_a_busy_host_gets_one_line() -> None:
    quiet = _row("ort-int8", 1.0)
    busy = _row("ov-int8", 1.0)
    busy.latency_p90_ms = 18.0
    assert busy_warning(BenchmarkResult(rows=[quiet])) is None
    line = busy_warning(BenchmarkResult(rows=[quiet, busy]))
    assert line is not None and "\n" not in line and "worst 18.0 for ov-int8, batch 1" in line and "1 row " in line
    assert line in render_markdown(BenchmarkResult(rows=[quiet, busy]))


@settings(max_examples=200, deadline=None, derandomize=True, database=None)
@given(a=st.floats(-50, 50), b=st.floats(-50, 50), budget=st.floats(0, 20))
def test_the_star_and_the_export_gate_judge_an_interval_alike(a: float, b: float, budget: float) -> None:
    from types import SimpleNamespace

    from edgeresnet.bench.recommendation import accuracy_verdict
    from edgeresnet.calibration.gate import gate_verdict

    low, high = min(a, b), max(a, b)
    gate = gate_verdict(SimpleNamespace(drop_ci95_points=(low, high)), budget)  # type: ignore[arg-type]
    star = accuracy_verdict((low + high) / 2, (low, high), budget)
    assert star == {"within": "within budget", "over": "over budget", "unresolved": "unresolved"}[gate]
    assert gate == ("within" if high <= budget else "over" if low > budget else "unresolved") or \
        min(abs(high - budget), abs(low - budget)) <= 1e-9
