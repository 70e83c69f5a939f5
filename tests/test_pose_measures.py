"""Joint angles, spreads, bone lengths and the plausibility check (handlatent.pose_measures) on
constructed hands and on the synthetic renderer's hands, whose joint angles are known."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from handlatent.pose_measures import measure_pose
from handlatent.rotations import random_rotations
from handlatent.synth import kinematics

# A flat left hand in its palm frame: x towards the little finger, y distal, palm facing +z.
# Per finger (thumb .. little): MCP position and the bone lengths out to the tip.
_BASES = {0: (-3.0, 1.0), 1: (-1.5, 4.0), 2: (0.0, 4.0), 3: (1.5, 3.8), 4: (3.0, 3.4)}
_LENGTHS = (1.0, 0.7, 0.6)


def _rot(axis: np.ndarray, degrees: float) -> np.ndarray:
    """Rotation matrix (column vectors) about `axis` by `degrees` (Rodrigues)."""
    axis = np.asarray(axis, float) / np.linalg.norm(axis)
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    a = np.radians(degrees)
    return np.eye(3) + np.sin(a) * k + (1 - np.cos(a)) * k @ k


def hand(flex: dict[int, tuple[float, float, float]] | None = None,
         spread: dict[int, float] | None = None) -> np.ndarray:
    """(21, 3) keypoints, RHD order: fingers 1-4 bent by `flex[f]` (MCP, PIP, DIP degrees,
    towards the palm) and turned by `spread[f]` degrees in the palm plane (towards the thumb).
    The thumb lies straight in the palm plane, pointing distally."""
    flex, spread = flex or {}, spread or {}
    kp = np.zeros((21, 3))
    wrist = np.array([0.0, 0.0, 0.0])
    for f, (x, y) in _BASES.items():
        base = np.array([x, y, 0.0])
        direction = _rot([0, 0, 1], spread.get(f, 0.0)) @ np.array([0.0, 1.0, 0.0])
        lateral = _rot([0, 0, 1], spread.get(f, 0.0)) @ np.array([1.0, 0.0, 0.0])
        points = [base]
        for bend, length in zip(flex.get(f, (0.0, 0.0, 0.0)), _LENGTHS):
            direction = _rot(lateral, bend) @ direction
            points.append(points[-1] + length * direction)
        kp[4 * f + 4], kp[4 * f + 3], kp[4 * f + 2], kp[4 * f + 1] = points
    kp[0] = (wrist + kp[12]) / 2
    return kp


def test_a_flat_hand_reads_zero_flexion_and_spread() -> None:
    m = measure_pose(hand())
    np.testing.assert_allclose(m.flexion[1:], 0, atol=1e-9)
    np.testing.assert_allclose(m.spread[1:], 0, atol=1e-9)
    np.testing.assert_allclose(m.flexion[0, 1:], 0, atol=1e-9)   # straight thumb: MCP, IP
    assert m.implausible() == []


def test_a_finger_bent_90_degrees_at_the_pip_reads_90_there_only() -> None:
    m = measure_pose(hand(flex={1: (0.0, 90.0, 0.0)}))
    np.testing.assert_allclose(m.flexion[1], [0, 90, 0], atol=1e-9)
    np.testing.assert_allclose(m.flexion[2:], 0, atol=1e-9)


def test_flexion_at_each_joint_and_its_sign() -> None:
    m = measure_pose(hand(flex={2: (40.0, 60.0, 30.0), 3: (-20.0, 0.0, -10.0)}))
    np.testing.assert_allclose(m.flexion[2], [40, 60, 30], atol=1e-9)
    np.testing.assert_allclose(m.flexion[3], [-20, 0, -10], atol=1e-9)   # hyperextension


def test_spread_is_positive_away_from_the_middle_finger() -> None:
    m = measure_pose(hand(spread={1: 10.0, 2: 4.0, 3: -12.0, 4: -20.0}))
    np.testing.assert_allclose(m.spread[1:], [10, 4, 12, 20], atol=1e-9)
    bent = measure_pose(hand(flex={1: (30.0, 0.0, 0.0)}, spread={1: 10.0}))
    assert bent.flexion[1, 0] == pytest.approx(30) and bent.spread[1] == pytest.approx(10)


def test_a_right_hand_reads_as_its_mirror_image() -> None:
    left = hand(flex={1: (30.0, 50.0, 20.0)}, spread={4: -15.0})
    right = left * np.array([1.0, 1.0, -1.0])
    a, b = measure_pose(left), measure_pose(right, is_right=True)
    np.testing.assert_allclose(b.flexion, a.flexion, atol=1e-9)
    np.testing.assert_allclose(b.spread, a.spread, atol=1e-9)


def test_bone_lengths_in_bone_units_or_millimetres() -> None:
    m = measure_pose(hand())
    assert m.length_unit == "bone units"
    np.testing.assert_allclose(m.bone_lengths[1, 1:], _LENGTHS)
    assert m.bone_lengths[1, 0] == pytest.approx(np.linalg.norm(hand()[8] - hand()[0]))
    mm = measure_pose(hand(), mm_per_unit=25.0)
    assert mm.length_unit == "mm"
    np.testing.assert_allclose(mm.bone_lengths, 25.0 * m.bone_lengths)


def test_angles_outside_the_human_range_are_flagged_with_their_source() -> None:
    bent = measure_pose(hand(flex={1: (0.0, 130.0, 0.0), 4: (0.0, -30.0, 0.0)}))
    found = {(w.finger, w.what): w for w in bent.implausible()}
    assert set(found) == {(1, "PIP"), (4, "PIP")}
    assert found[(1, "PIP")].range.hi == 110 and "Lin" in found[(1, "PIP")].range.source
    assert "index PIP 130°" in str(found[(1, "PIP")])
    assert measure_pose(hand(flex={1: (0.0, 112.0, 0.0)})).implausible() == []  # tolerance
    wide = measure_pose(hand(spread={1: 30.0})).implausible()
    assert [(w.finger, w.what) for w in wide] == [(1, "spread")]


def test_synthetic_hands_read_their_known_joint_angles() -> None:
    """The renderer bends the PIP and DIP about one axis and the thumb's MCP and IP about one
    axis: those read exactly; MCP flexion within a few degrees (palm plane from keypoints)."""
    rng = np.random.default_rng(0)
    _, angles = kinematics.sample_pose(rng, 300)
    kp = kinematics.forward_kinematics(angles, kinematics.sample_shape(rng, 300)).keypoints
    truth = np.degrees(angles)
    m = measure_pose(kp)
    np.testing.assert_allclose(m.flexion[:, 1:, 1:], truth[:, 1:, 2:], atol=1e-4)
    np.testing.assert_allclose(m.flexion[:, 0, 1:], truth[:, 0, 2:], atol=1e-4)
    assert np.abs(m.flexion[:, 1:, 0] - truth[:, 1:, 0]).max() < 5


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), scale=st.floats(0.01, 100))
def test_angles_do_not_depend_on_rotation_translation_or_scale(seed: int, scale: float) -> None:
    rng = np.random.default_rng(seed)
    kp = hand(flex={f: tuple(rng.uniform(-10, 80, 3)) for f in range(1, 5)},
              spread={f: rng.uniform(-15, 15) for f in range(1, 5)})
    moved = scale * kp @ random_rotations(1, rng)[0] + rng.normal(size=3)
    a, b = measure_pose(kp), measure_pose(moved)
    np.testing.assert_allclose(b.flexion, a.flexion, atol=1e-6)
    np.testing.assert_allclose(b.spread, a.spread, atol=1e-6)
    np.testing.assert_allclose(b.bone_lengths, scale * a.bone_lengths, rtol=1e-9)


def test_a_batch_reads_as_its_hands_one_by_one_and_bad_shapes_are_refused() -> None:
    hands = np.stack([hand(), hand(flex={2: (10.0, 20.0, 30.0)})])
    batch = measure_pose(hands)
    assert batch.flexion.shape == (2, 5, 3) and batch.bone_lengths.shape == (2, 5, 4)
    np.testing.assert_allclose(batch.flexion[1], measure_pose(hands[1]).flexion)
    with pytest.raises(ValueError, match="one hand"):
        batch.implausible()
    with pytest.raises(ValueError, match=r"\(\.\.\., 21, 3\)"):
        measure_pose(np.zeros((20, 3)))
