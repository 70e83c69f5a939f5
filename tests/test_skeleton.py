"""Properties of handlatent.skeleton (docs/conventions.md sections 1-2) on numpy and torch."""

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from array_helpers import as_numpy, convert, fast
from array_helpers import tolerance as rtol

from handlatent.rotations import random_rotations
from handlatent.skeleton import (BONE_COLORS, BONES, FINGER_COLORS, FINGER_OF_KEYPOINT, FINGERS,
                                 KEYPOINT_NAMES, NUM_KEYPOINTS, bone_scale, canonicalize, compose,
                                 flip_if_right, palm_to_wrist, root_relative,
                                 wrist_to_palm)

BACKENDS = [("numpy", np.float64), ("numpy", np.float32),
            ("torch", torch.float64), ("torch", torch.float32)]


def template_hand():
    """A flat left hand in bone units: root at 0, fingers along -y, little finger at +x."""
    hand = np.zeros((NUM_KEYPOINTS, 3))
    mcps = [(-1.2, -1.0), (-0.9, -3.0), (0.0, -3.2), (0.8, -3.0), (1.5, -2.7)]
    directions = [(-0.6, -0.8), (-0.1, -1.0), (0.0, -1.0), (0.1, -1.0), (0.2, -1.0)]
    for finger, ((x, y), (dx, dy)) in enumerate(zip(mcps, directions)):
        for step, keypoint in enumerate(range(4 * finger + 4, 4 * finger, -1)):
            hand[keypoint] = (x + step * dx, y + step * dy, 0.0)
    return hand


