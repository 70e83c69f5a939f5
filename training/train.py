"""The dVAE training loop. Read it top to bottom: `train()` is the whole story.

    setup      device, processes (torchrun), threads
    data       datasets, the deterministic batch order, DataLoaders
    model      dVAE, optimizer, learning-rate schedule, AMP scaler; resume from last.pt
    loop       fetch a batch -> forward -> backward -> step; log, validate, checkpoint
    stop       at the last step, or after the step a SIGINT/SIGTERM arrived in

Reproducibility: the batch order is a function of (seed, epoch) and the global torch RNG (the
reparameterisation noise) is reseeded from (seed, step, rank) before every step, so a run stopped
after any step and resumed from its last.pt makes exactly the updates an uninterrupted run makes.
The sampler hands each index out with its epoch: the share drawn from each dataset of a mixture
and the augmentation of real photographs are functions of (seed, epoch, index) too.
"""

from __future__ import annotations

import bisect
import math
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import torch
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import ConcatDataset, DataLoader, Dataset, Sampler, Subset, default_collate
from tqdm import tqdm

from handlatent.checkpoint import CheckpointError, load_checkpoint, load_model
from handlatent.data import CROPPING_READERS, open_dataset, spec_kind
from handlatent.data.crop import ReaderError
from handlatent.model import DVAELoss, ModelConfig, build_model, load_torchvision_resnet18
from handlatent.training import distributed
from handlatent.training.config import (ConfigError, DataConfig, DatasetEntry, OptimConfig,
                                        TrainConfig, dump_config, to_dict)
from handlatent.training.run_dir import BEST, LAST, METRICS, RunDir

CHECKPOINT_FORMAT = "handlatent-train/1"


