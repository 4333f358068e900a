"""Hash the model inputs the one decode-and-preprocess path gives, to show a change left them bit-identical.

Run it with two checkouts on PYTHONPATH and compare the printed hashes: equal hashes mean every manifest's
accuracy (and the decode-agreement figures) still describe the path an app runs. The files: scikit-learn's two
640×427 photos and a 12 MP phone-like JPEG (from e2e_latency's work folder), the photo re-saved with EXIF
orientations 3, 6 and 8 and in modes L, RGBA, P and CMYK, and Fashion-MNIST evaluation images upscaled to
112–896 px as JPEGs (as the agreement set is built); three specs: ResNet-50 RGB (resize 256, crop 224),
28-px L, 224-px L. Each file goes through ``PreprocessSpec.load`` and ``normalise``.

    PYTHONPATH=/path/to/old python benchmarks/preprocess_hashes.py
    PYTHONPATH=/path/to/new python benchmarks/preprocess_hashes.py

Where a change alters inputs on purpose, ``--dump`` keeps every file's uint8 pixels and ``--compare`` says, per
spec, how many files changed and by how much:

    PYTHONPATH=/path/to/old python benchmarks/preprocess_hashes.py --dump old.npz
    python benchmarks/preprocess_hashes.py --dump new.npz
    python benchmarks/preprocess_hashes.py --compare old.npz new.npz
"""

from __future__ import annotations

import argparse
import hashlib
import json
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

import edgeresnet
from edgeresnet.data import open_source
from edgeresnet.data.preprocessing import PreprocessSpec

SPECS = {
    "resnet50-rgb": PreprocessSpec(input_size=(224, 224), resize_to=256),
    "28px-L": PreprocessSpec(input_size=(28, 28), channels="L", mean=(0.286,), std=(0.353,)),
    "224px-L": PreprocessSpec(input_size=(224, 224), resize_to=256, channels="L", mean=(0.45,), std=(0.226,)),
}
SIDES = (112, 224, 270, 300, 336, 448, 896)


def files(photos: Path, work: Path, fashion_images: int) -> list[Path]:
    found = sorted(photos.glob("*.jpg"))
    if not found:
        raise SystemExit(f"no JPEGs in {photos}: run benchmarks/e2e_latency.py once (it writes them there)")
    source = Image.open(found[0]).convert("RGB")
    for orientation in (3, 6, 8):
        path = work / f"rotated-{orientation}.jpg"
        exif = Image.Exif()
        exif[0x0112] = orientation
        source.save(path, quality=90, exif=exif.tobytes())
        found.append(path)
    for mode, suffix in (("L", "jpg"), ("RGBA", "png"), ("P", "png"), ("CMYK", "jpg")):
        path = work / f"mode-{mode}.{suffix}"
        source.convert(mode).save(path)
        found.append(path)
    images = open_source("fashion-mnist").split("evaluation").balanced_sample(fashion_images)
    for k in range(len(images)):
        path = work / f"fashion-{k:05d}.jpg"
        side = SIDES[k % len(SIDES)]
        Image.fromarray(images.raw(k)).resize((side, side), Image.Resampling.BICUBIC).save(path, quality=90)
        found.append(path)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--photos", type=Path, default=Path(tempfile.gettempdir()) / "edgeresnet-e2e-latency")
    parser.add_argument("--fashion-images", type=int, default=700)
    parser.add_argument("--dump", type=Path, help="also write every file's uint8 pixels, per spec, to this .npz")
    parser.add_argument("--compare", type=Path, nargs=2, metavar=("OLD", "NEW"), help="compare two --dump files")
    args = parser.parse_args()
    if args.compare:
        print(json.dumps(compare(*args.compare), indent=2))
        return
    pixels_by_key = {}
    with tempfile.TemporaryDirectory() as work:
        paths = files(args.photos, Path(work), args.fashion_images)
        hashes = {}
        for name, spec in SPECS.items():
            digest = hashlib.sha256()
            for path in paths:
                pixels = spec.load(path)
                digest.update(pixels.tobytes())
                digest.update(spec.normalise(pixels[None]).tobytes())
                pixels_by_key[f"{name}|{path.name}"] = pixels
            hashes[name] = digest.hexdigest()
    if args.dump:
        np.savez_compressed(args.dump, **pixels_by_key)
    print(json.dumps({"code": edgeresnet.__file__, "files": len(paths), "sha256": hashes}, indent=2))


def compare(old_path: Path, new_path: Path) -> dict[str, dict[str, float]]:
    """Per spec: files compared, files whose pixels differ, the largest difference, the mean over changed files."""
    old, new = np.load(old_path), np.load(new_path)
    report: dict[str, dict[str, float]] = {}
    for key in sorted(set(old.files) & set(new.files)):
        spec = key.split("|", 1)[0]
        entry = report.setdefault(spec, {"files": 0, "changed": 0, "max_abs_diff": 0, "mean_abs_diff_changed": 0.0})
        entry["files"] += 1
        a, b = old[key].astype(np.int16), new[key].astype(np.int16)
        if a.shape != b.shape or not np.array_equal(a, b):
            difference = np.abs(a - b) if a.shape == b.shape else np.full(1, 255)
            entry["changed"] += 1
            entry["max_abs_diff"] = max(entry["max_abs_diff"], int(difference.max()))
            entry["mean_abs_diff_changed"] += float(difference.mean())
    for entry in report.values():
        entry["mean_abs_diff_changed"] = round(entry["mean_abs_diff_changed"] / max(1, entry["changed"]), 4)
    return report


if __name__ == "__main__":
    main()
