"""The training processes: torch.distributed setup and teardown for runs started by `torchrun`,
and each process's device and CPU threads.

`torchrun --nproc_per_node=K -m handlatent.training.cli ...` sets RANK, LOCAL_RANK, WORLD_SIZE,
LOCAL_WORLD_SIZE, MASTER_ADDR and MASTER_PORT in each process's environment. Without them
`setup` returns a one-process `Dist` and nothing touches torch.distributed.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from handlatent.training.config import ConfigError
from handlatent.training.run_dir import say


@dataclass(frozen=True)
class Dist:
    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    local_world_size: int = 1

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0 alone logs, writes TensorBoard and checkpoints."""
        return self.rank == 0


def launched_by_torchrun() -> bool:
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ


def setup(device: torch.device) -> Dist:
    """Join the process group torchrun describes (nccl on CUDA, gloo on CPU)."""
    if not launched_by_torchrun() or int(os.environ["WORLD_SIZE"]) == 1:
        return Dist()
    info = Dist(
        rank=int(os.environ["RANK"]),
        local_rank=int(os.environ.get("LOCAL_RANK", 0)),
        world_size=int(os.environ["WORLD_SIZE"]),
        local_world_size=int(os.environ.get("LOCAL_WORLD_SIZE", os.environ["WORLD_SIZE"])),
    )
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        kwargs = {"device_id": device} if device.type == "cuda" else {}
        dist.init_process_group(backend=backend, **kwargs)
    return info


def teardown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def barrier(d: Dist) -> None:
    if d.enabled:
        dist.barrier()


def all_reduce_sum(t: torch.Tensor, d: Dist) -> torch.Tensor:
    """Sum of `t` over all ranks (returns `t` itself in a one-process run)."""
    if d.enabled:
        t = t.clone()
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


def broadcast_buffers(module: torch.nn.Module, d: Dist) -> None:
    """Give every rank rank 0's buffers. Each rank's forward updates the batch-norm running
    statistics from its own share of the batch (DDP broadcasts rank 0's only at the start of the
    next forward): without this, rank 1 would validate another model than the one rank 0 saves."""
    if not d.enabled:
        return
    buffers = list(module.buffers())
    for dtype in dict.fromkeys(b.dtype for b in buffers):   # one broadcast per dtype
        group = [b for b in buffers if b.dtype == dtype]
        flat = torch.cat([b.reshape(-1) for b in group])
        dist.broadcast(flat, src=0)
        offset = 0
        for b in group:
            b.copy_(flat[offset:offset + b.numel()].view_as(b))
            offset += b.numel()


def any_rank(flag: bool, d: Dist, device: torch.device) -> bool:
    """True on every rank when `flag` is true on at least one (e.g. a signal reached one rank)."""
    if not d.enabled:
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item() > 0)


def pick_device(name: str, local_rank: int | None = None) -> torch.device:
    """run.device as a torch.device; `auto` and `cuda` take the process's own GPU
    (`local_rank`, by default LOCAL_RANK under torchrun); ConfigError if there is none."""
    if local_rank is None:
        local_rank = int(os.environ.get("LOCAL_RANK", 0))
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


def set_threads(threads: int | None, dist: Dist) -> None:
    """torch CPU threads: run.threads, else this process's share of the cores."""
    torch.set_num_threads(threads or max(1, cpu_count() // dist.local_world_size))


def note_busy_cpu(threads: int | None, dist: Dist) -> None:
    """Say when the machine is busy and run.threads is unset (oversubscribed threads can make a
    step 5-10x slower); called once the run's data is open, so a run that fails first stays
    quiet about it."""
    cores = cpu_count()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    if threads is None and load > cores / 2 and dist.is_main:
        say(f"note: the CPU is busy (load average {load:.1f} on {cores} cores); if steps are "
            "slow, try --set run.threads=1: oversubscribed threads can make a step 5-10x slower")


def cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1
