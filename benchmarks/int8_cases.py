"""The INT8 accuracy suite's cases: real image data and a trained FP32 model per case, cached under runs/.

Training is the expensive part, so every case's data folder and checkpoint are written once under
``runs/bench-int8/<case>/`` and reused by later runs (delete the folder to rebuild it). Every image
is real: Fashion-MNIST, written as PNG folders where a case needs a folder.

- ``fmnist-full``: ResNet-20 on Fashion-MNIST itself, trained as `edgeresnet train` does by default
  (2 epochs, the whole training split), scored on the 10,000 test images.
- ``small-folder``: a 1,500-image class folder (150 per class) written from Fashion-MNIST's training
  file; the folder's own 80/10/10 split trains (15 epochs), calibrates and evaluates; the benchmark
  scores on 2,000 Fashion-MNIST *test* images that the folder never held.

Every case trains with the default recipe (automatic batch size and learning rate), as a user's
`edgeresnet train --epochs N` would: a fixed batch of 128 gave the 1,500-image cases only 9 steps an
epoch and models too weak (57% and 21% top-1) to say anything about INT8.
- ``imagenet-style``: ResNet-18 (the ImageNet architecture, 7×7 stem) at 64×64 on three channels,
  1,500 training-tree images (150 per class) and 1,000 validation images (100 per class), 15 epochs:
  Fashion-MNIST resized to 64×64 with bicubic interpolation and written as RGB PNGs in an
  ImageNet-style ``train/`` + ``val/`` tree. It is not ImageNet: the images are grey replicated to
  RGB; what it exercises is the ImageNet architecture, input size, channel count and folder layout.

Usage: python benchmarks/int8_cases.py [--cases fmnist-full,small-folder,imagenet-style] [--scale 1.0]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
CACHE = REPO / "runs" / "bench-int8"


@dataclass(frozen=True)
class Case:
    """One suite entry: how its data is made, how its model is trained, and what it is scored on."""

    name: str
    description: str
    model: str
    epochs: int
    write_data: Callable[[Path, float], str]  # (case directory, scale) -> data source string
    input_size: int | None = None
    train_limit: int | None = None  # class-balanced training images, to keep training bounded on 2 cores
    batch_size: int | None = None  # None: the default recipe's automatic batch size
    score_on_fmnist_test: int | None = None  # score on this many Fashion-MNIST test images, not the split


def _fmnist_arrays(part: str) -> tuple[np.ndarray, np.ndarray]:
    from edgeresnet.data import open_source

    split = open_source("fashion-mnist").split("evaluation" if part == "test" else "train")
    images = np.stack([split.raw(i) for i in range(len(split))])
    return images, split.labels


def _balanced(labels: np.ndarray, per_class: int, seed: int) -> np.ndarray:
    from edgeresnet.data.splits import balanced_indices

    return balanced_indices(labels, int(labels.max()) + 1, per_class * (int(labels.max()) + 1), seed)


def _write_png_folder(root: Path, images: np.ndarray, labels: np.ndarray, names: list[str], *,
                      size: int | None, rgb: bool) -> None:
    from PIL import Image

    for index, (image, label) in enumerate(zip(images, labels, strict=True)):
        picture = Image.fromarray(np.asarray(image, dtype=np.uint8).squeeze())
        if size is not None:
            picture = picture.resize((size, size), Image.Resampling.BICUBIC)
        if rgb:
            picture = picture.convert("RGB")
        folder = root / names[int(label)].replace("/", "-")
        folder.mkdir(parents=True, exist_ok=True)
        picture.save(folder / f"{index:05d}.png")


def _class_names() -> list[str]:
    from edgeresnet.data.fashion_mnist import CLASS_NAMES

    return list(CLASS_NAMES)


def _fmnist_full(directory: Path, scale: float) -> str:
    return "fashion-mnist"


def _small_folder(directory: Path, scale: float) -> str:
    root = directory / "folder"
    if not (root / ".complete").exists():
        images, labels = _fmnist_arrays("train")
        picked = _balanced(labels, 150, seed=1)
        _write_png_folder(root, images[picked], labels[picked], _class_names(), size=None, rgb=False)
        (root / ".complete").write_text("1500 images\n")
    return str(root)


def _imagenet_style(directory: Path, scale: float) -> str:
    root = directory / "folder"
    if not (root / ".complete").exists():
        names = _class_names()
        images, labels = _fmnist_arrays("train")
        picked = _balanced(labels, max(50, int(150 * scale)), seed=2)
        _write_png_folder(root / "train", images[picked], labels[picked], names, size=64, rgb=True)
        test_images, test_labels = _fmnist_arrays("test")
        picked = _balanced(test_labels, max(20, int(100 * scale)), seed=3)
        _write_png_folder(root / "val", test_images[picked], test_labels[picked], names, size=64, rgb=True)
        (root / ".complete").write_text("ImageNet-style tree\n")
    return str(root)


CASES: dict[str, Case] = {
    "fmnist-full": Case("fmnist-full", "ResNet-20, Fashion-MNIST (2 epochs on the whole training split), 10,000 "
                        "test images", "resnet20", 2, _fmnist_full),
    "small-folder": Case("small-folder", "ResNet-20, 1,500-image folder from Fashion-MNIST train, scored on 2,000 "
                         "Fashion-MNIST test images", "resnet20", 15, _small_folder, score_on_fmnist_test=2000),
    "imagenet-style": Case("imagenet-style", "ResNet-18 at 64×64 RGB, ImageNet-style train/ + val/ folder of "
                           "Fashion-MNIST resized to 64×64 and written as RGB", "resnet18", 15, _imagenet_style,
                           input_size=64),
}


def prepare(case: Case, scale: float = 1.0, *, log: Callable[[str], None] = print) -> tuple[str, Path, dict[str, Any]]:
    """The case's data source and trained checkpoint (cached), and what training measured."""
    from edgeresnet.training import TrainJob, train

    directory = CACHE / case.name
    directory.mkdir(parents=True, exist_ok=True)
    data = case.write_data(directory, scale)
    checkpoint = directory / "checkpoint"
    record_path = directory / "train.json"
    if record_path.exists() and checkpoint.exists():
        return data, checkpoint, json.loads(record_path.read_text())
    log(f"{case.name}: training {case.model} for {case.epochs} epochs on {data}")
    started = time.perf_counter()
    result = train(TrainJob(model=case.model, data=data, epochs=case.epochs, output=str(checkpoint),
                               input_size=case.input_size, train_limit=case.train_limit,
                               batch_size=case.batch_size, progress=False,
                               overwrite=True))
    record = {"model": case.model, "data": data, "epochs": case.epochs, "input_size": case.input_size,
              "train_limit": case.train_limit, "batch_size": case.batch_size,
              "seconds": round(time.perf_counter() - started, 1), "split_top1": result.top1}
    record_path.write_text(json.dumps(record, indent=2) + "\n")
    log(f"{case.name}: trained in {record['seconds']} s, top-1 {result.top1:.2f}% on its evaluation split")
    return data, checkpoint, record


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", default=",".join(CASES))
    parser.add_argument("--scale", type=float, default=1.0, help="share of the imagenet-style folder to write")
    args = parser.parse_args()
    for name in args.cases.split(","):
        prepare(CASES[name], args.scale, log=lambda message: print(f"· {message}", file=sys.stderr, flush=True))


if __name__ == "__main__":
    main()
