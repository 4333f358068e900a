"""TensorRT's compile step: a bundle's ONNX (FP32, FP16 converted, or the INT8 QDQ model, rebuilt from
``calibration.json`` where it breaks TensorRT's rules) → a strongly typed engine bundle, on the device."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edgeresnet.backends.tensorrt import build as trt_build  # a module: tests replace its build steps
from edgeresnet.backends.tensorrt.options import TensorRtBuildOptions
from edgeresnet.bundle.layout import CALIBRATION_FILE, FP32_ONNX, MODEL_ENGINE, MODEL_ONNX, TIMING_CACHE_FILE
from edgeresnet.compile import Compiled, SourceBundle, qdq_from_table
from edgeresnet.errors import ExportError


def compile_tensorrt(source: SourceBundle, precision: str, staging: Path, device: str,
                     options: TensorRtBuildOptions | None) -> Compiled:
    build_options = options or TensorRtBuildOptions()
    if device.lower() not in ("cuda", "cuda:0"):
        raise ExportError(
            "TensorRT builds on the first visible GPU (cuda): choose it with CUDA_VISIBLE_DEVICES"
        )
    network_onnx, action = _tensorrt_source(source, precision)
    carry = (f"the bundle's QDQ ONNX ({source.onnx.get('int8', MODEL_ONNX)}) plus {CALIBRATION_FILE}"
             if precision == "int8" else f"the bundle's ONNX ({network_onnx.name})")
    trt_build.require_tensorrt_gpu(carry)  # fail before any work when the machine cannot build
    extra: dict[str, Any] = {}
    reference = network_onnx
    if action == "qdq-from-table":
        network_onnx = reference = qdq_from_table(source, staging, "tensorrt")
    elif action == "fp16":
        conversion = trt_build.convert_onnx_to_fp16(network_onnx, staging / "model_fp16.onnx")
        extra["fp16_conversion"] = conversion.to_dict()
        network_onnx = conversion.path
    engine = staging / MODEL_ENGINE
    # The updated cache goes into the new bundle; the caller's --timing-cache (perhaps another bundle's
    # timing.cache, listed in its manifest with its sha256) is only read.
    cache_out = staging / TIMING_CACHE_FILE
    build = trt_build.build_engine(network_onnx, engine, options=build_options, carry=carry,
                                    timing_cache_out=cache_out)
    files = {MODEL_ENGINE: engine, MODEL_ONNX: network_onnx}
    if precision != "fp32" and "fp32" in source.onnx:
        files[FP32_ONNX] = source.file(source.onnx["fp32"])
    if CALIBRATION_FILE in source.manifest.files and precision == "int8":
        files[CALIBRATION_FILE] = source.file(CALIBRATION_FILE)
    if cache_out.is_file():
        files[TIMING_CACHE_FILE] = cache_out
    # The cache's path on the build machine means nothing elsewhere; the bundle's copy is what counts.
    settings = {**build_options.to_dict(), "timing_cache": TIMING_CACHE_FILE if TIMING_CACHE_FILE in files else None}
    record = {**build.to_manifest(), **extra, "onnx": MODEL_ONNX, "network_precision": precision,
              "version_compatible": build_options.version_compatible,
              "hardware_compatibility": build_options.hardware_compatibility, "options": settings}
    return Compiled(files=files, model_file=MODEL_ENGINE, source_model=reference, device=device,
                    extra={"tensorrt": record},
                    runner_options={"allow_host_code": build_options.version_compatible})


def _tensorrt_source(source: SourceBundle, precision: str) -> tuple[Path, str]:
    """The ONNX to build from and what to do with it first: use it, convert it to FP16, or rebuild the QDQ."""
    if precision == "fp32":
        return source.require("fp32", "a TensorRT FP32 engine"), "as-is"
    if precision == "fp16":
        if "fp16" in source.onnx:
            return source.file(source.onnx["fp16"]), "as-is"
        return source.require("fp32", "a TensorRT FP16 engine"), "fp16"
    from edgeresnet.calibration import check_tensorrt_rules

    problems: list[str] = []
    if "int8" in source.onnx:
        qdq = source.file(source.onnx["int8"])
        problems = check_tensorrt_rules(qdq, float_nodes=source.float_nodes)
        if not problems:
            return qdq, "as-is"
    if source.has_table():
        return source.file(source.onnx["fp32"]), "qdq-from-table"
    if problems:
        raise ExportError(
            f"{source.onnx['int8']} does not follow TensorRT's QDQ rules ({problems[0]}; {len(problems)} "
            f"problems) and the bundle has no {CALIBRATION_FILE} + {FP32_ONNX} to rebuild it from: "
            "export with --target tensorrt"
        )
    return source.require("int8", "a TensorRT INT8 engine"), "as-is"
