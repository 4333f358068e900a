"""Benchmark reports: terminal table, Markdown, CSV, JSON and an accuracy-versus-latency plot.

Every format shows the same rows and carries the environment they were measured in. Per batch size
the fastest artifact whose top-1 stays within ``max_accuracy_drop`` points of the FP32 reference is
marked; the plot draws each batch size's Pareto front (no other point is both faster and more
accurate).
"""

from __future__ import annotations

import csv
import io
import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgeresnet.atomic import atomic_write_json, atomic_write_text, atomic_write_with
from edgeresnet.bench.rows import FILE_MEASURE, MODEL_MEASURE, ROW_FIELDS, BenchmarkResult, BenchmarkRow
from edgeresnet.bundle.vocabulary import DEFAULT_MAX_ACCURACY_DROP  # re-exported: one budget for every stage

if TYPE_CHECKING:
    from rich.console import Console

log = logging.getLogger(__name__)

REPORT_FORMAT = "edgeresnet-benchmark"
# 2: accuracies in percent and agreement_pct (version 1 stored fractions and agreement_top1).
REPORT_VERSION = 2
FILES = {"markdown": "benchmark.md", "csv": "benchmark.csv", "json": "benchmark.json",
         "plot": "accuracy_latency.png"}
SHOWN_VERSIONS = ("python", "torch", "onnxruntime", "onnxruntime-gpu", "openvino", "nncf", "tensorrt", "numpy",
                  "edgeresnet")
# Absent tools are named in the report too: "no TensorRT here" is a fact about the numbers.
REQUIRED_VERSIONS = ("python", "torch", "onnxruntime", "openvino", "tensorrt")
BEST_MARK = "★"
# Floating-point slack so that a drop of exactly the budget counts as within it.
_BUDGET_EPSILON = 1e-9


# --- selection ---------------------------------------------------------------------------------


def accuracy_drop_points(row: BenchmarkRow, reference: BenchmarkRow | None) -> float | None:
    """How many top-1 points ``row`` loses against the reference (negative when it gains)."""
    if reference is None or reference.top1 is None or row.top1 is None:
        return None
    return reference.top1 - row.top1


def best_within_budget(
    result: BenchmarkResult, *, max_accuracy_drop: float = DEFAULT_MAX_ACCURACY_DROP
) -> dict[int, BenchmarkRow]:
    """Per batch size, the row with the lowest p50 latency among those within the accuracy budget.

    Rows with an error or without a latency never qualify. Without an FP32 reference accuracy the
    budget cannot be checked, and the fastest measured row is returned.
    """
    reference = result.reference()
    best: dict[int, BenchmarkRow] = {}
    for row in result.rows:
        if not row.ok or row.latency_p50_ms is None or row.measure != MODEL_MEASURE:
            continue
        if reference is not None and reference.top1 is not None:
            drop = accuracy_drop_points(row, reference)
            if drop is None or drop > max_accuracy_drop + _BUDGET_EPSILON:
                continue
        current = best.get(row.batch_size)
        if current is None or row.latency_p50_ms < (current.latency_p50_ms or float("inf")):
            best[row.batch_size] = row
    return best


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


# --- environment -------------------------------------------------------------------------------


