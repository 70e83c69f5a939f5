"""The Stereo Hand Pose Tracking Benchmark (Zhang et al. 2016): its Bumblebee (BB) stereo pairs.

    open_dataset("stb:/data/STB?split=test")        # B1Counting + B1Random, left and right images
    open_dataset("stb:/data/STB", split="train")    # B2-B6 x {Counting, Random}

Layout (docs/conventions.md §3): ``images/<Seq>/BB_left_<i>.png`` and ``BB_right_<i>.png`` (640×480),
``labels/<Seq>_BB.mat`` holding ``handPara`` 3×21×N in millimetres, STB's joint order, in the
left camera's frame. Each frame gives two items, left image then right image. The joints are put
in RHD order and metres (joint_orders.from_stb; STB's joint 0 is already the palm), the right
camera's points are the left camera's shifted by the baseline (x − 120.054 mm), both projected
with the published rectified intrinsics (fx = fy = 822.79041, cx = 318.47345, cy = 250.31296).
All keypoints count as visible (STB has no occlusion labels); every hand is a left hand.

Options (keywords, or ``?key=value&...``): split (train | test), sequences (comma-separated
sequence names instead of the split's), size (256), margin (1.25), on_error (raise | skip: drop
missing sequences or frames at open, replace unreadable PNGs while loading; each with a warning
and a count).
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np

from handlatent.data.crop import (COMMON_OPTIONS, DEFAULT_MARGIN, CroppedHandDataset,
                                  ReaderError, existing_folder, parse_spec, read_png)
from handlatent.joint_orders import from_stb

__all__ = ["STBDataset", "SPLITS", "BB_K", "BB_BASELINE_M", "open_stb"]

SEQUENCES = tuple(f"B{b}{kind}" for b in range(1, 7) for kind in ("Counting", "Random"))
SPLITS = {"test": ("B1Counting", "B1Random"),
          "train": tuple(s for s in SEQUENCES if not s.startswith("B1"))}
BB_K = np.array([[822.79041, 0.0, 318.47345], [0.0, 822.79041, 250.31296], [0.0, 0.0, 1.0]])
BB_BASELINE_M = 0.120054
CAMERAS = ("left", "right")


def _split_option(value: str) -> str:
    if value not in SPLITS:
        raise ValueError(f"expected train or test, got {value!r}")
    return value


def _sequences_option(value: str) -> tuple[str, ...]:
    names = tuple(v.strip() for v in value.split(",") if v.strip())
    if not names:
        raise ValueError("expected comma-separated sequence names, e.g. B1Counting,B1Random")
    return names


OPTIONS = {"split": _split_option, "sequences": _sequences_option, **COMMON_OPTIONS}


def open_stb(spec, **options) -> "STBDataset":
    """`open_dataset("stb:SPEC")`: the path, with options as keywords or after a `?`."""
    path, options = parse_spec(spec, options, OPTIONS)
    return STBDataset(path, **options)


def _load_hand_para(path: Path) -> np.ndarray:
    """`handPara` (3, 21, N) of one labels/<Seq>_BB.mat; ReaderError naming the file."""
    import scipy.io

    try:
        mat = scipy.io.loadmat(str(path), variable_names=["handPara"])
    except FileNotFoundError:
        raise ReaderError(f"{path}: no such file") from None
    except Exception as err:  # scipy raises ValueError, TypeError, MatReadError, OSError...
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise ReaderError(f"{path}: not a readable .mat file ({reason})") from None
    para = mat.get("handPara")
    if para is None:
        raise ReaderError(f"{path}: no 'handPara' variable")
    if para.ndim == 2 and para.shape == (3, 21):
        para = para[:, :, None]
    if para.ndim != 3 or para.shape[:2] != (3, 21) or not np.issubdtype(para.dtype, np.number):
        raise ReaderError(f"{path}: 'handPara' has shape {para.shape}, expected (3, 21, N)")
    return np.asarray(para, np.float64)


class STBDataset(CroppedHandDataset):
    """Hand crops of STB's BB stereo pairs (module docstring)."""

    kind = "stb"

    def __init__(self, path, split: str | None = None, sequences=None, size: int = 256,
                 margin: float = DEFAULT_MARGIN, on_error: str = "raise"):
        root = existing_folder(path)
        if not (root / "images").is_dir() or not (root / "labels").is_dir():
            raise ReaderError(f"{root}: not an STB folder (expected images/<Seq>/BB_left_<i>.png "
                              "and labels/<Seq>_BB.mat)")
        if sequences is None:
            if split is None:
                raise ReaderError(f"{root}: say which STB split: stb:{root}?split=train or "
                                  "?split=test")
            if split not in SPLITS:
                raise ReaderError(f"{root}: unknown STB split {split!r} (use train or test)")
            sequences = SPLITS[split]
        elif isinstance(sequences, str):
            sequences = _sequences_option(sequences)
        super().__init__(f"stb:{root}", size, margin, on_error)
        self.root, self.split, self.sequences = root, split, tuple(sequences)

        seq_of, frame_of, xyz_by_seq = [], [], {}
        total = 0
        for s, seq in enumerate(self.sequences):
            label_path = root / "labels" / f"{seq}_BB.mat"
            image_dir = root / "images" / seq
            if not label_path.exists() or not image_dir.is_dir():
                missing = label_path if not label_path.exists() else image_dir
                what = "file" if missing == label_path else "directory"
                reason = (f"{missing}: no such {what} (sequence {seq} of the "
                          f"{split or 'chosen'} set)")
                if not self.bad.skip:
                    raise ReaderError(reason)
                warnings.warn(f"{self.name}: skipping the whole sequence {seq}: {reason}",
                              stacklevel=3)
                continue
            para = _load_hand_para(label_path)  # (3, 21, N) mm, STB order
            xyz = from_stb(np.transpose(para, (2, 1, 0)))  # (N, 21, 3) m, RHD order
            names = set(os.listdir(image_dir))
            for i in range(len(xyz)):
                total += 1
                missing = [f"BB_{cam}_{i}.png" for cam in CAMERAS
                           if f"BB_{cam}_{i}.png" not in names]
                if missing:
                    self.bad.drop(i, f"{image_dir / missing[0]}: no such file")
                    continue
                if not np.isfinite(xyz[i]).all():
                    self.bad.drop(i, f"{label_path}: frame {i}: joints are not finite")
                    continue
                seq_of.append(s)
                frame_of.append(i)
            xyz_by_seq[s] = xyz
        self.bad.report_dropped(max(total, 1), "frames")
        if not seq_of:
            raise ReaderError(f"{root}: no usable frames in {', '.join(self.sequences)}")
        self.seq_of = np.array(seq_of, np.int64)
        self.frame_of = np.array(frame_of, np.int64)
        # labels of the kept frames only, (F, 21, 3) metres, left camera frame
        self.xyz = np.stack([xyz_by_seq[s][i] for s, i in zip(seq_of, frame_of)])

    def __len__(self) -> int:
        return 2 * len(self.frame_of)

    def path(self, index: int) -> Path:
        frame, cam = divmod(int(index), 2)
        seq = self.sequences[self.seq_of[frame]]
        return self.root / "images" / seq / f"BB_{CAMERAS[cam]}_{self.frame_of[frame]}.png"

    def _load(self, index: int):
        frame, cam = divmod(int(index), 2)
        path = self.path(index)
        image = read_png(str(path), "RGB")
        xyz = self.xyz[frame].copy()
        if cam == 1:  # the right camera sits one baseline to the right of the left one
            xyz[:, 0] -= BB_BASELINE_M
        return image, xyz, BB_K, np.ones(21, bool), False, str(path)
