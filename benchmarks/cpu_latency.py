"""CPU latency suite: ResNet-18 and ResNet-50 at 224×224 across runtimes, precisions and quantizers.

Measured side by side in one process, in interleaved rounds (each round times every configuration
once, in a rotated order), with a fixed thread count:

* PyTorch FP32 eager (the baseline a user would otherwise deploy),
* ONNX Runtime FP32 and INT8 and OpenVINO FP32 and INT8 as edgeresnet builds them (INT8 from the
  calibration table's QDQ model, and OpenVINO INT8 via NNCF as edgeresnet drives it),
* the peers' defaults: ONNX Runtime ``quantize_static`` and ``nncf.quantize`` with every default.

Each figure is the median over rounds of that round's p50; ratios are to PyTorch eager, to the best
peer (the faster of the two peer INT8 models), and to the compute-bound floor of DESIGN.md
(MACs / (2 cores × 64 INT8 MAC/cycle × 3.55 GHz); 16 FP32 MAC/cycle for FP32).

Weights are random-init and calibration uses real Fashion-MNIST images at 224×224 RGB: the latency
comparison is meaningful, accuracy is not (see suite_models.py). Writes cpu_latency.md, .json and
.png with the machine and versions to benchmarks/results/ (or --output).

    python benchmarks/cpu_latency.py            # the full suite (run it on a quiet machine)
    python benchmarks/cpu_latency.py --quick    # smoke run: ResNet-18, batch 1, one short round
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import suite_models
from suite_models import CONFIGS, Config

from edgeresnet.atomic import atomic_write_json, atomic_write_text, atomic_write_with
from edgeresnet.bench import measure_latency
from edgeresnet.environment import environment

log = suite_models.log


def write_checkpoint_for(name: str, directory: Path) -> Path:
    """The random-init model as a checkpoint directory, so PyTorch runs through the benchmark's own runner."""
    from edgeresnet.checkpoint import ModelCard, write_checkpoint
    from edgeresnet.data import open_source

    source = open_source(suite_models.DATA)
    spec = source.default_preprocess(suite_models.INPUT_SIZE, channels="RGB")
    card = ModelCard(architecture=name, num_classes=suite_models.NUM_CLASSES, in_chans=3, preprocessing=spec,
                     class_names=[f"class_{i}" for i in range(suite_models.NUM_CLASSES)])
    return write_checkpoint(directory / f"{name}-checkpoint", suite_models.random_resnet(name), card)


def open_config_runner(config: Config, model_file: Path, checkpoint: Path, threads: int) -> Any:
    from edgeresnet.backends.pytorch.runner import TorchRunner
    from edgeresnet.runtime.select import open_runner

    if config.backend == "pytorch":
        return TorchRunner(checkpoint, threads=threads)
    return open_runner(model_file, backend=config.backend, device="cpu", threads=threads, precision=config.precision)


def measure_model(name: str, configs: Sequence[Config], args: argparse.Namespace, work: Path) -> list[dict[str, Any]]:
    """Every configuration of one model at every batch size, interleaved; one record per (config, batch)."""
    started = time.perf_counter()
    fp32 = suite_models.export_fp32(name, work)
    calibration = suite_models.calibration_data(args.calib_images)
    checkpoint = write_checkpoint_for(name, work)
    files: dict[str, Path] = {}
    for config in configs:
        log.info("%s: building %s", name, config.label)
        files[config.key] = suite_models.build(config, fp32, work, calibration)
    log.info("%s: artifacts built in %.0f s", name, time.perf_counter() - started)

    runners = {c.key: open_config_runner(c, files[c.key], checkpoint, args.threads) for c in configs}
    pool = np.concatenate(calibration.batches)  # real images; np.resize repeats them for a bigger batch
    inputs = {b: np.ascontiguousarray(np.resize(pool, (b, *pool.shape[1:])), dtype=np.float32) for b in args.batches}
    p50s: dict[tuple[str, int], list[float]] = {}
    mins: dict[tuple[str, int], list[float]] = {}
    try:
        for runner in runners.values():  # one untimed call each: per-batch compiles happen outside timing
            for batch in args.batches:
                runner.infer(inputs[batch])
        # The same lean call run_benchmark times: input bound once, request reused.
        calls = {(c.key, b): runners[c.key].bind_for_timing(inputs[b]) for c in configs for b in args.batches}
        for round_index in range(args.rounds):
            # Rotate the order so no configuration always follows the same neighbour.
            order = list(configs[round_index % len(configs):]) + list(configs[: round_index % len(configs)])
            for batch in args.batches:
                for config in order:
                    call = calls[config.key, batch]
                    stats = measure_latency(lambda _batch, call=call: call(), inputs[batch], warmup=args.warmup,
                                            min_runs=args.min_runs, min_time_s=args.seconds,
                                            max_time_s=max(args.seconds * 4, 10.0))
                    p50s.setdefault((config.key, batch), []).append(stats.p50_ms)
                    mins.setdefault((config.key, batch), []).append(stats.min_ms)
            log.info("%s: round %d/%d done (load %.1f)", name, round_index + 1, args.rounds, os.getloadavg()[0])
    finally:
        for runner in runners.values():
            runner.close()

    macs = suite_models.model_macs(name)
    records = []
    for config in configs:
        for batch in args.batches:
            records.append({
                "model": name, "config": config.key, "label": config.label, "backend": config.backend,
                "precision": config.precision, "group": config.group, "batch": batch, "threads": args.threads,
                "p50_ms": statistics.median(p50s[config.key, batch]), "round_p50_ms": p50s[config.key, batch],
                "min_ms": min(mins[config.key, batch]),
                "file_size_bytes": _size(files[config.key]) if config.backend != "pytorch" else _size(checkpoint),
                "macs": macs,
                "floor_ms": suite_models.floor_ms(macs, batch=batch, int8=config.precision == "int8",
                                                  cores=args.threads),
            })
    _add_ratios(records)
    return records


