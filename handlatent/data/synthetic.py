"""A torch ``Dataset`` over a synthetic dataset directory written by ``handlatent-synth``.

Images stay in a read-only memory map (no per-sample decoding); labels (a few hundred bytes per
sample) are loaded into memory once. The object pickles without its memory map, so DataLoader
workers reopen the file themselves instead of receiving a copy of the images.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from handlatent.synth import store
from handlatent.synth.twins import open_twins

__all__ = ["SyntheticHandDataset"]


class SyntheticHandDataset(Dataset):
    """Items are dicts of tensors:

    ``image`` float32 (3, S, S) in [-1, 1]; ``xyz`` (21, 3) metres, camera frame, palm at 0;
    ``cpose`` (21, 3); ``viewpoint`` (3, 3); ``scale`` float32 scalar (metres); ``uv`` (21, 2)
    pixels; ``visible`` (21,) bool; ``is_right`` bool; ``labelled`` bool (always True);
    ``content`` (F,) float32 (skin, light, background factors, names in ``content_names``);
    also ``K`` (3, 3) and ``template`` (int64 scalar); ``content_image`` (3, S, S) like
    ``image`` when the directory has content twins (handlatent.synth.twins).

    ``indices``: optionally a subset (any integer index array) of the samples.
    """

    KEYS = ("image", "xyz", "cpose", "viewpoint", "scale", "uv", "visible", "is_right",
            "labelled", "content", "K", "template")

    def __init__(self, path, indices=None):
        self.path = Path(path)
        meta, images, labels = store.open_arrays(self.path)
        self.meta = meta
        self.size = int(meta["size"])
        self.content_names = list(meta["content_factor_names"])
        self.template_names = list(meta["template_names"])
        self._labels = labels
        self._images = images
        self._twins = open_twins(self.path, meta)
        self.has_twins = self._twins is not None
        self._masks = store.open_masks(self.path, meta)
        self.has_masks = self._masks is not None
        n = int(meta["count"])
        if indices is None:
            self.indices = None
        else:
            idx = np.arange(n)[np.asarray(indices)]
            self.indices = np.ascontiguousarray(idx, dtype=np.int64)

    def __len__(self) -> int:
        return int(self.meta["count"]) if self.indices is None else len(self.indices)

    def _reopen(self) -> None:
        meta, self._images, self._labels = store.open_arrays(self.path)
        self._twins = open_twins(self.path, meta) if self.has_twins else None
        self._masks = store.open_masks(self.path, meta)
        if meta != self.meta:
            raise ValueError(f"{self.path}: the dataset changed on disk since it was opened")

    @property
    def images(self) -> np.ndarray:
        """(N, S, S, 3) uint8 memory map of all images (reopened lazily after unpickling)."""
        if self._images is None:
            self._reopen()
        return self._images

    @property
    def labels(self) -> dict[str, np.ndarray]:
        """All label arrays (first axis: every sample of the directory, ignoring ``indices``)."""
        if self._labels is None:
            self._reopen()
        return self._labels

    def __getstate__(self):
        # Pickled for DataLoader workers: send the path, not the images or labels.
        state = self.__dict__.copy()
        state["_images"] = None
        state["_labels"] = None
        state["_twins"] = None
        state["_masks"] = None
        return state

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        n = len(self)
        i = int(i)
        if not -n <= i < n:
            raise IndexError(f"index {i} out of range for {n} samples")
        i %= n
        j = i if self.indices is None else int(self.indices[i])
        return item_at(self.labels, j, self.images[j],
                       self._twins[j] if self.has_twins else None,  # reopened with the images
                       self._masks[j] if self.has_masks else None)

    def __repr__(self) -> str:
        return f"SyntheticHandDataset({str(self.path)!r}, {len(self)} samples, {self.size}px)"


def item_at(labels: dict[str, np.ndarray], j: int, image: np.ndarray,
            twin: np.ndarray | None = None, mask: np.ndarray | None = None
            ) -> dict[str, torch.Tensor]:
    """Sample `j` of the label arrays (`render_scene`'s or a dataset's) with its (S, S, 3) uint8
    image, content twin and (S, S) hand mask, as the items of a synthetic dataset are."""
    item = {
        "image": _to_tensor(image),
        "xyz": torch.tensor(labels["xyz"][j]),
        "cpose": torch.tensor(labels["cpose"][j]),
        "viewpoint": torch.tensor(labels["viewpoint"][j]),
        "scale": torch.tensor(labels["scale"][j], dtype=torch.float32),
        "uv": torch.tensor(labels["uv"][j]),
        "visible": torch.tensor(labels["visible"][j]),
        "is_right": torch.tensor(bool(labels["is_right"][j])),
        "labelled": torch.tensor(True),
        "content": torch.tensor(labels["content"][j]),
        "K": torch.tensor(labels["K"][j]),
        "template": torch.tensor(int(labels["template"][j])),
    }
    if twin is not None:
        item["content_image"] = _to_tensor(twin)
    if mask is not None:
        item["mask"] = torch.from_numpy(np.asarray(mask) != 0)
    return item


def _to_tensor(image: np.ndarray) -> torch.Tensor:
    """(S, S, 3) uint8 (a memmap row: copied once) → (3, S, S) float32 in [-1, 1]."""
    return torch.from_numpy(np.array(image)).permute(2, 0, 1).to(torch.float32).div_(127.5).sub_(1.0)
