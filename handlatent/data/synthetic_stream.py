"""Synthetic hands rendered as they are read: fresh hands every epoch, no files.

A training run that re-reads the same 40,000 hands stops improving its pose once it has seen
them about ten times (docs/results.md, "Stage 9"), while the renderer makes hands a hundred
times faster than a CPU trains on them. `SyntheticStream` renders each item in the loader
from its own seed, (seed, epoch, index), from the standard `handlatent-synth` distribution:
every epoch is a new set, the same one again for a resumed run, and nothing is written to disk.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset

from handlatent.data.synthetic import item_at
from handlatent.synth.scene import Scene, concat_scenes, render_scene, sample_scene
from handlatent.synth.twins import content_twins

__all__ = ["SyntheticStream"]


class SyntheticStream(Dataset):
    """`count` synthetic hands of `size` px per epoch, keyed by (index, epoch) (an int key is
    epoch 0), each item as a `SyntheticHandDataset` item with its hand mask and, with `twins`,
    its content twin: the same background, skin and light around another hand.

    Rendering costs about 4.3 ms a 128 px hand on one core (6.5 ms with its twin, the two
    rendered in one call), in the loader's worker processes beside the training step.
    """

    accepts_epoch = True  # MixedDataset passes (index, epoch)

    def __init__(self, count: int, size: int, seed: int = 0, twins: bool = False) -> None:
        if count < 1:
            raise ValueError(f"a synthetic stream needs count >= 1, got {count}")
        self.count, self.size, self.seed, self.twins = int(count), int(size), int(seed), twins

    def __len__(self) -> int:
        return self.count

    def scenes(self, index: int, epoch: int = 0) -> Scene:
        """The item's scene, then (with twins) its twin's: its own background, skin and light
        around the hand of a second scene drawn from the item's seed."""
        if not 0 <= index < self.count:
            raise IndexError(f"index {index} out of range for {self.count} samples")
        rng = np.random.default_rng(np.random.SeedSequence(self.seed, spawn_key=(epoch, index)))
        drawn = sample_scene(rng, 2 if self.twins else 1)
        return concat_scenes([drawn[:1], content_twins(drawn[:1], drawn[1:])]) if self.twins \
            else drawn

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, torch.Tensor]:
        index, epoch = key if isinstance(key, tuple) else (key, 0)
        out = render_scene(self.scenes(int(index), int(epoch)), self.size, num_threads=1)
        return item_at(out, 0, out["image"][0], out["image"][1] if self.twins else None,
                       out["mask"][0])

    def __repr__(self) -> str:
        return (f"SyntheticStream({self.count} hands an epoch, {self.size}px, seed {self.seed}"
                f"{', with twins' if self.twins else ''})")
