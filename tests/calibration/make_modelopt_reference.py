"""Write the committed ModelOpt reference the CPU tests compare the TensorRT QDQ writer with.

    .venv/bin/python tests/calibration/make_modelopt_reference.py   # needs torch here and ModelOpt somewhere

Writes tests/calibration/data/modelopt/: ``fp32.onnx`` (a small ResNet with an identity and a projection
shortcut, random weights, seed 0), ``modelopt_int8.onnx`` (ModelOpt's int8 defaults on it, calibrated on
64 smooth-blob images) and ``reference.json`` (ModelOpt's placement as
:func:`edgeresnet.calibration.qdq_rules.qdq_placement` reads it, and the versions that made it).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.calibration.conftest import IMAGE_SIZE, NUM_CLASSES, smooth_images
from tests.calibration.modelopt_support import modelopt_python, modelopt_version, run_modelopt

OUT = Path(__file__).resolve().parent / "data" / "modelopt"
CALIBRATION_SEED = 2


def reference_images():
    return smooth_images(64, seed=CALIBRATION_SEED)[0]


def small_resnet():
    import torch
    from torch import nn

    class Block(nn.Module):
        def __init__(self, cin: int, cout: int, stride: int) -> None:
            super().__init__()
            self.conv1, self.bn1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout)
            self.conv2, self.bn2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout)
            self.shortcut = (nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
                             if stride != 1 or cin != cout else nn.Identity())

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            out = torch.relu(self.bn1(self.conv1(x)))
            return torch.relu(self.bn2(self.conv2(out)) + self.shortcut(x))

    class SmallResNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.stem = nn.Sequential(nn.Conv2d(1, 8, 3, 1, 1, bias=False), nn.BatchNorm2d(8), nn.ReLU())
            self.layer1, self.layer2 = Block(8, 8, 1), Block(8, 16, 2)
            self.fc = nn.Linear(16, NUM_CLASSES)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            x = self.layer2(self.layer1(self.stem(x)))
            return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))

    torch.manual_seed(0)
    model = SmallResNet().eval()
    for module in model.modules():  # non-trivial BN statistics, so folding them changes the weights
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.uniform_(-0.2, 0.2)
            module.running_var.uniform_(0.5, 1.5)
    return model


def export(model, path: Path) -> Path:
    import torch

    torch.onnx.export(model, torch.zeros(1, 1, IMAGE_SIZE, IMAGE_SIZE), str(path), dynamo=False, opset_version=17,
                      do_constant_folding=True, input_names=["input"], output_names=["logits"],
                      dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}})
    return path


def main() -> int:
    from edgeresnet.calibration.qdq_rules import qdq_placement
    from edgeresnet.environment import tool_versions

    python = modelopt_python()
    if python is None:
        print("ModelOpt is not installed: set EDGERESNET_MODELOPT_PYTHON to an interpreter that has it")
        return 1
    OUT.mkdir(parents=True, exist_ok=True)
    fp32 = export(small_resnet(), OUT / "fp32.onnx")
    int8 = run_modelopt(python, fp32, reference_images(), OUT / "modelopt_int8.onnx")
    versions = tool_versions()
    reference = {
        "made_by": "tests/calibration/make_modelopt_reference.py",
        "modelopt": modelopt_version(python),
        "torch": versions.get("torch"), "onnx": versions.get("onnx"),
        "call": 'modelopt.onnx.quantization.quantize(fp32.onnx, quantize_mode="int8", calibration_data=64 images)',
        "placement": qdq_placement(int8),
    }
    (OUT / "reference.json").write_text(json.dumps(reference, indent=1) + "\n")
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
