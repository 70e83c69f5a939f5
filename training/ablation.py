"""Supplement Fig. 1: image reconstruction error and KL as β and d grow, from short 64 px runs.

    python -m handlatent.training.ablation --config training/configs/ablation-64.yaml \
        --test data/synth-64-test --out runs/ablation-64 --betas 0.1 1 10 100 --dims 8 16 64 \
        --json docs/results/ablation.json --plot docs/results/fig1_ablation.png

Each (β, d) trains the config with loss.beta = β and z_y1 = z_y2 = d/4, z_u = d/2 into
OUT/beta{β}-d{d}. (The supplement's "d_zy1 = d_zy2 = 0.5 d" leaves no z_u: on STB's few fixed
backgrounds the pose alone can draw the image, on synthetic hands with random backgrounds it
cannot, and the image error stays at the mean image's for every β; docs/results.md.) A finished run is reused and an
interrupted one resumed, so the grid can be stopped and started again. Each model is then
evaluated on the test set: MSE of the image decoded from the posterior mean, and
KL(q(z|x) || N(0, I)) summed over z, both means over the test images.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen first)

PROG = "python -m handlatent.training.ablation"


class Interrupted(Exception):
    """A grid run was stopped by a signal (Ctrl-C, SIGTERM): the grid stops with it."""


def run_name(beta: float, d: int) -> str:
    """The run directory of one grid point, e.g. beta0.1-d8."""
    return f"beta{beta:g}-d{d}"


def grid_overrides(beta: float, d: int) -> list[str]:
    """--set overrides of one grid point: β, and d split as z_y1 = z_y2 = d/4, z_u = d/2."""
    if d < 4 or d % 4:
        raise ValueError(f"d must be a multiple of 4, got {d}")
    return [f"loss.beta={beta:g}", f"model.z_y1={d // 4}", f"model.z_y2={d // 4}",
            f"model.z_u={d // 2}"]


def train_point(config: Path, out: Path, beta: float, d: int, sets: list[str]) -> Path:
    """Train (or finish, or reuse) the run of one grid point; returns its directory."""
    from handlatent.checkpoint import load_checkpoint
    from handlatent.training.config import load_config
    from handlatent.training.train import train

    cfg = load_config(config, [*sets, *grid_overrides(beta, d)])
    run = out / run_name(beta, d)
    last = run / "last.pt"
    summary = None
    if not last.exists():
        summary = train(cfg, run)
    elif load_checkpoint(last)["extra"]["step"] < cfg.run.steps:
        summary = train(cfg, run, resume=True)
    if summary is not None and summary["stopped_by"] is not None:
        raise Interrupted(f"{run}: stopped by {summary['stopped_by']} at step "
                          f"{summary['step']}; run the same command again to go on")
    return run


def evaluate_point(run: Path, test: str, limit: int | None) -> dict[str, Any]:
    """Image MSE and KL of a run's final model on the test set."""
    from handlatent.checkpoint import load_model
    from handlatent.data import open_dataset
    from handlatent.training.evaluate import EvalOptions, evaluate

    model = load_model(run / "last.pt", device="cpu")
    results, _ = evaluate(model, open_dataset(test),
                          EvalOptions(limit=limit, disentanglement=False, progress=False))
    return {"image_mse": results["image_mse"], "kl": results["kl"]["total"],
            "kl_parts": {k: results["kl"][k] for k, s in model.layout.slices.items()
                         if s.stop > s.start},
            "epe_mean_mm": results["epe_mean_mm"]}


def plot_grid(points: list[dict[str, Any]], out: Path) -> Path:
    """Fig. 1's two panels: image MSE and KL against β, one line per d."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), constrained_layout=True)
    for d in sorted({p["d"] for p in points}):
        row = sorted((p for p in points if p["d"] == d), key=lambda p: p["beta"])
        betas = [p["beta"] for p in row]
        axes[0].plot(betas, [p["image_mse"] for p in row], marker="o", label=f"d = {d}")
        axes[1].plot(betas, [p["kl"] for p in row], marker="o", label=f"d = {d}")
    for ax, title in zip(axes, ("image reconstruction MSE (pixels in [-1, 1])",
                                "KL(q(z|x) || N(0, I)) (nats)")):
        ax.set_xscale("log")
        ax.set_xlabel("β")
        ax.set_title(title)
        ax.grid(alpha=0.3)
        ax.legend()
    axes[1].set_yscale("log")
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0])
    p.add_argument("--config", required=True, type=Path, help="base training config (YAML)")
    p.add_argument("--test", required=True, help="test dataset (handlatent.data.open_dataset)")
    p.add_argument("--out", required=True, type=Path, help="folder of the grid's run folders")
    p.add_argument("--betas", nargs="+", type=float, required=True, metavar="β")
    p.add_argument("--dims", nargs="+", type=int, required=True, metavar="d")
    p.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                   help="further config overrides for every run (repeatable)")
    p.add_argument("--limit", type=int, help="evaluate the first N test images only")
    p.add_argument("--json", type=Path, help="write the grid's numbers here")
    p.add_argument("--plot", type=Path, help="write the Fig. 1 PNG here")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from handlatent.checkpoint import CheckpointError
    from handlatent.training.config import ConfigError
    from handlatent.training.evaluate import EvaluationError

    points = []
    try:
        for d in args.dims:
            for beta in args.betas:
                run = train_point(args.config, args.out, beta, d, args.sets)
                point = {"beta": beta, "d": d, "run": str(run),
                         **evaluate_point(run, args.test, args.limit)}
                print(f"β = {beta:g}, d = {d}: image MSE {point['image_mse']:.4f}, "
                      f"KL {point['kl']:.1f} nats, EPE {point['epe_mean_mm']:.1f} mm", flush=True)
                points.append(point)
    except Interrupted as err:
        print(f"{PROG}: {err}", file=sys.stderr)
        return 130
    except (ConfigError, CheckpointError, EvaluationError, ValueError, OSError) as err:
        print(f"{PROG}: {' '.join(str(err).split())}", file=sys.stderr)
        return 2
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"config": str(args.config), "test": args.test,
                                         "points": points}, indent=2) + "\n")
    if args.plot:
        plot_grid(points, args.plot)
    return 0


if __name__ == "__main__":
    sys.exit(main())
