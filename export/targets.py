"""One table of export targets: how each builds its FP32 and INT8 artifact from the shared context.

Every INT8 artifact comes from the one calibration table. Accuracy is measured on the shared
evaluation batches with the runtime that will run the artifact (TensorRT's QDQ model through ONNX
Runtime on CPU, since TensorRT itself only exists on the device).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edgeresnet.accuracy import Accuracy, PairedComparison, evaluate_logits
from edgeresnet.backends import all_backends, export_targets, get_backend
from edgeresnet.bundle.layout import MODEL_ONNX
from edgeresnet.bundle.records import QuantizationRecord
from edgeresnet.errors import BackendUnavailableError, ExportError

if TYPE_CHECKING:
    from edgeresnet.export.prepare import ExportContext as _Context
    from edgeresnet.runtime.base import Runner


@dataclass
class BuiltArtifact:
    """One target's model files and what was measured on them."""

    model_file: str
    files: dict[str, Path]
    accuracy: Accuracy
    golden_outputs: np.ndarray
    quantization: QuantizationRecord | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    comparison: PairedComparison | None = None  # INT8 against FP32 on the evaluation images
    layer_report: Any = None  # calibration.layer_report.LayerReport of the quantizers this artifact holds
    pixel_model: str | None = None  # the file among ``files`` that takes uint8 NHWC pixels (ONNX Runtime)


def resolve_targets(requested: Iterable[str] | None) -> list[str]:
    """``None`` → every export target whose export step can run here; ``all`` → every one, checked."""
    available = export_targets()
    if requested is None:
        return [name for name in available if not get_backend(name).missing()]
    names = list(requested)
    if "all" in names:
        names = list(available)
    unknown = [name for name in names if name not in available]
    if unknown:
        raise ExportError(f"unknown target {unknown[0]!r}; choose from {', '.join(available)} or all")
    for name in names:
        missing = get_backend(name).missing()
        if missing:
            raise BackendUnavailableError(
                f"target {name} needs {', '.join(missing)}, which is not installed: {_install_hint(name, missing[0])}"
            )
    return list(dict.fromkeys(names))


def _install_hint(target: str, module: str) -> str:
    """How to install ``module``: the hint of the backend whose runtime it is, else the target's own."""
    owner = next((b for b in all_backends() if b.runtime_module == module), get_backend(target))
    return owner.install_hint


def onnx_artifact(context: _Context, path: Path, accuracy: Accuracy, *,
                   quantization: QuantizationRecord | None = None) -> BuiltArtifact:
    from edgeresnet.backends.onnxruntime.runner import OnnxRuntimeRunner

    with OnnxRuntimeRunner(path, threads=context.options.threads) as runner:
        golden = runner.infer(context.golden_inputs)
    return BuiltArtifact(MODEL_ONNX, {MODEL_ONNX: path}, accuracy, golden, quantization=quantization)


def evaluate_runner(runner: Runner, batches: Iterable[tuple[np.ndarray, np.ndarray]]) -> dict[str, Any]:
    """Top-1/top-5 in percent of any runner over labelled batches."""
    return evaluate_logits(runner.infer, batches).to_dict()
