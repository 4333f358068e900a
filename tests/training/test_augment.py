"""Default augmentation shifts images and never mirrors them; mirroring only with mode="flip"."""

from __future__ import annotations

import torch

from edgeresnet.training.augment import augment_batch, shift_pixels


def _asymmetric_batch(n: int = 64) -> torch.Tensor:
    """A bright left column block on a dark background: a mirror image puts it on the right."""
    batch = torch.full((n, 1, 28, 28), -1.0)
    batch[:, :, 8:20, 4:10] = 2.0
    return batch


def _bright_columns(batch: torch.Tensor) -> torch.Tensor:
    return (batch[:, 0] > 0).any(dim=1).float().argmax(dim=1)  # first bright column per image


def test_shift_moves_images_by_at_most_a_sixteenth_and_never_mirrors() -> None:
    batch = _asymmetric_batch()
    out = augment_batch(batch, torch.Generator().manual_seed(0), mode="shift")
    assert out.shape == batch.shape
    moved = _bright_columns(out) - 4
    pad = shift_pixels(28, 28)
    assert pad == 2
    assert moved.abs().max() <= pad and (moved != 0).any()  # the identity would fail the second part
    assert (_bright_columns(out) < 14).all()  # nothing mirrored to the right half
    # The border a shift uncovers repeats the edge: the background value, never a new one.
    assert set(out.unique().tolist()) == {-1.0, 2.0}


def test_flip_mirrors_about_half_of_the_images() -> None:
    out = augment_batch(_asymmetric_batch(), torch.Generator().manual_seed(0), mode="flip")
    mirrored = (_bright_columns(out) > 14).sum().item()
    assert 16 <= mirrored <= 48


def test_none_is_the_identity() -> None:
    batch = _asymmetric_batch(4)
    assert augment_batch(batch, torch.Generator().manual_seed(0), mode="none") is batch
