"""Fidelity of edgeresnet's latency and throughput measurement against OpenVINO's own benchmark_app.

For the same IR, device, thread count, batch and execution precision:

* **latency**: benchmark_app (synchronous API, LATENCY hint) against edgeresnet's ``measure_latency`` over
  an ``OpenVinoRunner`` (what ``edgeresnet benchmark`` times); the ratio of our p50 to benchmark_app's
  reported Median;
* **throughput**: benchmark_app (asynchronous API, THROUGHPUT hint, its default number of requests)
  against ``edgeresnet.bench.throughput.saturate_openvino`` (what ``benchmark --mode throughput`` runs);
  the ratio of our images/s to benchmark_app's reported Throughput.

Both sides run in alternating rounds in one session (ABBA order, so drift on a shared machine hits both
equally). Target: each ratio within 5%.

benchmark_app refuses ``-nthreads`` together with ``-hint latency`` (a UI rule), so the device
configuration goes in through ``-load_config`` with exactly the properties OpenVinoRunner compiles
with; the compiled models' effective properties (streams, threads, precision, pinning) are read back
from both sides and must match, or the script says so.

    python benchmarks/openvino_fidelity.py                 # ResNet-50, 224×224, FP32 and INT8 IRs, batch 1 (~6 min)
    python benchmarks/openvino_fidelity.py --quick         # a smoke run: short rounds, ResNet-18
    python benchmarks/openvino_fidelity.py --model resnet18 --modes latency --batch 8 --rounds 5 --seconds 15

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
_THROUGHPUT = re.compile(r"Throughput:\s+([0-9.]+)\s*FPS")
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


@dataclass
class ThroughputRound:
    benchmark_app_fps: float
    ours_fps: float
    ours_requests: int
    ours_p50_ms: float

    @property
    def ratio(self) -> float:
        return self.ours_fps / self.benchmark_app_fps


@dataclass
class ThroughputComparison:
    config: str
    xml: str
    batch: int
    threads: int
    rounds: list[ThroughputRound] = field(default_factory=list)
    property_mismatches: dict[str, tuple[str, str]] = field(default_factory=dict)

    @property
    def ratio(self) -> float:
        """Median over rounds of (our images/s / benchmark_app's)."""
        return statistics.median(r.ratio for r in self.rounds)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ratio": self.ratio, "round_ratios": [r.ratio for r in self.rounds],
                "within_target": abs(self.ratio - 1) <= TARGET_RATIO_DEVIATION}


def runner_config(threads: int, hint: str = "LATENCY") -> dict[str, Any]:
    """The properties OpenVinoRunner compiles a CPU model with (see runtime/openvino.py)."""
    # Both FP32 and INT8 IRs ask for f32 execution: without it this Zen 4 CPU runs float layers in bf16.
    return {"CPU": {"PERFORMANCE_HINT": hint, "INFERENCE_NUM_THREADS": threads,
                    "INFERENCE_PRECISION_HINT": "f32"}}


def _benchmark_app_output(xml: Path, batch: int, seconds: float, config_file: Path, api: str) -> str:
    executable = shutil.which("benchmark_app") or str(Path(sys.executable).parent / "benchmark_app")
    command = [executable, "-m", str(xml), "-d", "CPU", "-api", api, "-b", str(batch), "-t", str(int(seconds)),
               "-load_config", str(config_file)]
    return subprocess.run(command, capture_output=True, text=True, check=False).stdout


def _properties(output: str) -> dict[str, str]:
    return {m.group(1): m.group(2).strip() for m in map(_PROPERTY.match, output.splitlines()) if m}


def run_benchmark_app(xml: Path, batch: int, seconds: float, config_file: Path) -> tuple[float, float, dict[str, str]]:
    output = _benchmark_app_output(xml, batch, seconds, config_file, "sync")
    median, minimum = _MEDIAN.search(output), _MIN.search(output)
    if median is None or minimum is None:
        raise RuntimeError(f"benchmark_app reported no latency statistics:\n{output[-2000:]}")
    return float(median.group(1)), float(minimum.group(1)), _properties(output)


def run_benchmark_app_throughput(xml: Path, batch: int, seconds: float, config_file: Path) -> tuple[float, dict[str, str]]:
    """benchmark_app's asynchronous mode (its default number of requests for the THROUGHPUT hint): FPS."""
    output = _benchmark_app_output(xml, batch, seconds, config_file, "async")
    fps = _THROUGHPUT.search(output)
    if fps is None:
        raise RuntimeError(f"benchmark_app reported no throughput:\n{output[-2000:]}")
    return float(fps.group(1)), _properties(output)


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


