"""Cropping a user's photo around one hand, mirroring right hands, and placing the pose in it.

The box. A square ``CropBox(x, y, size)`` in pixels of the upright photo (EXIF rotation applied,
full resolution), x and y its top-left corner in Pillow's edge coordinates: the box covers
``x <= u_edge < x + size``; pixel (row i, column j) has its centre at (j + 0.5, i + 0.5) there,
i.e. at (u, v) = (j, i) in the pixel convention of docs/data-format.md. A box lies wholly inside
the photo and is at least `MIN_BOX` pixels wide.

The side. The model's canonical hand is a left hand (its CPose is always a left hand and
`DVAE.decode_pose(z)` without a handedness composes a left hand, handlatent/skeleton.py). A
right hand is therefore cropped and then mirrored left-right (`crop_photo(..., side="right")`),
so the encoder sees a left hand; the pose decoded from it is mirrored back (`to_photo_frame`):
camera x negated, the viewpoint ``V' = Mz · V · Mx``, so that ``compose(cpose, V',
is_right=True)`` is the right hand as the photo shows it. Every pose given out is in the photo's
own frame and handedness.

The camera. A photo comes without intrinsics; `photo_intrinsics` assumes a phone's main camera
(`FOCAL_35MM` mm, 35 mm equivalent, principal point at the centre); the crop's intrinsics follow
exactly (``K_crop = M · K_photo``, handlatent.data.crop). `place_pose` puts a root-relative pose
of `HAND_SCALE` metres per bone unit in front of that camera so that its projection is centred
in the crop and fills 1 / `DEFAULT_MARGIN` of it, as the readers of real datasets crop hands.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
from PIL import Image

from handlatent.data.crop import DEFAULT_MARGIN, crop_intrinsics, crop_matrix, project
from handlatent.synth.kinematics import BONE_LENGTHS

SIDES = ("left", "right")
Side = Literal["left", "right"]
MIN_BOX = 32          # pixels: the smallest box (and so the smallest photo side) accepted
DEFAULT_FILL = 0.8    # the default box: centred, this fraction of the photo's short side
FOCAL_35MM = 26.0     # mm, 35 mm equivalent: a phone's main camera (about 69° across)
FILM_WIDTH_MM = 36.0  # the 35 mm frame's long side
# Metres per bone unit: the middle finger's MCP-PIP bone of the synthetic generator's mean
# adult hand (handlatent/synth/kinematics.py), the scale a label gets from a photo.
HAND_SCALE = float(BONE_LENGTHS[2, 0])
MIRROR_X = np.diag([-1.0, 1.0, 1.0])   # camera x negated: the picture mirrored left-right
MIRROR_Z = np.diag([1.0, 1.0, -1.0])   # canonical z negated: left hand <-> right hand


class PhotoCropError(ValueError):
    """A box that cannot be used with a photo; the message is one line naming the photo."""


@dataclass(frozen=True)
class CropBox:
    """A square in pixels of the upright photo: top-left corner (x, y) and side `size`."""

    x: float
    y: float
    size: float

    @property
    def centre(self) -> tuple[float, float]:
        """The box's centre in Pillow's edge coordinates."""
        return self.x + self.size / 2, self.y + self.size / 2

    @property
    def edges(self) -> tuple[float, float, float, float]:
        """(left, top, right, bottom), Pillow's box."""
        return self.x, self.y, self.x + self.size, self.y + self.size

    def as_text(self) -> str:
        """`x,y,size` as `handlatent-estimate --box` takes it."""
        return ",".join(f"{v:g}" for v in (round(self.x, 2), round(self.y, 2),
                                           round(self.size, 2)))


def check_side(side: str) -> Side:
    """`side` if it is "left" or "right"; ValueError (one line) otherwise."""
    if side not in SIDES:
        raise ValueError(f"hand side must be left or right, got {side!r}")
    return side  # type: ignore[return-value]


def parse_box(text: str) -> CropBox:
    """A box from `x,y,size` (pixels; `--box`); ValueError (one line) for anything else."""
    parts = [p.strip() for p in str(text).split(",")]
    try:
        values = [float(p) for p in parts]
    except ValueError:
        values = []
    if len(values) != 3 or not all(math.isfinite(v) for v in values):
        raise ValueError(f"expected x,y,size (three numbers in pixels), got {text!r}")
    if values[2] <= 0:
        raise ValueError(f"the box's size must be > 0, got {values[2]:g}")
    return CropBox(*values)


