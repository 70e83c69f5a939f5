"""Turn a training checkpoint into a shippable model: `python -m handlatent.training.package SRC DST`.

Drops the optimizer and RNG state, stores the weights in half precision, and adds what the
explorer needs at start-up: `latent_stats` (the KL of each latent dimension over synthetic hands,
which orders and folds the sliders, and the Gaussian fitted to those hands' posteriors that random
samples are drawn from), `dim_labels` (what each pose and viewpoint dimension moves, named for the
sliders: handlatent.dim_labels) and the training provenance (step, resolved config).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import torch

from handlatent.checkpoint import CheckpointError, load_checkpoint, load_model, save_checkpoint
from handlatent.dim_labels import label_dimensions
from handlatent.explorer.sampling import fit_hands
from handlatent.explorer.stats import encode_hands, kl_per_dim


def package(src: Path, dst: Path, *, kl_samples: int = 2048) -> dict:
    """Write the shippable copy of `src` to `dst`; returns what was stored besides the weights."""
    extra = load_checkpoint(src).get("extra", {})
    model = load_model(src, device="cpu")
    mu, logvar = encode_hands(model, n=kl_samples)
    stored = {"latent_stats": {"kl_per_dim": [float(v) for v in kl_per_dim(mu, logvar)],
                               "hands": fit_hands(mu, logvar).to_stats(),
                               "source": f"{kl_samples} synthetic hands (explorer.stats)"},
              "dim_labels": label_dimensions(model).to_extra(),
              "training": {"step": extra.get("step"), "epoch": extra.get("epoch"),
                           "best_val_loss": extra.get("best_val_loss"),
                           "config": extra.get("config"), "source": src.name}}
    dst.parent.mkdir(parents=True, exist_ok=True)
    save_checkpoint(dst, model, extra=stored, half=True)
    return stored


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m handlatent.training.package",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("src", type=Path, help="a checkpoint written by handlatent-train")
    parser.add_argument("dst", type=Path, help="where to write the shippable model")
    parser.add_argument("--kl-samples", type=int, default=2048,
                        help="synthetic hands encoded for the KL and the sampling Gaussian")
    args = parser.parse_args(argv)
    torch.set_num_threads(os.cpu_count() or 1)
    try:
        stored = package(args.src, args.dst, kl_samples=args.kl_samples)
    except (CheckpointError, OSError) as exc:
        print(f"package: {exc}", file=sys.stderr)
        return 2
    active = sum(v >= 0.01 for v in stored["latent_stats"]["kl_per_dim"])
    print(f"wrote {args.dst} ({args.dst.stat().st_size / 2**20:.1f} MiB, step "
          f"{stored['training']['step']}, {active} active latent dimensions)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
