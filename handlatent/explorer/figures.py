"""Pillow drawings for exports: a 3D hand skeleton as an image, frames and the transfer triptych."""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from handlatent.skeleton import BONES, BONE_COLORS, FINGER_COLORS, FINGER_OF_KEYPOINT

BACKGROUND = (22, 24, 30)
TEXT_COLOR = (225, 228, 235)
MARGIN = 0.9     # the skeleton's extent fills this fraction of the half-width
SUPERSAMPLE = 2  # drawn at 2x and downsampled: anti-aliased lines and dots
VIEWS = ("front", "side", "top")


def project(xyz: np.ndarray, view: str = "front") -> np.ndarray:
    """Orthographic (u, v, depth) of points (..., 3) in the camera frame (x right, y down, z far).

    "front" looks along the camera's z; "side" from the hand's +x side (u = z); "top" from
    above (u = x, v = -z). A larger depth is farther from the viewer.
    """
    x, y, z = np.moveaxis(np.asarray(xyz, dtype=np.float64), -1, 0)
    if view == "front":
        return np.stack([x, y, z], -1)
    if view == "side":
        return np.stack([z, y, -x], -1)
    if view == "top":
        return np.stack([x, -z, y], -1)
    raise ValueError(f"unknown view {view!r}; choose one of {', '.join(VIEWS)}")


def fit_extent(xyz: np.ndarray, view: str = "front") -> float:
    """Half-width (normalised units, around the root) that fits every finite joint of `xyz`
    (..., 21, 3) in `view`: pass it to `draw_skeleton` to draw several poses at one scale."""
    uv = project(xyz, view)[..., :2]
    uv = uv[np.isfinite(uv).all(-1)]
    extent = float(np.abs(uv).max()) if uv.size else 0.0
    return extent if extent > 1e-9 else 1.0


def draw_skeleton(xyz: np.ndarray, size: int, view: str = "front", *,
                  extent: float | None = None,
                  background: tuple[int, int, int] = BACKGROUND) -> np.ndarray:
    """A (size, size, 3) uint8 picture of one hand skeleton (21, 3), root at the centre.

    Orthographic projection (`project`). With `extent` (normalised units, e.g. `fit_extent` of
    several poses) the root is at the centre and `extent` reaches `MARGIN` of the half-width,
    so poses drawn with one extent share a scale; without it the skeleton's bounding box is
    fitted. Bones coloured by finger (`BONE_COLORS`), farther ones drawn first and darker;
    joints as dots.
    """
    xyz = np.asarray(xyz, dtype=np.float64)
    if xyz.shape != (21, 3):
        raise ValueError(f"expected a skeleton of shape (21, 3), got {xyz.shape}")
    size = int(size)
    if size < 1:
        raise ValueError(f"size must be >= 1, got {size}")
    s2 = size * SUPERSAMPLE
    uvd = project(xyz, view)
    center = np.zeros(2)
    if extent is None:  # fit this skeleton alone: its bounding box fills the picture
        uv = uvd[np.isfinite(uvd).all(-1), :2]
        if uv.size:
            lo, hi = uv.min(0), uv.max(0)
            center, extent = (lo + hi) / 2, float((hi - lo).max()) / 2
        extent = extent if extent and extent > 1e-9 else 1.0
    scale = MARGIN * s2 / 2 / float(extent)
    px = s2 / 2 + (uvd[:, 0] - center[0]) * scale
    py = s2 / 2 + (uvd[:, 1] - center[1]) * scale
    depth = uvd[:, 2]
    ok = np.isfinite(px) & np.isfinite(py) & np.isfinite(depth)
    finite_depth = depth[ok]
    d_lo, d_hi = (finite_depth.min(), finite_depth.max()) if finite_depth.size else (0.0, 0.0)

    def shade(color: Sequence[float], d: float) -> tuple[int, int, int]:
        far = (d - d_lo) / (d_hi - d_lo) if d_hi > d_lo else 0.0
        k = 1.0 - 0.4 * far
        return tuple(int(round(255 * c * k)) for c in color)  # type: ignore[return-value]

    img = Image.new("RGB", (s2, s2), background)
    draw = ImageDraw.Draw(img)
    width = max(2, round(s2 / 70))
    radius = max(1.5, width * 0.85)
    bones = [(i, a, b) for i, (a, b) in enumerate(BONES) if ok[a] and ok[b]]
    bones.sort(key=lambda t: -(depth[t[1]] + depth[t[2]]))
    for i, a, b in bones:
        draw.line([(px[a], py[a]), (px[b], py[b])],
                  fill=shade(BONE_COLORS[i], (depth[a] + depth[b]) / 2), width=width)
    for j in sorted(np.flatnonzero(ok), key=lambda j: -depth[j]):
        finger = FINGER_OF_KEYPOINT[j]
        base = (0.85, 0.85, 0.85) if finger < 0 else FINGER_COLORS[finger]
        light = [0.55 * c + 0.45 for c in base]
        r = radius * (1.3 if j == 0 else 1.0)
        draw.ellipse([px[j] - r, py[j] - r, px[j] + r, py[j] + r], fill=shade(light, depth[j]))
    return np.asarray(img.resize((size, size), Image.Resampling.BOX), dtype=np.uint8).copy()


