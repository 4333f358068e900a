"""Fidelity of edgeresnet's latency measurement against OpenVINO's own benchmark_app.

For the same IR, device, thread count, batch and execution precision, benchmark_app (synchronous API,
LATENCY hint) and edgeresnet's ``measure_latency`` over an ``OpenVinoRunner`` are run in alternating
rounds in one session (ABBA order, so drift on a shared machine hits both equally), and the ratio of
our median to benchmark_app's reported Median is reported. Target: within 5%.

benchmark_app refuses ``-nthreads`` together with ``-hint latency`` (a UI rule), so the device
configuration goes in through ``-load_config`` with exactly the properties OpenVinoRunner compiles
with; the compiled models' effective properties (streams, threads, precision, pinning) are read back
from both sides and must match, or the script says so.

    python benchmarks/openvino_fidelity.py                 # ResNet-18, 224×224, FP32 and INT8 IRs, batch 1
    python benchmarks/openvino_fidelity.py --quick         # a smoke run: short rounds
    python benchmarks/openvino_fidelity.py --batch 8 --rounds 5 --seconds 15

Weights are random-init (see suite_models.py): latency is meaningful, accuracy is not reported.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import suite_models

from edgeresnet.atomic import atomic_write_json, atomic_write_text
from edgeresnet.bench import measure_latency
from edgeresnet.environment import environment

TARGET_RATIO_DEVIATION = 0.05
# The compiled-model properties that decide CPU latency; both sides must report the same values.
CHECKED_PROPERTIES = ("NUM_STREAMS", "INFERENCE_NUM_THREADS", "INFERENCE_PRECISION_HINT", "PERFORMANCE_HINT",
                      "ENABLE_CPU_PINNING", "ENABLE_HYPER_THREADING", "SCHEDULING_CORE_TYPE", "EXECUTION_MODE_HINT")
_MEDIAN = re.compile(r"Median:\s+([0-9.]+)\s*ms")
_MIN = re.compile(r"Min:\s+([0-9.]+)\s*ms")
_PROPERTY = re.compile(r"^\[ INFO \]\s{3}([A-Z_]+): (.*)$")


@dataclass
class Round:
    benchmark_app_median_ms: float
    benchmark_app_min_ms: float
    ours_median_ms: float
    ours_min_ms: float
    ours_runs: int
    # Runner.infer timed directly (a new input bound every call): shows what the lean call saves.
    infer_median_ms: float

    @property
    def ratio(self) -> float:
        return self.ours_median_ms / self.benchmark_app_median_ms

    @property
    def min_ratio(self) -> float:
        """Best-case call against best-case call: the ratio least disturbed by other load on the machine."""
        return self.ours_min_ms / self.benchmark_app_min_ms


@dataclass
class Comparison:
    config: str
    xml: str
    batch: int
    threads: int
    rounds: list[Round] = field(default_factory=list)
    property_mismatches: dict[str, tuple[str, str]] = field(default_factory=dict)

    @property
    def ratio(self) -> float:
        """Median over rounds of (our median / benchmark_app's median)."""
        return statistics.median(r.ratio for r in self.rounds)

    @property
    def min_ratio(self) -> float:
        return statistics.median(r.min_ratio for r in self.rounds)

    @property
    def infer_ratio(self) -> float:
        return statistics.median(r.infer_median_ms / r.benchmark_app_median_ms for r in self.rounds)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ratio": self.ratio, "round_ratios": [r.ratio for r in self.rounds],
                "min_ratio": self.min_ratio, "infer_ratio": self.infer_ratio,
                "within_target": abs(self.ratio - 1) <= TARGET_RATIO_DEVIATION}


def runner_config(threads: int) -> dict[str, Any]:
    """The properties OpenVinoRunner compiles a CPU model with (see runtime/openvino.py)."""
    # Both FP32 and INT8 IRs ask for f32 execution: without it this Zen 4 CPU runs float layers in bf16.
    return {"CPU": {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_NUM_THREADS": threads,
                    "INFERENCE_PRECISION_HINT": "f32"}}


