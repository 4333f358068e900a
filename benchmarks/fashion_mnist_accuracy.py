"""Fashion-MNIST: training target, export time, and each bundle's drop against FP32 with its interval.

Measured in one run on one machine:

1. `edgeresnet train --model resnet20 --data fashion-mnist --epochs 2` — wall time and test top-1
   (target: >= 91% in under 4 minutes on 2 cores).
2. `edgeresnet export CKPT --int8 --target all` — wall time (target: under 2 minutes) and each
   bundle's paired top-1 drop on the 10,000-image test set with its 95% interval.

INT8 against the peers' defaults, on several data sets, is benchmarks/int8_accuracy.py.

Usage: python benchmarks/fashion_mnist_accuracy.py [--checkpoint DIR] [--output benchmarks/results]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from edgeresnet.checkpoint import read_card
from edgeresnet.environment import environment
from edgeresnet.export.job import ExportJob
from edgeresnet.export.workflow import run_export


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
        # The command a user runs, in its own process: the wall time includes start-up and imports.
        command = ["edgeresnet", "train", "--model", "resnet20", "--data", "fashion-mnist", "--epochs", "2"]
        started = time.perf_counter()
        subprocess.run([sys.executable, "-m", *command, "--output", str(checkpoint), "--no-progress"], check=True)
        seconds = time.perf_counter() - started
        metrics = read_card(checkpoint).metrics
        results["train"] = {"command": " ".join(command), "seconds": round(seconds, 1), "top1": metrics["top1"],
                            "top5": metrics["top5"], "kept_epoch": metrics["kept_epoch"],
                            "target": ">= 91% top-1 in < 240 s"}
        _log(f"trained: {results['train']}")

    started = time.perf_counter()
    export = run_export(ExportJob(model=str(checkpoint), output=work / "export", int8=True, targets=("all",)),
                        progress=_log)
    results["export"] = {"command": "edgeresnet export CKPT --int8 --target all",
                         "seconds": round(time.perf_counter() - started, 1), "report": export.report.to_dict(),
                         "target": "every INT8 bundle <= 0.2 points below FP32, export < 120 s"}

    args.output.mkdir(parents=True, exist_ok=True)
    (args.output / "fashion_mnist_accuracy.json").write_text(json.dumps(results, indent=2) + "\n")
    (args.output / "fashion_mnist_accuracy.md").write_text(_markdown(results))
    _log(f"wrote {args.output / 'fashion_mnist_accuracy.md'}")


def _markdown(results: dict[str, Any]) -> str:
    env = results["environment"]
    lines = ["# Fashion-MNIST: ResNet-20 training, export and INT8 accuracy", "",
             (f"Machine: {env['cpu']['model']}, {env['cpu']['usable_cores']} cores usable "
             f"({', '.join(env['cpu']['flags'])}); {env['platform']}."),
             "Versions: " + ", ".join(f"{k} {v}" for k, v in env["versions"].items()) + ".", "",
             "Reproduce: `python benchmarks/fashion_mnist_accuracy.py` (trains, exports, compares; one run).", ""]
    if "train" in results:
        train_result = results["train"]
        lines += ["## Training", "", "| command | wall time | test top-1 | test top-5 | target |", "|---|---|---|---|---|",
                  (f"| `{train_result['command']}` | {train_result['seconds']:.0f} s | {train_result['top1']:.2f}% | "
                  f"{train_result['top5']:.2f}% | {train_result['target']} |"), ""]
    export = results["export"]
    fp32 = export["report"]["fp32"]["top1"]
    lines += ["## `export --int8 --target all` (accuracy gate on, 10,000 test images)", "",
              (f"Wall time: {export['seconds']:.0f} s (target < 120 s). FP32 top-1 {fp32:.2f}%. "
              f"Calibration: {export['report']['calibration']['method']} "
              f"({export['report']['calibration']['samples']} images, chosen by `auto`)."), "",
              "| bundle | top-1 | drop (points) | 95% interval | agreement |", "|---|---|---|---|---|"]
    for name, bundle in export["report"]["bundles"].items():
        top1 = bundle["accuracy"]["top1"]
        comparison = bundle.get("comparison")
        if comparison:
            low, high = comparison["drop_ci95_points"]
            lines.append(f"| {name} | {top1:.2f}% | {comparison['drop_points']:+.2f} | {low:+.2f} to {high:+.2f} | "
                         f"{comparison['agreement_pct']:.2f}% |")
        else:
            lines.append(f"| {name} | {top1:.2f}% | {fp32 - top1:+.2f} | (FP32) | |")
    return "\n".join(lines) + "\n"


def _log(message: str) -> None:
    print(f"· {message}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
