"""NVIDIA ModelOpt's ONNX INT8 quantization with its defaults, run in ModelOpt's own environment.

ModelOpt pins its own onnx and onnxruntime, so int8_accuracy.py runs this file with ModelOpt's Python
in a subprocess: the FP32 ONNX and the calibration images (.npy, already preprocessed) go in, a QDQ
ONNX comes out. Only the calibration execution provider is set (the CPU: no GPU here); every
quantization choice is ModelOpt's default.

Usage: /work/modelopt-venv/bin/python benchmarks/modelopt_peer.py FP32.onnx CALIB.npy OUT.onnx
"""

from __future__ import annotations

import json
import sys

import numpy as np


def main() -> None:
    fp32, calibration, out = sys.argv[1:4]
    import modelopt
    from modelopt.onnx.quantization import quantize

    data = np.load(calibration)
    quantize(onnx_path=fp32, quantize_mode="int8", calibration_data=data, calibration_eps=["cpu"], output_path=out)
    print(json.dumps({"modelopt": modelopt.__version__, "calibration_images": len(data)}))


if __name__ == "__main__":
    main()
