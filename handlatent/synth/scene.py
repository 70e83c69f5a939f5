"""Scenes: every generative factor of a batch of synthetic hand images, and their rendering.

A :class:`Scene` holds N samples' factors in six groups that evaluation code can hold fixed or
resample independently (:data:`GROUPS`): ``pose`` (template id, joint and wrist angles), ``shape``
(hand size and proportions), ``viewpoint`` (rotation, handedness, distance, crop jitter),
``skin`` (albedo), ``light`` (direction and ambient) and ``background``.

    >>> rng = np.random.default_rng(0)
    >>> a, b = sample_scene(rng, 8), sample_scene(rng, 8)
    >>> same_pose = b.replace("pose", a)          # b's everything, a's poses
    >>> out = render_scene(same_pose, 128)        # dict of batched numpy arrays

Determinism: :func:`scene_range` draws the scenes of samples ``start:stop`` of a dataset with a
given seed from per-block generators (``SeedSequence(seed, spawn_key=(block,))``, blocks of
:data:`BLOCK` samples), so a dataset does not depend on how it is chunked.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, fields

import numpy as np

from handlatent.skeleton import canonicalize
from handlatent.synth import backgrounds as _bg
from handlatent.synth import camera, kinematics
from handlatent.synth.render import render_capsules

__all__ = [
    "GROUPS",
    "BLOCK",
    "Skin",
    "Scene",
    "sample_skin",
    "sample_scene",
    "scene_range",
    "concat_scenes",
    "content_factor_names",
    "render_scene",
    "capsule_albedo",
]

BLOCK = 64

GROUPS = {
    "pose": ("template", "angles", "wrist"),
    "shape": ("shape",),
    "viewpoint": ("view",),
    "skin": ("skin",),
    "light": ("light_dir", "ambient"),
    "background": ("background",),
}

# Skin tones, light to dark (sRGB albedo), interpolated by a tone parameter in [0, 1].
_TONES = np.array(
    [
        [0.96, 0.82, 0.74],
        [0.91, 0.72, 0.60],
        [0.82, 0.61, 0.47],
        [0.67, 0.47, 0.33],
        [0.48, 0.32, 0.22],
        [0.30, 0.20, 0.15],
    ]
)
_PALM_TARGET = np.array([0.94, 0.76, 0.67])
_NAIL_TARGET = np.array([0.95, 0.80, 0.78])


@dataclass
class Skin:
    tone: np.ndarray  # (N,) 0 = lightest .. 1 = darkest
    rgb: np.ndarray  # (N, 3) sRGB albedo of the back of the hand and fingers
    palm_tint: np.ndarray  # (N,) how much lighter the palm is (0..1 towards a pale pink)
    nail_tint: np.ndarray  # (N,)
    jitter: np.ndarray  # (N, C) per-capsule brightness factors

    def __len__(self) -> int:
        return len(self.tone)

    def __getitem__(self, idx) -> "Skin":
        return _take_dataclass(self, idx)


def sample_skin(rng: np.random.Generator, n: int) -> Skin:
    tone = rng.random(n)
    x = tone * (len(_TONES) - 1)
    i = np.minimum(x.astype(int), len(_TONES) - 2)
    w = (x - i)[:, None]
    rgb = _TONES[i] * (1 - w) + _TONES[i + 1] * w
    rgb = np.clip(rgb * rng.normal(1.0, 0.035, (n, 3)) * rng.normal(1.0, 0.04, (n, 1)), 0.05, 1.0)
    return Skin(
        tone=tone,
        rgb=rgb,
        palm_tint=rng.uniform(0.05, 0.15, n) + 0.12 * tone,
        nail_tint=rng.uniform(0.3, 0.6, n),
        jitter=np.clip(rng.normal(1.0, 0.02, (n, kinematics.num_capsules())), 0.9, 1.1),
    )


def capsule_albedo(skin: Skin, part: np.ndarray) -> np.ndarray:
    """(N, C, 3) albedo of every capsule: skin, a lighter palm, tinted nails."""
    base = skin.rgb[:, None, :]
    palm = base + (_PALM_TARGET - base) * skin.palm_tint[:, None, None]
    nail = base + (_NAIL_TARGET - base) * skin.nail_tint[:, None, None]
    alb = np.where((part == kinematics.PART_PALM)[None, :, None], palm, base)
    alb = np.where((part == kinematics.PART_NAIL)[None, :, None], nail, alb)
    return np.clip(alb * skin.jitter[:, :, None], 0.0, 1.0)


# ---------------------------------------------------------------------------------------------
# Generic batched row selection / concatenation
# ---------------------------------------------------------------------------------------------


def _take(x, idx):
    return x[idx]


def _take_dataclass(obj, idx):
    n = len(obj)
    idx = np.atleast_1d(np.arange(n)[idx])
    return type(obj)(**{f.name: _take(getattr(obj, f.name), idx) for f in fields(obj)})


def _concat(items: list):
    first = items[0]
    if isinstance(first, np.ndarray):
        return np.concatenate(items, 0)
    for name in ("concat", "concatenate"):
        if hasattr(type(first), name):
            return getattr(type(first), name)(items)
    if dataclasses.is_dataclass(first):
        return type(first)(**{f.name: _concat([getattr(x, f.name) for x in items])
                              for f in fields(first)})
    raise TypeError(f"cannot concatenate {type(first).__name__}")


def _bg_factor_names() -> tuple:
    names = getattr(_bg.BackgroundParams, "FACTOR_NAMES", None)
    if names is None:
        names = getattr(_bg, "FACTOR_NAMES")
    return tuple(names)


def content_factor_names() -> list[str]:
    """Names of the columns of :meth:`Scene.content_factors`."""
    return (["skin_r", "skin_g", "skin_b", "light_x", "light_y", "light_z", "ambient"]
            + ["bg_" + str(n) for n in _bg_factor_names()])


@dataclass
class Scene:
    """All generative factors of N samples. Index it with ints, slices, masks or index arrays."""

    template: np.ndarray  # (N,) int16: index into kinematics.TEMPLATE_NAMES (dominant template)
    angles: np.ndarray  # (N, 5, 4) joint angles, radians
    wrist: np.ndarray  # (N, 2) wrist flexion/deviation, radians (bends the forearm stub only)
    shape: kinematics.HandShape
    view: camera.Viewpoint
    skin: Skin
    light_dir: np.ndarray  # (N, 3) unit vector towards the light, camera frame
    ambient: np.ndarray  # (N,)
    background: object  # backgrounds.BackgroundParams

    def __len__(self) -> int:
        return len(self.template)

    def __getitem__(self, idx) -> "Scene":
        return _take_dataclass(self, idx)

    @property
    def is_right(self) -> np.ndarray:
        return self.view.is_right

    def replace(self, group: str, other: "Scene") -> "Scene":
        """A copy of this scene with factor group ``group`` taken from ``other``.

        ``other`` has the same length, or length 1 (then its factors are repeated).
        """
        if group not in GROUPS:
            raise ValueError(f"unknown factor group {group!r}; expected one of {list(GROUPS)}")
        if len(other) == 1 and len(self) != 1:
            other = other[np.zeros(len(self), dtype=int)]
        if len(other) != len(self):
            raise ValueError(f"replace: lengths differ ({len(self)} vs {len(other)})")
        return dataclasses.replace(self, **{name: getattr(other, name) for name in GROUPS[group]})

    def factors(self, group: str) -> np.ndarray:
        """(N, F) float32: the numbers of one factor group, e.g. as regression targets.

        pose: template id, 20 joint angles, 2 wrist angles; shape: HandShape.factors();
        viewpoint: 9 rotation entries, is_right, translation (3), crop scale, crop shift (2);
        skin: tone, rgb (3), palm and nail tint; light: direction (3), ambient;
        background: BackgroundParams.factors().
        """
        n = len(self)
        if group == "pose":
            parts = [self.template[:, None], self.angles.reshape(n, -1), self.wrist]
        elif group == "shape":
            parts = [self.shape.factors()]
        elif group == "viewpoint":
            v = self.view
            parts = [v.rotation.reshape(n, 9), v.is_right[:, None], v.translation,
                     v.crop_scale[:, None], v.crop_shift]
        elif group == "skin":
            s = self.skin
            parts = [s.tone[:, None], s.rgb, s.palm_tint[:, None], s.nail_tint[:, None]]
        elif group == "light":
            parts = [self.light_dir, self.ambient[:, None]]
        elif group == "background":
            parts = [np.asarray(self.background.factors()).reshape(n, -1)]
        else:
            raise ValueError(f"unknown factor group {group!r}; expected one of {list(GROUPS)}")
        return np.concatenate([np.asarray(p, dtype=np.float64) for p in parts], 1).astype(
            np.float32)

    def content_factors(self) -> tuple[np.ndarray, list[str]]:
        """(values (N, F) float32, names): skin albedo, light direction and ambient, background."""
        values = np.concatenate(
            [self.skin.rgb, self.light_dir, self.ambient[:, None],
             np.asarray(self.background.factors(), dtype=np.float64).reshape(len(self), -1)],
            1,
        ).astype(np.float32)
        return values, content_factor_names()


def concat_scenes(scenes: list[Scene]) -> Scene:
    return _concat(list(scenes))


def sample_light(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Mostly from the camera side and above, sometimes from the side or behind."""
    d = np.array([0.0, -0.45, -1.0]) / np.linalg.norm([0.0, -0.45, -1.0]) + rng.normal(0, 0.65, (n, 3))
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    return d, rng.uniform(0.2, 0.6, n)


