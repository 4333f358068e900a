"""edgeresnet's TensorRT QDQ model against NVIDIA ModelOpt's int8 defaults: accuracy on Fashion-MNIST.

Both quantize the same FP32 ONNX (a ResNet-20 checkpoint from ``edgeresnet train``) from the same
class-balanced calibration images, and run through ONNX Runtime on the CPU on the same evaluation
images; every difference is paired (Tango's 95% interval, ``edgeresnet.accuracy.compare_paired``).

Rows: FP32; ModelOpt ``quantize(onnx, quantize_mode="int8", calibration_data=...)`` (entropy calibration,
FP16 high precision, its defaults); edgeresnet's TensorRT QDQ (FP16 high precision, the default) from a
table of each calibration method; the same with FP32 high precision (the first method); and, as a
diagnostic that separates the writer from the calibration, edgeresnet's writer given ModelOpt's own
activation ranges (read back from its Q/DQ scales). The target: edgeresnet within 0.1 point of ModelOpt.

How ONNX Runtime runs the FP16 parts: its CPU provider has few float16 kernels, so it inserts Casts and
computes those nodes in float32 on float16-rounded tensors (weights, scales, activations between nodes).
That is the FP16 storage rounding TensorRT sees, without its FP16 accumulation; the FP32-high-precision
row shows what the FP16 rounding alone changes. TensorRT itself cannot run here.

    .venv/bin/python benchmarks/tensorrt_qdq_vs_modelopt.py --checkpoint runs/r20 [--eval-limit 2000]

ModelOpt runs in its own interpreter (``--modelopt-python``, default ``$EDGERESNET_MODELOPT_PYTHON`` or a
probed one, see tests/calibration/modelopt_support.py). Writes tensorrt_qdq_vs_modelopt.{json,md}.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

CALIB_SIZE = 512
TARGET_POINTS = 0.1


def _log(message: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} {message}", file=sys.stderr, flush=True)


def logits_of(path: Path, batches: list[tuple[np.ndarray, np.ndarray]], threads: int) -> np.ndarray:
    from edgeresnet.backends.onnxruntime.runner import open_session

    session = open_session(path, threads=threads)
    name = session.get_inputs()[0].name
    return np.concatenate([session.run(None, {name: images})[0] for images, _ in batches]).astype(np.float32)


def main() -> int:
    from edgeresnet.accuracy import compare_paired
    from edgeresnet.atomic import atomic_write_json, atomic_write_text
    from edgeresnet.calibration import calibrate_all, check_tensorrt_rules, quantize_qdq
    from edgeresnet.calibration.qdq_rules import qdq_placement
    from edgeresnet.data import open_source
    from edgeresnet.environment import environment
    from edgeresnet.export.model_source import load_model_source
    from edgeresnet.export.onnx import export_onnx
    from tests.calibration.modelopt_support import modelopt_python, modelopt_version, run_modelopt

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", type=Path, required=True, help="a resnet20 checkpoint from `edgeresnet train`")
    parser.add_argument("--data", default="fashion-mnist")
    parser.add_argument("--calib-size", type=int, default=CALIB_SIZE)
    parser.add_argument("--eval-limit", type=int, default=None, help="class-balanced subset (default: all)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--methods", default="minmax,percentile,entropy", help="edgeresnet calibration methods")
    parser.add_argument("--modelopt-python", default=None)
    parser.add_argument("--output", type=Path, default=REPO / "benchmarks" / "results")
    args = parser.parse_args()
    python = args.modelopt_python or modelopt_python()
    if python is None:
        print("ModelOpt is not installed: pass --modelopt-python or set EDGERESNET_MODELOPT_PYTHON")
        return 1

    source = load_model_source(str(args.checkpoint))
    spec = source.preprocessing
    data = open_source(args.data)
    evaluation = data.split("evaluation")
    if args.eval_limit and args.eval_limit < len(evaluation):
        evaluation = evaluation.balanced_sample(args.eval_limit)
    eval_batches = list(evaluation.batches(spec, 500))
    labels = np.concatenate([batch_labels for _, batch_labels in eval_batches])
    samples = data.split("calibration").balanced_sample(args.calib_size)
    calib = [images for images, _ in samples.batches(spec, 64)]
    work = Path(tempfile.mkdtemp(prefix="edgeresnet-trt-qdq-"))
    fp32 = export_onnx(source.model, spec, work / "fp32.onnx", metadata=source.metadata())

    started = time.perf_counter()
    modelopt_onnx = run_modelopt(python, fp32, np.concatenate(calib), work / "modelopt_int8.onnx")
    seconds = {"modelopt": time.perf_counter() - started}
    _log(f"ModelOpt done in {seconds['modelopt']:.0f} s")
    methods = args.methods.split(",")
    started = time.perf_counter()
    tables = calibrate_all(fp32, calib, data_hash=samples.fingerprint())
    seconds["edgeresnet tables"] = time.perf_counter() - started
    reference = "ModelOpt int8 defaults (FP16 high precision)"
    models = {"FP32": fp32, reference: modelopt_onnx}
    for method in methods:
        path = work / f"edgeresnet_tensorrt_{method}.onnx"
        quantize_qdq(fp32, tables[method], path, flavour="tensorrt")
        models[f"edgeresnet TensorRT QDQ, {method} table, FP16 high precision (default)"] = path
    path = work / f"edgeresnet_tensorrt_{methods[0]}_fp32.onnx"
    quantize_qdq(fp32, tables[methods[0]], path, flavour="tensorrt", high_precision="fp32")
    models[f"edgeresnet TensorRT QDQ, {methods[0]} table, FP32 high precision"] = path
    path = work / "edgeresnet_tensorrt_modelopt_ranges.onnx"
    quantize_qdq(fp32, with_modelopt_ranges(tables[methods[0]], modelopt_onnx), path, flavour="tensorrt")
    models["diagnostic: edgeresnet's writer with ModelOpt's activation ranges, FP16"] = path
    logits = {}
    for name, path in models.items():
        logits[name] = logits_of(path, eval_batches, args.threads)
        _log(f"evaluated {name}")
    rows: list[dict[str, Any]] = []
    for name, path in models.items():
        against_fp32 = compare_paired(labels, logits["FP32"], logits[name])
        against_modelopt = compare_paired(labels, logits[reference], logits[name])
        rows.append({"model": name, "top1": against_fp32.candidate_top1, "vs_fp32": against_fp32.to_dict(),
                     "vs_modelopt": against_modelopt.to_dict(),
                     "tensorrt_rule_problems": len(check_tensorrt_rules(path)) if name != "FP32" else None})
    same_placement = all(qdq_placement(path) == qdq_placement(modelopt_onnx)
                         for name, path in models.items() if name.startswith("edgeresnet") and "FP16" in name)
    result = {
        "checkpoint": str(args.checkpoint), "data": args.data, "eval_images": len(labels),
        "calibration_images": args.calib_size,
        "calibration": f"edgeresnet {', '.join(methods)} tables; ModelOpt its default (entropy)",
        "modelopt": modelopt_version(python), "same_placement_as_modelopt": same_placement,
        "seconds": {key: round(value, 1) for key, value in seconds.items()}, "rows": rows,
        "target": f"edgeresnet within {TARGET_POINTS} point of ModelOpt", "environment": environment(),
        "command": " ".join(["python", "benchmarks/tensorrt_qdq_vs_modelopt.py", *sys.argv[1:]]),
        "fp16_on_cpu": "ONNX Runtime CPU inserts Casts and computes FP16 nodes in float32 on float16-rounded tensors",
    }
    args.output.mkdir(parents=True, exist_ok=True)
    atomic_write_json(args.output / "tensorrt_qdq_vs_modelopt.json", result)
    text = markdown(result)
    atomic_write_text(args.output / "tensorrt_qdq_vs_modelopt.md", text)
    print(text)
    return 0


def with_modelopt_ranges(table: Any, modelopt_onnx: Path) -> Any:
    """``table`` with each activation range ModelOpt quantized replaced by ModelOpt's (±127 × its scale)."""
    import dataclasses

    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(modelopt_onnx))
    constants = {tensor.name: numpy_helper.to_array(tensor) for tensor in model.graph.initializer}
    producers = {out: node for node in model.graph.node for out in node.output}
    ranges = dict(table.ranges)
    for node in model.graph.node:
        if node.op_type != "QuantizeLinear" or node.input[0] in constants:
            continue  # weights
        tensor = node.input[0]
        if tensor in producers and producers[tensor].op_type == "Cast":  # ModelOpt's float16 cast of the input
            tensor = producers[tensor].input[0]
        if tensor in ranges:
            amax = 127.0 * float(constants[node.input[1]])
            ranges[tensor] = (-amax, amax)
    return dataclasses.replace(table, ranges=ranges)


