"""Training curves of a run directory as one PNG: `python -m handlatent.training.curves RUN OUT.png`.

Reads RUN/metrics.jsonl (train and val lines) and plots the embedding step's reconstruction
terms (what the image encoder is judged on at test time) and the KL of each sub-latent.
"""

from __future__ import annotations

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


def read_metrics(run: Path) -> list[dict]:
    """The JSON lines of RUN/metrics.jsonl; a missing or broken file is one ValueError line."""
    path = run / "metrics.jsonl"
    try:
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    except OSError as exc:
        raise ValueError(f"{path}: cannot read ({exc.strerror})") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: line {exc.lineno}: not JSON") from None


def plot_curves(run: Path, out: Path) -> Path:
    """Draw the train (thin) and validation (dots) curves of `run` into `out`."""
    lines = read_metrics(run)
    fig, axes = plt.subplots(2, 4, figsize=(16, 7), constrained_layout=True)
    for ax, (key, title) in zip(axes.flat, PANELS):
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
    fig.suptitle(f"{run.resolve().name}: embedding-step terms (image encoder alone)")
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=90)
    plt.close(fig)
    return out


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print("usage: python -m handlatent.training.curves RUN_DIR OUT.png", file=sys.stderr)
        return 2
    try:
        print(plot_curves(Path(args[0]), Path(args[1])))
    except ValueError as exc:
        print(f"curves: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
