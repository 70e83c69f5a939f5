"""The training data: datasets opened and mixed, the deterministic batch order, the loaders.

`open_datasets` gives the training set (a `MixedDataset`: one or several datasets, weighted,
augmented, some unlabelled) and the validation set (data.val, or a fixed split held out of
each training dataset). `DeterministicBatches` orders the batches as a function of (seed,
epoch), shared out over torchrun's processes, and resumes at any batch; `make_loaders` builds
the DataLoaders around them, and `stop_workers` ends their persistent workers (the trainer's
`contextlib.ExitStack` calls it on every way out).
"""

from __future__ import annotations

import bisect
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any, Iterator

import torch
from torch.utils.data import ConcatDataset, DataLoader, Dataset, Sampler, Subset, default_collate

from handlatent.data import CROPPING_READERS, open_dataset, spec_kind
from handlatent.data.crop import ReaderError
from handlatent.data.synthetic_stream import SyntheticStream
from handlatent.synth.twins import TWINS_FILE
from handlatent.training import distributed
from handlatent.training.config import (ConfigError, DataConfig, DatasetEntry, SynthDataConfig,
                                       TrainConfig)
from handlatent.training.run_dir import say


def open_datasets(cfg: DataConfig, image_size: int, out: Path, dist,
                  seed: int = 0) -> tuple["MixedDataset", Dataset]:
    """The training set (a MixedDataset: one or several datasets, weighted, augmented) and the
    validation set: data.val, or else a fixed split held out of each training dataset."""
    entries = cfg.train if isinstance(cfg.train, list) else [DatasetEntry(path=cfg.train)]
    synth = cfg.synthetic if cfg.train is None else None
    fresh = synth is not None and synth.fresh  # rendered as read: no files
    if synth is not None and not fresh:  # render it once into the run directory
        entries[0].path = out / "synthetic-data"
        if dist.is_main:
            render_synthetic(entries[0].path, synth, image_size)
        distributed.barrier(dist)
    parts, held_out = [], []
    for k, entry in enumerate(entries):
        key = f"data.train[{k}].path" if isinstance(cfg.train, list) else "data.train"
        full = (SyntheticStream(synth.count, image_size, synth.seed, synth.twins) if fresh
                else _open(entry.path, key, image_size))
        train = list(range(len(full)))
        if cfg.val is None:
            n = len(full)
            n_val = cfg.val_count or max(1, round(n * cfg.val_fraction))
            if n_val >= n:
                raise ConfigError(f"holds out {n_val} of {n} samples of '{entry.path}', none "
                                  "left to train on",
                                  "data.val_count" if cfg.val_count else "data.val_fraction")
            order = torch.randperm(n, generator=torch.Generator().manual_seed(20190616))
            val, train = order[:n_val].sort().values.tolist(), order[n_val:].sort().values.tolist()
            held_out.append(Subset(full if entry.labelled else Unlabelled(full), val))
        if hasattr(full, "with_augment"):  # real photographs: augmented while cropping
            full = full.with_augment(cfg.augment, (seed, k))
        parts.append((full, train, entry.weight, entry.labelled))
    if cfg.val is not None:
        val_set = _open(cfg.val, "data.val", image_size)
    else:
        val_set = held_out[0] if len(held_out) == 1 else ConcatDataset(held_out)
    return MixedDataset(parts, seed), val_set


