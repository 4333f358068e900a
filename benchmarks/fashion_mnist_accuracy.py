"""Fashion-MNIST: training target, export time, and FP32 vs INT8 accuracy per target and method.

Measured in one run on one machine:

1. `edgeresnet train --model resnet20 --data fashion-mnist --epochs 2` — wall time and test top-1
   (target: >= 91% in under 4 minutes on 2 cores).
2. `edgeresnet export CKPT --int8 --target all` — wall time (target: under 2 minutes) and each
   bundle's top-1 drop on the 10,000-image test set (target: <= 0.2 points).
3. For every calibration method, the INT8 top-1 of each target's model built from that table
   (without the accuracy gate), beside the peers' defaults on the same model and calibration images:
   ONNX Runtime `quantize_static` (MinMax, QDQ) and `nncf.quantize`.

Usage: python benchmarks/fashion_mnist_accuracy.py [--checkpoint DIR] [--output benchmarks/results]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from edgeresnet.calibration import (
    QdqQuantizer,
    calibrate_all,
    evaluate_onnx,
    peer_quantize_static_default,
)
from edgeresnet.data import open_source
from edgeresnet.environment import environment
from edgeresnet.export.onnx import export_onnx
from edgeresnet.export.openvino import convert_qdq_to_ir, peer_nncf_default, quantize_with_nncf
from edgeresnet.export.sources import load_model_source
from edgeresnet.export.targets import evaluate_runner
from edgeresnet.export.workflow import ExportOptions, run_export
from edgeresnet.runtime.openvino import OpenVinoRunner
from edgeresnet.train import TrainConfig, train

CALIB_SIZE = 512


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", type=Path, help="use this resnet20 checkpoint instead of training one")
    parser.add_argument("--output", type=Path, default=Path(__file__).parent / "results")
    parser.add_argument("--work", type=Path, default=None, help="scratch directory (default: a temp dir)")
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="edgeresnet-bench-"))
    results: dict[str, Any] = {"environment": environment()}

    checkpoint = args.checkpoint
    if checkpoint is None:
        checkpoint = work / "r20"
        started = time.perf_counter()
        trained = train(TrainConfig(model="resnet20", data="fashion-mnist", epochs=2, output=str(checkpoint),
                                    progress=False))
        results["train"] = {"command": "edgeresnet train --model resnet20 --data fashion-mnist --epochs 2",
                            "seconds": round(time.perf_counter() - started, 1), "top1": trained.top1,
                            "top5": trained.top5, "kept_epoch": trained.kept_epoch,
                            "target": ">= 91% top-1 in < 240 s"}
        _log(f"trained: {results['train']}")

    started = time.perf_counter()
    export = run_export(load_model_source(str(checkpoint)),
                        ExportOptions(output=work / "export", int8=True, targets=("all",)), progress=_log)
    results["export"] = {"command": "edgeresnet export CKPT --int8 --target all",
                         "seconds": round(time.perf_counter() - started, 1), "report": export.report,
                         "target": "every INT8 bundle <= 0.2 points below FP32, export < 120 s"}
    results["methods"] = _compare_methods(checkpoint, work)

    args.output.mkdir(parents=True, exist_ok=True)
    (args.output / "fashion_mnist_accuracy.json").write_text(json.dumps(results, indent=2) + "\n")
    (args.output / "fashion_mnist_accuracy.md").write_text(_markdown(results))
    _log(f"wrote {args.output / 'fashion_mnist_accuracy.md'}")


def _compare_methods(checkpoint: Path, work: Path) -> dict[str, Any]:
    source = load_model_source(str(checkpoint))
    spec = source.preprocessing
    data = open_source("fashion-mnist")
    eval_batches = list(data.split("evaluation").batches(spec, 500))
    samples = data.split("calibration").balanced_sample(CALIB_SIZE)
    calib = [images for images, _ in samples.batches(spec, 64)]
    fp32 = work / "methods" / "fp32.onnx"
    export_onnx(source.model, spec, fp32, metadata=source.metadata())
    rows: dict[str, Any] = {"fp32": evaluate_onnx(fp32, eval_batches).top1}
    tables = calibrate_all(fp32, calib, data_hash=samples.fingerprint())
    for method, table in tables.items():
        for flavour in ("onnxruntime", "tensorrt"):
            path = work / "methods" / f"{method}-{flavour}.onnx"
            QdqQuantizer(fp32, table, flavour=flavour).write(path)
            rows[f"edgeresnet {flavour} QDQ ({method})"] = evaluate_onnx(path, eval_batches).top1
            if flavour == "onnxruntime":
                xml = convert_qdq_to_ir(path, work / "methods" / f"{method}-ov" / "model.xml")
                rows[f"edgeresnet OpenVINO IR from QDQ ({method})"] = _ov_top1(xml, eval_batches)
        _log(f"{method}: done")
    nncf_xml = quantize_with_nncf(fp32, work / "methods" / "nncf-ours" / "model.xml", calib, subset_size=CALIB_SIZE)
    rows["edgeresnet OpenVINO IR via NNCF (512 images)"] = _ov_top1(nncf_xml, eval_batches)
    peer_onnx = peer_quantize_static_default(fp32, work / "methods" / "peer-ort.onnx", calib)
    rows["peer: onnxruntime quantize_static defaults"] = evaluate_onnx(peer_onnx, eval_batches).top1
    single_images = [image[None] for batch in calib for image in batch]
    peer_xml = peer_nncf_default(fp32, work / "methods" / "peer-nncf" / "model.xml", single_images)
    rows["peer: nncf.quantize defaults"] = _ov_top1(peer_xml, eval_batches)
    return rows


def _ov_top1(xml: Path, eval_batches: list[tuple[np.ndarray, np.ndarray]]) -> float:
    with OpenVinoRunner(xml, precision="int8") as runner:
        return float(evaluate_runner(runner, eval_batches)["top1"])


def _markdown(results: dict[str, Any]) -> str:
    env = results["environment"]
    lines = ["# Fashion-MNIST: ResNet-20 training, export and INT8 accuracy", "",
             f"Machine: {env['cpu']['model']}, {env['cpu']['usable_cores']} cores usable "
             f"({', '.join(env['cpu']['flags'])}); {env['platform']}.",
             "Versions: " + ", ".join(f"{k} {v}" for k, v in env["versions"].items()) + ".", "",
             "Reproduce: `python benchmarks/fashion_mnist_accuracy.py` (trains, exports, compares; one run).", ""]
    if "train" in results:
        train_result = results["train"]
        lines += ["## Training", "", "| command | wall time | test top-1 | test top-5 | target |", "|---|---|---|---|---|",
                  f"| `{train_result['command']}` | {train_result['seconds']:.0f} s | {train_result['top1']:.2f}% | "
                  f"{train_result['top5']:.2f}% | {train_result['target']} |", ""]
    export = results["export"]
    fp32 = export["report"]["fp32"]["top1"]
    lines += ["## `export --int8 --target all` (accuracy gate on, 10,000 test images)", "",
              f"Wall time: {export['seconds']:.0f} s (target < 120 s). FP32 top-1 {fp32:.2f}%. "
              f"Calibration: {export['report']['calibration']['method']} "
              f"({export['report']['calibration']['samples']} images, chosen by `auto`).", "",
              "| bundle | top-1 | drop (points) |", "|---|---|---|"]
    for name, bundle in export["report"]["bundles"].items():
        top1 = bundle["accuracy"]["top1"]
        lines.append(f"| {name} | {top1:.2f}% | {fp32 - top1:+.2f} |")
    methods = results["methods"]
    lines += ["", "## INT8 top-1 by calibration method, beside the peers' defaults (no accuracy gate)", "",
              f"Same model and the same {CALIB_SIZE} calibration images; FP32 top-1 {methods['fp32']:.2f}%.", "",
              "| artifact | top-1 | drop (points) |", "|---|---|---|"]
    for name, top1 in methods.items():
        if name != "fp32":
            lines.append(f"| {name} | {top1:.2f}% | {methods['fp32'] - top1:+.2f} |")
    return "\n".join(lines) + "\n"


def _log(message: str) -> None:
    print(f"· {message}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
