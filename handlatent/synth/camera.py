"""Viewpoints, handedness, perspective placement and the hand crop.

Camera frame: OpenCV (x right, y down, z forward), metres. A hand built by
:mod:`handlatent.synth.kinematics` (a left hand in its hand-local frame) is placed as::

    X_cam = R @ (M @ X_local - M @ palm_local) + t,    M = diag(-1, 1, 1) for right hands

so right hands are mirror images of left ones (then ``canonicalize(xyz, is_right=True)`` gives a
left-hand CPose, as for real right hands). ``t`` puts the palm 0.3-0.7 m in front of the camera.

The crop follows hand-pose papers (docs/conventions.md §6): a square box around the projected 2-D
keypoints with a margin, scaled by a random factor in [1, 1.2] and shifted a little, realised by
choosing the pinhole intrinsics ``K`` of the S×S output (exactly what cropping and resizing a
larger image would give). Pixel convention: OpenCV, pixel ``(i, j)`` has its centre at
``(u, v) = (j, i)``, so the image spans ``-0.5 <= u, v < S - 0.5``.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

__all__ = [
    "Viewpoint",
    "sample_viewpoint",
    "look_rotation",
    "place_points",
    "crop_intrinsics",
    "project",
    "MIRROR",
    "CROP_MARGIN",
]

MIRROR = np.array([-1.0, 1.0, 1.0])
CROP_MARGIN = 1.3  # box side = margin * scale * max(width, height) of the 2-D keypoints


@dataclass
class Viewpoint:
    """Everything geometric about how the hand is seen (all arrays (N, ...))."""

    rotation: np.ndarray  # (N, 3, 3) camera-from-hand rotation (applied after the mirror)
    is_right: np.ndarray  # (N,) bool
    translation: np.ndarray  # (N, 3) palm position in the camera frame, metres
    crop_scale: np.ndarray  # (N,) in [1, 1.2]
    crop_shift: np.ndarray  # (N, 2) box-centre shift in units of the box side

    def __len__(self) -> int:
        return len(self.is_right)

    def __getitem__(self, idx) -> "Viewpoint":
        idx = np.atleast_1d(np.arange(len(self))[idx])
        return Viewpoint(**{f.name: getattr(self, f.name)[idx] for f in fields(self)})


def look_rotation(to_camera: np.ndarray, roll: np.ndarray) -> np.ndarray:
    """Camera-from-hand rotations (N, 3, 3).

    ``to_camera``: (N, 3) unit vectors in the hand frame from the hand towards the camera;
    ``roll``: (N,) in-plane angle. At roll 0 the hand's distal axis (+y, towards the fingers)
    points up in the image (towards -v).
    """
    z_c = -to_camera
    up = np.array([0.0, 1.0, 0.0])
    y_c = -(up - (z_c @ up)[:, None] * z_c)
    n = np.linalg.norm(y_c, axis=1, keepdims=True)
    # looking straight along the fingers: use the palm normal as "up"
    alt = -(np.array([0.0, 0.0, 1.0]) - z_c[:, 2:3] * z_c)
    y_c = np.where(n > 1e-6, y_c, alt)
    y_c /= np.linalg.norm(y_c, axis=1, keepdims=True)
    x_c = np.cross(y_c, z_c)
    R = np.stack([x_c, y_c, z_c], 1)  # rows: camera axes in hand coordinates
    c, s = np.cos(roll), np.sin(roll)
    Rz = np.zeros((len(roll), 3, 3))
    Rz[:, 0, 0], Rz[:, 0, 1], Rz[:, 1, 0], Rz[:, 1, 1], Rz[:, 2, 2] = c, -s, s, c, 1.0
    return Rz @ R


def _view_directions(rng: np.random.Generator, n: int) -> np.ndarray:
    """Directions hand→camera: the whole sphere (palm side, back, edges), with views straight
    along the finger axis made rarer (acceptance 1 - 0.7 * y^2)."""
    out = np.empty((0, 3))
    while len(out) < n:
        m = 2 * (n - len(out)) + 8
        v = rng.normal(size=(m, 3))
        v /= np.linalg.norm(v, axis=1, keepdims=True)
        keep = rng.random(m) < 1.0 - 0.7 * v[:, 1] ** 2
        out = np.concatenate([out, v[keep]])
    return out[:n]


def sample_viewpoint(rng: np.random.Generator, n: int) -> Viewpoint:
    """Random viewpoints: all view directions, all in-plane angles (biased towards fingers up),
    half of the hands right, palm 0.3-0.7 m away within ±20° of the optical axis, crop jitter."""
    to_cam = _view_directions(rng, n)
    upright = rng.random(n) < 0.55
    roll = np.where(upright, rng.normal(0.0, np.deg2rad(35.0), n), rng.uniform(-np.pi, np.pi, n))
    rotation = look_rotation(to_cam, roll)
    is_right = rng.random(n) < 0.5
    depth = rng.uniform(0.3, 0.7, n)
    lateral = np.tan(np.deg2rad(rng.uniform(-20.0, 20.0, (n, 2))))
    translation = np.concatenate([lateral * depth[:, None], depth[:, None]], 1)
    crop_scale = rng.uniform(1.0, 1.2, n)
    big = rng.random(n) < 0.04  # now and then a crop that cuts keypoints off
    crop_shift = np.where(big[:, None], rng.uniform(-0.22, 0.22, (n, 2)),
                          rng.uniform(-0.06, 0.06, (n, 2)))
    return Viewpoint(rotation, is_right, translation, crop_scale, crop_shift)


def place_points(points: np.ndarray, palm: np.ndarray, view: Viewpoint) -> np.ndarray:
    """Hand-local points (N, P, 3) (left hands) → camera frame, mirroring right hands.

    ``palm``: (N, 3) hand-local palm (keypoint 0), which lands on ``view.translation``.
    """
    sign = np.where(view.is_right[:, None], MIRROR, 1.0)[:, None, :]  # (N, 1, 3)
    local = (points - palm[:, None, :]) * sign
    return local @ np.swapaxes(view.rotation, 1, 2) + view.translation[:, None, :]


def crop_intrinsics(xyz: np.ndarray, view: Viewpoint, size: int) -> np.ndarray:
    """Pixel intrinsics (N, 3, 3) of the S×S crop around the keypoints ``xyz`` (N, 21, 3)."""
    uv = xyz[..., :2] / xyz[..., 2:3]  # normalised image coordinates (focal length 1)
    lo, hi = uv.min(1), uv.max(1)
    side = CROP_MARGIN * view.crop_scale * np.max(hi - lo, axis=1)
    side = np.maximum(side, 1e-4)
    centre = 0.5 * (lo + hi) + view.crop_shift * side[:, None]
    f = size / side
    K = np.zeros((len(f), 3, 3))
    K[:, 0, 0] = f
    K[:, 1, 1] = f
    K[:, 0, 2] = 0.5 * (size - 1) - f * centre[:, 0]
    K[:, 1, 2] = 0.5 * (size - 1) - f * centre[:, 1]
    K[:, 2, 2] = 1.0
    return K


def project(K: np.ndarray, xyz: np.ndarray) -> np.ndarray:
    """Pixel coordinates (N, P, 2) of camera-frame points (N, P, 3)."""
    p = xyz @ np.swapaxes(K, 1, 2)
    return p[..., :2] / p[..., 2:3]
