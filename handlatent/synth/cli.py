"""``handlatent-synth``: render a synthetic hand dataset to a directory.

    handlatent-synth --out DIR --count N --size S --seed K [--chunk 512] [--preview grid.png]
                     [--overwrite] [--threads T] [--quiet]

Bad arguments give one line on stderr and exit status 2; an interrupted run (Ctrl-C, SIGTERM)
leaves no dataset behind and exits with 130.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

__all__ = ["main", "draw_skeleton", "preview_grid"]

_MAX_SIZE = 1024


def draw_skeleton(image: np.ndarray, uv: np.ndarray, visible: np.ndarray | None = None,
                  *, width: int = 2, radius: float = 2.0):
    """A PIL image: a copy of ``image`` (S,S,3) uint8 with the 21-keypoint skeleton drawn over.

    Bones are coloured by finger (skeleton.BONE_COLORS); visible keypoints are filled white
    dots, invisible ones hollow.
    """
    from PIL import Image, ImageDraw

    from handlatent.skeleton import BONE_COLORS, BONES

    im = Image.fromarray(np.ascontiguousarray(image))
    d = ImageDraw.Draw(im)
    uv = np.asarray(uv, dtype=np.float64)
    for (p, c), col in zip(BONES, BONE_COLORS):
        d.line([tuple(uv[p]), tuple(uv[c])], fill=tuple(int(255 * x) for x in col), width=width)
    for j in range(len(uv)):
        x, y = uv[j]
        vis = True if visible is None else bool(visible[j])
        d.ellipse([x - radius, y - radius, x + radius, y + radius],
                  fill=(255, 255, 255) if vis else None, outline=(0, 0, 0))
    return im


def preview_grid(images, uv, visible, is_right=None, *, cols: int = 8, gap: int = 8):
    """Two grids side by side: the images, and the same images with their skeletons.

    Right hands are tagged "R" in the overlay grid. Returns a PIL image.
    """
    from PIL import Image, ImageDraw

    n, S = len(images), images.shape[1]
    cols = min(cols, n)
    rows = -(-n // cols)
    W = cols * S
    grid = Image.new("RGB", (2 * W + gap, rows * S), (255, 255, 255))
    for i in range(n):
        r, c = divmod(i, cols)
        grid.paste(Image.fromarray(np.ascontiguousarray(images[i])), (c * S, r * S))
        ov = draw_skeleton(images[i], uv[i], visible[i], width=max(1, S // 64),
                           radius=max(1.5, S / 64))
        if is_right is not None:
            ImageDraw.Draw(ov).text((3, 2), "R" if is_right[i] else "L", fill=(255, 255, 0))
        grid.paste(ov, (W + gap + c * S, r * S))
    return grid


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit status 2
        self.exit(2, f"{self.prog}: error: {message}\n")


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="handlatent-synth",
                description="Render a synthetic hand dataset (images + 3D/2D labels).")
    p.add_argument("--out", required=True, help="output dataset directory")
    p.add_argument("--count", required=True, type=int, help="number of samples")
    p.add_argument("--size", required=True, type=int, help="image side in pixels (e.g. 64/128/256)")
    p.add_argument("--seed", required=True, type=int, help="random seed (>= 0)")
    p.add_argument("--chunk", type=int, default=512, help="samples rendered per batch (512)")
    p.add_argument("--preview", help="also write a PNG grid of the first 64 samples")
    p.add_argument("--overwrite", action="store_true", help="replace an existing dataset at --out")
    p.add_argument("--threads", type=int, help="renderer threads (default: all cores)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def main(argv=None) -> int:
    p = _parser()
    a = p.parse_args(argv)
    if a.count < 1:
        p.error(f"--count must be >= 1, got {a.count}")
    if not 8 <= a.size <= _MAX_SIZE:
        p.error(f"--size must be between 8 and {_MAX_SIZE}, got {a.size}")
    if a.seed < 0:
        p.error(f"--seed must be >= 0, got {a.seed}")
    if a.chunk < 1:
        p.error(f"--chunk must be >= 1, got {a.chunk}")
    if a.threads is not None and a.threads < 1:
        p.error(f"--threads must be >= 1, got {a.threads}")
    out = Path(a.out)
    preview = Path(a.preview) if a.preview else None
    if preview is not None and preview.suffix.lower() != ".png":
        p.error(f"--preview must name a .png file, got {a.preview}")
    if preview is not None and not preview.absolute().parent.is_dir():
        p.error(f"--preview: directory {preview.absolute().parent} does not exist")

    from handlatent.cli_errors import run_writer
    from handlatent.synth import store

    try:
        store.check_output_dir(out.absolute(), a.overwrite)
    except FileExistsError as e:
        p.error(str(e))

    t0, c0 = time.perf_counter(), time.process_time()
    status, _ = run_writer(p.prog, lambda: store.write_dataset(
        out, a.count, a.size, a.seed, chunk=a.chunk, overwrite=a.overwrite,
        progress=not a.quiet, num_threads=a.threads), f"nothing was written to {out}")
    if status:
        return status
    dt, cpu = time.perf_counter() - t0, time.process_time() - c0
    if not a.quiet:
        print(f"wrote {a.count} images of {a.size}px to {out} in {dt:.1f} s: "
              f"{a.count / dt:.0f} images/s, {1000 * cpu / a.count:.2f} ms CPU per image",
              file=sys.stderr)

    if preview is not None:
        meta, images, labels = store.open_arrays(out)
        n = min(64, a.count)
        preview_grid(images[:n], labels["uv"][:n], labels["visible"][:n],
                     labels["is_right"][:n]).save(preview)
        if not a.quiet:
            print(f"wrote preview {preview}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
