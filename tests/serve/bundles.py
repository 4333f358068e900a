"""Tiny bundles, one per backend, for the serving tests (built once per test process).

The ONNX Runtime bundle carries its uint8-pixel model, as `export` writes it; the OpenVINO bundle is a
real IR converted from the same network; the TensorRT bundle's engine cannot be built without a GPU,
so its model file is placeholder bytes: the repository writer copies and hashes an engine, it never runs
it, and the engine's I/O is read from the ONNX network the bundle carries beside it, as on a real one.
"""

from __future__ import annotations

import functools
import tempfile
from pathlib import Path

import numpy as np

from edgeresnet.bundle import Manifest, write_bundle
from tests.runtime.tiny_bundle import INPUT_RECORD, LABELS, SPEC, golden_inputs, make_bundle, tiny_model


@functools.cache
def _root() -> Path:
    import atexit
    import shutil

    root = Path(tempfile.mkdtemp(prefix="edgeresnet-serve-"))
    atexit.register(shutil.rmtree, root, True)
    return root


@functools.cache
def golden_outputs() -> np.ndarray:
    from edgeresnet.runtime.onnxruntime import OnnxRuntimeRunner

    with OnnxRuntimeRunner(tiny_model().onnx) as runner:
        return runner.infer(golden_inputs())


@functools.cache
def onnx_bundle() -> Path:
    """An FP32 ONNX Runtime bundle with its uint8 N×H×W×C pixel model."""
    from edgeresnet.export.onnx import add_pixel_input

    pixels = add_pixel_input(tiny_model().onnx, _root() / "pixels" / "model.pixels.onnx", SPEC)
    return make_bundle(_root() / "tiny-onnx", tiny_model().onnx, outputs=golden_outputs(),
                       pixel_model="model.pixels.onnx", extra_files={"model.pixels.onnx": pixels})


@functools.cache
def openvino_bundle(batch: int | None = None) -> Path:
    from edgeresnet.export.openvino import convert_to_ir

    xml = convert_to_ir(tiny_model().onnx, _root() / f"ir{batch}" / "model.xml", batch=batch)
    return make_bundle(_root() / f"tiny-openvino{'' if batch is None else f'-b{batch}'}", xml,
                       target="openvino", outputs=golden_outputs(),
                       extra_files={"model.bin": xml.with_suffix(".bin"), "model_fp32.onnx": tiny_model().onnx})


@functools.cache
def tensorrt_bundle(version_compatible: bool = True) -> Path:
    engine = _root() / "engine" / "model.engine"
    engine.parent.mkdir(exist_ok=True)
    engine.write_bytes(b"placeholder engine bytes: copied and hashed, never run\n")
    manifest = Manifest(
        architecture="tinynet", precision="fp16", target="tensorrt", model_file="model.engine",
        preprocessing=SPEC, labels=list(LABELS), input=dict(INPUT_RECORD),
        engine={"runtime": "tensorrt", "version": "10.16.1", "gpu": "NVIDIA H100", "compute_capability": "9.0",
                "version_compatible": version_compatible, "network_onnx": "model.onnx",
                "details": {"profile": {"min": 1, "opt": 8, "max": 16}}},
    )
    name = "tiny-tensorrt" + ("" if version_compatible else "-plain")
    return write_bundle(_root() / name, manifest, {"model.engine": engine, "model.onnx": tiny_model().onnx},
                        golden_inputs=golden_inputs(), golden_outputs=golden_outputs())
