"""The bundled example hands decoded by several models, one row each, in one picture: how each
candidate decoder draws the same eight hands (docs/results.md).

    python -m handlatent.training.compare_examples OUT.png A.pt B.pt ... [--labels a b ...]
"""

from __future__ import annotations

import argparse
import sys

import numpy as np
import torch
from PIL import Image

from handlatent.checkpoint import CheckpointError, load_model
from handlatent.explorer.decoder import to_uint8_images
from handlatent.explorer.images import ImageError, prepare_image
from handlatent.explorer.stats import images_to_tensor
from handlatent.resources import example_images
from handlatent.training.figures import mosaic


def decoded_rows(paths: list[str]) -> tuple[np.ndarray, list[np.ndarray]]:
    """The examples as each model's input (E, S, S, 3) and each model's decode of their
    posterior means, one (E, S, S, 3) uint8 array per model."""
    rows, inputs = [], None
    for path in paths:
        model = load_model(path, device="cpu")
        size = model.config.image_size
        images = np.stack([prepare_image(p, size).model_input for p in example_images()])
        inputs = images if inputs is None else inputs
        with torch.inference_mode():
            mu, _ = model.encode_image(images_to_tensor(images))
            rows.append(to_uint8_images(model.decode(mu)["image"]))
    return inputs, rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m handlatent.training.compare_examples",
                                description=__doc__.splitlines()[0])
    p.add_argument("out", help="PNG to write")
    p.add_argument("checkpoints", nargs="+", help="models to compare")
    p.add_argument("--labels", nargs="+", help="one row label per model (default: file names)")
    args = p.parse_args(argv)
    labels = args.labels or [str(c).rsplit("/", 1)[-1] for c in args.checkpoints]
    if len(labels) != len(args.checkpoints):
        p.error(f"{len(labels)} labels for {len(args.checkpoints)} checkpoints")
    try:
        inputs, rows = decoded_rows(args.checkpoints)
    except (CheckpointError, ImageError) as error:
        print(f"compare_examples: {error}", file=sys.stderr)
        return 1
    picture = mosaic([list(inputs)] + [list(r) for r in rows], row_labels=["input", *labels],
                     min_cell=96)
    Image.fromarray(picture).save(args.out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
