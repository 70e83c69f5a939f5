"""Training curves as one PNG: `python -m handlatent.training.curves RUN|TABLE.csv OUT.png`.

A run directory: RUN/metrics.jsonl (train and val lines), the embedding step's reconstruction
terms (what the image encoder is judged on at test time) and the KL of each sub-latent.

A table of evaluated stages (TABLE.csv): one line per model, with `stage`, `branch` (stages
trained one from the other share a branch), `images` (training images since the branch's common
start) and the columns of TEST_ROWS as `handlatent-eval` reports them on one test set; plotted
against the images trained, with issue 13's targets, it says at what rate each row approaches
its target (what a missed target's closing note has to show).
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen first)

PANELS = (("emb/image", "image (sum of squared errors)"), ("emb/xyz", "3D pose (bone units²)"),
          ("emb/cpose", "CPose (bone units²)"), ("emb/viewpoint", "viewpoint (Frobenius²)"),
          ("emb/kl_z_y1", "KL z_y1 (nats)"), ("emb/kl_z_y2", "KL z_y2 (nats)"),
          ("emb/kl_z_u", "KL z_u (nats)"), ("lr", "learning rate"))
# A decoder-stage run (training/decoder_stage.py) logs the image decoder's own terms instead.
DECODER_PANELS = (("image", "image (sum of squared errors)"), ("l1", "L1, hand-weighted"),
                  ("ssim", "1 - SSIM"), ("ffl", "focal frequency"),
                  ("perceptual", "random-CNN perceptual"), ("uv", "crop head: keypoints²"),
                  ("side_error", "crop head: wrong side"), ("lr", "learning rate"))
# column, title, issue 13's target
TEST_ROWS = (("hand_psnr_db", "PSNR inside the hand (dB)", 25.0),
             ("image_psnr_db", "PSNR, whole image (dB)", 22.0),
             ("auc_20_50", "3D pose AUC 20-50 mm", 0.90),
             ("epe_mm", "mean 3D error (mm)", 15.0),
             ("viewpoint_deg", "viewpoint error, mean (°)", 20.0))


def read_metrics(run: Path) -> list[dict]:
    """The JSON lines of RUN/metrics.jsonl; a missing or broken file is one ValueError line."""
    path = run / "metrics.jsonl"
    try:
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    except OSError as exc:
        raise ValueError(f"{path}: cannot read ({exc.strerror})") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: line {exc.lineno}: not JSON") from None


def panels_of(lines: list[dict]) -> tuple[tuple[str, str], ...]:
    """The panels (metric key, title) for a run's metrics: a whole-model run's embedding-step
    terms, or a decoder-stage run's image terms (it logs no "emb/image")."""
    return PANELS if any("emb/image" in d for d in lines) else DECODER_PANELS


def plot_curves(run: Path, out: Path) -> Path:
    """Draw the train (thin) and validation (dots) curves of `run` into `out`."""
    lines = read_metrics(run)
    panels = panels_of(lines)
    fig, axes = plt.subplots(2, 4, figsize=(16, 7), constrained_layout=True)
    for ax, (key, title) in zip(axes.flat, panels):
        for split, style in (("train", {"lw": 1}), ("val", {"marker": "o", "lw": 2})):
            points = [(d["step"], d[key]) for d in lines
                      if d.get("split", "train") == split and key in d]
            if points:
                ax.plot(*zip(*points), label=split, **style)
        ax.set_title(title)
        ax.set_xlabel("step")
        if key != "lr":
            ax.set_yscale("log")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(f"{run.resolve().name}: " + ("decoder-stage terms" if panels is DECODER_PANELS
                                               else "embedding-step terms (image encoder alone)"))
    return _save(fig, out)


def read_table(path: Path) -> list[dict[str, str]]:
    """The lines of a stage table; a missing file or column is one ValueError line."""
    try:
        with path.open(newline="") as f:
            lines = list(csv.DictReader(f))
    except OSError as exc:
        raise ValueError(f"{path}: cannot read ({exc.strerror})") from None
    needed = {"stage", "branch", "images", *(column for column, _, _ in TEST_ROWS)}
    missing = needed - set(lines[0] if lines else ())
    if missing:
        raise ValueError(f"{path}: missing columns {sorted(missing)}")
    return lines


def plot_progress(table: Path, out: Path) -> Path:
    """One panel per test row: each branch's stages against the images trained, labelled by
    stage, with the target dashed."""
    lines = read_table(table)
    fig, axes = plt.subplots(1, len(TEST_ROWS), figsize=(4 * len(TEST_ROWS), 3.8),
                             constrained_layout=True)
    for ax, (column, title, target) in zip(axes, TEST_ROWS):
        for branch in dict.fromkeys(line["branch"] for line in lines):
            points = [(float(line["images"]) / 1e3, float(line[column]), line["stage"])
                      for line in lines if line["branch"] == branch]
            ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=branch)
            for x, y, stage in points:
                ax.annotate(stage, (x, y), textcoords="offset points", xytext=(3, 4), fontsize=7)
        ax.axhline(target, ls="--", color="k", lw=1, label="target")
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("training images since the start (thousands)")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle(f"{table.name}: test rows against training, issue 13's targets dashed")
    return _save(fig, out)


def _save(fig: plt.Figure, out: Path) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=90)
    plt.close(fig)
    return out


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print("usage: python -m handlatent.training.curves RUN_DIR|TABLE.csv OUT.png",
              file=sys.stderr)
        return 2
    source, out = Path(args[0]), Path(args[1])
    try:
        print((plot_progress if source.suffix == ".csv" else plot_curves)(source, out))
    except ValueError as exc:
        print(f"curves: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
