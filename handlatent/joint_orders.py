"""The 21-keypoint hand orders in use, named once, and converters between them.

Every order is a tuple of joint names in the vocabulary of this project's order
(`handlatent.skeleton.KEYPOINT_NAMES`: "palm", "thumb_tip" ... "little_mcp"; "wrist" for the
orders rooted at the wrist). The thumb's joints keep the project's names whatever the anatomy
calls them: thumb_mcp is the carpometacarpal joint (MediaPipe's THUMB_CMC), thumb_pip the
metacarpophalangeal (THUMB_MCP), thumb_dip the interphalangeal (THUMB_IP).

- ``handlatent``: this project's order (RHD's, with the palm as keypoint 0): palm, then each
  finger thumb .. little from the tip to the MCP.
- ``rhd``: the Rendered Hand Pose dataset's labels as published: the same, with the wrist as 0.
- ``stb``: the Stereo Hand Pose Benchmark's: palm, then little .. thumb, each from MCP to tip.
- ``freihand`` (also ``mano``, ``mediapipe``, ``openpose``): FreiHAND's and MANO's order, which
  MediaPipe Hands and OpenPose's hand model share: wrist, then thumb .. little, each from the
  base to the tip.

The palm is the midpoint of the wrist and the middle finger's MCP (docs/data-format.md), so a
wrist-rooted order converts exactly both ways: wrist = 2 · palm − middle_mcp. Converters take
numpy arrays or torch tensors `(..., 21, D)`; for D = 3 (3D points) the root conversion is
exact, for 2D pixels it is the same linear rule (exact for an orthographic view, a close
approximation under perspective: project converted 3D points where a camera is known).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from handlatent.rotations import Array
from handlatent.skeleton import (BONES, FINGERS, KEYPOINT_NAMES, NUM_KEYPOINTS, palm_to_wrist,
                                 wrist_to_palm)

__all__ = ["JointOrder", "ORDERS", "ALIASES", "PROJECT", "order_names", "joint_order",
           "to_order", "from_order", "convert", "bones", "STB_TO_RHD", "RHD_TO_MANO",
           "MANO_TO_RHD", "from_stb"]

_BASE_TO_TIP = ("mcp", "pip", "dip", "tip")


@dataclass(frozen=True)
class JointOrder:
    """One keypoint order: its name, a line on where it is used, and its joint names."""

    name: str
    description: str
    names: tuple[str, ...]

    @property
    def root(self) -> str:
        """"palm" or "wrist": what keypoint 0 is."""
        return self.names[0]

    @property
    def from_project(self) -> np.ndarray:
        """Index map (21,): `order = project_with_this_root[..., from_project, :]`."""
        return np.array([0 if n in ("palm", "wrist") else KEYPOINT_NAMES.index(n)
                         for n in self.names])

    @property
    def to_project(self) -> np.ndarray:
        """Index map (21,): `project_with_this_root = order[..., to_project, :]`."""
        return np.argsort(self.from_project)


def _finger_major(fingers: tuple[str, ...], joints: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(f"{finger}_{joint}" for finger in fingers for joint in joints)


PROJECT = JointOrder("handlatent", "this project's order (RHD's, palm first)", KEYPOINT_NAMES)
ORDERS: dict[str, JointOrder] = {order.name: order for order in (
    PROJECT,
    JointOrder("rhd", "Rendered Hand Pose dataset labels as published (wrist first)",
               ("wrist",) + KEYPOINT_NAMES[1:]),
    JointOrder("stb", "Stereo Hand Pose Benchmark (palm first, little to thumb, base to tip)",
               ("palm",) + _finger_major(FINGERS[::-1], _BASE_TO_TIP)),
    JointOrder("freihand", "FreiHAND and MANO; MediaPipe Hands and OpenPose share it (wrist "
               "first, thumb to little, base to tip)",
               ("wrist",) + _finger_major(FINGERS, _BASE_TO_TIP)),
)}
ALIASES = {"mano": "freihand", "mediapipe": "freihand", "openpose": "freihand"}

# Index maps between the project's order and the others (`new = old[..., MAP, :]`).
STB_TO_RHD = ORDERS["stb"].to_project
RHD_TO_MANO = ORDERS["freihand"].from_project
MANO_TO_RHD = ORDERS["freihand"].to_project


def order_names() -> list[str]:
    """Every name `joint_order` accepts: the orders, then their aliases."""
    return list(ORDERS) + list(ALIASES)


def joint_order(name: str | JointOrder) -> JointOrder:
    """The order called `name` (an alias allowed); ValueError naming the known ones."""
    if isinstance(name, JointOrder):
        return name
    key = str(name).strip().lower()
    key = ALIASES.get(key, key)
    if key not in ORDERS:
        raise ValueError(f"unknown joint order {name!r} (known: {', '.join(order_names())})")
    return ORDERS[key]


def _check(points: Array) -> None:
    if points.ndim < 2 or points.shape[-2] != NUM_KEYPOINTS:
        raise ValueError(f"expected keypoints of shape (..., 21, D), got {tuple(points.shape)}")


def to_order(points: Array, order: str | JointOrder) -> Array:
    """Keypoints `(..., 21, D)` in this project's order (palm first) → in `order`."""
    order = joint_order(order)
    _check(points)
    if order.root == "wrist":
        points = palm_to_wrist(points)
    return points[..., order.from_project, :]


def from_order(points: Array, order: str | JointOrder) -> Array:
    """Keypoints `(..., 21, D)` in `order` → in this project's order (palm first)."""
    order = joint_order(order)
    _check(points)
    points = points[..., order.to_project, :]
    return wrist_to_palm(points) if order.root == "wrist" else points


def convert(points: Array, source: str | JointOrder, target: str | JointOrder) -> Array:
    """Keypoints `(..., 21, D)` from one order to another."""
    return to_order(from_order(points, source), target)


def bones(order: str | JointOrder) -> np.ndarray:
    """(20, 2) (parent, child) keypoint indices of the skeleton's bones in `order`."""
    position = joint_order(order).to_project  # project index -> index in `order`
    return position[BONES]


def from_stb(xyz_mm: Array) -> Array:
    """STB joints (palm first, millimetres) to this project's order in metres."""
    return from_order(xyz_mm, "stb") / 1000
