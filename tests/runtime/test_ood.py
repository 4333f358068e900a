"""The out-of-distribution hint: ranges recorded at export, checked by the runtime, shown by `predict`."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from edgeresnet.bundle import read_manifest
from edgeresnet.bundle.ood import OodProfile
from edgeresnet.errors import BundleError
from edgeresnet.runtime.ood import build_profile, check_batch, energy, pixel_features


def _in_distribution(n: int = 400, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Dark 28×28 images with a bright blob (Fashion-MNIST-like), and logits that favour one class."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:28, 0:28]
    images = np.zeros((n, 28, 28, 1), np.uint8)
    for i in range(n):
        cx, cy, r = rng.uniform(10, 18), rng.uniform(10, 18), rng.uniform(5, 9)
        blob = (xx - cx) ** 2 + (yy - cy) ** 2 < r * r
        images[i, blob, 0] = rng.integers(120, 250)
    logits = rng.normal(0, 1, (n, 10))
    logits[np.arange(n), rng.integers(0, 10, n)] += rng.uniform(6, 10, n)
    return images, logits


def test_energy_is_a_stable_log_sum_exp() -> None:
    logits = np.array([[1000.0, 1000.0], [0.0, np.log(3.0)]])
    assert energy(logits) == pytest.approx([1000.0 + np.log(2.0), np.log(4.0)])


def test_pixel_features_of_a_known_image() -> None:
    image = np.zeros((1, 8, 8), np.uint8)
    image[0, 2:6, 2:6] = 200  # bright centre, black border ring (8 // 8 = 1 pixel wide)
    features = pixel_features(image)
    assert features["mean"][0] == pytest.approx(200 * 16 / 64)
    assert features["border_mean"][0] == 0.0
    assert features["std"][0] == pytest.approx(np.std(image[0].astype(float)))
    # 8 rows with a 200-step at both ends of the square (4 of them): 2 × 4 × 200 over 8 × 7 differences.
    assert features["roughness"][0] == pytest.approx(2 * 4 * 200 / 56 / np.std(image[0].astype(float)))


def test_inputs_inside_the_ranges_pass_and_far_ones_are_flagged_with_reasons() -> None:
    images, logits = _in_distribution()
    profile = build_profile([images], [logits], source="test")
    held_out, held_logits = _in_distribution(seed=1)
    false_alarms = sum(check.flagged for check in check_batch(profile, held_out, held_logits))
    assert false_alarms / len(held_out) < 0.05  # the energy quantile is 1%; the ranges are the extremes, widened
    constant = np.full((1, 28, 28, 1), 128, np.uint8)  # a 1×1 image blown up to the input size
    photo = np.random.default_rng(2).integers(60, 200, (1, 28, 28, 1)).astype(np.uint8)  # no empty border
    confident = logits[:1]
    (flat,) = check_batch(profile, constant, confident)
    assert flat.flagged and any(reason.startswith("pixel std 0.0 outside") for reason in flat.reasons)
    (busy,) = check_batch(profile, photo, confident)
    assert busy.flagged and any(reason.startswith("pixel border mean") for reason in busy.reasons)
    noise = np.clip(np.random.default_rng(3).normal(60, 40, (1, 28, 28, 1)), 0, 255).astype(np.uint8)
    (rough,) = check_batch(profile, noise, confident)
    assert rough.flagged and any(reason.startswith("pixel roughness") for reason in rough.reasons)
    (unsure,) = check_batch(profile, images[:1], np.zeros((1, 10)))  # no class fits: energy ln(10)
    assert unsure.flagged and unsure.reasons[0].startswith("energy 2.30 below")


def test_the_profile_round_trips_and_refuses_malformed_records() -> None:
    images, logits = _in_distribution(50)
    profile = build_profile([images], [logits], source="50 images")
    assert OodProfile.from_dict(json.loads(json.dumps(profile.to_dict()))).to_dict() == profile.to_dict()
    with pytest.raises(BundleError, match="'ood'"):
        OodProfile.from_dict({"images": 3, "source": "x"})
    with pytest.raises(BundleError, match="unknown image statistics"):
        OodProfile.from_dict({**profile.to_dict(), "pixel_ranges": {"hue": [0, 1]}})
    with pytest.raises(BundleError, match="finite"):
        OodProfile.from_dict({**profile.to_dict(), "energy_low": float("nan")})


@pytest.mark.slow
def test_export_records_ranges_and_predict_flags_a_one_pixel_image(tiny_checkpoint: Path, tmp_path: Path) -> None:
    from edgeresnet.cli import cli
    from edgeresnet.runtime import Classifier

    output = tmp_path / "export"
    result = CliRunner().invoke(cli, ["export", str(tiny_checkpoint), "--target", "onnxruntime",
                                      "--data", "fashion-mnist", "--eval-limit", "200", "--output", str(output)])
    assert result.exit_code == 0, result.output
    bundle = output / "onnxruntime-fp32"
    manifest = read_manifest(bundle)
    assert manifest.ood is not None and manifest.ood.images == 1000
    assert "calibration split" in manifest.ood.source
    tiny = tmp_path / "one-pixel.png"
    Image.fromarray(np.array([[[200, 30, 30]]], np.uint8)).save(tiny)
    boot = Path(__file__).resolve().parents[2] / "docs" / "samples" / "ankle-boot.png"
    shown = CliRunner().invoke(cli, ["predict", str(bundle), str(tiny), str(boot), "--top-k", "1"])
    assert shown.exit_code == 0, shown.output
    blocks = shown.output.split(str(boot))
    assert "note: unlike the images the model was trained on (" in blocks[0]
    assert "note:" not in blocks[1]
    with Classifier.load(bundle) as classifier:
        (row,) = list(classifier.predict_iter([tiny]))
        assert row.ood is not None and row.ood.flagged and row.to_dict()["ood"]["flagged"] is True
        assert classifier.predict([boot])[0][0].ood is False


@settings(max_examples=60, deadline=None, derandomize=True, database=None)
@given(n=st.integers(1, 3), height=st.integers(1, 40), width=st.integers(1, 40), channels=st.sampled_from([1, 3]),
       seed=st.integers(0, 2**31 - 1))
def test_pixel_statistics_are_their_definitions(n: int, height: int, width: int, channels: int, seed: int) -> None:
    # The fast path sums a third of the values and squares in 16 bits; the definitions, in float64:
    pixels = np.random.default_rng(seed).integers(0, 256, (n, height, width, channels), dtype=np.uint8)
    got = pixel_features(pixels)
    values = pixels.astype(np.float64)
    ring = max(1, min(height, width) // 8)
    border = np.ones((height, width), bool)
    border[ring:height - ring, ring:width - ring] = False
    gray = values.sum(axis=3)
    for i in range(n):
        std = values[i].std()
        across = np.abs(np.diff(gray[i], axis=1)).mean() if width > 1 else 0.0
        down = np.abs(np.diff(gray[i], axis=0)).mean() if height > 1 else 0.0
        expected = {"mean": values[i].mean(), "std": std, "border_mean": values[i][border].mean(),
                    "roughness": (across + down) / (2 * channels) / max(std, 1.0)}
        for name, value in expected.items():
            assert got[name][i] == pytest.approx(value, rel=1e-9, abs=1e-9), name
