"""Label folders: hand crops with hand-corrected 2D and 3D keypoints (docs/data-format.md).

    DIR/labels.json        the index: format, version, the item names in order (written last)
    DIR/crops/NAME.png     the crop, RGB, in the photo's own handedness
    DIR/items/NAME.json    its labels: xyz, uv, K, visible, is_right (+ cpose, viewpoint, scale
                           and where it came from, for people)

The explorer appends to a folder one item at a time (Labels ▸ Save): the crop and its JSON are
each written to a temporary file and renamed, then the index is rewritten the same way. A
writer killed at any point leaves the index of before (every item saved before is readable) and
at most an item's files that no index names. `open_dataset("labels:DIR")` (or a plain DIR
holding labels.json) reads the folder as a torch Dataset with the items of every other reader
(`LabelledFolder`, a CroppedHandDataset: resized to the model's size, augmentable).
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from handlatent.data import LABELS_INDEX as INDEX
from handlatent.data.crop import (COMMON_OPTIONS, DEFAULT_MARGIN, CroppedHandDataset,
                                  ReaderError, parse_spec, read_png)
from handlatent.skeleton import KEYPOINT_NAMES, NUM_KEYPOINTS, canonicalize

FORMAT = "handlatent-labels"
FORMAT_VERSION = 1
CROPS, ITEMS = "crops", "items"
_NAME = re.compile(r"^\d{6}$")
UNITS = ("xyz: metres, camera frame of the crop (x right, y down, z forward), RHD order, "
         "keypoint 0 the palm; uv: pixels of the crop, OpenCV convention (pixel (i, j) centred "
         "at (u, v) = (j, i)); K: the crop's intrinsics, uv = (K @ xyz) / z")


class LabelFolderError(ValueError):
    """A label folder that cannot be read or written; one line naming the file."""


@dataclass(frozen=True)
class LabelItem:
    """One labelled hand: the crop and its keypoints (the units of `UNITS`)."""

    image: np.ndarray      # (S, S, 3) uint8, the photo's own handedness
    xyz: np.ndarray        # (21, 3) metres, camera frame of the crop
    uv: np.ndarray         # (21, 2) pixels of the crop
    k: np.ndarray          # (3, 3) the crop's intrinsics
    visible: np.ndarray    # (21,) bool
    is_right: bool
    source: dict[str, Any] = field(default_factory=dict)   # photo, box, side, model: for people

    def record(self, name: str) -> dict[str, Any]:
        """The item's JSON document."""
        cpose, viewpoint, scale = canonicalize(np.asarray(self.xyz, np.float64)
                                               - self.xyz[:1], self.is_right)
        as_list = lambda a: np.asarray(a, np.float64).tolist()  # noqa: E731  # exact
        return {"format": FORMAT, "format_version": FORMAT_VERSION,
                "image": f"{CROPS}/{name}.png", "size": int(self.image.shape[0]),
                "is_right": bool(self.is_right), "xyz": as_list(self.xyz),
                "uv": as_list(self.uv), "K": as_list(self.k),
                "visible": [bool(v) for v in self.visible],
                "cpose": as_list(cpose), "viewpoint": as_list(viewpoint),
                "scale": float(scale), "source": self.source}


def _write_atomically(path: Path, data: bytes) -> None:
    """Write `path` (a temporary file renamed; its folder made); LabelFolderError naming it."""
    from handlatent.explorer.files import write_atomically

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(path, lambda tmp: tmp.write_bytes(data))
    except OSError as err:
        raise LabelFolderError(f"{path}: cannot write ({err.strerror or err})") from None


def _png_bytes(image: np.ndarray) -> bytes:
    import io

    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image, np.uint8), "RGB").save(buffer, format="PNG")
    return buffer.getvalue()


def read_index(root: Path) -> list[str]:
    """The item names of a label folder's index; LabelFolderError naming the file if bad."""
    path = root / INDEX
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise LabelFolderError(f"{path}: no such file (not a label folder)") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise LabelFolderError(f"{path}: not a readable label index ({err})") from None
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise LabelFolderError(f"{path}: not a {FORMAT} index")
    if document.get("format_version") != FORMAT_VERSION:
        raise LabelFolderError(f"{path}: format version {document.get('format_version')!r}, "
                               f"this handlatent reads {FORMAT_VERSION}")
    items = document.get("items")
    if not isinstance(items, list) or not all(isinstance(n, str) and _NAME.match(n)
                                              for n in items):
        raise LabelFolderError(f"{path}: 'items' must be a list of six-digit names")
    return list(items)


