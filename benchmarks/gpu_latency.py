"""GPU latency suite: ResNet-50 at 224×224 on one NVIDIA GPU, side by side in one process.

Configurations, each timed at batch 1 and at a throughput batch (32 by default):

* PyTorch CUDA FP32 eager (the baseline a user would otherwise deploy),
* PyTorch CUDA FP16 (autocast, channels_last: what a PyTorch user does to go faster),
* ONNX Runtime CUDA FP32, where onnxruntime-gpu is installed,
* TensorRT FP16 and INT8 engines built by ``edgeresnet.backends.tensorrt.build`` (FP16 from the FP16 ONNX,
  INT8 from edgeresnet's TensorRT QDQ model: NVIDIA's placement, FP16 outside INT8; strongly typed
  networks), where TensorRT is installed.

Every call is timed end to end from a host numpy batch: upload, compute, download, and a device
synchronisation inside the timed interval (``edgeresnet.bench.measure_latency`` with the benchmark's
synchroniser), as an application feeding host images sees it. Configurations are measured in
interleaved rounds (each round times every configuration once, in a rotated order); each figure is
the median over rounds of that round's p50, and ratios are to PyTorch CUDA FP32 at the same batch.

Weights are random-init (seeded) and INT8 ranges come from synthetic calibration images: nothing is
downloaded, the latency comparison is meaningful, accuracy is not and is not reported. Writes
``gpu_latency-<gpu>.md`` and ``.json`` naming the GPU, driver and versions to benchmarks/results/
(or --output). Where there is no CUDA GPU it says so, writes nothing and exits 0.

    python benchmarks/gpu_latency.py                 # the full suite
    python benchmarks/gpu_latency.py --quick         # smoke run: one short round
"""

from __future__ import annotations

import argparse
import copy
import re
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
MODEL = "resnet50"
INPUT_SIZE = 224
NUM_CLASSES = 1000
SKIPPED = "no CUDA GPU here: skipped"


@dataclass(frozen=True)
class Config:
    key: str
    label: str
    backend: str
    precision: str


CONFIGS = (
    Config("torch-fp32", "PyTorch CUDA FP32 eager", "pytorch", "fp32"),
    Config("torch-fp16", "PyTorch CUDA FP16 (autocast, channels_last)", "pytorch", "fp16"),
    Config("ort-fp32", "ONNX Runtime CUDA FP32", "onnxruntime", "fp32"),
    Config("trt-fp16", "TensorRT FP16 (edgeresnet engine)", "tensorrt", "fp16"),
    Config("trt-int8", "TensorRT INT8 (edgeresnet QDQ engine)", "tensorrt", "int8"),
)


def log(message: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} {message}", file=sys.stderr, flush=True)


# --- what this machine can run ------------------------------------------------------------------------


def available(config: Config) -> str | None:
    """Why ``config`` cannot run here, or None when it can."""
    import importlib.util

    if config.backend == "pytorch":
        import torch

        return None if torch.cuda.is_available() else f"torch {torch.__version__} has no CUDA here"
    if config.backend == "onnxruntime":
        import onnxruntime

        if "CUDAExecutionProvider" not in onnxruntime.get_available_providers():
            return "onnxruntime has no CUDA provider here (install onnxruntime-gpu)"
        return None
    if importlib.util.find_spec("tensorrt") is None:
        return "TensorRT is not installed here"
    if importlib.util.find_spec("cuda") is None and not _torch_cuda():
        return "TensorRT needs cuda-python or torch with CUDA for its buffers"
    return None


def _torch_cuda() -> bool:
    import torch

    return torch.cuda.is_available()


# --- building the artifacts ---------------------------------------------------------------------------


def random_resnet() -> Any:
    import torch

    from edgeresnet.models import create_model

    torch.manual_seed(0)
    return create_model(MODEL, num_classes=NUM_CLASSES, in_chans=3).eval()


def export_fp32(module: Any, work: Path) -> Path:
    from edgeresnet.data.preprocessing import PreprocessSpec
    from edgeresnet.export.onnx import export_onnx

    return export_onnx(module, PreprocessSpec(input_size=(INPUT_SIZE, INPUT_SIZE), channels="RGB"),
                       work / f"{MODEL}.fp32.onnx")