def environment_summary(environment: dict[str, Any]) -> list[tuple[str, str]]:
    """The environment as (label, text) lines, shared by every report format."""
    cpu = environment.get("cpu", {})
    flags = ", ".join(cpu.get("flags", [])) or "none of interest"
    versions = environment.get("versions", {})
    shown = {name: versions[name] for name in SHOWN_VERSIONS if name in versions}
    for name in REQUIRED_VERSIONS:
        shown.setdefault(name, "not installed")
    gpus = environment.get("gpu")
    gpu_text = "; ".join(_gpu_text(g) for g in gpus) if gpus else "none detected"
    measurement = environment.get("measurement", {})
    lines = [
        ("CPU", f"{cpu.get('model', '?')} ({cpu.get('machine', '?')}; flags: {flags})"),
        ("Cores used", (f"{environment.get('threads', '?')} threads of {cpu.get('usable_cores', '?')} usable "
                       f"({cpu.get('logical_cores', '?')} logical)")),
        ("Device", str(environment.get("device", "cpu"))),
        ("GPU", gpu_text),
        ("Versions", ", ".join(f"{name} {version}" for name, version in shown.items())),
        ("Platform", str(environment.get("platform", "?"))),
    ]
    if "data" in environment:
        lines.append(("Data", f"{environment['data']} (evaluation split, {environment.get('eval_images', '?')} images)"))
    if measurement:
        lines.append(("Timing", (f"warmup {measurement.get('warmup')}, then until ≥{measurement.get('min_runs')} runs "
                                f"and ≥{measurement.get('min_time_s')} s (cap {measurement.get('max_time_s')} s)")))
        lines.append(("Peak memory", str(measurement.get("peak_memory", "?"))))
    return lines


def _gpu_text(gpu: dict[str, Any]) -> str:
    """``NVIDIA H100 (sm 9.0, 81559 MiB, driver 550.54.15)``; reports of older versions named fewer facts."""
    facts = [f"sm {gpu['compute_capability']}" if gpu.get("compute_capability") else "",
             f"{gpu['memory_mib']} MiB" if gpu.get("memory_mib") else str(gpu.get("memory.total") or ""),
             f"driver {gpu['driver_version']}" if gpu.get("driver_version") else "",
             f"CUDA {gpu['cuda_driver']}" if gpu.get("cuda_driver") else ""]
    facts = [fact for fact in facts if fact]
    return f"{gpu.get('name', '?')}" + (f" ({', '.join(facts)})" if facts else "")


# --- shared row formatting ---------------------------------------------------------------------

_COLUMNS = ("", "artifact", "backend", "precision", "batch", "p50 ms", "p90 ms", "p99 ms", "img/s",
            "top-1 %", "Δ pts", "agree %", "size MB", "peak MB")


def _fmt(value: float | None, spec: str) -> str:
    return "—" if value is None else format(value, spec)


def _cells(row: BenchmarkRow, reference: BenchmarkRow | None, best: dict[int, BenchmarkRow]) -> list[str]:
    mark = BEST_MARK if best.get(row.batch_size) is row else ("✗" if row.error else "")
    name = row.artifact + (" (ref)" if row.reference else "")
    return [
        mark, name, row.backend, row.precision, str(row.batch_size),
        _fmt(row.latency_p50_ms, ".2f"), _fmt(row.latency_p90_ms, ".2f"), _fmt(row.latency_p99_ms, ".2f"),
        _fmt(row.throughput_ips, ".1f"),
        _fmt(row.top1, ".2f"),
        drop_text(row),
        _fmt(row.agreement_pct, ".2f"),
        _fmt(None if row.file_size_bytes is None else row.file_size_bytes / 1e6, ".2f"),
        _fmt(None if row.peak_memory_bytes is None else row.peak_memory_bytes / 2**20, ".0f"),
    ]


def drop_text(row: BenchmarkRow) -> str:
    """The paired top-1 drop versus the reference with its 95% interval; "—" where it was not measured."""
    if row.reference:
        return "ref"
    if row.drop_points is None or row.drop_ci95_points is None:
        return "—"
    low, high = row.drop_ci95_points
    return f"{row.drop_points:+.2f} [{low:+.2f}, {high:+.2f}]"


def _sorted_rows(result: BenchmarkResult, measure: str = MODEL_MEASURE) -> list[BenchmarkRow]:
    order = {name: i for i, name in enumerate(dict.fromkeys(row.artifact for row in result.rows))}
    rows = [row for row in result.rows if row.measure == measure]
    return sorted(rows, key=lambda row: (row.batch_size, order[row.artifact]))