class LabelFolder:
    """A label folder being written: `append` an item, `remove` one (undo), `names` in order.

    Created on the first append. Every problem is a LabelFolderError naming the file.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.root = Path(path)
        if self.root.exists() and not self.root.is_dir():
            raise LabelFolderError(f"{self.root}: exists and is not a folder")
        self._names = read_index(self.root) if (self.root / INDEX).exists() else []

    @property
    def names(self) -> list[str]:
        """The saved items' names, in the order saved."""
        return list(self._names)

    def __len__(self) -> int:
        return len(self._names)

    def record(self, name: str) -> dict[str, Any]:
        """The JSON document of item `name`."""
        path = self.root / ITEMS / f"{name}.json"
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            raise LabelFolderError(f"{path}: cannot read ({err})") from None

    def check_writable(self) -> None:
        """LabelFolderError unless items can be written here (the folder, or its parent)."""
        target = self.root if self.root.exists() else self.root.parent
        if not target.is_dir():
            raise LabelFolderError(f"{self.root}: cannot create the label folder ({target} "
                                   "does not exist)")
        if not os.access(target, os.W_OK | os.X_OK):
            raise LabelFolderError(f"{self.root}: cannot write here (permission denied)")

    def _next_name(self) -> str:
        used = [int(n) for n in self._names]
        for sub in (CROPS, ITEMS):
            folder = self.root / sub
            if folder.is_dir():   # files of an interrupted write: never reused
                used += [int(p.stem) for p in folder.iterdir() if _NAME.match(p.stem)]
        return f"{max(used, default=0) + 1:06d}"

    def _write_index(self, names: list[str]) -> None:
        document = {"format": FORMAT, "format_version": FORMAT_VERSION, "items": names,
                    "keypoint_names": list(KEYPOINT_NAMES), "units": UNITS}
        _write_atomically(self.root / INDEX, (json.dumps(document, indent=1) + "\n").encode())

    def append(self, item: LabelItem, name: str | None = None) -> str:
        """Write `item` (its crop, then its JSON, then the index, each atomically); returns its
        name. `name`: write it under that name again (redo of an undone save)."""
        name = name or self._next_name()
        text = json.dumps(item.record(name)) + "\n"
        _write_atomically(self.root / CROPS / f"{name}.png", _png_bytes(item.image))
        _write_atomically(self.root / ITEMS / f"{name}.json", text.encode())
        self._write_index(self._names + [name])
        self._names.append(name)
        return name

    def remove(self, name: str) -> None:
        """Take item `name` out of the index (atomically), then delete its files."""
        if name not in self._names:
            raise LabelFolderError(f"{self.root}: no item {name}")
        names = [n for n in self._names if n != name]
        self._write_index(names)
        self._names = names
        for path in (self.root / CROPS / f"{name}.png", self.root / ITEMS / f"{name}.json"):
            path.unlink(missing_ok=True)


# ------------------------------------------------------------------------------ reading


def _array(record: dict, key: str, shape: tuple[int, ...], where: Path) -> np.ndarray:
    try:
        a = np.asarray(record[key], dtype=np.float64)
    except KeyError:
        raise ReaderError(f"{where}: no '{key}'") from None
    except (TypeError, ValueError):
        raise ReaderError(f"{where}: '{key}' is not numbers") from None
    if a.shape != shape or not np.isfinite(a).all():
        raise ReaderError(f"{where}: '{key}' must be {shape} finite numbers, got {a.shape}")
    return a


def is_label_folder(path: str | os.PathLike) -> bool:
    """Whether `path` is a folder holding a label index."""
    return os.path.isfile(os.path.join(os.fspath(path), INDEX))


def open_labels(spec, **options) -> "LabelledFolder":
    """`open_dataset("labels:DIR")`: the path, with options as keywords or after a `?`."""
    path, options = parse_spec(spec, options, COMMON_OPTIONS)
    return LabelledFolder(path, **options)


class LabelledFolder(CroppedHandDataset):
    """A label folder as a dataset: each crop resized to `size` (the model's), labels moved
    with it; augmentable like the other readers of photographs."""

    kind = "labels"

    def __init__(self, path, size: int = 256, margin: float = DEFAULT_MARGIN,
                 on_error: str = "raise"):
        root = Path(path)
        if not root.is_dir():
            raise ReaderError(f"{root}: no such directory" if not root.exists()
                              else f"{root}: not a directory")
        super().__init__(f"labels:{root}", size, margin, on_error)
        self.root = root
        try:
            names = read_index(root)
        except LabelFolderError as err:
            raise ReaderError(str(err)) from None
        self.names: list[str] = []
        self.labels: list[tuple[np.ndarray, np.ndarray, np.ndarray, bool]] = []
        for i, name in enumerate(names):
            where = root / ITEMS / f"{name}.json"
            try:
                record = json.loads(where.read_text(encoding="utf-8"))
                if not isinstance(record, dict):
                    raise ReaderError(f"{where}: not a JSON object")
                label = (_array(record, "xyz", (NUM_KEYPOINTS, 3), where),
                         _array(record, "K", (3, 3), where),
                         _array(record, "visible", (NUM_KEYPOINTS,), where).astype(bool),
                         bool(record.get("is_right", False)))
            except FileNotFoundError:
                self.bad.drop(i, f"{where}: no such file")
                continue
            except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
                self.bad.drop(i, f"{where}: not a readable item ({err})")
                continue
            except ReaderError as err:
                self.bad.drop(i, str(err))
                continue
            self.names.append(name)
            self.labels.append(label)
        self.bad.report_dropped(max(len(names), 1), "items")

    def __len__(self) -> int:
        return len(self.names)

    def path(self, index: int) -> Path:
        """The crop's file of item `index`."""
        return self.root / CROPS / f"{self.names[index]}.png"

    def _load(self, index: int):
        xyz, k, visible, is_right = self.labels[index]
        path = self.path(index)
        image = read_png(str(path), "RGB")
        return image, xyz.copy(), k, visible.copy(), is_right, str(path)

    def _box(self, image: np.ndarray) -> tuple[np.ndarray, float]:
        """The stored crop is the hand's crop already: the whole image is the box."""
        h, w = image.shape[:2]
        return np.array([(w - 1) / 2, (h - 1) / 2]), float(w)
