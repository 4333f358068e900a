"""The photo path's parts, timed alone: the figures docs/photo-to-label.md gives for its design choices.

On the same 640×427 photo and ResNet-50 OpenVINO INT8 bundle as ``e2e_latency.py`` (run that first: it builds
them), in one process, each pair alternated call by call (p50 of ``--calls``):

* the resize + crop to 224×224 with and without the Classifier's resize thread, on a quiet host and with a
  process spinning on another core;
* the out-of-distribution hint's pixel statistics alone, just before a model call, and just after one.

    python benchmarks/photo_path_micro.py      # ~1 minute; writes results/photo_path_micro.{json,md}
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from edgeresnet.atomic import atomic_write_text
from edgeresnet.data.decoding import open_image
from edgeresnet.environment import environment
from edgeresnet.runtime.classifier import Classifier
from edgeresnet.runtime.ood import pixel_features


def alternate(calls: dict[str, Callable[[], object]], count: int) -> dict[str, float]:
    """p50 ms of each call, the calls taken in turn so a drifting host moves them alike."""
    for call in calls.values():
        call()
    samples: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(count):
        for name, call in calls.items():
            started = time.perf_counter()
            call()
            samples[name].append(time.perf_counter() - started)
    return {name: round(1000 * statistics.median(values), 3) for name, values in samples.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "edgeresnet-e2e-latency")
    parser.add_argument("--calls", type=int, default=400)
    parser.add_argument("--output", type=Path, default=Path(__file__).resolve().parent / "results")
    args = parser.parse_args()
    photo, bundle = args.work / "china.jpg", args.work / "resnet50-openvino-int8-hint"
    if not (photo.is_file() and (bundle / "manifest.json").is_file()):
        raise SystemExit(f"run benchmarks/e2e_latency.py first: it writes {photo} and {bundle}")
    record: dict[str, object] = {"command": "python benchmarks/photo_path_micro.py", "calls": args.calls}
    with Classifier.load(bundle, threads=2) as classifier:
        spec, pool = classifier.spec, classifier.resize_pool
        image = open_image(photo, spec.draft_size)
        resize = {"alone": lambda: spec.resize_and_crop(image), "with_resize_thread": lambda: spec.resize_and_crop(image, pool)}
        record["resize_ms_quiet"] = alternate(resize, args.calls)
        spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
        try:
            time.sleep(0.5)
            record["resize_ms_other_core_busy"] = alternate(resize, args.calls)
        finally:
            spinner.kill()
        pixels = spec.load(photo, pool)[None]

        def before_model() -> None:
            pixel_features(pixels)

        def after_model() -> None:
            classifier.logits_from_pixels(pixels)
            started = time.perf_counter()
            pixel_features(pixels)
            timings.append(time.perf_counter() - started)

        timings: list[float] = []
        record["pixel_statistics_ms_alone"] = alternate({"alone": before_model}, args.calls)["alone"]
        for _ in range(args.calls // 4):
            after_model()
        record["pixel_statistics_ms_after_a_model_call"] = round(1000 * statistics.median(timings), 3)
    record["environment"] = environment()
    args.output.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.output / "photo_path_micro.json", json.dumps(record, indent=2) + "\n")
    cpu = record["environment"].get("cpu", {}).get("model", "?")  # type: ignore[union-attr]
    lines = ["# The photo path's parts, timed alone", "", (f"Machine: {cpu}; `{record['command']}`; "
             f"p50 of {args.calls} calls, alternated."), "", "| what | ms |", "| --- | ---: |"]
    for key in ("resize_ms_quiet", "resize_ms_other_core_busy"):
        for name, value in record[key].items():  # type: ignore[union-attr]
            lines.append(f"| resize 640×427 → 224×224, {name.replace('_', ' ')} ({key[10:].replace('_', ' ')}) | {value} |")
    lines += [f"| pixel statistics of the hint, alone | {record['pixel_statistics_ms_alone']} |",
              (f"| pixel statistics of the hint, right after a model call | "
              f"{record['pixel_statistics_ms_after_a_model_call']} |")]
    atomic_write_text(args.output / "photo_path_micro.md", "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
