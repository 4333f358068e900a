"""Benchmark reports: terminal table, Markdown, CSV, JSON and an accuracy-versus-latency plot.

``tables`` makes every cell and line of text, ``files`` the CSV/JSON and writes all four files,
``plot`` draws the figure, ``environment`` describes the machine. What is recommended and why is
decided in :mod:`edgeresnet.bench.recommendation`; the reports only show it.
"""

from __future__ import annotations

from edgeresnet.bench.job import DEFAULT_MAX_ACCURACY_DROP
from edgeresnet.bench.recommendation import accuracy_verdict, best_within_budget, recommend, star_eligibility
from edgeresnet.report.environment import REQUIRED_VERSIONS, SHOWN_VERSIONS, environment_summary
from edgeresnet.report.files import (
    FILES,
    REPORT_FORMAT,
    REPORT_VERSION,
    read_report,
    render_csv,
    report_record,
    write_reports,
)
from edgeresnet.report.plot import draw_accuracy_latency, pareto_front, plot_accuracy_latency, text_extent
from edgeresnet.report.tables import (
    BEST_MARK,
    TIED_MARK,
    budget_note,
    drop_text,
    note_lines,
    print_table,
    recommendation_lines,
    render_markdown,
)

__all__ = [
    "BEST_MARK", "DEFAULT_MAX_ACCURACY_DROP", "FILES", "REPORT_FORMAT", "REPORT_VERSION", "REQUIRED_VERSIONS",
    "SHOWN_VERSIONS", "TIED_MARK", "accuracy_verdict", "best_within_budget", "budget_note", "draw_accuracy_latency",
    "drop_text", "environment_summary", "note_lines", "pareto_front", "plot_accuracy_latency", "print_table",
    "read_report", "recommend", "recommendation_lines", "render_csv", "render_markdown", "report_record",
    "star_eligibility", "text_extent", "write_reports",
]
