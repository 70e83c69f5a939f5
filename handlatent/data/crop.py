"""Hand crops of real photographs, shared by the RHD and STB readers (and their common helpers).

Geometry. A crop is an affine map ``M`` (3×3, homogeneous pixels) from the source image to the
S×S crop, in the pixel convention of docs/data-format.md (pixel (row i, column j) is centred at
(u, v) = (j, i)):

    uv_crop = c + s · R(θ) · (uv_source − centre),   c = (S − 1) / 2,  s = S / side

so the square of `side` source pixels around `centre` fills the crop, turned by θ about the crop
centre (θ > 0 turns the picture clockwise on screen, y pointing down). The camera looking at the
crop has the intrinsics ``K_crop = M · K · Rz(θ)ᵀ`` and sees the 3D points turned by ``Rz(θ)``
(a rotation about the optical axis): for every point ``uv_crop = project(K_crop, Rz(θ) · xyz)``,
exactly, for any source ``K``.

The crop box follows hand3d (Zimmermann & Brox 2017, and the successors evaluated on the same
protocol): centred on the middle-finger MCP (keypoint 12), side = twice the largest distance from
there to the (visible) keypoints' bounding box clipped to the image, clamped to 50–500 source
pixels, times a margin (1.25, as their later readers use): the hand fills about 80 % of the crop,
so the scale augmentation (zoom in by up to 1.2) never cuts a keypoint off by itself.
"""

from __future__ import annotations

import copy
import math
import os
import threading
import urllib.parse
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from handlatent.data.augment import (IDENTITY, Augmentation, rng_for, sample_augmentation,
                                     shift_hue)
from handlatent.skeleton import canonicalize

__all__ = ["DEFAULT_MARGIN", "crop_box", "crop_matrix", "warp", "project", "rotation_z",
           "crop_intrinsics", "ReaderError", "parse_spec", "BadSamples", "read_png",
           "real_content_length", "crop_item", "CroppedHandDataset", "COMMON_OPTIONS",
           "existing_folder"]

DEFAULT_MARGIN = 1.25
MIN_SIDE, MAX_SIDE = 50.0, 500.0  # source pixels (hand3d's clamp)


# ------------------------------------------------------------------------------------ geometry


def crop_box(uv: np.ndarray, visible: np.ndarray | None, image_shape: tuple[int, int],
             margin: float = DEFAULT_MARGIN) -> tuple[np.ndarray, float]:
    """(centre (2,), side) of the square crop around 21 keypoints `uv` (source pixels)."""
    uv = np.asarray(uv, np.float64)
    pts = uv if visible is None or not np.any(visible) else uv[np.asarray(visible, bool)]
    centre = uv[12].copy()
    if not np.all(np.isfinite(centre)):
        centre = pts.mean(0)
    h, w = image_shape
    lo = np.maximum(pts.min(0), 0.0)
    hi = np.minimum(pts.max(0), [w, h])
    side = 2.0 * float(np.max(np.maximum(hi - centre, centre - lo)))
    side = 200.0 if not math.isfinite(side) else min(max(side, MIN_SIDE), MAX_SIDE)
    return centre, side * margin


def crop_matrix(centre, side: float, size: int, angle: float = 0.0) -> np.ndarray:
    """M (3, 3): source pixels → crop pixels (module docstring)."""
    s = size / side
    c, n = math.cos(angle), math.sin(angle)
    rot = np.array([[c, -n], [n, c]])
    m = np.eye(3)
    m[:2, :2] = s * rot
    m[:2, 2] = (size - 1) / 2 - s * rot @ np.asarray(centre, np.float64)
    return m


def rotation_z(angle: float) -> np.ndarray:
    """Rz(θ) (3, 3): the rotation about the camera's optical axis matching crop angle θ."""
    c, n = math.cos(angle), math.sin(angle)
    return np.array([[c, -n, 0.0], [n, c, 0.0], [0.0, 0.0, 1.0]])


def crop_intrinsics(m: np.ndarray, k: np.ndarray, angle: float = 0.0) -> np.ndarray:
    """K_crop = M · K · Rz(θ)ᵀ: projects the turned points (Rz(θ) · xyz) onto the crop."""
    return m @ np.asarray(k, np.float64) @ rotation_z(angle).T