_FILE_COLUMNS = ("artifact", "backend", "precision", "batch", "p50 ms", "p50 ms/img", "× model p50", "decode ms",
                 "preprocess ms", "inference ms", "img/s pipelined", "files")


def _file_cells(row: BenchmarkRow, model_rows: dict[tuple[str, int], BenchmarkRow]) -> list[str]:
    model = model_rows.get((row.artifact, row.batch_size))
    ratio = (row.latency_p50_ms / model.latency_p50_ms
             if model and model.latency_p50_ms and row.latency_p50_ms is not None else None)
    return [
        row.artifact, row.backend, row.precision, str(row.batch_size), _fmt(row.latency_p50_ms, ".2f"),
        _fmt(row.per_image_p50_ms, ".2f"), _fmt(ratio, ".2f"), _fmt(row.decode_ms, ".2f"),
        _fmt(row.preprocess_ms, ".2f"), _fmt(row.inference_ms, ".2f"), _fmt(row.throughput_ips, ".1f"),
        _fmt(row.input_images, "d"),
    ]


def _file_table(result: BenchmarkResult) -> list[list[str]]:
    model_rows = {(row.artifact, row.batch_size): row for row in _sorted_rows(result)}
    return [_file_cells(row, model_rows) for row in _sorted_rows(result, FILE_MEASURE)]


_FILE_NOTE = ("file → label: image files decoded (reduced-size JPEG decoding, EXIF orientation), resized, cropped "
              "and classified one call after another; decode/preprocess/inference split the mean call; img/s "
              "pipelined is Classifier.predict_iter with decoding overlapped with inference")


def _budget_note(result: BenchmarkResult, max_accuracy_drop: float) -> str:
    reference = result.reference()
    if reference is None or reference.top1 is None:
        return f"{BEST_MARK} fastest per batch size (no FP32 reference accuracy, so the accuracy budget is not checked)"
    images = f" on {reference.eval_images:,} images" if reference.eval_images else ""
    return (f"{BEST_MARK} fastest per batch size within {max_accuracy_drop:g} top-1 points of the FP32 reference "
            f"{reference.artifact} ({reference.top1:.2f}%{images}); Δ pts = top-1 points lost versus it on the same "
            "images [paired 95% interval], agree % = top-1 agreement with it")


def _errors(result: BenchmarkResult) -> list[str]:
    return [f"{row.artifact} ({'' if row.measure == MODEL_MEASURE else 'files, '}batch {row.batch_size}): {row.error}"
            for row in result.rows if row.error]


# --- formats -----------------------------------------------------------------------------------


def print_table(
    result: BenchmarkResult, *, max_accuracy_drop: float = DEFAULT_MAX_ACCURACY_DROP, console: Console | None = None,
    width: int | None = None,
) -> None:
    """The rows as a rich table, then the environment and any errors.

    Without rich (a runtime-only install) the same rows are printed as the Markdown report.
    """
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:
        print(render_markdown(result, max_accuracy_drop=max_accuracy_drop), end="")
        return

    console = console or Console(width=width, soft_wrap=False)
    best = best_within_budget(result, max_accuracy_drop=max_accuracy_drop)
    reference = result.reference()
    table = Table(title="edgeresnet benchmark", caption=_budget_note(result, max_accuracy_drop),
                  caption_justify="left")
    for column in _COLUMNS:
        table.add_column(column, justify="left" if column in ("", "artifact", "backend", "precision") else "right",
                         overflow="fold")
    previous_batch = None
    for row in _sorted_rows(result):
        if previous_batch is not None and row.batch_size != previous_batch:
            table.add_section()
        previous_batch = row.batch_size
        style = "bold green" if best.get(row.batch_size) is row else ("red" if row.error else None)
        table.add_row(*_cells(row, reference, best), style=style)
    console.print(table)
    file_rows = _file_table(result)
    if file_rows:
        files = Table(title="file → label", caption=_FILE_NOTE, caption_justify="left")
        for column in _FILE_COLUMNS:
            files.add_column(column, justify="left" if column in ("artifact", "backend", "precision") else "right")
        for cells in file_rows:
            files.add_row(*cells)
        console.print(files)
    for label, text in environment_summary(result.environment):
        console.print(f"[bold]{label}:[/bold] {text}", highlight=False)
    for line in _errors(result):
        console.print(f"[red]error[/red] {line}", highlight=False)