def synthetic_batches(count: int, seed: int = 1) -> list[np.ndarray]:
    """Smooth random images with normalised statistics (about N(0, 1) per channel): ranges for latency,
    not for accuracy. Smooth, because the calibration refuses pixel noise as a sign of broken data."""
    rng = np.random.default_rng(seed)
    cells = INPUT_SIZE // 16
    coarse = rng.standard_normal((count // 8 * 8, 3, cells, cells))
    images = np.repeat(np.repeat(coarse, 16, axis=2), 16, axis=3)
    images = images + 0.1 * rng.standard_normal(images.shape)
    return [images[i : i + 8].astype(np.float32) for i in range(0, len(images), 8)]


def build_engine(config: Config, fp32: Path, work: Path, batch: int, cache: Path) -> Path:
    """A TensorRT engine of ``config``'s precision tuned for ``batch`` (optimisation profile 1..batch)."""
    import hashlib

    from edgeresnet.backends.tensorrt import build as trt_export

    if config.precision == "fp16":
        network = work / f"{MODEL}.fp16.onnx"
        if not network.is_file():
            trt_export.convert_onnx_to_fp16(fp32, network)
    else:
        network = work / f"{MODEL}.tensorrt-qdq.int8.onnx"
        if not network.is_file():
            from edgeresnet.calibration import calibrate, quantize_qdq

            batches = synthetic_batches(64)
            digest = hashlib.sha256(b"".join(b.tobytes() for b in batches)).hexdigest()
            table = calibrate(fp32, batches, method="minmax", data_hash=digest)
            quantize_qdq(fp32, table, network, flavour="tensorrt")
    engine = work / f"{MODEL}.{config.key}.b{batch}.engine"
    options = trt_export.TensorRtBuildOptions(max_batch=batch, opt_batch=batch, timing_cache=cache)
    build = trt_export.build_engine(network, engine, options=options, carry="the ONNX", timing_cache_out=cache)
    log(f"{config.label}, batch {batch}: engine built in {build.seconds:.0f} s; layers {build.layer_precisions}")
    return engine


def open_runner(config: Config, module: Any, fp32: Path, engines: dict[tuple[str, int], Path], batch: int) -> Any:
    from edgeresnet.backends.onnxruntime.runner import OnnxRuntimeRunner
    from edgeresnet.backends.pytorch.runner import TorchRunner
    from edgeresnet.backends.tensorrt.runner import TensorRTRunner

    if config.backend == "pytorch":
        # Each runner owns its module: channels_last converts the weights of the module it is given.
        return TorchRunner(copy.deepcopy(module), device="cuda", precision=config.precision,  # type: ignore[arg-type]
                           channels_last=config.precision != "fp32")
    if config.backend == "onnxruntime":
        return OnnxRuntimeRunner(fp32, device="cuda", precision=config.precision)
    return TensorRTRunner(engines[config.key, batch], device="cuda", precision=config.precision)  # type: ignore[arg-type]


# --- measuring ----------------------------------------------------------------------------------------


@dataclass
class Slot:
    """One (configuration, batch): its runner's timed call and the per-round results."""

    config: Config
    batch: int
    call: Callable[[], object]
    synchronize: Callable[[], object] | None
    p50s: list[float]
    mins: list[float]


def measure(configs: list[Config], args: argparse.Namespace, work: Path) -> tuple[list[dict[str, Any]], list[str]]:
    """Every runnable configuration at every batch, interleaved; one record per (config, batch)."""
    import torch

    from edgeresnet.bench import measure_latency, synchronizer

    torch.backends.cudnn.benchmark = True  # what a PyTorch GPU deployment sets: the fastest conv algorithms
    module = random_resnet()
    fp32 = export_fp32(module, work)
    rng = np.random.default_rng(0)
    inputs = {b: rng.standard_normal((b, 3, INPUT_SIZE, INPUT_SIZE)).astype(np.float32) for b in args.batches}
    engines: dict[tuple[str, int], Path] = {}
    notes: list[str] = []
    runners: list[Any] = []
    slots: list[Slot] = []
    try:
        for config in configs:
            for batch in args.batches:
                try:
                    if config.backend == "tensorrt":
                        engines[config.key, batch] = build_engine(config, fp32, work, batch, work / "timing.cache")
                    runner = open_runner(config, module, fp32, engines, batch)
                    runners.append(runner)
                    runner.infer(inputs[batch])  # untimed: lazy initialisation and autotuning happen here
                except Exception as error:  # noqa: BLE001  (one configuration failing must not stop the others)
                    notes.append(f"{config.label}, batch {batch}: failed: {_first_line(error)}")
                    log(notes[-1])
                    continue
                slots.append(Slot(config, batch, runner.bind_for_timing(inputs[batch]), synchronizer(runner), [], []))
        for round_index in range(args.rounds):
            # Rotate the order so no configuration always follows the same neighbour (clocks, thermals).
            shift = round_index % max(len(slots), 1)
            for slot in slots[shift:] + slots[:shift]:
                stats = measure_latency(lambda _batch, call=slot.call: call(), inputs[slot.batch],
                                        warmup=args.warmup, min_runs=args.min_runs, min_time_s=args.seconds,
                                        max_time_s=max(4 * args.seconds, 10.0), synchronize=slot.synchronize)
                slot.p50s.append(stats.p50_ms)
                slot.mins.append(stats.min_ms)
            log(f"round {round_index + 1}/{args.rounds} done")
    finally:
        for runner in runners:
            runner.close()
    return _records(slots), notes


def _records(slots: list[Slot]) -> list[dict[str, Any]]:
    records = []
    for slot in slots:
        p50 = statistics.median(slot.p50s)
        records.append({"config": slot.config.key, "label": slot.config.label, "backend": slot.config.backend,
                        "precision": slot.config.precision, "batch": slot.batch, "p50_ms": p50,
                        "round_p50_ms": slot.p50s, "min_ms": min(slot.mins),
                        "images_per_s": slot.batch * 1000.0 / p50})
    for batch in {r["batch"] for r in records}:
        baseline = next((r["p50_ms"] for r in records if r["batch"] == batch and r["config"] == "torch-fp32"), None)
        for record in (r for r in records if r["batch"] == batch):
            record["speedup_vs_pytorch_fp32"] = baseline / record["p50_ms"] if baseline else None
    return records


def _first_line(error: BaseException) -> str:
    lines = [line for line in str(error).splitlines() if line.strip()]
    return f"{type(error).__name__}: {lines[0]}" if lines else type(error).__name__


# --- reporting ----------------------------------------------------------------------------------------


def versions() -> dict[str, str]:
    """Tool versions, plus the CUDA/cuDNN torch was built with (the runtime libraries that did the work)."""
    import torch

    from edgeresnet.environment import tool_versions

    found = tool_versions()
    found["torch CUDA"] = str(torch.version.cuda)
    found["cuDNN"] = str(torch.backends.cudnn.version())
    # PyTorch "FP32" convolutions run in TF32 on Ampere and newer by default (edgeresnet's FP32 engines do not).
    found["torch TF32 (cuDNN conv, CUDA matmul)"] = (f"{torch.backends.cudnn.allow_tf32}, "
                                                      f"{torch.backends.cuda.matmul.allow_tf32}")
    for package in ("cuda-python", "onnxruntime-gpu"):
        from edgeresnet.environment import package_version

        version = package_version(package)
        if version:
            found[package] = version
    return found


def gpu_line(gpu: dict[str, Any]) -> str:
    facts = [f"sm {gpu['compute_capability']}", f"{gpu['memory_mib']} MiB" if gpu.get("memory_mib") else "",
             f"driver {gpu['driver_version']}" if gpu.get("driver_version") else "driver unknown",
             f"CUDA {gpu['cuda_driver']} driver API" if gpu.get("cuda_driver") else ""]
    return f"{gpu['name']} ({', '.join(f for f in facts if f)})"


def markdown(records: list[dict[str, Any]], meta: dict[str, Any]) -> str:
    lines = [
        f"# GPU latency: {MODEL} at {INPUT_SIZE}×{INPUT_SIZE}",
        "",
        (f"Run {meta['date']} on **{gpu_line(meta['gpu'])}**, host CPU {meta['environment']['cpu']['model']}; "
         f"{meta['rounds']} interleaved rounds of ≥{meta['seconds']:g} s and ≥{meta['min_runs']} runs per "
         "configuration."),
        "",
        "Versions: " + ", ".join(f"{k} {v}" for k, v in meta["versions"].items()) + ".",
        "",
        ("Each call is timed end to end from a host numpy batch (upload, compute, download, device "
         "synchronised inside the timed interval). p50 is the median over rounds of each round's p50; "
         "× PyTorch is PyTorch CUDA FP32's p50 over this one's (higher is faster). Weights are random-init "
         "and INT8 ranges come from synthetic images: latency is meaningful, accuracy is not reported."),
    ]
    for batch in sorted({r["batch"] for r in records}):
        lines += ["", f"## batch {batch}", "",
                  "| configuration | p50 ms | min ms | img/s | × PyTorch FP32 |",
                  "| --- | ---: | ---: | ---: | ---: |"]
        for r in sorted((r for r in records if r["batch"] == batch), key=lambda r: r["p50_ms"]):
            speedup = r["speedup_vs_pytorch_fp32"]
            lines.append(f"| {r['label']} | {r['p50_ms']:.3f} | {r['min_ms']:.3f} | {r['images_per_s']:.0f} | "
                         f"{'—' if speedup is None else format(speedup, '.2f')} |")
    if meta["not_measured"]:
        lines += ["", "## Not measured", ""] + [f"- {note}" for note in meta["not_measured"]]
    return "\n".join(lines) + "\n"


def slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "gpu"


# --- main ---------------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batches", default="1,32", help="batch 1 and a throughput batch")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=2.0, help="minimum timed seconds per configuration per round")
    parser.add_argument("--min-runs", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--configs", default=",".join(c.key for c in CONFIGS))
    parser.add_argument("--quick", action="store_true", help="smoke run: one round of 0.3 s")
    parser.add_argument("--work", type=Path, default=None, help="keep built models here (default: a temp dir)")
    parser.add_argument("--output", type=Path, default=REPO / "benchmarks" / "results")
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.seconds, args.min_runs, args.warmup = 1, 0.3, 10, 5
    args.batches = [int(b) for b in str(args.batches).split(",")]

    import torch  # noqa: F401  (imported first, so that gpu_info can ask torch where nothing else answers)

    from edgeresnet.environment import environment, gpu_info

    gpus = gpu_info()
    if not gpus:
        print(SKIPPED)
        return 0
    wanted = [c for c in CONFIGS if c.key in args.configs.split(",")]
    reasons = {c.key: available(c) for c in wanted}
    not_measured = [f"{c.label}: {reasons[c.key]}" for c in wanted if reasons[c.key]]
    runnable = [c for c in wanted if not reasons[c.key]]
    if not runnable:
        print(f"{SKIPPED} (a GPU is visible, but nothing here can run on it: {'; '.join(not_measured)})")
        return 0

    work = args.work or Path(tempfile.mkdtemp(prefix="edgeresnet-gpu-latency-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        records, failed = measure(runnable, args, work)
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)
    if not records:
        print(f"nothing could be measured: {'; '.join(not_measured + failed)}", file=sys.stderr)
        return 1
    meta = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "model": MODEL, "input_size": INPUT_SIZE, "batches": args.batches, "rounds": args.rounds,
        "seconds": args.seconds, "min_runs": args.min_runs, "warmup": args.warmup, "quick": args.quick,
        "gpu": gpus[0].to_dict(), "environment": environment(), "versions": versions(),
        "not_measured": not_measured + failed,
        "timing": "end to end from host numpy batches; device synchronised inside each timed call",
        "weights": "random-init (seeded); INT8 ranges from synthetic images; latency meaningful, accuracy not",
    }
    args.output.mkdir(parents=True, exist_ok=True)
    from edgeresnet.atomic import atomic_write_json, atomic_write_text

    stem = f"gpu_latency-{slug(gpus[0].name)}"
    atomic_write_json(args.output / f"{stem}.json", {"records": records, **meta})
    text = markdown(records, meta)
    atomic_write_text(args.output / f"{stem}.md", text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