def project(k: np.ndarray, xyz: np.ndarray) -> np.ndarray:
    """Pixels (..., 2) of camera-frame points `xyz` (..., 3) under intrinsics `k` (3, 3)."""
    p = np.asarray(xyz, np.float64) @ np.asarray(k, np.float64).T
    return p[..., :2] / p[..., 2:3]


def warp(image: np.ndarray, m: np.ndarray, size: int) -> np.ndarray:
    """The S×S crop (uint8, H×W×3 → S×S×3) of `image` under M, bilinear, black outside."""
    inv = np.linalg.inv(m)
    a = inv[:2, :2]
    # Pillow samples at pixel corners + 0.5 (x' = u + 0.5): shift the map into that convention
    t = inv[:2, 2] + 0.5 - a @ np.array([0.5, 0.5])
    coeffs = (a[0, 0], a[0, 1], t[0], a[1, 0], a[1, 1], t[1])
    out = Image.fromarray(image).transform((size, size), Image.Transform.AFFINE, coeffs,
                                           resample=Image.Resampling.BILINEAR, fillcolor=(0, 0, 0))
    return np.array(out)  # writable: torch.from_numpy wants that


def crop_item(image: np.ndarray, xyz: np.ndarray, k: np.ndarray, visible: np.ndarray,
              is_right: bool, size: int, margin: float = DEFAULT_MARGIN,
              aug: Augmentation = IDENTITY,
              box: tuple[np.ndarray, float] | None = None) -> dict[str, torch.Tensor]:
    """One dataset item (the keys and dtypes of SyntheticHandDataset) from a source photograph.

    image: uint8 (H, W, 3); xyz: (21, 3) metres, camera frame, RHD order, palm at 0; k: (3, 3)
    source intrinsics; visible: (21,) bool. The crop box (centre, side) is `box`, or comes from
    the projected keypoints (`crop_box`); `aug` zooms, shifts and turns it and shifts the hue. Raises ValueError for a
    hand that cannot be canonicalised (non-finite or degenerate keypoints).
    """
    xyz = np.asarray(xyz, np.float64)
    cpose, viewpoint, scale = canonicalize(xyz, bool(is_right))  # ValueError for bad hands
    uv_source = project(k, xyz)
    if not np.all(np.isfinite(uv_source)) or np.any(xyz[:, 2] <= 0):
        raise ValueError("keypoints behind the camera or not finite")
    centre, side = box if box is not None else crop_box(uv_source, visible, image.shape[:2],
                                                        margin)
    side /= aug.zoom
    centre = centre + np.asarray(aug.shift) * side / size
    m = crop_matrix(centre, side, size, aug.angle)
    rz = rotation_z(aug.angle)
    xyz = xyz @ rz.T  # turned about the optical axis with the picture
    k_crop = crop_intrinsics(m, k, aug.angle)
    crop = shift_hue(warp(image, m, size), aug.hue)
    image_t = torch.from_numpy(np.ascontiguousarray(crop)).permute(2, 0, 1)
    image_t = image_t.to(torch.float32).div_(127.5).sub_(1.0)
    f32 = lambda a: torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))  # noqa: E731
    return {
        "image": image_t,
        "xyz": f32(xyz),
        "cpose": f32(cpose),
        "viewpoint": f32(viewpoint @ rz.T),
        "scale": torch.tensor(float(scale), dtype=torch.float32),
        "uv": f32(project(k_crop, xyz)),
        "visible": torch.from_numpy(np.asarray(visible, bool).copy()),
        "is_right": torch.tensor(bool(is_right)),
        "labelled": torch.tensor(True),
        "content": torch.zeros(real_content_length(), dtype=torch.float32),
        "K": f32(k_crop),
        "template": torch.tensor(-1),
    }


# ------------------------------------------------------------------------- reader helpers


class ReaderError(ValueError):
    """A dataset file or folder that cannot be used; `str(err)` is one line naming the path."""


