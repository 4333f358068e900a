"""The resize runs in fixed bands of output rows: the same pixels with or without threads, close to one call."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from edgeresnet.data.preprocessing import MIN_BAND_ROWS, RESIZE_BANDS, PreprocessSpec
from edgeresnet.runtime.classifier import Classifier
from tests.runtime.tiny_bundle import make_bundle, tiny_model


def _cases(count: int, seed: int) -> list[tuple[Image.Image, PreprocessSpec]]:
    """Random photos-like images (smooth + noise) of random sizes and modes, with specs that shrink them."""
    rng = np.random.default_rng(seed)
    cases = []
    for k in range(count):
        width, height = (int(v) for v in rng.integers(48, 900, size=2))
        channels = "L" if k % 3 == 0 else "RGB"
        shape = (height, width) if channels == "L" else (height, width, 3)
        ramp = np.linspace(0, 200, width)[None, :] + np.linspace(0, 55, height)[:, None]
        noise = rng.normal(0, 25, shape)
        values = (ramp if channels == "L" else ramp[..., None]) + noise
        image = Image.fromarray(np.clip(values, 0, 255).astype(np.uint8))
        side = int(rng.integers(16, max(17, min(width, height))))
        resize_to = None if k % 4 == 0 else int(side * rng.uniform(1.0, 1.3))
        stats = (0.5,) * (1 if channels == "L" else 3)
        spec = PreprocessSpec(input_size=(side, side), resize_to=resize_to, channels=channels, mean=stats, std=stats)
        cases.append((image, spec))
    return cases


@pytest.fixture(scope="module")
def pool() -> ThreadPoolExecutor:
    with ThreadPoolExecutor(max_workers=1) as executor:
        yield executor


def test_threads_change_nothing_in_the_pixels(pool: ThreadPoolExecutor) -> None:
    with ThreadPoolExecutor(max_workers=3) as wide:
        for image, spec in _cases(60, seed=3):
            alone = spec.pixels(image)
            assert alone.shape == (*spec.input_size, spec.num_channels)
            assert np.array_equal(spec.pixels(image, pool), alone)
            assert np.array_equal(spec.pixels(image, wide), alone)


def test_bands_stay_within_one_level_of_one_pillow_call() -> None:
    differing = total = 0
    for image, spec in _cases(60, seed=5):
        if spec.resize_to is not None:
            continue
        height, width = spec.input_size
        if image.width < width or image.height < height:
            continue  # an upscale takes the plain path, unbanded
        whole = np.asarray(image.resize((width, height), Image.Resampling.BILINEAR)).astype(np.int16)
        banded = spec.pixels(image)[..., 0] if spec.channels == "L" else spec.pixels(image)
        difference = np.abs(banded.astype(np.int16) - whole)
        assert difference.max() <= 1
        differing += int(np.count_nonzero(difference))
        total += difference.size
    assert total and differing / total < 0.01


def test_small_outputs_are_one_band_and_large_ones_are_split() -> None:
    image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (400, 400, 3), dtype=np.uint8))
    calls: list[tuple[int, int]] = []
    original = Image.Image.resize

    def counting(self: Image.Image, size: tuple[int, int], *args: object, **kwargs: object) -> Image.Image:
        calls.append(size)
        return original(self, size, *args, **kwargs)

    Image.Image.resize = counting  # type: ignore[method-assign]
    try:
        PreprocessSpec(input_size=(MIN_BAND_ROWS, MIN_BAND_ROWS)).pixels(image)
        assert calls == [(MIN_BAND_ROWS, MIN_BAND_ROWS)]
        calls.clear()
        PreprocessSpec(input_size=(224, 224), resize_to=256).pixels(image)
        assert len(calls) == RESIZE_BANDS and sum(h for _, h in calls) == 224
    finally:
        Image.Image.resize = original  # type: ignore[method-assign]


def test_predict_shares_the_resize_with_its_thread_and_answers_as_without(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import edgeresnet.runtime.classifier as classifier_module

    monkeypatch.setattr(classifier_module, "usable_cores", lambda: 2)  # a second core, whatever this host has
    bundle = make_bundle(tmp_path / "bundle", tiny_model().onnx)
    photo = tmp_path / "photo.jpg"
    rng = np.random.default_rng(9)
    Image.fromarray(rng.integers(0, 256, (300, 420, 3), dtype=np.uint8)).save(photo, quality=90)
    with Classifier.load(bundle) as classifier:
        assert classifier.resize_pool is not None
        handed: list[object] = []
        submit = classifier.resize_pool.submit
        monkeypatch.setattr(classifier.resize_pool, "submit", lambda *a, **k: handed.append(a) or submit(*a, **k))
        through_predict = classifier.predict([photo, photo], top_k=3)
        assert len(handed) == 2  # one hand-off per image's resize
        pixels = classifier.load_pixels(photo)  # decoded without the resize thread
        through_frames = classifier.predict_frames(np.stack([pixels, pixels]), top_k=3)
    assert through_predict == through_frames


def test_an_array_turns_gray_exactly_as_a_pillow_image_does() -> None:
    rgb = np.random.default_rng(12).integers(0, 256, (2, 64, 64, 3), dtype=np.uint8)
    spec = PreprocessSpec(input_size=(64, 64), channels="L", mean=(0.5,), std=(0.5,))
    from_arrays = spec.pixels_batch(rgb)  # at the input size: the vectorised numpy path
    from_pillow = np.stack([spec.pixels(Image.fromarray(image)) for image in rgb])  # Pillow's convert("L")
    assert np.array_equal(from_arrays, from_pillow)
