"""From a photo to a label: the targets of issue 10, measured in one process in alternating rounds.

Through ``Classifier`` with a ResNet-50 OpenVINO INT8 bundle at 224×224 (random-init weights, NNCF INT8
calibrated on Fashion-MNIST images at 224×224 RGB: the latency is meaningful, the labels are not):

* **model**: a preprocessed float32 tensor through ``Classifier.predict`` (batch 1), and uint8 camera
  frames already at 224×224 (in-model preprocessing);
* **640×427 JPEG**: scikit-learn's two sample photos (china.jpg, flower.jpg), file → label;
* **12 MP JPEG**: a 4032×3024 JPEG synthesised here by upscaling china.jpg (bicubic, plus mild sensor-like
  noise so it compresses like a phone photo, quality 92), file → label; beside it Pillow's reduced-size
  decode of that file alone (``Image.draft`` to the smallest DCT scale covering 224×224, then ``load``);
* **folder, batch 8**: ``Classifier.predict_iter`` over a folder of 640×427 JPEGs beside the model's
  images/s at batch 8.

Each round times every configuration once, in a rotated order; a figure is the median over rounds of
that round's p50 (or images/s). Ratios are taken within the run.

The fast path's agreement with a plain full-resolution decode is measured on a JPEG evaluation set with
real labels: Fashion-MNIST evaluation images upscaled to 112 to 896 px and stored as JPEGs (every DCT
scale, 1/1 to 1/8, is exercised; 270, 300 and 336 px put the 1/8 decode at 1.2, 1.34 and 1.5 times the
28-px input, where a 12-MP photo's 1/8 decode lands for a 224-px model: 378 px for a 256-px resize, 1.48
times), classified by a ResNet-20 trained with the default recipe (``--agreement-checkpoint`` reuses one),
once through the fast path (``PreprocessSpec.load``) and once through a plain decode (Pillow ``open`` +
``convert``, no draft) + the same resize. Beside it, without a model: the pixel difference (PSNR) between
the two paths on real photos at the ResNet-50 preprocessing (resize 256, crop 224), from 640×427 to 12 MP.

    python benchmarks/e2e_latency.py                     # the full run (a quiet machine, ~10 min)
    python benchmarks/e2e_latency.py --rounds 2 --seconds 1 --agreement-images 400   # a bounded run
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))

import suite_models

from edgeresnet.atomic import atomic_write_json, atomic_write_text
from edgeresnet.bench import measure_latency
from edgeresnet.data import decoding
from edgeresnet.data.preprocessing import IMAGENET_MEAN, IMAGENET_STD, PreprocessSpec
from edgeresnet.environment import environment

log = suite_models.log
SPEC = PreprocessSpec(input_size=(224, 224), resize_to=256, mean=IMAGENET_MEAN, std=IMAGENET_STD)
TWELVE_MP = (4032, 3024)
# Phone and camera sizes between 640×427 and 12 MP (8, 5, 2 and 1.2 MP), downscaled from the 12-MP file.
PHOTO_SIZES = ((3264, 2448), (2592, 1944), (1600, 1200), (1280, 960))
# JPEG sides of the agreement set (the model's input is 28 px; see the module docstring).
AGREEMENT_SIDES = (112, 224, 270, 300, 336, 448, 896)


# --- inputs ------------------------------------------------------------------------------------


def sklearn_photos(work: Path) -> list[Path]:
    """scikit-learn's two 640×427 sample JPEGs, from its wheel (``pip download scikit-learn --no-deps``)."""
    found = sorted(work.glob("*.jpg"))
    if len(found) >= 2:
        return found[:2]
    wheels = sorted(work.glob("scikit_learn-*.whl"))
    if not wheels:
        import subprocess

        subprocess.run([sys.executable, "-m", "pip", "download", "scikit-learn", "--no-deps", "-q", "-d", str(work)],
                       check=True)
        wheels = sorted(work.glob("scikit_learn-*.whl"))
    with zipfile.ZipFile(wheels[0]) as archive:
        for name in ("china.jpg", "flower.jpg"):
            (work / name).write_bytes(archive.read(f"sklearn/datasets/images/{name}"))
    return [work / "china.jpg", work / "flower.jpg"]


