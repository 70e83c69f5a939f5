"""Reading user images (files or arrays) safely, and cropping them to the model's input.

Every problem becomes an `ImageError` whose message is one line naming the file and what is
wrong with it. Pixels are never decoded for images over `MAX_PIXELS` (the size is read from the
header first), so a decompression bomb costs nothing.
"""

from __future__ import annotations

import os
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Union

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from handlatent.cli_errors import one_line
from handlatent.photo_crop import CropBox, PhotoCropError, check_box, check_side, crop_photo

if TYPE_CHECKING:
    from handlatent.explorer.decoder import Decoded

MAX_PIXELS = 50_000_000   # refuse larger images before decoding them
THUMBNAIL_SIZE = 256      # longest side of the thumbnail kept of the original image
SLOTS = ("estimate", "pose", "content")
BACKGROUND = (255, 255, 255)  # transparent pixels are composited on white

ImageSource = Union[str, os.PathLike, np.ndarray, Image.Image]
_SIXTEEN_BIT = ("I;16", "I;16L", "I;16B", "I;16N")
_ALPHA_MODES = ("RGBA", "RGBa", "LA", "La", "PA")


class ImageError(ValueError):
    """An image that cannot be used; the message is one line naming the file and the problem."""


@dataclass(frozen=True)
class PreparedImage:
    """A user image read and cropped, before encoding."""

    path: Path | None          # the file it came from (None for arrays and PIL images)
    original_size: tuple[int, int]  # (width, height) as stored, before EXIF rotation
    thumbnail: np.ndarray      # (h, w, 3) uint8: the whole image, longest side <= THUMBNAIL_SIZE
    model_input: np.ndarray    # (S, S, 3) uint8: centre square crop resized to the model's size
    upright_size: tuple[int, int]  # (width, height) after EXIF rotation, full resolution
    crop_box: tuple[float, float, float, float]  # (left, top, right, bottom) of the square
    #   that became model_input, in pixels of the upright full-resolution image
    box: CropBox | None = None  # the user's box (handlatent.photo_crop); None: centre square
    side: str = "left"         # "right": model_input is the box's crop mirrored left-right


@dataclass(frozen=True)
class LoadedImage:
    """A user image in a session slot: the prepared pixels, their encoding and its decoding."""

    path: Path | None          # the file it came from (None for arrays and PIL images)
    original_size: tuple[int, int]  # (width, height) as stored, before EXIF rotation
    thumbnail: np.ndarray      # (h, w, 3) uint8: the whole image, longest side <= THUMBNAIL_SIZE
    model_input: np.ndarray    # (S, S, 3) uint8: what the encoder saw
    z: np.ndarray              # (d,) float32: posterior mean of q(z | model_input)
    decoded: Decoded           # the decoding of z (the model's frame: a right hand mirrored)
    box: CropBox | None = None  # the user's box in the upright photo; None: centre square
    side: str = "left"         # the hand's side; "right": model_input is mirrored
    upright_size: tuple[int, int] | None = None  # (width, height) the box refers to

    @classmethod
    def from_prepared(cls, prepared: PreparedImage, z: np.ndarray,
                      decoded: Decoded) -> LoadedImage:
        """A slot's image from the prepared pixels, their encoding and its decoding."""
        return cls(path=prepared.path, original_size=prepared.original_size,
                   thumbnail=prepared.thumbnail, model_input=prepared.model_input, z=z,
                   decoded=decoded, box=prepared.box, side=prepared.side,
                   upright_size=prepared.upright_size)

    @property
    def label(self) -> str:
        """A short name for display: the file name, or "array"; a right hand says so."""
        name = self.path.name if self.path is not None else "array"
        return f"{name} · right hand" if self.side == "right" else name


def _label(source: ImageSource) -> str:
    if isinstance(source, np.ndarray):
        return "array"
    if isinstance(source, Image.Image):
        return "PIL image"
    if isinstance(source, (str, os.PathLike)):
        return os.fspath(source)
    return type(source).__name__


def _check_pixels(label: str, width: int, height: int, max_pixels: int) -> None:
    if width < 1 or height < 1:
        raise ImageError(f"{label}: image has no pixels ({width}x{height})")
    if width * height > max_pixels:
        raise ImageError(f"{label}: image too large ({width}x{height} = "
                         f"{width * height / 1e6:.0f} megapixels; the limit is "
                         f"{max_pixels / 1e6:.0f})")


