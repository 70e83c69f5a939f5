"""Following a training run from the explorer: which checkpoint is newest, what the run logged.

A run folder (training/run_dir.py) holds last.pt and best.pt, each written atomically (a temp
file renamed into place), and metrics.jsonl, one JSON object per line (validation lines carry
`"split": "val"`). `RunFollower` says which checkpoint to load next; the GUI calls `check` when
the folder changed (app/follow_panel.py watches it) and loads what it names off its thread.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

CHECKPOINTS = ("last.pt", "best.pt")   # last first: it wins a tie
METRICS = "metrics.jsonl"
SHOWN_LOSSES = ("total", "dis", "emb")  # the validation losses the status line names


def check_run_folder(path: str | os.PathLike) -> Path:
    """`path` as a Path if it is a folder; ValueError (one line) otherwise."""
    path = Path(path)
    if not path.exists():
        raise ValueError(f"{path}: no such run folder")
    if not path.is_dir():
        raise ValueError(f"{path}: not a run folder (expected the --out folder of "
                         f"handlatent-train, holding last.pt and metrics.jsonl)")
    return path


Stamp = tuple[int, int, int]   # (mtime_ns, size, inode): a new file under the same name


def stamp(path: Path) -> Stamp | None:
    """What identifies the file now at `path` (None if there is none)."""
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size, st.st_ino)


def newest_checkpoint(run: Path) -> Path | None:
    """The run's most recently written checkpoint (last.pt or best.pt), or None."""
    found = [(s[0], -i, run / name) for i, name in enumerate(CHECKPOINTS)
             if (s := stamp(run / name)) is not None]
    return max(found)[2] if found else None


@dataclass
class RunMetrics:
    """What a run's metrics.jsonl says: the newest step and the validation records."""

    step: int | None = None
    val: list[dict] = field(default_factory=list)

    def curves(self, names: tuple[str, ...] = SHOWN_LOSSES) -> dict[str, tuple[list, list]]:
        """name -> (steps, values) of each validation loss in `names` that was logged."""
        out: dict[str, tuple[list, list]] = {}
        for record in self.val:
            for name in names:
                value = record.get(name)
                if isinstance(value, (int, float)) and math.isfinite(value):
                    steps, values = out.setdefault(name, ([], []))
                    steps.append(record["step"])
                    values.append(float(value))
        return out

    def summary(self) -> str:
        """"step 1200 · val (step 1000) total 9.83e+03, dis 1.78e+03, …" or "" if nothing."""
        parts = [f"step {self.step}"] if self.step is not None else []
        if self.val:
            last = self.val[-1]
            losses = ", ".join(f"{name} {last[name]:.4g}" for name in SHOWN_LOSSES
                               if isinstance(last.get(name), (int, float)))
            parts.append(f"val (step {last['step']}) {losses}".rstrip())
        return " · ".join(parts)


def read_metrics(run: Path) -> RunMetrics:
    """Parse `run`/metrics.jsonl (missing: empty); lines cut short by a kill are skipped."""
    metrics = RunMetrics()
    try:
        text = (run / METRICS).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return metrics
    for line in text.splitlines():
        try:
            record = json.loads(line)
            step = int(record["step"])
        except (ValueError, KeyError, TypeError):
            continue
        if not isinstance(record, dict):
            continue
        metrics.step = step if metrics.step is None else max(metrics.step, step)
        if record.get("split") == "val":
            metrics.val.append(record)
    return metrics


class RunFollower:
    """Which checkpoint of a run to load next: the newest one, once per file written.

    `check()` names the checkpoint to load (or None: nothing new); `loaded`/`failed` record
    the outcome, so a file that failed to load is not tried again until it is rewritten.
    """

    def __init__(self, run: str | os.PathLike) -> None:
        self.run = check_run_folder(run)
        self._done: dict[Path, Stamp] = {}     # the stamp of each file last tried
        self.current: Path | None = None       # the checkpoint now open

    def check(self) -> tuple[Path, Stamp] | None:
        """(path, stamp) of the newest checkpoint if it was not tried yet, else None."""
        path = newest_checkpoint(self.run)
        if path is None:
            return None
        now = stamp(path)
        if now is None or self._done.get(path) == now:
            return None
        return path, now

    def tried(self, path: Path, now: Stamp, ok: bool) -> None:
        """Record that the file `path` with stamp `now` was loaded (`ok`) or failed."""
        self._done[path] = now
        if ok:
            self.current = path

    def already_open(self, path: Path) -> None:
        """The session shows `path` already (opened at start): not to be loaded again."""
        now = stamp(path)
        if now is not None:
            self.tried(path, now, ok=True)

    def waiting_message(self) -> str:
        """The status line while the run has no checkpoint yet."""
        return (f"Following {self.run}: waiting for its first checkpoint "
                f"({' or '.join(CHECKPOINTS)})")

    def metrics(self) -> RunMetrics:
        """The run's metrics now."""
        return read_metrics(self.run)
