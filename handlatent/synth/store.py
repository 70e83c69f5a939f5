"""On-disk format of synthetic datasets: write atomically, read without per-sample decoding.

A dataset is a directory (see docs/data-format.md)::

    DIR/meta.json    format name and version, count, size, seed, generator version, array specs,
                     keypoint / template / content-factor names; written last
    DIR/images.npy   (N, S, S, 3) uint8, a plain .npy file opened with mmap_mode="r"
    DIR/labels.npz   uncompressed .npz of per-sample arrays (first axis N)

:func:`write_dataset` writes into ``DIR.tmp-<pid>`` beside ``DIR`` and renames it into place only
when everything, meta.json last, is written; an interrupted run removes its temporary directory
(and a killed one leaves only a ``*.tmp-<pid>`` directory without meta.json, which no reader
accepts). :func:`open_arrays` validates a directory and returns the memory-mapped images and the
labels, or raises one ``FileNotFoundError``/``ValueError`` naming the path and the problem.
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import zipfile
from pathlib import Path
from contextlib import contextmanager
from typing import Callable, Iterator

import numpy as np

from handlatent.synth import scene as _scene

__all__ = [
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "GENERATOR_VERSION",
    "LABEL_SPECS",
    "DatasetError",
    "write_dataset",
    "image_stream",
    "read_meta",
    "open_arrays",
    "open_masks",
]

FORMAT_NAME = "handlatent-synth"
FORMAT_VERSION = 1
# Bump when the same seed would give different samples (kinematics, camera, skin, renderer...).
GENERATOR_VERSION = "1"
META_FILE, IMAGES_FILE, LABELS_FILE = "meta.json", "images.npy", "labels.npz"
MASKS_FILE = "masks.npy"  # (N, S, S) uint8 0/1: the hand's pixels (optional: older datasets lack it)


def LABEL_SPECS(num_content: int) -> dict[str, tuple[str, tuple]]:  # noqa: N802 - a table
    """Per-sample label arrays: name -> (dtype, shape after the sample axis)."""
    return {
        "xyz": ("float32", (21, 3)),
        "uv": ("float32", (21, 2)),
        "visible": ("bool", (21,)),
        "is_right": ("bool", ()),
        "cpose": ("float32", (21, 3)),
        "viewpoint": ("float32", (3, 3)),
        "scale": ("float32", ()),
        "K": ("float32", (3, 3)),
        "template": ("int16", ()),
        "content": ("float32", (num_content,)),
    }


class DatasetError(ValueError):
    """A dataset directory that is incomplete, corrupt or of another format."""


# ---------------------------------------------------------------------------------------------
# Writing
# ---------------------------------------------------------------------------------------------


def _render_chunk(seed: int, start: int, stop: int, size: int, num_threads=None) -> dict:
    """Samples ``start:stop`` of the dataset ``seed`` (the unit of work of the writer)."""
    return _scene.render_scene(_scene.scene_range(seed, start, stop), size,
                               num_threads=num_threads)


def _write_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """An uncompressed .npz with fixed zip timestamps, so equal data gives equal bytes."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
        for name in sorted(arrays):
            info = zipfile.ZipInfo(name + ".npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_STORED
            buf = io.BytesIO()
            np.lib.format.write_array(buf, np.ascontiguousarray(arrays[name]), allow_pickle=False)
            zf.writestr(info, buf.getvalue())


@contextmanager
def image_stream(path: Path, shape: tuple[int, ...]) -> Iterator[Callable[[np.ndarray], None]]:
    """Write a uint8 .npy of `shape` chunk by chunk along its first axis (a plain .npy that
    np.load can memory-map): yields the function that appends a chunk; flushed and fsynced."""
    with open(path, "wb") as f:
        np.lib.format.write_array_header_1_0(
            f, {"descr": np.lib.format.dtype_to_descr(np.dtype(np.uint8)),
                "fortran_order": False, "shape": tuple(shape)})
        yield lambda chunk: f.write(memoryview(np.ascontiguousarray(chunk, np.uint8)).cast("B"))
        f.flush()
        os.fsync(f.fileno())


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def check_output_dir(out: Path, overwrite: bool) -> None:
    """Raise ``FileExistsError`` (one line) unless ``out`` may be (over)written."""
    if not out.exists():
        return
    if not out.is_dir():
        raise FileExistsError(f"{out} exists and is not a directory")
    if not any(out.iterdir()):
        return
    if not overwrite:
        raise FileExistsError(f"{out} exists and is not empty (pass --overwrite to replace it)")
    if not (out / META_FILE).is_file():
        raise FileExistsError(
            f"{out} is not empty and holds no {META_FILE}: refusing to replace a directory "
            "that is not a dataset")


def write_dataset(
    out,
    count: int,
    size: int,
    seed: int,
    *,
    chunk: int = 512,
    overwrite: bool = False,
    progress: bool | Callable[[int], None] = False,
    num_threads: int | None = None,
) -> Path:
    """Render ``count`` samples of ``size`` px with ``seed`` into the dataset directory ``out``.

    The content depends only on (count, size, seed, generator version): not on ``chunk`` or the
    number of threads. ``progress``: True for a tqdm bar, or a callable getting the number of
    samples done after each chunk. Returns the final path.
    """
    count, size, seed, chunk = int(count), int(size), int(seed), int(chunk)
    if count < 1 or size < 1 or chunk < 1 or seed < 0:
        raise ValueError("count, size and chunk must be >= 1 and seed >= 0")
    out = Path(out).absolute()
    check_output_dir(out, overwrite)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f"{out.name}.tmp-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    bar = None
    try:
        if progress is True:
            from tqdm import tqdm

            bar = tqdm(total=count, unit="img", desc=f"synth {size}px", dynamic_ncols=True)
        shape = (count, size, size, 3)
        with image_stream(tmp / IMAGES_FILE, shape) as append, \
                image_stream(tmp / MASKS_FILE, shape[:3]) as append_mask:
            labels: dict[str, np.ndarray] | None = None
            for start in range(0, count, chunk):
                stop = min(count, start + chunk)
                batch = _render_chunk(seed, start, stop, size, num_threads)
                image = batch.pop("image")
                assert image.shape == (stop - start,) + shape[1:]
                append(image)
                append_mask(batch.pop("mask"))
                if labels is None:
                    labels = {k: np.empty((count,) + v.shape[1:], v.dtype)
                              for k, v in batch.items()}
                for k, v in batch.items():
                    labels[k][start:stop] = v
                if bar is not None:
                    bar.update(stop - start)
                elif callable(progress):
                    progress(stop)
        _write_npz(tmp / LABELS_FILE, labels)
        _fsync(tmp / LABELS_FILE)
        specs = LABEL_SPECS(labels["content"].shape[1])
        for k, (dt, shp) in specs.items():  # the writer and the documented format agree
            assert labels[k].dtype == np.dtype(dt) and labels[k].shape[1:] == shp, k
        meta = _make_meta(count, size, seed, specs)
        with open(tmp / META_FILE, "w") as f:
            f.write(_dump_json(meta))
            f.flush()
            os.fsync(f.fileno())
        _move_into_place(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        if bar is not None:
            bar.close()
    return out


def _move_into_place(tmp: Path, out: Path) -> None:
    if out.exists() and any(out.iterdir()):
        old = out.parent / f"{out.name}.old-{os.getpid()}"
        os.replace(out, old)
        try:
            os.replace(tmp, out)
        except BaseException:
            os.replace(old, out)
            raise
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, out)  # also replaces an empty directory


def _dump_json(obj) -> str:
    """Indented JSON with short number lists (shapes) on one line."""
    text = json.dumps(obj, indent=1)
    return re.sub(r"\[\s*([-\d.,\s]*?)\s*\]", lambda m: "[" + re.sub(r"\s+", " ", m.group(1)) + "]",
                  text) + "\n"


def _make_meta(count: int, size: int, seed: int, specs: dict) -> dict:
    from handlatent.skeleton import KEYPOINT_NAMES
    from handlatent.synth.kinematics import TEMPLATE_NAMES

    return {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "generator_version": GENERATOR_VERSION,
        "count": count,
        "size": size,
        "seed": seed,
        "block": _scene.BLOCK,
        "images": {"file": IMAGES_FILE, "dtype": "uint8", "shape": [count, size, size, 3]},
        "masks": {"file": MASKS_FILE, "dtype": "uint8", "shape": [count, size, size]},
        "labels": {
            "file": LABELS_FILE,
            "arrays": {k: {"dtype": dt, "shape": [count, *shp]} for k, (dt, shp) in specs.items()},
        },
        "keypoint_names": list(KEYPOINT_NAMES),
        "template_names": list(TEMPLATE_NAMES),
        "content_factor_names": _scene.content_factor_names(),
        "units": "metres; camera frame OpenCV (x right, y down, z forward)",
        "pixel_convention": "pixel (row i, column j) is centred at (u, v) = (j, i)",
        "complete": True,
    }


# ---------------------------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------------------------


def read_meta(path) -> dict:
    """The validated meta.json of the dataset directory ``path``."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such dataset directory")
    if not path.is_dir():
        raise DatasetError(f"{path}: not a directory (a synthetic dataset is a directory)")
    mf = path / META_FILE
    if not mf.is_file():
        raise DatasetError(f"{path}: no {META_FILE}: not a dataset, or its writing was interrupted")
    try:
        meta = json.loads(mf.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise DatasetError(f"{mf}: incomplete or corrupt ({type(e).__name__}: {e})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT_NAME:
        raise DatasetError(f"{mf}: not a {FORMAT_NAME} dataset")
    if meta.get("format_version") != FORMAT_VERSION:
        raise DatasetError(f"{mf}: format version {meta.get('format_version')!r} is not supported "
                           f"(this reader knows {FORMAT_VERSION})")
    try:
        count, size = int(meta["count"]), int(meta["size"])
        arrays = dict(meta["labels"]["arrays"])
        _ = meta["content_factor_names"]
        ok = meta["complete"] is True and count >= 1 and size >= 1
    except (KeyError, TypeError, ValueError) as e:
        raise DatasetError(f"{mf}: incomplete or corrupt (missing or bad {e})") from None
    if not ok:
        raise DatasetError(f"{mf}: incomplete or corrupt (bad count/size/complete)")
    meta["labels"]["arrays"] = arrays
    return meta


def open_arrays(path) -> tuple[dict, np.ndarray, dict[str, np.ndarray]]:
    """(meta, images (N,S,S,3) uint8 read-only memmap, labels dict of arrays), all validated."""
    path = Path(path)
    meta = read_meta(path)
    count, size = meta["count"], meta["size"]
    images = open_images(path, meta)
    lf = path / meta["labels"]["file"]
    if not lf.is_file():
        raise FileNotFoundError(f"{lf}: labels file missing")
    try:
        with np.load(lf, allow_pickle=False) as z:
            labels = {k: z[k] for k in z.files}
    except Exception as e:  # zipfile.BadZipFile, ValueError, OSError, EOFError...
        raise DatasetError(f"{lf}: incomplete or corrupt ({type(e).__name__}: {e})") from None
    for k, spec in meta["labels"]["arrays"].items():
        if k not in labels:
            raise DatasetError(f"{lf}: array {k!r} missing")
        a = labels[k]
        if list(a.shape) != list(spec["shape"]) or a.dtype != np.dtype(spec["dtype"]):
            raise DatasetError(f"{lf}: array {k!r} is {a.dtype}{list(a.shape)}, meta.json says "
                               f"{spec['dtype']}{spec['shape']}")
    assert images.shape[0] == count and images.shape[1] == size
    return meta, images, labels


def open_masks(path, meta: dict) -> np.ndarray | None:
    """The read-only memory map (N, S, S) uint8 of a dataset's hand masks, or None for a
    dataset written before masks were stored."""
    spec = meta.get("masks")
    if spec is None:
        return None
    return uint8_map(Path(path) / spec["file"], (meta["count"], meta["size"], meta["size"]),
                     "masks")


def open_images(path, meta: dict | None = None) -> np.ndarray:
    """The read-only memory map of a dataset's images, checked against meta.json."""
    path = Path(path)
    meta = read_meta(path) if meta is None else meta
    return uint8_map(path / meta["images"]["file"],
                     (meta["count"], meta["size"], meta["size"], 3), "images")


def uint8_map(file: Path, want: tuple[int, ...], what: str) -> np.ndarray:
    """The read-only memory map of a uint8 .npy of shape `want` (a dataset's images, masks or
    twins); one-line errors naming the file and `what` it holds."""
    if not file.is_file():
        raise FileNotFoundError(f"{file}: {what} file missing")
    try:
        array = np.load(file, mmap_mode="r", allow_pickle=False)
    except Exception as e:
        raise DatasetError(f"{file}: incomplete or corrupt ({type(e).__name__}: {e})") from None
    if array.shape != want or array.dtype != np.uint8:
        raise DatasetError(f"{file}: holds {array.dtype}{list(array.shape)}, "
                           f"expected uint8{list(want)}")
    return array