def markdown(result: dict[str, Any]) -> str:
    env = result["environment"]
    lines = [
        "# edgeresnet TensorRT QDQ vs NVIDIA ModelOpt int8 defaults (Fashion-MNIST, ONNX Runtime CPU)", "",
        f"Reproduce: `{result['command']}`", "",
        f"Machine: {env['cpu']['model']}, {env['cpu']['usable_cores']} usable cores; {env['platform']}. ModelOpt "
        f"{result['modelopt']}; " + ", ".join(f"{k} {v}" for k, v in env["versions"].items()) + ".", "",
        (f"Model: {result['checkpoint']} (ResNet-20). {result['calibration_images']} class-balanced calibration images "
        f"({result['calibration']}); {result['eval_images']:,} evaluation images, the same for every row. "
        f"Q/DQ placement identical to ModelOpt's, layer by layer: **{result['same_placement_as_modelopt']}**."), "",
        f"How FP16 runs here: {result['fp16_on_cpu']} (TensorRT cannot run on this machine).", "",
        "| model | top-1 | vs FP32: drop (95% CI) | vs ModelOpt: drop (95% CI), discordant | TensorRT rule problems |",
        "|---|---|---|---|---|",
    ]
    for row in result["rows"]:
        fp32, mo = row["vs_fp32"], row["vs_modelopt"]
        lines.append(
            f"| {row['model']} | {row['top1']:.2f}% | {fp32['drop_points']:+.2f} "
            f"({fp32['drop_ci95_points'][0]:+.2f} to {fp32['drop_ci95_points'][1]:+.2f}) | "
            f"{mo['drop_points']:+.2f} ({mo['drop_ci95_points'][0]:+.2f} to {mo['drop_ci95_points'][1]:+.2f}), "
            f"{mo['reference_only'] + mo['candidate_only']} | "
            f"{'—' if row['tensorrt_rule_problems'] is None else row['tensorrt_rule_problems']} |")
    lines += ["", (f"Target: {result['target']}. A drop is the reference's top-1 minus the row's, in points, "
              "on the same images (paired; Tango's score interval).")]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
