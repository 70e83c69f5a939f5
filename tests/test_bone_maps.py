"""Bone maps, the guided image decoder's input: where the lines lie, and the normalised frame."""

import math

import pytest
import torch

from handlatent.model import ModelConfig, build_model
from handlatent.model.bone_maps import MIN_SIGMA, finger_maps, normalise_uv, pixel_uv

torch.set_num_threads(1)


def test_normalised_frame_spans_the_image_whatever_its_size():
    for size in (8, 64, 128):
        edges = torch.tensor([-0.5, (size - 1) / 2, size - 0.5])
        assert torch.allclose(normalise_uv(edges, size), torch.tensor([-1.0, 0.0, 1.0]))
        uv = torch.rand(3, 21, 2) * size
        assert torch.allclose(pixel_uv(normalise_uv(uv, size), size), uv, atol=1e-4)


def one_finger_hand(points):
    """Keypoints (1, 21, 2): the index finger's root, MCP, PIP, DIP and tip at `points` (5, 2),
    every other finger folded into the root."""
    uv = torch.as_tensor(points[:1], dtype=torch.float32).repeat(21, 1)[None]
    uv[0, [0, 8, 7, 6, 5]] = torch.as_tensor(points, dtype=torch.float32)
    return uv


def test_a_finger_lights_the_pixels_on_its_bones_and_nothing_beyond():
    size = 32
    # the index finger along row 16 from column 4 to 27, its joints on the way
    points = normalise_uv(torch.tensor([[4.0, 16], [10, 16], [16, 16], [22, 16], [27, 16]]), size)
    small, maps = finger_maps(one_finger_hand(points), [8, size])
    assert small.shape == (1, 5, 8, 8) and maps.shape == (1, 5, size, size)
    line = maps[0, 1]
    assert torch.allclose(line[16, 4:28], torch.ones(24), atol=1e-5)  # on the bones
    assert line[16, :2].max() < 0.02 and line[16, 30:].max() < 0.02  # beyond the ends
    sigma_px = max(MIN_SIGMA, 2 / size) * size / 2
    assert line[17, 10].item() == pytest.approx(math.exp(-0.5 / sigma_px ** 2), rel=1e-4)
    assert line[10:13].max() < 1e-3  # rows 4 pixels or more above it
    others = maps[0, [0, 2, 3, 4]]  # folded into the root: lit only around it
    assert others[:, 16, 4].min() > 0.99 and others[..., 9:].max() < 1e-3
    # the same hand at 8 px: one line along row 4, sigma one pixel of that size
    assert small[0, 1, 4, 1:7].min() > 0.9 and small[0, 1, 0].max() < 0.01


def test_finger_maps_take_the_nearest_of_the_fingers_bones():
    uv = torch.rand(2, 21, 2) * 1.6 - 0.8
    (one,) = finger_maps(uv, [16])
    for bone in range(4):  # the middle finger's bones: root-MCP, MCP-PIP, PIP-DIP, DIP-tip
        moved = uv.clone()
        moved[:, [13, 12, 11, 10, 9][bone + 1]] = 5.0  # drag one joint of it off the image
        assert not torch.allclose(finger_maps(moved, [16])[0][:, 2], one[:, 2])
    assert torch.equal(finger_maps(uv, [16, 4])[0], one)  # each size is its own
    with pytest.raises(ValueError, match=r"keypoints must be \(B, 21, 2\)"):
        finger_maps(torch.zeros(2, 20, 2), [16])


def test_guided_decoder_draws_along_the_keypoints_it_decodes():
    config = ModelConfig(image_size=64, z_y1=4, z_y2=3, z_u=2, hidden=16, decoder_channels=16,
                         decoder_guide="bones")
    torch.manual_seed(0)
    model = build_model(config).eval()
    z = model.sample_prior(3)
    with torch.no_grad():
        out = model.decode(z)
        assert out["image"].shape == (3, 3, 64, 64) and out["uv"].shape == (3, 21, 2)
        assert torch.equal(model.image_decoder(z), out["image"])
        # the same z, other keypoints: the image follows the bones
        head = model.image_decoder.keypoints.out
        head.bias += 0.3
        assert (model.decode(z)["image"] - out["image"]).abs().max() > 1e-3
    assert "uv" not in build_model(ModelConfig(image_size=64, z_y1=4, z_y2=3, z_u=2, hidden=16,
                                               decoder_channels=16)).eval().decode(z)
    with pytest.raises(ValueError, match="decoder_guide must be one of"):
        ModelConfig(decoder_guide="heatmaps")


def test_maps_drawn_under_inference_mode_leave_training_able_to_backpropagate():
    """The pixel grid is cached; one first built under inference_mode (the GUI, the evaluator)
    must not poison a later training step."""
    uv = torch.rand(1, 21, 2) * 1.6 - 0.8
    with torch.inference_mode():
        finger_maps(uv, [8, 24])
    uv.requires_grad_(True)
    finger_maps(uv, [8, 24])[1].sum().backward()
    assert uv.grad is not None and uv.grad.abs().sum() > 0


def brute_force_maps(uv: torch.Tensor, size: int) -> torch.Tensor:
    """finger_maps written the plain way: every pixel against every bone, in float64."""
    from handlatent.skeleton import BONES
    uv = uv.double()
    centres = (2 * torch.arange(size, dtype=torch.float64) + 1) / size - 1
    py, px = torch.meshgrid(centres, centres, indexing="ij")
    p = torch.stack([px, py], -1)  # (S, S, 2)
    sigma = max(MIN_SIGMA, 2 / size)
    out = torch.empty(len(uv), 5, size, size, dtype=torch.float64)
    for finger in range(5):
        d2 = []
        for start, end in BONES[4 * finger:4 * finger + 4]:
            a, b = uv[:, start, None, None], uv[:, end, None, None]  # (B, 1, 1, 2)
            v = b - a
            t = (((p - a) * v).sum(-1) / (v * v).sum(-1).clamp(min=1e-8)).clamp(0, 1)
            d2.append(((p - a - t[..., None] * v) ** 2).sum(-1))
        out[:, finger] = torch.exp(-torch.stack(d2).amin(0) / (2 * sigma ** 2))
    return out


def test_finger_maps_equal_every_pixel_measured_against_every_bone():
    """The fast form (axes broadcast, distances expanded) against the plain one, values and
    the gradient that trains the keypoint MLP."""
    torch.manual_seed(1)
    uv = (torch.rand(3, 21, 2) * 1.6 - 0.8).requires_grad_()
    sizes = [8, 16, 32, 64]
    fast = finger_maps(uv, sizes)
    weights = [torch.randn(3, 5, s, s) for s in sizes]
    (fast_grad,) = torch.autograd.grad(sum((m * w).sum() for m, w in zip(fast, weights)), uv)
    plain = [brute_force_maps(uv, s) for s in sizes]
    (plain_grad,) = torch.autograd.grad(
        sum((m * w.double()).sum() for m, w in zip(plain, weights)), uv)
    for f, p in zip(fast, plain):
        assert f.dtype == torch.float32 and (f.double() - p).abs().max() < 1e-3
    assert torch.allclose(fast_grad, plain_grad, rtol=1e-2,
                          atol=1e-2 * plain_grad.abs().max().item())