def render_markdown(result: BenchmarkResult, *, max_accuracy_drop: float = DEFAULT_MAX_ACCURACY_DROP) -> str:
    best = best_within_budget(result, max_accuracy_drop=max_accuracy_drop)
    reference = result.reference()
    lines = ["# edgeresnet benchmark", "", "## Environment", ""]
    lines += [f"- **{label}:** {text}" for label, text in environment_summary(result.environment)]
    lines += ["", "## Results", "", _budget_note(result, max_accuracy_drop) + ".", ""]
    header = ["best", *_COLUMNS[1:]]
    lines.append("| " + " | ".join(header) + " |")
    lines.append("| " + " | ".join("---" if c in ("best", "artifact", "backend", "precision") else "---:"
                                   for c in header) + " |")
    for row in _sorted_rows(result):
        cells = [cell.replace("|", "\\|") for cell in _cells(row, reference, best)]
        lines.append("| " + " | ".join(cells) + " |")
    file_rows = _file_table(result)
    if file_rows:
        lines += ["", "## File → label", "", _FILE_NOTE + ".", ""]
        lines.append("| " + " | ".join(_FILE_COLUMNS) + " |")
        lines.append("| " + " | ".join("---" if c in ("artifact", "backend", "precision") else "---:"
                                       for c in _FILE_COLUMNS) + " |")
        lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |" for cells in file_rows]
    errors = _errors(result)
    if errors:
        lines += ["", "## Errors", ""] + [f"- {line}" for line in errors]
    return "\n".join(lines) + "\n"


def _environment_columns(environment: dict[str, Any]) -> dict[str, str]:
    """A few environment facts repeated on every CSV line, so a CSV alone still says where it ran."""
    cpu = environment.get("cpu", {})
    versions = environment.get("versions", {})
    gpus = environment.get("gpu") or []
    columns = {
        "env_cpu": str(cpu.get("model", "")),
        "env_cpu_flags": " ".join(cpu.get("flags", [])),
        "env_threads": str(environment.get("threads", "")),
        "env_gpu": "; ".join(_gpu_text(g) for g in gpus),
    }
    for name in REQUIRED_VERSIONS:
        columns[f"env_{name}"] = versions.get(name, "")
    return columns


def render_csv(result: BenchmarkResult) -> str:
    environment = _environment_columns(result.environment)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=[*ROW_FIELDS, *environment], lineterminator="\n")
    writer.writeheader()
    for row in result.rows:
        writer.writerow({**{k: "" if v is None else v for k, v in row.to_dict().items()}, **environment})
    return buffer.getvalue()


def report_record(result: BenchmarkResult, *, max_accuracy_drop: float = DEFAULT_MAX_ACCURACY_DROP) -> dict[str, Any]:
    """The JSON report: rows, environment, and which row is best per batch size."""
    best = best_within_budget(result, max_accuracy_drop=max_accuracy_drop)
    return {
        "format": REPORT_FORMAT,
        "format_version": REPORT_VERSION,
        "max_accuracy_drop": max_accuracy_drop,
        "best_within_budget": {str(batch): row.artifact for batch, row in sorted(best.items())},
        **result.to_dict(),
    }


