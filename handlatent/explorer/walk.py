"""Latent walks: interpolated frames between two latents, their export as GIF, MP4 or PNG, and
`Walk`, the session part that holds a walk's endpoints (`session.walk`).

An export writes to a temporary file beside the target and renames it at the end, so a
cancelled or failed export leaves nothing behind.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable

import numpy as np
from PIL import Image

from handlatent.explorer.decoder import Decoded
from handlatent.explorer.events import Events
from handlatent.explorer.files import reserve_temp
from handlatent.explorer.figures import fit_extent, frame_with_skeleton
from handlatent.explorer.images import ImageSource, prepare_image
from handlatent.explorer.latent import LatentHost, check_latent, part_slice
from handlatent.model import LatentLayout

if TYPE_CHECKING:
    from handlatent.explorer.runner import ModelRunner

FORMATS = (".gif", ".mp4", ".png")
ENDPOINTS = ("A", "B")
DECODE_CHUNK = 8  # latents decoded per forward pass during an export

Progress = Callable[[int, int], None]
Cancel = Callable[[], bool]


class ExportCancelled(Exception):
    """Raised by an export when its `cancel()` returned True; no file was left behind."""


def interpolate(a: np.ndarray, b: np.ndarray, base: np.ndarray, moving: Iterable[slice],
                n: int) -> np.ndarray:
    """(n, d) latents: the `moving` slices go linearly from a to b (endpoints exact), the rest
    stay at `base`."""
    if n < 1:
        raise ValueError(f"a walk needs at least 1 frame, got {n}")
    a, b, base = (np.asarray(v, dtype=np.float32) for v in (a, b, base))
    t = np.linspace(0.0, 1.0, n, dtype=np.float64)[:, None] if n > 1 else np.zeros((1, 1))
    frames = np.repeat(base[None], n, axis=0)
    for s in moving:
        lerp = (1 - t) * a[s].astype(np.float64) + t * b[s].astype(np.float64)
        frames[:, s] = lerp.astype(np.float32)
        frames[0, s], frames[-1, s] = (a[s], b[s]) if n > 1 else (a[s], a[s])
    return frames


def check_export_path(path: str | os.PathLike) -> Path:
    """`path` as a Path, if its suffix is a supported format and its folder exists."""
    path = Path(path)
    if path.suffix.lower() not in FORMATS:
        raise ValueError(f"{path}: unsupported export format {path.suffix or '(none)'!r}; "
                         f"use one of {', '.join(FORMATS)}")
    if not path.parent.is_dir():
        raise ValueError(f"{path}: folder {path.parent} does not exist")
    return path


def export_frames(decode: Callable[[np.ndarray], list[Decoded]], latents: np.ndarray,
                  path: str | os.PathLike, *, fps: float = 12, extent: float | None = None,
                  scale: int = 1, progress: Progress | None = None,
                  cancel: Cancel | None = None,
                  second: Callable[[np.ndarray], list[Decoded]] | None = None) -> Path:
    """Decode `latents` (n, d) and write them to `path` (.gif animation, .mp4 H.264 video, or
    .png strip, left to right); each frame is the image beside its skeleton, (kS, 2kS).

    `extent` fixes the skeleton scale (default: fitted to the first chunk of frames);
    `progress(i, n)` is called after frame i (1..n) is written; `cancel()` is polled before each
    frame and, when True, the partial file is removed and ExportCancelled raised. A GIF merges
    consecutive identical frames (Pillow adds their durations), e.g. when A equals B.
    `second` (a compared model's decode) adds its frame of each latent as a second row.
    """
    path = check_export_path(path)
    latents = np.asarray(latents, dtype=np.float32)
    n = len(latents)
    if latents.ndim != 2 or n < 1:
        raise ValueError(f"expected latents of shape (n >= 1, d), got {latents.shape}")
    if not fps > 0:
        raise ValueError(f"fps must be > 0, got {fps}")
    if int(scale) != scale or scale < 1:
        raise ValueError(f"scale must be an integer >= 1, got {scale}")
    suffix = path.suffix.lower()
    tmp = reserve_temp(path, f".partial{suffix}")
    writer = _Writer(suffix, tmp, fps)
    try:
        done = 0
        for start in range(0, n, DECODE_CHUNK):
            if cancel is not None and cancel():
                raise ExportCancelled(f"export to {path} cancelled")
            chunk = decode(latents[start:start + DECODE_CHUNK])
            rows = second(latents[start:start + DECODE_CHUNK]) if second else [None] * len(chunk)
            if extent is None:
                extent = fit_extent(np.stack([f.xyz for f in chunk])) * 1.15
            for k, (frame, other) in enumerate(zip(chunk, rows)):
                if k and cancel is not None and cancel():
                    raise ExportCancelled(f"export to {path} cancelled")
                picture = frame_with_skeleton(frame.image, frame.xyz, extent=extent,
                                              scale=int(scale))
                if other is not None:
                    picture = np.concatenate([picture, _fit_to(frame_with_skeleton(
                        other.image, other.xyz, extent=extent, scale=int(scale)),
                        picture.shape)], axis=0)
                writer.append(picture)
                done += 1
                if progress is not None:
                    progress(done, n)
        writer.close()
        os.replace(tmp, path)
    except BaseException:
        writer.abort()
        tmp.unlink(missing_ok=True)
        raise
    return path


def _fit_to(picture: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """`picture` resized to `shape` (a compared model of another image size)."""
    if picture.shape == shape:
        return picture
    return np.asarray(Image.fromarray(picture).resize((shape[1], shape[0]), Image.NEAREST))


class _Writer:
    """Appends RGB frames to a GIF, MP4 or PNG-strip file."""

    def __init__(self, suffix: str, path: Path, fps: float) -> None:
        self.suffix, self.path, self.fps = suffix, path, fps
        self.frames: list[np.ndarray] = []
        self.video = None

    def append(self, frame: np.ndarray) -> None:
        if self.suffix == ".mp4":
            if self.video is None:
                import imageio.v2 as imageio  # imported on first use: it is slow to import
                self.video = imageio.get_writer(
                    self.path, format="FFMPEG", mode="I", fps=self.fps, codec="libx264",
                    quality=8, pixelformat="yuv420p", macro_block_size=16,
                    ffmpeg_log_level="error")
            self.video.append_data(frame)
        else:
            self.frames.append(frame)

    def close(self) -> None:
        if self.suffix == ".mp4":
            if self.video is not None:
                self.video.close()
                self.video = None
        elif self.suffix == ".gif":
            images = [Image.fromarray(f) for f in self.frames]
            images[0].save(self.path, format="GIF", save_all=True, append_images=images[1:],
                           duration=round(1000 / self.fps), loop=0, disposal=1)
        else:
            Image.fromarray(np.concatenate(self.frames, axis=1)).save(self.path, format="PNG")

    def abort(self) -> None:
        if self.video is not None:
            try:
                self.video.close()
            except Exception:
                pass
            self.video = None



class Walk:
    """Endpoints A and B, the sub-latents that move between them, the position, the export.

    Parts not in `parts` stay at the host's current latent. `set_position` moves the host's
    latent without an undo step. Event: "walk_changed"() after an endpoint or `parts` changed.
    """

    EVENTS = ("walk_changed",)

    def __init__(self, host: LatentHost, runner: ModelRunner) -> None:
        self.events = Events(self.EVENTS)
        self.layout = runner.model.layout
        self.position: float = 0.0
        self._host = host
        self._runner = runner
        self._ends: dict[str, np.ndarray | None] = {name: None for name in ENDPOINTS}
        self._parts: frozenset[str] = frozenset(self.layout.names)
        # a compared model's decode (compare.Comparison sets it): exports get a second row
        self.compared: Callable[[np.ndarray], list[Decoded]] | None = None

    def adopt(self, layout: LatentLayout) -> None:
        """Follow a model switch: endpoints and moving parts stay if `layout` is the same,
        else they are cleared (and all parts move)."""
        if layout != self.layout:
            self.layout = layout
            self._ends = {name: None for name in ENDPOINTS}
            self._parts = frozenset(layout.names)
        self.events.emit("walk_changed")

    @staticmethod
    def _endpoint_name(which: str) -> str:
        name = str(which).upper()
        if name not in ENDPOINTS:
            raise ValueError(f"walk endpoint must be 'A' or 'B', got {which!r}")
        return name

    def set_endpoint(self, which: str, z: Any = None) -> None:
        """Set endpoint "A" or "B" to `z` (default: the current latent)."""
        name = self._endpoint_name(which)
        self._ends[name] = self._host.latent if z is None else check_latent(z, self.layout)
        self.events.emit("walk_changed")

    def set_endpoint_image(self, which: str, source: ImageSource) -> np.ndarray:
        """Set an endpoint to the encoding of an image (ImageError, a ValueError, if bad)."""
        self._endpoint_name(which)
        z = self._runner.encode(prepare_image(source, self._runner.image_size).model_input)
        self.set_endpoint(which, z)
        return z

    def endpoint(self, which: str) -> np.ndarray | None:
        """A copy of endpoint "A" or "B", or None if unset."""
        z = self._ends[self._endpoint_name(which)]
        return None if z is None else z.copy()

    def endpoint_image(self, which: str) -> np.ndarray | None:
        """The decoded image (S, S, 3) of an endpoint, or None if unset."""
        z = self._ends[self._endpoint_name(which)]
        return None if z is None else self._runner.decode(z[None])[0].image

    @property
    def ready(self) -> bool:
        """Whether both endpoints are set."""
        return all(z is not None for z in self._ends.values())

    @property
    def parts(self) -> frozenset[str]:
        """The sub-latents the walk moves (the others stay at the current latent)."""
        return self._parts

    @parts.setter
    def parts(self, parts: str | Iterable[str]) -> None:
        if isinstance(parts, str):
            parts = self.layout.names if parts == "all" else (parts,)
        parts = frozenset(parts)
        for part in parts:
            part_slice(self.layout, part)
        if parts != self._parts:
            self._parts = parts
            self.events.emit("walk_changed")

    def _ends_set(self) -> tuple[np.ndarray, np.ndarray]:
        a, b = self._ends["A"], self._ends["B"]
        if a is None or b is None:
            unset = " and ".join(k for k in ENDPOINTS if self._ends[k] is None)
            raise ValueError(f"set walk endpoint {unset} first")
        return a, b

    def _moving(self) -> list[slice]:
        return [self.layout.slices[p] for p in self.layout.names if p in self._parts]

    def frames(self, n: int) -> np.ndarray:
        """(n, d) latents from A to B (moving parts linear, endpoints exact; others current)."""
        a, b = self._ends_set()
        return interpolate(a, b, self._host.latent, self._moving(), int(n))

    def set_position(self, t: float) -> None:
        """Move the current latent to position t in [0, 1] of the walk (no undo step)."""
        t = float(t)
        if not 0.0 <= t <= 1.0:
            raise ValueError(f"walk position must be in [0, 1], got {t}")
        a, b = self._ends_set()
        z = self._host.latent
        for s in self._moving():
            z[s] = a[s] if t == 0 else b[s] if t == 1 else (
                (1 - t) * a[s].astype(np.float64) + t * b[s].astype(np.float64))
        self.position = t
        self._host.set_latent(z, record=False)

    def export(self, path: str | os.PathLike, n_frames: int, fps: float = 12,
               progress: Progress | None = None, cancel: Cancel | None = None, *,
               scale: int = 1) -> Path:
        """Write the walk's `n_frames` as .gif, .mp4 or a .png strip (image | skeleton per
        frame, `scale` times the model's size; a compared model's frames as a second row). Raises ExportCancelled when `cancel()` turns
        True (no file is left), ValueError for a bad path or unset endpoints. Safe on a
        background thread."""
        return self.export_latents(self.frames(n_frames), path, fps, progress, cancel,
                                   scale=scale)

    def export_bvh(self, path: str | os.PathLike, n_frames: int, fps: float = 12) -> Path:
        """Write the walk's `n_frames` 3D poses as a BVH skeleton animation (handlatent.bvh),
        atomically; ValueError for a bad path, fps or unset endpoints."""
        if Path(path).suffix.lower() != ".bvh":
            raise ValueError(f"{path}: a BVH export needs the suffix .bvh")
        from handlatent.bvh import write_bvh

        xyz = self._runner.decode_pose(self.frames(n_frames))["xyz"]
        return write_bvh(path, xyz, fps)

    def export_latents(self, latents: np.ndarray, path: str | os.PathLike, fps: float = 12,
                       progress: Progress | None = None, cancel: Cancel | None = None, *,
                       scale: int = 1) -> Path:
        """`export` for any latents (n, d), e.g. frames taken with `frames` earlier."""
        latents = np.asarray(latents, dtype=np.float32).reshape(-1, self.layout.total)
        xyz = self._runner.decode_pose(latents)["xyz"]
        return export_frames(self._runner.decode, latents, path, fps=fps,
                             extent=fit_extent(xyz) * 1.05, scale=scale, progress=progress,
                             cancel=cancel, second=self.compared)
