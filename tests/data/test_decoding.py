"""The one decoder: reduced-size JPEG decoding, EXIF orientation, every image mode, decompression bombs."""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image, ImageOps

from edgeresnet.data.decoding import (
    DRAFT_MARGIN,
    PICTURE_BOX,
    ImageTooLargeError,
    decode_image,
    find_images,
    open_image,
    probe_image,
)
from edgeresnet.data.preprocessing import PreprocessSpec
from edgeresnet.errors import DatasetError

SPEC = PreprocessSpec(input_size=(56, 56), resize_to=64)


def photo_like(width: int, height: int, seed: int = 0) -> np.ndarray:
    """Texture at several scales (edges, gradients, fine detail), so a wrong reduction shows."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, (max(2, height // 64), max(2, width // 64), 3), dtype=np.uint8)
    image = np.asarray(Image.fromarray(coarse).resize((width, height), Image.Resampling.BICUBIC), np.float64)
    yy, xx = np.mgrid[0:height, 0:width]
    stripes = 40 * np.sin(xx / 7.0 + yy / 13.0)[..., None]
    return np.clip(image + stripes + rng.normal(0, 6, image.shape), 0, 255).astype(np.uint8)


def save_jpeg(path: Path, pixels: np.ndarray, *, orientation: int | None = None, quality: int = 92) -> Path:
    image = Image.fromarray(pixels)
    exif = Image.Exif()
    if orientation is not None:
        exif[0x0112] = orientation
    image.save(path, quality=quality, exif=exif.tobytes())
    return path


def full_decode_reference(path: Path, spec: PreprocessSpec) -> np.ndarray:
    """A plain full-resolution decode + the spec's resize: what the fast path must agree with."""
    with Image.open(path) as image:
        return spec.pixels(np.asarray(image.convert("RGB")))


def test_a_large_jpeg_is_decoded_reduced_but_never_below_the_margin(tmp_path: Path) -> None:
    path = save_jpeg(tmp_path / "big.jpg", photo_like(800, 600))
    reduced = open_image(path, SPEC.draft_size)
    target_w, target_h = SPEC.draft_size(800, 600)  # 85×64
    # 1/4 scale gives 200×150, the smallest at least 1.4× above the 85×64 resize target: 1/8 would give
    # 100×75, which covers the target but leaves the final resize too little to do.
    assert reduced.size == (200, 150)
    assert reduced.width >= DRAFT_MARGIN * target_w and reduced.height >= DRAFT_MARGIN * target_h
    assert not (reduced.width / 2 >= DRAFT_MARGIN * target_w and reduced.height / 2 >= DRAFT_MARGIN * target_h)
    assert open_image(path).size == (800, 600)  # no draft asked: full resolution


def test_a_12_megapixel_photo_decodes_at_one_eighth_for_a_224_pixel_model(tmp_path: Path) -> None:
    # 504×378 is the scale Pillow's draft picks for 224 px; a margin that forced 1/4 here doubled the
    # decode time of the commonest phone photo (issue 10's 12-MP target).
    path = tmp_path / "phone.jpg"
    Image.fromarray(photo_like(1008, 756)).resize((4032, 3024)).save(path, quality=85)
    imagenet = PreprocessSpec(input_size=(224, 224), resize_to=256)
    assert open_image(path, imagenet.draft_size).size == (504, 378)


def test_the_reduced_decode_agrees_with_a_full_decode(tmp_path: Path) -> None:
    path = save_jpeg(tmp_path / "big.jpg", photo_like(1600, 1200, seed=3))
    fast = SPEC.load(path).astype(np.int16)
    reference = full_decode_reference(path, SPEC).astype(np.int16)
    assert fast.shape == reference.shape == (56, 56, 3)
    difference = np.abs(fast - reference)
    assert difference.mean() < 1.5 and np.percentile(difference, 99) <= 8