def _open_file(path: str, needed: int, max_pixels: int) -> tuple[Image.Image, tuple[int, int]]:
    """Open, size-check and decode a file (JPEGs decoded at reduced size when that suffices)."""
    if not os.path.exists(path):
        raise ImageError(f"{path}: no such file")
    if os.path.isdir(path):
        raise ImageError(f"{path}: is a directory, not an image")
    try:
        if os.path.getsize(path) == 0:
            raise ImageError(f"{path}: empty file (0 bytes)")
        with warnings.catch_warnings():
            # Pillow warns (or raises DecompressionBombError) for very large headers.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            im = Image.open(path)
    except ImageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        pixels = re.search(r"\((\d+) pixels\)", str(error))
        size = f"{int(pixels.group(1)) / 1e6:.0f} megapixels; " if pixels else ""
        raise ImageError(f"{path}: image too large ({size}the limit is "
                         f"{max_pixels / 1e6:.0f})") from None
    except UnidentifiedImageError:
        raise ImageError(f"{path}: not an image, or a format Pillow cannot read") from None
    except PermissionError:
        raise ImageError(f"{path}: permission denied") from None
    except OSError as error:
        raise ImageError(f"{path}: cannot read ({one_line(error.strerror or error)})") from None
    try:
        size = im.size
        _check_pixels(path, *size, max_pixels)
        im.draft(None, (needed, needed))  # JPEG: let libjpeg downscale by 2, 4 or 8
        try:
            im.load()
        except Exception as error:  # Pillow raises OSError, SyntaxError, struct.error, ...
            raise ImageError(f"{path}: corrupt or truncated {im.format or 'image'} data "
                             f"({one_line(error)})") from None
        return im, size
    except BaseException:
        im.close()
        raise


def _from_array(a: np.ndarray, max_pixels: int) -> Image.Image:
    """An RGB/RGBA/L image from an (H, W), (H, W, 1|3|4) array of uint8, uint16, bool or float."""
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[..., 0]
    if not (a.ndim == 2 or (a.ndim == 3 and a.shape[2] in (3, 4))):
        raise ImageError(f"array: expected shape (H, W), (H, W, 3) or (H, W, 4), "
                         f"got {a.shape}")
    _check_pixels("array", a.shape[1], a.shape[0], max_pixels)
    if a.dtype == np.uint8:
        pass
    elif a.dtype == np.bool_:
        a = a.astype(np.uint8) * 255
    elif a.dtype == np.uint16:
        a = np.round(a / 257).astype(np.uint8)
    elif np.issubdtype(a.dtype, np.floating):
        if not np.isfinite(a).all():
            raise ImageError("array: contains NaN or infinite values")
        if a.min() < 0 or a.max() > 1:
            raise ImageError(f"array: float images must lie in [0, 1], got "
                             f"[{a.min():.3g}, {a.max():.3g}]")
        a = np.round(a * 255).astype(np.uint8)
    else:
        raise ImageError(f"array: unsupported dtype {a.dtype} (use uint8, uint16, bool or "
                         f"float in [0, 1])")
    mode = {2: "L", 3: "RGB", 4: "RGBA"}[a.ndim if a.ndim == 2 else a.shape[2]]
    return Image.fromarray(np.ascontiguousarray(a), mode)


def _scaled_to_8bit(im: Image.Image) -> Image.Image:
    """16-bit, 32-bit integer and float grayscale images as 8-bit "L"."""
    a = np.asarray(im).astype(np.float64)
    lo, hi = (float(a.min()), float(a.max())) if a.size else (0.0, 0.0)
    if im.mode in _SIXTEEN_BIT or (im.mode == "I" and lo >= 0 and 255 < hi <= 65535):
        a = a / 257  # full 16-bit range -> 8 bits
    elif im.mode == "F" and lo >= 0 and hi <= 1:
        a = a * 255
    elif not (lo >= 0 and hi <= 255):
        a = (a - lo) / (hi - lo) * 255 if hi > lo else np.zeros_like(a)  # unknown range
    return Image.fromarray(np.clip(np.round(np.nan_to_num(a)), 0, 255).astype(np.uint8), "L")


def to_rgb(im: Image.Image) -> Image.Image:
    """Any Pillow mode as 8-bit RGB: high bit depths scaled, transparency composited on white."""
    if im.mode in _SIXTEEN_BIT or im.mode in ("I", "F"):
        im = _scaled_to_8bit(im)
    elif im.mode == "1":
        im = im.convert("L")
    if im.mode in _ALPHA_MODES or "transparency" in im.info:
        rgba = im.convert("RGBA")
        background = Image.new("RGBA", rgba.size, BACKGROUND + (255,))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return im if im.mode == "RGB" else im.convert("RGB")


