"""`handlatent-estimate`: 3D hand poses of many images at once (docs/estimate.md).

    handlatent-estimate photos/*.jpg --out poses.json
    handlatent-estimate shots/ more/hand.png --checkpoint runs/x/best.pt --out poses/ --overlays ov/
    handlatent-estimate hand.jpg --out hand.json --joint-order mediapipe

Writes per image the 3D pose, CPose, viewpoint, posterior latent and crop; images are prepared as
the explorer prepares them. --out FILE: one JSON document ("-": stdout); --out DIR/ (an existing
folder or a trailing slash): one JSON per image. Every file is written atomically. A bad image
gets one line on stderr, is skipped and recorded under "errors"; exit status 1 if any image
failed, 2 for usage errors (no images, bad checkpoint or output path), 130 when interrupted.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import signal
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from handlatent.cli_errors import one_line, report_unexpected
from handlatent.joint_orders import joint_order, order_names
from handlatent.photo_crop import SIDES, CropBox, parse_box

PROG = "handlatent-estimate"
EXIT_FAILED = 1   # some images could not be estimated
EXIT_USAGE = 2    # nothing to do, bad checkpoint, bad output path, bad arguments
EXIT_INTERRUPTED = 130
GLOB_CHARACTERS = "*?["


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]  # one line, status 2
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


class UsageError(Exception):
    """A problem the user can fix before anything is estimated: one line, exit status 2."""


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _box(text: str) -> CropBox:
    try:
        return parse_box(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _joint_order(text: str) -> str:
    try:
        return joint_order(text).name
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line (see the module docstring)."""
    p = _Parser(prog=PROG, description=__doc__.split("\n\n")[0],
                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("images", nargs="+", metavar="IMAGE",
                   help="image files, folders (their images, sorted) or glob patterns")
    p.add_argument("--out", required=True, metavar="FILE.json|DIR/",
                   help="one JSON file ('-': stdout), or a folder for one JSON per image")
    p.add_argument("--checkpoint", metavar="MODEL.pt",
                   help="model checkpoint (default: the bundled model, as handlatent-gui)")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"),
                   help="where the model runs (default: auto = CUDA if available)")
    p.add_argument("--batch-size", type=_positive, default=16, metavar="N",
                   help="images encoded together (default 16)")
    p.add_argument("--overlays", metavar="DIR",
                   help="also write a PNG per image: input crop | decoded image | skeleton "
                        "from the camera | from the side")
    p.add_argument("--box", type=_box, metavar="X,Y,SIZE",
                   help="crop every image to this square (pixels of the upright image: top-left "
                        "corner and side), as the explorer's crop step; default the centre "
                        "square")
    p.add_argument("--side", choices=SIDES,
                   help="the hand's side: right hands are mirrored for the model and their "
                        "pose mirrored back (default: the hand as the model reads it)")
    p.add_argument("--joint-order", default="handlatent", type=_joint_order, metavar="NAME",
                   help="keypoint order of xyz and cpose: " + ", ".join(order_names()) +
                        " (default handlatent: RHD's order with the palm first; docs/estimate.md)")
    p.add_argument("--quiet", action="store_true", help="no progress bar and no summary")
    return p.parse_args(argv)


# ------------------------------------------------------------------------------ inputs


def image_extensions() -> frozenset[str]:
    """File suffixes (lower case, with the dot) of the formats Pillow can open."""
    from PIL import Image
    Image.init()
    return frozenset(ext for ext, fmt in Image.registered_extensions().items()
                     if fmt in Image.OPEN)


@dataclass(frozen=True)
class Inputs:
    """The files to estimate (in order, each once) and the arguments that gave none."""

    files: list[Path]
    problems: list[tuple[str, str]]  # (argument, one-line problem)


