"""The dVAE training loop. Read it top to bottom: `train()` is the whole story.

    setup      device, processes (torchrun), threads, signals; the run directory or its last.pt
    data       datasets, the deterministic batch order, DataLoaders (training/data.py)
    model      dVAE, optimizer, learning-rate schedule (training/schedule.py), AMP scaler;
               resume from last.pt
    loop       fetch a batch -> forward -> backward -> step; log, validate, checkpoint
    stop       at the last step, or after the step a SIGINT/SIGTERM arrived in (or the one that
               spent run.time_budget_min)

One `contextlib.ExitStack` owns what a run holds open and gives it back on every way out, last
opened first: the run directory's files, the loaders' worker processes, the signal handlers,
the torchrun process group; a reader error met on the way becomes one line (ConfigError).

Reproducibility: the batch order is a function of (seed, epoch) and the global torch RNG (the
reparameterisation noise) is reseeded from (seed, step, rank) before every step, so a run stopped
after any step and resumed from its last.pt makes exactly the updates an uninterrupted run makes.
The sampler hands each index out with its epoch: the share drawn from each dataset of a mixture
and the augmentation of real photographs are functions of (seed, epoch, index) too.
"""

from __future__ import annotations

import math
import signal
import sys
import threading
import time
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any, Iterator

import torch
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from handlatent.checkpoint import load_checkpoint
from handlatent.data.crop import ReaderError
from handlatent.model import DVAE, DVAELoss, ModelConfig, build_model
from handlatent.training import distributed
from handlatent.training.config import ConfigError, TrainConfig, dump_config, to_dict
from handlatent.training.decoder_stage import (DecoderStageLoss, train_crop_head,
                                                 with_posteriors)
from handlatent.training.data import (epoch_float, iterate_batches, make_loaders, open_datasets,
                                      reader_problem, stop_workers, to_device)
from handlatent.training.run_dir import BEST, LAST, METRICS, RunDir, say
from handlatent.training.schedule import LRSchedule
from handlatent.training.warm_start import initialise

