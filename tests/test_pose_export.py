"""Poses out: a decoded pose as JSON / CSV in any joint order (handlatent.pose_export), and a
walk as BVH (handlatent.bvh), parsed back here by a small independent BVH reader whose forward
kinematics must give the walk's joints."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch

from handlatent import joint_orders as jo
from handlatent.bvh import CAMERA_TO_BVH, UNIT_CM, bvh_text
from handlatent.explorer import Session
from handlatent.model import ModelConfig, build_model
from handlatent.pose_export import write_pose
from handlatent.rotations import random_rotations
from handlatent.skeleton import KEYPOINT_NAMES, compose

S = 64


# ------------------------------------------------------------------- a small BVH reader


def _axis_rotation(axis: str, degrees: float) -> np.ndarray:
    c, s = np.cos(np.radians(degrees)), np.sin(np.radians(degrees))
    i, j = {"X": (1, 2), "Y": (2, 0), "Z": (0, 1)}[axis]
    r = np.eye(3)
    r[i, i], r[i, j], r[j, i], r[j, j] = c, -s, s, c
    return r


def parse_bvh(text: str) -> tuple[dict[str, np.ndarray], float]:
    """Joint (and End Site: '<parent>.end') positions (n, 3) per name, and the frame time, by
    forward kinematics: position = parent position + parent rotation · (offset + translation
    channels), rotation = parent rotation · the channels' rotations in the order listed."""
    tokens = text.split()
    joints: list[dict] = []  # name, parent index, offset, channels
    stack: list[int] = []
    i = 0
    assert tokens[0] == "HIERARCHY"
    i = 1
    while tokens[i] != "MOTION":
        t = tokens[i]
        if t in ("ROOT", "JOINT"):
            joints.append({"name": tokens[i + 1], "parent": stack[-1] if stack else -1,
                           "channels": []})
            i += 2
        elif t == "End":
            joints.append({"name": joints[stack[-1]]["name"] + ".end", "parent": stack[-1],
                           "channels": []})
            i += 2
        elif t == "{":
            stack.append(len(joints) - 1)
            i += 1
        elif t == "}":
            stack.pop()
            i += 1
        elif t == "OFFSET":
            joints[stack[-1]]["offset"] = np.array(tokens[i + 1:i + 4], float)
            i += 4
        elif t == "CHANNELS":
            n = int(tokens[i + 1])
            joints[stack[-1]]["channels"] = tokens[i + 2:i + 2 + n]
            i += 2 + n
        else:
            raise AssertionError(f"unexpected token {t!r}")
    assert not stack
    assert tokens[i + 1] == "Frames:" and tokens[i + 3:i + 5] == ["Frame", "Time:"]
    n_frames, frame_time = int(tokens[i + 2]), float(tokens[i + 5])
    values = np.array(tokens[i + 6:], float)
    width = sum(len(j["channels"]) for j in joints)
    assert values.size == n_frames * width
    values = values.reshape(n_frames, width)
    out = {j["name"]: np.zeros((n_frames, 3)) for j in joints}
    for f in range(n_frames):
        col, world = 0, []
        for j in joints:
            move, turn = j["offset"].copy(), np.eye(3)
            for channel in j["channels"]:
                v = values[f, col]
                col += 1
                if channel.endswith("position"):
                    move["XYZ".index(channel[0])] += v
                else:
                    turn = turn @ _axis_rotation(channel[0], v)
            if j["parent"] < 0:
                pos, rot = move, turn
            else:
                parent_pos, parent_rot = world[j["parent"]]
                pos, rot = parent_pos + parent_rot @ move, parent_rot @ turn
            world.append((pos, rot))
            out[j["name"]][f] = pos
    return out, frame_time


