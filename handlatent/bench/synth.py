"""Images per second of the whole synthetic pipeline: sample, pose, camera, render, labels."""

from __future__ import annotations

import time

from handlatent.synth.scene import render_scene, scene_range


def bench_synth(sizes: tuple[int, ...] = (64, 128, 256), count: int = 2048,
                repeats: int = 3) -> list[dict[str, float]]:
    """One row per size: best images/s over `repeats` runs of `count` images (after a warm-up)."""
    rows = []
    for size in sizes:
        render_scene(scene_range(0, 0, 64), size)  # compile / warm the numba kernels
        best = float("inf")
        for r in range(repeats):
            start = time.perf_counter()
            render_scene(scene_range(r + 1, 0, count), size)
            best = min(best, time.perf_counter() - start)
        rows.append({"size": size, "images": count, "images_per_s": count / best})
    return rows