def _size(path: Path) -> int:
    if path.is_dir():
        return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
    files = [path, path.with_suffix(".bin")] if path.suffix == ".xml" else [path]
    return sum(f.stat().st_size for f in files if f.is_file())


def _add_ratios(records: list[dict[str, Any]]) -> None:
    for batch in {r["batch"] for r in records}:
        group = [r for r in records if r["batch"] == batch]
        pytorch = next((r["p50_ms"] for r in group if r["backend"] == "pytorch"), None)
        peers = [r["p50_ms"] for r in group if r["group"] == "peer"]
        best_peer = min(peers) if peers else None
        for record in group:
            record["x_pytorch"] = record["p50_ms"] / pytorch if pytorch else None
            record["x_best_peer"] = record["p50_ms"] / best_peer if best_peer else None
            record["x_floor"] = record["p50_ms"] / record["floor_ms"]
            record["speedup_vs_pytorch"] = pytorch / record["p50_ms"] if pytorch else None


def _fmt(value: float | None, spec: str) -> str:
    return "—" if value is None else format(value, spec)


def markdown(records: list[dict[str, Any]], meta: dict[str, Any]) -> str:
    env = meta["environment"]
    cpu = env["cpu"]
    lines = [
        "# CPU latency: ResNet at 224×224",
        "",
        (f"Run {meta['date']} on **{cpu['model']}** ({cpu['usable_cores']} usable cores; flags "
        f"{', '.join(cpu['flags'])}), {meta['threads']} threads, {meta['rounds']} interleaved rounds of "
        f"≥{meta['seconds']:g} s and ≥{meta['min_runs']} runs per configuration; load average at the end "
        f"{meta['load_average']}."),
        "",
        "Versions: " + ", ".join(f"{k} {v}" for k, v in env["versions"].items()) + ".",
        "",
        ("Weights are random-init (no pretrained weights can be downloaded): the latency comparison is "
        "meaningful, accuracy is not and is not reported. Calibration used "
        f"{meta['calib_images']} real Fashion-MNIST calibration-split images resized to 224×224 RGB."),
        "",
        ("p50 is the median over rounds of each round's p50. × PyTorch < 1 is faster than PyTorch eager; "
        "× best peer compares with the faster of ONNX Runtime `quantize_static` defaults and "
        "`nncf.quantize` defaults; × floor is p50 over the compute-bound floor "
        "(MACs / (cores × 64 INT8 or 16 FP32 MAC/cycle × 3.55 GHz))."),
    ]
    for model in dict.fromkeys(r["model"] for r in records):
        for batch in dict.fromkeys(r["batch"] for r in records if r["model"] == model):
            group = [r for r in records if r["model"] == model and r["batch"] == batch]
            floor_int8 = next((r["floor_ms"] for r in group if r["precision"] == "int8"), None)
            floor_fp32 = next((r["floor_ms"] for r in group if r["precision"] == "fp32"), None)
            lines += ["", (f"## {model}, batch {batch} ({group[0]['macs'] / 1e9:.2f} GMAC per image; floor "
                          f"INT8 {_fmt(floor_int8, '.2f')} ms, FP32 {_fmt(floor_fp32, '.2f')} ms)"), "",
                      "| configuration | p50 ms | min ms | img/s | × PyTorch | × best peer | × floor | size MB |",
                      "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
            for r in sorted(group, key=lambda r: r["p50_ms"]):
                lines.append(f"| {r['label']} | {r['p50_ms']:.2f} | {r['min_ms']:.2f} | "
                             f"{batch * 1000 / r['p50_ms']:.1f} | {_fmt(r['x_pytorch'], '.3f')} | "
                             f"{_fmt(r['x_best_peer'], '.3f')} | {r['x_floor']:.2f} | {r['file_size_bytes'] / 1e6:.1f} |")
    return "\n".join(lines) + "\n"


def plot(records: list[dict[str, Any]], path: Path) -> Path:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    panels = list(dict.fromkeys((r["model"], r["batch"]) for r in records))
    figure = Figure(figsize=(10, 3.2 * len(panels) + 0.6), dpi=110)
    FigureCanvasAgg(figure)
    colours = {"baseline": "tab:grey", "edgeresnet": "tab:blue", "peer": "tab:orange"}
    for index, (model, batch) in enumerate(panels, start=1):
        axes = figure.add_subplot(len(panels), 1, index)
        group = sorted((r for r in records if r["model"] == model and r["batch"] == batch), key=lambda r: -r["p50_ms"])
        axes.barh([r["label"] for r in group], [r["p50_ms"] for r in group],
                  color=[colours[r["group"]] for r in group])
        for r in group:
            axes.text(r["p50_ms"], r["label"], f" {r['p50_ms']:.1f}", va="center", fontsize=7)
        floor_int8 = next((r["floor_ms"] for r in group if r["precision"] == "int8"), None)
        if floor_int8:
            axes.axvline(floor_int8, color="tab:red", linestyle=":", label=f"INT8 floor {floor_int8:.1f} ms")
            axes.legend(loc="lower right", fontsize=7)
        axes.set_title(f"{model}, batch {batch}: p50 latency (ms); blue edgeresnet, orange peers, grey PyTorch",
                       fontsize=9)
        axes.tick_params(labelsize=7)
    figure.tight_layout()
    return atomic_write_with(path, lambda tmp: figure.savefig(tmp, format="png"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default="resnet18,resnet50")
    parser.add_argument("--batches", default="1,8", help="batch 1 and a throughput batch")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=3.0, help="minimum timed seconds per configuration per round")
    parser.add_argument("--min-runs", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--calib-images", type=int, default=300, help="NNCF's default subset size")
    parser.add_argument("--configs", default=",".join(c.key for c in CONFIGS))
    parser.add_argument("--quick", action="store_true", help="smoke run: resnet18, batch 1, 1 round of 0.3 s")
    parser.add_argument("--work", type=Path, default=None, help="keep built models here (default: a temp dir)")
    parser.add_argument("--output", type=Path, default=suite_models.REPO / "benchmarks" / "results")
    args = parser.parse_args()
    if args.quick:
        args.models, args.batches, args.rounds, args.seconds, args.min_runs, args.warmup, args.calib_images = (
            "resnet18", "1", 1, 0.3, 3, 1, 16)
    args.batches = [int(b) for b in str(args.batches).split(",")]
    wanted = args.configs.split(",")
    configs = [c for c in CONFIGS if c.key in wanted]
    suite_models.setup_logging()
    work = args.work or Path(tempfile.mkdtemp(prefix="edgeresnet-cpu-latency-"))
    work.mkdir(parents=True, exist_ok=True)
    records: list[dict[str, Any]] = []
    try:
        for name in args.models.split(","):
            records += measure_model(name, configs, args, work)
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)
    meta = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "threads": args.threads, "rounds": args.rounds, "seconds": args.seconds, "min_runs": args.min_runs,
        "warmup": args.warmup, "calib_images": args.calib_images, "quick": args.quick,
        "load_average": [round(v, 2) for v in os.getloadavg()],
        "environment": environment(),
        "floor": {"cores": args.threads, "clock_hz": suite_models.CLOCK_HZ,
                  "int8_macs_per_cycle": suite_models.INT8_MACS_PER_CYCLE,
                  "fp32_macs_per_cycle": suite_models.FP32_MACS_PER_CYCLE},
        "weights": "random-init (seeded); latency meaningful, accuracy not",
    }
    args.output.mkdir(parents=True, exist_ok=True)
    atomic_write_json(args.output / "cpu_latency.json", {"records": records, **meta})
    text = markdown(records, meta)
    atomic_write_text(args.output / "cpu_latency.md", text)
    plot(records, args.output / "cpu_latency.png")
    print(text)


if __name__ == "__main__":
    main()