def _check_photo(width: int, height: int, label: str) -> None:
    if min(width, height) < MIN_BOX:
        raise PhotoCropError(f"{label}: photo too small to hold a box ({width}x{height} px; a "
                             f"box needs at least {MIN_BOX}x{MIN_BOX})")


def default_box(width: int, height: int, label: str = "photo") -> CropBox:
    """The box offered first: centred, `DEFAULT_FILL` of the short side (PhotoCropError for a
    photo too small to hold any box)."""
    _check_photo(width, height, label)
    size = max(float(MIN_BOX), DEFAULT_FILL * min(width, height))
    return CropBox((width - size) / 2, (height - size) / 2, size)


def check_box(box: CropBox, width: int, height: int, label: str = "photo") -> CropBox:
    """`box` if it lies inside a `width` x `height` photo and is at least `MIN_BOX` wide;
    PhotoCropError naming `label` and the problem otherwise."""
    _check_photo(width, height, label)
    if box.size < MIN_BOX:
        raise PhotoCropError(f"{label}: box {box.as_text()} is smaller than {MIN_BOX} px")
    eps = 1e-6
    if box.x < -eps or box.y < -eps or box.x + box.size > width + eps \
            or box.y + box.size > height + eps:
        raise PhotoCropError(f"{label}: box {box.as_text()} (x,y,size) lies outside the "
                             f"{width}x{height} photo")
    return box


def clamp_box(box: CropBox, width: int, height: int) -> CropBox:
    """The nearest box inside the photo: size limited to [MIN_BOX, short side], then shifted in."""
    size = min(max(box.size, float(MIN_BOX)), float(min(width, height)))
    return CropBox(min(max(box.x, 0.0), width - size), min(max(box.y, 0.0), height - size), size)


def moved_box(box: CropBox, dx: float, dy: float, width: int, height: int) -> CropBox:
    """`box` shifted by (dx, dy) pixels, kept inside the photo."""
    return clamp_box(CropBox(box.x + dx, box.y + dy, box.size), width, height)


def scaled_box(box: CropBox, factor: float, width: int, height: int) -> CropBox:
    """`box` grown (factor > 1) or shrunk about its centre, kept inside the photo."""
    cx, cy = box.centre
    size = box.size * factor
    return clamp_box(CropBox(cx - size / 2, cy - size / 2, size), width, height)


def resized_box(box: CropBox, corner: str, point: tuple[float, float], width: int,
                height: int) -> CropBox:
    """`box` with `corner` ("tl", "tr", "bl", "br") dragged to `point`, the opposite corner held:
    the side follows the larger of the two distances, limited to what fits in the photo."""
    if corner not in ("tl", "tr", "bl", "br"):
        raise ValueError(f"corner must be tl, tr, bl or br, got {corner!r}")
    left, top, right, bottom = box.edges
    ax = right if corner[1] == "l" else left      # the held corner
    ay = bottom if corner[0] == "t" else top
    sx = -1.0 if corner[1] == "l" else 1.0        # the way the dragged corner grows
    sy = -1.0 if corner[0] == "t" else 1.0
    room = min(ax if sx < 0 else width - ax, ay if sy < 0 else height - ay)
    size = max(sx * (point[0] - ax), sy * (point[1] - ay))
    size = min(max(size, float(MIN_BOX)), max(room, float(MIN_BOX)))
    x = ax - size if sx < 0 else ax
    y = ay - size if sy < 0 else ay
    return clamp_box(CropBox(x, y, size), width, height)


# ------------------------------------------------------------------------------ pixels


def crop_photo(photo: Image.Image, box: CropBox, side: str, size: int) -> np.ndarray:
    """The `size` x `size` uint8 crop of the upright RGB `photo` in `box` (LANCZOS), mirrored
    left-right for a right hand: what the encoder sees."""
    check_side(side)
    reduce = 3.0 if box.size > 3 * size else None
    out = photo.resize((size, size), Image.Resampling.LANCZOS, box=box.edges,
                       reducing_gap=reduce)
    pixels = np.asarray(out, dtype=np.uint8)
    return np.ascontiguousarray(pixels[:, ::-1] if side == "right" else pixels)


# ------------------------------------------------------------------------------ mirroring


def mirror_points(points: np.ndarray) -> np.ndarray:
    """Camera-frame points (..., 3) as seen in the mirrored picture (x negated)."""
    return np.asarray(points) * np.array([-1.0, 1.0, 1.0], dtype=np.asarray(points).dtype)


