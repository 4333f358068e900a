"""From a photo to a label: the targets of issues 10 and 22, measured in one process in alternating rounds.

Through ``Classifier`` with a ResNet-50 OpenVINO INT8 bundle at 224×224 (random-init weights, NNCF INT8
calibrated on Fashion-MNIST images at 224×224 RGB: the latency is meaningful, the labels are not):

* **model-only**: a preprocessed float32 tensor through ``Classifier.predict`` (batch 1 and 8), and uint8
  camera frames already at 224×224 (``predict_frames``, in-model normalisation);
* **640×427 JPEG**: scikit-learn's two sample photos (china.jpg, flower.jpg), file → label; beside it
  Pillow's full decode of the same files alone (``open`` + ``load``), in the same turn;
* **12 MP JPEG**: a 4032×3024 JPEG synthesised here by upscaling china.jpg (bicubic, plus mild sensor-like
  noise so it compresses like a phone photo, quality 92), file → label; beside it Pillow's reduced-size
  decode of that file alone (``Image.draft`` to the smallest DCT scale covering 224×224, then ``load``);
* **folder, batch 8**: ``Classifier.predict_iter`` over a folder of 640×427 JPEGs, beside the model at
  batch 8 and Pillow decoding the folder alone.

Every path is reported as a ratio to model-only and to (model-only + the decode floor of its files), both
measured in the same run. Each round times every configuration once, in a rotated order, then splits the
file → label call into its stages (``e2e_stages.py``: decode, colour, resize + crop, copies, numpy
normalisation, backend call, and the decode floor beside them); a figure is the median over rounds of
that round's p50.

The fast path's agreement with a plain full-resolution decode is measured on a JPEG evaluation set with
real labels (``e2e_agreement.py``): Fashion-MNIST evaluation images upscaled to 112 to 896 px and stored as
JPEGs (every DCT scale, 1/1 to 1/8, is exercised; 270, 300 and 336 px put the 1/8 decode at 1.2, 1.34 and
1.5 times the 28-px input, where a 12-MP photo's 1/8 decode lands for a 224-px model: 378 px for a 256-px
resize, 1.48 times), classified by a ResNet-20 trained with the default recipe (``--agreement-checkpoint``
reuses one), once through the fast path (``PreprocessSpec.load``) and once through a plain decode (Pillow
``open`` + ``convert``, no draft) + the same resize. Beside it, without a model: the pixel difference (PSNR)
between the two paths on real photos at the ResNet-50 preprocessing (resize 256, crop 224), 640×427 to 12 MP.

    python benchmarks/e2e_latency.py                     # the full run (a quiet machine, ~10 min)
    python benchmarks/e2e_latency.py --rounds 2 --seconds 1 --agreement-images 400   # a bounded run
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import zipfile
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))

import e2e_stages
import suite_models
from e2e_agreement import agreement, photo_faithfulness
from e2e_report import markdown

from edgeresnet.atomic import atomic_write_json, atomic_write_text
from edgeresnet.bench import measure_latency
from edgeresnet.data.preprocessing import IMAGENET_MEAN, IMAGENET_STD, PreprocessSpec
from edgeresnet.environment import environment

log = suite_models.log
SPEC = PreprocessSpec(input_size=(224, 224), resize_to=256, mean=IMAGENET_MEAN, std=IMAGENET_STD)
TWELVE_MP = (4032, 3024)
# Pillow's own reduced-size decode for this spec: the smallest DCT scale whose result covers 224×224.
DRAFT_FLOOR = SPEC.input_size[::-1]


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
    """The bundle, with the out-of-distribution ranges ``export`` records, so ``predict`` pays for its hint."""
    from edgeresnet.backends.openvino.convert import quantize_with_nncf
    from edgeresnet.backends.openvino.runner import OpenVinoRunner
    from edgeresnet.bundle import Manifest, write_bundle
    from edgeresnet.export.ood_profile import to_pixels
    from edgeresnet.runtime.ood import build_profile

    bundle = work / "resnet50-openvino-int8-hint"
    if (bundle / "manifest.json").is_file():
        return bundle
    fp32 = suite_models.export_fp32("resnet50", work)
    xml = work / "resnet50.int8.xml"
    calibration = suite_models.calibration_data(calib_images)
    if not xml.is_file():
        quantize_with_nncf(fp32, xml, calibration.batches, subset_size=calib_images)
    golden = np.random.default_rng(0).normal(0, 1, (2, 3, 224, 224)).astype(np.float32)
    with OpenVinoRunner(xml, precision="int8") as runner:
        outputs = runner.infer(golden)
        logits = [runner.infer(batch) for batch in calibration.batches]
    ood = build_profile([to_pixels(batch, SPEC) for batch in calibration.batches], logits,
                        source=f"{calib_images} Fashion-MNIST calibration images (timing only)")
    manifest = Manifest(architecture="resnet50", precision="int8", target="openvino", model_file="model.xml",
                        preprocessing=SPEC, class_names=[f"class_{i}" for i in range(suite_models.NUM_CLASSES)],
                        input={"name": "input", "shape": [None, 3, 224, 224], "dtype": "float32", "layout": "NCHW"},
                        extra={"weights": "random-init, for latency only"}, ood=ood)
    return write_bundle(bundle, manifest, {"model.xml": xml, "model.bin": xml.with_suffix(".bin")},
                        golden_inputs=golden, golden_outputs=outputs)


# --- timing ----------------------------------------------------------------------------------------


def model_tensor(photo: Path) -> np.ndarray:
    """A photo preprocessed to the float32 C×H×W tensor that model-only calls take."""
    with Image.open(photo) as image:
        return SPEC.apply(np.asarray(image.convert("RGB")))


def configurations(classifier: Any, photos: list[Path], phone: Path, folder: list[Path]) -> dict[str, Callable[[], Any]]:
    """Every timed call, each path beside its own floor (model-only, Pillow decoding the same files alone)."""
    tensor = model_tensor(photos[0])
    tensors8 = np.stack([tensor] * 8)
    frame = SPEC.pixels(np.asarray(Image.open(photos[0]).convert("RGB")))[None]
    photo_cycle, floor_cycle = _cycle(photos), _cycle(photos)  # the same files in the same turn

    def folder_pass() -> None:
        for result in classifier.predict_iter(folder, batch_size=8, top_k=1):
            if result.error:
                raise RuntimeError(result.error)

    def folder_decode_alone() -> None:
        for path in folder:
            e2e_stages.pillow_decode(path)

    return {
        "model_b1": lambda: classifier.predict(tensor, top_k=1),
        "camera_frame_b1": lambda: classifier.predict_frames(frame, top_k=1),
        "jpeg_640x427_b1": lambda: classifier.predict(next(photo_cycle), top_k=1),
        "full_decode_640x427_alone": lambda: e2e_stages.pillow_decode(next(floor_cycle)),
        "jpeg_12mp_b1": lambda: classifier.predict(phone, top_k=1),
        "draft_decode_12mp_alone": lambda: e2e_stages.pillow_decode(phone, DRAFT_FLOOR),
        "model_b8": lambda: classifier.predict(tensors8, top_k=1),
        "folder_b8": folder_pass,
        "full_decode_folder_alone": folder_decode_alone,
    }


def _cycle(items: list[Path]) -> Iterator[Path]:
    while True:
        yield from items


_SLOW = frozenset({"folder_b8", "full_decode_folder_alone"})


def measure_rounds(classifier: Any, configs: dict[str, Callable[[], Any]], files: dict[str, list[Path]],
                   folder_size: int, args: argparse.Namespace) -> dict[str, Any]:
    """Per configuration, each round's p50 (ms per call) in a rotated order; then each round's stage split."""
    names = list(configs)
    per_round: dict[str, list[float]] = {name: [] for name in names}
    splits: dict[str, list[dict[str, float]]] = {kind: [] for kind in files}
    floors = {"jpeg_640x427": e2e_stages.pillow_decode,
              "jpeg_12mp": lambda path: e2e_stages.pillow_decode(path, DRAFT_FLOOR)}
    tensor = model_tensor(files["jpeg_640x427"][0])
    for round_index in range(args.rounds):
        order = names[round_index % len(names):] + names[: round_index % len(names)]
        for name in order:
            call = configs[name]
            runs = args.min_runs if name not in _SLOW else max(3, args.min_runs // 10)
            stats = measure_latency(lambda _, call=call: call(), None, warmup=args.warmup, min_runs=runs,
                                    min_time_s=args.seconds, max_time_s=max(60.0, 4 * args.seconds), batch_size=1)
            per_round[name].append(stats.p50_ms)
            log.info("round %d %-26s p50 %.3f ms (%d runs)", round_index + 1, name, stats.p50_ms, stats.runs)
        for kind, paths in files.items():
            splits[kind].append(e2e_stages.measure_split(classifier, paths, floors[kind], tensor, args.seconds / 2,
                                                         args.min_runs))
    medians = {name: statistics.median(values) for name, values in per_round.items()}
    return {
        "p50_ms_median_over_rounds": medians,
        "p50_ms_per_round": per_round,
        "ratios": ratios(medians, folder_size),
        "folder_b8_images_per_s": folder_size * 1000.0 / medians["folder_b8"],
        "model_b8_images_per_s": 8 * 1000.0 / medians["model_b8"],
        "stage_split": {kind: e2e_stages.summarise(rounds) for kind, rounds in splits.items()},
        "stage_split_per_round": splits,
    }


def ratios(p50: dict[str, float], folder_size: int) -> dict[str, dict[str, float]]:
    """Each path over model-only, and over (model-only + Pillow decoding the same files alone), same run."""
    model = p50["model_b1"]
    paths = {
        "camera_frame": (p50["camera_frame_b1"], model, 0.0),  # no file: its decode floor is nothing
        "jpeg_640x427": (p50["jpeg_640x427_b1"], model, p50["full_decode_640x427_alone"]),
        "jpeg_12mp": (p50["jpeg_12mp_b1"], model, p50["draft_decode_12mp_alone"]),
        # Per batch of 8 files: predict_iter overlaps decoding with the model, so it may beat the serial floor.
        "folder_b8": (p50["folder_b8"] * 8 / folder_size, p50["model_b8"],
                      p50["full_decode_folder_alone"] * 8 / folder_size),
    }
    return {
        name: {"ms": ms, "model_ms": base, "decode_floor_ms": floor, "over_model": ms / base,
               "over_model_plus_floor": ms / (base + floor)}
        for name, (ms, base, floor) in paths.items()
    }


# --- main ------------------------------------------------------------------------------------------


def main() -> None:
    args = _arguments()
    suite_models.setup_logging()
    args.work.mkdir(parents=True, exist_ok=True)
    photos = sklearn_photos(args.work)
    phone = synthesise_12mp(photos[0], args.work / "phone-12mp.jpg")
    if args.agreement_only:
        record = json.loads((args.output / "e2e_latency.json").read_text())
        record["agreement"] = agreement(args.work, args)
        record["photo_faithfulness"] = photo_faithfulness(photos, phone, args.work, args.margins, SPEC)
        record["agreement_command"] = "python benchmarks/e2e_latency.py " + " ".join(sys.argv[1:])
        _write(record, args.output)
        return
    from edgeresnet.runtime.classifier import Classifier

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
        configs = configurations(classifier, photos, phone, folder)
        files = {"jpeg_640x427": photos, "jpeg_12mp": [phone]}
        record["timing"] = measure_rounds(classifier, configs, files, len(folder), args)
    if not args.skip_agreement:
        record["agreement"] = agreement(args.work, args)
        record["photo_faithfulness"] = photo_faithfulness(photos, phone, args.work, args.margins, SPEC)
    record["environment"] = environment()
    _write(record, args.output)


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    # Many short rounds rather than a few long ones: a host whose speed drifts moves every configuration alike.
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=1.5, help="minimum timed seconds per configuration per round")
    parser.add_argument("--min-runs", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--calib-images", type=int, default=64)
    parser.add_argument("--folder-files", type=int, default=32)
    # The whole evaluation split: 2,000 images could not tell 99.25% from 99.5% (95% interval ±0.4 points).
    parser.add_argument("--agreement-images", type=int, default=10000)
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
    return args


def _write(record: dict[str, Any], output: Path) -> None:
    output.mkdir(parents=True, exist_ok=True)
    atomic_write_json(output / "e2e_latency.json", record)
    text = markdown(record)
    atomic_write_text(output / "e2e_latency.md", text)
    print(text)


if __name__ == "__main__":
    main()