def parse_spec(path, options: dict, allowed: dict) -> tuple[str, dict]:
    """Split ``PATH?key=value&...`` into the path and options (query values override nothing
    given as keyword arguments; a key given both ways must agree). `allowed` maps each key to a
    converter. Returns (path, merged options)."""
    text = os.fspath(path)
    base, sep, query = text.partition("?")
    if not sep or os.path.exists(text):
        return text, dict(options)
    merged = dict(options)
    for key, value in urllib.parse.parse_qsl(query, keep_blank_values=True, strict_parsing=False):
        if key not in allowed:
            raise ReaderError(f"{text}: unknown option {key!r} (known: {', '.join(allowed)})")
        try:
            value = allowed[key](value)
        except ValueError as err:
            raise ReaderError(f"{text}: option {key}: {err}") from None
        if options.get(key) is not None and options[key] != value:
            raise ReaderError(f"{text}: option {key}={value!r} contradicts {key}={options[key]!r}")
        merged[key] = value
    return base, merged


def existing_folder(path) -> Path:
    """`path` as a Path if it is a folder; ReaderError naming it otherwise."""
    root = Path(path)
    if not root.is_dir():
        raise ReaderError(f"{root}: no such directory" if not root.exists()
                          else f"{root}: not a directory")
    return root


def on_error_option(value: str) -> str:
    if value not in ("raise", "skip"):
        raise ValueError(f"expected raise or skip, got {value!r}")
    return value


def read_png(path: str, mode: str | None = None) -> np.ndarray:
    """A PNG as a numpy array; a missing, truncated or corrupt file → ReaderError naming it."""
    try:
        with Image.open(path) as im:
            im.load()
            if mode is not None and im.mode != mode:
                im = im.convert(mode)
            return np.asarray(im)
    except FileNotFoundError:
        raise ReaderError(f"{path}: no such file") from None
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as err:
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise ReaderError(f"{path}: cannot read the image ({reason})") from None


class BadSamples:
    """What a reader with ``on_error="skip"`` dropped or replaced, never silently.

    Samples found bad when the dataset is opened (missing files, broken labels) are dropped from
    it, with one warning giving the count and the first path. A sample found bad when loaded (a
    corrupt PNG) is replaced by the next good one, with a warning per bad file naming it and the
    running count of this process (DataLoader workers each count their own).
    """

    def __init__(self, name: str, on_error: str):
        self.name, self.on_error = name, on_error
        self.dropped: list[tuple[int, str]] = []  # (sample id, reason) found at open
        self.replaced: dict[int, str] = {}  # index -> reason, found while loading
        self._lock = threading.Lock()

    @property
    def skip(self) -> bool:
        return self.on_error == "skip"

    def drop(self, sample: int, reason: str) -> None:
        """A sample found bad at open: raise (on_error=raise) or remember it."""
        if not self.skip:
            raise ReaderError(reason)
        self.dropped.append((sample, reason))

    def report_dropped(self, total: int, unit: str = "samples") -> None:
        if self.dropped:
            warnings.warn(f"{self.name}: skipping {len(self.dropped)} of {total} {unit} "
                          f"(first: {self.dropped[0][1]})", stacklevel=3)

    def replace(self, index: int, reason: str, replacement: int) -> None:
        with self._lock:
            self.replaced[index] = reason
            count = len(self.replaced)
        warnings.warn(f"{self.name}: {reason}; using sample {replacement} instead "
                      f"({count} bad sample{'s' if count > 1 else ''} so far in this process)",
                      stacklevel=3)

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_lock"] = None
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._lock = threading.Lock()


_CONTENT_LENGTH: int | None = None


def real_content_length() -> int:
    """Length of the `content` vector of synthetic items (their content factors), so that real
    items (content unknown: zeros) collate with synthetic ones in one batch."""
    global _CONTENT_LENGTH
    if _CONTENT_LENGTH is None:
        from handlatent.synth.scene import content_factor_names

        _CONTENT_LENGTH = len(content_factor_names())
    return _CONTENT_LENGTH




# ------------------------------------------------------------------- the readers' common base