def synthesise_12mp(source: Path, path: Path) -> Path:
    """A 4032×3024 phone-sized JPEG made from a 640×427 photo (upscaled, with sensor-like noise)."""
    if not path.is_file():
        with Image.open(source) as image:
            big = np.asarray(image.convert("RGB").resize(TWELVE_MP, Image.Resampling.BICUBIC), np.int16)
        noise = np.random.default_rng(0).normal(0, 4, big.shape).astype(np.int16)
        Image.fromarray(np.clip(big + noise, 0, 255).astype(np.uint8)).save(path, quality=92)
    return path


def folder_of_photos(photos: list[Path], folder: Path, count: int) -> list[Path]:
    """``count`` distinct files (copies of the two photos, each re-encoded with a different quality)."""
    folder.mkdir(parents=True, exist_ok=True)
    files = []
    for k in range(count):
        path = folder / f"photo-{k:03d}.jpg"
        if not path.is_file():
            with Image.open(photos[k % len(photos)]) as image:
                image.convert("RGB").save(path, quality=80 + k % 16)
        files.append(path)
    return files


# --- the bundle ------------------------------------------------------------------------------------


def resnet50_int8_bundle(work: Path, calib_images: int) -> Path:
    from edgeresnet.bundle import Manifest, write_bundle
    from edgeresnet.export.openvino import quantize_with_nncf
    from edgeresnet.runtime.openvino import OpenVinoRunner

    bundle = work / "resnet50-openvino-int8"
    if (bundle / "manifest.json").is_file():
        return bundle
    fp32 = suite_models.export_fp32("resnet50", work)
    xml = work / "resnet50.int8.xml"
    if not xml.is_file():
        quantize_with_nncf(fp32, xml, suite_models.calibration_data(calib_images).batches, subset_size=calib_images)
    golden = np.random.default_rng(0).normal(0, 1, (2, 3, 224, 224)).astype(np.float32)
    with OpenVinoRunner(xml, precision="int8") as runner:
        outputs = runner.infer(golden)
    manifest = Manifest(architecture="resnet50", precision="int8", target="openvino", model_file="model.xml",
                        preprocessing=SPEC, labels=[f"class_{i}" for i in range(suite_models.NUM_CLASSES)],
                        input={"name": "input", "shape": [None, 3, 224, 224], "dtype": "float32", "layout": "NCHW"},
                        extra={"weights": "random-init, for latency only"})
    return write_bundle(bundle, manifest, {"model.xml": xml, "model.bin": xml.with_suffix(".bin")},
                        golden_inputs=golden, golden_outputs=outputs)


# --- timing ----------------------------------------------------------------------------------------


def draft_decode_alone(path: Path) -> None:
    """Pillow's reduced-size decode of a file: the smallest DCT scale whose result covers 224×224."""
    with Image.open(path) as image:
        image.draft("RGB", SPEC.input_size[::-1])
        image.load()


def configurations(classifier: Any, photos: list[Path], phone: Path, folder: list[Path]) -> dict[str, Callable[[], Any]]:
    tensor = SPEC.apply(np.asarray(Image.open(photos[0]).convert("RGB")))
    tensors8 = np.stack([tensor] * 8)
    frame = SPEC.pixels(np.asarray(Image.open(photos[0]).convert("RGB")))[None]
    photo_cycle = iter(_cycle(photos))

    def folder_pass() -> None:
        for result in classifier.predict_iter(folder, batch_size=8, top_k=1):
            if result.error:
                raise RuntimeError(result.error)

    return {
        "model_b1": lambda: classifier.predict(tensor, top_k=1),
        "camera_frame_b1": lambda: classifier.predict_frames(frame, top_k=1),
        "jpeg_640x427_b1": lambda: classifier.predict(next(photo_cycle), top_k=1),
        "jpeg_12mp_b1": lambda: classifier.predict(phone, top_k=1),
        "draft_decode_12mp_alone": lambda: draft_decode_alone(phone),
        "model_b8": lambda: classifier.predict(tensors8, top_k=1),
        "folder_b8": folder_pass,
    }


def _cycle(items: list[Path]):
    while True:
        yield from items


