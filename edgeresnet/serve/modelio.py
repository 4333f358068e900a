"""The inputs and outputs a model file really declares, read from the file, not from the manifest.

A server checks a request against the model's own tensor names, types and shapes; the manifest
records the input only, so the output's name and type are read here from the file the server loads
(or, for a TensorRT engine, from the ONNX network it was built from).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from edgeresnet.backends import get_backend
from edgeresnet.bundle.model_bytes import ModelBytes
from edgeresnet.errors import BundleError, one_line


@dataclass(frozen=True)
class TensorInfo:
    name: str
    dtype: str  # as the runtime spells it: tensor(float), f32, uint8 ...
    shape: tuple[int | None, ...]  # None where the axis is dynamic


@dataclass(frozen=True)
class ModelIO:
    inputs: tuple[TensorInfo, ...]
    outputs: tuple[TensorInfo, ...]


def onnx_io(model: Path | ModelBytes) -> ModelIO:
    """An ONNX model's graph inputs and outputs, through ONNX Runtime (a base dependency): a bundle's hashed
    bytes (the door's ``BundleReader.model``), or a file."""
    from edgeresnet.backends.onnxruntime.runner import open_session

    name = (model.path if isinstance(model, ModelBytes) else model).name
    try:
        session = open_session(model, level="none")  # only the names and types are wanted
    except Exception as error:  # ONNX Runtime raises its own exception types for unreadable models
        raise BundleError(f"cannot read the inputs and outputs of {name}: {one_line(error)}") from error

    def info(arg: object) -> TensorInfo:
        shape = tuple(d if isinstance(d, int) and d > 0 else None for d in arg.shape)  # type: ignore[attr-defined]
        return TensorInfo(arg.name, arg.type, shape)  # type: ignore[attr-defined]

    return ModelIO(tuple(map(info, session.get_inputs())), tuple(map(info, session.get_outputs())))


def openvino_io(xml: Path, fallback_onnx: Path | None = None) -> ModelIO:
    """An OpenVINO IR's inputs and outputs; without OpenVINO, the FP32 ONNX it was converted from
    (conversion keeps the tensor names, and both take float32 N×C×H×W)."""
    try:
        import openvino as ov
    except ImportError:
        if fallback_onnx is None or not fallback_onnx.is_file():
            raise BundleError(f"reading {xml.name} needs OpenVINO: {get_backend('openvino').install_hint}") from None
        return onnx_io(fallback_onnx)
    try:
        model = ov.Core().read_model(str(xml))
    except Exception as error:  # OpenVINO raises RuntimeError subclasses for malformed IR
        raise BundleError(f"cannot read {xml.name}: {one_line(error)}") from error

    def info(port: object) -> TensorInfo:
        shape = tuple(d.get_length() if d.is_static else None for d in port.get_partial_shape())  # type: ignore[attr-defined]
        return TensorInfo(port.get_any_name(), port.get_element_type().get_type_name(), shape)  # type: ignore[attr-defined]

    return ModelIO(tuple(map(info, model.inputs)), tuple(map(info, model.outputs)))
