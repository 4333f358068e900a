"""NVIDIA ModelOpt, run in its own interpreter: it pins its own onnx and onnxruntime-gpu, so it never
shares a virtual environment with edgeresnet. Used by the ModelOpt comparison tests and the scripts
that write their committed references.

The interpreter is ``$EDGERESNET_MODELOPT_PYTHON`` where set, else the first of this interpreter and
a ``modelopt-venv`` beside the repository (or inside it as ``.modelopt-venv``) that imports
``modelopt.onnx.quantization``.
"""

from __future__ import annotations

import functools
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
ENV_VAR = "EDGERESNET_MODELOPT_PYTHON"

# Runs inside ModelOpt's interpreter: its int8 defaults, calibrated on the CPU from a .npy of images.
_QUANTIZE = """
import sys
import numpy as np
from modelopt.onnx.quantization import quantize
images = np.load(sys.argv[2], allow_pickle=False)
quantize(sys.argv[1], quantize_mode="int8", calibration_data=images, output_path=sys.argv[3])
"""


@functools.cache
def modelopt_python() -> str | None:
    """A Python interpreter that can import ModelOpt's ONNX quantizer, or None."""
    explicit = os.environ.get(ENV_VAR)
    candidates = [explicit] if explicit else [
        sys.executable, str(REPO.parent / "modelopt-venv" / "bin" / "python"),
        str(REPO / ".modelopt-venv" / "bin" / "python"),
    ]
    for candidate in candidates:
        if not Path(candidate).is_file():
            continue
        probe = subprocess.run([candidate, "-c", "import modelopt.onnx.quantization"], capture_output=True,
                               timeout=300, check=False)
        if probe.returncode == 0:
            return candidate
    return None


def modelopt_version(python: str) -> str:
    result = subprocess.run([python, "-c", "import modelopt; print(modelopt.__version__)"], capture_output=True,
                            text=True, timeout=300, check=True)
    return result.stdout.strip()


def run_modelopt(python: str, fp32_onnx: Path, images: np.ndarray, output: Path) -> Path:
    """ModelOpt's int8 QDQ model of ``fp32_onnx``, calibrated on ``images``, written to ``output``."""
    calibration = output.with_suffix(".calibration.npy")
    np.save(calibration, np.ascontiguousarray(images, dtype=np.float32), allow_pickle=False)
    try:
        result = subprocess.run([python, "-c", _QUANTIZE, str(fp32_onnx), str(calibration), str(output)],
                                capture_output=True, text=True, timeout=900, check=False,
                                env={**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "2")})
    finally:
        calibration.unlink(missing_ok=True)
    if result.returncode != 0 or not output.is_file():
        tail = (result.stderr or result.stdout).strip().splitlines()[-5:]
        raise RuntimeError(f"ModelOpt failed on {fp32_onnx.name}: " + " | ".join(tail))
    return output