def measure_rounds(configs: dict[str, Callable[[], Any]], args: argparse.Namespace, folder_size: int) -> dict[str, Any]:
    """Per configuration, each round's p50 (ms per call) in a rotated order; the folder pass as images/s."""
    names = list(configs)
    per_round: dict[str, list[float]] = {name: [] for name in names}
    for round_index in range(args.rounds):
        order = names[round_index % len(names):] + names[: round_index % len(names)]
        for name in order:
            call = configs[name]
            runs = args.min_runs if name != "folder_b8" else max(3, args.min_runs // 10)
            stats = measure_latency(lambda _, call=call: call(), None, warmup=args.warmup, min_runs=runs,
                                    min_time_s=args.seconds, max_time_s=max(60.0, 4 * args.seconds), batch_size=1)
            per_round[name].append(stats.p50_ms)
            log.info("round %d %-24s p50 %.2f ms (%d runs)", round_index + 1, name, stats.p50_ms, stats.runs)
    medians = {name: statistics.median(values) for name, values in per_round.items()}
    folder_ips = folder_size * 1000.0 / medians["folder_b8"]
    model_ips_b8 = 8 * 1000.0 / medians["model_b8"]
    return {
        "p50_ms_median_over_rounds": medians,
        "p50_ms_per_round": per_round,
        "folder_b8_images_per_s": folder_ips,
        "model_b8_images_per_s": model_ips_b8,
        "ratios": {
            "jpeg_640x427_over_model": medians["jpeg_640x427_b1"] / medians["model_b1"],
            "jpeg_12mp_over_model_plus_draft_decode": medians["jpeg_12mp_b1"]
            / (medians["model_b1"] + medians["draft_decode_12mp_alone"]),
            "camera_frame_over_model": medians["camera_frame_b1"] / medians["model_b1"],
            "folder_b8_ips_over_model_b8_ips": folder_ips / model_ips_b8,
        },
    }


# --- agreement of the fast path with a plain decode ---------------------------------------------------


def agreement(work: Path, args: argparse.Namespace) -> dict[str, Any]:
    """A trained ResNet-20 on JPEG files: fast path versus plain full-resolution decode, top-1 by top-1."""
    import subprocess

    from edgeresnet.checkpoint import read_card
    from edgeresnet.data import open_source
    from edgeresnet.runtime.torch_runner import TorchRunner

    checkpoint = args.agreement_checkpoint or work / "resnet20-agreement"
    if not (checkpoint / "card.json").is_file():
        limit = ["--train-limit", str(args.train_limit)] if args.train_limit else []
        log.info("training ResNet-20 for the agreement set (default recipe, 2 epochs)")
        subprocess.run([sys.executable, "-m", "edgeresnet", "-q", "train", "--model", "resnet20", "--data",
                        "fashion-mnist", "--epochs", "2", *limit, "--output", str(checkpoint), "--overwrite"],
                       check=True)
    card = read_card(checkpoint)
    spec = card.preprocessing
    images = open_source("fashion-mnist").split("evaluation").balanced_sample(args.agreement_images)
    sides = AGREEMENT_SIDES
    folder = work / f"agreement-jpegs-{args.agreement_images}-{'-'.join(map(str, sides))}"
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for k in range(len(images)):
        path = folder / f"{k:05d}.jpg"
        if not path.is_file():
            side = sides[k % len(sides)]
            Image.fromarray(images.raw(k)).resize((side, side), Image.Resampling.BICUBIC).save(path, quality=90)
        paths.append(path)
    started = time.perf_counter()
    plain = np.stack([spec.pixels(_plain_decode(path, spec)) for path in paths])
    plain_s = time.perf_counter() - started
    with TorchRunner(checkpoint, threads=args.threads) as runner:
        plain_logits = _logits(runner, spec, plain)
        by_margin = {}
        for margin in args.margins:
            by_margin[f"{margin:g}"] = _fast_path_agreement(runner, spec, paths, images.labels, plain, plain_logits,
                                                            margin, sides)
    chosen = by_margin.get(f"{decoding.DRAFT_MARGIN:g}")
    return {
        "images": len(paths), "sides_px": list(sides), "checkpoint": str(checkpoint),
        "checkpoint_train_images": card.data.get("train_images"),
        "checkpoint_epochs": len(card.metrics.get("history", [])),
        "checkpoint_top1_pct_plain_decode": 100.0 * float((plain_logits.argmax(1) == images.labels).mean()),
        "draft_margin_in_use": decoding.DRAFT_MARGIN,
        "top1_agreement_pct": chosen["top1_agreement_pct"] if chosen else None,
        "by_margin": by_margin, "plain_decode_seconds": plain_s,
    }


def _logits(runner: Any, spec: PreprocessSpec, pixels: np.ndarray) -> np.ndarray:
    return np.concatenate([runner.infer(spec.normalise(pixels[i:i + 200])) for i in range(0, len(pixels), 200)])


def _fast_path_agreement(runner: Any, spec: PreprocessSpec, paths: list[Path], labels: np.ndarray, plain: np.ndarray,
                         plain_logits: np.ndarray, margin: float, sides: tuple[int, ...]) -> dict[str, Any]:
    """The fast path with DRAFT_MARGIN set to ``margin``, against the plain decode's labels."""
    from edgeresnet.accuracy import compare_paired

    with _draft_margin(margin):
        started = time.perf_counter()
        fast = np.stack([spec.load(path) for path in paths])
        fast_s = time.perf_counter() - started
    fast_logits = _logits(runner, spec, fast)
    paired = compare_paired(labels, plain_logits, fast_logits)
    same = fast_logits.argmax(1) == plain_logits.argmax(1)
    return {
        "top1_agreement_pct": paired.agreement_pct,
        "agreement_pct_by_side": {str(side): float(same[k::len(sides)].mean() * 100) for k, side in enumerate(sides)},
        "plain_vs_fast": paired.to_dict(), "summary": paired.summary(), "decode_seconds": fast_s,
        "pixel_mean_abs_diff": float(np.abs(fast.astype(np.int16) - plain.astype(np.int16)).mean()),
    }


@contextlib.contextmanager
def _draft_margin(margin: float) -> Iterator[None]:
    """Run the one decoder with another DRAFT_MARGIN (the margin sweep), restoring the committed one after."""
    kept = decoding.DRAFT_MARGIN
    decoding.DRAFT_MARGIN = margin
    try:
        yield
    finally:
        decoding.DRAFT_MARGIN = kept


def _plain_decode(path: Path, spec: PreprocessSpec) -> Image.Image:
    with Image.open(path) as image:
        return image.convert(spec.channels)


def photo_faithfulness(photos: list[Path], phone: Path, work: Path, margins: list[float]) -> dict[str, Any]:
    """Fast path versus plain decode on real photos at the ResNet-50 preprocessing, by draft margin (no model)."""
    files = list(photos)
    for size in PHOTO_SIZES:
        path = work / f"phone-{size[0]}x{size[1]}.jpg"
        if not path.is_file():
            with Image.open(phone) as image:
                image.resize(size, Image.Resampling.LANCZOS).save(path, quality=92)
        files.append(path)
    files.append(phone)
    plain = {path.name: SPEC.pixels(_plain_decode(path, SPEC)).astype(np.float64) for path in files}
    by_margin: dict[str, Any] = {}
    for margin in margins:
        rows = {}
        with _draft_margin(margin):
            for path in files:
                reduced = decoding.open_image(path, SPEC.draft_size)  # what SPEC.load decodes, kept for its size
                fast = SPEC.pixels(reduced).astype(np.float64)
                mse = float(np.mean((fast - plain[path.name]) ** 2))
                rows[path.name] = {"decoded_at": list(reduced.size),
                                   "psnr_db": round(10 * np.log10(255**2 / mse), 1) if mse else None,
                                   "max_abs_diff": int(np.abs(fast - plain[path.name]).max())}
        by_margin[f"{margin:g}"] = rows
    return {"files": {path.name: list(Image.open(path).size) for path in files}, "by_margin": by_margin}


# --- report ----------------------------------------------------------------------------------------


def markdown(record: dict[str, Any]) -> str:
    timing, ratios = record["timing"], record["timing"]["ratios"]
    p50 = timing["p50_ms_median_over_rounds"]
    env = record["environment"]
    versions = env.get("versions", {})
    lines = [
        "# From a photo to a label (issue 10)", "",
        (f"- **Machine:** {env.get('cpu', {}).get('model', '?')}, {record['threads']} threads, "
        f"load average at start {record['load_average']}"),
        "- **Versions:** " + ", ".join(f"{k} {versions[k]}" for k in ("python", "openvino", "onnxruntime", "torch",
                                                                         "numpy") if k in versions)
        + f", Pillow {Image.__version__}",
        f"- **Date:** {record['date']}; **command:** `{record['command']}`",
        (f"- **Model:** ResNet-50, 224×224, OpenVINO INT8 bundle (random-init weights, NNCF with "
        f"{record['calib_images']} Fashion-MNIST calibration images); preprocessing resize 256 + center crop 224"),
        (f"- {record['rounds']} alternating rounds of ≥ {record['seconds']} s per configuration; figures are the "
        "median over rounds of each round's p50"), "",
        "| configuration | p50 ms (median of rounds) |", "| --- | ---: |",
    ]
    lines += [f"| {name} | {value:.2f} |" for name, value in p50.items()]
    lines += [
        "", "| target | measured | limit | met |", "| --- | ---: | ---: | :---: |",
        _target("640×427 JPEG → label ÷ model-only", ratios["jpeg_640x427_over_model"], 1.25, below=True),
        _target("12 MP JPEG → label ÷ (model-only + Pillow draft decode alone)",
                ratios["jpeg_12mp_over_model_plus_draft_decode"], 1.15, below=True),
        _target("folder of 640×427 JPEGs, batch 8: images/s ÷ model-only images/s at batch 8",
                ratios["folder_b8_ips_over_model_b8_ips"], 0.8, below=False),
        f"| camera frame (uint8 224×224×3) ÷ model-only | {ratios['camera_frame_over_model']:.3f}× | — | — |",
    ]
    agreement_record = record.get("agreement")
    if agreement_record:
        lines += [
            _target(f"top-1 agreement, fast path vs plain full decode ({agreement_record['images']} JPEGs, "
                    f"draft margin {agreement_record['draft_margin_in_use']:g})",
                    agreement_record["top1_agreement_pct"], 99.5, below=False, unit="%"),
            "", (f"JPEG evaluation set: {agreement_record['images']} Fashion-MNIST evaluation images upscaled to "
                 f"{agreement_record['sides_px']} px; ResNet-20 trained with the default recipe on "
                 f"{agreement_record['checkpoint_train_images']} images for {agreement_record['checkpoint_epochs']} "
                 f"epochs, top-1 {agreement_record['checkpoint_top1_pct_plain_decode']:.2f}% "
                 "through the plain decode."), "",
            "| draft margin | top-1 agreement % | by side (px → %) | accuracy plain → fast | mean abs Δpixel | decode s |",
            "| ---: | ---: | --- | --- | ---: | ---: |",
        ]
        for margin, entry in agreement_record["by_margin"].items():
            lines.append(f"| {margin} | {entry['top1_agreement_pct']:.2f} | {entry['agreement_pct_by_side']} | "
                         f"{entry['summary']} | {entry['pixel_mean_abs_diff']:.3f} | {entry['decode_seconds']:.2f} |")
        lines.append(f"\nPlain full-resolution decode of the same files: {agreement_record['plain_decode_seconds']:.2f} s.")
    faithfulness = record.get("photo_faithfulness")
    if faithfulness:
        names = list(faithfulness["files"])
        lines += ["", "Real photos at resize 256 + crop 224, fast path vs plain full decode: PSNR dB (decoded size)", "",
                  "| draft margin | " + " | ".join(f"{name} {'×'.join(map(str, faithfulness['files'][name]))}"
                                                 for name in names) + " |",
                  "| ---: |" + " ---: |" * len(names)]
        for margin, rows in faithfulness["by_margin"].items():
            cells = [f"{rows[name]['psnr_db'] if rows[name]['psnr_db'] is not None else 'identical'} "
                     f"({'×'.join(map(str, rows[name]['decoded_at']))})" for name in names]
            lines.append(f"| {margin} | " + " | ".join(cells) + " |")
    lines += ["", (f"Folder: {record['folder_files']} files; {timing['folder_b8_images_per_s']:.1f} images/s "
              f"end to end vs {timing['model_b8_images_per_s']:.1f} images/s model-only at batch 8.")]
    return "\n".join(lines) + "\n"


def _target(name: str, value: float, limit: float, *, below: bool, unit: str = "×") -> str:
    met = value <= limit if below else value >= limit
    sign = "≤" if below else "≥"
    return f"| {name} | {value:.3f}{unit} | {sign} {limit:g}{unit} | {'yes' if met else 'no'} |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=2.0, help="minimum timed seconds per configuration per round")
    parser.add_argument("--min-runs", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--calib-images", type=int, default=64)
    parser.add_argument("--folder-files", type=int, default=32)
    parser.add_argument("--agreement-images", type=int, default=2000)
    parser.add_argument("--train-limit", type=int, default=None,
                        help="train the agreement model on this many images (default: the whole split)")
    parser.add_argument("--agreement-checkpoint", type=Path, default=None,
                        help="a ResNet-20 checkpoint trained on Fashion-MNIST to classify the agreement set")
    parser.add_argument("--margins", default="1,1.25,1.4,1.5,2,2.5", help="draft margins whose agreement is measured")
    parser.add_argument("--skip-agreement", action="store_true")
    parser.add_argument("--agreement-only", action="store_true",
                        help="measure the agreement and merge it into an existing e2e_latency.json")
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "edgeresnet-e2e-latency",
                        help="built models and synthesised files are kept here between runs")
    parser.add_argument("--output", type=Path, default=suite_models.REPO / "benchmarks" / "results")
    args = parser.parse_args()
    args.margins = [float(m) for m in args.margins.split(",")]
    suite_models.setup_logging()
    if args.agreement_only:
        record = json.loads((args.output / "e2e_latency.json").read_text())
        record["agreement"] = agreement(args.work, args)
        photos = sklearn_photos(args.work)
        record["photo_faithfulness"] = photo_faithfulness(
            photos, synthesise_12mp(photos[0], args.work / "phone-12mp.jpg"), args.work, args.margins)
        record["agreement_command"] = "python benchmarks/e2e_latency.py " + " ".join(sys.argv[1:])
        _write(record, args.output)
        return
    args.work.mkdir(parents=True, exist_ok=True)
    from edgeresnet.runtime.classifier import Classifier

    photos = sklearn_photos(args.work)
    phone = synthesise_12mp(photos[0], args.work / "phone-12mp.jpg")
    folder = folder_of_photos(photos, args.work / "folder", args.folder_files)
    bundle = resnet50_int8_bundle(args.work, args.calib_images)
    record: dict[str, Any] = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": "python benchmarks/e2e_latency.py " + " ".join(sys.argv[1:]),
        "threads": args.threads, "rounds": args.rounds, "seconds": args.seconds, "calib_images": args.calib_images,
        "folder_files": len(folder), "load_average": [round(v, 2) for v in os.getloadavg()],
        "phone_jpeg": {"size": list(TWELVE_MP), "bytes": phone.stat().st_size,
                       "made_from": "china.jpg upscaled (bicubic) + Gaussian noise σ=4, quality 92"},
        "photos": {path.name: list(Image.open(path).size) for path in photos},
    }
    with Classifier.load(bundle, threads=args.threads) as classifier:
        record["in_model_preprocessing"] = classifier.runner.preprocesses_in_model
        record["timing"] = measure_rounds(configurations(classifier, photos, phone, folder), args, len(folder))
    if not args.skip_agreement:
        record["agreement"] = agreement(args.work, args)
        record["photo_faithfulness"] = photo_faithfulness(photos, phone, args.work, args.margins)
    record["environment"] = environment()
    _write(record, args.output)


def _write(record: dict[str, Any], output: Path) -> None:
    output.mkdir(parents=True, exist_ok=True)
    atomic_write_json(output / "e2e_latency.json", record)
    text = markdown(record)
    atomic_write_text(output / "e2e_latency.md", text)
    print(text)


if __name__ == "__main__":
    main()
