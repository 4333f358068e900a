"""Agreement of the runtime's decode path with a plain full-resolution decode (part of e2e_latency.py).

A trained ResNet-20 classifies a JPEG evaluation set twice: through ``PreprocessSpec.load`` (the one
decoder, reduced-size JPEG decoding included) and through a plain Pillow ``open`` + ``convert`` + the same
resize. Beside it, without a model, the pixel difference (PSNR) of the two paths on real photos at the
ResNet-50 preprocessing (resize 256, crop 224), from 640×427 to 12 MP, for each draft margin.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import suite_models
from PIL import Image

from edgeresnet.data import decoding
from edgeresnet.data.preprocessing import PreprocessSpec

log = suite_models.log
# Phone and camera sizes between 640×427 and 12 MP (8, 5, 2 and 1.2 MP), downscaled from the 12-MP file.
PHOTO_SIZES = ((3264, 2448), (2592, 1944), (1600, 1200), (1280, 960))
# JPEG sides of the agreement set (the model's input is 28 px; see e2e_latency's docstring).
AGREEMENT_SIDES = (112, 224, 270, 300, 336, 448, 896)


def agreement(work: Path, args: argparse.Namespace) -> dict[str, Any]:
    """A trained ResNet-20 on JPEG files: fast path versus plain full-resolution decode, top-1 by top-1."""
    import subprocess

    from edgeresnet.backends.pytorch.runner import TorchRunner
    from edgeresnet.checkpoint import read_card
    from edgeresnet.data import open_source

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


def photo_faithfulness(photos: list[Path], phone: Path, work: Path, margins: list[float],
                       spec: PreprocessSpec) -> dict[str, Any]:
    """Fast path versus plain decode on real photos at the ResNet-50 preprocessing, by draft margin (no model)."""
    files = list(photos)
    for size in PHOTO_SIZES:
        path = work / f"phone-{size[0]}x{size[1]}.jpg"
        if not path.is_file():
            with Image.open(phone) as image:
                image.resize(size, Image.Resampling.LANCZOS).save(path, quality=92)
        files.append(path)
    files.append(phone)
    plain = {path.name: spec.pixels(_plain_decode(path, spec)).astype(np.float64) for path in files}
    by_margin: dict[str, Any] = {}
    for margin in margins:
        rows = {}
        with _draft_margin(margin):
            for path in files:
                reduced = decoding.open_image(path, spec.draft_size)  # what spec.load decodes, kept for its size
                fast = spec.pixels(reduced).astype(np.float64)
                mse = float(np.mean((fast - plain[path.name]) ** 2))
                rows[path.name] = {"decoded_at": list(reduced.size),
                                   "psnr_db": round(10 * np.log10(255**2 / mse), 1) if mse else None,
                                   "max_abs_diff": int(np.abs(fast - plain[path.name]).max())}
        by_margin[f"{margin:g}"] = rows
    return {"files": {path.name: list(Image.open(path).size) for path in files}, "by_margin": by_margin,
            "bands_vs_one_call": {path.name: _bands_vs_one_call(path, spec) for path in files}}


def _bands_vs_one_call(path: Path, spec: PreprocessSpec) -> dict[str, Any]:
    """The runtime's banded resize against one Pillow call over the whole crop box, on the plain decode."""
    image = _plain_decode(path, spec)
    banded = spec.pixels(image).astype(np.float64)
    resized_w, resized_h = spec.draft_size(image.width, image.height)
    (height, width), scale_x, scale_y = spec.input_size, image.width / resized_w, image.height / resized_h
    left, top = (resized_w - width) // 2, (resized_h - height) // 2
    box = (left * scale_x, top * scale_y, (left + width) * scale_x, (top + height) * scale_y)
    whole = np.asarray(image.resize((width, height), Image.Resampling.BILINEAR, box=box)).astype(np.float64)
    difference = np.abs(banded - whole.reshape(banded.shape))
    mse = float(np.mean(difference**2))
    return {"psnr_db": round(10 * np.log10(255**2 / mse), 1) if mse else None,
            "max_abs_diff": int(difference.max()), "pixels_differing_pct": 100.0 * float(np.mean(difference > 0))}
