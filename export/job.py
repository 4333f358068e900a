"""`ExportJob`: every choice `export` makes, declared once with its default and its check.

The CLI builds one from its flags, :func:`edgeresnet.export_model` takes one (or builds it from keyword
arguments), the pipeline builds one for its export stage, and the workflow reads it. Pure Python on top
of the vocabulary, so the CLI can import it without loading numpy, onnx or torch.

Messages name the fields as keyword arguments (``calib_size=``): the CLI checks its own flags first, so
a command-line user sees flag names and a Python user sees keyword names.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from edgeresnet.bundle.vocabulary import (
    CALIB_METHODS,
    DEFAULT_MAX_ACCURACY_DROP,
    TARGETS,
    CalibMethod,
    Target,
)
from edgeresnet.errors import ExportError

MIN_OPSET = 17
MIN_INPUT_SIZE = 28
# Options that only mean something for INT8: given without ``int8=True`` they are a mistake, not a no-op.
INT8_ONLY = ("calib_data", "calib_size", "calib_table", "strict_gate")


@dataclass(frozen=True)
class ExportJob:
    """One export: ``model`` (a checkpoint directory, or an architecture name with ``weights``) into ``output``.

    Attributes:
        targets: runtimes to build for, or ``("all",)``; None: every target whose export step runs here.
        data: evaluation data (its evaluation split); default ``calib_data``, else the checkpoint's data.
        calib_data: calibration data (its calibration split, never the evaluation split).
        calib_size: class-balanced calibration images; None: the whole calibration split, up to 512.
        calib_table: rebuild INT8 from this calibration table instead of recalibrating.
        max_accuracy_drop: the accuracy gate's budget, top-1 points of INT8 against FP32.
        strict_gate: publish INT8 only when the drop's whole 95% interval is within the budget.
        batch: static batch size of the artifacts (None: dynamic).
        eval_limit: evaluate on a class-balanced subset of this many images (None: the whole split).
        threads: runtime threads for evaluation (None: the runtime's default).
        overwrite: replace bundles a previous export wrote into ``output``.
    """

    model: str
    output: Path
    weights: Path | None = None
    num_classes: int | None = None
    in_chans: Literal[1, 3] | None = None
    input_size: int | None = None
    int8: bool = False
    targets: tuple[Target | Literal["all"], ...] | None = None
    data: str | None = None
    calib_data: str | None = None
    calib_size: int | None = None
    calib_method: CalibMethod = "auto"
    calib_table: Path | None = None
    max_accuracy_drop: float = DEFAULT_MAX_ACCURACY_DROP
    strict_gate: bool = False
    opset: int = MIN_OPSET
    batch: int | None = None
    eval_limit: int | None = None
    threads: int | None = None
    overwrite: bool = False

    def __post_init__(self) -> None:
        # Paths and sequences arrive as str and list from Python callers; the record keeps one type each.
        set_field = object.__setattr__
        set_field(self, "model", str(self.model))
        set_field(self, "output", Path(self.output))
        for name in ("weights", "calib_table"):
            if getattr(self, name) is not None:
                set_field(self, name, Path(getattr(self, name)))
        if self.targets is not None:
            targets = (self.targets,) if isinstance(self.targets, str) else tuple(self.targets)
            set_field(self, "targets", targets or None)
        self._check()

    def _check(self) -> None:
        for name in ("num_classes", "calib_size", "batch", "eval_limit", "threads"):
            _at_least(name, getattr(self, name), 1)
        _at_least("input_size", self.input_size, MIN_INPUT_SIZE)
        _at_least("opset", self.opset, MIN_OPSET)
        if self.in_chans is not None and self.in_chans not in (1, 3):
            raise ExportError(f"in_chans= must be 1 or 3, got {self.in_chans!r}")
        drop = self.max_accuracy_drop
        if isinstance(drop, bool) or not isinstance(drop, int | float) or not (math.isfinite(drop) and drop >= 0):
            raise ExportError(f"max_accuracy_drop= must be a finite number of points >= 0, got {drop!r}")
        if self.calib_method not in CALIB_METHODS:
            raise ExportError(f"unknown calib_method= {self.calib_method!r}; choose from {', '.join(CALIB_METHODS)}")
        unknown = [target for target in self.targets or () if target not in (*TARGETS, "all")]
        if unknown:
            raise ExportError(f"unknown target {unknown[0]!r}; choose from {', '.join(TARGETS)} or all")
        if not self.int8:
            given = [f"{name}=" for name in INT8_ONLY if getattr(self, name) not in (None, False)]
            if self.calib_method != "auto":
                given.append("calib_method=")
            if given:
                raise ExportError(f"{', '.join(given)} need int8=True")

    @classmethod
    def from_keywords(cls, model: str | Path, output: str | Path, **options: Any) -> ExportJob:
        """The keyword form of :func:`edgeresnet.export_model`; an unknown keyword is a one-line error."""
        known = {field.name for field in dataclasses.fields(cls)} - {"model", "output"}
        unknown = sorted(set(options) - known)
        if unknown:
            close = difflib.get_close_matches(unknown[0], sorted(known), n=1)
            hint = f" (did you mean {close[0]}=?)" if close else ""
            raise ExportError(f"export_model() got an unknown option {unknown[0]}={hint}")
        return cls(model=str(model), output=Path(output), **options)


def _at_least(name: str, value: Any, minimum: int) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < minimum):
        raise ExportError(f"{name}= must be an integer >= {minimum}, got {value!r}")