def upscale(image: np.ndarray, factor: int) -> np.ndarray:
    """`image` (H, W, 3) uint8 enlarged by an integer factor (nearest neighbour: honest pixels)."""
    if factor == 1:
        return np.asarray(image, dtype=np.uint8)
    return np.repeat(np.repeat(np.asarray(image, dtype=np.uint8), factor, 0), factor, 1)


def frame_with_skeleton(image: np.ndarray, xyz: np.ndarray, *, extent: float | None = None,
                        scale: int = 1, view: str = "front") -> np.ndarray:
    """The decoded `image` (S, S, 3) beside its skeleton drawn at the same size: (kS, 2kS, 3)."""
    big = upscale(image, scale)
    return np.concatenate([big, draw_skeleton(xyz, big.shape[0], view, extent=extent)], axis=1)


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError):  # Pillow without FreeType: the fixed bitmap font
        return ImageFont.load_default()


def title_height(panel: int) -> int:
    """The height of the title strip above a panel `panel` px tall."""
    return max(18, panel // 12)


def _centred_text(draw: ImageDraw.ImageDraw, font: ImageFont.ImageFont | ImageFont.FreeTypeFont,
                  box: tuple[float, float, float, float], text: str) -> None:
    """`text` centred in `box` (left, top, width, height); the bitmap fallback font has no
    anchors, so there it starts at the box's left edge."""
    left, top, width, height = box
    try:
        draw.text((left + width / 2, top + height / 2), text, fill=TEXT_COLOR, font=font,
                  anchor="mm")
    except ValueError:
        draw.text((left + 4, top + 2), text, fill=TEXT_COLOR, font=font)


def titled_row(panels: Sequence[tuple[str, np.ndarray]], gap: int = 4) -> np.ndarray:
    """Panels (title, uint8 image (H, W_k, 3)) of one height side by side, `gap` px apart,
    each under its title: uint8 (title_height(H) + H, sum W_k + gaps, 3)."""
    if not panels:
        raise ValueError("titled_row needs at least one panel")
    height = panels[0][1].shape[0]
    title_h = title_height(height)
    font = _font(int(title_h * 0.7))
    width = sum(image.shape[1] for _, image in panels) + gap * (len(panels) - 1)
    canvas = Image.new("RGB", (width, title_h + height), BACKGROUND)
    draw = ImageDraw.Draw(canvas)
    x = 0
    for title, image in panels:
        _centred_text(draw, font, (x, 0, image.shape[1], title_h), title)
        canvas.paste(Image.fromarray(np.asarray(image, dtype=np.uint8)), (x, title_h))
        x += image.shape[1] + gap
    return np.asarray(canvas, dtype=np.uint8).copy()


def panel_grid(columns: Sequence[tuple[str, np.ndarray, np.ndarray]], *, min_panel: int = 256,
               extent: float | None = None, gap: int = 4) -> np.ndarray:
    """Columns of (title, image (S, S, 3), xyz (21, 3)): title, image, skeleton below, uint8.

    Images are enlarged by an integer factor to at least `min_panel` px; all skeletons share
    one scale (`extent`, default: fitted to all of them).
    """
    if not columns:
        raise ValueError("panel_grid needs at least one column")
    size = columns[0][1].shape[0]
    factor = max(1, math.ceil(min_panel / size))
    panel = size * factor
    if extent is None:
        extent = fit_extent(np.stack([np.asarray(c[2]) for c in columns]))
    title_h = title_height(panel)
    font = _font(int(title_h * 0.7))
    width = len(columns) * panel + (len(columns) + 1) * gap
    height = title_h + 2 * panel + 3 * gap
    canvas = Image.new("RGB", (width, height), BACKGROUND)
    draw = ImageDraw.Draw(canvas)
    for k, (title, image, xyz) in enumerate(columns):
        x = gap + k * (panel + gap)
        _centred_text(draw, font, (x, gap, panel, title_h), title)
        canvas.paste(Image.fromarray(upscale(image, factor)), (x, gap + title_h))
        canvas.paste(Image.fromarray(draw_skeleton(xyz, panel, extent=extent)),
                     (x, 2 * gap + title_h + panel))
    return np.asarray(canvas, dtype=np.uint8).copy()
