"""Hand kinematics for the synthetic renderer: poses, shapes, forward kinematics, capsules.

Everything here is batched over hands (leading axis N) and vectorised with numpy.

Hand-local frame (a LEFT hand, metres)::

    origin  the wrist (centre of the wrist joint)
    +y      distal: from the wrist towards the middle-finger MCP
    +z      palmar: the direction the palm faces
    -x      radial: towards the thumb (a left hand with its palm towards +z has its
            thumb on the -x side; right hands are made by mirroring x, see camera.py)

Joint angles are kept in radians in an array ``angles`` of shape (N, 5, 4), fingers in RHD order
(thumb, index, middle, ring, little):

    thumb:   cmc_flex, cmc_abd, mcp_flex, ip_flex
    fingers: mcp_flex, mcp_abd, pip_flex, dip_flex

Flexion is positive towards the palm. Finger abduction is positive towards the thumb. Thumb CMC
flexion swings the thumb across the palm (towards the little finger), CMC abduction lifts it out
of the palm plane (palmar abduction); the opposition twist (pronation of the thumb metacarpal)
follows from those two. Joint limits are in :data:`JOINT_LIMITS_DEG`.

Poses are drawn from named grasp/gesture templates (:data:`TEMPLATE_NAMES`), mixed with a second
template and with noise, then clipped to the limits (:func:`sample_pose`). Shapes vary the overall
size, per-bone lengths, palm width/length and finger thickness within adult ranges
(:func:`sample_shape`). :func:`forward_kinematics` gives the 21 keypoints in RHD order (index 0 =
palm = midpoint of wrist and middle MCP), the wrist, and the capsules the renderer draws.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

__all__ = [
    "FINGER_NAMES",
    "JOINT_NAMES",
    "JOINT_LIMITS_DEG",
    "TEMPLATE_NAMES",
    "TEMPLATES_DEG",
    "PART_NAMES",
    "HandShape",
    "HandGeometry",
    "sample_pose",
    "sample_shape",
    "sample_wrist",
    "mean_shape",
    "template_pose",
    "clip_to_limits",
    "forward_kinematics",
    "num_capsules",
]

FINGER_NAMES = ("thumb", "index", "middle", "ring", "little")
JOINT_NAMES = (
    ("cmc_flex", "cmc_abd", "mcp_flex", "ip_flex"),
    ("mcp_flex", "mcp_abd", "pip_flex", "dip_flex"),
    ("mcp_flex", "mcp_abd", "pip_flex", "dip_flex"),
    ("mcp_flex", "mcp_abd", "pip_flex", "dip_flex"),
    ("mcp_flex", "mcp_abd", "pip_flex", "dip_flex"),
)

# (5, 4, 2) lower/upper limits in degrees, same layout as ``angles``.
JOINT_LIMITS_DEG = np.array(
    [
        [[-25, 55], [0, 75], [-10, 65], [-20, 85]],  # thumb: CMC flex, CMC abd, MCP, IP
        [[-20, 90], [-15, 20], [0, 110], [0, 80]],  # index
        [[-20, 90], [-15, 15], [0, 110], [0, 80]],  # middle
        [[-20, 90], [-20, 15], [0, 110], [0, 80]],  # ring
        [[-20, 95], [-30, 15], [0, 110], [0, 80]],  # little
    ],
    dtype=np.float64,
)

# ---------------------------------------------------------------------------------------------
# Templates, in degrees. Per finger: thumb (cmc_flex, cmc_abd, mcp, ip); others (mcp, abd, pip);
# the DIP follows the PIP (about 2/3) when a pose is sampled.
# ---------------------------------------------------------------------------------------------

_T = {  # thumb presets
    "side": (-5, 15, 5, 5),  # lying beside the index, flat hand
    "out": (-20, 25, 0, 0),  # abducted, straight
    "over": (22, 38, 50, 40),  # folded over the middle phalanges of a fist
    "tuck": (35, 30, 50, 45),  # folded over ring/little (V, three)
    "relaxed": (5, 35, 15, 20),
}

TEMPLATES_DEG: dict[str, tuple] = {
    # name: (thumb, index, middle, ring, little)
    "open": (_T["side"], (0, 3, 5), (0, 0, 5), (0, -3, 5), (0, -6, 5)),
    "relaxed": (_T["relaxed"], (20, 4, 30), (28, 0, 38), (35, -4, 42), (42, -8, 45)),
    "fist": (_T["over"], (85, -4, 100), (88, 0, 100), (90, 5, 100), (92, 10, 100)),
    "point": (_T["over"], (0, 2, 3), (88, 0, 100), (90, 5, 100), (92, 10, 100)),
    "v_sign": (_T["tuck"], (0, 12, 3), (0, -10, 3), (88, 5, 100), (92, 10, 100)),
    "pinch": ((17, 52, 9, 11), (38, 0, 48), (25, 0, 30), (28, -4, 35), (32, -8, 40)),
    "ok": ((15, 52, 8, 19), (35, 0, 56), (8, -2, 10), (10, -8, 10), (12, -16, 12)),
    "thumbs_up": ((8, 30, 0, 0), (85, -4, 100), (88, 0, 100), (90, 5, 100), (92, 10, 100)),
    "spread": ((-25, 20, 0, 0), (0, 18, 0), (0, 0, 0), (0, -14, 0), (0, -28, 0)),
    "claw": ((10, 50, 20, 35), (5, 10, 80), (5, 0, 80), (5, -8, 80), (5, -18, 80)),
    "shaka": (_T["out"], (85, -4, 100), (88, 0, 100), (90, 5, 100), (0, -25, 0)),
    "three": ((45, 20, 50, 45), (0, 10, 3), (0, 0, 3), (0, -10, 3), (92, 10, 100)),
    "cylinder": ((35, 69, 13, 18), (55, -2, 55), (58, 0, 55), (60, 3, 55), (62, 6, 55)),
    "horns": (_T["over"], (0, 10, 3), (88, 0, 100), (90, 5, 100), (0, -22, 0)),
    "l_shape": (_T["out"], (0, 5, 3), (88, 0, 100), (90, 5, 100), (92, 10, 100)),
    "tripod": ((20, 52, 8, 12), (40, 4, 45), (40, -2, 40), (60, -4, 70), (65, -8, 75)),
}
TEMPLATE_NAMES = tuple(TEMPLATES_DEG)

_DIP_RATIO = 2.0 / 3.0


def _template_array() -> np.ndarray:
    """(T, 5, 4) template angles in degrees (DIP filled in from the PIP)."""
    out = np.zeros((len(TEMPLATE_NAMES), 5, 4))
    for t, name in enumerate(TEMPLATE_NAMES):
        spec = TEMPLATES_DEG[name]
        out[t, 0] = spec[0]
        for f in range(1, 5):
            mcp, abd, pip = spec[f]
            out[t, f] = (mcp, abd, pip, _DIP_RATIO * pip)
    return out


_TEMPLATES = _template_array()


def template_pose(name_or_id, n: int = 1) -> np.ndarray:
    """The noise-free pose of one template, (n, 5, 4) radians."""
    t = TEMPLATE_NAMES.index(name_or_id) if isinstance(name_or_id, str) else int(name_or_id)
    return np.repeat(np.deg2rad(_TEMPLATES[t])[None], n, axis=0)


def clip_to_limits(angles: np.ndarray) -> np.ndarray:
    lim = np.deg2rad(JOINT_LIMITS_DEG)
    return np.clip(angles, lim[..., 0], lim[..., 1])


def sample_pose(rng: np.random.Generator, n: int, template: np.ndarray | None = None):
    """Sample ``n`` hand poses.

    Each pose is a template (uniform over :data:`TEMPLATE_NAMES`, or the given ids), with
    probability 0.35 blended with a second random template (weight up to 0.45), plus correlated
    and per-joint noise; the DIP follows 2/3 of the PIP with noise; all clipped to the limits.

    Returns ``(template_id (n,) int16, angles (n, 5, 4) float64 radians)``.
    """
    T = len(TEMPLATE_NAMES)
    if template is None:
        template = rng.integers(0, T, n)
    template = np.asarray(template, dtype=np.int64)
    other = rng.integers(0, T, n)
    w = np.where(rng.random(n) < 0.35, rng.uniform(0.0, 0.45, n), 0.0)
    deg = (1.0 - w)[:, None, None] * _TEMPLATES[template] + w[:, None, None] * _TEMPLATES[other]

    noise = np.zeros((n, 5, 4))
    noise[:, 1:, 0] = rng.normal(0.0, 7.0, (n, 4))  # MCP flexion
    noise[:, 1:, 1] = rng.normal(0.0, 3.5, (n, 4))  # abduction
    noise[:, 1:, 2] = rng.normal(0.0, 8.0, (n, 4))  # PIP
    noise[:, 0, :] = rng.normal(0.0, 1.0, (n, 4)) * np.array([6.0, 7.0, 7.0, 8.0])
    curl = rng.normal(0.0, 5.0, n)  # all fingers curl together a little more or less
    noise[:, 1:, 0] += curl[:, None]
    noise[:, 1:, 2] += curl[:, None]
    spread = rng.normal(0.0, 4.0, n)  # and spread together
    noise[:, 1:, 1] += spread[:, None] * np.array([1.0, 0.0, -1.0, -1.6])
    deg = deg + noise
    # DIP coupled to the PIP (after the PIP's noise), with its own noise.
    deg[:, 1:, 3] = _DIP_RATIO * np.clip(deg[:, 1:, 2], 0, None) + rng.normal(0.0, 5.0, (n, 4))
    angles = clip_to_limits(np.deg2rad(deg))
    return template.astype(np.int16), angles


def sample_wrist(rng: np.random.Generator, n: int) -> np.ndarray:
    """(n, 2) wrist flexion (N(0, 20°), ±60°) and deviation (N(0, 8°), ±20°), radians."""
    w = rng.normal(0.0, 1.0, (n, 2)) * np.array([20.0, 8.0])
    return np.deg2rad(np.clip(w, [-60.0, -20.0], [60.0, 20.0]))


# ---------------------------------------------------------------------------------------------
# Shape
# ---------------------------------------------------------------------------------------------

# Bone lengths (metres) of a mean adult hand: per finger, the three bones after the first joint
# (thumb: CMC->MCP, MCP->IP, IP->tip; fingers: MCP->PIP, PIP->DIP, DIP->tip surface).
BONE_LENGTHS = np.array(
    [
        [0.042, 0.031, 0.026],
        [0.036, 0.022, 0.018],
        [0.039, 0.024, 0.018],
        [0.037, 0.024, 0.018],
        [0.029, 0.018, 0.016],
    ]
)
# Radii (metres) at the four joints of each finger's chain (base, j1, j2, tip).
FINGER_RADII = np.array(
    [
        [0.0125, 0.0100, 0.0092, 0.0082],
        [0.0090, 0.0081, 0.0072, 0.0064],
        [0.0092, 0.0083, 0.0074, 0.0066],
        [0.0087, 0.0078, 0.0070, 0.0062],
        [0.0078, 0.0069, 0.0062, 0.0055],
    ]
)
# Joints of the palm (left hand, metres; x radial is negative).
_MCP = np.array(
    [
        [-0.025, 0.084, 0.003],  # index
        [-0.004, 0.088, 0.000],  # middle
        [0.015, 0.083, 0.002],  # ring
        [0.031, 0.073, 0.006],  # little
    ]
)
_CMC = np.array([-0.021, 0.024, 0.010])  # thumb carpometacarpal joint (RHD keypoint 4)
_SPLAY_DEG = np.array([4.0, 0.0, -4.0, -9.0])  # rest direction of the fingers, towards the thumb


@dataclass
class HandShape:
    """Per-hand shape factors (all (N,...) float64, multiplicative around 1)."""

    size: np.ndarray  # (N,) overall scale
    bones: np.ndarray  # (N, 5, 3) bone-length factors
    palm_width: np.ndarray  # (N,)
    palm_length: np.ndarray  # (N,)
    thickness: np.ndarray  # (N,) finger/palm radius factor

    def __len__(self) -> int:
        return len(self.size)

    def __getitem__(self, idx) -> "HandShape":
        idx = np.atleast_1d(np.arange(len(self))[idx])
        return HandShape(**{f.name: getattr(self, f.name)[idx] for f in fields(self)})

    def factors(self) -> np.ndarray:
        """(N, 19) float32: size, palm width, palm length, thickness, 15 bone factors."""
        n = len(self)
        return np.concatenate(
            [
                np.stack([self.size, self.palm_width, self.palm_length, self.thickness], 1),
                self.bones.reshape(n, 15),
            ],
            1,
        ).astype(np.float32)


def sample_shape(rng: np.random.Generator, n: int) -> HandShape:
    """Adult hands: wrist joint to middle tip about 14.5-20 cm (mean 17), middle finger 6.5-9.5 cm."""
    return HandShape(
        size=np.clip(rng.normal(1.0, 0.06, n), 0.86, 1.16),
        bones=np.clip(rng.normal(1.0, 0.035, (n, 5, 3)), 0.9, 1.1),
        palm_width=np.clip(rng.normal(1.0, 0.05, n), 0.88, 1.12),
        palm_length=np.clip(rng.normal(1.0, 0.04, n), 0.9, 1.1),
        thickness=np.clip(rng.normal(1.0, 0.08, n), 0.82, 1.2),
    )


def mean_shape(n: int = 1) -> HandShape:
    one = np.ones(n)
    return HandShape(size=one, bones=np.ones((n, 5, 3)), palm_width=one.copy(),
                     palm_length=one.copy(), thickness=one.copy())


# ---------------------------------------------------------------------------------------------
# Forward kinematics
# ---------------------------------------------------------------------------------------------


def _rot_x(a: np.ndarray) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    R = np.zeros(a.shape + (3, 3))
    R[..., 0, 0] = 1.0
    R[..., 1, 1] = c
    R[..., 1, 2] = -s
    R[..., 2, 1] = s
    R[..., 2, 2] = c
    return R


def _rot_y(a: np.ndarray) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    R = np.zeros(a.shape + (3, 3))
    R[..., 1, 1] = 1.0
    R[..., 0, 0] = c
    R[..., 0, 2] = s
    R[..., 2, 0] = -s
    R[..., 2, 2] = c
    return R


def _rot_z(a: np.ndarray) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    R = np.zeros(a.shape + (3, 3))
    R[..., 2, 2] = 1.0
    R[..., 0, 0] = c
    R[..., 0, 1] = -s
    R[..., 1, 0] = s
    R[..., 1, 1] = c
    return R


def _normalize(v):
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def _finger_base_frames() -> np.ndarray:
    """(4, 3, 3) rest frames of the four fingers; columns: lateral (ulnar), distal, palmar."""
    a = np.deg2rad(_SPLAY_DEG)
    distal = np.stack([-np.sin(a), np.cos(a), np.zeros(4)], 1)
    palmar = np.tile([0.0, 0.0, 1.0], (4, 1))
    lateral = np.cross(distal, palmar)
    return np.stack([lateral, distal, palmar], -1)


def _thumb_base_frame() -> np.ndarray:
    """(3, 3) rest frame of the thumb metacarpal: columns lateral, distal, flexion direction."""
    d = _normalize(np.array([-0.62, 0.78, 0.10]))
    n = np.array([0.80, 0.15, 0.58])  # IP/MCP flexion swings the thumb across the palm
    n = _normalize(n - (n @ d) * d)
    return np.stack([np.cross(d, n), d, n], -1)


_FINGER_FRAMES = _finger_base_frames()
_THUMB_FRAME = _thumb_base_frame()
_OPPOSITION = (0.55, 0.35)  # twist = a * cmc_abd + b * cmc_flex (pronation)

# Capsule parts (albedo groups).
PART_NAMES = ("finger", "palm", "nail", "forearm")
PART_FINGER, PART_PALM, PART_NAIL, PART_FOREARM = range(4)


@dataclass
class HandGeometry:
    """Output of :func:`forward_kinematics` (hand-local frame, metres)."""

    keypoints: np.ndarray  # (N, 21, 3) RHD order, index 0 = palm
    wrist: np.ndarray  # (N, 3)
    p0: np.ndarray  # (N, C, 3) capsule end points
    p1: np.ndarray  # (N, C, 3)
    radius: np.ndarray  # (N, C, 2) radii at p0 and p1
    part: np.ndarray  # (C,) int: index into PART_NAMES
    keypoint_radius: np.ndarray  # (N, 21) flesh radius around each keypoint (visibility tolerance)


def _lerp(a, b, t):
    return a + (b - a) * t


def forward_kinematics(angles: np.ndarray, shape: HandShape,
                       wrist_angles: np.ndarray | None = None) -> HandGeometry:
    """Keypoints and capsules of ``N`` left hands in the hand-local frame.

    ``angles``: (N, 5, 4) radians (see module doc); ``shape``: a :class:`HandShape` of N hands;
    ``wrist_angles``: optional (N, 2) wrist flexion (positive: palmar) and deviation (positive:
    radial) in radians; they only bend the forearm stub (the keypoints do not depend on them).
    """
    angles = np.asarray(angles, dtype=np.float64)
    N = angles.shape[0]
    size = shape.size[:, None]
    # Palm joints, scaled: width along x, length along y, then the overall size.
    pscale = np.stack([shape.palm_width, shape.palm_length, np.sqrt(shape.palm_width)], 1)
    mcp = _MCP[None] * pscale[:, None, :] * size[:, :, None]  # (N, 4, 3)
    cmc = _CMC[None] * pscale * size  # (N, 3)
    lengths = BONE_LENGTHS[None] * shape.bones * size[:, :, None]  # (N, 5, 3)
    radii = FINGER_RADII[None] * (shape.thickness * shape.size)[:, None, None]  # (N, 5, 4)

    kp = np.zeros((N, 21, 3))
    # ---- fingers: frames R_mcp, R_pip, R_dip, each (N, 4, 3, 3)
    fa = angles[:, 1:, :]
    R1 = _FINGER_FRAMES[None] @ _rot_z(fa[..., 1]) @ _rot_x(fa[..., 0])
    R2 = R1 @ _rot_x(fa[..., 2])
    R3 = R2 @ _rot_x(fa[..., 3])
    L = lengths[:, 1:, :]
    j0 = mcp
    j1 = j0 + R1[..., :, 1] * L[..., 0:1]
    j2 = j1 + R2[..., :, 1] * L[..., 1:2]
    j3 = j2 + R3[..., :, 1] * L[..., 2:3]
    # ---- thumb
    ta = angles[:, 0, :]
    twist = _OPPOSITION[0] * ta[:, 1] + _OPPOSITION[1] * ta[:, 0]
    T1 = _rot_z(-ta[:, 0]) @ _rot_y(ta[:, 1]) @ _THUMB_FRAME[None] @ _rot_y(twist)
    T2 = T1 @ _rot_x(ta[:, 2])
    T3 = T2 @ _rot_x(ta[:, 3])
    Lt = lengths[:, 0, :]
    t0 = cmc
    t1 = t0 + T1[..., :, 1] * Lt[:, 0:1]
    t2 = t1 + T2[..., :, 1] * Lt[:, 1:2]
    t3 = t2 + T3[..., :, 1] * Lt[:, 2:3]

    # RHD order: per finger tip, DIP, PIP, MCP.
    kp[:, 1], kp[:, 2], kp[:, 3], kp[:, 4] = t3, t2, t1, t0
    for f in range(4):
        b = 5 + 4 * f
        kp[:, b], kp[:, b + 1], kp[:, b + 2], kp[:, b + 3] = j3[:, f], j2[:, f], j1[:, f], j0[:, f]
    wrist = np.zeros((N, 3))
    kp[:, 0] = 0.5 * (wrist + kp[:, 12])

    # ---- capsules
    # all five chains as (N, 5, 4, 3) joints and (N, 5, 3, 3, 3) bone frames
    chain = np.concatenate(
        [np.stack([t0, t1, t2, t3], 1)[:, None], np.stack([j0, j1, j2, j3], 2)], 1
    )
    frames = np.concatenate(
        [np.stack([T1, T2, T3], 1)[:, None], np.stack([R1, R2, R3], 2)], 1
    )
    tipdir = frames[:, :, 2, :, 1]  # (N, 5, 3) direction of the last bone
    r_tip = radii[:, :, 3]
    tip_centre = chain[:, :, 3] - tipdir * r_tip[..., None]  # sphere reaches the tip keypoint
    c0 = chain[:, :, 0:3]
    c1 = np.concatenate([chain[:, :, 1:3], tip_centre[:, :, None]], 2)
    cr = np.stack([radii[:, :, 0:3], radii[:, :, 1:4]], -1)  # (N, 5, 3, 2)
    bone_p0 = c0.reshape(N, 15, 3)
    bone_p1 = c1.reshape(N, 15, 3)
    bone_r = cr.reshape(N, 15, 2)

    # nails: on the dorsal side of the distal bones
    dors = -frames[:, :, 2, :, 2]  # (N, 5, 3) dorsal normal of the distal bone
    dip = chain[:, :, 2]
    r_n = 0.62 * r_tip
    off = (r_tip - r_n + 0.0010 * shape.size[:, None])[..., None] * dors
    nail_p0 = _lerp(dip, tip_centre, 0.45) + off
    nail_p1 = tip_centre + off - tipdir * (0.2 * r_tip)[..., None]
    nail_r = np.stack([0.9 * r_n, r_n], -1)

    # palm
    s = size[:, 0]
    th = shape.thickness * s
    base = mcp * np.array([0.62, 0.0, 1.0]) + np.array([0.0, 0.022, 0.0]) * s[:, None, None]
    mid = 0.5 * (base + mcp)
    thumb_mid = _lerp(t0, t1, 0.45)
    palmar = np.array([0.0, 0.0, 1.0])
    pal = [
        # four metacarpals
        (base[:, 0], mcp[:, 0], 0.0125, 0.0105),
        (base[:, 1], mcp[:, 1], 0.0125, 0.0105),
        (base[:, 2], mcp[:, 2], 0.0125, 0.0105),
        (base[:, 3], mcp[:, 3], 0.0125, 0.0100),
        # transverse: the MCP pads, mid palm, base of the palm
        (mcp[:, 0] + 0.004 * s[:, None] * palmar, mcp[:, 3] + 0.004 * s[:, None] * palmar, 0.0105, 0.0095),
        (mid[:, 0] + 0.001 * s[:, None] * palmar, mid[:, 3] + 0.001 * s[:, None] * palmar, 0.0125, 0.0120),
        (base[:, 0], base[:, 3], 0.0138, 0.0135),
        # thenar eminence, hypothenar, thumb-index web
        (_lerp(base[:, 0], base[:, 1], 0.3) + 0.004 * s[:, None] * palmar, thumb_mid, 0.0150, 0.0125),
        (base[:, 3] + 0.003 * s[:, None] * palmar, mid[:, 3] + 0.002 * s[:, None] * palmar, 0.0140, 0.0125),
        (_lerp(t0, t1, 0.7), _lerp(base[:, 0], mcp[:, 0], 0.75), 0.0075, 0.0085),
        # wrist
        (np.array([-0.014, 0.006, 0.0]) * s[:, None], np.array([0.014, 0.006, 0.0]) * s[:, None], 0.0150, 0.0150),
    ]
    palm_p0 = np.stack([p[0] for p in pal], 1)
    palm_p1 = np.stack([p[1] for p in pal], 1)
    palm_r = np.array([[p[2], p[3]] for p in pal])[None] * th[:, None, None]

    # forearm stub: two capsules side by side (an oval cross-section), starting inside the base
    # of the palm, bent at the wrist by (flexion, deviation)
    if wrist_angles is None:
        wrist_angles = np.zeros((N, 2))
    Rw = _rot_x(-wrist_angles[:, 0]) @ _rot_z(wrist_angles[:, 1])  # forearm frame in the hand
    side = Rw[:, :, 0] * 0.011  # (N, 3)
    along = -Rw[:, :, 1]
    start = np.array([0.0, 0.012, 0.0])[None] * s[:, None]
    end = start + along * (0.12 * s)[:, None]
    arm_p0 = np.stack([start - side * s[:, None], start + side * s[:, None]], 1)
    arm_p1 = np.stack([end - 1.1 * side * s[:, None], end + 1.1 * side * s[:, None]], 1)
    arm_r = np.array([[0.018, 0.021], [0.018, 0.021]])[None] * th[:, None, None]

    p0 = np.concatenate([bone_p0, nail_p0, palm_p0, arm_p0], 1)
    p1 = np.concatenate([bone_p1, nail_p1, palm_p1, arm_p1], 1)
    radius = np.concatenate([bone_r, nail_r, palm_r, arm_r], 1)
    part = np.array(
        [PART_FINGER] * 15 + [PART_NAIL] * 5 + [PART_PALM] * len(pal) + [PART_FOREARM] * 2,
        dtype=np.int8,
    )

    kr = np.empty((N, 21))
    kr[:, 0] = 0.0145 * th
    for f in range(5):
        b = 1 + 4 * f
        kr[:, b : b + 4] = radii[:, f, ::-1]
    kr[:, 4] = np.maximum(kr[:, 4], 0.015 * th)  # thumb CMC sits inside the thenar
    for f in range(1, 5):
        kr[:, 4 * f + 4] = np.maximum(kr[:, 4 * f + 4], 0.0115 * th)  # MCPs inside the palm
    return HandGeometry(kp, wrist, p0, p1, radius, part, kr)


def num_capsules() -> int:
    return 15 + 5 + 11 + 2
