"""The paired FP32-vs-INT8 comparison: counts, Tango's interval and its coverage."""

import numpy as np
import pytest

from edgeresnet.accuracy import PairedComparison, compare_paired, paired_difference_ci
from edgeresnet.errors import EdgeResNetError


def test_counts_and_drop_from_logits() -> None:
    labels = np.array([0, 1, 2, 0, 1])
    reference = np.eye(3)[[0, 1, 2, 0, 0]]  # 4 right
    candidate = np.eye(3)[[0, 1, 1, 1, 1]]  # 3 right: wrong on images 2 and 3, right on 4
    result = compare_paired(labels, reference, candidate)
    assert (result.reference_only, result.candidate_only, result.images) == (2, 1, 5)
    assert result.drop_points == pytest.approx(20.0)
    assert result.agreement_pct == pytest.approx(40.0)
    low, high = result.drop_ci95_points
    assert low < result.drop_points < high


def test_no_discordant_images_still_has_an_honest_interval() -> None:
    # Tango's interval with b = c = 0 is ±z²/(n + z²): 139 images cannot resolve a 1-point budget.
    low, high = paired_difference_ci(0, 0, 139)
    assert high == pytest.approx(1.959963984540054**2 / (139 + 1.959963984540054**2), rel=1e-6)
    assert low == pytest.approx(-high)
    comparison = compare_paired(np.zeros(139, int), np.zeros(139, int), np.zeros(139, int))
    assert not comparison.resolves(1.0)
    assert compare_paired(np.zeros(10_000, int), np.zeros(10_000, int), np.zeros(10_000, int)).resolves(0.1)


def test_interval_is_antisymmetric_when_the_models_swap() -> None:
    low, high = paired_difference_ci(7, 3, 400)
    swapped_low, swapped_high = paired_difference_ci(3, 7, 400)
    assert (swapped_low, swapped_high) == pytest.approx((-high, -low))


def test_coverage_is_near_95_percent() -> None:
    rng = np.random.default_rng(1)
    n, p_b, p_c = 200, 0.04, 0.015
    covered = 0
    for _ in range(1000):
        b, c, _ = rng.multinomial(n, [p_b, p_c, 1 - p_b - p_c])
        low, high = paired_difference_ci(int(b), int(c), n)
        covered += low <= p_b - p_c <= high
    assert 0.93 <= covered / 1000 <= 0.975


def test_round_trip_and_bad_input() -> None:
    result = compare_paired(np.array([0, 1, 1]), np.array([0, 1, 0]), np.array([0, 0, 1]))
    assert PairedComparison.from_dict(result.to_dict()).to_dict() == result.to_dict()
    with pytest.raises(EdgeResNetError):
        compare_paired(np.array([0, 1]), np.array([0]), np.array([0, 1]))
    with pytest.raises(EdgeResNetError):
        paired_difference_ci(5, 6, 10)


def test_a_budget_reads_in_the_right_number() -> None:
    from edgeresnet.accuracy import top1_points

    assert top1_points(1) == "1 top-1 point" and top1_points(1.0) == "1 top-1 point"
    assert top1_points(0.5) == "0.5 top-1 points" and top1_points(2) == "2 top-1 points"
