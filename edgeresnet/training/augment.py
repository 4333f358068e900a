"""Training augmentation that preserves the label of any image: small random shifts, flips on request."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from edgeresnet.training.config import Augment

# Shift by up to 1/16 of the side: ±2 pixels at 28-32, ±14 at 224. Small enough that an object
# never leaves the frame, large enough to stop a small set being memorised pixel by pixel.
SHIFT_FRACTION = 1 / 16


def shift_pixels(height: int, width: int) -> int:
    return max(1, round(min(height, width) * SHIFT_FRACTION))


def augment_batch(batch: torch.Tensor, generator: torch.Generator, *, mode: Augment = "shift") -> torch.Tensor:
    """Randomly shift each image of a normalised NCHW batch; with ``mode="flip"`` also mirror half of them.

    The border uncovered by a shift repeats the edge pixels (replicate padding), so it looks like the
    image's own background whatever its colour, rather than a black bar.
    """
    if mode == "none":
        return batch
    n, _, h, w = batch.shape
    pad = shift_pixels(h, w)
    padded = F.pad(batch, (pad, pad, pad, pad), mode="replicate")
    offsets = torch.randint(0, 2 * pad + 1, (n, 2), generator=generator)
    rows = offsets[:, 0, None] + torch.arange(h)  # n×h
    cols = offsets[:, 1, None] + torch.arange(w)  # n×w
    index = torch.arange(n)[:, None, None]
    # Advanced indexing puts the indexed dims first: n×h×w×c, back to n×c×h×w.
    shifted = padded.permute(0, 2, 3, 1)[index, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2)
    if mode == "flip":
        flips = (torch.rand(n, generator=generator) < 0.5).view(n, 1, 1, 1)
        shifted = torch.where(flips, shifted.flip(-1), shifted)
    return shifted.contiguous()
