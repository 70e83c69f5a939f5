"""The run directory: what a training run leaves on disk.

    OUT/
      config.yaml         the resolved config (file + --set overrides + defaults)
      metrics.jsonl       one JSON object per line: train lines every run.log_interval steps,
                          val lines (`"split": "val"`) every run.val_interval steps
      tensorboard/        SummaryWriter events: the same scalars, and image grids
                          (input | reconstruction | decoded from labels) at each validation
      last.pt             the newest checkpoint, with everything --resume needs
      best.pt             the checkpoint with the lowest validation loss so far
      synthetic-data/     only when data.synthetic renders the training set on the fly

Only rank 0 of a distributed run creates a RunDir and writes these files.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import torch
from tqdm import tqdm

from handlatent.checkpoint import save_checkpoint

CONFIG, METRICS, TENSORBOARD = "config.yaml", "metrics.jsonl", "tensorboard"
LAST, BEST = "last.pt", "best.pt"


def say(text: str) -> None:
    """Print one line of a run's progress to stdout (above the progress bar when there is one)."""
    tqdm.write(text, file=sys.stdout)
    sys.stdout.flush()


class RunDir:
    def __init__(self, path: str | Path, resume_step: int = 0):
        """Open `path` for writing. When resuming from a checkpoint taken after `resume_step`
        steps, the metric lines and TensorBoard events written after it (by the interrupted
        run, past its last checkpoint) are dropped, so that every step appears once."""
        from torch.utils.tensorboard import SummaryWriter

        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)
        metrics = self.path / METRICS
        if metrics.exists():  # keep the lines up to the checkpoint, and whole lines only
            kept = [line for line in metrics.read_text().splitlines()
                    if _step_of(line) is not None and _step_of(line) <= resume_step]
            metrics.write_text("".join(line + "\n" for line in kept))
        self._metrics = open(metrics, "a", encoding="utf-8")
        self.tb = SummaryWriter(str(self.path / TENSORBOARD),
                                purge_step=resume_step + 1 if resume_step else None)

    @property
    def last(self) -> Path:
        return self.path / LAST

    @property
    def best(self) -> Path:
        return self.path / BEST

    def write_config(self, text: str) -> None:
        tmp = self.path / (CONFIG + ".tmp")
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(self.path / CONFIG)

    def log(self, record: dict) -> None:
        """Append one line to metrics.jsonl and the scalars to TensorBoard (`split/name`)."""
        record = {k: _plain(v) for k, v in record.items()}
        self._metrics.write(json.dumps(record) + "\n")
        self._metrics.flush()
        split, step = record.get("split", "train"), record["step"]
        for name, value in record.items():
            if name not in ("step", "split") and isinstance(value, (int, float)) \
                    and not isinstance(value, bool):
                self.tb.add_scalar(f"{split}/{name}", value, step)

    def log_images(self, tag: str, columns: list[torch.Tensor], step: int) -> None:
        """One grid image: a row per sample, a column per tensor of `columns` (each (N,3,S,S)
        in [-1, 1]), e.g. input | reconstruction | decoded from labels."""
        rows = torch.cat([c.detach().float().cpu().clamp(-1, 1) for c in columns], dim=3)
        grid = torch.cat(list(rows), dim=1)  # (3, N*S, len(columns)*S)
        self.tb.add_image(tag, (grid + 1) / 2, step)
        self.tb.flush()

    def save(self, path: Path, model: torch.nn.Module, extra: dict) -> None:
        save_checkpoint(path, model, extra=extra)

    def close(self) -> None:
        self._metrics.close()
        self.tb.close()


def _step_of(line: str) -> int | None:
    """The step of a metrics.jsonl line; None for a line cut short by a kill."""
    try:
        return int(json.loads(line)["step"])
    except (ValueError, KeyError, TypeError):
        return None


def _plain(value):
    if isinstance(value, torch.Tensor):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # JSON has no NaN/inf; keep them visible as strings
    return value