def collect_inputs(arguments: Sequence[str]) -> Inputs:
    """Expand IMAGE arguments: a file is taken as it is (even without an image suffix), a
    folder gives its image files sorted by name, a glob pattern its matching image files."""
    extensions = image_extensions()

    def images_in(paths: Sequence[str]) -> list[Path]:
        return sorted(Path(p) for p in paths
                      if Path(p).suffix.lower() in extensions and os.path.isfile(p))

    files: list[Path] = []
    problems: list[tuple[str, str]] = []
    for argument in arguments:
        if os.path.isdir(argument):
            try:
                names = os.listdir(argument)
            except OSError as error:
                problems.append((argument, f"{argument}: cannot list the folder "
                                           f"({error.strerror or error})"))
                continue
            found = images_in([os.path.join(argument, name) for name in names])
            if not found:
                problems.append((argument, f"{argument}: no images in this folder"))
        elif os.path.exists(argument):
            found = [Path(argument)]
        elif any(c in argument for c in GLOB_CHARACTERS):
            found = images_in(glob.glob(argument, recursive=True))
            if not found:
                problems.append((argument, f"{argument}: no images match this pattern"))
        else:
            found = []
            problems.append((argument, f"{argument}: no such file or folder"))
        files.extend(found)
    first: dict[str, Path] = {}  # the same file reached twice (a folder and a glob) runs once
    for f in files:
        first.setdefault(os.path.realpath(f), f)
    return Inputs(list(first.values()), problems)


def output_names(files: Sequence[Path], suffix: str) -> dict[Path, Path]:
    """A relative output path per file: its path below the files' common folder with the
    suffix replaced by `suffix` (hand.png -> hand.json); names that would collide keep the
    image's suffix (hand.png.json, hand.jpg.json)."""
    absolute = [Path(os.path.abspath(f)) for f in files]
    root = Path(os.path.commonpath([str(a.parent) for a in absolute]))
    relative = [a.relative_to(root) for a in absolute]
    stems = Counter(r.with_suffix("") for r in relative)
    return {f: r.with_suffix(suffix) if stems[r.with_suffix("")] == 1 else
            r.with_name(r.name + suffix) for f, r in zip(files, relative)}


# ------------------------------------------------------------------------------ outputs


@dataclass(frozen=True)
class Outputs:
    """Where results go: one file (None: stdout) or a folder, plus an optional overlay folder."""

    file: Path | None
    folder: Path | None
    overlays: Path | None


def plan_outputs(out: str, overlays: str | None, files: Sequence[Path]) -> Outputs:
    """Check the output paths before any work (UsageError); nothing is created yet."""
    inputs = {os.path.abspath(f) for f in files}

    def folder(option: str, value: str) -> Path:
        path = Path(value)  # created with the first file written into it
        if path.exists() and not path.is_dir():
            raise UsageError(f"{option} {value}: exists and is not a folder")
        return path

    def check_targets(option: str, base: Path, suffix: str) -> None:
        for name in output_names(files, suffix).values():
            if os.path.abspath(base / name) in inputs:
                raise UsageError(f"{option} {base}: would overwrite the input image "
                                 f"{base / name}")

    overlay_folder = folder("--overlays", overlays) if overlays else None
    if overlay_folder is not None:
        check_targets("--overlays", overlay_folder, ".png")
    if out == "-":
        return Outputs(None, None, overlay_folder)
    if out.endswith(("/", os.sep)) or os.path.isdir(out):
        out_folder = folder("--out", out)
        check_targets("--out", out_folder, ".json")
        return Outputs(None, out_folder, overlay_folder)
    path = Path(out)
    if not path.absolute().parent.is_dir():
        raise UsageError(f"--out {out}: folder {path.absolute().parent} does not exist")
    if os.path.abspath(path) in inputs:
        raise UsageError(f"--out {out}: would overwrite an input image")
    return Outputs(path, None, overlay_folder)


def _write(path: Path, write: Callable[[Path], None]) -> None:
    """Write `path` atomically (a temporary file renamed at the end), parent folders created;
    UsageError naming `path` if that fails (no permission, a full disk, a file in the way)."""
    from handlatent.explorer.files import write_atomically
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(path, write)
    except OSError as error:
        raise UsageError(f"{path}: cannot write ({error.strerror or one_line(error)})") \
            from None


def _write_json(path: Path, document: dict[str, Any]) -> None:
    _write(path, lambda tmp: tmp.write_text(json.dumps(document) + "\n", encoding="utf-8"))


# ------------------------------------------------------------------------------ model


