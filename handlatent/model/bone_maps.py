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


@lru_cache(maxsize=32)
@torch.inference_mode(False)  # cached: normal tensors, which training may save for backward
def _axis_centres(size: int, device: torch.device) -> torch.Tensor:
    """The S pixel centres of one image axis in the normalised frame."""
    return (2 * torch.arange(size, device=device, dtype=torch.float32) + 1) / size - 1


@lru_cache(maxsize=8)
@torch.inference_mode(False)
def _bone_ends(device: torch.device) -> torch.Tensor:
    """skeleton.BONES as a (20, 2) index tensor on `device`."""
    return torch.as_tensor(BONES, device=device)


def finger_maps(uv: torch.Tensor, sizes: Sequence[int]) -> list[torch.Tensor]:
    """One (B, 5, S, S) map in [0, 1] per size S from normalised keypoints (B, 21, 2): channel f
    is exp(-d^2 / 2 sigma^2) of each pixel centre's distance d to the nearest of finger f's four
    bones (skeleton.BONES, root to tip; thumb, index, middle, ring, little), sigma one pixel of
    that size, at least MIN_SIGMA.

    The decoder pays this at every step, so it is written for speed: with p a pixel's offset
    from a bone's start and v the bone, d^2 = |p|^2 - t (2 p.v - t |v|^2) where t = p.v / |v|^2
    clamped to [0, 1], and both |p|^2 and p.v are a column term plus a row term, formed on the
    two axes (of all sizes at once: at batch 1 the number of operations is the cost) and
    broadcast: six passes over each (B, 20, S, S) grid.
    """
    if uv.dim() != 3 or uv.shape[1:] != (NUM_KEYPOINTS, 2):
        raise ValueError(f"keypoints must be (B, {NUM_KEYPOINTS}, 2), got {tuple(uv.shape)}")
    uv = uv.float()
    bones = _bone_ends(uv.device)
    a = uv[:, bones[:, 0]]  # (B, 20, 2): each bone's start
    v2 = 2 * (uv[:, bones[:, 1]] - a)  # twice each bone
    length2 = (v2.square().sum(-1) / 4).clamp(min=1e-8)[..., None, None]  # |v|^2, (B, 20, 1, 1)
    half_inverse = 0.5 / length2
    sizes = tuple(int(s) for s in sizes)
    offsets = _axes(sizes, uv.device) - a[..., None]  # (B, 20, 2, N): columns (x) and rows (y)
    dots = (offsets * v2[..., None]).unbind(2)  # the column and row terms of 2 p.v
    squares = offsets.square().unbind(2)  # and of |p|^2
    maps = []
    for size, dot_x, dot_y, square_x, square_y in zip(
            sizes, *(terms.split(sizes, -1) for terms in (*dots, *squares))):
        dot2 = dot_x.unsqueeze(-2) + dot_y.unsqueeze(-1)  # (B, 20, S, S)
        r2 = square_x.unsqueeze(-2) + square_y.unsqueeze(-1)
        t = (dot2 * half_inverse).clamp(0, 1)  # the nearest point's place along the bone
        d2 = torch.addcmul(r2, t, torch.addcmul(dot2, t, length2, value=-1), value=-1)
        sigma = max(MIN_SIGMA, 2 / size)
        # Capped at 30 in the exponent (e^-30 < 1e-13): exp is ten times slower on the
        # denormal results that distant pixels would give.
        nearest = d2.view(len(uv), NUM_FINGERS, -1, size, size).amin(2).clamp(0, 60 * sigma ** 2)
        maps.append(torch.exp(nearest * (-0.5 / sigma ** 2)))
    return maps


@lru_cache(maxsize=32)
@torch.inference_mode(False)
def _axes(sizes: tuple[int, ...], device: torch.device) -> torch.Tensor:
    """The pixel centres of each size's axis, one after another (N,)."""
    return torch.cat([_axis_centres(s, device) for s in sizes])
