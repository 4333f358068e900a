"""What an export hands back: typed records, read by field (the CLI's table, the pipeline, the API).

``export_report.json`` is :meth:`ExportReport.to_dict`; nothing reads the file back to make decisions.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgeresnet.accuracy import Accuracy, PairedComparison
from edgeresnet.bundle.records import CalibrationRecord, Provenance, QuantizationRecord
from edgeresnet.bundle.vocabulary import GateVerdict

if TYPE_CHECKING:
    from edgeresnet.calibration.gate import GateRefusal
    from edgeresnet.calibration.layer_report import LayerReport
    from edgeresnet.parity import ParityCheck


@dataclass(frozen=True)
class BundleSummary:
    """One published bundle: its accuracy, its INT8 record, and its paired comparison with FP32."""

    model_file: str
    accuracy: Accuracy
    quantization: QuantizationRecord | None = None
    comparison: PairedComparison | None = None  # INT8 only: against FP32 on the same images

    @property
    def gate_verdict(self) -> GateVerdict | None:
        return self.quantization.gate_verdict if self.quantization else None

    def to_dict(self) -> dict[str, Any]:
        return {"model_file": self.model_file, "accuracy": self.accuracy.to_dict(),
                "quantization": self.quantization.to_dict() if self.quantization else None,
                "comparison": self.comparison.to_dict() if self.comparison else None}


@dataclass(frozen=True)
class ExportReport:
    """Everything one export measured and decided, for every bundle it published or refused."""

    architecture: str
    fp32: Accuracy
    parity: ParityCheck  # PyTorch against the FP32 ONNX
    calibration: CalibrationRecord | None
    bundles: dict[str, BundleSummary]
    refused: dict[str, GateRefusal]  # INT8 artifacts the accuracy gate refused: not published
    warnings: tuple[str, ...]  # each distinct "cannot resolve" line once
    max_accuracy_drop: float
    strict_gate: bool
    layer_reports: dict[str, LayerReport]
    seconds: float
    accuracy_measured: bool  # False for an FP32 export of a weights file without labelled data
    provenance: Provenance

    def to_dict(self) -> dict[str, Any]:
        """The record ``export_report.json`` holds; accuracies in percent, drops in points."""
        return {
            "architecture": self.architecture,
            "fp32": self.fp32.to_dict(),
            "parity": self.parity.to_dict(),
            "calibration": self.calibration.to_dict() if self.calibration else None,
            "bundles": {name: summary.to_dict() for name, summary in self.bundles.items()},
            "refused": {name: refusal.to_dict() for name, refusal in self.refused.items()},
            "warnings": list(self.warnings),
            "max_accuracy_drop": self.max_accuracy_drop,
            "strict_gate": self.strict_gate,
            "layer_reports": {name: report.to_dict() for name, report in self.layer_reports.items()},
            "seconds": round(self.seconds, 1),
            "accuracy_measured": self.accuracy_measured,
            "provenance": self.provenance.to_dict(),
        }


@dataclass(frozen=True)
class ExportResult:
    """Where the export published its bundles (name -> directory), and its report."""

    output: Path
    report: ExportReport
    bundles: dict[str, Path] = field(default_factory=dict)
    # An earlier run's entries this one did not rebuild (an INT8 bundle refused this time): taken away with
    # the publish, or left where the user changed them during the run.
    withdrawn: tuple[Path, ...] = ()
    left: tuple[Path, ...] = ()

    @property
    def refused(self) -> dict[str, GateRefusal]:
        """INT8 artifacts the accuracy gate refused (not published), with :meth:`GateRefusal.describe`."""
        return self.report.refused
