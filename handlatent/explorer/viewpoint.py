"""Turning the hand with the 3D view: a turntable camera's angles as a change of viewpoint.

Frames (column vectors p; the model's points are rows, so a matrix R acts as `points @ R.T`):

- image camera frame (OpenCV: x right, y down, z forward): the model's `xyz = cpose @ viewpoint`
  (handlatent.skeleton.compose), the frame the decoded image is seen in;
- display frame of the GUI's 3D view (x right, y forward, z up): `CAMERA_TO_DISPLAY @ p`;
- eye frame of vispy's `TurntableCamera(up="+z")` (OpenGL: x right, y up, z backward).

At azimuth = elevation = roll = 0 that camera looks along display +y, i.e. along the image
camera's axis, with image-up on screen up: the 3D view then shows the hand exactly as the image
camera sees it. At other angles (degrees, as vispy has them) a point p of the image camera frame
is seen by the turntable camera where the image camera would see `view_rotation(a, e, r) @ p`
(checked against vispy's own camera transform in tests/test_gui.py).

"The angle the user looks from": `orbit_viewpoint` gives the viewpoint under which the image
camera sees the hand the way the user sees it in the 3D view after orbiting there. Decoding it
re-renders the image from the user's angle, and the new 3D pose, shown from the reference
angles (all 0), looks as the old one did from the orbited camera. Only the rotation matters: the
turntable orbits the joints' bounding-box centre, the model's xyz are root-relative and its
images are crops around the hand.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from handlatent.rotations import rotation_about

# Image camera frame (x right, y down, z forward) -> display frame (x right, y forward, z up):
# (x, y, z) -> (x, z, -y).
CAMERA_TO_DISPLAY = np.array([[1, 0, 0], [0, 0, 1], [0, -1, 0]], dtype=np.float32)


def view_rotation(azimuth: float, elevation: float, roll: float = 0.0) -> np.ndarray:
    """(3, 3) float64 rotation R: a turntable camera at these angles (degrees) sees image-camera
    point p where the image camera would see R @ p. R = Rx(elevation) Ry(azimuth) Rz(-roll)."""
    a, e, r = np.radians([azimuth, elevation, roll])
    return rotation_about("x", e) @ rotation_about("y", a) @ rotation_about("z", -r)


def orbit_viewpoint(viewpoint: np.ndarray, azimuth: float, elevation: float,
                    roll: float = 0.0, mirrored: bool = False) -> np.ndarray:
    """The viewpoint (3, 3) that shows the hand of `viewpoint` as a turntable camera at these
    angles sees it: V @ R.T, so that compose(cpose, V') = compose(cpose, V) @ R.T. `mirrored`:
    the view shows the pose mirrored (x negated: a right hand in its photo's frame), so the turn
    seen there is R' = Mx R Mx in the model's frame."""
    v = np.asarray(viewpoint, dtype=np.float64)
    if v.shape != (3, 3):
        raise ValueError(f"viewpoint must be a 3x3 rotation, got shape {v.shape}")
    r = view_rotation(azimuth, elevation, roll)
    if mirrored:
        mx = np.diag([-1.0, 1.0, 1.0])
        r = mx @ r @ mx
    return v @ r.T


def check_rotation(rotation: Any) -> np.ndarray:
    """`rotation` as (3, 3) float32; ValueError (one line) unless it is a finite rotation
    (orthonormal, determinant +1)."""
    r = np.asarray(rotation, dtype=np.float32)
    if r.shape != (3, 3) or not np.isfinite(r).all():
        raise ValueError(f"viewpoint must be a finite 3x3 rotation, got shape {r.shape}")
    if np.abs(r.T @ r - np.eye(3)).max() > 1e-3 or np.linalg.det(r) < 0:
        raise ValueError("viewpoint must be a rotation (orthonormal, determinant +1)")
    return r