def compare_throughput(config: str, xml: Path, *, batch: int, threads: int, rounds: int, seconds: float,
                       work: Path) -> ThroughputComparison:
    import numpy as np

    from edgeresnet.bench import BenchmarkJob
    from edgeresnet.bench.throughput import saturate_openvino
    from edgeresnet.runtime.openvino import OpenVinoRunner

    config_file = work / f"benchmark_app_throughput_{threads}.json"
    config_file.write_text(json.dumps(runner_config(threads, "THROUGHPUT")))
    precision = "int8" if "int8" in config else "fp32"
    comparison = ThroughputComparison(config=config, xml=str(xml), batch=batch, threads=threads)
    inputs = np.random.default_rng(0).standard_normal((batch, 3, suite_models.INPUT_SIZE, suite_models.INPUT_SIZE),
                                                      dtype=np.float32)
    # What `benchmark --mode throughput` runs, with this script's timing window.
    job = BenchmarkJob(artifacts=(xml,), min_time_s=seconds, max_time_s=seconds * 3, min_runs=1)
    with OpenVinoRunner(xml, threads=threads, precision=precision, performance_hint="THROUGHPUT") as runner:
        ours_props = our_properties(runner)
        app_props: dict[str, str] = {}
        for index in range(rounds):
            ours_first = index % 2 == 1  # ABBA
            if ours_first:
                stats = saturate_openvino(runner, inputs, job)
            app_fps, app_props = run_benchmark_app_throughput(xml, batch, seconds, config_file)
            if not ours_first:
                stats = saturate_openvino(runner, inputs, job)
            comparison.rounds.append(ThroughputRound(app_fps, stats.images_per_s, stats.streams, stats.latency.p50_ms))
            print(f"  {config} throughput round {index + 1}: benchmark_app {app_fps:.1f} img/s, ours "
                  f"{stats.images_per_s:.1f} img/s with {stats.streams} requests → ratio "
                  f"{comparison.rounds[-1].ratio:.3f}; load {os.getloadavg()[0]:.1f}", file=sys.stderr)
        comparison.property_mismatches = {
            name: (ours_props.get(name, "?"), app_props.get(name, "?"))
            for name in CHECKED_PROPERTIES if ours_props.get(name) != app_props.get(name)
        }
    return comparison


def markdown(comparisons: list[Comparison], throughput: list[ThroughputComparison], args: argparse.Namespace,
             env: dict[str, Any]) -> str:
    lines = ["# OpenVINO fidelity: edgeresnet vs benchmark_app", "",
             (f"Model {args.model} (random-init weights) at {suite_models.INPUT_SIZE}×{suite_models.INPUT_SIZE}, "
              f"batch {args.batch}, {args.threads} threads, CPU, f32 execution precision; {args.rounds} alternating "
              f"rounds of {args.seconds:g} s each per side. Target: each ratio within ±{TARGET_RATIO_DEVIATION:.0%}.")]
    if comparisons:
        lines += _latency_table(comparisons)
    if throughput:
        lines += _throughput_table(throughput)
    cpu = env["cpu"]
    lines += ["", f"Load average at the end: {env['load_average']}.",
              (f"Machine: {cpu['model']} ({cpu['usable_cores']} usable cores; {', '.join(cpu['flags'])}); "
               f"{env['platform']}."),
              "Versions: " + ", ".join(f"{k} {v}" for k, v in env["versions"].items()) + ".",
              f"Command: `python benchmarks/openvino_fidelity.py {' '.join(sys.argv[1:])}`"]
    return "\n".join(lines) + "\n"


def _within(ratio: float) -> str:
    return "yes" if abs(ratio - 1) <= TARGET_RATIO_DEVIATION else "no"


def _latency_table(comparisons: list[Comparison]) -> list[str]:
    lines = ["", "## Latency (LATENCY hint, sync API)", "",
             ("| IR | benchmark_app median ms (per round) | ours p50 ms (per round) | ratio of medians | "
              "ratio of mins | within 5% | Runner.infer ratio |"),
             "| --- | --- | --- | ---: | ---: | --- | ---: |"]
    for c in comparisons:
        lines.append(f"| {c.config} | {', '.join(f'{r.benchmark_app_median_ms:.2f}' for r in c.rounds)} | "
                     f"{', '.join(f'{r.ours_median_ms:.2f}' for r in c.rounds)} | {c.ratio:.3f} | {c.min_ratio:.3f} | "
                     f"{_within(c.ratio)} | {c.infer_ratio:.3f} |")
    lines += [f"\n**{c.config}: compiled properties differ (ours, benchmark_app):** {c.property_mismatches}"
              for c in comparisons if c.property_mismatches]
    lines += ["", ("Ratios are medians over rounds of ours ÷ benchmark_app's; the ratio of minimum latencies is "
                   "the one least disturbed by other load on a shared machine. \"Ours\" is the call run_benchmark "
                   "times (input bound once, InferRequest reused); the Runner.infer ratio times infer() directly, "
                   "which binds a new input every call.")]
    return lines


