"""The Rendered Hand Pose dataset (Zimmermann & Brox 2017), `RHD_published_v2/`.

    open_dataset("rhd:/data/RHD_published_v2?split=evaluation")      # or split= as a keyword
    open_dataset("rhd:/data/RHD_published_v2/evaluation")            # the split's own folder

Layout (docs/conventions.md §3): ``{training,evaluation}/{color,mask}/%05d.png`` (320×320) and
``{split}/anno_{split}.pickle``, a dict sample id → ``{'xyz': 42×3 m, 'uv_vis': 42×3,
'K': 3×3}``; keypoints 0–20 are the left hand, 21–41 the right. The pickle is read with a
numpy-only unpickler (handlatent.data.safe_pickle): a pickle naming any other code is refused.

Per sample, as hand3d does: the hand with more mask pixels (values 2–17 left, 18–33 right; a
tie goes to the right hand) is used, its wrist replaced by the palm (midpoint of the wrist and
keypoint 12; the palm counts as visible when either is), `visible` from ``uv_vis``; then the
crop of handlatent.data.crop. Items have the keys of SyntheticHandDataset; `content` is zeros
(unknown for real images), `template` is −1.

Options (keywords, or ``?key=value&...`` after the path): split (training | evaluation), size
(crop pixels, 256), margin (1.25), on_error (raise | skip: drop samples with missing files or
broken labels at open, replace unreadable PNGs by the next sample while loading; each with a
warning and a count).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from handlatent.data.crop import (COMMON_OPTIONS, DEFAULT_MARGIN, CroppedHandDataset,
                                  ReaderError, existing_folder, parse_spec, read_png)
from handlatent.data.safe_pickle import load_pickle
from handlatent.skeleton import wrist_to_palm

__all__ = ["RHDDataset", "SPLITS", "open_rhd"]

SPLITS = ("training", "evaluation")
LEFT_MASK, RIGHT_MASK = (2, 17), (18, 33)
_ANNO_SHAPES = {"xyz": (42, 3), "uv_vis": (42, 3), "K": (3, 3)}


def _split_option(value: str) -> str:
    if value not in SPLITS:
        raise ValueError(f"expected one of {', '.join(SPLITS)}, got {value!r}")
    return value


OPTIONS = {"split": _split_option, **COMMON_OPTIONS}


def open_rhd(spec, **options) -> "RHDDataset":
    """`open_dataset("rhd:SPEC")`: the path, with options as keywords or after a `?`."""
    path, options = parse_spec(spec, options, OPTIONS)
    return RHDDataset(path, **options)


class RHDDataset(CroppedHandDataset):
    """Hand crops of one RHD split (module docstring)."""

    kind = "rhd"

    def __init__(self, path, split: str | None = None, size: int = 256,
                 margin: float = DEFAULT_MARGIN, on_error: str = "raise"):
        if split is not None and split not in SPLITS:
            raise ReaderError(f"{path}: unknown RHD split {split!r} (use training or evaluation)")
        root = existing_folder(path)
        if root.name in SPLITS and (root / f"anno_{root.name}.pickle").exists() and (
                split is None or split == root.name):
            split, folder = root.name, root  # pointed at the split's own folder
        elif split is None:
            found = [s for s in SPLITS if (root / s).is_dir()]
            if not found:
                raise ReaderError(f"{root}: not an RHD folder (expected training/ and "
                                  "evaluation/ holding anno_*.pickle, color/ and mask/)")
            raise ReaderError(f"{root}: say which RHD split: rhd:{root}?split=training or "
                              f"?split=evaluation (or rhd:{root / found[0]})")
        else:
            folder = root / split
            if not folder.is_dir():
                raise ReaderError(f"{folder}: no such directory (not an RHD folder? expected "
                                  "training/ and evaluation/ holding anno_*.pickle, color/ and "
                                  "mask/)")
        super().__init__(f"rhd:{folder}", size, margin, on_error)
        self.root, self.split, self.folder = root, split, folder
        for sub in ("color", "mask"):
            if not (folder / sub).is_dir():
                raise ReaderError(f"{folder / sub}: no such directory (RHD keeps the images in "
                                  f"{split}/color and {split}/mask)")
        anno_path = folder / f"anno_{split}.pickle"
        if not anno_path.is_file():
            raise ReaderError(f"{anno_path}: no such file (RHD's annotations)")
        anno = load_pickle(anno_path)
        if not isinstance(anno, dict):
            raise ReaderError(f"{anno_path}: expected a dict sample id -> annotation, got "
                              f"{type(anno).__name__}")
        ids, xyz, uv_vis, k = self._check_annotations(anno, anno_path)
        color = set(os.listdir(folder / "color"))
        mask = set(os.listdir(folder / "mask"))
        keep = np.ones(len(ids), bool)
        for n, sample in enumerate(ids):
            name = f"{sample:05d}.png"
            for sub, names in (("color", color), ("mask", mask)):
                if keep[n] and name not in names:
                    self.bad.drop(int(sample), f"{folder / sub / name}: no such file")
                    keep[n] = False
        self.bad.report_dropped(len(anno))
        self.ids, self.xyz, self.uv_vis, self.k = ids[keep], xyz[keep], uv_vis[keep], k[keep]
        if len(self.ids) == 0:
            raise ReaderError(f"{anno_path}: no usable samples")

    def _check_annotations(self, anno: dict, path: Path):
        """Stack the annotations (sorted by id), checking keys, shapes and finiteness."""
        ids, xyz, uv_vis, k = [], [], [], []
        numbered = sorted(s for s in anno if isinstance(s, (int, np.integer)))
        for sample in numbered + [s for s in anno if not isinstance(s, (int, np.integer))]:
            entry = anno[sample]
            problem = None
            if not isinstance(sample, (int, np.integer)) or sample < 0:
                problem = f"sample id {sample!r} is not a non-negative integer"
            elif not isinstance(entry, dict):
                problem = f"sample {sample}: expected a dict, got {type(entry).__name__}"
            else:
                for key, shape in _ANNO_SHAPES.items():
                    value = entry.get(key)
                    if not isinstance(value, np.ndarray) or value.shape != shape:
                        got = value.shape if isinstance(value, np.ndarray) else type(value).__name__
                        problem = f"sample {sample}: '{key}' is {got}, expected shape {shape}"
                        break
                    if not np.issubdtype(value.dtype, np.number) or not np.isfinite(value).all():
                        problem = f"sample {sample}: '{key}' is not finite numbers"
                        break
            if problem is not None:
                self.bad.drop(int(sample) if isinstance(sample, (int, np.integer)) else -1,
                              f"{path}: {problem}")
                continue
            ids.append(int(sample))
            xyz.append(entry["xyz"])
            uv_vis.append(entry["uv_vis"])
            k.append(entry["K"])
        if not ids:
            raise ReaderError(f"{path}: no usable samples" + (
                f" ({self.bad.dropped[0][1]})" if self.bad.dropped else ""))
        return (np.array(ids, np.int64), np.asarray(xyz, np.float32),
                np.asarray(uv_vis, np.float32), np.asarray(k, np.float32))

    def __len__(self) -> int:
        return len(self.ids)

    def paths(self, index: int) -> tuple[Path, Path]:
        name = f"{int(self.ids[index]):05d}.png"
        return self.folder / "color" / name, self.folder / "mask" / name

    def hand(self, mask: np.ndarray) -> bool:
        """True for the right hand: the hand with more mask pixels (a tie: right)."""
        left = np.count_nonzero((mask >= LEFT_MASK[0]) & (mask <= LEFT_MASK[1]))
        right = np.count_nonzero((mask >= RIGHT_MASK[0]) & (mask <= RIGHT_MASK[1]))
        return not left > right

    def _load(self, index: int):
        color_path, mask_path = self.paths(index)
        image = read_png(str(color_path), "RGB")
        mask = read_png(str(mask_path))
        if mask.ndim == 3:
            mask = mask[..., 0]
        if mask.shape != image.shape[:2]:
            raise ReaderError(f"{mask_path}: {mask.shape[1]}x{mask.shape[0]} mask for a "
                              f"{image.shape[1]}x{image.shape[0]} image")
        is_right = self.hand(mask)
        hand = slice(21, 42) if is_right else slice(0, 21)
        xyz = wrist_to_palm(self.xyz[index, hand].astype(np.float64))
        visible = self.uv_vis[index, hand, 2] > 0.5
        visible[0] = visible[0] or visible[12]  # the palm: seen if the wrist or middle MCP is
        return image, xyz, self.k[index].astype(np.float64), visible, is_right, str(color_path)