def test_a_draft_to_the_target_itself_would_stray_further(tmp_path: Path) -> None:
    # The reason for the margin: decoding straight to the resize target (margin 1, here 1/8 scale
    # instead of 1/4) leaves the final resize almost nothing to do, and strays further from a full decode.
    assert DRAFT_MARGIN > 1.25
    path = save_jpeg(tmp_path / "svga.jpg", photo_like(800, 600, seed=3))
    assert open_image(path, SPEC.draft_size).size == (200, 150)
    reference = full_decode_reference(path, SPEC).astype(np.int16)
    with Image.open(path) as image:
        image.draft("RGB", SPEC.draft_size(800, 600))
        assert image.size == (100, 75)
        too_small = SPEC.pixels(np.asarray(image.convert("RGB"))).astype(np.int16)
    fast = SPEC.load(path).astype(np.int16)
    assert np.abs(fast - reference).mean() < 0.8 * np.abs(too_small - reference).mean()


def test_exif_orientation_turns_the_pixels_upright(tmp_path: Path) -> None:
    pixels = photo_like(120, 80)
    upright = decode_image(save_jpeg(tmp_path / "plain.jpg", pixels, quality=100))
    stored_rotated = np.ascontiguousarray(np.rot90(pixels, k=1))  # as a phone sensor would store it
    path = save_jpeg(tmp_path / "rotated.jpg", stored_rotated, orientation=6, quality=100)  # "rotate 90 CW"
    decoded = decode_image(path)
    assert decoded.shape == (80, 120, 3)
    assert probe_image(path).size == (80, 120)
    assert np.abs(decoded.astype(int) - upright.astype(int)).mean() < 3


def test_a_rotated_large_jpeg_is_reduced_by_its_upright_size(tmp_path: Path) -> None:
    stored = np.ascontiguousarray(np.rot90(photo_like(1600, 1200), k=1))  # stored 1200×1600
    path = save_jpeg(tmp_path / "rotated.jpg", stored, orientation=6)
    spec = PreprocessSpec(input_size=(56, 56))  # resize the whole image to 56×56
    image = open_image(path, spec.draft_size)
    assert image.size == (200, 150)  # upright, 1/8 scale, still ≥ 1.4 × 56 on both sides


def _encode(image: Image.Image, fmt: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def _mode_files(tmp_path: Path) -> dict[str, Path]:
    rgb = Image.fromarray(photo_like(40, 30))
    gray16 = Image.fromarray((np.arange(40 * 30).reshape(30, 40) * 50).astype(np.uint16))
    palette = rgb.convert("P", palette=Image.Palette.ADAPTIVE)
    palette.info["transparency"] = 0
    made = {
        "L": (rgb.convert("L"), "PNG"),
        "LA": (rgb.convert("LA"), "PNG"),
        "1": (rgb.convert("1"), "PNG"),
        "RGBA": (rgb.convert("RGBA"), "PNG"),
        "P": (palette, "PNG"),
        "CMYK": (rgb.convert("CMYK"), "JPEG"),
        "I;16": (gray16, "PNG"),
        "1x1": (Image.new("RGB", (1, 1), (200, 10, 10)), "PNG"),
    }
    paths = {}
    for name, (image, fmt) in made.items():
        path = tmp_path / f"{name.replace(';', '')}.{fmt.lower()}"
        path.write_bytes(_encode(image, fmt))
        paths[name] = path
    return paths


@pytest.mark.parametrize("channels", ["RGB", "L"])
def test_every_mode_becomes_model_pixels(tmp_path: Path, channels: str) -> None:
    spec = PreprocessSpec(input_size=(24, 24), resize_to=28).with_channels(channels)  # type: ignore[arg-type]
    for name, path in _mode_files(tmp_path).items():
        with Image.open(path) as image:
            assert name == "1x1" or image.mode == name  # the file really has the mode under test
        pixels = spec.load(path)
        assert pixels.shape == (24, 24, spec.num_channels) and pixels.dtype == np.uint8, name
        assert spec.apply(decode_image(path)).shape == (spec.num_channels, 24, 24)


def test_16_bit_grayscale_keeps_its_high_byte_and_cmyk_its_colour(tmp_path: Path) -> None:
    paths = _mode_files(tmp_path)
    gray = decode_image(paths["I;16"])
    expected = ((np.arange(40 * 30).reshape(30, 40) * 50).astype(np.uint16) >> 8).astype(np.uint8)
    np.testing.assert_array_equal(gray, expected)  # convert("L") would clip nearly all to 255
    tiny = decode_image(paths["1x1"])
    assert tiny.shape == (1, 1, 3) and tuple(tiny[0, 0]) == (200, 10, 10)
    cmyk = decode_image(paths["CMYK"]).astype(int)
    source = photo_like(40, 30).astype(int)
    assert cmyk.shape == (30, 40, 3) and np.abs(cmyk - source).mean() < 12


def test_a_decompression_bomb_is_refused_in_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = save_jpeg(tmp_path / "bomb.jpg", photo_like(300, 200))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 300 * 200 - 1)
    for read in (decode_image, probe_image, SPEC.load):
        with pytest.raises(ImageTooLargeError, match="decompression-bomb limit") as caught:
            read(path)
        assert "\n" not in str(caught.value)