def run_benchmark_app(xml: Path, batch: int, seconds: float, config_file: Path) -> tuple[float, float, dict[str, str]]:
    executable = shutil.which("benchmark_app") or str(Path(sys.executable).parent / "benchmark_app")
    command = [executable, "-m", str(xml), "-d", "CPU", "-api", "sync", "-b", str(batch), "-t", str(int(seconds)),
               "-load_config", str(config_file)]
    output = subprocess.run(command, capture_output=True, text=True, check=False).stdout
    median, minimum = _MEDIAN.search(output), _MIN.search(output)
    if median is None or minimum is None:
        raise RuntimeError(f"benchmark_app reported no latency statistics:\n{output[-2000:]}")
    properties = {m.group(1): m.group(2).strip() for m in map(_PROPERTY.match, output.splitlines()) if m}
    return float(median.group(1)), float(minimum.group(1)), properties


def our_properties(runner: Any) -> dict[str, str]:
    # The runner's compiled model is private; reading it here checks that both sides ran the same setup.
    compiled = runner._compiled
    values = {}
    for name in CHECKED_PROPERTIES:
        try:
            values[name] = str(compiled.get_property(name))
        except RuntimeError:
            values[name] = "unsupported"
    return values


def compare(config: str, xml: Path, *, batch: int, threads: int, rounds: int, seconds: float, work: Path) -> Comparison:
    import numpy as np

    from edgeresnet.runtime.openvino import OpenVinoRunner

    config_file = work / f"benchmark_app_config_{threads}.json"
    config_file.write_text(json.dumps(runner_config(threads)))
    precision = "int8" if "int8" in config else "fp32"
    comparison = Comparison(config=config, xml=str(xml), batch=batch, threads=threads)
    inputs = np.random.default_rng(0).standard_normal((batch, 3, suite_models.INPUT_SIZE, suite_models.INPUT_SIZE),
                                                      dtype=np.float32)
    with OpenVinoRunner(xml, threads=threads, precision=precision) as runner:
        runner.infer(inputs)  # compile any per-batch variant before the first round
        ours_props = our_properties(runner)
        call = runner.bind_for_timing(inputs)  # exactly what run_benchmark times

        def ours() -> Any:
            return measure_latency(lambda _: call(), inputs, min_time_s=seconds, max_time_s=seconds * 3)

        for index in range(rounds):
            ours_first = index % 2 == 1  # ABBA: neither side always runs on the warmer machine
            if ours_first:
                stats = ours()
            app_median, app_min, app_props = run_benchmark_app(xml, batch, seconds, config_file)
            if not ours_first:
                stats = ours()
            plain = measure_latency(runner.infer, inputs, min_time_s=seconds / 2, max_time_s=seconds * 2)
            comparison.rounds.append(Round(app_median, app_min, stats.p50_ms, stats.min_ms, stats.runs, plain.p50_ms))
            print(f"  {config} round {index + 1}: benchmark_app {app_median:.2f} ms (min {app_min:.2f}), "
                  f"ours {stats.p50_ms:.2f} ms (min {stats.min_ms:.2f}) → ratio {comparison.rounds[-1].ratio:.3f}, "
                  f"min ratio {comparison.rounds[-1].min_ratio:.3f}; infer() {plain.p50_ms:.2f} ms; "
                  f"load {os.getloadavg()[0]:.1f}", file=sys.stderr)
        comparison.property_mismatches = {
            name: (ours_props.get(name, "?"), app_props.get(name, "?"))
            for name in CHECKED_PROPERTIES if ours_props.get(name) != app_props.get(name)
        }
    return comparison