def read_report(path: str | Path) -> BenchmarkResult:
    """Load a ``benchmark.json`` back into a result (to re-render or compare runs)."""
    from edgeresnet.errors import EdgeResNetError

    record = json.loads(Path(path).read_text(encoding="utf-8"))
    if record.get("format") != REPORT_FORMAT:
        raise EdgeResNetError(f"{path} is not an edgeresnet benchmark report")
    version = record.get("format_version", 1)
    if not isinstance(version, int) or version > REPORT_VERSION:
        raise EdgeResNetError(f"{path} is a version {version} report; this edgeresnet reads up to {REPORT_VERSION}")
    if version == 1:
        record = {**record, "rows": [_row_from_version_1(row) for row in record["rows"]]}
    return BenchmarkResult.from_dict(record)


def _row_from_version_1(row: dict[str, Any]) -> dict[str, Any]:
    """Version 1 stored accuracies and agreement as fractions; every version since, in percent."""
    row = dict(row)
    for name in ("top1", "top5"):
        if row.get(name) is not None:
            row[name] = 100.0 * row[name]
    agreement = row.pop("agreement_top1", None)
    row["agreement_pct"] = None if agreement is None else 100.0 * agreement
    return row


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
    measured = [row for row in _sorted_rows(result) if row.per_image_p50_ms is not None and row.top1 is not None]
    colours = ["tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown"]
    labels = []
    for i, batch in enumerate(sorted({row.batch_size for row in measured})):
        rows = [row for row in measured if row.batch_size == batch]
        points = [(row.per_image_p50_ms or 0.0, row.top1 or 0.0) for row in rows]
        colour = colours[i % len(colours)]
        axes.scatter([p[0] for p in points], [p[1] for p in points], color=colour, label=f"batch {batch}", zorder=3)
        for row, (x, y) in zip(rows, points, strict=True):
            if row.drop_ci95_points is not None and row.drop_points is not None and not row.reference:
                low, high = row.drop_ci95_points  # the drop's interval, as an interval on this row's top-1
                axes.errorbar([x], [y], yerr=[[max(0.0, high - row.drop_points)], [max(0.0, row.drop_points - low)]],
                              color=colour, alpha=0.5, capsize=3, linewidth=1, zorder=2)
        front = [points[j] for j in pareto_front(points)]
        axes.step([p[0] for p in front], [p[1] for p in front], where="post", color=colour, alpha=0.7,
                  linestyle="--", zorder=2, label=f"Pareto front, batch {batch}")
        for row, (x, y) in zip(rows, points, strict=True):
            text = f"{BEST_MARK} {row.artifact}" if best.get(batch) is row else row.artifact
            labels.append(axes.annotate(f"{text} (b{batch})", (x, y), textcoords="offset points", xytext=(6, 4),
                                        fontsize=7, zorder=4,
                                        arrowprops={"arrowstyle": "-", "color": "grey", "linewidth": 0.5}))
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
    _separate_labels(figure, labels)
    return figure, labels


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


def write_reports(
    result: BenchmarkResult, directory: str | Path, *, max_accuracy_drop: float = DEFAULT_MAX_ACCURACY_DROP
) -> dict[str, Path]:
    """Write benchmark.md, benchmark.csv, benchmark.json and accuracy_latency.png, each atomically."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    return {
        "markdown": atomic_write_text(directory / FILES["markdown"],
                                      render_markdown(result, max_accuracy_drop=max_accuracy_drop)),
        "csv": atomic_write_text(directory / FILES["csv"], render_csv(result)),
        "json": atomic_write_json(directory / FILES["json"],
                                  report_record(result, max_accuracy_drop=max_accuracy_drop)),
        **_plot_if_possible(result, directory / FILES["plot"], max_accuracy_drop),
    }


def _plot_if_possible(result: BenchmarkResult, path: Path, max_accuracy_drop: float) -> dict[str, Path]:
    """The plot needs matplotlib (the ``build`` extra); a runtime-only install writes the other reports."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        log.warning("no accuracy_latency.png: matplotlib is not installed (pip install 'edgeresnet[build]')")
        return {}
    return {"plot": plot_accuracy_latency(result, path, max_accuracy_drop=max_accuracy_drop)}
