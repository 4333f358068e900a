"""The accuracy-versus-latency plot: one point per artifact × batch size, each batch size's Pareto front."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from edgeresnet.atomic import atomic_write_with
from edgeresnet.bench.job import DEFAULT_MAX_ACCURACY_DROP
from edgeresnet.bench.recommendation import best_within_budget
from edgeresnet.bench.rows import MODEL_MEASURE, BenchmarkResult, BenchmarkRow
from edgeresnet.report.environment import SHOWN_VERSIONS
from edgeresnet.report.tables import BEST_MARK

_COLOURS = ["tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown"]


def pareto_front(points: Sequence[tuple[float, float]]) -> list[int]:
    """Indices of the points no other point beats on both (lower x = latency, higher y = accuracy).

    Returned in order of increasing x; of identical points only the first is kept.
    """
    order = sorted(range(len(points)), key=lambda i: (points[i][0], -points[i][1], i))
    front: list[int] = []
    best_y = float("-inf")
    for index in order:
        if points[index][1] > best_y:
            front.append(index)
            best_y = points[index][1]
    return front


def plot_accuracy_latency(
    result: BenchmarkResult, path: str | Path, *, max_accuracy_drop: float = DEFAULT_MAX_ACCURACY_DROP
) -> Path:
    """Top-1 versus p50 latency per image, one point per artifact × batch size, and each batch size's front.

    Per-image latency (a call's p50 over its batch size) puts batch sizes on one axis. A row with a
    paired comparison to the FP32 reference carries its 95% interval as an error bar; labels are moved
    apart until none overlaps another (joined to their point by a thin line). Drawn on matplotlib's Agg
    canvas directly, so no pyplot state or display is touched.
    """
    figure, _ = draw_accuracy_latency(result, max_accuracy_drop=max_accuracy_drop)
    return atomic_write_with(path, lambda tmp: figure.savefig(tmp, format="png"))


def draw_accuracy_latency(
    result: BenchmarkResult, *, max_accuracy_drop: float = DEFAULT_MAX_ACCURACY_DROP
) -> tuple[Any, list[Any]]:
    """The plot's figure and its point labels (matplotlib Annotations), laid out and drawn."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(10, 6.5), dpi=120)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    best = best_within_budget(result, max_accuracy_drop=max_accuracy_drop)
    order = {name: i for i, name in enumerate(dict.fromkeys(row.artifact for row in result.rows))}
    measured = sorted((row for row in result.rows if row.measure == MODEL_MEASURE
                       and row.per_image_p50_ms is not None and row.top1 is not None),
                      key=lambda row: (row.batch_size, order[row.artifact]))
    labels = []
    for i, batch in enumerate(sorted({row.batch_size for row in measured})):
        rows = [row for row in measured if row.batch_size == batch]
        labels += _draw_batch(axes, rows, batch, _COLOURS[i % len(_COLOURS)], best.get(batch))
    _decorate(figure, axes, result, max_accuracy_drop, bool(measured))
    _separate_labels(figure, labels)
    return figure, labels


def _draw_batch(axes: Any, rows: list[BenchmarkRow], batch: int, colour: str, best: BenchmarkRow | None) -> list[Any]:
    """One batch size's points, drop intervals, Pareto front and labels."""
    points = [(row.per_image_p50_ms or 0.0, row.top1 or 0.0) for row in rows]
    axes.scatter([p[0] for p in points], [p[1] for p in points], color=colour, label=f"batch {batch}", zorder=3)
    for row, (x, y) in zip(rows, points, strict=True):
        if row.drop_ci95_points is not None and row.drop_points is not None and not row.reference:
            low, high = row.drop_ci95_points  # the drop's interval, as an interval on this row's top-1
            axes.errorbar([x], [y], yerr=[[max(0.0, high - row.drop_points)], [max(0.0, row.drop_points - low)]],
                          color=colour, alpha=0.5, capsize=3, linewidth=1, zorder=2)
    front = [points[j] for j in pareto_front(points)]
    axes.step([p[0] for p in front], [p[1] for p in front], where="post", color=colour, alpha=0.7,
              linestyle="--", zorder=2, label=f"Pareto front, batch {batch}")
    labels = []
    for row, (x, y) in zip(rows, points, strict=True):
        text = f"{BEST_MARK} {row.artifact}" if best is row else row.artifact
        labels.append(axes.annotate(f"{text} (b{batch})", (x, y), textcoords="offset points", xytext=(6, 4),
                                    fontsize=7, zorder=4,
                                    arrowprops={"arrowstyle": "-", "color": "grey", "linewidth": 0.5}))
    return labels


def _decorate(figure: Any, axes: Any, result: BenchmarkResult, max_accuracy_drop: float, measured: bool) -> None:
    """Budget line, axes, title (the machine) and the versions footer."""
    reference = result.reference()
    if reference is not None and reference.top1 is not None:
        axes.axhline(reference.top1 - max_accuracy_drop, color="grey", linewidth=0.8, linestyle=":",
                     label=f"FP32 reference − {max_accuracy_drop:g} pts")
    if not measured:
        axes.text(0.5, 0.5, "no row has both a latency and an accuracy", ha="center", transform=axes.transAxes)
    else:
        axes.set_xscale("log")
        axes.legend(loc="lower right", fontsize=7)
    axes.set_xlabel("p50 latency per image (ms, log scale; a call's p50 / its batch size)")
    axes.set_ylabel("top-1 accuracy (%) — error bars: paired 95% interval of the drop vs FP32")
    environment = result.environment
    gpus = environment.get("gpu") or []
    machine = (gpus[0].get("name", "GPU") if environment.get("device") == "cuda" and gpus
               else f"{environment.get('cpu', {}).get('model', '')}, {environment.get('threads', '?')} threads")
    images = f", {reference.eval_images:,} images" if reference is not None and reference.eval_images else ""
    axes.set_title(f"Accuracy vs latency — {machine}{images}", fontsize=10)
    axes.grid(True, which="both", alpha=0.3)
    versions = environment.get("versions", {})
    figure.text(0.01, 0.01, ", ".join(f"{k} {versions[k]}" for k in SHOWN_VERSIONS if k in versions), fontsize=6,
                color="grey")
    figure.tight_layout(rect=(0, 0.03, 1, 1))


def text_extent(label: Any, renderer: Any) -> Any:
    """A label's own text box in display space (an Annotation's extent would include its leader line)."""
    from matplotlib.text import Text

    return Text.get_window_extent(label, renderer)


def _separate_labels(figure: Any, labels: list[Any], *, gap_px: float = 2.0) -> None:
    """Move labels up (in display space) until no two overlap; points keep their place, lines join them.

    Labels are placed bottom to top; each one that would overlap a label already placed is lifted just
    above it, again until it is clear, so the loop ends after at most one lift per placed label.
    """
    if not labels:
        return
    renderer = figure.canvas.get_renderer()
    points_per_px = 72.0 / figure.dpi
    boxes = [text_extent(label, renderer) for label in labels]
    placed: list[Any] = []
    for i in sorted(range(len(labels)), key=lambda i: (boxes[i].y0, boxes[i].x0)):
        box = boxes[i]
        lift = 0.0
        while True:
            blocking = [other for other in placed if box.overlaps(other)]
            if not blocking:
                break
            step = max(other.y1 for other in blocking) - box.y0 + gap_px
            box = box.translated(0, step)
            lift += step
        if lift:
            x, y = labels[i].xyann
            labels[i].xyann = (x, y + lift * points_per_px)
        placed.append(box)
