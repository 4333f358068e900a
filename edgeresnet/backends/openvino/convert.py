"""OpenVINO build steps, files in → files out: ONNX → IR (FP32/FP16), QDQ ONNX → INT8 IR, NNCF INT8 IR.

Every step writes ``out.xml`` and ``out.bin`` atomically: OpenVINO saves into a temporary directory
beside the destination, and the files are renamed into place only once both exist. openvino and
nncf are imported inside the functions, so importing this module is cheap.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

from edgeresnet.backends.openvino import BACKEND
from edgeresnet.backends.openvino.runner import openvino_version, require_openvino
from edgeresnet.errors import BackendUnavailableError, CalibrationError, ExportError, one_line

__all__ = [
    "convert_qdq_to_ir",
    "convert_to_ir",
    "openvino_version",
    "peer_nncf_default",
    "quantize_with_nncf",
]

log = logging.getLogger(__name__)

IrPrecision = Literal["fp32", "fp16"]
NncfPreset = Literal["performance", "mixed"]
NncfModelType = Literal["transformer"]

# The layout every edgeresnet model takes; recorded in the IR so that OpenVINO's batch and
# preprocessing helpers (ov.set_batch, PrePostProcessor) know which axis is which.
_INPUT_LAYOUT = "NCHW"
_NNCF_DEFAULT_SUBSET = 300


def convert_to_ir(
    onnx_path: str | Path,
    out_xml: str | Path,
    *,
    precision: IrPrecision = "fp32",
    batch: int | None = None,
) -> Path:
    """Convert an FP32 ONNX model to an OpenVINO IR with FP32 or FP16 weights.

    Args:
        batch: fix the batch dimension to this size; None keeps the ONNX model's (usually dynamic) batch.

    Returns:
        The path of the written ``.xml``; its ``.bin`` lies beside it.
    """
    if precision not in ("fp32", "fp16"):
        raise ExportError(f"OpenVINO IR precision must be fp32 or fp16, got {precision!r}")
    model = _read_onnx(onnx_path)
    if batch is not None:
        _fix_batch(model, batch, onnx_path)
    return _save_ir(model, out_xml, compress_to_fp16=precision == "fp16")


def fix_ir_batch(xml: str | Path, out_xml: str | Path, batch: int) -> Path:
    """Copy an IR with its batch dimension fixed to ``batch`` (weights and precision unchanged)."""
    ov = require_openvino()
    try:
        model = ov.Core().read_model(str(xml))
    except Exception as error:
        raise ExportError(f"OpenVINO cannot read {xml}: {one_line(error)}") from error
    _fix_batch(model, batch, xml)
    return _save_ir(model, out_xml, compress_to_fp16=False)


def convert_qdq_to_ir(qdq_onnx_path: str | Path, out_xml: str | Path) -> Path:
    """Convert a QDQ ONNX model (QuantizeLinear/DequantizeLinear pairs) to an INT8 OpenVINO IR.

    OpenVINO reads each Q/DQ pair as a FakeQuantize, and its CPU plugin runs the quantized
    convolutions in int8; the IR is saved without FP16 compression so the scales stay exact.
    """
    model = _read_onnx(qdq_onnx_path)
    if not any(op.get_type_name() == "FakeQuantize" for op in model.get_ops()):
        raise ExportError(f"{qdq_onnx_path} has no QuantizeLinear/DequantizeLinear pairs: use convert_to_ir")
    return _save_ir(model, out_xml, compress_to_fp16=False)


def quantize_with_nncf(
    onnx_path: str | Path,
    out_xml: str | Path,
    batches: Iterable[np.ndarray],
    *,
    subset_size: int = 300,
    preset: NncfPreset = "performance",
    fast_bias_correction: bool = True,
    ignored_nodes: Sequence[str] = (),
    model_type: NncfModelType | None = None,
) -> Path:
    """Quantize an FP32 ONNX model to an INT8 OpenVINO IR with NNCF post-training quantization.

    Args:
        batches: float32 NCHW calibration batches of any size, already preprocessed.
        subset_size: how many calibration *images* NNCF collects statistics from.
        ignored_nodes: names of OpenVINO nodes (the ONNX node names) to keep in floating point.
        model_type: ``"transformer"`` enables NNCF's transformer-specific patterns; None for CNNs.
    """
    nncf = _require_nncf()
    if subset_size < 1:
        raise CalibrationError(f"subset_size must be at least 1, got {subset_size}")
    if preset not in ("performance", "mixed"):
        raise ExportError(f"NNCF preset must be 'performance' or 'mixed', got {preset!r}")
    if model_type not in (None, "transformer"):
        raise ExportError(f"NNCF model_type must be None or 'transformer', got {model_type!r}")
    model = _read_onnx(onnx_path)
    # NNCF counts subset_size in dataset items and collects statistics per item, so items of one
    # image each make subset_size mean images whatever batch size the caller loads with; bigger
    # items would also make fast bias correction average over the batch axis it assumes is 1.
    images = _ImageItems(batches, limit=subset_size)
    _require_items(images)
    options: dict[str, Any] = {
        "subset_size": subset_size,
        "preset": nncf.QuantizationPreset(preset),
        "fast_bias_correction": fast_bias_correction,
    }
    if model_type is not None:
        options["model_type"] = nncf.ModelType(model_type)
    if ignored_nodes:
        options["ignored_scope"] = nncf.IgnoredScope(names=list(ignored_nodes))
    quantized = _run_nncf(nncf, model, nncf.Dataset(images), options, onnx_path)
    return _save_ir(quantized, out_xml, compress_to_fp16=False)


def peer_nncf_default(onnx_path: str | Path, out_xml: str | Path, batches: Iterable[np.ndarray]) -> Path:
    """The peer baseline: ``nncf.quantize`` and ``ov.save_model`` with every default, as NNCF's basic flow.

    ``batches`` become NNCF dataset items exactly as given (a user's DataLoader batches), so its
    default subset_size of 300 counts batches here, not images.
    """
    nncf = _require_nncf()
    model = _read_onnx(onnx_path)
    items = _Reiterable(batches, limit=_NNCF_DEFAULT_SUBSET)  # nncf reads no more than this by default
    _require_items(items)
    quantized = _run_nncf(nncf, model, nncf.Dataset(items), {}, onnx_path)
    return _save_ir(quantized, out_xml, compress_to_fp16=True)


class _Reiterable:
    """An iterable NNCF can walk more than once (statistics, then bias correction).

    A one-shot iterator (a generator) is materialised on first use, up to ``limit`` arrays.
    """

    def __init__(self, source: Iterable[np.ndarray], limit: int | None = None) -> None:
        self._source = source
        self._limit = limit
        self._cached: list[np.ndarray] | None = None

    def __iter__(self) -> Iterator[np.ndarray]:
        if self._cached is not None:
            return iter(self._cached)
        if iter(self._source) is self._source:
            self._cached = list(self._arrays())
            return iter(self._cached)
        return self._arrays()

    def _arrays(self) -> Iterator[np.ndarray]:
        for count, array in enumerate(self._source, start=1):
            yield _check_batch(array)
            if self._limit is not None and count >= self._limit:
                return


class _ImageItems(_Reiterable):
    """Calibration batches split into single-image items, at most ``limit`` of them."""

    def _arrays(self) -> Iterator[np.ndarray]:
        count = 0
        for array in self._source:
            batch = _check_batch(array)
            for index in range(batch.shape[0]):
                if self._limit is not None and count >= self._limit:
                    return
                yield batch[index : index + 1]
                count += 1


def _require_items(items: Iterable[np.ndarray]) -> None:
    if next(iter(items), None) is None:
        raise CalibrationError("no calibration images: the calibration batches are empty")


def _check_batch(array: Any) -> np.ndarray:
    if not isinstance(array, np.ndarray) or array.ndim != 4:
        raise CalibrationError(
            f"calibration batches must be 4-D NCHW numpy arrays, got {getattr(array, 'shape', type(array))}"
        )
    return np.ascontiguousarray(array, dtype=np.float32)


def _require_nncf() -> Any:
    require_openvino()
    try:
        import nncf
    except ImportError as error:
        raise BackendUnavailableError(f"NNCF is not installed: {BACKEND.install_hint}") from error
    return nncf


def _run_nncf(nncf: Any, model: Any, dataset: Any, options: dict[str, Any], onnx_path: str | Path) -> Any:
    try:
        with _nncf_output_to_logging():
            return nncf.quantize(model, dataset, **options)
    except (CalibrationError, BackendUnavailableError):
        raise
    except nncf.ValidationError as error:  # e.g. an ignored node name the model does not have
        raise ExportError(f"NNCF cannot quantize {onnx_path}: {one_line(error)}") from error
    except RuntimeError as error:  # OpenVINO failing to infer a calibration item
        raise ExportError(f"NNCF cannot quantize {onnx_path}: {one_line(error)}") from error


@contextlib.contextmanager
def _nncf_output_to_logging() -> Iterator[None]:
    """Route NNCF's messages and progress bars into logging instead of stdout.

    NNCF logs through its own stdout handler on the ``nncf`` logger and draws rich progress bars on
    ``sys.stdout``. While quantizing, its records propagate to the application's logging setup and
    the progress text is captured and logged at DEBUG. ``redirect_stdout`` swaps the process-wide
    ``sys.stdout``, so output from other threads is captured in that window too.
    """
    nncf_logger = logging.getLogger("nncf")
    handlers, propagate = list(nncf_logger.handlers), nncf_logger.propagate
    for handler in handlers:
        nncf_logger.removeHandler(handler)
    nncf_logger.propagate = True
    captured = io.StringIO()
    try:
        with contextlib.redirect_stdout(captured):
            yield
    finally:
        nncf_logger.propagate = propagate
        for handler in handlers:
            nncf_logger.addHandler(handler)
        if captured.getvalue().strip():
            log.debug("NNCF progress:\n%s", captured.getvalue().rstrip())


def _read_onnx(onnx_path: str | Path) -> Any:
    ov = require_openvino()
    path = Path(onnx_path)
    if not path.is_file():
        raise ExportError(f"ONNX model not found: {path}")
    # Ask the ONNX frontend alone first: convert_model on a file no frontend claims probes them all,
    # and the TensorFlow one floods stderr with parse errors before failing.
    if not ov.frontend.FrontEndManager().load_by_framework("onnx").supported(str(path)):
        raise ExportError(f"{path} is not an ONNX model")
    try:
        model = ov.convert_model(str(path))
    except Exception as error:  # the ONNX frontend raises GeneralFailure/RuntimeError on corrupt files
        raise ExportError(f"OpenVINO cannot convert {path}: {one_line(error)}") from error
    _record_layout(ov, model)
    return model


def _record_layout(ov: Any, model: Any) -> None:
    for parameter in model.get_parameters():
        if parameter.get_partial_shape().rank.get_length() == 4:
            parameter.set_layout(ov.Layout(_INPUT_LAYOUT))


def _fix_batch(model: Any, batch: int, onnx_path: str | Path) -> None:
    if batch < 1:
        raise ExportError(f"batch must be at least 1, got {batch}")
    shapes = {}
    for model_input in model.inputs:
        shape = model_input.get_partial_shape()
        shape[0] = batch
        shapes[model_input] = shape
    try:
        model.reshape(shapes)
    except Exception as error:
        raise ExportError(f"cannot fix the batch of {onnx_path} to {batch}: {one_line(error)}") from error


def _save_ir(model: Any, out_xml: str | Path, *, compress_to_fp16: bool) -> Path:
    ov = require_openvino()
    out_xml = Path(out_xml)
    if out_xml.suffix != ".xml":
        raise ExportError(f"an OpenVINO IR path must end in .xml, got {out_xml}")
    out_bin = out_xml.with_suffix(".bin")
    out_xml.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_xml.stem}.", dir=out_xml.parent))
    try:
        ov.save_model(model, str(staging / out_xml.name), compress_to_fp16=compress_to_fp16)
        staged_xml, staged_bin = staging / out_xml.name, staging / out_bin.name
        if not (staged_xml.is_file() and staged_bin.is_file()):
            raise ExportError(f"OpenVINO wrote no {out_xml.name}/{out_bin.name} pair for {out_xml}")
        # Weights first: a reader never meets a new .xml next to an old .bin.
        os.replace(staged_bin, out_bin)
        try:
            os.replace(staged_xml, out_xml)
        except OSError:
            out_bin.unlink(missing_ok=True)
            raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return out_xml
