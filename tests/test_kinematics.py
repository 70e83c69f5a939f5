"""Hand kinematics of the synthetic generator: sizes, limits, templates, handedness."""

import numpy as np
import pytest

from handlatent.synth import kinematics as kin

TIPS = [5, 9, 13, 17]  # index..little fingertips


def _sample(n=2000, seed=0):
    rng = np.random.default_rng(seed)
    template, angles = kin.sample_pose(rng, n)
    shape = kin.sample_shape(rng, n)
    return template, angles, shape, kin.forward_kinematics(angles, shape)


def _chain_length(kp, ids):
    return sum(np.linalg.norm(kp[:, a] - kp[:, b], axis=-1) for a, b in zip(ids[:-1], ids[1:]))


def test_middle_finger_length_adult_range():
    _, _, _, g = _sample()
    length = _chain_length(g.keypoints, [12, 11, 10, 9])
    assert 0.077 < length.mean() < 0.083  # about 8 cm MCP -> tip
    assert length.min() > 0.062 and length.max() < 0.10
    hand = np.linalg.norm(g.keypoints[:, 12] - g.wrist, axis=-1) + length
    assert 0.13 < hand.min() and hand.max() < 0.21  # wrist -> middle tip, adult hands


def test_angles_within_limits_and_dip_coupled():
    _, angles, _, _ = _sample()
    lim = np.deg2rad(kin.JOINT_LIMITS_DEG)
    assert (angles >= lim[..., 0] - 1e-12).all() and (angles <= lim[..., 1] + 1e-12).all()
    pip, dip = angles[:, 1:, 2].ravel(), angles[:, 1:, 3].ravel()
    inner = (pip > np.deg2rad(15)) & (pip < np.deg2rad(100))
    ratio = np.median(dip[inner] / pip[inner])
    assert 0.55 < ratio < 0.78
    assert np.corrcoef(pip, dip)[0, 1] > 0.9


def test_poses_are_not_uniform_noise():
    template, angles, _, _ = _sample()
    assert set(np.unique(template)) == set(range(len(kin.TEMPLATE_NAMES)))
    assert len(kin.TEMPLATE_NAMES) >= 13
    # fingers of one hand are correlated (templates), unlike independent uniform angles
    mcp = angles[:, 1:, 0]
    assert np.corrcoef(mcp[:, 1], mcp[:, 2])[0, 1] > 0.6  # middle and ring


def test_templates_distinguishable():
    _, _, _, g = _sample()
    template, _, _, _ = _sample()
    t = {name: i for i, name in enumerate(kin.TEMPLATE_NAMES)}
    kp = g.keypoints
    tip_dist = np.linalg.norm(kp[:, TIPS] - kp[:, :1], axis=-1).mean(1)
    fist, open_ = tip_dist[template == t["fist"]], tip_dist[template == t["open"]]
    assert fist.mean() < open_.mean() - 0.04
    assert np.median(fist) < np.median(open_)

    m = kin.mean_shape(1)
    pose = {name: kin.forward_kinematics(kin.template_pose(name), m).keypoints[0]
            for name in kin.TEMPLATE_NAMES}
    for name in ("pinch", "ok"):  # thumb tip meets the index tip
        assert np.linalg.norm(pose[name][1] - pose[name][5]) < 0.02, name
    d = lambda p: np.linalg.norm(p[TIPS] - p[0], axis=-1)  # noqa: E731
    assert (d(pose["fist"]) < 0.06).all() and (d(pose["open"]) > 0.09).all()
    assert d(pose["point"])[0] > 0.1 and (d(pose["point"])[1:] < 0.06).all()


def test_palm_root_is_midpoint_and_bones_match_lengths():
    _, _, shape, g = _sample(200)
    kp = g.keypoints
    np.testing.assert_allclose(kp[:, 0], 0.5 * (g.wrist + kp[:, 12]), atol=1e-12)
    mcp_pip = np.linalg.norm(kp[:, 12] - kp[:, 11], axis=-1)
    np.testing.assert_allclose(mcp_pip, kin.BONE_LENGTHS[2, 0] * shape.size * shape.bones[:, 2, 0])


def test_batched_equals_single_and_capsules():
    _, angles, shape, g = _sample(20)
    one = kin.forward_kinematics(angles[7:8], shape[7])
    np.testing.assert_allclose(one.keypoints[0], g.keypoints[7], atol=1e-12)
    C = kin.num_capsules()
    assert g.p0.shape == g.p1.shape == (20, C, 3) and g.radius.shape == (20, C, 2)
    assert g.part.shape == (C,) and (g.radius > 0.0015).all() and (g.radius < 0.03).all()
    assert set(np.unique(g.part)) == set(range(len(kin.PART_NAMES)))
    assert 8 <= (g.part == kin.PART_PALM).sum() <= 12


@pytest.mark.parametrize("name", ["fist", "claw", "cylinder"])
def test_local_frame_is_a_left_hand(name):
    """For a left hand, (radial x distal) points to the back of the hand: the fingers flex the
    other way (palmar)."""
    kp = kin.forward_kinematics(kin.template_pose(name), kin.mean_shape(1)).keypoints[0]
    radial = kp[8] - kp[20]  # little MCP -> index MCP
    distal = kp[12] - kp[0]
    flexed = kp[TIPS].mean(0) - kp[0]
    assert np.dot(np.cross(radial, distal), flexed) < 0
