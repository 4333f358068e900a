"""The out-of-distribution hint: false alarms on held-out in-distribution images, detections on others.

A ResNet-20 trained with the default recipe on Fashion-MNIST is exported (FP32, ONNX Runtime): the
export records the in-distribution ranges from 1,000 images of the calibration split. Then, through
the app path (``Classifier``; files through ``predict_iter``):

* **false alarms**: the 10,000 Fashion-MNIST test images (never used for training, calibration or the
  ranges), as uint8 frames;
* **detections**, each set written as files a user could pass to ``edgeresnet predict``: real photos
  (scikit-learn's two sample photos and random crops of them, square and not, 28 to 400 px), 8×8
  handwritten digits (scikit-learn's ``load_digits``, a near-OOD set of the same kind: gray strokes on
  black), Fashion-MNIST test images with inverted gray levels, 1×1 images, uniform and Gaussian noise.

Rates carry Wilson 95% intervals. Accuracy only: nothing is timed, so it runs on a shared host.

Usage: python benchmarks/ood.py [--checkpoint DIR] [--train-limit N] [--epochs 2] [--output benchmarks/results]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from e2e_latency import sklearn_photos

from edgeresnet.accuracy import wilson_interval
from edgeresnet.data.source_string import open_source
from edgeresnet.environment import environment
from edgeresnet.runtime import Classifier

SEED = 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", type=Path, help="a Fashion-MNIST resnet20 checkpoint instead of training one")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--train-limit", type=int, default=None,
                        help="train on this many images (default: all 55,000, the `edgeresnet train` default)")
    parser.add_argument("--per-set", type=int, default=200, help="images per synthetic out-of-distribution set")
    parser.add_argument("--output", type=Path, default=Path(__file__).parent / "results")
    parser.add_argument("--work", type=Path, default=None)
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="edgeresnet-ood-"))
    work.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    checkpoint, training = _checkpoint(args, work)
    bundle = _export(checkpoint, work)
    rows, profile = _measure(bundle, work, args.per_set)
    record = {"environment": environment(), "training": training, "profile": profile, "rows": rows,
              "seconds": round(time.perf_counter() - started, 1), "command": " ".join(sys.argv)}
    args.output.mkdir(parents=True, exist_ok=True)
    (args.output / "ood.json").write_text(json.dumps(record, indent=2) + "\n")
    (args.output / "ood.md").write_text(render(record))
    print(render(record))


def _checkpoint(args: argparse.Namespace, work: Path) -> tuple[Path, dict[str, Any]]:
    from edgeresnet.checkpoint import read_card

    if args.checkpoint is not None:
        card = read_card(args.checkpoint)
        return args.checkpoint, {"checkpoint": str(args.checkpoint), "epochs_done": card.metrics.get("epoch"),
                                 "recipe": card.training.get("recipe") if isinstance(card.training, dict) else None}
    from edgeresnet.training import TrainJob, train

    output = work / "r20"
    if not (output / "card.json").is_file():
        train(TrainJob(model="resnet20", data="fashion-mnist", output=str(output), epochs=args.epochs,
                          train_limit=args.train_limit, progress=False))
    card = read_card(output)
    return output, {"command": f"train resnet20 fashion-mnist --epochs {args.epochs} --train-limit {args.train_limit}",
                    "test_top1": card.metrics.get("top1")}


def _export(checkpoint: Path, work: Path) -> Path:
    from edgeresnet.export.job import ExportJob
    from edgeresnet.export.workflow import run_export

    output = work / "export"
    if not (output / "onnxruntime-fp32" / "manifest.json").is_file():
        run_export(ExportJob(model=str(checkpoint), output=output, targets=("onnxruntime",), data="fashion-mnist"))
    return output / "onnxruntime-fp32"


def _measure(bundle: Path, work: Path, per_set: int) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    test = open_source("fashion-mnist").split("evaluation")
    frames = np.stack([test.raw(i) for i in range(len(test))])[..., None]
    labels = test.labels
    rng = np.random.default_rng(SEED)
    with Classifier.load(bundle) as classifier:
        assert classifier.ood_profile is not None, "the export recorded no ranges"
        flags, correct = [], []
        for start in range(0, len(frames), 500):
            ranked = classifier.predict(frames[start:start + 500], top_k=1)  # resized as the spec says
            flags += [bool(r[0].ood) for r in ranked]
            correct += [r[0].index == int(y) for r, y in zip(ranked, labels[start:start + 500])]
        flags_a, correct_a = np.array(flags), np.array(correct)
        rows = [_row("Fashion-MNIST test images (in distribution)", "false alarm", flags_a)]
        rows[0]["top1_all"] = _pct(correct_a)
        rows[0]["top1_flagged"] = _pct(correct_a[flags_a])
        rows[0]["top1_unflagged"] = _pct(correct_a[~flags_a])
        for name, make in _ood_sets(frames, rng, per_set).items():
            try:
                files = make(work / "ood" / name.split(" ")[0].lower())
            except ImportError as error:  # scikit-learn is not a dependency: its digits set is skipped
                print(f"skipped {name}: {error}", file=sys.stderr)
                continue
            results = list(classifier.predict_iter(files, batch_size=32, top_k=1))
            assert all(r.ok for r in results), [r.error for r in results if not r.ok][:3]
            rows.append(_row(name, "detected", np.array([r.ood.flagged for r in results])))
            rows[-1]["top_label"] = _top_label(results)
        return rows, classifier.ood_profile.to_dict()


def _row(name: str, what: str, flags: np.ndarray) -> dict[str, Any]:
    low, high = wilson_interval(int(flags.sum()), len(flags))
    return {"set": name, "measure": what, "images": len(flags), "flagged": int(flags.sum()),
            "rate_pct": round(100.0 * flags.mean(), 2), "ci95_pct": [round(low, 2), round(high, 2)]}


def _pct(hits: np.ndarray) -> float | None:
    return round(100.0 * hits.mean(), 2) if len(hits) else None


def _top_label(results: list[Any]) -> str:
    names, counts = np.unique([r.predictions[0].label for r in results], return_counts=True)
    best = int(np.argmax(counts))
    return f"{names[best]} ({100.0 * counts[best] / len(results):.0f}%)"


def _ood_sets(frames: np.ndarray, rng: np.random.Generator, n: int) -> dict[str, Callable[[Path], list[Path]]]:
    return {
        "Real photos (2 sample photos and random crops, 28-400 px)": lambda d: _photos(d, rng, n),
        "Handwritten digits, 8×8 (scikit-learn)": lambda d: _digits(d, n),
        "Fashion-MNIST test images, gray levels inverted": lambda d: _save(d, [255 - f[..., 0] for f in frames[:n]]),
        "1×1 images, random colours": lambda d: _save(d, [rng.integers(0, 256, (1, 1, 3), np.uint8) for _ in range(n)]),
        "Uniform noise, 28×28": lambda d: _save(d, [rng.integers(0, 256, (28, 28), np.uint8) for _ in range(n)]),
        "Gaussian noise, 28×28 (mean 73, sd 40)":
            lambda d: _save(d, [np.clip(rng.normal(73, 40, (28, 28)), 0, 255).astype(np.uint8) for _ in range(n)]),
    }


def _save(directory: Path, images: list[np.ndarray], suffix: str = ".png") -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, image in enumerate(images):
        path = directory / f"{i:04d}{suffix}"
        Image.fromarray(image).save(path)
        paths.append(path)
    return paths


def _photos(directory: Path, rng: np.random.Generator, n: int) -> list[Path]:
    try:  # the photos ship inside scikit-learn; without it, e2e_latency's helper takes them from its wheel
        import sklearn.datasets

        folder = Path(sklearn.datasets.__file__).parent / "images"
        originals = [folder / "china.jpg", folder / "flower.jpg"]
    except ImportError:
        originals = sklearn_photos(directory.parent / "sklearn")
    crops = []
    for i in range(n - len(originals)):
        with Image.open(originals[i % len(originals)]) as photo:
            width, height = photo.size
            side = int(rng.integers(28, 401))
            aspect = 1.0 if i % 2 == 0 else float(rng.uniform(0.6, 1.6))
            w, h = min(width, side), min(height, max(8, int(side / aspect)))
            x, y = int(rng.integers(0, width - w + 1)), int(rng.integers(0, height - h + 1))
            crops.append(np.asarray(photo.convert("RGB").crop((x, y, x + w, y + h))))
    return [*originals, *_save(directory, crops, ".jpg")]


def _digits(directory: Path, n: int) -> list[Path]:
    from sklearn.datasets import load_digits

    digits = load_digits().images[:n]  # 0-16 gray levels, strokes bright on a dark ground
    return _save(directory, [np.clip(d * 16, 0, 255).astype(np.uint8) for d in digits])


def render(record: dict[str, Any]) -> str:
    env = record["environment"]
    cpu = env.get("cpu", {})
    profile = record["profile"]
    lines = [
        "# Out-of-distribution hint: false alarms and detections", "",
        (f"Machine: {cpu.get('model', '?')}, {cpu.get('usable_cores', '?')} cores usable; "
        f"versions: {', '.join(f'{k} {v}' for k, v in env.get('versions', {}).items())}."), "",
        (f"Reproduce: `python benchmarks/ood.py` ({record['seconds']:.0f} s, accuracy only, nothing timed). "
        f"Model: {json.dumps(record['training'])}."), "",
        (f"Ranges recorded by `export` ({profile['method']}): {profile['source']}; energy below "
        f"{profile['energy_low']:.3f} (the {profile['energy_quantile']:.0%} quantile) or an image statistic "
        f"outside {json.dumps(profile['pixel_ranges'])} (widened by {profile['margin']:.0%} of each span) is flagged."), "",
        "| images | measure | flagged | rate | 95% interval | notes |", "|---|---|---:|---:|---|---|",
    ]
    for row in record["rows"]:
        notes = (f"top-1 {row['top1_all']}% overall: {row['top1_unflagged']}% of the unflagged, "
                 f"{row['top1_flagged']}% of the flagged images"
                 if "top1_flagged" in row else f"most common label: {row.get('top_label', '')}")
        low, high = row["ci95_pct"]
        lines.append(f"| {row['set']} | {row['measure']} | {row['flagged']:,} of {row['images']:,} | "
                     f"{row['rate_pct']:.2f}% | {low:.2f}–{high:.2f}% | {notes} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
