"""A sequence of 21-keypoint hand poses as a BVH skeleton animation (Blender, MotionBuilder...).

Skeleton: ROOT palm (position and rotation channels), then per finger JOINT {finger}_mcp →
{finger}_pip → {finger}_dip, whose End Site is the fingertip; joints are named as in this
project's order (handlatent.skeleton.KEYPOINT_NAMES). Rotations are Euler angles in degrees,
channels "Zrotation Xrotation Yrotation" (the local rotation is Rz · Rx · Ry acting on column
vectors, as BVH readers compose them).

Axes and units: BVH is Y-up, so the camera frame (x right, y down, z away from the camera) is
turned half a turn about x: BVH (x, y, z) = (x, −y, −z), the camera looking along −z as in
OpenGL. Lengths are in centimetres for a mean adult hand (the middle MCP-PIP bone, one bone unit
of the decoded poses, is `unit_cm` long).

Rest pose and motion: a BVH skeleton has fixed bone lengths, while decoded poses may stretch a
bone a little from frame to frame. The rest pose (the OFFSETs) is the first frame with every bone
at its mean length over the sequence. Each frame's root rotation is the best fit (least squares,
scipy's `Rotation.align_vectors`) of the rest palm (palm to the five MCPs) onto the frame's palm,
and each finger joint's rotation turns its bone onto the frame's bone direction exactly, with no
twist about the bone beyond its parent's. So every bone points exactly as in the frame, and a
joint's position differs from the frame's only by how much the bones before it differ from their
mean length and the palm from a rigid one: zero for a sequence of rigid hands.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
from scipy.spatial.transform import Rotation

from handlatent.explorer.files import write_atomically
from handlatent.skeleton import FINGER_CHAINS, KEYPOINT_NAMES, NUM_KEYPOINTS
from handlatent.synth.kinematics import BONE_LENGTHS

__all__ = ["CAMERA_TO_BVH", "UNIT_CM", "bvh_text", "write_bvh"]

CAMERA_TO_BVH = np.diag([1.0, -1.0, -1.0])  # half a turn about x: y up, looking along -z
UNIT_CM = 100 * float(BONE_LENGTHS[2, 0])  # the mean adult middle MCP-PIP bone (3.9 cm)
EULER = "ZXY"  # intrinsic: R = Rz · Rx · Ry; written in this channel order
ROOT_CHANNELS = "Xposition Yposition Zposition Zrotation Xrotation Yrotation"
JOINT_CHANNELS = "Zrotation Xrotation Yrotation"
CHAINS = FINGER_CHAINS.tolist()  # per finger, keypoint indices from the MCP to the tip
MCPS = [chain[0] for chain in CHAINS]


def _rest_pose(frames: np.ndarray) -> np.ndarray:
    """(21, 3) the first frame with each bone (palm → MCP, then along each finger) at its mean
    length over the frames."""
    rest = np.empty((NUM_KEYPOINTS, 3))
    rest[0] = frames[0, 0]
    for chain in CHAINS:
        parent = 0
        for joint in chain:
            bones = frames[:, joint] - frames[:, parent]
            direction = bones[0] / max(np.linalg.norm(bones[0]), 1e-12)
            rest[joint] = rest[parent] + direction * np.linalg.norm(bones, axis=1).mean()
            parent = joint
    return rest


def _shortest_rotations(a: np.ndarray, b: np.ndarray) -> Rotation:
    """The rotations (n) of least angle turning directions a (n, 3) onto b (n, 3)."""
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    axis = np.cross(a, b)
    sin, cos = np.linalg.norm(axis, axis=1), np.einsum("ij,ij->i", a, b)
    opposite = sin < 1e-9
    # for opposite directions any axis perpendicular to a will do
    other = np.where(np.abs(a[:, :1]) < 0.9, [[1.0, 0.0, 0.0]], [[0.0, 1.0, 0.0]])
    axis = np.where(opposite[:, None], np.cross(a, other), axis)
    axis /= np.maximum(np.linalg.norm(axis, axis=1, keepdims=True), 1e-300)
    return Rotation.from_rotvec(axis * np.arctan2(sin, cos)[:, None])


def _motion(frames: np.ndarray, rest: np.ndarray) -> tuple[np.ndarray, dict[int, np.ndarray]]:
    """(root rotation (n, 3, 3) world, local rotation (n, 3, 3) per finger joint)."""
    n = len(frames)
    root = [Rotation.align_vectors(frames[t, MCPS] - frames[t, 0], rest[MCPS] - rest[0])[0]
            for t in range(n)]
    root_world = Rotation.concatenate(root)
    local: dict[int, np.ndarray] = {}
    for chain in CHAINS:
        parent_world = root_world
        for joint, child in zip(chain[:-1], chain[1:]):
            now = parent_world.apply(np.tile(rest[child] - rest[joint], (n, 1)))
            world = _shortest_rotations(now, frames[:, child] - frames[:, joint]) * parent_world
            local[joint] = (parent_world.inv() * world).as_matrix()
            parent_world = world
    return root_world.as_matrix(), local


def _euler(matrices: np.ndarray) -> np.ndarray:
    """(n, 3) degrees in channel order Z, X, Y of rotations (n, 3, 3). At gimbal lock scipy
    warns and sets the last angle to 0; the angles still give the same rotation."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return Rotation.from_matrix(matrices).as_euler(EULER, degrees=True)


