"""Finger maps: a hand's 2-D keypoints drawn as soft lines, one map per finger, the image
decoder's guide.

A decoder that must draw fingers from a 64-number vector learns a blurred mean hand; given
where each bone lies in the image (as in pose-guided image generation, Ma et al. 2017), its
convolutions only have to paint along the lines. Coordinates are normalised so that the image
spans [-1, 1] on both axes whatever its size: pixel centre j of an S-pixel axis lies at
(2 j + 1) / S - 1, and a crop's pixel coordinates u (OpenCV, centre of pixel j at u = j) map to
(2 u + 1) / S - 1.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Sequence

import torch

from handlatent.skeleton import BONES, NUM_KEYPOINTS

NUM_FINGERS = 5  # BONES runs finger by finger, 4 bones each (the first from the root)
MIN_SIGMA = 0.03  # the line's Gaussian width in normalised units (about 2 px at 128 px)


def normalise_uv(uv: torch.Tensor, size: int) -> torch.Tensor:
    """Pixel coordinates (..., 21, 2) of an S x S crop -> the normalised [-1, 1] frame."""
    return (2 * uv + 1) / size - 1


def pixel_uv(uv: torch.Tensor, size: int) -> torch.Tensor:
    """Inverse of `normalise_uv`: normalised coordinates -> pixels of an S x S image."""
    return ((uv + 1) * size - 1) / 2


@lru_cache(maxsize=16)
@torch.inference_mode(False)  # cached: normal tensors, which training may save for backward
def _pixel_centres(sizes: tuple[int, ...], device: torch.device
                   ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """x, y and -1 / (2 sigma^2) of every pixel centre of every size, one flat axis for all."""
    xs, ys, scale = [], [], []
    for size in sizes:
        centres = (2 * torch.arange(size, device=device, dtype=torch.float32) + 1) / size - 1
        y, x = torch.meshgrid(centres, centres, indexing="ij")
        xs.append(x.reshape(-1))
        ys.append(y.reshape(-1))
        sigma = max(MIN_SIGMA, 2 / size)
        scale.append(torch.full((size * size,), -0.5 / sigma ** 2, device=device))
    return torch.cat(xs), torch.cat(ys), torch.cat(scale)


def finger_maps(uv: torch.Tensor, sizes: Sequence[int]) -> list[torch.Tensor]:
    """One (B, 5, S, S) map in [0, 1] per size S from normalised keypoints (B, 21, 2): channel f
    is exp(-d^2 / 2 sigma^2) of each pixel centre's distance d to the nearest of finger f's four
    bones (skeleton.BONES, root to tip; thumb, index, middle, ring, little), sigma one pixel of
    that size, at least MIN_SIGMA. All sizes in one pass (the decoder's per-step cost)."""
    if uv.dim() != 3 or uv.shape[1:] != (NUM_KEYPOINTS, 2):
        raise ValueError(f"keypoints must be (B, {NUM_KEYPOINTS}, 2), got {tuple(uv.shape)}")
    uv = uv.float()
    sizes = tuple(int(s) for s in sizes)
    px, py, scale = _pixel_centres(sizes, uv.device)
    bones = torch.as_tensor(BONES, device=uv.device)
    a, b = uv[:, bones[:, 0]], uv[:, bones[:, 1]]  # (B, 20, 2)
    x, y = px - a[..., 0, None], py - a[..., 1, None]  # (B, 20, P): offsets from each bone's start
    dx, dy = (b - a)[..., 0, None], (b - a)[..., 1, None]
    # t: where the segment's nearest point lies along it (0 at its start, 1 at its end).
    t = ((x * dx + y * dy) / (dx.square() + dy.square()).clamp(min=1e-8)).clamp(0, 1)
    d2 = (x - t * dx).square() + (y - t * dy).square()
    maps = torch.exp(d2.view(len(uv), NUM_FINGERS, -1, d2.shape[-1]).amin(2) * scale)
    return [m.view(len(uv), NUM_FINGERS, s, s)
            for m, s in zip(maps.split([s * s for s in sizes], -1), sizes)]