def open_model(checkpoint: str | None, device: str) -> tuple[Any, Path]:
    """The model in eval mode and its path: --checkpoint, or the GUI's bundled model."""
    import torch

    from handlatent.checkpoint import CheckpointError, load_model, resolve_checkpoint
    try:
        path = resolve_checkpoint(checkpoint)
    except CheckpointError as error:
        raise UsageError(str(error)) from None
    if device == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda: no CUDA device is available (use --device cpu)")
    try:
        return load_model(path, device), path
    except CheckpointError as error:
        raise UsageError(one_line(error)) from None
    except (RuntimeError, OSError) as error:
        raise UsageError(f"{path}: cannot load the model ({one_line(error)})") from None


# ------------------------------------------------------------------------------ main


def _on_sigterm(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def run(args: argparse.Namespace) -> int:
    """Estimate every input and write the results; returns the exit status."""
    from PIL import Image
    from tqdm import tqdm

    from handlatent.estimate import (FORMAT, FORMAT_VERSION, ImageFailure, conventions,
                                     estimate_images, estimate_record, model_record, overlay)

    inputs = collect_inputs(args.images)
    if not inputs.files:
        problems = "; ".join(problem for _, problem in inputs.problems)
        raise UsageError(f"no images to estimate ({problems})")
    outputs = plan_outputs(args.out, args.overlays, inputs.files)
    model, checkpoint = open_model(args.checkpoint, args.device)
    header = {"format": FORMAT, "format_version": FORMAT_VERSION,
              "model": model_record(model, checkpoint), "conventions": conventions(args.joint_order)}
    json_names = output_names(inputs.files, ".json")
    overlay_names = output_names(inputs.files, ".png")
    records: list[dict[str, Any]] = []
    errors = [{"path": argument, "error": problem} for argument, problem in inputs.problems]
    for _, problem in inputs.problems:
        print(f"{PROG}: {problem}", file=sys.stderr)
    start = time.perf_counter()
    results = estimate_images(model, inputs.files, batch_size=args.batch_size,
                              reconstruct=outputs.overlays is not None, box=args.box,
                              side=args.side)
    with tqdm(results, total=len(inputs.files), unit="img", desc="estimating",
              file=sys.stderr, dynamic_ncols=True, disable=args.quiet or None) as bar:
        for path, result in zip(inputs.files, bar):
            if isinstance(result, ImageFailure):
                tqdm.write(f"{PROG}: {result.message} (skipped)", file=sys.stderr)
                entry: dict[str, Any] = {"path": str(path), "error": result.message}
                errors.append(entry)
                if outputs.folder is not None:
                    _write_json(outputs.folder / json_names[path], {**header, "error": entry})
                continue
            record = estimate_record(result, str(path), args.joint_order)
            records.append(record)
            if outputs.folder is not None:
                _write_json(outputs.folder / json_names[path], {**header, "image": record})
            if outputs.overlays is not None:
                picture = Image.fromarray(overlay(result))
                _write(outputs.overlays / overlay_names[path],
                       lambda tmp: picture.save(tmp, format="PNG"))
    elapsed = time.perf_counter() - start
    if outputs.folder is None:
        document = {**header, "images": records, "errors": errors}
        if outputs.file is None:
            json.dump(document, sys.stdout)
            sys.stdout.write("\n")
        else:
            _write_json(outputs.file, document)
    if not args.quiet:
        where = outputs.file or outputs.folder or "stdout"
        per_image = f", {1000 * elapsed / len(inputs.files):.0f} ms per image"
        print(f"{PROG}: {len(records)} estimated, {len(errors)} failed -> {where}{per_image} "
              f"on {model.image_mean.device}", file=sys.stderr)
    return EXIT_FAILED if errors else 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command; never a traceback (HANDLATENT_DEBUG=1 re-raises unexpected errors)."""
    args = parse_args(argv)
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        return run(args)
    except UsageError as error:
        print(f"{PROG}: {error}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted (finished files are complete; nothing half-written)",
              file=sys.stderr)
        return EXIT_INTERRUPTED
    except OSError as error:  # stdout closed early (`| head`), a folder that cannot be read
        print(f"{PROG}: {error.strerror or one_line(error)}", file=sys.stderr)
        return EXIT_USAGE
    except Exception as error:  # noqa: BLE001 - the promise is one line, never a traceback
        return report_unexpected(PROG, error)
    finally:
        signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    sys.exit(main())
