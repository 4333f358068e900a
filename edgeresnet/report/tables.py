"""The benchmark as tables: the terminal (rich) table and the Markdown report, from one set of cells.

Every format shows the same rows and carries the environment they were measured in. The ★ marks the
recommendation per batch size (:mod:`edgeresnet.bench.recommendation`): the fastest row that runs natively
here and that the paired accuracy evidence does not put over the budget ("Δ unresolved" beside its name
when that evidence straddles the budget), ``≈`` on rows tied with it within the timing noise. All cell and note text is made here
(one place for formats, intervals and plurals).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from edgeresnet.accuracy import count_of, format_difference, top1_points
from edgeresnet.bench.job import DEFAULT_MAX_ACCURACY_DROP
from edgeresnet.bench.recommendation import Recommendation, busy_warning, recommend
from edgeresnet.bench.rows import (
    FILE_MEASURE,
    MODEL_MEASURE,
    THROUGHPUT_MEASURE,
    BenchmarkResult,
    BenchmarkRow,
)
from edgeresnet.limits import printable
from edgeresnet.report.environment import environment_summary

if TYPE_CHECKING:
    from rich.console import Console

BEST_MARK = "★"
TIED_MARK = "≈"
_COLUMNS = ("", "artifact", "backend", "precision", "batch", "p50 ms", "p90 ms", "p99 ms", "img/s",
            "top-1 %", "Δ pts", "agree %", "size MB", "peak MB")
_THROUGHPUT_COLUMNS = ("", "artifact", "backend", "precision", "batch", "requests", "img/s", "p50 ms", "p90 ms",
                       "p99 ms", "top-1 %", "Δ pts", "size MB")
_FILE_COLUMNS = ("artifact", "backend", "precision", "batch", "p50 ms", "p50 ms/img", "× model p50", "decode ms",
                 "preprocess ms", "inference ms", "img/s pipelined", "files")
_LEFT = ("", "artifact", "backend", "precision")
_FILE_NOTE = ("file → label: image files decoded (reduced-size JPEG decoding, EXIF orientation), resized, cropped "
              "and classified one call after another; decode/preprocess/inference split the mean call; img/s "
              "pipelined is Classifier.predict_iter with decoding overlapped with inference")
_THROUGHPUT_NOTE = ("throughput: requests kept in flight at once (OpenVINO THROUGHPUT hint with its optimal number "
                    "of asynchronous requests, concurrent ONNX Runtime sessions, TensorRT execution contexts); "
                    "img/s completed, latency of each request")


def fmt(value: float | None, spec: str) -> str:
    return "—" if value is None else format(value, spec)


def drop_text(row: BenchmarkRow) -> str:
    """The paired top-1 drop versus the reference with its 95% interval; "—" where it was not measured."""
    if row.reference:
        return "ref"
    if row.drop_points is None or row.drop_ci95_points is None:
        return "—"
    return format_difference(row.drop_points, row.drop_ci95_points)


def _mark(row: BenchmarkRow, chosen: dict[int, Recommendation]) -> str:
    choice = chosen.get(row.batch_size)
    if choice is not None and choice.row is row:
        return BEST_MARK
    if choice is not None and any(t is row for t in choice.tied):
        return TIED_MARK
    return "✗" if row.error else ""


def _name(row: BenchmarkRow, chosen: dict[int, Recommendation]) -> str:
    choice = chosen.get(row.batch_size)
    doubt = " (Δ unresolved)" if choice is not None and choice.row is row and choice.verdict == "unresolved" else ""
    return row.artifact + (" (ref)" if row.reference else "") + (" [proxy]" if row.proxy_for else "") + doubt


def _size_cells(row: BenchmarkRow) -> list[str]:
    return [fmt(None if row.file_size_bytes is None else row.file_size_bytes / 1e6, ".2f")]


def _cells(row: BenchmarkRow, chosen: dict[int, Recommendation]) -> list[str]:
    return [
        _mark(row, chosen), _name(row, chosen), row.backend, row.precision, str(row.batch_size),
        fmt(row.latency_p50_ms, ".2f"), fmt(row.latency_p90_ms, ".2f"), fmt(row.latency_p99_ms, ".2f"),
        fmt(row.throughput_ips, ".1f"), fmt(row.top1, ".2f"), drop_text(row), fmt(row.agreement_pct, ".2f"),
        *_size_cells(row), fmt(None if row.peak_memory_bytes is None else row.peak_memory_bytes / 2**20, ".0f"),
    ]


def _throughput_cells(row: BenchmarkRow, chosen: dict[int, Recommendation]) -> list[str]:
    return [
        _mark(row, chosen), _name(row, chosen), row.backend, row.precision, str(row.batch_size), fmt(row.streams, "d"),
        fmt(row.throughput_ips, ".1f"), fmt(row.latency_p50_ms, ".2f"), fmt(row.latency_p90_ms, ".2f"),
        fmt(row.latency_p99_ms, ".2f"), fmt(row.top1, ".2f"), drop_text(row), *_size_cells(row),
    ]


def _sorted_rows(result: BenchmarkResult, measure: str = MODEL_MEASURE) -> list[BenchmarkRow]:
    order = {name: i for i, name in enumerate(dict.fromkeys(row.artifact for row in result.rows))}
    rows = [row for row in result.rows if row.measure == measure]
    return sorted(rows, key=lambda row: (row.batch_size, order[row.artifact]))


def _file_cells(row: BenchmarkRow, model_rows: dict[tuple[str, int], BenchmarkRow]) -> list[str]:
    model = model_rows.get((row.artifact, row.batch_size))
    ratio = (row.latency_p50_ms / model.latency_p50_ms
             if model and model.latency_p50_ms and row.latency_p50_ms is not None else None)
    return [
        row.artifact, row.backend, row.precision, str(row.batch_size), fmt(row.latency_p50_ms, ".2f"),
        fmt(row.per_image_p50_ms, ".2f"), fmt(ratio, ".2f"), fmt(row.decode_ms, ".2f"),
        fmt(row.preprocess_ms, ".2f"), fmt(row.inference_ms, ".2f"), fmt(row.throughput_ips, ".1f"),
        fmt(row.input_images, "d"),
    ]


def _tables(result: BenchmarkResult, max_accuracy_drop: float) -> list[tuple[str, tuple[str, ...], list[list[str]], str]]:
    """(title, columns, rows of cells, caption) of each table that has rows, in the order they print."""
    latency = recommend(result, max_accuracy_drop=max_accuracy_drop)
    throughput = recommend(result, max_accuracy_drop=max_accuracy_drop, measure=THROUGHPUT_MEASURE)
    model_rows = {(row.artifact, row.batch_size): row for row in _sorted_rows(result)}
    tables = [
        ("edgeresnet benchmark", _COLUMNS, [_cells(r, latency) for r in _sorted_rows(result)],
         budget_note(result, max_accuracy_drop)),
        ("throughput", _THROUGHPUT_COLUMNS,
         [_throughput_cells(r, throughput) for r in _sorted_rows(result, THROUGHPUT_MEASURE)], _THROUGHPUT_NOTE),
        ("file → label", _FILE_COLUMNS,
         [_file_cells(r, model_rows) for r in _sorted_rows(result, FILE_MEASURE)], _FILE_NOTE),
    ]
    return [table for table in tables if table[2] or table[0] == "edgeresnet benchmark"]


def budget_note(result: BenchmarkResult, max_accuracy_drop: float) -> str:
    reference = result.reference()
    rule = (f"{BEST_MARK} recommended per batch size: the fastest that runs natively here (never a [proxy] row) and "
            f"that the accuracy evidence does not put over budget (\"Δ unresolved\" where the interval straddles it); "
            f"{TIED_MARK} tied with it within the timing noise")
    if not any(row.top1 is not None for row in result.rows):
        return f"{rule}; accuracy not measured (no --data)"
    if reference is None or reference.top1 is None:
        return f"{rule}; no FP32 reference accuracy, so the accuracy budget is not checked"
    images = f" on {count_of(reference.eval_images, 'image')}" if reference.eval_images else ""
    return (f"{rule}; budget {top1_points(max_accuracy_drop)} versus the FP32 reference {reference.artifact} "
            f"({reference.top1:.2f}%{images}); Δ pts = top-1 points lost versus it on the same images (paired 95% "
            "interval), agree % = top-1 agreement with it")


def recommendation_lines(result: BenchmarkResult, max_accuracy_drop: float = DEFAULT_MAX_ACCURACY_DROP) -> list[str]:
    """One line per batch size (and per throughput batch size): what to ship and why."""
    lines = [f"recommended for latency at {r.describe()}"
             for r in recommend(result, max_accuracy_drop=max_accuracy_drop).values()]
    lines += [f"recommended for throughput at {r.describe()}"
              for r in recommend(result, max_accuracy_drop=max_accuracy_drop, measure=THROUGHPUT_MEASURE).values()]
    if not lines and any(row.measure != FILE_MEASURE for row in result.rows):
        lines.append("no recommendation: no row both ran here natively and stayed within the accuracy budget")
    return lines


def note_lines(result: BenchmarkResult) -> list[str]:
    """Runtimes, skipped references, doubts about the host: one line each."""
    runtimes = {row.artifact: row.runtime for row in result.rows if row.runtime}
    lines = [f"runtime of {name}: {text}" for name, text in runtimes.items()]
    proxies = sorted({row.artifact for row in result.rows if row.proxy_for})
    if proxies:
        lines.append(f"[proxy] {', '.join(proxies)}: the network an engine is built from, measured through another "
                     "runtime; build the engine on the device (edgeresnet compile) to benchmark what ships")
    lines += result.notes
    warning = busy_warning(result)
    return lines + ([warning] if warning else [])


def error_lines(result: BenchmarkResult) -> list[str]:
    return [f"{row.artifact} ({'' if row.measure == MODEL_MEASURE else row.measure + ', '}batch {row.batch_size}): "
            f"{row.error}" for row in result.rows if row.error]


def print_table(
    result: BenchmarkResult, *, max_accuracy_drop: float = DEFAULT_MAX_ACCURACY_DROP, console: Console | None = None,
    width: int | None = None,
) -> None:
    """The tables, the environment, notes, errors, and last the recommendation(s).

    Without rich (a runtime-only install) the same content is printed as the Markdown report.
    """
    try:
        from rich.console import Console
        from rich.markup import escape
        from rich.table import Table
    except ImportError:
        print(printable(render_markdown(result, max_accuracy_drop=max_accuracy_drop), keep_newlines=True), end="")
        return
    console = console or Console(width=width, soft_wrap=False)
    for title, columns, rows, caption in _tables(result, max_accuracy_drop):
        # Escaped: rich reads "[...]" in plain text as markup and drops it (an interval, a [proxy] tag).
        table = Table(title=title, caption=escape(caption), caption_justify="left")
        for column in columns:
            table.add_column(column, justify="left" if column in _LEFT else "right", overflow="fold")
        previous = None
        for cells in rows:
            if previous is not None and cells[4] != previous:
                table.add_section()
            previous = cells[4]
            style = "bold green" if cells[0].startswith(BEST_MARK) else ("red" if cells[0] == "✗" else None)
            # Artifact names and errors come from folders and files anyone names: control characters escaped.
            table.add_row(*(escape(printable(cell)) for cell in cells), style=style)
        console.print(table)
    for label, text in environment_summary(result.environment):
        console.print(f"[bold]{label}:[/bold] {escape(text)}", highlight=False)
    # One terminal line each (soft_wrap): a line that says one thing stays one line for grep and logs.
    for line in note_lines(result):
        console.print(f"[yellow]note[/yellow] {escape(printable(line))}", highlight=False, soft_wrap=True)
    for line in error_lines(result):
        console.print(f"[red]error[/red] {escape(printable(line))}", highlight=False, soft_wrap=True)
    for line in recommendation_lines(result, max_accuracy_drop):
        console.print(f"[bold green]{escape(line)}[/bold green]", highlight=False, soft_wrap=True)


def render_markdown(result: BenchmarkResult, *, max_accuracy_drop: float = DEFAULT_MAX_ACCURACY_DROP) -> str:
    lines = ["# edgeresnet benchmark", "", "## Environment", ""]
    lines += [f"- **{label}:** {text}" for label, text in environment_summary(result.environment)]
    for title, columns, rows, caption in _tables(result, max_accuracy_drop):
        heading = "Results" if title == "edgeresnet benchmark" else title[0].upper() + title[1:]
        header = ["best" if c == "" else c for c in columns]
        lines += ["", f"## {heading}", "", caption + ".", "", "| " + " | ".join(header) + " |",
                  "| " + " | ".join("---" if c in _LEFT else "---:" for c in columns) + " |"]
        lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |" for cells in rows]
    for heading, items in (("Notes", note_lines(result)), ("Errors", error_lines(result)),
                           ("Recommendation", recommendation_lines(result, max_accuracy_drop))):
        if items:
            lines += ["", f"## {heading}", ""] + [f"- {line}" for line in items]
    return "\n".join(lines) + "\n"
