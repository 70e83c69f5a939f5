"""GUI benchmark of following a training run: how long the GUI thread stalls while the explorer
reloads a checkpoint the trainer has just written.

`run_reload_bench(checkpoint, n=5)` opens a real main window that follows a temporary run
folder (File ▸ Follow run), and `n` times writes `checkpoint` into it as last.pt the way the
trainer does (a temp file renamed into place, from another thread, like the trainer's process).
Per reload it measures the time from the rename to the first frame of the new model painted,
and the longest gap of a 1 ms heartbeat QTimer on the GUI thread in that time (the stall the
user would feel); the switch itself on the GUI thread is `ModelLoader.apply_ms`.
Target: no stall over 30 ms (as for the sliders, docs/gui.md).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable

RELOAD_STALL_TARGET_MS = 30.0
RELOADS = 5


def _write_like_the_trainer(source: Path, run: Path) -> threading.Thread:
    """Copy `source` to run/last.pt atomically (temp file + rename) on another thread."""
    def write() -> None:
        tmp = run / f".last.pt.{time.monotonic_ns()}.tmp"
        shutil.copyfile(source, tmp)
        os.replace(tmp, run / "last.pt")
    thread = threading.Thread(target=write, name="fake-trainer")
    thread.start()
    return thread


def run_reload_bench(checkpoint: str | os.PathLike, n: int = RELOADS, *, device: str = "cpu",
                     window_size: tuple[int, int] = (1400, 900)) -> dict:
    """Follow a run that gains `n` checkpoints (copies of `checkpoint`) and time each reload."""
    from handlatent.app.bench import Heartbeat, bench_window, percentiles, wait_until
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")

    def first_frame(app: Any, window: Any) -> Callable[[], bool]:
        return lambda: window.frames_shown > 0

    source = Path(checkpoint)
    with tempfile.TemporaryDirectory(prefix="handlatent-run-") as folder, \
            bench_window(source, device, window_size, "the reload benchmark",
                          first_frame) as (app, session, window):
        run = Path(folder)
        window.models.follow_run(str(run))
        heartbeat = Heartbeat()
        reload_ms, stall_ms = [], []
        for _ in range(n):
            model = session.model
            shown = window.frames_shown
            wait_until(app, lambda: False, 0.2)
            start = time.perf_counter()
            heartbeat.start()
            writer = _write_like_the_trainer(source, run)
            ok = wait_until(app, lambda: session.model is not model and window.frames_shown > shown
                       and window.last_frame is not None
                       and window.last_frame.image.shape[0] == session.image_size, 120.0)
            reload_ms.append((time.perf_counter() - start) * 1000)
            heartbeat.stop()
            writer.join()
            if not ok:
                raise RuntimeError("a checkpoint written into the followed run was not shown "
                                   "within 120 s")
            stall_ms.append(heartbeat.max_gap_ms())
        reload = percentiles(reload_ms)
        apply = percentiles(window.models.loader.apply_ms)
        result = {"reloads": n, "reload_median_ms": reload[0], "reload_p95_ms": reload[1],
                  "reload_max_stall_ms": round(max(stall_ms), 1),
                  "reload_stall_median_ms": percentiles(stall_ms)[0],
                  "reload_apply_median_ms": apply[0], "reload_apply_p95_ms": apply[1]}
        result["reload_meets_target"] = bool(result["reload_max_stall_ms"]
                                             <= RELOAD_STALL_TARGET_MS)
        return result
