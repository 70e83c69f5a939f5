"""Augmentation of real hand crops (docs/conventions.md §6): scale, shift, in-plane rotation, hue.

The readers apply it while cropping (handlatent.data.crop.crop_item), so that a zoom or a turn
resamples the full photograph once instead of a crop twice:

- scale:    zoom into the crop box by a factor uniform in `scale` (1–1.2);
- shift:    move the crop box by up to ±`shift_px` crop pixels along each axis (±20 px at 256 px,
            scaled with the crop size);
- rotation: turn the picture about the crop centre by θ uniform in ±`rotation_deg`; the labels
            turn with it about the camera's optical axis (xyz, viewpoint, uv and K change, the
            canonical pose and the scale do not);
- hue:      shift the hue by up to ±`hue` of the colour circle (8-bit HSV, as torchvision's
            adjust_hue does for PIL images).

Randomness is a function of (seed, epoch, sample index): `rng_for(seed, epoch, index)`. The trainer
passes the epoch with each index, so a resumed run draws the same augmentations as an
uninterrupted one, whatever the number of DataLoader workers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
from PIL import Image

__all__ = ["AugmentConfig", "Augmentation", "IDENTITY", "rng_for", "sample_augmentation",
           "shift_hue"]


@dataclass
class AugmentConfig:
    """`data.augment` of a training config; `enabled: false` (the default) turns it off."""

    enabled: bool = False
    scale: tuple[float, float] = (1.0, 1.2)
    shift_px: float = 20.0  # crop pixels at 256 px (scaled with the crop size)
    rotation_deg: float = 180.0  # uniform in ±rotation_deg (the papers give no range)
    hue: float = 0.1  # fraction of the hue circle

    def __post_init__(self):
        lo, hi = self.scale
        if not 0 < lo <= hi:
            raise ValueError(f"scale: expected 0 < low <= high, got {list(self.scale)}")
        for name in ("shift_px", "rotation_deg", "hue"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name}: must be >= 0, got {getattr(self, name)!r}")
        if self.hue > 0.5:
            raise ValueError(f"hue: must be <= 0.5 (half the colour circle), got {self.hue!r}")


@dataclass(frozen=True)
class Augmentation:
    """One draw: zoom factor, crop-centre shift (crop pixels), angle (radians), hue shift."""

    zoom: float = 1.0
    shift: tuple[float, float] = (0.0, 0.0)
    angle: float = 0.0
    hue: float = 0.0


IDENTITY = Augmentation()


def rng_for(seed: int | Sequence[int], epoch: int, index: int) -> np.random.Generator:
    """The generator of one sample's augmentation in one epoch."""
    seed = [int(s) for s in (seed if isinstance(seed, (list, tuple)) else [seed])]
    return np.random.default_rng([*[s & 0xFFFFFFFF for s in seed], int(epoch), int(index)])


def sample_augmentation(cfg: AugmentConfig, rng: np.random.Generator, size: int) -> Augmentation:
    """Draw one Augmentation for an S-pixel crop (always four draws, in a fixed order)."""
    zoom = rng.uniform(cfg.scale[0], cfg.scale[1])
    shift = rng.uniform(-1.0, 1.0, 2) * cfg.shift_px * size / 256.0
    angle = math.radians(rng.uniform(-1.0, 1.0) * cfg.rotation_deg)
    hue = rng.uniform(-1.0, 1.0) * cfg.hue
    return Augmentation(float(zoom), (float(shift[0]), float(shift[1])), float(angle), float(hue))


def shift_hue(image: np.ndarray, delta: float) -> np.ndarray:
    """RGB uint8 (H, W, 3) with the hue turned by `delta` (fraction of the circle), the way
    torchvision's adjust_hue does it for PIL images (8-bit HSV, hue wrapping around)."""
    if delta == 0.0:
        return image
    h, s, v = Image.fromarray(image).convert("HSV").split()
    hue = np.asarray(h, np.uint8) + np.uint8(round(delta * 255) % 256)  # wraps modulo 256
    out = Image.merge("HSV", (Image.fromarray(hue, "L"), s, v)).convert("RGB")
    return np.array(out)
