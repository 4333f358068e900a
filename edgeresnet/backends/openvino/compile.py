"""OpenVINO's compile step: a bundle's ONNX (or its own INT8 IR) → an OpenVINO IR bundle in FP32, FP16 or INT8."""

from __future__ import annotations

from pathlib import Path

from edgeresnet.bundle.layout import MODEL_BIN, MODEL_XML
from edgeresnet.compile import Compiled, SourceBundle, qdq_from_table


def compile_openvino(source: SourceBundle, precision: str, staging: Path, device: str,
                     options: object = None) -> Compiled:
    """``options``: none for OpenVINO (the compile stage passes every backend its build options)."""
    from edgeresnet.backends.openvino.convert import convert_qdq_to_ir, convert_to_ir, openvino_version

    xml = staging / MODEL_XML
    extra = {"openvino": {"version": openvino_version(), "device": device, "weights": precision}}
    ir = source.openvino_int8_ir() if precision == "int8" else None
    if ir is not None:  # the IR is device-independent: the new bundle is the same model, checked on `device`
        return Compiled(files={MODEL_XML: ir, MODEL_BIN: ir.with_suffix(".bin")}, model_file=MODEL_XML,
                        source_model=ir, device=device, extra=extra)
    if precision == "int8":
        if "int8" in source.onnx:
            onnx_model = source.file(source.onnx["int8"])
        elif source.has_table():
            onnx_model = qdq_from_table(source, staging, "onnxruntime")
        else:
            onnx_model = source.require("int8", "an OpenVINO INT8 IR")
        convert_qdq_to_ir(onnx_model, xml)
    else:
        onnx_model = source.require("fp32", f"an OpenVINO {precision.upper()} IR")
        convert_to_ir(onnx_model, xml, precision=precision)  # type: ignore[arg-type]
    return Compiled(files={MODEL_XML: xml, MODEL_BIN: xml.with_suffix(".bin")}, model_file=MODEL_XML,
                    source_model=onnx_model, device=device, extra=extra)
