"""The 21-keypoint hand skeleton (RHD order) and its canonical pose / viewpoint split.

Implements docs/conventions.md sections 1-2. Points are row vectors `(..., 21, 3)`; every
function takes numpy arrays or torch tensors (differentiable), batched over leading axes.
"""

from __future__ import annotations

from typing import Union

import numpy as np
import torch

from handlatent.rotations import (Array, ArrayLike, _as_float, _cross, _like, _norm, _numpy,
                                  _transpose, _xp)

Handedness = Union[None, bool, np.ndarray, torch.Tensor]

NUM_KEYPOINTS = 21
FINGERS = ("thumb", "index", "middle", "ring", "little")
KEYPOINT_NAMES = ("palm",) + tuple(
    f"{finger}_{joint}" for finger in FINGERS for joint in ("tip", "dip", "pip", "mcp"))
# Finger f owns keypoints 4f+1 (tip) .. 4f+4 (MCP); the root belongs to none (-1).
FINGER_OF_KEYPOINT = np.array([-1] + [f for f in range(5) for _ in range(4)])
# Per finger (thumb .. little) its keypoints from the base (MCP; the thumb's CMC) to the tip.
FINGER_CHAINS = np.array([[4 * f + j for j in (4, 3, 2, 1)] for f in range(len(FINGERS))])
# (parent, child) per bone: root -> MCP -> PIP -> DIP -> tip, finger by finger.
BONES = np.array([(0 if j == 4 else 4 * f + j + 1, 4 * f + j)
                  for f in range(5) for j in (4, 3, 2, 1)])
FINGER_COLORS = ((0.90, 0.10, 0.10), (1.00, 0.60, 0.00), (0.15, 0.75, 0.15),
                 (0.15, 0.35, 0.95), (0.85, 0.15, 0.85))
BONE_COLORS = np.array(FINGER_COLORS)[FINGER_OF_KEYPOINT[BONES[:, 1]]]

# Other datasets' keypoint orders and converters: handlatent.joint_orders.

_MIDDLE_MCP, _MIDDLE_PIP, _LITTLE_MCP = 12, 11, 20


def wrist_to_palm(xyz: Array) -> Array:
    """Replace keypoint 0 (the wrist in raw RHD labels) by the palm: mid-wrist-to-middle-MCP."""
    palm = (xyz[..., 0:1, :] + xyz[..., _MIDDLE_MCP:_MIDDLE_MCP + 1, :]) / 2
    return _xp(xyz).concatenate([palm, xyz[..., 1:, :]], -2)


def palm_to_wrist(xyz: Array) -> Array:
    """Inverse of `wrist_to_palm`: keypoint 0 (the palm) replaced by the wrist,
    2 · palm − middle MCP."""
    wrist = 2 * xyz[..., 0:1, :] - xyz[..., _MIDDLE_MCP:_MIDDLE_MCP + 1, :]
    return _xp(xyz).concatenate([wrist, xyz[..., 1:, :]], -2)


def root_relative(xyz: Array) -> Array:
    """Keypoints relative to the root (keypoint 0)."""
    return xyz - xyz[..., 0:1, :]


def bone_scale(xyz: Array) -> Array:
    """Length of the middle MCP-PIP bone, shape `(...)`: the hand's unit of length."""
    return _norm(xyz[..., _MIDDLE_MCP, :] - xyz[..., _MIDDLE_PIP, :])


def flip_if_right(points: Array, is_right: Handedness) -> Array:
    """Negate z of the hands flagged right (`is_right` of shape `(...)` or a bool; None: none)."""
    if is_right is None:
        return points
    sign = 1 - 2 * _like(_numpy(is_right), points)
    return _xp(points).concatenate([points[..., :2], points[..., 2:] * sign[..., None, None]], -1)


def _require(ok: ArrayLike, problem: str) -> None:
    """Raise ValueError naming `problem` and the first offending hand unless `ok` holds for all."""
    ok = _numpy(ok)
    if not ok.all():
        bad = np.argwhere(~ok)
        first = tuple(bad[0].tolist())
        where = f" ({len(bad)} of {ok.size} hands, first at batch index {first})"
        raise ValueError(f"cannot canonicalize: {problem}" + (where if ok.ndim else ""))


def canonicalize(xyz: Array, is_right: Handedness = None) -> tuple[Array, Array, Array]:
    """Split hands `(..., 21, 3)` (root = palm) into canonical pose, viewpoint and scale.

    Returns `cpose (..., 21, 3)` (a left hand in the canonical frame, in bone-scale units),
    `viewpoint (..., 3, 3)` (a rotation) and `scale (...)`; `compose` inverts it. Raises
    ValueError for non-finite or degenerate hands instead of returning NaN.
    """
    if tuple(xyz.shape[-2:]) != (NUM_KEYPOINTS, 3):
        raise ValueError(f"expected keypoints of shape (..., 21, 3), got {tuple(xyz.shape)}")
    xyz = _as_float(xyz)
    xp = _xp(xyz)
    _require(xp.isfinite(xyz).all(-1).all(-1), "keypoints contain NaN or inf")
    tol = max(1e-6, 100 * float(xp.finfo(xyz.dtype).eps))
    rel = root_relative(xyz)
    scale = bone_scale(rel)
    _require(scale > tol * xp.amax(_norm(rel), -1),
             "middle MCP-PIP bone (keypoints 11-12) has zero length")
    normed = rel / scale[..., None, None]
    min_length = tol * xp.amax(_norm(normed), -1)
    y_length = _norm(normed[..., _MIDDLE_MCP, :])
    _require(y_length > min_length, "middle MCP (keypoint 12) coincides with the root")
    y_axis = -normed[..., _MIDDLE_MCP, :] / y_length[..., None]
    little = normed[..., _LITTLE_MCP, :]
    x_axis = little - (little * y_axis).sum(-1)[..., None] * y_axis
    x_length = _norm(x_axis)
    _require(x_length > min_length, "little MCP (keypoint 20) is on the root-middle MCP line")
    x_axis = x_axis / x_length[..., None]
    rc = xp.stack([x_axis, y_axis, _cross(x_axis, y_axis)], -1)  # columns: the canonical axes
    return flip_if_right(normed @ rc, is_right), _transpose(rc), scale


def compose(cpose: Array, viewpoint: Array, scale: ArrayLike = 1.0,
            is_right: Handedness = None) -> Array:
    """Root-relative hands `(..., 21, 3)` from canonical pose, viewpoint and scale.

    Inverse of `canonicalize`; `scale` is a number or shape `(...)`.
    """
    normed = flip_if_right(cpose, is_right) @ viewpoint
    if isinstance(scale, (int, float)) and scale == 1:  # bone units, as the model decodes
        return normed
    return normed * _like(scale, normed)[..., None, None]
