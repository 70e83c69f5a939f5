"""Latent presets: a small JSON file holding one latent z, tied to a latent layout."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from handlatent.explorer.files import write_atomically
from handlatent.model import LatentLayout

FORMAT = "handlatent-preset"
VERSION = 1


class PresetError(ValueError):
    """A preset file that cannot be used; one line naming the file and the problem."""


def preset_dict(z: np.ndarray, layout: LatentLayout, model_name: str) -> dict[str, Any]:
    """The JSON-ready content of a preset."""
    return {"format": FORMAT, "version": VERSION, "layout": layout.to_dict(),
            "model": model_name, "z": [float(v) for v in np.asarray(z, dtype=np.float32)]}


def save_preset(path: str | os.PathLike, z: np.ndarray, layout: LatentLayout,
                model_name: str) -> Path:
    """Write a preset atomically (temporary file, then rename); returns the path."""
    text = json.dumps(preset_dict(z, layout, model_name), indent=1) + "\n"
    return write_atomically(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def read_preset(path: str | os.PathLike, layout: LatentLayout) -> tuple[np.ndarray, dict]:
    """The latent z (d,) float32 stored in `path` and the whole parsed preset.

    Raises PresetError for an unreadable file, broken JSON, another format, a newer version,
    a layout other than `layout`, or a z of the wrong length or with non-finite numbers.
    """
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PresetError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as error:
        raise PresetError(f"{path}: cannot read ({' '.join(str(error).split())})") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise PresetError(f"{path}: not valid JSON ({error.msg} at line {error.lineno}, "
                          f"column {error.colno})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise PresetError(f"{path}: not a handlatent preset (no \"format\": \"{FORMAT}\")")
    version = data.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or not 1 <= version <= VERSION:
        raise PresetError(f"{path}: unsupported preset version {version!r} (this version "
                          f"reads 1 to {VERSION})")
    stored = data.get("layout")
    if stored != layout.to_dict():
        want = ", ".join(f"{k}={v}" for k, v in layout.to_dict().items())
        have = (", ".join(f"{k}={v}" for k, v in stored.items()) if isinstance(stored, dict)
                else repr(stored))
        raise PresetError(f"{path}: preset is for latent layout {have}; this model has {want}")
    z = data.get("z")
    if (not isinstance(z, list) or len(z) != layout.total
            or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in z)):
        raise PresetError(f"{path}: \"z\" must be a list of {layout.total} numbers")
    arr = np.asarray(z, dtype=np.float64).astype(np.float32)
    if not np.isfinite(arr).all():
        raise PresetError(f"{path}: \"z\" contains NaN, infinite or out-of-range values")
    return arr, data