def joints_from_bvh(text: str) -> np.ndarray:
    """(n, 21, 3) the parsed file's joints in the project's order, camera frame, bone units."""
    parsed, _ = parse_bvh(text)
    names = dict(parsed)
    for f in ("thumb", "index", "middle", "ring", "little"):
        names[f"{f}_tip"] = parsed[f"{f}_dip.end"]
    bvh = np.stack([names[n] for n in KEYPOINT_NAMES], 1)
    return bvh / UNIT_CM @ CAMERA_TO_BVH  # CAMERA_TO_BVH is its own inverse


# ------------------------------------------------------------------------------- tests


def rigid_sequence(n: int = 6) -> np.ndarray:
    """A hand with fixed bone lengths: turned as a whole, fingers bending at every joint."""
    rng = np.random.default_rng(3)
    cpose = np.zeros((21, 3))
    for f, x in enumerate((-1.2, -0.6, 0.0, 0.6, 1.1)):
        cpose[4 * f + 4] = [x, -2.4 if f else -0.8, 0.1 * f]
    frames = []
    for t in range(n):
        pose = cpose.copy()
        for f in range(5):
            direction = np.array([0.1 * (f - 2), -1.0, 0.0])
            for j in (3, 2, 1):  # PIP, DIP, tip: each bone bends further with t
                bend = 0.25 * t * (4 - j) / 3
                turn = np.array([[1, 0, 0], [0, np.cos(bend), -np.sin(bend)],
                                 [0, np.sin(bend), np.cos(bend)]])
                direction = turn @ direction
                pose[4 * f + j] = pose[4 * f + j + 1] + direction / np.linalg.norm(direction)
        frames.append(pose @ random_rotations(1, rng)[0] + rng.normal(0, 0.3, 3))
    return np.array(frames)


def test_bvh_of_rigid_hands_gives_their_joints_back():
    frames = rigid_sequence()
    text = bvh_text(frames, fps=24)
    assert text.startswith("HIERARCHY\nROOT palm\n") and "\nMOTION\nFrames: 6\n" in text
    _, frame_time = parse_bvh(text)
    assert frame_time == pytest.approx(1 / 24)
    np.testing.assert_allclose(joints_from_bvh(text), frames, atol=1e-4)


@pytest.fixture(scope="module")
def session():
    torch.manual_seed(0)
    s = Session(build_model(ModelConfig(image_size=S)).eval(), asynchronous=False)
    rng = np.random.default_rng(1)
    s.walk.set_endpoint("A", rng.standard_normal(s.layout.total))
    s.walk.set_endpoint("B", rng.standard_normal(s.layout.total))
    yield s
    s.close()


def test_walk_as_bvh_parsed_back_matches_the_walks_joints(session, tmp_path):
    path = session.walk.export_bvh(tmp_path / "walk.bvh", 9, fps=12)
    assert [p.name for p in tmp_path.iterdir()] == ["walk.bvh"]
    walk = session.runner.decode_pose(session.walk.frames(9))["xyz"].astype(np.float64)
    got = joints_from_bvh(path.read_text())
    assert got.shape == (9, 21, 3)
    np.testing.assert_allclose(got[:, 0], walk[:, 0], atol=1e-5)  # the palm: exact
    for f in range(5):
        parent = 0
        for joint in (4 * f + 4, 4 * f + 3, 4 * f + 2, 4 * f + 1):  # MCP to tip
            bone = walk[:, joint] - walk[:, parent]
            length = np.linalg.norm(bone, axis=1)
            # every bone has its mean length over the walk (a BVH skeleton is rigid) ...
            np.testing.assert_allclose(np.linalg.norm(got[:, joint] - got[:, parent], axis=1),
                                       length.mean(), rtol=1e-5)
            if parent:  # ... and points exactly as in the walk: the joint is off from the
                # walk's by its parent's error plus the bone's length change, nothing else
                expected = (got[:, parent] - walk[:, parent]) + \
                    (length.mean() - length)[:, None] * bone / length[:, None]
                np.testing.assert_allclose(got[:, joint] - walk[:, joint], expected, atol=1e-4)
            parent = joint
    with pytest.raises(ValueError, match=r"suffix \.bvh"):
        session.walk.export_bvh(tmp_path / "walk.gif", 3)
    with pytest.raises(ValueError, match="does not exist"):
        session.walk.export_bvh(tmp_path / "no" / "walk.bvh", 3)


