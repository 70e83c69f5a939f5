"""The example hands `handlatent-gui` opens on: synthetic hands of one fixed seed, the first
sample of each new pose template, saved as PNGs in assets/examples/ (shipped as package data).

    python -m handlatent.synth.examples assets/examples

renders them again. Their size does not tie them to a model: the explorer crops and resizes any
image to its model's input size (handlatent.explorer.images).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from handlatent.synth.kinematics import TEMPLATE_NAMES
from handlatent.synth.scene import render_scene, scene_range

SEED = 5
COUNT = 8
SIZE = 128
SCANNED = 64  # samples of SEED searched for COUNT different templates


def example_indices() -> list[int]:
    """Indices (in seed SEED's samples) of the first sample of each new dominant template."""
    templates = scene_range(SEED, 0, SCANNED).template
    picked: list[int] = []
    for i, t in enumerate(templates):
        if all(templates[j] != t for j in picked):
            picked.append(i)
        if len(picked) == COUNT:
            return picked
    raise RuntimeError(f"seed {SEED}: fewer than {COUNT} templates in {SCANNED} samples")


def render_examples() -> dict[str, np.ndarray]:
    """File name -> (SIZE, SIZE, 3) uint8 image, e.g. "3-thumbs-up.png", in menu order."""
    indices = example_indices()
    scenes = scene_range(SEED, 0, max(indices) + 1)[np.array(indices)]
    images = render_scene(scenes, SIZE)["image"]
    return {f"{k + 1}-{TEMPLATE_NAMES[t].replace('_', '-')}.png": image
            for k, (t, image) in enumerate(zip(scenes.template, images))}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m handlatent.synth.examples",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, help="folder for the PNGs (assets/examples)")
    args = parser.parse_args(argv)
    if not args.out.is_dir():
        print(f"{parser.prog}: {args.out}: not a folder", file=sys.stderr)
        return 2
    for name, image in render_examples().items():
        Image.fromarray(image).save(args.out / name)
        print(args.out / name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
