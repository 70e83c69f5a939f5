"""Training throughput (images/s) and data-wait fraction of `handlatent-train` on a short run."""

from __future__ import annotations

import json
import statistics
import tempfile
from pathlib import Path

import handlatent.training
from handlatent.synth.store import write_dataset
from handlatent.training.config import load_config
from handlatent.training.train import train

CONFIG = Path(handlatent.training.__file__).parent / "configs" / "synth-128.yaml"
# The numeric formats compared: plain float32, and the bundled model's stage 2 (bf16 autocast
# with NHWC tensors, which roughly doubles training speed on a CPU with AVX512-BF16).
PRECISIONS = {"fp32": ["run.amp=none", "run.channels_last=false"],
              "bf16+channels_last": ["run.amp=bf16", "run.channels_last=true"]}


def bench_train(sizes: tuple[int, ...] = (64, 128), steps: int = 40, batch_size: int = 32,
                device: str = "cpu", precisions: tuple[str, ...] = tuple(PRECISIONS)
                ) -> list[dict[str, float]]:
    """One row per size and precision: median images/s and data-wait fraction over the run's
    log lines.

    Uses the synth-128 model (d = 64, ResNet-18) at each size on a freshly rendered dataset;
    the first logged interval (warm-up) is dropped.
    """
    rows = []
    for size, precision in ((s, p) for s in sizes for p in precisions):
        with tempfile.TemporaryDirectory() as tmp:
            data = Path(tmp) / "data"
            write_dataset(data, count=max(256, 2 * batch_size * 4), size=size, seed=0,
                          progress=False)
            cfg = load_config(CONFIG, [
                f"model.image_size={size}", f"data.train={data}", "data.val_count=32",
                f"data.batch_size={batch_size}", f"run.steps={steps}", f"run.log_interval={max(1, steps // 8)}",
                f"run.val_interval={steps}", "run.val_batches=1", f"run.ckpt_interval={steps}",
                f"run.device={device}", *PRECISIONS[precision]])
            train(cfg, Path(tmp) / "run")
            lines = [json.loads(line) for line in (Path(tmp) / "run" / "metrics.jsonl").open()]
            logs = [d for d in lines if d.get("split") == "train"][1:]
            rows.append({"size": size, "batch_size": batch_size, "precision": precision,
                         "images_per_s": statistics.median(d["images_per_s"] for d in logs),
                         "data_wait": statistics.median(d["data_wait"] for d in logs)})
    return rows