def mirror_viewpoint(viewpoint: np.ndarray) -> np.ndarray:
    """The viewpoint (..., 3, 3) that composes the mirrored hand: ``Mz · V · Mx`` (its own
    inverse; a rotation again)."""
    v = np.asarray(viewpoint)
    return (MIRROR_Z @ v @ MIRROR_X).astype(v.dtype)


def mirror_uv(uv: np.ndarray, size: int) -> np.ndarray:
    """Pixel keypoints (..., 2) of an S x S crop in its mirror image (u -> S - 1 - u)."""
    out = np.array(uv, dtype=np.float64)
    out[..., 0] = size - 1 - out[..., 0]
    return out


def mirror_intrinsics(k: np.ndarray, size: int) -> np.ndarray:
    """Intrinsics of the mirrored S x S crop for the mirrored points: ``F · K · Mx``, so that
    ``project(mirror_intrinsics(K), mirror_points(p)) == mirror_uv(project(K, p))``."""
    flip = np.array([[-1.0, 0.0, size - 1.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    return flip @ np.asarray(k, np.float64) @ MIRROR_X


def to_photo_frame(xyz: np.ndarray, viewpoint: np.ndarray, side: str
                   ) -> tuple[np.ndarray, np.ndarray]:
    """A pose decoded from the encoder's crop (xyz (..., 21, 3), viewpoint (..., 3, 3)) in the
    photo's own frame: unchanged for a left hand, mirrored back for a right one (the CPose, a
    left hand, stays; compose it with `is_right=True`)."""
    if check_side(side) == "left":
        return np.asarray(xyz), np.asarray(viewpoint)
    return mirror_points(xyz), mirror_viewpoint(viewpoint)


# ------------------------------------------------------------------------------ camera


def photo_intrinsics(width: int, height: int) -> np.ndarray:
    """Assumed intrinsics (3, 3) of a photo: `FOCAL_35MM` on the long side, centred."""
    f = FOCAL_35MM / FILM_WIDTH_MM * max(width, height)
    return np.array([[f, 0.0, (width - 1) / 2], [0.0, f, (height - 1) / 2], [0.0, 0.0, 1.0]])


def box_matrix(box: CropBox, size: int) -> np.ndarray:
    """M (3, 3): photo pixels -> pixels of the S x S crop of `box` (unmirrored)."""
    cx, cy = box.centre
    return crop_matrix((cx - 0.5, cy - 0.5), box.size, size)   # edge -> centre convention


def box_intrinsics(box: CropBox, width: int, height: int, size: int) -> np.ndarray:
    """Intrinsics (3, 3) of the unmirrored S x S crop of `box` under `photo_intrinsics`."""
    return crop_intrinsics(box_matrix(box, size), photo_intrinsics(width, height))


def place_pose(points: np.ndarray, k: np.ndarray, size: int,
               fill: float = 1 / DEFAULT_MARGIN, iterations: int = 8) -> np.ndarray:
    """Root-relative points (21, 3) in metres, translated in front of the camera `k` so that
    their projection's bounding box is centred in the S x S crop and its longer side is `fill`
    of the crop. Returns camera-frame points (21, 3), metres."""
    p = np.asarray(points, np.float64)
    k = np.asarray(k, np.float64)
    f = float(np.sqrt(abs(np.linalg.det(k[:2, :2]))))
    extent = float(np.max(np.ptp(p[:, :2], axis=0)))
    if not math.isfinite(extent) or extent <= 0:
        raise ValueError("cannot place a pose whose joints all project to one point")
    want = fill * size
    centre = np.array([(size - 1) / 2, (size - 1) / 2])
    depth = f * extent / want + max(0.0, -float(p[:, 2].min())) + 1e-3
    ray = np.linalg.solve(k, np.array([centre[0], centre[1], 1.0]))
    t = ray / ray[2] * depth
    for _ in range(iterations):   # perspective: a few fixed-point steps on scale and centre
        uv = project(k, p + t)
        ratio = float(np.max(uv.max(0) - uv.min(0))) / want
        t[2] = max(t[2] * ratio, -float(p[:, 2].min()) + 1e-3)
        uv = project(k, p + t)
        shift = centre - (uv.min(0) + uv.max(0)) / 2
        t[:2] += np.linalg.solve(k[:2, :2], shift) * t[2]
        if abs(ratio - 1) < 1e-6 and float(np.abs(shift).max()) < 1e-4:   # converged
            break
    return p + t
