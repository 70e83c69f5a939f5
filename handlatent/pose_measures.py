"""Joint angles and bone lengths of a 21-keypoint hand (this project's RHD order), in numpy.

What a hand-tracking user asks of a pose: how far each finger bends at its MCP, PIP and DIP
joints, how far it is spread, how long its bones are, and whether any of that is humanly
possible. Everything here is batched over leading axes and cheap (a few array operations), so
the GUI can measure every decoded frame.

Frame. The palm keypoint (0) is the midpoint of the wrist and the middle-finger MCP
(docs/data-format.md), so the wrist is `2 * kp[0] - kp[12]`. The palm frame has `y` from the
wrist to the middle MCP (distal), `x` towards the little finger in the palm plane (through the
index and little MCPs) and `n` the palm normal on the palmar side (`x × y` for a left hand,
the model's canonical side; `is_right` mirrors).

Angles (degrees):
- finger MCP flexion: the proximal phalanx's angle out of the palm plane, positive palmar;
  PIP and DIP flexion: the angle between consecutive phalanges, positive palmar (about `x`).
- finger spread: the proximal phalanx's angle in the palm plane from the hand's midline (wrist
  → middle MCP, along the third metacarpal), positive away from the middle finger (the middle
  finger itself: positive towards the thumb). It includes the few degrees by which relaxed
  fingers fan out. Once a finger bends near 90° at the MCP its spread is poorly defined
  (little of the phalanx is left in the palm plane).
- thumb: keypoints 4, 3, 2, 1 lie at the thumb's CMC, MCP and IP joints and its tip. Its
  first angle is the CMC's palmar abduction (the metacarpal's angle out of the palm plane,
  positive palmar); MCP and IP flexion are the angles between consecutive bones, positive when
  the thumb curls across the palm; its spread is the angle between the thumb's and the index
  finger's metacarpals (the first web space).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from handlatent.skeleton import BONES, FINGER_CHAINS, FINGERS, NUM_KEYPOINTS, palm_to_wrist

FLEXION_JOINTS = (("CMC", "MCP", "IP"),) + (("MCP", "PIP", "DIP"),) * 4
BONE_NAMES = (("palm–CMC", "metacarpal", "proximal", "distal"),) + \
    (("palm–MCP", "proximal", "middle", "distal"),) * 4
_MIDDLE_MCP, _INDEX_MCP, _LITTLE_MCP = 12, 8, 20


@dataclass(frozen=True)
class HumanRange:
    """The range of one angle (degrees) in which a human hand is plausible, and its source."""

    lo: float
    hi: float
    source: str


# Where the ranges come from. Finger flexion and abduction: the static constraints that
# model-based hand tracking uses, Lin, Wu & Huang, "Modeling the constraints of human hand
# motion", IEEE Workshop on Human Motion (HUMO) 2000: 0 <= MCP flexion <= 90, 0 <= PIP <= 110,
# 0 <= DIP <= 90, -15 <= MCP abduction <= 15 degrees. MCP hyperextension and the thumb: the
# American Academy of Orthopaedic Surgeons' normal active ranges ("Joint Motion: Method of
# Measuring and Recording", AAOS 1965, the goniometry tables hand therapists use): finger MCP
# extension 45, thumb MCP flexion 50, thumb IP flexion 80 and extension 20 degrees. The thumb's
# CMC abduction and web angle are shown but not checked: their zero depends on carpal geometry
# that 21 keypoints do not show.
LIN_2000 = "Lin, Wu & Huang, Modeling the constraints of human hand motion (HUMO 2000)"
AAOS_1965 = "AAOS, Joint Motion: Method of Measuring and Recording (1965)"
FINGER_FLEXION_RANGES = (HumanRange(-45.0, 90.0, f"{AAOS_1965} (extension); {LIN_2000}"),
                         HumanRange(0.0, 110.0, LIN_2000),
                         HumanRange(0.0, 90.0, LIN_2000))
THUMB_FLEXION_RANGES = (None, HumanRange(0.0, 50.0, AAOS_1965),
                        HumanRange(-20.0, 80.0, AAOS_1965))
# Lin et al.'s abduction range is about each finger's neutral direction, which for a spread
# measured from the midline is the fan of a relaxed flat hand: these degrees, the spreads that
# measure_pose gives the synthetic renderer's neutral hand (handlatent.synth.kinematics, zero
# abduction, MCP flexion below 40°; standard deviation under 1° over 4,000 shapes).
NEUTRAL_SPREAD_DEG = (0.0, 5.0, -3.0, 7.0, 12.0)
FINGER_SPREAD_HALF_RANGE = 15.0
# Keypoints are not joint centres and a decoded pose is a little noisy: an angle is flagged
# only when it leaves its range by more than this.
TOLERANCE_DEG = 5.0
# A finger's spread is checked only while its MCP flexion is below this (degrees): beyond it
# the phalanx's part in the palm plane is short and its direction is noise.
SPREAD_DEFINED_BELOW = 45.0


def flexion_range(finger: int, joint: int) -> HumanRange | None:
    """The human range of `finger`'s (0 thumb .. 4 little) flexion at `joint` (0..2), or None
    where none is checked (the thumb's CMC)."""
    return (THUMB_FLEXION_RANGES if finger == 0 else FINGER_FLEXION_RANGES)[joint]


def spread_range(finger: int) -> HumanRange | None:
    """The human range of `finger`'s spread (Lin et al.'s ±15° about its neutral fan), or None
    for the thumb (not checked)."""
    if finger == 0:
        return None
    neutral = NEUTRAL_SPREAD_DEG[finger]
    return HumanRange(neutral - FINGER_SPREAD_HALF_RANGE, neutral + FINGER_SPREAD_HALF_RANGE,
                      LIN_2000)


@dataclass(frozen=True)
class Implausible:
    """One angle outside its human range."""

    finger: int
    what: str            # "MCP", "PIP", "DIP", "IP", "spread"
    value: float         # degrees
    range: HumanRange

    def __str__(self) -> str:
        return (f"{FINGERS[self.finger]} {self.what} {self.value:.0f}° outside "
                f"{self.range.lo:g}…{self.range.hi:g}°")


@dataclass(frozen=True)
class PoseMeasures:
    """Angles (degrees) and bone lengths of hands; leading axes as the keypoints given."""

    flexion: np.ndarray        # (..., 5, 3): per finger (thumb..little) its three joints
    spread: np.ndarray         # (..., 5)
    bone_lengths: np.ndarray   # (..., 5, 4): per finger from the palm out (BONE_NAMES)
    length_unit: str           # "mm", or "bone units" (middle MCP-PIP bone = 1) without a scale

    def implausible(self, tolerance: float = TOLERANCE_DEG) -> list[Implausible]:
        """The angles of one hand that leave their human range by more than `tolerance`."""
        if self.flexion.ndim != 2:
            raise ValueError("implausible() takes the measures of one hand")
        found = []
        for f in range(5):
            for j in range(3):
                found += _outside(f, FLEXION_JOINTS[f][j], self.flexion[f, j],
                                  flexion_range(f, j), tolerance)
            if f == 0 or self.flexion[f, 0] <= SPREAD_DEFINED_BELOW:
                found += _outside(f, "spread", self.spread[f], spread_range(f), tolerance)
        return found


def _outside(finger: int, what: str, value: float, bounds: HumanRange | None,
             tolerance: float) -> list[Implausible]:
    if bounds is None or bounds.lo - tolerance <= value <= bounds.hi + tolerance:
        return []
    return [Implausible(finger, what, float(value), bounds)]


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-12)


