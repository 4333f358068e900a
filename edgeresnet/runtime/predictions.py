"""Writing the results of ``Classifier.predict_iter`` as a CSV or JSON Lines file, one row per image.

A file that could not be classified keeps its row, with ``error`` saying why. Rows are streamed to a
temporary file beside the destination and renamed into place only when the run completes, so a
killed run never leaves a half-written file that looks finished, and an existing file is replaced
only when the caller says so.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Literal

from edgeresnet.atomic import atomic_write_with
from edgeresnet.errors import EdgeResNetError
from edgeresnet.runtime.records import FilePrediction

OutputFormat = Literal["csv", "jsonl"]
OUTPUT_FORMATS: dict[str, OutputFormat] = {".csv": "csv", ".jsonl": "jsonl"}
# `ood`: true when the image looks unlike the training data, false when it passed, empty when not checked.
CSV_COLUMNS = ("image", "label", "index", "probability", "top_k", "error", "ood")


def output_format(path: Path) -> OutputFormat:
    """The format a predictions file's suffix names; any other suffix is a user error."""
    try:
        return OUTPUT_FORMATS[path.suffix.lower()]
    except KeyError:
        raise EdgeResNetError(
            f"--output must end in {' or '.join(OUTPUT_FORMATS)}, got {path.name}"
        ) from None


def check_output(path: Path, *, overwrite: bool) -> OutputFormat:
    """Refuse before any work starts: an unknown suffix, a directory, or an existing file without overwrite."""
    kind = output_format(path)
    if path.is_dir():
        raise EdgeResNetError(f"--output {path} is a directory; name a .csv or .jsonl file")
    if path.exists() and not overwrite:
        raise EdgeResNetError(f"{path} exists; pass --overwrite to replace it")
    return kind


def write_predictions(
    results: Iterable[FilePrediction],
    path: Path,
    *,
    overwrite: bool = False,
    on_row: Callable[[FilePrediction], None] | None = None,
) -> tuple[int, int]:
    """Stream ``results`` into ``path`` (.csv or .jsonl); returns (rows, error rows)."""
    kind = check_output(path, overwrite=overwrite)
    counts = [0, 0]

    def write(temporary: Path) -> None:
        with temporary.open("w", encoding="utf-8", newline="") as handle:
            writer = csv.writer(handle) if kind == "csv" else None
            if writer is not None:
                writer.writerow(CSV_COLUMNS)
            for result in results:
                counts[0] += 1
                counts[1] += 0 if result.ok else 1
                if writer is not None:
                    writer.writerow(csv_row(result))
                else:
                    handle.write(json.dumps(result.to_dict()) + "\n")
                if on_row is not None:
                    on_row(result)

    atomic_write_with(path, write)
    return counts[0], counts[1]


def csv_row(result: FilePrediction) -> list[object]:
    """One CSV row: the top-1 class, and every ranked class as ``label:probability`` joined by ``;``."""
    if not result.ok or not result.predictions:
        return [result.path, "", "", "", "", result.error or "", ""]
    best = result.predictions[0]
    ranked = ";".join(f"{p.label}:{p.probability:.6f}" for p in result.predictions)
    ood = "" if result.ood is None else str(result.ood.flagged).lower()
    return [result.path, best.label, best.index, f"{best.probability:.6f}", ranked, "", ood]
