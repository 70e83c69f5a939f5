"""FreiHAND (Zimmermann et al., ICCV 2019), the folder `FreiHAND_pub_v2/` as published.

    open_dataset("freihand:/data/FreiHAND_pub_v2?split=training")     # 4 x 32,560 images
    open_dataset("freihand:/data/FreiHAND_pub_v2?split=evaluation")   # 3,960 images

Layout: ``{split}_K.json`` (N intrinsics, 3×3), ``{split}_xyz.json`` (N × 21 × 3 joints in
metres, camera frame, MANO's order: wrist, then thumb .. little from base to tip),
``{split}_scale.json`` (N numbers, FreiHAND's reference bone lengths: read to check the three
files belong together), ``{split}/rgb/%08d.jpg`` (224×224). The training split shows each of its
N = 32,560 hands in four versions (image i + k·N, k = 0..3, the same labels: the green-screen
recording and three post-processed versions with other backgrounds and colours);
``training/mask/`` is not read. The evaluation split's joints, ``evaluation_xyz.json``, come in
the separate archive FreiHAND_pub_v2_eval.zip.

Each item: the joints put in this project's order with the palm as keypoint 0
(handlatent.joint_orders, "freihand": palm = midpoint of the wrist and the middle MCP), all
visible (FreiHAND has no occlusion labels), every hand a right hand (as FreiHAND's all are;
`canonicalize` mirrors it into the left-hand CPose as it does RHD's right hands), then the crop
of handlatent.data.crop around the keypoints, resized to the model's size.

Options (keywords, or ``?key=value&...``): split (training | evaluation), versions (training
only: comma-separated of 0-3, default all four), size (256), margin (1.25), on_error (raise |
skip: drop samples with missing images or broken labels at open, replace unreadable JPEGs while
loading; each with a warning and a count).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from handlatent.data.crop import (COMMON_OPTIONS, DEFAULT_MARGIN, CroppedHandDataset,
                                  ReaderError, existing_folder, parse_spec, read_png)
from handlatent.joint_orders import from_order

__all__ = ["FreiHANDDataset", "SPLITS", "TRAINING_VERSIONS", "open_freihand"]

SPLITS = ("training", "evaluation")
TRAINING_VERSIONS = 4
_LABELS = {"K": (3, 3), "xyz": (21, 3), "scale": ()}
_WHAT = {"K": "camera intrinsics", "xyz": "3D joints", "scale": "reference bone lengths"}


def _split_option(value: str) -> str:
    if value not in SPLITS:
        raise ValueError(f"expected one of {', '.join(SPLITS)}, got {value!r}")
    return value


def _versions_option(value: str) -> tuple[int, ...]:
    try:
        versions = tuple(int(v) for v in value.split(",") if v.strip())
    except ValueError:
        raise ValueError(f"expected comma-separated numbers 0-3, got {value!r}") from None
    if not versions or any(not 0 <= v < TRAINING_VERSIONS for v in versions):
        raise ValueError(f"expected comma-separated numbers 0-3, got {value!r}")
    return versions


OPTIONS = {"split": _split_option, "versions": _versions_option, **COMMON_OPTIONS}


def open_freihand(spec, **options) -> "FreiHANDDataset":
    """`open_dataset("freihand:SPEC")`: the path, with options as keywords or after a `?`."""
    path, options = parse_spec(spec, options, OPTIONS)
    return FreiHANDDataset(path, **options)


def _read_labels(path: Path, key: str, archive: str) -> np.ndarray:
    """One `{split}_{key}.json` as a float array of shape (N, *_LABELS[key]); ReaderError naming
    the file for a missing, unreadable or misshapen one."""
    if not path.is_file():
        raise ReaderError(f"{path}: no such file (FreiHAND's {_WHAT[key]}, in {archive})")
    try:
        with open(path, encoding="utf-8") as f:
            data = np.asarray(json.load(f), dtype=np.float64)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ReaderError(f"{path}: not a readable JSON file "
                          f"({str(err).splitlines()[0] if str(err) else type(err).__name__})"
                          ) from None
    except (TypeError, ValueError):  # ragged lists or non-numbers
        raise ReaderError(f"{path}: expected a list of {_WHAT[key]} of shape "
                          f"{_LABELS[key]}") from None
    if data.ndim != 1 + len(_LABELS[key]) or data.shape[1:] != _LABELS[key] or not len(data):
        expected = "(N" + "".join(f", {d}" for d in _LABELS[key]) + ")"
        raise ReaderError(f"{path}: has shape {data.shape}, expected {expected}")
    return data


class FreiHANDDataset(CroppedHandDataset):
    """Hand crops of one FreiHAND split (module docstring)."""

    kind = "freihand"

    def __init__(self, path, split: str | None = None, versions=None, size: int = 256,
                 margin: float = DEFAULT_MARGIN, on_error: str = "raise"):
        root = existing_folder(path)
        if split is None:
            raise ReaderError(f"{root}: say which FreiHAND split: freihand:{root}?split=training "
                              "or ?split=evaluation")
        if split not in SPLITS:
            raise ReaderError(f"{root}: unknown FreiHAND split {split!r} (use training or "
                              "evaluation)")
        if isinstance(versions, str):
            versions = _versions_option(versions)
        if split == "evaluation" and versions not in (None, (0,), [0]):
            raise ReaderError(f"{root}: the evaluation split has one version of each image "
                              "(versions=0)")
        versions = tuple(versions) if versions is not None else (
            tuple(range(TRAINING_VERSIONS)) if split == "training" else (0,))
        super().__init__(f"freihand:{root}?split={split}", size, margin, on_error)
        self.root, self.split, self.versions = root, split, versions
        self.rgb = root / split / "rgb"

        labels = {}
        for key in _LABELS:
            archive = ("FreiHAND_pub_v2_eval.zip" if (split, key) == ("evaluation", "xyz")
                       else "FreiHAND_pub_v2.zip")
            labels[key] = _read_labels(root / f"{split}_{key}.json", key, archive)
        counts = {f"{split}_{key}.json": len(v) for key, v in labels.items()}
        if len(set(counts.values())) > 1:
            raise ReaderError(f"{root}: the label files do not belong together ("
                              + ", ".join(f"{name}: {n} entries" for name, n in counts.items())
                              + ")")
        if not self.rgb.is_dir():
            raise ReaderError(f"{self.rgb}: no such directory (FreiHAND keeps the images in "
                              f"{split}/rgb/%08d.jpg)")
        self.count = len(labels["xyz"])  # hands in the split; image i + k * count is version k
        finite = np.isfinite(labels["xyz"]).all((1, 2)) & np.isfinite(labels["K"]).all((1, 2))
        names = set(os.listdir(self.rgb))
        label_of, image_of = [], []
        for version in versions:
            for i in range(self.count):
                image = i + version * self.count
                if f"{image:08d}.jpg" not in names:
                    self.bad.drop(image, f"{self.rgb / f'{image:08d}.jpg'}: no such file")
                elif not finite[i]:
                    self.bad.drop(image, f"{root / f'{split}_xyz.json'}: sample {i}: joints or "
                                         "intrinsics are not finite")
                else:
                    label_of.append(i)
                    image_of.append(image)
        self.bad.report_dropped(self.count * len(versions), "images")
        if not label_of:
            raise ReaderError(f"{root}: no usable {split} images")
        self.label_of = np.array(label_of, np.int64)
        self.image_of = np.array(image_of, np.int64)
        # this project's order, palm first, metres in the camera frame
        self.xyz = from_order(labels["xyz"], "freihand")
        self.k = labels["K"]

    def __len__(self) -> int:
        return len(self.label_of)

    def path(self, index: int) -> Path:
        return self.rgb / f"{int(self.image_of[index]):08d}.jpg"

    def _load(self, index: int):
        path = self.path(index)
        label = self.label_of[index]
        image = read_png(str(path), "RGB")
        return image, self.xyz[label], self.k[label], np.ones(21, bool), True, str(path)