def _dot(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(-1)


def _cross(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cross product over the last axis (np.cross's axis handling costs more on 21 points)."""
    a, b = np.broadcast_arrays(a, b)
    return np.stack([a[..., 1] * b[..., 2] - a[..., 2] * b[..., 1],
                     a[..., 2] * b[..., 0] - a[..., 0] * b[..., 2],
                     a[..., 0] * b[..., 1] - a[..., 1] * b[..., 0]], -1)


def _signed_angle(a: np.ndarray, b: np.ndarray, axis: np.ndarray) -> np.ndarray:
    """Angle (degrees) from unit vectors a to b, its sign that of a rotation about `axis`."""
    cross = _cross(a, b)
    angle = np.degrees(np.arctan2(np.linalg.norm(cross, axis=-1), _dot(a, b)))
    return np.where(_dot(cross, axis) < 0, -angle, angle)


def palm_frame(xyz: np.ndarray, is_right: bool = False
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(wrist, x, y, n) of hands (..., 21, 3): the wrist point and the palm frame's unit axes
    (x towards the little finger, y distal, n palmar), each (..., 3)."""
    wrist = palm_to_wrist(xyz)[..., 0, :]
    y = _unit(xyz[..., _MIDDLE_MCP, :] - wrist)
    across = xyz[..., _LITTLE_MCP, :] - xyz[..., _INDEX_MCP, :]
    x = _unit(across - _dot(across, y)[..., None] * y)
    n = _cross(x, y)
    return wrist, x, y, -n if is_right else n


def measure_pose(xyz: np.ndarray, *, mm_per_unit: float | None = None,
                 is_right: bool = False) -> PoseMeasures:
    """Joint angles and bone lengths of hands `xyz` (..., 21, 3), RHD order, root the palm.

    `mm_per_unit`: millimetres per unit of `xyz` (1000 for metres; a decoded pose is in bone
    units, so its scale is the hand's middle MCP-PIP bone in mm); None: lengths in the units
    given, reported as "bone units". `is_right`: the keypoints are a right hand.
    """
    xyz = np.asarray(xyz, dtype=np.float64)
    if xyz.shape[-2:] != (NUM_KEYPOINTS, 3):
        raise ValueError(f"expected keypoints of shape (..., 21, 3), got {xyz.shape}")
    wrist, x, y, n = palm_frame(xyz, is_right)
    # chains (..., 5, 4, 3): per finger its base (MCP; thumb CMC) out to its tip
    chain = xyz[..., FINGER_CHAINS, :]
    bones = _unit(np.diff(chain, axis=-2))                  # (..., 5, 3, 3)
    # broadcast over fingers: the palm frame, the axis about which fingers flex (towards the
    # palm) and the one about which they turn towards the thumb, the same for either hand
    xe, ye, ne = (a[..., None, :] for a in (x, y, n))
    flex_axis, radial_axis = _cross(ye, ne), _cross(xe, ye)
    flexion = np.empty(xyz.shape[:-2] + (5, 3))
    spread = np.empty(xyz.shape[:-2] + (5,))

    # fingers: MCP flexion out of the palm plane (past 90° when the phalanx points back),
    # spread in the palm plane from the midline, PIP / DIP about the palm's lateral axis
    first = bones[..., 1:, 0, :]
    normal = _dot(first, ne)
    in_plane = first - normal[..., None] * ne
    ahead = np.where(_dot(in_plane, ye) < 0, -1.0, 1.0)
    flexion[..., 1:, 0] = np.degrees(np.arctan2(normal, ahead * np.linalg.norm(in_plane,
                                                                               axis=-1)))
    abduction = _signed_angle(np.broadcast_to(ye, in_plane.shape),
                              ahead[..., None] * _unit(in_plane), radial_axis)
    spread[..., 1:] = abduction * np.array([1.0, 1.0, -1.0, -1.0])   # + away from the middle
    for j in (1, 2):
        flexion[..., 1:, j] = _signed_angle(bones[..., 1:, j - 1, :], bones[..., 1:, j, :],
                                            flex_axis)

    # thumb: CMC palmar abduction, MCP and IP flexion (positive when the distal bone turns
    # towards the palm keypoint: on 4,000 synthetic hands this sign matched every joint bent
    # by more than 5°), web angle
    thumb = bones[..., 0, :, :]
    flexion[..., 0, 0] = np.degrees(np.arcsin(np.clip(_dot(thumb[..., 0, :], n), -1, 1)))
    for j in (1, 2):
        to_palm = xyz[..., 0, :] - chain[..., 0, j, :]
        flexion[..., 0, j] = _signed_angle(thumb[..., j - 1, :], thumb[..., j, :],
                                           _cross(thumb[..., j - 1, :], to_palm))
    index_metacarpal = _unit(xyz[..., _INDEX_MCP, :] - wrist)
    spread[..., 0] = np.degrees(np.arccos(np.clip(_dot(thumb[..., 0, :], index_metacarpal),
                                                  -1, 1)))

    lengths = np.linalg.norm(np.diff(xyz[..., BONES, :], axis=-2)[..., 0, :], axis=-1)
    lengths = lengths.reshape(xyz.shape[:-2] + (5, 4))
    if mm_per_unit is not None:
        lengths = lengths * float(mm_per_unit)
    return PoseMeasures(flexion=flexion, spread=spread, bone_lengths=lengths,
                        length_unit="mm" if mm_per_unit is not None else "bone units")
