"""Timing helpers shared by the benchmarks: repeated wall-clock samples and machine facts."""

from __future__ import annotations

import os
import platform
import statistics
import time
from typing import Callable

import torch


def time_interleaved(fns: dict[str, Callable[[], object]], *, repeats: int, warmup: int = 3
                     ) -> dict[str, list[float]]:
    """Seconds taken by each of `repeats` rounds of every fn, called in turn within a round:
    a machine whose speed drifts (a shared VM) slows every fn alike, so their ratio holds."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    samples: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            samples[name].append(time.perf_counter() - start)
    return samples


def summarize_ms(samples: list[float]) -> dict[str, float]:
    """Median, p95 and min of timing samples, in milliseconds."""
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return {"median_ms": 1e3 * statistics.median(ordered), "p95_ms": 1e3 * p95,
            "min_ms": 1e3 * ordered[0]}


def machine() -> dict[str, object]:
    """What the numbers were measured on: CPU, cores, threads, torch build and device."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "torch": torch.__version__, "python": platform.python_version(),
            "cuda": torch.cuda.get_device_name() if torch.cuda.is_available() else None}