def _throughput_table(comparisons: list[ThroughputComparison]) -> list[str]:
    lines = ["", "## Throughput (THROUGHPUT hint, async API, the optimal number of requests)", "",
             ("| IR | benchmark_app img/s (per round) | ours img/s (per round) | our requests | our p50 ms | "
              "ratio of img/s | within 5% |"),
             "| --- | --- | --- | ---: | ---: | ---: | --- |"]
    for c in comparisons:
        lines.append(f"| {c.config} | {', '.join(f'{r.benchmark_app_fps:.1f}' for r in c.rounds)} | "
                     f"{', '.join(f'{r.ours_fps:.1f}' for r in c.rounds)} | {c.rounds[0].ours_requests} | "
                     f"{statistics.median(r.ours_p50_ms for r in c.rounds):.2f} | {c.ratio:.3f} | {_within(c.ratio)} |")
    lines += [f"\n**{c.config}: compiled properties differ (ours, benchmark_app):** {c.property_mismatches}"
              for c in comparisons if c.property_mismatches]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="resnet50")
    parser.add_argument("--configs", default="ov-fp32,ov-int8-qdq",
                        help="comma-separated OpenVINO configs from suite_models.CONFIGS")
    parser.add_argument("--modes", default="latency,throughput", help="latency, throughput or both (comma-separated)")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=8.0, help="benchmark_app -t and our min time, per round")
    parser.add_argument("--calib-images", type=int, default=64)
    parser.add_argument("--quick", action="store_true", help="smoke run: ResNet-18, 2 rounds of 2 s, 16 calibration images")
    parser.add_argument("--work", type=Path, default=None, help="keep the built IRs here (default: a temp dir)")
    parser.add_argument("--output", type=Path, default=suite_models.REPO / "benchmarks" / "results",
                        help="where openvino_fidelity.md/.json go")
    args = parser.parse_args()
    if args.quick:
        args.model, args.rounds, args.seconds, args.calib_images = "resnet18", 2, 2.0, 16
    modes = set(args.modes.split(","))
    if not modes <= {"latency", "throughput"}:
        parser.error(f"--modes takes latency and/or throughput, not {args.modes}")
    suite_models.setup_logging()
    latency, throughput = _measure(args, modes)
    env = {**environment(), "load_average": [round(v, 2) for v in os.getloadavg()]}
    record = {"model": args.model, "batch": args.batch, "threads": args.threads, "rounds": args.rounds,
              "seconds": args.seconds, "comparisons": [c.to_dict() for c in latency],
              "throughput": [c.to_dict() for c in throughput], "environment": env, "command": sys.argv[1:]}
    args.output.mkdir(parents=True, exist_ok=True)
    atomic_write_json(args.output / "openvino_fidelity.json", record)
    text = markdown(latency, throughput, args, env)
    atomic_write_text(args.output / "openvino_fidelity.md", text)
    print(text)


def _measure(args: argparse.Namespace, modes: set[str]) -> tuple[list[Comparison], list[ThroughputComparison]]:
    """Build the IRs, then per IR the latency rounds and the throughput rounds."""
    work = args.work or Path(tempfile.mkdtemp(prefix="edgeresnet-fidelity-"))
    work.mkdir(parents=True, exist_ok=True)
    latency, throughput = [], []
    settings = {"batch": args.batch, "threads": args.threads, "rounds": args.rounds, "seconds": args.seconds,
                "work": work}
    try:
        fp32 = suite_models.export_fp32(args.model, work)
        calibration = suite_models.calibration_data(args.calib_images)
        configs = {c.key: c for c in suite_models.CONFIGS}
        for key in args.configs.split(","):
            xml = suite_models.build(configs[key], fp32, work, calibration)
            if "latency" in modes:
                latency.append(compare(key, xml, **settings))
            if "throughput" in modes:
                throughput.append(compare_throughput(key, xml, **settings))
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)
    return latency, throughput


if __name__ == "__main__":
    main()