def size_option(value: str) -> int:
    size = int(value)
    if size < 8:
        raise ValueError(f"expected a crop size >= 8, got {size}")
    return size


def margin_option(value: str) -> float:
    margin = float(value)
    if not margin > 0:
        raise ValueError(f"expected a margin > 0, got {margin}")
    return margin


COMMON_OPTIONS = {"size": size_option, "margin": margin_option, "on_error": on_error_option}


class CroppedHandDataset(Dataset):
    """Base of the real-photograph readers: hand crops with optional, reproducible augmentation.

    `ds[i]` is sample i without augmentation; `ds[(i, epoch)]` is sample i as augmented in that
    epoch (the same every time: the trainer passes the epoch with each index). Augmentation is
    off until `with_augment(cfg, seed)` returns an augmenting copy (sharing the labels).
    Subclasses fill `self.name`, `len` and `_load(index)`.
    """

    kind = ""
    accepts_epoch = True  # the trainer may pass (index, epoch) keys

    def __init__(self, name: str, size: int, margin: float, on_error: str):
        if on_error not in ("raise", "skip"):
            raise ValueError(f"on_error: expected 'raise' or 'skip', got {on_error!r}")
        self.name = name
        self.size = int(size)
        self.margin = float(margin)
        self.bad = BadSamples(name, on_error)
        self.augment = None
        self.augment_seed: tuple[int, ...] = (0,)

    def __len__(self) -> int:  # pragma: no cover - subclasses
        raise NotImplementedError

    def _load(self, index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, bool, str]:
        """(image uint8 H×W×3, xyz (21, 3) palm-rooted metres, K, visible (21,), is_right, the
        image's path) of sample `index`; ReaderError for an unreadable file."""
        raise NotImplementedError  # pragma: no cover

    def _box(self, image: np.ndarray) -> tuple[np.ndarray, float] | None:
        """The crop box (centre, side) of a sample's image; None: around its keypoints."""
        return None

    def with_augment(self, cfg, seed=0) -> "CroppedHandDataset":
        """A copy that augments each `(index, epoch)` as `cfg` (an AugmentConfig) says, drawn
        from rng_for((*seed,), epoch, index); `cfg` None or disabled: no augmentation."""
        out = copy.copy(self)
        out.augment = cfg if cfg is not None and cfg.enabled else None
        out.augment_seed = tuple(int(s) for s in (seed if isinstance(seed, (list, tuple))
                                                  else (seed,)))
        return out

    def _augmentation(self, index: int, epoch: int | None) -> Augmentation:
        if self.augment is None or epoch is None:
            return IDENTITY
        return sample_augmentation(self.augment, rng_for(self.augment_seed, epoch, index),
                                   self.size)

    def item(self, index: int, aug: Augmentation = IDENTITY) -> dict[str, torch.Tensor]:
        """Sample `index` with augmentation `aug`; ReaderError (naming the file) if unusable."""
        image, xyz, k, visible, is_right, where = self._load(index)
        try:
            return crop_item(image, xyz, k, visible, is_right, self.size, self.margin, aug,
                             self._box(image))
        except ValueError as err:
            raise ReaderError(f"{where}: unusable labels ({str(err).splitlines()[0]})") from None

    def __getitem__(self, key) -> dict[str, torch.Tensor]:
        index, epoch = (key if isinstance(key, tuple) else (key, None))
        n = len(self)
        index = int(index)
        if not -n <= index < n:
            raise IndexError(f"index {index} out of range for {n} samples")
        index %= n
        aug = self._augmentation(index, epoch)
        for attempt in range(n):
            j = (index + attempt) % n
            if j in self.bad.replaced:  # known bad in this process (already reported)
                continue
            try:
                return self.item(j, aug)
            except ReaderError as err:
                if not self.bad.skip:
                    raise
                self.bad.replace(j, str(err), (j + 1) % n)
        raise ReaderError(f"{self.name}: none of the {n} samples is readable")

    def __repr__(self) -> str:
        aug = ", augmented" if self.augment is not None else ""
        return f"{type(self).__name__}({self.name!r}, {len(self)} samples, {self.size}px{aug})"