def markdown(comparisons: list[Comparison], args: argparse.Namespace, env: dict[str, Any]) -> str:
    lines = ["# OpenVINO latency fidelity: edgeresnet vs benchmark_app", "",
             (f"Model {args.model} (random-init weights) at {suite_models.INPUT_SIZE}×{suite_models.INPUT_SIZE}, "
             f"batch {args.batch}, {args.threads} threads, CPU, LATENCY hint, sync API, f32 execution precision; "
             f"{args.rounds} alternating rounds of {args.seconds:g} s each. Target: ratio within "
             f"±{TARGET_RATIO_DEVIATION:.0%}."), "",
             ("| IR | benchmark_app median ms (per round) | ours median ms (per round) | ratio of medians | "
             "ratio of mins | within 5% | Runner.infer ratio |"),
             "| --- | --- | --- | ---: | ---: | --- | ---: |"]
    for c in comparisons:
        lines.append(f"| {c.config} | {', '.join(f'{r.benchmark_app_median_ms:.2f}' for r in c.rounds)} | "
                     f"{', '.join(f'{r.ours_median_ms:.2f}' for r in c.rounds)} | {c.ratio:.3f} | {c.min_ratio:.3f} | "
                     f"{'yes' if abs(c.ratio - 1) <= TARGET_RATIO_DEVIATION else 'no'} | {c.infer_ratio:.3f} |")
    for c in comparisons:
        if c.property_mismatches:
            lines.append(f"\n**{c.config}: compiled properties differ (ours, benchmark_app):** {c.property_mismatches}")
    cpu = env["cpu"]
    lines += ["", ("Ratios are medians over rounds of ours ÷ benchmark_app's; the ratio of minimum latencies is "
                  "the one least disturbed by other load on a shared machine. \"Ours\" is the call run_benchmark "
                  "times (input bound once, InferRequest reused); the Runner.infer ratio times infer() directly, "
                  "which binds a new input every call."),
              "", f"Load average at the end: {env['load_average']}.",
              (f"Machine: {cpu['model']} ({cpu['usable_cores']} usable cores; {', '.join(cpu['flags'])}); "
                  f"{env['platform']}."),
              "Versions: " + ", ".join(f"{k} {v}" for k, v in env["versions"].items()) + "."]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="resnet18")
    parser.add_argument("--configs", default="ov-fp32,ov-int8-qdq",
                        help="comma-separated OpenVINO configs from suite_models.CONFIGS")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--seconds", type=float, default=8.0, help="benchmark_app -t and our min time, per round")
    parser.add_argument("--calib-images", type=int, default=64)
    parser.add_argument("--quick", action="store_true", help="smoke run: 2 rounds of 2 s, 16 calibration images")
    parser.add_argument("--work", type=Path, default=None, help="keep the built IRs here (default: a temp dir)")
    parser.add_argument("--output", type=Path, default=suite_models.REPO / "benchmarks" / "results",
                        help="where openvino_fidelity.md/.json go")
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.seconds, args.calib_images = 2, 2.0, 16
    suite_models.setup_logging()
    work = args.work or Path(tempfile.mkdtemp(prefix="edgeresnet-fidelity-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        fp32 = suite_models.export_fp32(args.model, work)
        calibration = suite_models.calibration_data(args.calib_images)
        configs = {c.key: c for c in suite_models.CONFIGS}
        comparisons = []
        for key in args.configs.split(","):
            xml = suite_models.build(configs[key], fp32, work, calibration)
            comparisons.append(compare(key, xml, batch=args.batch, threads=args.threads, rounds=args.rounds,
                                       seconds=args.seconds, work=work))
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)
    env = {**environment(), "load_average": [round(v, 2) for v in os.getloadavg()]}
    record = {"model": args.model, "batch": args.batch, "threads": args.threads, "rounds": args.rounds,
              "seconds": args.seconds, "comparisons": [c.to_dict() for c in comparisons], "environment": env}
    args.output.mkdir(parents=True, exist_ok=True)
    atomic_write_json(args.output / "openvino_fidelity.json", record)
    text = markdown(comparisons, args, env)
    atomic_write_text(args.output / "openvino_fidelity.md", text)
    print(text)


if __name__ == "__main__":
    main()
