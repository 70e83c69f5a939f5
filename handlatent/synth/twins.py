"""Content twins of a synthetic dataset: each sample re-rendered with another sample's hand.

The twin of sample i keeps i's background, skin and light and takes the hand (pose, hand shape,
viewpoint and placement in the crop) of sample i + 1 of the same seed. Training the disentangling
step with z_u read from the twin (handlatent.model.objective) leaves z_u nothing of the target's
hand to copy, so the image decoder has to draw the hand from z_y1 and z_y2: what makes pose
transfer and pose walks change the image (docs/model.md, "Content twins").

    python -m handlatent.synth.twins DIR [--chunk 512] [--threads T] [--quiet]

adds ``DIR/twins.npy`` ((N, S, S, 3) uint8, like images.npy) and ``DIR/twins.json`` to a dataset
written by ``handlatent-synth``; meta.json is left untouched, so readers of the dataset that
are already running are not disturbed. Both files appear only when complete.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np

from handlatent.cli_errors import run_writer
from handlatent.synth import store
from handlatent.synth.scene import render_scene, scene_range

__all__ = ["TWINS_FILE", "TWINS_META", "content_twins", "twin_range", "write_twins",
           "open_twins", "main"]

TWINS_FILE, TWINS_META = "twins.npy", "twins.json"
HAND_GROUPS = ("pose", "shape", "viewpoint")
_CHECKED = 4  # samples re-rendered to prove the dataset's scenes are regenerated exactly


def content_twins(scenes, hands):
    """``scenes`` with their pose, hand shape and viewpoint taken from ``hands`` (same length)."""
    for group in HAND_GROUPS:
        scenes = scenes.replace(group, hands)
    return scenes


def twin_range(seed: int, start: int, stop: int):
    """The twin scenes of samples ``start:stop`` of the dataset with ``seed``."""
    both = scene_range(seed, start, stop + 1)
    return content_twins(both[: stop - start], both[1:])


def _check_regenerates(path: Path, meta: dict, images: np.ndarray, num_threads) -> None:
    if meta["generator_version"] != store.GENERATOR_VERSION:
        raise store.DatasetError(
            f"{path}: made by generator version {meta['generator_version']}, this one is "
            f"{store.GENERATOR_VERSION}; its twins cannot be rendered")
    n = min(_CHECKED, int(meta["count"]))
    again = render_scene(scene_range(int(meta["seed"]), 0, n), int(meta["size"]),
                         num_threads=num_threads)["image"]
    if not np.array_equal(again, images[:n]):
        raise store.DatasetError(f"{path}: its images are not what seed {meta['seed']} renders "
                                 "here; its twins cannot be rendered")


def write_twins(path, *, chunk: int = 512, num_threads: int | None = None,
                progress: bool = False) -> Path:
    """Render the content twins of the dataset at ``path`` into twins.npy; returns its path.

    Raises DatasetError when the dataset cannot be regenerated (another generator version, or
    images that this seed does not render), FileNotFoundError/DatasetError for a bad dataset.
    """
    path = Path(path)
    meta = store.read_meta(path)
    images = store.open_images(path, meta)
    _check_regenerates(path, meta, images, num_threads)
    count, size, seed = int(meta["count"]), int(meta["size"]), int(meta["seed"])
    shape = (count, size, size, 3)
    tmp = path / f"{TWINS_FILE}.tmp-{os.getpid()}"
    bar = None
    try:
        if progress:
            from tqdm import tqdm

            bar = tqdm(total=count, unit="img", desc=f"twins {size}px", dynamic_ncols=True)
        with store.image_stream(tmp, shape) as append:
            for start in range(0, count, chunk):
                stop = min(count, start + chunk)
                append(render_scene(twin_range(seed, start, stop), size,
                                    num_threads=num_threads)["image"])
                if bar is not None:
                    bar.update(stop - start)
        os.replace(tmp, path / TWINS_FILE)
        twins_meta = {"file": TWINS_FILE, "dtype": "uint8", "shape": list(shape),
                      "seed": seed, "generator_version": store.GENERATOR_VERSION,
                      "rule": "sample i's background, skin and light with the pose, hand shape "
                              "and viewpoint of sample i + 1"}
        (path / TWINS_META).write_text(json.dumps(twins_meta, indent=1) + "\n")
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    finally:
        if bar is not None:
            bar.close()
    return path / TWINS_FILE


def open_twins(path, meta: dict) -> np.ndarray | None:
    """The read-only memory map of a dataset's twins, or None when it has none."""
    path = Path(path)
    if not (path / TWINS_META).is_file():
        return None
    try:
        twins_meta = json.loads((path / TWINS_META).read_text())
        file = path / twins_meta["file"]
    except (ValueError, KeyError, TypeError) as e:
        raise store.DatasetError(f"{path / TWINS_META}: corrupt ({e})") from None
    if twins_meta.get("seed") != meta["seed"]:
        raise store.DatasetError(f"{path / TWINS_META}: twins of seed {twins_meta.get('seed')}, "
                                 f"the dataset has seed {meta['seed']}")
    return store.uint8_map(file, (meta["count"], meta["size"], meta["size"], 3), "twins")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m handlatent.synth.twins",
                                description="Add content twins (twins.npy) to a synthetic "
                                            "dataset written by handlatent-synth.")
    p.add_argument("dataset", help="dataset directory")
    p.add_argument("--chunk", type=int, default=512, help="samples rendered per batch (512)")
    p.add_argument("--threads", type=int, help="renderer threads (default: all cores)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    a = p.parse_args(argv)
    if a.chunk < 1 or (a.threads is not None and a.threads < 1):
        p.exit(2, f"{p.prog}: error: --chunk and --threads must be >= 1\n")
    status, out = run_writer(p.prog, lambda: write_twins(
        a.dataset, chunk=a.chunk, num_threads=a.threads, progress=not a.quiet),
        f"no twins were written to {a.dataset}")
    if status:
        return status
    if not a.quiet:
        print(f"wrote {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
