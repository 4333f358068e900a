from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from edgeresnet.data import ImageFolderSource, PreprocessSpec, open_source
from edgeresnet.errors import DatasetError

from .conftest import save_png, synthetic_images

CLASSES = ["ant", "bee", "cat"]


def make_folder(root: Path, per_class: int = 10, size: tuple[int, int] = (28, 28), rgb: bool = False) -> Path:
    shape = (*size, 3) if rgb else size
    for label, name in enumerate(CLASSES):
        images = synthetic_images(per_class, shape, seed=label)  # type: ignore[arg-type]
        for i, pixels in enumerate(images):
            save_png(root / name / f"{i:03d}.png", pixels)
    return root


def make_corrupt_files(root: Path) -> tuple[Path, Path]:
    garbage = root / "ant" / "garbage.png"
    garbage.write_bytes(b"this is not a png" * 10)
    truncated = root / "bee" / "truncated.png"
    full = save_png(truncated, synthetic_images(1, (64, 64), seed=9)[0]).read_bytes()
    truncated.write_bytes(full[: len(full) // 2])
    return garbage, truncated


def test_flat_folder_splits(tmp_path) -> None:
    source = open_source(str(make_folder(tmp_path)))
    assert isinstance(source, ImageFolderSource) and not source.imagenet_style
    assert source.name == str(tmp_path) and source.class_names == CLASSES
    assert source.native_channels == "L" and source.native_size == (28, 28)
    splits = {which: source.split(which) for which in ("train", "calibration", "evaluation")}
    assert [len(split) for split in splits.values()] == [24, 3, 3]  # 8/1/1 per class
    ids = [set(split.item_ids.tolist()) for split in splits.values()]
    assert not (ids[0] & ids[1] or ids[0] & ids[2] or ids[1] & ids[2])
    for split in splits.values():
        assert np.bincount(split.labels).min() >= 1
    again = open_source(str(tmp_path))
    np.testing.assert_array_equal(again.split("calibration").item_ids, splits["calibration"].item_ids)


def test_corrupt_images_are_skipped_and_counted(tmp_path) -> None:
    root = make_folder(tmp_path)
    garbage, truncated = make_corrupt_files(root)
    source = open_source(str(root))
    spec = source.default_preprocess()
    total_images, total_skipped = 0, 0
    for which in ("train", "calibration", "evaluation"):
        split = source.split(which)
        sizes = [len(labels) for _, labels in split.batches(spec, 4)]
        assert all(size == 4 for size in sizes[:-1])  # skipped images are back-filled
        assert sum(sizes) == len(split) - split.skipped
        total_images += len(split)
        total_skipped += split.skipped
    assert (total_images, total_skipped) == (32, 2)
    skipped_files = {**source.split("train").skipped_files, **source.split("calibration").skipped_files}
    skipped_files |= source.split("evaluation").skipped_files
    assert set(skipped_files) == {str(garbage), str(truncated)}
    errors = []
    for which in ("train", "calibration", "evaluation"):
        split = source.split(which)
        for i in range(len(split)):
            try:
                assert split.raw(i).shape in {(28, 28), (64, 64)}
            except DatasetError as error:
                errors.append(str(error))
    assert (
        len(errors) == 2
        and any("garbage.png" in e for e in errors)
        and any("truncated.png" in e for e in errors)
    )


def test_mostly_undecodable_split_is_an_error(tmp_path) -> None:
    for name in ("a", "b"):
        for i in range(2):
            save_png(tmp_path / name / f"ok{i}.png", synthetic_images(1)[0])
        for i in range(8):
            (tmp_path / name / f"bad{i}.png").write_bytes(b"\x89PNG broken")
    train = open_source(str(tmp_path)).split("train")
    with pytest.raises(DatasetError, match=r"of 16 images .* cannot be decoded"):
        list(train.batches(PreprocessSpec(input_size=(28, 28), channels="L", mean=(0.5,), std=(0.5,)), 4))


def test_imagenet_style_layout(tmp_path) -> None:
    make_folder(tmp_path / "train", per_class=10, size=(40, 30), rgb=True)
    for label, name in enumerate(CLASSES[:2]):  # val may lack a class
        for i in range(3):
            save_png(tmp_path / "val" / name / f"v{i}.jpg", synthetic_images(1, (50, 60, 3), seed=label)[0])
    source = open_source(str(tmp_path))
    assert source.imagenet_style and source.class_names == CLASSES
    train, calibration, evaluation = (source.split(w) for w in ("train", "calibration", "evaluation"))
    assert (len(train), len(calibration), len(evaluation)) == (27, 3, 6)
    assert evaluation.labels.tolist() == [0, 0, 0, 1, 1, 1]
    assert not set(train.item_ids.tolist()) & set(calibration.item_ids.tolist())
    assert source.native_channels == "RGB" and source.native_size is None
    spec = source.default_preprocess()
    assert spec.input_size == (224, 224) and spec.resize_to == 256 and spec.channels == "RGB"
    small = source.default_preprocess(32)
    assert small.resize_to is None  # direct resize below 64 px
    inputs, labels = next(evaluation.batches(small, 8))
    assert inputs.shape == (6, 3, 32, 32) and inputs.dtype == np.float32 and labels.dtype == np.int64
    assert evaluation.raw(0).shape == (50, 60, 3)


def test_imagenet_style_validation_with_unknown_class(tmp_path) -> None:
    make_folder(tmp_path / "train", per_class=2)
    save_png(tmp_path / "val" / "dog" / "x.png", synthetic_images(1)[0])
    with pytest.raises(DatasetError, match="classes that train/ lacks: dog"):
        open_source(str(tmp_path))


def test_flat_val_directory_is_refused(tmp_path) -> None:
    make_folder(tmp_path / "train", per_class=2)
    save_png(tmp_path / "val" / "x.png", synthetic_images(1)[0])
    with pytest.raises(DatasetError, match="one sub-folder per class"):
        open_source(str(tmp_path))


def test_empty_and_classless_folders(tmp_path) -> None:
    with pytest.raises(DatasetError, match="no class sub-folders"):
        open_source(str(tmp_path))
    save_png(tmp_path / "loose.png", synthetic_images(1)[0])
    with pytest.raises(DatasetError, match="no class sub-folders"):
        open_source(str(tmp_path))
    (tmp_path / "empty_class").mkdir()
    (tmp_path / "empty_class" / "notes.txt").write_text("not an image")
    with pytest.raises(DatasetError, match="empty_class has no images"):
        open_source(str(tmp_path))


def _fingerprints(root: Path) -> list[str]:
    source = open_source(str(root))
    return [source.split(which).fingerprint() for which in ("train", "calibration", "evaluation")]


def test_fingerprint_hashes_content_not_location_or_mtime(tmp_path) -> None:
    root = make_folder(tmp_path / "one", per_class=3)
    first = _fingerprints(root)
    assert len(set(first)) == 3
    copy = tmp_path / "two"
    shutil.copytree(root, copy)
    os.utime(copy / "ant" / "000.png", (1, 1))
    assert _fingerprints(copy) == first
    save_png(copy / "ant" / "000.png", synthetic_images(1, seed=42)[0])
    changed = _fingerprints(copy)
    assert sum(a != b for a, b in zip(changed, first, strict=True)) == 1
