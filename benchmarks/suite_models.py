"""The models and artifacts the benchmark scripts measure, built the way edgeresnet and its peers build them.

Weights are random-init (seeded): nothing may be downloaded, and no pretrained ResNet-18/50 weights
ship with the project. Latency does not depend on the weight values (dense kernels do the same work),
so the latency comparison is meaningful; accuracy on these models is not, and no script reports it.
Calibration still uses real images, as a user would: Fashion-MNIST's calibration split, resized to
224×224 and replicated to RGB with the ImageNet mean/std, through the one preprocessing spec.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
INPUT_SIZE = 224
NUM_CLASSES = 1000
DATA = "fashion-mnist"
# DESIGN.md's compute-bound floor: 2 Zen 4 cores, 3.55 GHz; AVX-512 VNNI does 64 INT8 MACs per
# cycle per core, AVX-512 FMA 16 FP32 MACs per cycle per core.
CORES = 2
CLOCK_HZ = 3.55e9
INT8_MACS_PER_CYCLE = 64
FP32_MACS_PER_CYCLE = 16

log = logging.getLogger("benchmarks")


def floor_ms(macs: int, *, batch: int, int8: bool, cores: int = CORES) -> float:
    """The compute-bound lower limit on latency: MACs over the cores' peak MAC rate."""
    per_cycle = INT8_MACS_PER_CYCLE if int8 else FP32_MACS_PER_CYCLE
    return macs * batch / (cores * per_cycle * CLOCK_HZ) * 1000.0


def setup_logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S", stream=sys.stderr)
    for noisy in ("nncf", "openvino", "onnxruntime"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


@dataclass(frozen=True)
class Calibration:
    """Preprocessed calibration batches and the hash of the images they came from."""

    batches: list[np.ndarray]
    data_hash: str

    @property
    def images(self) -> int:
        return sum(len(b) for b in self.batches)


def calibration_data(count: int, *, batch: int = 8) -> Calibration:
    """``count`` class-balanced Fashion-MNIST calibration images at 224×224 RGB (ImageNet mean/std)."""
    from edgeresnet.data import open_source

    source = open_source(DATA)
    spec = source.default_preprocess(INPUT_SIZE, channels="RGB")
    images = source.split("calibration").balanced_sample(count)
    return Calibration([inputs for inputs, _ in images.batches(spec, batch)], images.fingerprint())


def random_resnet(name: str):  # -> torch.nn.Module (torch imported lazily)
    import torch

    from edgeresnet.models import create_model

    torch.manual_seed(0)
    return create_model(name, num_classes=NUM_CLASSES, in_chans=3).eval()


def model_macs(name: str) -> int:
    from edgeresnet.models import get_model_info

    return int(get_model_info(name).macs)


def export_fp32(name: str, directory: Path) -> Path:
    """The FP32 ONNX model edgeresnet's export writes (BN folded, simplified, dynamic batch)."""
    from edgeresnet.data import open_source
    from edgeresnet.export.onnx import export_onnx

    path = directory / f"{name}.fp32.onnx"
    if not path.is_file():
        spec = open_source(DATA).default_preprocess(INPUT_SIZE, channels="RGB")
        export_onnx(random_resnet(name), spec, path)
    return path


# Each builder: (fp32 ONNX, output directory, calibration) -> model file. Named by what builds it.
Builder = Callable[[Path, Path, Calibration], Path]


def _ours_qdq(fp32: Path, directory: Path, calibration: Calibration) -> Path:
    from edgeresnet.calibration import calibrate, quantize_qdq

    out = directory / f"{fp32.name.split('.')[0]}.ours.int8.onnx"
    if not out.is_file():
        # The range method changes accuracy, not latency: every method yields the same QDQ graph.
        table = calibrate(fp32, calibration.batches, method="minmax", data_hash=calibration.data_hash)
        quantize_qdq(fp32, table, out, flavour="onnxruntime")
    return out


def _ours_openvino_fp32(fp32: Path, directory: Path, calibration: Calibration) -> Path:
    from edgeresnet.backends.openvino.convert import convert_to_ir

    out = directory / f"{fp32.name.split('.')[0]}.ov.fp32.xml"
    return out if out.is_file() else convert_to_ir(fp32, out)


def _ours_openvino_qdq(fp32: Path, directory: Path, calibration: Calibration) -> Path:
    from edgeresnet.backends.openvino.convert import convert_qdq_to_ir

    out = directory / f"{fp32.name.split('.')[0]}.ov.ours-qdq.int8.xml"
    return out if out.is_file() else convert_qdq_to_ir(_ours_qdq(fp32, directory, calibration), out)


def _ours_openvino_nncf(fp32: Path, directory: Path, calibration: Calibration) -> Path:
    from edgeresnet.backends.openvino.convert import quantize_with_nncf

    out = directory / f"{fp32.name.split('.')[0]}.ov.ours-nncf.int8.xml"
    if not out.is_file():
        quantize_with_nncf(fp32, out, calibration.batches, subset_size=calibration.images)
    return out


def _peer_ort_default(fp32: Path, directory: Path, calibration: Calibration) -> Path:
    from edgeresnet.calibration import peer_quantize_static_default

    out = directory / f"{fp32.name.split('.')[0]}.peer-ort.int8.onnx"
    return out if out.is_file() else peer_quantize_static_default(fp32, out, calibration.batches)


def _peer_nncf_default(fp32: Path, directory: Path, calibration: Calibration) -> Path:
    from edgeresnet.backends.openvino.convert import peer_nncf_default

    out = directory / f"{fp32.name.split('.')[0]}.peer-nncf.int8.xml"
    return out if out.is_file() else peer_nncf_default(fp32, out, calibration.batches)


@dataclass(frozen=True)
class Config:
    """One measured configuration: who built the model file, which runtime runs it."""

    key: str
    label: str
    backend: str  # "pytorch" | "onnxruntime" | "openvino"
    precision: str
    group: str  # "baseline" | "edgeresnet" | "peer"
    build: Builder | None = None  # None: the FP32 ONNX itself (or the torch model for pytorch)


CONFIGS: tuple[Config, ...] = (
    Config("pytorch-fp32", "PyTorch FP32 eager", "pytorch", "fp32", "baseline"),
    Config("ort-fp32", "ONNX Runtime FP32 (edgeresnet)", "onnxruntime", "fp32", "edgeresnet"),
    Config("ort-int8", "ONNX Runtime INT8 QDQ (edgeresnet table)", "onnxruntime", "int8", "edgeresnet", _ours_qdq),
    Config("ov-fp32", "OpenVINO FP32 IR (edgeresnet)", "openvino", "fp32", "edgeresnet", _ours_openvino_fp32),
    Config("ov-int8-qdq", "OpenVINO INT8 IR from table QDQ (edgeresnet)", "openvino", "int8", "edgeresnet",
           _ours_openvino_qdq),
    Config("ov-int8-nncf", "OpenVINO INT8 IR via NNCF (edgeresnet)", "openvino", "int8", "edgeresnet",
           _ours_openvino_nncf),
    Config("peer-ort-int8", "ONNX Runtime quantize_static defaults (peer)", "onnxruntime", "int8", "peer",
           _peer_ort_default),
    Config("peer-nncf-int8", "OpenVINO nncf.quantize defaults (peer)", "openvino", "int8", "peer",
           _peer_nncf_default),
)


def build(config: Config, fp32: Path, directory: Path, calibration: Calibration) -> Path:
    return fp32 if config.build is None else config.build(fp32, directory, calibration)
