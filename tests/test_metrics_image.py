"""Image quality measures (handlatent.metrics.image) against values worked out by hand."""

from __future__ import annotations

import math

import pytest
import torch

from handlatent.metrics import ImageQuality, gradient_magnitude, psnr_db


def _images(n: int = 3, size: int = 16, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(seed)) * 1.2 - 0.6


def test_psnr_of_a_known_error():
    target = _images()
    mask = torch.zeros(3, 16, 16, dtype=torch.bool)
    mask[:, 4:12, 4:12] = True
    # 0.2 in [-1, 1] units = 0.1 in [0, 1] on the hand (20 dB); 0.6 = 0.3 elsewhere
    offset = torch.where(mask[:, None], torch.tensor(0.2), torch.tensor(0.6))
    q = ImageQuality()
    q.add(target + offset, target, mask)
    r = q.results()
    assert r["hand_psnr_db"] == pytest.approx(20.0)
    hand = 64 / 256
    assert r["image_psnr_db"] == pytest.approx(-10 * math.log10(hand * 0.01 + (1 - hand) * 0.09))
    assert psnr_db(0.0, 10) == math.inf and math.isnan(psnr_db(0.0, 0))


def test_sharpness_is_one_for_the_input_below_for_a_blur_and_two_for_double_contrast():
    target = _images(seed=1)
    mask = torch.ones(3, 16, 16, dtype=torch.bool)

    def sharpness(reconstruction: torch.Tensor) -> float:
        q = ImageQuality()
        q.add(reconstruction, target, mask)
        return q.results()["sharpness"]

    blur = torch.nn.functional.avg_pool2d(target, 3, stride=1, padding=1, count_include_pad=False)
    assert sharpness(target) == pytest.approx(1.0)
    assert sharpness(blur) < 0.6
    assert sharpness(2 * target) == pytest.approx(2.0)  # (2t + 1) / 2 = t + 1/2: twice the slope


def test_gradient_magnitude_of_a_ramp():
    ramp = torch.linspace(-1, 1, 9).repeat(1, 3, 9, 1)  # x rises by 0.25 per pixel, 0.125 in [0, 1]
    g = gradient_magnitude(ramp)
    assert g.shape == (1, 8, 8) and torch.allclose(g, torch.full_like(g, 0.125))


def test_hand_measures_need_masks():
    target = _images()
    q = ImageQuality()
    q.add(target + 0.2, target)
    r = q.results()
    assert r["image_psnr_db"] == pytest.approx(20.0)
    assert r["hand_psnr_db"] is None and r["sharpness"] is None and "masks" in r["note"]
