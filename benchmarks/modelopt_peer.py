"""NVIDIA ModelOpt's ONNX INT8 quantization with its defaults, run in ModelOpt's own environment.

ModelOpt pins its own onnx and onnxruntime, so int8_accuracy.py runs this file with ModelOpt's Python
in a subprocess: the FP32 ONNX and the calibration images (.npy, already preprocessed) go in, a QDQ
ONNX comes out. Only the calibration execution provider is set (the CPU: no GPU here); every
quantization choice is ModelOpt's default.

ModelOpt's default keeps the unquantized parts in FP16 (``high_precision_dtype="fp16"``), which is
what TensorRT runs but not what ONNX Runtime's CPU kernels run faithfully; an optional fourth argument
``fp32`` keeps them in FP32 so the CPU can score ModelOpt's quantizers on their own.

Usage: /work/modelopt-venv/bin/python benchmarks/modelopt_peer.py FP32.onnx CALIB.npy OUT.onnx [fp32]
"""

from __future__ import annotations

import json
import sys

import numpy as np


def main() -> None:
    fp32, calibration, out = sys.argv[1:4]
    options = {"high_precision_dtype": sys.argv[4]} if len(sys.argv) > 4 else {}
    import modelopt
    from modelopt.onnx.quantization import quantize

    data = np.load(calibration)
    quantize(onnx_path=fp32, quantize_mode="int8", calibration_data=data, calibration_eps=["cpu"], output_path=out,
             **options)
    print(json.dumps({"modelopt": modelopt.__version__, "calibration_images": len(data), **options}))


if __name__ == "__main__":
    main()