class MixedDataset(Dataset):
    """The training set: datasets concatenated, each drawn round(weight x size) times an epoch.

    Keys are (index, epoch) pairs (DeterministicBatches(with_epoch=True)); what index means in
    an epoch is a function of (seed, epoch) only, so a resumed run sees the same samples and
    augmentations. A part with weight 1 is taken in order (the batch sampler shuffles); with
    another weight its share of the epoch is drawn from seeded permutations of it, a fresh
    subset every epoch. Readers of photographs get (sample, epoch) to seed their augmentation;
    `labelled` False parts have their items' `labelled` set to False.
    """

    def __init__(self, parts: list[tuple[Dataset, list[int], float, bool]], seed: int = 0):
        self.parts = [(ds, list(indices), max(1, round(weight * len(indices))), labelled)
                      for ds, indices, weight, labelled in parts]
        self.seed = seed
        self.starts = [0]
        for _, _, quota, _ in self.parts:
            self.starts.append(self.starts[-1] + quota)
        self._perms: dict[tuple[int, int, int], list[int]] = {}

    def __len__(self) -> int:
        return self.starts[-1]

    def _perm(self, part: int, epoch: int, rep: int) -> list[int]:
        key = (part, epoch, rep)
        if key not in self._perms:
            if len(self._perms) > 64:
                self._perms.clear()
            g = torch.Generator().manual_seed(((self.seed * 1_000_003 + epoch) * 1009 + part)
                                              * 1009 + rep)
            self._perms[key] = torch.randperm(len(self.parts[part][1]), generator=g).tolist()
        return self._perms[key]

    def __getitem__(self, key):
        i, epoch = key if isinstance(key, tuple) else (key, 0)
        part = bisect.bisect_right(self.starts, i) - 1
        if not 0 <= i < len(self) or part >= len(self.parts):
            raise IndexError(f"index {i} out of range for {len(self)} samples")
        ds, indices, quota, labelled = self.parts[part]
        j, n = i - self.starts[part], len(indices)
        local = j if quota == n else self._perm(part, epoch, j // n)[j % n]
        index = indices[local]
        item = ds[(index, epoch)] if getattr(ds, "accepts_epoch", False) else ds[index]
        if not labelled:
            item = {**item, "labelled": torch.tensor(False)}
        return item


class Unlabelled(Dataset):
    """`dataset` with every item's `labelled` set to False (images only)."""

    def __init__(self, dataset: Dataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i):
        return {**self.dataset[i], "labelled": torch.tensor(False)}


def _open(path, key: str, image_size: int) -> Dataset:
    try:
        # readers of photographs crop to the model's size; a synthetic set is what it is
        kwargs = {"size": image_size} if spec_kind(path) in CROPPING_READERS else {}
        ds = open_dataset(path, **kwargs)
    except (OSError, ValueError) as err:
        message = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise ConfigError(f"cannot open dataset '{path}': {message}", key) from None
    if len(ds) == 0:
        raise ConfigError(f"dataset '{path}' is empty", key)
    size = ds[0]["image"].shape[-1]
    if size != image_size:
        raise ConfigError(f"'{path}' holds {size} px images but model.image_size is "
                          f"{image_size}", key)
    return ds


def reader_problem(err: ReaderError) -> str:
    """The reader's one line (`PATH: problem`), also when a DataLoader worker re-raised it with
    the worker's traceback around it."""
    lines = [line for line in str(err).splitlines() if line.strip()]
    return lines[-1].split("ReaderError: ", 1)[-1] if lines else type(err).__name__


def render_synthetic(path: Path, synth: SynthDataConfig, size: int) -> None:
    """Render what of `synth` is not yet at `path`: the dataset (`handlatent-synth`) and, with
    `synth.twins`, its content twins (both written atomically: a kill leaves no half file)."""
    commands = []
    if not path.exists():
        say(f"rendering {synth.count} synthetic {size} px images into {path}")
        commands.append(["handlatent.synth.cli", "--out", str(path), "--count",
                         str(synth.count), "--size", str(size), "--seed", str(synth.seed)])
    if synth.twins and not (path / TWINS_FILE).exists():
        say(f"rendering their content twins into {path / TWINS_FILE}")
        commands.append(["handlatent.synth.twins", str(path), "--quiet"])
    for module, *args in commands:
        result = subprocess.run([sys.executable, "-m", module, *args], capture_output=True,
                                text=True)
        if result.returncode != 0:
            last = (result.stderr.strip().splitlines() or ["(no message)"])[-1]
            raise ConfigError(f"{module} failed: {last}", "data.synthetic")


class DeterministicBatches(Sampler):
    """Batch sampler: the batches of a permutation that is a function of (seed, epoch).

    Global batch b of an epoch is perm[b*B:(b+1)*B]; process `rank` of `world` takes its
    contiguous B/world slice (what DistributedSampler does, without padding: the last partial
    batch is dropped). `set_position(epoch, batch)` starts the next pass at that batch, which
    is how a resumed run picks up exactly where the interrupted one stopped.
    """

    def __init__(self, n: int, global_batch: int, seed: int, rank: int = 0, world: int = 1,
                 with_epoch: bool = False):
        self.n, self.global_batch, self.seed = n, global_batch, seed
        self.with_epoch = with_epoch  # yield (index, epoch) keys (for MixedDataset)
        self.rank, self.local_batch = rank, global_batch // world
        self.batches_per_epoch = n // global_batch
        self.epoch, self.start = 0, 0

    def set_position(self, epoch: int, batch: int) -> None:
        self.epoch, self.start = epoch, batch

    def permutation(self, epoch: int) -> torch.Tensor:
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        return torch.randperm(self.n, generator=g)

    def __len__(self) -> int:
        return max(0, self.batches_per_epoch - self.start)

    def __iter__(self):
        epoch = self.epoch
        perm = self.permutation(epoch)
        for b in range(self.start, self.batches_per_epoch):
            first = b * self.global_batch + self.rank * self.local_batch
            batch = perm[first:first + self.local_batch].tolist()
            yield [(i, epoch) for i in batch] if self.with_epoch else batch


def make_loaders(train_set: Dataset, val_set: Dataset, cfg: TrainConfig, dist: distributed.Dist,
                 device: torch.device) -> tuple[DeterministicBatches, DataLoader, DataLoader]:
    """The batch sampler and the training and validation loaders of this process (its share
    of every global batch, its share of the validation set); ConfigError for sizes that do not
    fit. Each loader has its own generator: starting one must not draw from the global RNG."""
    batch_size = cfg.data.batch_size // dist.world_size  # per process
    if batch_size * dist.world_size != cfg.data.batch_size:
        raise ConfigError(f"{cfg.data.batch_size} does not split evenly over "
                          f"{dist.world_size} processes", "data.batch_size")
    if len(val_set) < dist.world_size:
        raise ConfigError(f"{len(val_set)} validation samples cannot be shared by "
                          f"{dist.world_size} processes", "data.val_fraction")
    sampler = DeterministicBatches(len(train_set), cfg.data.batch_size, cfg.run.seed,
                                   dist.rank, dist.world_size, with_epoch=True)
    if sampler.batches_per_epoch == 0:
        raise ConfigError(f"{cfg.data.batch_size} is larger than the training set "
                          f"({len(train_set)} samples)", "data.batch_size")
    options: dict[str, Any] = dict(
        num_workers=cfg.data.workers, pin_memory=device.type == "cuda",
        persistent_workers=cfg.data.workers > 0, worker_init_fn=ignore_stop_signals,
        collate_fn=collate_shared_keys)
    train_loader = DataLoader(train_set, batch_sampler=sampler, **options,
                              generator=torch.Generator().manual_seed(cfg.run.seed))
    val_indices = list(range(dist.rank, len(val_set), dist.world_size))  # this rank's share
    val_loader = DataLoader(Subset(val_set, val_indices), batch_size=batch_size, **options,
                            generator=torch.Generator().manual_seed(cfg.run.seed))
    return sampler, train_loader, val_loader


def iterate_batches(loader: DataLoader, sampler: DeterministicBatches, epoch: int,
                    position: int) -> Iterator[tuple[int, int, dict]]:
    """Endless (epoch, batches done in that epoch, batch) from `position` of `epoch` on."""
    while True:
        sampler.set_position(epoch, position)
        for batch in loader:
            position += 1
            yield epoch, position, batch
        epoch, position = epoch + 1, 0


def epoch_float(epoch: int, position: int, sampler: DeterministicBatches) -> float:
    return round(epoch + position / sampler.batches_per_epoch, 4)


def collate_shared_keys(items: list[dict]) -> dict:
    """default_collate over the keys every item has: a batch that mixes datasets with and
    without content twins trains without them rather than failing."""
    shared = set(items[0]).intersection(*items[1:])
    return default_collate([{k: v for k, v in item.items() if k in shared} for item in items])


def to_device(batch: dict, device: torch.device, channels_last: bool) -> dict:
    out = {k: v.to(device, non_blocking=True) if isinstance(v, torch.Tensor) else v
           for k, v in batch.items()}
    if channels_last:
        for key in ("image", "content_image"):
            if key in out:
                out[key] = out[key].contiguous(memory_format=torch.channels_last)
    return out


def stop_workers(loader: DataLoader) -> None:
    """Stop the loader's persistent workers now. Left to interpreter exit they would hang it:
    multiprocessing's atexit hook terminates them with SIGTERM, which they ignore, then joins."""
    iterator = getattr(loader, "_iterator", None)
    if iterator is not None:
        iterator._shutdown_workers()  # what DataLoader's own iterator __del__ calls
        loader._iterator = None


def ignore_stop_signals(worker_id: int) -> None:
    """DataLoader workers leave SIGINT/SIGTERM to the training process, which finishes its step
    and then shuts them down (torchrun, Slurm and Ctrl-C signal the whole process group)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
