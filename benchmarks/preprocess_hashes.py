"""Hash the model inputs the one decode-and-preprocess path gives, to show a change left them bit-identical.

Run it with two checkouts on PYTHONPATH and compare the printed hashes: equal hashes mean every manifest's
accuracy (and the decode-agreement figures) still describe the path an app runs. The files: scikit-learn's two
640×427 photos and a 12 MP phone-like JPEG (from e2e_latency's work folder), the photo re-saved with EXIF
orientations 3, 6 and 8 and in modes L, RGBA, P and CMYK, and Fashion-MNIST evaluation images upscaled to
112–896 px as JPEGs (as the agreement set is built); three specs: ResNet-50 RGB (resize 256, crop 224),
28-px L, 224-px L. Each file goes through ``PreprocessSpec.load`` and ``normalise``.

    PYTHONPATH=/path/to/old python benchmarks/preprocess_hashes.py
    PYTHONPATH=/path/to/new python benchmarks/preprocess_hashes.py
"""

from __future__ import annotations

import argparse
import hashlib
import json
import tempfile
from pathlib import Path

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
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as work:
        paths = files(args.photos, Path(work), args.fashion_images)
        hashes = {}
        for name, spec in SPECS.items():
            digest = hashlib.sha256()
            for path in paths:
                pixels = spec.load(path)
                digest.update(pixels.tobytes())
                digest.update(spec.normalise(pixels[None]).tobytes())
            hashes[name] = digest.hexdigest()
    print(json.dumps({"code": edgeresnet.__file__, "files": len(paths), "sha256": hashes}, indent=2))


if __name__ == "__main__":
    main()
