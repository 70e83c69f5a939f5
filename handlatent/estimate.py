"""Batch pose estimation from image files, without Qt: what `handlatent-estimate` runs.

Images are read and cropped exactly as the explorer's File > Open does
(`handlatent.explorer.images.prepare_image`), encoded in batches to the posterior mean and
log-variance, and the mean is decoded by the pose decoders (and, for overlays, the image
decoder). `estimate_images` yields one `PoseEstimate` or `ImageFailure` per source, in order.
"""

from __future__ import annotations

import itertools
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import numpy as np
import torch

from handlatent.explorer.decoder import to_uint8_images
from handlatent.explorer.figures import draw_skeleton, titled_row, upscale
from handlatent.explorer.images import ImageError, ImageSource, PreparedImage, prepare_image
from handlatent.explorer.stats import images_to_tensor
from handlatent.joint_orders import PROJECT, JointOrder, bones, joint_order, to_order
from handlatent.model import DVAE
from handlatent.photo_crop import CropBox, to_photo_frame

FORMAT = "handlatent-estimate"
FORMAT_VERSION = 1
OVERLAY_PANEL = 256  # overlay panels are the model's size times an integer, at least this
OVERLAY_GAP = 4
OVERLAY_LABELS = ("crop", "decoded", "camera view", "side view")


def conventions(order: str | JointOrder = PROJECT) -> dict[str, Any]:
    """The "conventions" entry of an estimate file: keypoint names, bones, units and frames,
    with the keypoints in `order` (handlatent.joint_orders)."""
    order = joint_order(order)
    root = ("keypoint 0, the palm, at the origin" if order.root == "palm" else
            "the palm (midpoint of the wrist, keypoint 0, and the middle MCP) at the origin")
    return {
        "joint_order": {"name": order.name, "description": order.description},
        "keypoints": list(order.names),
        "bones": bones(order).tolist(),
        "xyz": "3D keypoints (21 x 3, order of 'keypoints') = compose(cpose, viewpoint): "
               f"root-relative (trained with {root}; the decoded palm "
               "lies near it), camera frame (x right, y down, z away from the camera), in bone "
               "units: the middle finger's MCP-PIP bone has length 1; times the hand's length of "
               "that bone in metres gives metres",
        "cpose": "canonical pose (21 x 3, order of 'keypoints'), bone units, always a left hand "
                 "in the hand's own frame",
        "viewpoint": "rotation (3 x 3) with xyz = cpose @ viewpoint (points as row vectors)",
        "handedness": "not estimated: the model decodes every hand as a left hand. With --side "
                      "right (crop.side) the crop was mirrored for the model and xyz and "
                      "viewpoint are mirrored back: xyz is the right hand as the photo shows it, "
                      "= handlatent.skeleton.compose(cpose, viewpoint, is_right=True)",
        "latent": "posterior q(z | image) of the whole latent z = [z_y1 | z_y2 | z_u]: mean (what "
                  "xyz is decoded from) and log-variance",
        "crop": "box (left, top, right, bottom) in pixels of the upright image (EXIF rotation "
                "applied, full resolution): the square (--box, default the centre square) "
                "resized to the model's input size; side: the hand's side as given with --side "
                "(right: the crop was mirrored), null: not given, the hand as the model reads it",
    }


@dataclass(frozen=True)
class PoseEstimate:
    """One image's estimate: its prepared pixels, posterior and the decoding of the mean."""

    prepared: PreparedImage
    mean: np.ndarray        # (d,) float32: posterior mean, the estimate's latent
    logvar: np.ndarray      # (d,) float32: posterior log-variance
    xyz: np.ndarray         # (21, 3) float32: root-relative 3D pose, bone units, the photo's
    #                         frame (mirrored back for a right hand)
    cpose: np.ndarray       # (21, 3) float32 (a left hand, as the model decodes it)
    viewpoint: np.ndarray   # (3, 3) float32: xyz = compose(cpose, viewpoint, is_right)
    reconstruction: np.ndarray | None  # (S, S, 3) uint8 decoded image, when asked for
    side: str | None = None  # the hand's side as given (--side), None: the model's own reading


@dataclass(frozen=True)
class ImageFailure:
    """A source that could not be read; `message` is one line naming it and the problem."""

    source: ImageSource
    message: str