def read_image(source: ImageSource, *, needed: int = THUMBNAIL_SIZE,
               max_pixels: int = MAX_PIXELS) -> tuple[Image.Image, tuple[int, int]]:
    """`source` as an upright 8-bit RGB Pillow image and its stored (width, height).

    Files are checked (exists, non-empty, an image, at most `max_pixels`) before their pixels
    are decoded; EXIF orientation is applied. `needed` is the smallest side the caller needs
    (JPEGs may be decoded at a reduced size down to it).
    """
    label = _label(source)
    if isinstance(source, np.ndarray):
        im = _from_array(source, max_pixels)
        size = im.size
    elif isinstance(source, Image.Image):
        _check_pixels(label, *source.size, max_pixels)
        im, size = source, source.size
    elif isinstance(source, (str, os.PathLike)):
        im, size = _open_file(os.fspath(source), needed, max_pixels)
    else:
        raise ImageError(f"cannot read an image from a {type(source).__name__}")
    rgb = None
    try:
        try:
            upright = ImageOps.exif_transpose(im)
        except Exception:  # a broken EXIF block: use the pixels as stored
            upright = im
        rgb = to_rgb(upright)
        rgb.load()
    except Exception as error:
        raise ImageError(f"{label}: cannot convert {im.mode} image to RGB "
                         f"({one_line(error)})") from None
    finally:
        if isinstance(source, (str, os.PathLike)) and rgb is not im:
            im.close()  # the file handle; `rgb` is a separate image
    return rgb, size


def centre_square(width: int, height: int) -> tuple[int, int, int, int]:
    """(left, top, right, bottom) of the centred square with the shorter side of the image."""
    side = min(width, height)
    left, top = (width - side) // 2, (height - side) // 2
    return left, top, left + side, top + side


def square_crop(im: Image.Image, size: int) -> np.ndarray:
    """Centre square crop (the shorter side) resized to `size` x `size` with LANCZOS, uint8."""
    box = centre_square(*im.size)
    out = im.resize((size, size), Image.Resampling.LANCZOS, box=box,
                    reducing_gap=3.0 if box[2] - box[0] > 3 * size else None)
    return np.asarray(out, dtype=np.uint8).copy()


def thumbnail(im: Image.Image, max_side: int = THUMBNAIL_SIZE) -> np.ndarray:
    """The whole image, aspect ratio kept, longest side at most `max_side`, uint8 (h, w, 3)."""
    th = im.copy()
    th.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    return np.asarray(th, dtype=np.uint8).copy()


def prepare_image(source: ImageSource, size: int, *, box: CropBox | None = None,
                  side: str = "left", max_pixels: int = MAX_PIXELS) -> PreparedImage:
    """Read `source` and crop it for a model taking `size` px images (raises ImageError).

    Without `box`, the centre square; with one (pixels of the upright full-resolution image,
    handlatent.photo_crop), that square, which must lie inside the image. `side` "right"
    mirrors the crop so that the encoder sees a left hand, the model's canonical hand.
    """
    check_side(side)
    im, original_size = read_image(source, needed=max(size, THUMBNAIL_SIZE) if box is None
                                   else 1 << 20, max_pixels=max_pixels)
    path = Path(source) if isinstance(source, (str, os.PathLike)) else None
    w, h = im.size  # upright; JPEGs may have been decoded at 1/2, 1/4 or 1/8 of full size
    stored_w, stored_h = original_size
    # EXIF rotations by 90 degrees swap the sides; when the decode came out square they are
    # equal up to the JPEG reduction's rounding, and the box is the whole image either way
    upright = (stored_h, stored_w) if (w - h) * (stored_w - stored_h) < 0 else original_size
    sx, sy = upright[0] / w, upright[1] / h
    if box is None:
        left, top, right, bottom = centre_square(w, h)
        crop_box = (left * sx, top * sy, right * sx, bottom * sy)
        model_input = square_crop(im, size)
        if side == "right":
            model_input = np.ascontiguousarray(model_input[:, ::-1])
    else:
        try:
            check_box(box, *upright, label=_label(source))
        except PhotoCropError as error:
            raise ImageError(str(error)) from None
        decoded_box = CropBox(box.x / sx, box.y / sy, box.size / sx)
        model_input = crop_photo(im, decoded_box, side, size)
        crop_box = box.edges
    return PreparedImage(path=path, original_size=original_size, thumbnail=thumbnail(im),
                         model_input=model_input, upright_size=upright, crop_box=crop_box,
                         box=box, side=side)
