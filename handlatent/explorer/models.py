"""Opening checkpoints for the explorer and preparing a running session's switch to another model.

`open_model` reads a checkpoint with the one-line errors `handlatent-gui --checkpoint` gives.
`prepare_switch` does the slow half of a model switch on any thread (load, latent statistics,
re-encoding the loaded images with the new model); `Session.switch_model` applies the result
on the session's driving thread in a few milliseconds.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from handlatent.cli_errors import one_line
from handlatent.dim_labels import DimLabels, stored_dim_labels
from handlatent.explorer.images import ImageError, LoadedImage, prepare_image
from handlatent.explorer.runner import ModelRunner
from handlatent.explorer.stats import LatentStats, stored_latent_stats
from handlatent.model import DVAE, LatentLayout
from handlatent.photo_crop import CropBox, clamp_box

GENERIC_STEMS = ("last", "best", "model", "checkpoint")


def checkpoint_name(path: Path) -> str:
    """A display name: the file stem, with its folder for generic names (runs/foo/best.pt)."""
    if path.stem in GENERIC_STEMS and path.parent.name:
        return f"{path.parent.name}/{path.stem}"
    return path.stem


def describe_layout(layout: LatentLayout) -> str:
    """"z_y1 16 · z_y2 8 · z_u 40": the sizes of a latent layout's parts."""
    return " · ".join(f"{name} {size}" for name, size in zip(layout.names, layout.sizes))


@dataclass(frozen=True)
class OpenedModel:
    """A checkpoint read for the explorer: its model (on the device asked for) and plain data."""

    path: Path
    name: str
    model: DVAE
    latent_stats: Mapping[str, Any] | None   # the checkpoint's extra["latent_stats"], if usable
    step: int | None                          # the training step it was saved at, if recorded
    dim_labels: DimLabels | None              # the checkpoint's extra["dim_labels"], if usable

    @property
    def layout(self) -> LatentLayout:
        """The model's latent layout."""
        return self.model.layout


def open_model(path: str | os.PathLike, device: str = "auto") -> OpenedModel:
    """Read the checkpoint at `path` onto `device` ("auto", "cpu", "cuda").

    Raises CheckpointError with one line naming the file and the problem (the message
    `handlatent-gui --checkpoint` prints) for a missing, corrupt, foreign or code-carrying file.
    """
    from handlatent.checkpoint import CheckpointError, load_checkpoint, load_model
    path = Path(path)
    try:
        checkpoint, model = load_checkpoint(path), load_model(path, device)
    except CheckpointError as error:
        raise CheckpointError(one_line(error)) from None
    except (ValueError, RuntimeError, OSError, KeyError, TypeError) as error:
        raise CheckpointError(f"{path}: cannot load the model ({one_line(error)})") from None
    extra = checkpoint.get("extra")
    step = extra.get("step") if isinstance(extra, Mapping) else None
    return OpenedModel(path=path, name=checkpoint_name(path), model=model,
                       latent_stats=stored_latent_stats(extra, model.layout.total, str(path)),
                       step=int(step) if isinstance(step, (int, float)) else None,
                       dim_labels=stored_dim_labels(extra, model.layout.total))


@dataclass(frozen=True)
class ModelSwitch:
    """Everything a session needs to run another model, computed off the driving thread."""

    opened: OpenedModel
    stats: LatentStats                 # of the new model, estimated already
    images: dict[str, LoadedImage]     # the session's loaded images, re-encoded
    dim_labels: DimLabels              # what each dimension moves: stored, else computed
    latent: np.ndarray                 # the latent to continue from
    same_layout: bool                  # the new model has the latent layout of the last one
    summary: str                       # one line for the status bar: what was kept
    from_image: bool = False           # the latent is the new model's encoding of an image

    @property
    def model(self) -> DVAE:
        """The new model."""
        return self.opened.model