def train(cfg: TrainConfig, out: str | Path, *, resume: bool = False,
          stop_after: int | None = None) -> dict:
    """Train the dVAE described by `cfg`, writing the run directory `out`.

    resume:     continue from out/last.pt (optimizer, schedule, data position, best loss).
    stop_after: stop after this many steps as if interrupted (save last.pt, no final
                validation); for tests and time-boxed runs.
    Returns a summary dict (step, stopped_by, best_val_loss, ...). Raises ConfigError for
    problems a user can fix (no CUDA, dataset mismatch, a resume that does not fit).
    """
    # ---------------------------------------------------------------------------------- setup
    device = pick_device(cfg.run.device, int(os.environ.get("LOCAL_RANK", 0)))
    if cfg.run.amp == "fp16" and device.type != "cuda":
        raise ConfigError("fp16 needs a CUDA device (use bf16 or none on the CPU)", "run.amp")
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist = distributed.setup(device)  # a no-op unless started by torchrun
    if device.type == "cpu":
        torch.set_num_threads(cfg.run.threads or max(1, cpu_count() // dist.local_world_size))
        load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
        if cfg.run.threads is None and load > cpu_count() / 2 and dist.is_main:
            say(f"note: the CPU is busy (load average {load:.1f} on {cpu_count()} cores); "
                "if steps are slow, try --set run.threads=1: oversubscribed threads can make "
                "a step 5-10x slower")
    stop = StopSignal()  # SIGINT/SIGTERM: finish the step, save last.pt, return
    loaders: list[DataLoader] = []  # _train's loaders, whose workers are stopped on the way out
    try:
        return _train(cfg, Path(out), device, dist, resume, stop_after, stop, loaders)
    except ReaderError as err:  # an unreadable file of a real dataset, met while loading
        raise ConfigError(f"{reader_problem(err)} (add on_error=skip to the dataset spec to skip "
                          "bad samples with a warning)") from None
    finally:
        shutdown_workers(loaders)
        stop.restore()
        distributed.teardown()


def _train(cfg, out, device, dist, resume, stop_after, stop, loaders: list) -> dict:
    main = dist.is_main
    ckpt = None
    if resume:
        if not (out / LAST).exists():
            raise ConfigError(f"nothing to resume: {out / LAST} does not exist")
        ckpt = load_checkpoint(out / LAST)
        check_resumable(cfg, ckpt)
    else:
        for name in (LAST, BEST, METRICS):
            if (out / name).exists():
                raise ConfigError(f"{out} already holds a run ({name}): pass --resume to "
                                  "continue it, or choose another --out")

    # ----------------------------------------------------------------------------------- data
    batch_size = cfg.data.batch_size // dist.world_size  # per process
    if batch_size * dist.world_size != cfg.data.batch_size:
        raise ConfigError(f"{cfg.data.batch_size} does not split evenly over "
                          f"{dist.world_size} processes", "data.batch_size")
    train_set, val_set = open_datasets(cfg.data, cfg.model.image_size, out, dist, cfg.run.seed)
    if len(val_set) < dist.world_size:
        raise ConfigError(f"{len(val_set)} validation samples cannot be shared by "
                          f"{dist.world_size} processes", "data.val_fraction")
    sampler = DeterministicBatches(len(train_set), cfg.data.batch_size, cfg.run.seed,
                                   dist.rank, dist.world_size, with_epoch=True)
    if sampler.batches_per_epoch == 0:
        raise ConfigError(f"{cfg.data.batch_size} is larger than the training set "
                          f"({len(train_set)} samples)", "data.batch_size")
    loader_args = dict(num_workers=cfg.data.workers, pin_memory=device.type == "cuda",
                       persistent_workers=cfg.data.workers > 0,
                       worker_init_fn=ignore_stop_signals, collate_fn=collate_shared_keys)
    # (own generators: starting a loader iterator must not draw from the global RNG)
    train_loader = DataLoader(train_set, batch_sampler=sampler, **loader_args,
                              generator=torch.Generator().manual_seed(cfg.run.seed))
    val_indices = list(range(dist.rank, len(val_set), dist.world_size))  # this rank's share
    val_loader = DataLoader(Subset(val_set, val_indices), batch_size=batch_size, **loader_args,
                            generator=torch.Generator().manual_seed(cfg.run.seed))
    loaders += [train_loader, val_loader]
    total_steps = cfg.run.steps or math.ceil(cfg.run.epochs * sampler.batches_per_epoch)

    # ---------------------------------------------------------------------------------- model
    torch.manual_seed(cfg.run.seed)  # the same initial weights on every rank
    model = build_model(cfg.model)
    if cfg.run.init_encoder and ckpt is None:
        load_torchvision_resnet18(model.image_encoder, cfg.run.init_encoder)
    if cfg.run.init and ckpt is None:
        source = init_weights(cfg.run.init, cfg.model, cfg.run.init_match).state_dict()
        own = model.state_dict()
        taken = {k: v for k, v in source.items() if k in own and own[k].shape == v.shape}
        model.load_state_dict(taken, strict=cfg.run.init_match == "exact")
        fresh = sorted({k.split(".")[0] for k in own if k not in taken})
        if main and fresh:
            say(f"run.init: {len(taken)} of {len(own)} tensors from {cfg.run.init}; fresh "
                f"where they differ: {', '.join(fresh)}")
    model.to(device)
    if cfg.run.channels_last:
        model.to(memory_format=torch.channels_last)
    o = cfg.optim
    optimizer = torch.optim.Adam(model.parameters(), lr=o.lr, betas=o.betas, eps=o.eps,
                                 weight_decay=o.weight_decay,
                                 fused=device.type in ("cpu", "cuda"))  # CPU: 3x faster step
    schedule = LRSchedule(o, total_steps)
    scaler = torch.amp.GradScaler(device.type, enabled=cfg.run.amp == "fp16")
    amp_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(cfg.run.amp)
    step, epoch, position, best_val = 0, 0, 0, math.inf
    if ckpt is not None:
        model.load_state_dict(ckpt["state_dict"])
        state = ckpt["extra"]
        optimizer.load_state_dict(state["optimizer"])
        schedule.load_state_dict(state["scheduler"])
        scaler.load_state_dict(state["scaler"])
        step, epoch, position = state["step"], state["epoch"], state["batch"]
        best_val = state["best_val_loss"]
    loss_fn = DVAELoss(model, cfg.loss)  # loss_fn(batch) -> (total, terms)
    train_loss_fn = loss_fn  # what the step calls: DDP averages the gradients over processes
    if dist.enabled:
        train_loss_fn = DistributedDataParallel(
            loss_fn, device_ids=[device.index] if device.type == "cuda" else None)

    def training_state() -> dict:
        """Everything besides the weights that a resumed run needs (checkpoint `extra`)."""
        return {"format": CHECKPOINT_FORMAT, "step": step, "epoch": epoch, "batch": position,
                "batch_size": cfg.data.batch_size, "world_size": dist.world_size,
                "optimizer": optimizer.state_dict(), "scheduler": schedule.state_dict(),
                "scaler": scaler.state_dict(), "rng": rng_states(), "best_val_loss": best_val,
                "config": to_dict(cfg)}

    run = None
    if main:
        run = RunDir(out, resume_step=step)
        run.write_config(dump_config(cfg, "The resolved config of this run (file, --set "
                                          "overrides, defaults).\n"
                                          "handlatent-train --out DIR --resume reads it."))
        say(f"{'resuming' if ckpt else 'training'} {out} on {device}"
            f"{f' x{dist.world_size} processes' if dist.enabled else ''}: step {step} of "
            f"{total_steps}, {len(train_set)} training / {len(val_set)} validation samples, "
            f"batch {cfg.data.batch_size}")

    # ----------------------------------------------------------------------------------- loop
    batches = iterate_batches(train_loader, sampler, epoch, position)
    bar = tqdm(total=total_steps, initial=step, unit="step", dynamic_ncols=True,
               disable=not (main and sys.stderr.isatty()))
    sums, n_sums, data_wait, step_time = {}, 0, 0.0, 0.0
    stopped_by = None
    clock = time.process_time if cfg.run.time_clock == "cpu" else time.perf_counter
    deadline = (None if cfg.run.time_budget_min is None
                else clock() + 60.0 * cfg.run.time_budget_min)
    loss_fn.train()
    while step < total_steps:
        t0 = time.perf_counter()
        epoch, position, batch = next(batches)
        batch = to_device(batch, device, cfg.run.channels_last)
        t1 = time.perf_counter()

        lr = schedule.lr(step)
        for group in optimizer.param_groups:
            group["lr"] = lr
        torch.manual_seed(step_seed(cfg.run.seed, step, dist.rank))
        with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
            loss, terms = train_loss_fn(batch)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        if o.grad_clip is not None:
            scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(model.parameters(), o.grad_clip)
        scaler.step(optimizer)
        scaler.update()
        step += 1

        for name, value in terms.items():
            sums[name] = sums.get(name, 0.0) + value.detach().float()
        n_sums += 1
        logging_now = step % cfg.run.log_interval == 0 or step == total_steps
        if logging_now and device.type == "cuda":
            torch.cuda.synchronize()  # so that the step times below are real
        data_wait += t1 - t0
        step_time += time.perf_counter() - t0
        bar.update(1)

        # ---- log: the mean of every term since the last log line, averaged over ranks
        if logging_now:
            names = sorted(sums)
            stats = torch.stack([sums[k] for k in names]
                                + [torch.tensor(data_wait / step_time, device=device)])
            stats = distributed.all_reduce_sum(stats, dist) / dist.world_size
            means = {k: v / n_sums for k, v in zip(names, stats.tolist())}
            record = {"split": "train", "step": step,
                      "epoch": epoch_float(epoch, position, sampler), **means, "lr": lr,
                      "images_per_s": n_sums * cfg.data.batch_size / step_time,
                      "data_wait": stats[-1].item(), "step_s": step_time / n_sums}
            if main:
                run.log(record)
                bar.set_postfix(loss=f"{means['total']:.4g}", wait=f"{record['data_wait']:.0%}",
                                refresh=False)
                if bar.disable:
                    eta = (total_steps - step) * record["step_s"]
                    say(f"step {step}/{total_steps} | loss {means['total']:.4g} | lr {lr:.2e} | "
                        f"{record['images_per_s']:.1f} img/s | data wait "
                        f"{record['data_wait']:.1%} | eta {format_seconds(eta)}")
            sums, n_sums, data_wait, step_time = {}, 0, 0.0, 0.0

        # ---- validate: mean terms over the validation set; plateau schedule; best.pt
        if step % cfg.run.val_interval == 0 or step == total_steps:
            val = evaluate(loss_fn, val_loader, device, cfg, dist, step)
            schedule.observe(val["total"])
            improved = val["total"] < best_val
            best_val = min(best_val, val["total"])
            if main:
                run.log({"split": "val", "step": step,
                         "epoch": epoch_float(epoch, position, sampler), **val,
                         "best_val_loss": best_val})
                run.log_images("val/input_reconstruction_fromlabels",
                               image_columns(model, val_set, cfg, device), step)
                if improved:
                    run.save(run.best, model, {"step": step, "val_loss": val["total"],
                                               "config": to_dict(cfg)})
                say(f"step {step}: val loss {val['total']:.4g} (best {best_val:.4g})")
            loss_fn.train()

        # ---- stop on a signal (any rank's) or when told to; checkpoint
        if distributed.any_rank(stop.signum is not None, dist, device):
            stopped_by = signal.Signals(stop.signum).name if stop.signum else "signal"
        elif stop_after is not None and step >= stop_after:
            stopped_by = f"stop_after={stop_after}"
        elif deadline is not None and distributed.any_rank(clock() >= deadline, dist, device):
            stopped_by = f"time_budget_min={cfg.run.time_budget_min:g} ({cfg.run.time_clock})"
        if main and (stopped_by or step % cfg.run.ckpt_interval == 0 or step == total_steps):
            run.save(run.last, model, training_state())
        if stopped_by:
            break

    bar.close()
    if main:
        if stopped_by:
            say(f"stopped by {stopped_by} after step {step}; saved {run.last} "
                f"(continue with --resume)")
        else:
            say(f"done: {step} steps, best val loss {best_val:.4g}; saved {run.last}")
        run.close()
    distributed.barrier(dist)
    return {"step": step, "total_steps": total_steps, "stopped_by": stopped_by,
            "best_val_loss": best_val, "out": str(out)}


# ------------------------------------------------------------------------------------------
# Helpers, in the order the loop uses them
# ------------------------------------------------------------------------------------------


def say(text: str) -> None:
    """Print a line to stdout (above the progress bar when there is one)."""
    tqdm.write(text, file=sys.stdout)
    sys.stdout.flush()


def cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def pick_device(name: str, local_rank: int = 0) -> torch.device:
    """run.device as a torch.device; `auto` and `cuda` take the process's own GPU
    (LOCAL_RANK under torchrun)."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(name)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", local_rank)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError("CUDA is not available on this machine", "run.device")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ConfigError(f"no {name}: this machine has {torch.cuda.device_count()} "
                              "CUDA devices", "run.device")
    return device


def init_weights(path: str, config: ModelConfig, match: str = "exact"):
    """The model stored at `path` (run.init), refused in one line unless its config is `config`
    (with match "shapes": unless its latent layout is `config`'s)."""
    try:
        model = load_model(path, device="cpu")
    except CheckpointError as error:
        raise ConfigError(str(error), "run.init") from None
    if match == "shapes" and model.layout != config.layout:
        raise ConfigError(f"{path}: its latent layout {model.layout.to_dict()} differs from "
                          f"this run's {config.layout.to_dict()}", "run.init")
    if match == "exact" and model.config != config:
        raise ConfigError(f"{path}: its model {model.config.to_dict()} differs from this run's "
                          f"{config.to_dict()}", "run.init")
    return model


def check_resumable(cfg: TrainConfig, ckpt: dict) -> None:
    """A checkpoint continues only a run with the same model and batch size."""
    if ckpt["extra"].get("format") != CHECKPOINT_FORMAT:
        raise ConfigError("last.pt was not written by handlatent-train (no training state)")
    saved, now = ckpt["extra"]["config"], to_dict(cfg)
    pairs = [(f"model.{k}", saved["model"].get(k), v) for k, v in now["model"].items()]
    pairs.append(("data.batch_size", saved["data"]["batch_size"], now["data"]["batch_size"]))
    for key, there, here in pairs:
        if there != here:
            raise ConfigError(f"{there!r} in the checkpoint, {here!r} now: a resumed run needs "
                              "the same", key)


def open_datasets(cfg: DataConfig, image_size: int, out: Path, dist,
                  seed: int = 0) -> tuple["MixedDataset", Dataset]:
    """The training set (a MixedDataset: one or several datasets, weighted, augmented) and the
    validation set: data.val, or else a fixed split held out of each training dataset."""
    entries = cfg.train if isinstance(cfg.train, list) else [DatasetEntry(path=cfg.train)]
    if cfg.train is None:  # data.synthetic: render it once into the run directory
        entries[0].path = out / "synthetic-data"
        if dist.is_main and not entries[0].path.exists():
            render_synthetic(entries[0].path, cfg.synthetic.count, image_size, cfg.synthetic.seed)
        distributed.barrier(dist)
    parts, held_out = [], []
    for k, entry in enumerate(entries):
        key = f"data.train[{k}].path" if isinstance(cfg.train, list) else "data.train"
        full = _open(entry.path, key, image_size)
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


def render_synthetic(path: Path, count: int, size: int, seed: int) -> None:
    """Run `handlatent-synth` (which writes atomically: a kill leaves no half dataset)."""
    say(f"rendering {count} synthetic {size} px images into {path}")
    cmd = [sys.executable, "-m", "handlatent.synth.cli", "--out", str(path), "--count",
           str(count), "--size", str(size), "--seed", str(seed)]
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or ["(no message)"])[-1]
        raise ConfigError(f"handlatent-synth failed: {last}", "data.synthetic")


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


def iterate_batches(loader: DataLoader, sampler: DeterministicBatches, epoch: int, position: int):
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


class LRSchedule:
    """lr(step) = warm-up factor x schedule (optim.schedule), set on the optimizer each step.

    For `plateau` the schedule is a scale that `observe(val_loss)` multiplies by optim.factor
    when the loss has not improved by a relative optim.threshold for more than optim.patience
    validations (torch's ReduceLROnPlateau rule), never below optim.min_lr.
    """

    def __init__(self, cfg: OptimConfig, total_steps: int):
        self.cfg, self.total_steps = cfg, total_steps
        self.scale, self.best, self.bad = 1.0, math.inf, 0

    def lr(self, step: int) -> float:
        c = self.cfg
        warm = min(1.0, (step + 1) / c.warmup_steps) if c.warmup_steps else 1.0
        if c.schedule == "cosine":
            span = max(1, self.total_steps - c.warmup_steps)
            t = min(1.0, max(0.0, (step - c.warmup_steps) / span))
            lr = c.min_lr + 0.5 * (c.lr - c.min_lr) * (1 + math.cos(math.pi * t))
        elif c.schedule == "step":
            lr = max(c.min_lr, c.lr * c.factor ** (step // c.step_size))
        elif c.schedule == "plateau":
            lr = max(c.min_lr, c.lr * self.scale)
        else:
            lr = c.lr
        return lr * warm

    def observe(self, val_loss: float) -> None:
        if self.cfg.schedule != "plateau" or not math.isfinite(val_loss):
            return
        if val_loss < self.best - self.cfg.threshold * abs(self.best) or math.isinf(self.best):
            self.best, self.bad = val_loss, 0
        else:
            self.bad += 1
            if self.bad > self.cfg.patience:
                self.scale, self.bad = self.scale * self.cfg.factor, 0

    def state_dict(self) -> dict:
        return {"scale": self.scale, "best": self.best, "bad": self.bad}

    def load_state_dict(self, state: dict) -> None:
        self.scale, self.best, self.bad = state["scale"], state["best"], state["bad"]


def step_seed(seed: int, step: int, rank: int) -> int:
    """Seed of the global torch RNG for one step of one rank."""
    return (seed * 1_000_003 + step) * 1009 + rank


def rng_states() -> dict:
    """The torch generators' states (tensors). Kept in last.pt for inspection: the loop reseeds
    the global RNG from (seed, step, rank) each step, so resuming does not need them."""
    return {"cpu": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else []}


def shutdown_workers(loaders: list) -> None:
    """Stop the loaders' persistent workers now. Left to interpreter exit they would hang it:
    multiprocessing's atexit hook terminates them with SIGTERM, which they ignore, then joins."""
    for loader in loaders:
        iterator = getattr(loader, "_iterator", None)
        if iterator is not None:
            iterator._shutdown_workers()  # what DataLoader's own iterator __del__ calls
            loader._iterator = None


def ignore_stop_signals(worker_id: int) -> None:
    """DataLoader workers leave SIGINT/SIGTERM to the training process, which finishes its step
    and then shuts them down (torchrun, Slurm and Ctrl-C signal the whole process group)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


class StopSignal:
    """SIGINT/SIGTERM set `signum`; the loop stops after the current step. A second signal
    interrupts at once (KeyboardInterrupt)."""

    def __init__(self):
        self.signum = None
        self._previous = {}
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handle)

    def _handle(self, signum, frame):
        if self.signum is not None:
            raise KeyboardInterrupt
        self.signum = signum

    def restore(self):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous = {}


@torch.no_grad()
def evaluate(loss_fn, loader: DataLoader, device: torch.device, cfg: TrainConfig, dist,
             step: int) -> dict:
    """Mean of every loss term over (up to run.val_batches batches of) the validation set."""
    loss_fn.eval()
    amp_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(cfg.run.amp)
    sums, count = {}, torch.zeros((), device=device)
    for i, batch in enumerate(loader):
        if cfg.run.val_batches is not None and i >= cfg.run.val_batches:
            break
        batch = to_device(batch, device, cfg.run.channels_last)
        torch.manual_seed(step_seed(cfg.run.seed, step, dist.rank) + 1_000_000 + i)  # fixed noise
        with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
            _, terms = loss_fn(batch)
        n = batch["image"].shape[0]
        for name, value in terms.items():
            sums[name] = sums.get(name, 0.0) + value.float() * n
        count += n
    names = sorted(sums)
    stats = distributed.all_reduce_sum(torch.stack([sums[k] for k in names] + [count]), dist)
    return {k: v for k, v in zip(names, (stats[:-1] / stats[-1].clamp(min=1)).tolist())}


@torch.no_grad()
def image_columns(model, val_set: Dataset, cfg: TrainConfig, device: torch.device) -> list:
    """Input, reconstruction (decode of the image posterior mean) and decoded from labels
    (z_y1, z_y2 from the label encoders' means, z_u from the image's) for the first
    run.image_count validation samples."""
    model.eval()
    n = min(cfg.run.image_count, len(val_set))
    items = [val_set[i] for i in range(n)]
    image = torch.stack([it["image"] for it in items]).to(device)
    cpose = torch.stack([it["cpose"] for it in items]).to(device)
    viewpoint = torch.stack([it["viewpoint"] for it in items]).to(device)
    mu, _ = model.encode_image(image)
    recon = model.decode(mu)["image"]
    mu_y1, _, mu_y2, _ = model.encode_labels(cpose, viewpoint)
    layout = model.layout
    z_labels = layout.join({"z_y1": mu_y1, "z_y2": mu_y2, "z_u": layout.split(mu)["z_u"]})
    from_labels = model.decode(z_labels)["image"]
    labelled = torch.tensor([bool(it.get("labelled", True)) for it in items], device=device)
    from_labels = torch.where(labelled.view(-1, 1, 1, 1), from_labels, 0.0)  # grey: no labels
    return [image, recon, from_labels]


def format_seconds(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"
