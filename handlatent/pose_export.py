"""One decoded pose as a JSON or CSV file in a chosen joint order: the GUI's File ▸ Export pose.

The file holds the 3D pose (root-relative, camera frame, bone units: the middle finger's MCP-PIP
bone has length 1), the canonical pose (CPose) and viewpoint the pose decoders gave, and 2D
keypoints in pixels of the decoded S×S image. A guided image decoder (ModelConfig.decoder_guide)
decodes its own 2D keypoints, the ones it draws along: those are written. Other models decode no
camera, so their 2D keypoints are those of the nominal camera: the pose scaled to a mean adult
hand (middle MCP-PIP 39 mm), its palm 0.5 m in front of the camera, framed as the synthetic
training crops frame a hand (a square 1.3 times the keypoints' extent, centred on them). They
show where the decoded image should have the joints when the model reproduces its training
framing; they are not measured on the image.
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from handlatent.estimate import json_floats
from handlatent.explorer.decoder import Decoded
from handlatent.explorer.files import write_atomically
from handlatent.joint_orders import PROJECT, JointOrder, bones, joint_order, to_order
from handlatent.synth.camera import CROP_MARGIN, Viewpoint, crop_intrinsics, project
from handlatent.synth.kinematics import BONE_LENGTHS

__all__ = ["FORMAT", "FORMATS", "NOMINAL_BONE_M", "NOMINAL_DEPTH_M", "nominal_camera",
           "pose_record", "write_pose"]

FORMAT = "handlatent-pose"
FORMAT_VERSION = 1
FORMATS = (".json", ".csv")
NOMINAL_BONE_M = float(BONE_LENGTHS[2, 0])  # the mean adult middle MCP-PIP bone (synthetic hands)
NOMINAL_DEPTH_M = 0.5  # the synthetic hands' palms lie 0.3-0.7 m from the camera
CSV_COLUMNS = ("index", "joint", "x", "y", "z", "u", "v", "cpose_x", "cpose_y", "cpose_z")


def nominal_camera(xyz: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """(placed (21, 3) metres, K (3, 3)): the pose `xyz` (bone units, project order) scaled to a
    mean adult hand, its palm NOMINAL_DEPTH_M ahead, and the crop intrinsics that frame it as
    the synthetic crops do in an S×S image (module docstring)."""
    placed = np.asarray(xyz, np.float64) * NOMINAL_BONE_M + [0.0, 0.0, NOMINAL_DEPTH_M]
    if not np.all(placed[:, 2] > 0):
        raise ValueError("the decoded pose reaches behind the nominal camera")
    view = Viewpoint(rotation=np.eye(3)[None], is_right=np.zeros(1, bool),
                     translation=placed[None, 0], crop_scale=np.ones(1),
                     crop_shift=np.zeros((1, 2)))
    return placed, crop_intrinsics(placed[None], view, size)[0]


def pose_record(decoded: Decoded, size: int, order: str | JointOrder = PROJECT) -> dict[str, Any]:
    """The JSON document of one decoded pose, keypoints in `order` (module docstring)."""
    order = joint_order(order)
    if decoded.uv is not None:  # the decoder's own keypoints (the wrist: the linear rule)
        uv, camera = to_order(np.asarray(decoded.uv, np.float64), order), None
        uv_text = ("2D keypoints (21 x 2) the guided image decoder draws along, in pixels of "
                   "the decoded image (pixel centres at integers)")
    else:
        placed, k = nominal_camera(decoded.xyz, size)
        uv = project(k[None], to_order(placed, order)[None])[0]
        camera = {"K": json_floats(k), "image_size": int(size), "bone_length_m": NOMINAL_BONE_M,
                  "palm_depth_m": NOMINAL_DEPTH_M, "crop_margin": CROP_MARGIN}
        uv_text = ("2D keypoints (21 x 2) in pixels of the decoded image (pixel centres at "
                   "integers) under the nominal camera 'camera': the pose times bone_length_m, "
                   "the palm palm_depth_m ahead, framed as the training crops frame hands")
    right = bool(decoded.is_right)
    return {
        "format": FORMAT, "format_version": FORMAT_VERSION,
        "joint_order": {"name": order.name, "description": order.description},
        "keypoints": list(order.names),
        "bones": bones(order).tolist(),
        "handedness": "right" if right else "left",
        "xyz": json_floats(to_order(decoded.xyz, order)),
        "uv": json_floats(uv),
        "cpose": json_floats(to_order(decoded.cpose, order)),
        "viewpoint": json_floats(decoded.viewpoint),
        "camera": camera,
        "latent": json_floats(decoded.z),
        "conventions": {
            "xyz": "3D keypoints (21 x 3, order of 'keypoints'), root-relative to the palm, "
                   "camera frame (x right, y down, z away from the camera), bone units (the "
                   "middle MCP-PIP bone has length 1); xyz = cpose @ viewpoint, with cpose's z "
                   "negated first for a right hand (handlatent.skeleton.compose)",
            "uv": uv_text,
            "cpose": "canonical pose (21 x 3, order of 'keypoints'), bone units, a left hand",
            "viewpoint": "rotation (3 x 3), points as row vectors",
            "handedness": "the side the model decoded: right only where its crop head says so "
                          "(ModelConfig.decoder_guide 'skeleton'); other models decode every "
                          "hand as a left hand",
        },
    }


def write_pose(path: str | os.PathLike, decoded: Decoded, size: int,
               order: str | JointOrder = PROJECT) -> Path:
    """Write the pose to `path`, JSON or CSV by its suffix, atomically; ValueError for another
    suffix or a missing folder (OSError if the file cannot be written)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in FORMATS:
        raise ValueError(f"{path}: unsupported pose format {path.suffix or '(none)'!r}; use "
                         f"{' or '.join(FORMATS)}")
    if not path.parent.is_dir():
        raise ValueError(f"{path}: folder {path.parent} does not exist")
    record = pose_record(decoded, size, order)
    if suffix == ".json":
        text = json.dumps(record, indent=1) + "\n"
        return write_atomically(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))

    def write_csv(tmp: Path) -> None:
        with open(tmp, "w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow(CSV_COLUMNS)
            for i, name in enumerate(record["keypoints"]):
                writer.writerow([i, name, *record["xyz"][i], *record["uv"][i],
                                 *record["cpose"][i]])

    return write_atomically(path, write_csv)