def _reencode(runner: ModelRunner, loaded: LoadedImage) -> LoadedImage:
    """`loaded` read again (its file with its box and side, else its thumbnail) and encoded by
    `runner`'s model."""
    if loaded.path is not None and loaded.path.is_file():
        prepared = prepare_image(loaded.path, runner.image_size, box=loaded.box,
                                 side=loaded.side)
    else:   # the thumbnail is the whole image, smaller: the box scaled down with it
        box = loaded.box
        if box is not None and loaded.upright_size is not None:
            f = loaded.thumbnail.shape[1] / loaded.upright_size[0]
            box = clamp_box(CropBox(box.x * f, box.y * f, box.size * f),
                            loaded.thumbnail.shape[1], loaded.thumbnail.shape[0])
        prepared = replace(prepare_image(loaded.thumbnail, runner.image_size, box=box,
                                         side=loaded.side), box=loaded.box)
    z = runner.encode(prepared.model_input)
    return replace(LoadedImage.from_prepared(prepared, z, runner.decode(z[None])[0]),
                   path=loaded.path, original_size=loaded.original_size,
                   thumbnail=loaded.thumbnail, upright_size=loaded.upright_size)


def _count(n: int, what: str) -> str:
    return f"{n} {what}{'' if n == 1 else 's'}"


def prepare_switch(opened: OpenedModel, latent: np.ndarray, layout: LatentLayout,
                   images: Mapping[str, LoadedImage],
                   examples: Sequence[str | os.PathLike] = (), *,
                   from_image: bool = False) -> ModelSwitch:
    """The switch of a session (now at `latent` under `layout`, holding `images`) to `opened`.

    Safe on any thread: it reads only its arguments (take them on the driving thread) and runs
    only the new model. The latent is kept when the layouts agree, unless `from_image` and an
    "estimate" image is loaded: then it is the new model's encoding of that image (its reading
    of the image, as when following a run). When the layouts differ the new model starts from
    its encoding of the "estimate" image (else the first loaded one, else the first of
    `examples`, else z = 0). Images that cannot be read again are dropped (and said so).
    """
    runner = ModelRunner(opened.model, opened.model.image_mean.device)
    stats = LatentStats(runner, opened.layout, opened.latent_stats)
    stats.kl_per_dim, stats.hands_gaussian    # estimate now, off the driving thread
    labels = opened.dim_labels or runner.label_dimensions()
    kept: dict[str, LoadedImage] = {}
    lost: list[str] = []
    for slot, loaded in images.items():
        try:
            kept[slot] = _reencode(runner, loaded)
        except ImageError:
            lost.append(loaded.label)
    where = f"{opened.name} ({runner.image_size} px, d = {opened.layout.total})"
    done = f"; re-encoded {_count(len(kept), 'loaded image')}" if kept else ""
    if lost:
        done += f"; dropped {', '.join(lost)} (cannot read it again)"
    same = opened.layout == layout
    estimate = kept.get("estimate")
    if same and from_image and estimate is not None:
        z = estimate.z.copy()
        summary = (f"Opened {where}: the latent is its encoding of {estimate.label}"
                   f"{done}")
    elif same:
        z = np.asarray(latent, dtype=np.float32).copy()
        summary = f"Opened {where}: kept the latent{done}"
    else:
        first = kept.get("estimate") or next(iter(kept.values()), None)
        start = f"its encoding of {first.label}" if first is not None else "z = 0"
        z = first.z.copy() if first is not None else np.zeros(opened.layout.total, np.float32)
        if first is None and examples:
            try:
                z = runner.encode(prepare_image(examples[0], runner.image_size).model_input)
                start = f"its encoding of the example {Path(examples[0]).name}"
            except ImageError:
                pass
        summary = (f"Opened {where}: its latent layout ({describe_layout(opened.layout)}) "
                   f"differs from the last model's ({describe_layout(layout)}), so it starts "
                   f"from {start}{done}")
    return ModelSwitch(opened=opened, stats=stats, images=kept, dim_labels=labels,
                       latent=np.asarray(z, dtype=np.float32), same_layout=same,
                       summary=summary,
                       from_image=bool(same and from_image and estimate is not None))