def bvh_text(frames: np.ndarray, fps: float, unit_cm: float = UNIT_CM) -> str:
    """The BVH file of poses `frames` (n, 21, 3): project order, camera frame, bone units."""
    frames = np.asarray(frames, np.float64)
    if frames.ndim != 3 or frames.shape[1:] != (NUM_KEYPOINTS, 3) or len(frames) < 1:
        raise ValueError(f"expected poses of shape (n >= 1, 21, 3), got {frames.shape}")
    if not np.isfinite(frames).all():
        raise ValueError("the poses contain NaN or inf")
    if not fps > 0:
        raise ValueError(f"fps must be > 0, got {fps}")
    frames = frames @ CAMERA_TO_BVH.T * unit_cm
    rest = _rest_pose(frames)
    root, local = _motion(frames, rest)

    def offset(vector: np.ndarray) -> str:
        return "OFFSET " + " ".join(f"{v:.6f}" for v in vector)

    lines = ["HIERARCHY", f"ROOT {KEYPOINT_NAMES[0]}", "{", f"\t{offset(np.zeros(3))}",
             f"\tCHANNELS 6 {ROOT_CHANNELS}"]
    columns = [frames[:, 0], _euler(root)]
    for chain in CHAINS:
        depth, parent = 1, 0
        for joint in chain[:-1]:
            tab = "\t" * depth
            lines += [f"{tab}JOINT {KEYPOINT_NAMES[joint]}", f"{tab}{{",
                      f"{tab}\t{offset(rest[joint] - rest[parent])}",
                      f"{tab}\tCHANNELS 3 {JOINT_CHANNELS}"]
            columns.append(_euler(local[joint]))
            depth, parent = depth + 1, joint
        tab = "\t" * depth
        lines += [f"{tab}End Site", f"{tab}{{", f"{tab}\t{offset(rest[chain[-1]] - rest[parent])}",
                  f"{tab}}}"]
        lines += [f"{chr(9) * d}}}" for d in range(depth - 1, 0, -1)]
    lines += ["}", "MOTION", f"Frames: {len(frames)}", f"Frame Time: {1.0 / fps:.8f}"]
    motion = np.concatenate(columns, axis=1)
    lines += [" ".join(f"{v:.6f}" for v in row) for row in motion]
    return "\n".join(lines) + "\n"


def write_bvh(path: str | os.PathLike, frames: np.ndarray, fps: float,
              unit_cm: float = UNIT_CM) -> Path:
    """Write `bvh_text(frames, fps)` to `path` atomically; ValueError for a missing folder."""
    path = Path(path)
    if not path.parent.is_dir():
        raise ValueError(f"{path}: folder {path.parent} does not exist")
    text = bvh_text(frames, fps, unit_cm)
    return write_atomically(path, lambda tmp: tmp.write_text(text, encoding="ascii"))