def test_find_images_walks_folders_and_refuses_missing_paths(tmp_path: Path) -> None:
    for name in ("b/2.png", "a/1.jpg", "a/deep/3.webp", "a/.hidden.png", "a/readme.txt"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"")
    named = tmp_path / "a" / "readme.txt"
    found = find_images([tmp_path, named])
    assert found == [tmp_path / "a/1.jpg", tmp_path / "a/deep/3.webp", tmp_path / "b/2.png", named]
    with pytest.raises(DatasetError, match="image not found"):
        find_images([tmp_path / "nope"])


@pytest.mark.parametrize("interpolation", ["bilinear", "bicubic", "nearest"])
def test_resizing_only_the_crop_box_equals_resizing_then_cropping(interpolation: str) -> None:
    spec = PreprocessSpec(input_size=(56, 48), resize_to=64, interpolation=interpolation)  # type: ignore[arg-type]
    for width, height in ((640, 427), (427, 640), (300, 300), (50, 70)):
        image = Image.fromarray(photo_like(width, height, seed=width))
        resized = image.resize(spec.draft_size(width, height), {"bilinear": Image.Resampling.BILINEAR,
                                                               "bicubic": Image.Resampling.BICUBIC,
                                                               "nearest": Image.Resampling.NEAREST}[interpolation])
        left, top = (resized.width - 48) // 2, (resized.height - 56) // 2
        expected = np.asarray(resized.crop((left, top, left + 48, top + 56)), np.int16)
        got = spec.pixels(image).astype(np.int16)
        assert got.shape == expected.shape == (56, 48, 3)
        assert np.abs(got - expected).max() <= 1, (width, height)


@pytest.mark.parametrize("orientation", [None, 1, 3, 6, 8])
def test_decoding_gives_pillows_upright_pixels_exactly(tmp_path: Path, orientation: int | None) -> None:
    """The in-place EXIF handling decodes the same pixels as Pillow's own ``exif_transpose`` (copying) path."""
    path = save_jpeg(tmp_path / "photo.jpg", photo_like(90, 60), orientation=orientation)
    with Image.open(path) as image:
        expected = np.asarray(ImageOps.exif_transpose(image).convert("RGB"))
    assert np.array_equal(decode_image(path), expected)
    assert np.array_equal(SPEC.load(path), SPEC.pixels(expected))