def sample_scene(rng: np.random.Generator, n: int) -> Scene:
    """Draw ``n`` independent scenes from ``rng``."""
    template, angles = kinematics.sample_pose(rng, n)
    wrist = kinematics.sample_wrist(rng, n)
    shape = kinematics.sample_shape(rng, n)
    view = camera.sample_viewpoint(rng, n)
    skin = sample_skin(rng, n)
    light_dir, ambient = sample_light(rng, n)
    background = _bg.sample_backgrounds(rng, n)
    return Scene(template, angles, wrist, shape, view, skin, light_dir, ambient, background)


def _block_rng(seed: int, block: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(int(seed), spawn_key=(int(block),)))


def scene_range(seed: int, start: int, stop: int) -> Scene:
    """The scenes of samples ``start:stop`` of the dataset with seed ``seed``."""
    if not 0 <= start < stop:
        raise ValueError(f"scene_range: need 0 <= start < stop, got {start}, {stop}")
    parts = []
    for b in range(start // BLOCK, (stop - 1) // BLOCK + 1):
        sc = sample_scene(_block_rng(seed, b), BLOCK)
        lo = max(start - b * BLOCK, 0)
        hi = min(stop - b * BLOCK, BLOCK)
        parts.append(sc if (lo, hi) == (0, BLOCK) else sc[lo:hi])
    return parts[0] if len(parts) == 1 else concat_scenes(parts)


# ---------------------------------------------------------------------------------------------
# Rendering
# ---------------------------------------------------------------------------------------------

VISIBILITY_SLACK = 0.003  # metres added to the flesh radius around a keypoint


def render_scene(scene: Scene, size: int, *, num_threads: int | None = None) -> dict:
    """Render a scene into a dict of batched numpy arrays (see docs/data-format.md).

    Keys: ``image`` (N,S,S,3) uint8; ``xyz`` (N,21,3) camera frame, metres, palm at index 0;
    ``uv`` (N,21,2) pixels of the crop; ``visible`` (N,21) bool; ``is_right`` (N,) bool;
    ``cpose`` (N,21,3), ``viewpoint`` (N,3,3), ``scale`` (N,) from ``skeleton.canonicalize``;
    ``K`` (N,3,3); ``template`` (N,) int16; ``content`` (N,F) float32; ``mask`` (N,S,S) bool,
    the hand's pixels (those the renderer's depth buffer holds a surface for).
    """
    size = int(size)
    geom = kinematics.forward_kinematics(scene.angles, scene.shape, scene.wrist)
    palm = geom.keypoints[:, 0]
    view = scene.view
    xyz = camera.place_points(geom.keypoints, palm, view)
    p0 = camera.place_points(geom.p0, palm, view)
    p1 = camera.place_points(geom.p1, palm, view)
    K = camera.crop_intrinsics(xyz, view, size)
    uv = camera.project(K, xyz)

    background = _bg.render_backgrounds(scene.background, size, num_threads=num_threads)
    albedo = capsule_albedo(scene.skin, geom.part)
    image, depth = render_capsules(p0, p1, geom.radius, albedo, K, scene.light_dir,
                                   scene.ambient, background, num_threads=num_threads)

    # Visibility: inside the crop and not behind the rendered surface at the keypoint's pixel.
    pix = np.floor(uv + 0.5).astype(np.int64)
    inside = ((pix >= 0) & (pix < size)).all(-1)
    n_idx = np.arange(len(scene))[:, None]
    pc = np.clip(pix, 0, size - 1)
    surface = depth[n_idx, pc[..., 1], pc[..., 0]]
    visible = inside & (xyz[..., 2] <= surface + geom.keypoint_radius + VISIBILITY_SLACK)

    cpose, viewpoint, scale = canonicalize(xyz, view.is_right)
    content, _ = scene.content_factors()
    return {
        "image": image,
        "xyz": xyz.astype(np.float32),
        "uv": uv.astype(np.float32),
        "visible": visible,
        "is_right": view.is_right.astype(bool),
        "cpose": np.asarray(cpose, dtype=np.float32),
        "viewpoint": np.asarray(viewpoint, dtype=np.float32),
        "scale": np.asarray(scale, dtype=np.float32),
        "K": K.astype(np.float32),
        "template": scene.template.astype(np.int16),
        "content": content,
        "mask": np.isfinite(depth),
    }