@pytest.mark.parametrize("order", ["handlatent", "stb", "mediapipe"])
def test_pose_json_and_csv_in_a_chosen_order(session, tmp_path, order):
    decoded = session.decode_now()
    json_path = write_pose(tmp_path / "pose.json", decoded, S, order)
    csv_path = write_pose(tmp_path / "pose.csv", decoded, S, order)
    record = json.loads(json_path.read_text())
    names = list(jo.joint_order(order).names)
    assert record["keypoints"] == names
    xyz, cpose = np.array(record["xyz"]), np.array(record["cpose"])
    np.testing.assert_allclose(xyz, jo.to_order(decoded.xyz, order), atol=1e-6)
    np.testing.assert_allclose(cpose, jo.to_order(decoded.cpose, order), atol=1e-6)
    np.testing.assert_allclose(xyz, compose(cpose, np.array(record["viewpoint"])), atol=1e-4)
    # 2D: the nominal camera's projection, the hand framed inside the decoded image
    k, uv = np.array(record["camera"]["K"]), np.array(record["uv"])
    placed = xyz * record["camera"]["bone_length_m"] + [0, 0, record["camera"]["palm_depth_m"]]
    projected = placed @ k.T
    np.testing.assert_allclose(uv, projected[:, :2] / projected[:, 2:], atol=1e-3)
    assert uv.min() > -0.5 and uv.max() < S - 0.5
    rows = list(csv.DictReader(csv_path.open()))
    assert [r["joint"] for r in rows] == names
    np.testing.assert_allclose([[float(r[c]) for c in "xyz"] for r in rows], xyz, atol=1e-6)
    np.testing.assert_allclose([[float(r["u"]), float(r["v"])] for r in rows], uv, atol=1e-6)


def test_pose_export_refuses_a_bad_path(session, tmp_path):
    decoded = session.decode_now()
    with pytest.raises(ValueError, match="unsupported pose format '.txt'"):
        write_pose(tmp_path / "pose.txt", decoded, S)
    with pytest.raises(ValueError, match="does not exist"):
        write_pose(tmp_path / "missing" / "pose.json", decoded, S)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("guide", ["bones", "skeleton"])
def test_a_guided_decoders_own_keypoints_and_side_are_exported(tmp_path, guide):
    torch.manual_seed(1)
    model = build_model(ModelConfig(image_size=S, decoder_guide=guide)).eval()
    if guide == "skeleton":  # its crop head says: a right hand
        with torch.no_grad():
            model.image_decoder.crop.out.bias[6] = 1.0
    with Session(model, asynchronous=False) as s:
        s.set_latent(np.random.default_rng(4).standard_normal(s.layout.total))
        decoded = s.decode_now()
        with torch.inference_mode():
            out = model.decode(torch.tensor(decoded.z[None]))
        expected = ((out["uv"][0].numpy() + 1) * S - 1) / 2  # bone_maps' frame -> pixels
        np.testing.assert_allclose(decoded.uv, expected, atol=1e-5)
        assert decoded.is_right is (True if guide == "skeleton" else None)
        record = json.loads(write_pose(tmp_path / "pose.json", decoded, S, "rhd").read_text())
    np.testing.assert_allclose(record["uv"][1:], expected[1:], atol=1e-5)  # fingers: as decoded
    np.testing.assert_allclose(record["uv"][0], 2 * expected[0] - expected[12], atol=1e-5)
    assert record["camera"] is None
    assert record["handedness"] == ("right" if decoded.is_right else "left")
    xyz = compose(np.array(record["cpose"]), np.array(record["viewpoint"]),
                  is_right=bool(decoded.is_right))
    np.testing.assert_allclose(record["xyz"], xyz, atol=1e-4)