def test_an_upright_photo_is_not_copied_after_decoding(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A copy of a fresh 640×427 decode cost as much as half the decode (profile in benchmarks/e2e_latency.py)."""
    path = save_jpeg(tmp_path / "photo.jpg", photo_like(64, 48), orientation=1)

    def refuse_copy(self: Image.Image) -> Image.Image:
        raise AssertionError("the decoded image was copied")

    monkeypatch.setattr(Image.Image, "copy", refuse_copy)
    assert SPEC.load(path).shape == (56, 56, 3)


@pytest.mark.parametrize("orientation", [None, 2, 3, 4, 5, 6, 7, 8])
def test_a_reduced_decode_ending_in_a_part_pixel_is_resized_from_the_picture_only(
    tmp_path: Path, orientation: int | None
) -> None:
    # 270×190 at 1/4 is 68×48 pixels holding 67.5×47.5 of the picture; resized as if all 68×48 were
    # picture, the result was stretched (mean difference from a full decode 4.5 levels, against 0.6).
    path = save_jpeg(tmp_path / "odd.jpg", photo_like(270, 190, seed=3), orientation=orientation, quality=95)
    spec = PreprocessSpec(input_size=(28, 28))
    decoded = open_image(path, spec.draft_size)
    assert sorted(decoded.size) == [48, 68]
    x0, y0, x1, y1 = decoded.info[PICTURE_BOX]
    assert (x1 - x0, y1 - y0) == ((47.5, 67.5) if orientation in (5, 6, 7, 8) else (67.5, 47.5))
    with Image.open(path) as image:
        reference = spec.pixels(np.asarray(ImageOps.exif_transpose(image).convert("RGB"))).astype(int)
    assert np.abs(spec.load(path).astype(int) - reference).mean() < 1.0
    assert PICTURE_BOX not in open_image(path).info  # a full decode is all picture


def test_a_folder_of_odd_sized_jpegs_preprocesses_as_the_runtime_does(tmp_path: Path) -> None:
    from edgeresnet.data.image_folder import ImageFolderSource

    for k, label in enumerate(["a", "a", "b", "b"]):
        (tmp_path / label).mkdir(exist_ok=True)
        save_jpeg(tmp_path / label / f"{k}.jpg", photo_like(270 + 2 * k, 190, seed=k))
    spec = PreprocessSpec(input_size=(28, 28))
    expected = spec.normalise(np.stack([spec.load(path) for path in sorted(tmp_path.glob("*/*.jpg"))]))
    rows = [row for which in ("train", "evaluation")
            for batch, _ in ImageFolderSource(tmp_path).split(which).batches(spec, 4) for row in batch]
    assert rows
    for row in rows:  # each is exactly one file's runtime preprocessing, picture box and all
        assert min(np.abs(row - candidate).max() for candidate in expected) == 0


def test_no_file_and_no_stray_value_can_move_the_picture_box(tmp_path: Path) -> None:
    from PIL import PngImagePlugin

    pixels = photo_like(270, 190, seed=4)
    text = PngImagePlugin.PngInfo()
    text.add_text("edgeresnet.picture_box", "0,0,10,10")  # a PNG's text chunks land in Image.info
    text.add_text("PICTURE_BOX", "(0.0, 0.0, 10.0, 10.0)")
    png = tmp_path / "tagged.png"
    Image.fromarray(pixels).save(png, pnginfo=text)
    spec = PreprocessSpec(input_size=(28, 28))
    assert np.array_equal(spec.load(png), spec.pixels(pixels))
    image = Image.fromarray(pixels)
    for stray in ("0,0,10,10", (0.0, 0.0, 10.0, 10.0), (0, 0, 270, 190), (0.0, 0.0, float("nan"), 190.0)):
        image.info[PICTURE_BOX] = stray  # only the decoder's own in-bounds floats are a picture box
        assert np.array_equal(spec.pixels(image), spec.pixels(pixels)), stray


def test_a_gray_model_reads_the_picture_box_through_its_colour_conversion(tmp_path: Path) -> None:
    path = save_jpeg(tmp_path / "odd.jpg", photo_like(270, 190, seed=6), quality=95)
    spec = PreprocessSpec(input_size=(28, 28), channels="L", mean=(0.5,), std=(0.5,))
    with Image.open(path) as image:
        reference = spec.pixels(image.convert("RGB")).astype(int)
    assert np.abs(spec.load(path).astype(int) - reference).mean() < 1.0


@settings(max_examples=int(os.environ.get("EDGERESNET_FUZZ_EXAMPLES", "20")), deadline=None, derandomize=True,
          database=None, print_blob=False)
@given(width=st.integers(40, 700), height=st.integers(40, 700), orientation=st.integers(1, 8),
       side=st.integers(16, 64), crop=st.booleans(), seed=st.integers(0, 1000))
def test_a_reduced_decode_stays_close_to_a_full_one_whatever_the_size_and_orientation(
    tmp_path_factory: pytest.TempPathFactory, width: int, height: int, orientation: int, side: int, crop: bool,
    seed: int,
) -> None:
    # Measured over 60 random cases: at most 1.65 levels on average with the picture box, up to 23.7 without.
    spec = PreprocessSpec(input_size=(side, side), resize_to=int(side * 1.14) if crop else None)
    path = save_jpeg(tmp_path_factory.mktemp("jpeg") / "photo.jpg", photo_like(width, height, seed=seed),
                     orientation=orientation)
    with Image.open(path) as image:
        reference = spec.pixels(ImageOps.exif_transpose(image).convert("RGB")).astype(int)
    assert np.abs(spec.load(path).astype(int) - reference).mean() <= 2.5