@st.composite
def hands(draw, batch=()):
    """Random hands `(*batch, 21, 3)`: noisy template, rotated, scaled (1e-3..10), translated."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    noise = draw(st.floats(0.0, 1.0))
    scale = 10 ** draw(st.floats(-3.0, 1.0))
    n = int(np.prod(batch))
    xyz = template_hand() + noise * rng.standard_normal((n, NUM_KEYPOINTS, 3))
    xyz = xyz @ random_rotations(n, rng) * scale + rng.uniform(-scale, scale, (n, 1, 3))
    is_right = rng.random(n) < 0.5
    return xyz.reshape(*batch, NUM_KEYPOINTS, 3), is_right.reshape(batch)


def assert_close(actual, expected, rel, size=None):
    """|actual - expected| <= rel * size (default: the largest |expected| row)."""
    expected = as_numpy(expected)
    size = np.abs(expected).max() if size is None else size
    np.testing.assert_allclose(as_numpy(actual), expected, rtol=0, atol=rel * size)


# --- tables ---------------------------------------------------------------------------------

def test_keypoint_tables_follow_rhd_order():
    assert len(KEYPOINT_NAMES) == NUM_KEYPOINTS == 21
    assert KEYPOINT_NAMES[:5] == ("palm", "thumb_tip", "thumb_dip", "thumb_pip", "thumb_mcp")
    assert KEYPOINT_NAMES[12] == "middle_mcp" and KEYPOINT_NAMES[20] == "little_mcp"
    assert FINGER_OF_KEYPOINT[0] == -1
    for keypoint in range(1, 21):
        assert KEYPOINT_NAMES[keypoint].startswith(FINGERS[FINGER_OF_KEYPOINT[keypoint]])


def test_bones_form_the_tree_root_mcp_pip_dip_tip():
    assert BONES.shape == (20, 2)
    assert sorted(BONES[:, 1]) == list(range(1, 21))  # every keypoint but the root has a parent
    for parent, child in BONES:
        if parent == 0:
            assert KEYPOINT_NAMES[child].endswith("_mcp")
        else:
            assert FINGER_OF_KEYPOINT[parent] == FINGER_OF_KEYPOINT[child]
            assert parent == child + 1  # towards the tip
    assert BONES[:4].tolist() == [[0, 4], [4, 3], [3, 2], [2, 1]]


def test_colors_are_distinct_per_finger_and_follow_the_child():
    assert len(FINGER_COLORS) == 5 and len(set(FINGER_COLORS)) == 5
    assert all(len(c) == 3 and all(0 <= v <= 1 for v in c) for c in FINGER_COLORS)
    assert BONE_COLORS.shape == (20, 3)
    for (_, child), color in zip(BONES, BONE_COLORS):
        assert tuple(color) == FINGER_COLORS[FINGER_OF_KEYPOINT[child]]


# --- root, scale ------------------------------------------------------------------------------

@pytest.mark.parametrize("backend,dtype", BACKENDS)
def test_wrist_to_palm_root_relative_and_bone_scale(backend, dtype):
    raw = np.random.default_rng(1).standard_normal((4, 21, 3))
    xyz = convert(raw, backend, dtype)
    palm = wrist_to_palm(xyz)
    assert_close(palm[:, 0], (raw[:, 0] + raw[:, 12]) / 2, rtol(dtype))
    assert_close(palm_to_wrist(palm), raw, rtol(dtype))  # and back: wrist = 2 palm - middle MCP
    assert_close(palm[:, 1:], xyz[:, 1:], 0)
    assert_close(xyz, convert(raw, backend, dtype), 0)  # input untouched
    rel = root_relative(xyz)
    assert_close(rel, raw - raw[:, :1], rtol(dtype))
    scale = bone_scale(xyz)
    assert scale.shape == (4,) and scale.dtype == dtype
    assert_close(scale, np.linalg.norm(raw[:, 12] - raw[:, 11], axis=-1), rtol(dtype))


# --- canonical pose and viewpoint -------------------------------------------------------------

@pytest.mark.parametrize("backend,dtype", BACKENDS)
@fast
@given(hand=hands(batch=(5,)))
def test_compose_inverts_canonicalize(backend, dtype, hand):
    raw, is_right = hand
    xyz = convert(raw, backend, dtype)
    right = torch.as_tensor(is_right) if backend == "torch" else is_right
    cpose, viewpoint, scale = canonicalize(xyz, right)
    for out, shape in ((cpose, (5, 21, 3)), (viewpoint, (5, 3, 3)), (scale, (5,))):
        assert type(out) is type(xyz) and out.dtype == xyz.dtype and out.shape == shape
    assert_close(compose(cpose, viewpoint, scale, right), root_relative(raw), rtol(dtype))


@pytest.mark.parametrize("backend,dtype", BACKENDS)
@fast
@given(hand=hands(batch=(5,)))
def test_canonical_frame_constraints(backend, dtype, hand):
    raw, is_right = hand
    cpose, viewpoint, scale = map(as_numpy, canonicalize(convert(raw, backend, dtype), is_right))
    size = np.abs(cpose).max()
    tol = 10 * rtol(dtype) * size
    np.testing.assert_allclose(cpose[:, 0], 0, atol=tol)
    np.testing.assert_allclose(cpose[:, 12, [0, 2]], 0, atol=tol)
    assert np.all(cpose[:, 12, 1] < 0)
    np.testing.assert_allclose(cpose[:, 20, 2], 0, atol=tol)
    assert np.all(cpose[:, 20, 0] > 0)
    np.testing.assert_allclose(np.linalg.norm(cpose[:, 12] - cpose[:, 11], axis=-1), 1, atol=tol)
    np.testing.assert_allclose(viewpoint @ viewpoint.swapaxes(-1, -2),
                               np.broadcast_to(np.eye(3), viewpoint.shape), atol=tol)
    np.testing.assert_allclose(np.linalg.det(viewpoint), 1, atol=tol)
    assert_close(scale, bone_scale(raw), rtol(dtype))


@pytest.mark.parametrize("backend,dtype", BACKENDS)
@fast
@given(hand=hands(batch=(3,)), seed=st.integers(0, 2**32 - 1), factor=st.floats(1e-2, 1e2))
def test_cpose_is_invariant_to_rotation_scale_and_translation(backend, dtype, hand, seed, factor):
    raw, is_right = hand
    rng = np.random.default_rng(seed)
    rotation = random_rotations(3, rng)
    moved = (raw @ rotation + rng.standard_normal((3, 1, 3)) * np.abs(raw).max()) * factor
    cpose, viewpoint, scale = canonicalize(convert(raw, backend, dtype), is_right)
    cpose2, viewpoint2, scale2 = canonicalize(convert(moved, backend, dtype), is_right)
    assert_close(cpose2, cpose, 10 * rtol(dtype))
    assert_close(viewpoint2, as_numpy(viewpoint) @ rotation, 10 * rtol(dtype))
    assert_close(scale2, as_numpy(scale) * factor, 10 * rtol(dtype))


@pytest.mark.parametrize("backend,dtype", BACKENDS)
@fast
@given(hand=hands(batch=(4,)))
def test_a_mirrored_left_hand_flagged_right_has_the_same_cpose(backend, dtype, hand):
    raw, _ = hand
    mirrored = raw * np.array([-1.0, 1.0, 1.0])
    left = canonicalize(convert(raw, backend, dtype))[0]
    right = canonicalize(convert(mirrored, backend, dtype), is_right=True)[0]
    assert_close(right, left, 10 * rtol(dtype))
    flagged = np.array([True, False, True, False])
    mixed = canonicalize(convert(np.where(flagged[:, None, None], mirrored, raw), backend, dtype),
                         is_right=flagged)[0]
    assert_close(mixed, left, 10 * rtol(dtype))


@fast
@given(hand=hands(batch=(2, 3)))
def test_leading_dimensions_are_batched(hand):
    raw, is_right = hand
    cpose, viewpoint, scale = canonicalize(raw, is_right)
    assert cpose.shape == (2, 3, 21, 3) and viewpoint.shape == (2, 3, 3, 3)
    assert scale.shape == (2, 3)
    single = canonicalize(raw[1, 2], bool(is_right[1, 2]))
    for batched, one in zip((cpose, viewpoint, scale), single):
        np.testing.assert_allclose(batched[1, 2], one, atol=1e-12)
    composed = compose(cpose, viewpoint, scale, is_right)
    np.testing.assert_allclose(composed, root_relative(raw), atol=1e-9 * np.abs(raw).max())


def test_compose_broadcasts_a_scalar_scale_and_flips_right_hands():
    raw = template_hand()[None].repeat(2, 0)
    cpose, viewpoint, _ = canonicalize(raw)
    np.testing.assert_allclose(compose(cpose, viewpoint, 2.0), 2 * raw, atol=1e-12)
    np.testing.assert_allclose(compose(cpose, viewpoint), raw, atol=1e-12)
    flipped = flip_if_right(cpose, np.array([True, False]))
    np.testing.assert_allclose(flipped[0], cpose[0] * [1, 1, -1])
    np.testing.assert_allclose(flipped[1], cpose[1])


def test_template_hand_is_already_canonical():
    cpose, viewpoint, scale = canonicalize(template_hand())
    np.testing.assert_allclose(cpose, template_hand(), atol=1e-12)
    np.testing.assert_allclose(viewpoint, np.eye(3), atol=1e-12)
    np.testing.assert_allclose(scale, 1.0)


# --- degenerate input -------------------------------------------------------------------------

def degenerate_hands():
    hand = template_hand()
    nan, inf, same, at_root, collinear, no_bone = (hand.copy() for _ in range(6))
    nan[5, 1] = np.nan
    inf[0, 0] = np.inf
    same[:] = 0.3
    at_root[12] = at_root[0]
    collinear[20] = 1.7 * collinear[12]
    no_bone[11] = no_bone[12]
    return [(nan, "NaN"), (inf, "inf"), (same, "keypoints 11-12"), (at_root, "keypoint 12"),
            (collinear, "keypoint 20"), (no_bone, "keypoints 11-12")]


@pytest.mark.parametrize("backend,dtype", BACKENDS)
@pytest.mark.parametrize("hand,problem", degenerate_hands())
def test_degenerate_hands_raise_value_error(backend, dtype, hand, problem):
    with pytest.raises(ValueError, match=problem):
        canonicalize(convert(hand, backend, dtype))
    batch = np.stack([template_hand(), template_hand(), hand])[None]
    with pytest.raises(ValueError, match=r"1 of 3 hands, first at batch index \(0, 2\)"):
        canonicalize(convert(batch, backend, dtype))


def test_wrong_shape_raises_value_error():
    with pytest.raises(ValueError, match="21, 3"):
        canonicalize(np.zeros((20, 3)))


# --- autograd ---------------------------------------------------------------------------------

def test_gradients_flow_through_compose_and_canonicalize():
    raw = torch.tensor(template_hand() + 0.2 * np.random.default_rng(4).standard_normal((21, 3)))
    xyz = raw.clone().requires_grad_()
    cpose, viewpoint, scale = canonicalize(xyz, torch.tensor(True))
    cpose.retain_grad()
    viewpoint.retain_grad()
    scale.retain_grad()
    out = compose(cpose, viewpoint, scale, torch.tensor(True))
    (out * torch.randn_like(out)).sum().backward()
    for grad in (xyz.grad, cpose.grad, viewpoint.grad, scale.grad):
        assert torch.isfinite(grad).all() and grad.abs().sum() > 0
    assert torch.autograd.gradcheck(lambda x: canonicalize(x, True), (raw.requires_grad_(),))
    assert torch.autograd.gradcheck(
        compose, (cpose.detach().requires_grad_(), viewpoint.detach().requires_grad_(),
                  scale.detach().requires_grad_()))