CHECKPOINT_FORMAT = "handlatent-train/1"
AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def train(cfg: TrainConfig, out: str | Path, *, resume: bool = False,
          stop_after: int | None = None) -> dict[str, Any]:
    """Train the dVAE described by `cfg`, writing the run directory `out`.

    resume:     continue from out/last.pt (optimizer, schedule, data position, best loss).
    stop_after: stop after this many steps as if interrupted (save last.pt, no final
                validation); for tests and time-boxed runs.
    Returns a summary dict (step, stopped_by, best_val_loss, ...). Raises ConfigError for
    problems a user can fix (no CUDA, dataset mismatch, a resume that does not fit).
    """
    # ---------------------------------------------------------------------------------- setup
    out = Path(out)
    device = distributed.pick_device(cfg.run.device)
    if cfg.run.amp == "fp16" and device.type != "cuda":
        raise ConfigError("fp16 needs a CUDA device (use bf16 or none on the CPU)", "run.amp")
    if device.type == "cuda":
        torch.cuda.set_device(device)
    with ExitStack() as stack:
        stack.enter_context(reader_errors_in_one_line())
        dist = distributed.setup(device)  # a no-op unless started by torchrun
        stack.callback(distributed.teardown)
        main = dist.is_main
        if device.type == "cpu":
            distributed.set_threads(cfg.run.threads, dist)
        stop = stack.enter_context(StopSignal())  # SIGINT/SIGTERM: finish the step, save, return
        ckpt = resume_point(cfg, out, resume)

        # ------------------------------------------------------------------------------- data
        train_set, val_set = open_datasets(cfg.data, cfg.model.image_size, out, dist,
                                           cfg.run.seed)
        if device.type == "cpu":  # the run starts: its data opened
            distributed.note_busy_cpu(cfg.run.threads, dist)

        # ------------------------------------------------------------------------------ model
        torch.manual_seed(cfg.run.seed)  # the same initial weights on every rank
        model = build_model(cfg.model)
        if ckpt is None:
            initialise(model, cfg, verbose=main)
        else:
            model.load_state_dict(ckpt["state_dict"])
        model.to(device)
        if cfg.run.channels_last:
            model.to(memory_format=torch.channels_last)
        if cfg.decoder.enabled and cfg.decoder.cache_posteriors:  # the frozen encoder, once
            train_set = with_posteriors(train_set, model, cfg, out, device)
            if ckpt is None and cfg.decoder.head_steps and model.image_decoder.crop is not None:
                say(f"decoder stage: crop head alone, {cfg.decoder.head_steps} steps: "
                    f"{train_crop_head(model, train_set, cfg.decoder, 1e-3, cfg.run.seed)}")
        sampler, train_loader, val_loader = make_loaders(train_set, val_set, cfg, dist, device)
        stack.callback(stop_workers, val_loader)
        stack.callback(stop_workers, train_loader)
        total_steps = cfg.run.steps or math.ceil(cfg.run.epochs * sampler.batches_per_epoch)
        o = cfg.optim
        optimizer = torch.optim.Adam(model.parameters(), lr=o.lr, betas=o.betas, eps=o.eps,
                                     weight_decay=o.weight_decay,
                                     fused=device.type in ("cpu", "cuda"))  # CPU: 3x faster
        schedule = LRSchedule(o, total_steps)
        scaler = torch.amp.GradScaler(device.type, enabled=cfg.run.amp == "fp16")
        amp_dtype = AMP_DTYPES.get(cfg.run.amp)
        step, epoch, position, best_val = 0, 0, 0, math.inf
        if ckpt is not None:
            state = ckpt["extra"]
            optimizer.load_state_dict(state["optimizer"])
            schedule.load_state_dict(state["scheduler"])
            scaler.load_state_dict(state["scaler"])
            step, epoch, position = state["step"], state["epoch"], state["batch"]
            best_val = state["best_val_loss"]
        loss_fn = (DecoderStageLoss(model, cfg.decoder, cfg.loss.w_hand) if cfg.decoder.enabled
                   else DVAELoss(model, cfg.loss))  # loss_fn(batch) -> (total, terms)
        train_loss_fn = loss_fn  # what the step calls: DDP averages the gradients over processes
        if dist.enabled:
            train_loss_fn = DistributedDataParallel(
                loss_fn, device_ids=[device.index] if device.type == "cuda" else None)

        def training_state() -> dict[str, Any]:
            """Everything besides the weights that a resumed run needs (checkpoint `extra`)."""
            return {"format": CHECKPOINT_FORMAT, "step": step, "epoch": epoch, "batch": position,
                    "batch_size": cfg.data.batch_size, "world_size": dist.world_size,
                    "optimizer": optimizer.state_dict(), "scheduler": schedule.state_dict(),
                    "scaler": scaler.state_dict(), "rng": rng_states(),
                    "best_val_loss": best_val, "config": to_dict(cfg)}

        run = None
        if main:
            run = RunDir(out, resume_step=step)
            stack.callback(run.close)
            run.write_config(dump_config(cfg, "The resolved config of this run (file, --set "
                                              "overrides, defaults).\n"
                                              "handlatent-train --out DIR --resume reads it."))
            say(f"{'resuming' if ckpt else 'training'} {out} on {device}"
                f"{f' x{dist.world_size} processes' if dist.enabled else ''}: step {step} of "
                f"{total_steps}, {len(train_set)} training / {len(val_set)} validation "
                f"samples, batch {cfg.data.batch_size}")

        # ------------------------------------------------------------------------------- loop
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
            distributed.broadcast_buffers(model, dist)  # one model on every rank (batch norm)
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
                    bar.set_postfix(loss=f"{means['total']:.4g}",
                                    wait=f"{record['data_wait']:.0%}", refresh=False)
                    if bar.disable:
                        eta = (total_steps - step) * record["step_s"]
                        say(f"step {step}/{total_steps} | loss {means['total']:.4g} | "
                            f"lr {lr:.2e} | {record['images_per_s']:.1f} img/s | data wait "
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
            elif deadline is not None and distributed.any_rank(clock() >= deadline, dist,
                                                                device):
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
        distributed.barrier(dist)
        return {"step": step, "total_steps": total_steps, "stopped_by": stopped_by,
                "best_val_loss": best_val, "out": str(out)}


# ------------------------------------------------------------------------------------------
# Helpers, in the order the loop uses them
# ------------------------------------------------------------------------------------------


@contextmanager
def reader_errors_in_one_line() -> Iterator[None]:
    """An unreadable file of a real dataset, met while loading, as one ConfigError line."""
    try:
        yield
    except ReaderError as err:
        raise ConfigError(f"{reader_problem(err)} (add on_error=skip to the dataset spec to skip "
                          "bad samples with a warning)") from None


class StopSignal:
    """While entered, SIGINT/SIGTERM set `signum` and the loop stops after the current step; a
    second signal interrupts at once (KeyboardInterrupt). Leaving restores the handlers."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> StopSignal:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        if self.signum is not None:
            raise KeyboardInterrupt
        self.signum = signum

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous = {}


def resume_point(cfg: TrainConfig, out: Path, resume: bool) -> dict[str, Any] | None:
    """out/last.pt to continue from when resuming (ConfigError unless there is one of a run with
    the same model and batch size); else None, once sure that `out` holds no run to overwrite."""
    if not resume:
        for name in (LAST, BEST, METRICS):
            if (out / name).exists():
                raise ConfigError(f"{out} already holds a run ({name}): pass --resume to "
                                  "continue it, or choose another --out")
        return None
    if not (out / LAST).exists():
        raise ConfigError(f"nothing to resume: {out / LAST} does not exist")
    ckpt = load_checkpoint(out / LAST)
    if ckpt["extra"].get("format") != CHECKPOINT_FORMAT:
        raise ConfigError("last.pt was not written by handlatent-train (no training state)")
    saved, now = ckpt["extra"]["config"], to_dict(cfg)
    saved_model = ModelConfig.from_dict(saved["model"]).to_dict()  # older runs: defaults
    pairs = [(f"model.{k}", saved_model.get(k), v) for k, v in now["model"].items()]
    pairs.append(("data.batch_size", saved["data"]["batch_size"], now["data"]["batch_size"]))
    for key, there, here in pairs:
        if there != here:
            raise ConfigError(f"{there!r} in the checkpoint, {here!r} now: a resumed run needs "
                              "the same", key)
    return ckpt


def step_seed(seed: int, step: int, rank: int) -> int:
    """Seed of the global torch RNG for one step of one rank."""
    return (seed * 1_000_003 + step) * 1009 + rank


def rng_states() -> dict:
    """The torch generators' states (tensors). Kept in last.pt for inspection: the loop reseeds
    the global RNG from (seed, step, rank) each step, so resuming does not need them."""
    return {"cpu": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else []}


@torch.no_grad()
def evaluate(loss_fn: DVAELoss, loader: DataLoader, device: torch.device, cfg: TrainConfig,
             dist: distributed.Dist, step: int) -> dict[str, float]:
    """Mean of every loss term over (up to run.val_batches batches of) the validation set: each
    process sums its share, the sums and counts are added over processes."""
    loss_fn.eval()
    amp_dtype = AMP_DTYPES.get(cfg.run.amp)
    sums: dict[str, torch.Tensor] = {}
    count = torch.zeros((), device=device)
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
def image_columns(model: DVAE, val_set: Dataset, cfg: TrainConfig,
                  device: torch.device) -> list[torch.Tensor]:
    """Input, reconstruction (decode of the image posterior mean) and decoded from labels
    (`DVAE.latent_from_labels`) for the first run.image_count validation samples."""
    model.eval()
    items = [val_set[i] for i in range(min(cfg.run.image_count, len(val_set)))]
    image, cpose, viewpoint = (torch.stack([it[k] for it in items]).to(device)
                               for k in ("image", "cpose", "viewpoint"))
    mu, _ = model.encode_image(image)
    from_labels = model.decode(model.latent_from_labels(cpose, viewpoint, mu))["image"]
    labelled = torch.tensor([bool(it.get("labelled", True)) for it in items], device=device)
    from_labels = torch.where(labelled.view(-1, 1, 1, 1), from_labels, 0.0)  # grey: no labels
    return [image, model.decode(mu)["image"], from_labels]


def format_seconds(seconds: float) -> str:
    """H:MM:SS ("?" for an unknown time)."""
    if not math.isfinite(seconds):
        return "?"
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"