def estimate_batch(model: DVAE, prepared: Sequence[PreparedImage], *,
                   reconstruct: bool = False, side: str | None = None) -> list[PoseEstimate]:
    """Encode the prepared images in one pass and decode their posterior means.

    `model` is in eval mode (as `load_model` gives it), so an image's result does not depend on
    its batch. The pose comes from the pose decoders; `reconstruct` also runs the image decoder.
    `side` None: the hand as the model reads it (a left hand, or the side a skeleton-guided
    model reads from z); "left" or "right" (the images were prepared with that side): the
    model's canonical left hand, and for a right hand (its crop mirrored) xyz and viewpoint
    mirrored back into the photo.
    """
    if not prepared:
        return []
    pixels = np.stack([p.model_input for p in prepared])
    with torch.inference_mode():
        mean, logvar = model.encode_image(images_to_tensor(pixels, model.image_mean.device))
        decoded = model.decode_pose(mean, None if side is None else False)
        pose = {k: v.float().cpu().numpy() for k, v in decoded.items()}
        images = to_uint8_images(model.image_decoder(mean)) if reconstruct else None
        mean, logvar = mean.float().cpu().numpy(), logvar.float().cpu().numpy()
    results = []
    for i, p in enumerate(prepared):
        xyz, viewpoint = to_photo_frame(pose["xyz"][i], pose["viewpoint"][i], p.side)
        results.append(PoseEstimate(prepared=p, mean=mean[i], logvar=logvar[i], xyz=xyz,
                                    cpose=pose["cpose"][i], viewpoint=viewpoint,
                                    reconstruction=None if images is None else images[i],
                                    side=side))
    return results


def estimate_images(model: DVAE, sources: Iterable[ImageSource], *, batch_size: int = 16,
                    reconstruct: bool = False, box: CropBox | None = None,
                    side: str | None = None) -> Iterator[PoseEstimate | ImageFailure]:
    """One result per source, in order: a `PoseEstimate`, or an `ImageFailure` for a source
    that `prepare_image` refuses (missing, empty, corrupt, not an image, too large, `box`
    not inside it). `box` and `side` crop every source (handlatent.photo_crop; `side` as in
    `estimate_batch`)."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    size = model.config.image_size
    iterator = iter(sources)
    while chunk := list(itertools.islice(iterator, batch_size)):
        results: list[PreparedImage | ImageFailure] = []
        for source in chunk:
            try:
                results.append(prepare_image(source, size, box=box, side=side or "left"))
            except ImageError as error:
                results.append(ImageFailure(source, str(error)))
        estimates = iter(estimate_batch(
            model, [r for r in results if isinstance(r, PreparedImage)], reconstruct=reconstruct,
            side=side))
        for r in results:
            yield r if isinstance(r, ImageFailure) else next(estimates)


def json_floats(a: np.ndarray) -> list[Any]:
    """A float32 array as nested lists of the shortest decimals that read back to it exactly."""
    a = np.asarray(a, dtype=np.float32)
    flat = [float(str(v)) for v in a.ravel()]
    return np.array(flat, dtype=object).reshape(a.shape).tolist()


def model_record(model: DVAE, checkpoint: str | os.PathLike) -> dict[str, Any]:
    """The "model" entry of an estimate file: checkpoint, input size and latent layout."""
    layout = model.layout
    return {"checkpoint": str(Path(checkpoint).resolve()),
            "image_size": model.config.image_size,
            "latent_layout": layout.to_dict(),
            "latent_slices": {name: [s.start, s.stop] for name, s in layout.slices.items()}}


def estimate_record(estimate: PoseEstimate, path: str,
                    order: str | JointOrder = PROJECT) -> dict[str, Any]:
    """One image's entry of an estimate file, keypoints in `order` (units: `conventions`)."""
    p = estimate.prepared
    return {"path": path,
            "size": list(p.original_size),
            "crop": {"box": [round(v, 2) for v in p.crop_box], "image_size": list(p.upright_size),
                     "resized_to": int(p.model_input.shape[0]), "side": estimate.side},
            "xyz": json_floats(to_order(estimate.xyz, order)),
            "cpose": json_floats(to_order(estimate.cpose, order)),
            "viewpoint": json_floats(estimate.viewpoint),
            "latent": {"mean": json_floats(estimate.mean), "logvar": json_floats(estimate.logvar)}}


def overlay(estimate: PoseEstimate) -> np.ndarray:
    """A uint8 picture of one estimate, left to right, each panel under its label (OVERLAY_LABELS):
    the crop the encoder saw, the decoded image, and the decoded 3D pose drawn as seen by the
    camera and from the side (each drawing fitted to its panel); all in the photo's frame (a
    right hand unmirrored).

    Needs `estimate.reconstruction` (estimate with `reconstruct=True`).
    """
    if estimate.reconstruction is None:
        raise ValueError("overlay needs the decoded image: estimate with reconstruct=True")
    size = estimate.prepared.model_input.shape[0]
    factor = max(1, math.ceil(OVERLAY_PANEL / size))
    panel = size * factor
    unmirror = (lambda a: a[:, ::-1]) if estimate.prepared.side == "right" else (lambda a: a)
    panels = [upscale(unmirror(estimate.prepared.model_input), factor),
              upscale(unmirror(estimate.reconstruction), factor),
              draw_skeleton(estimate.xyz, panel, "front"),
              draw_skeleton(estimate.xyz, panel, "side")]
    return titled_row(list(zip(OVERLAY_LABELS, panels)), OVERLAY_GAP)
