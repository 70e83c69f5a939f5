"""The session's label folder (`session.labels`): save the current pose of the estimated photo as
a labelled item, list the saved items, undo a save like any edit.

A label is made from the "estimate" slot (the photo, its box and side) and the current latent
(the estimate as corrected by dragging joints): the crop at `LABEL_SIZE` px in the photo's own
handedness, the decoded 3D pose mirrored back for a right hand and placed in front of the crop's
camera (handlatent.photo_crop), its projection as the 2D keypoints, and the crop's intrinsics.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from handlatent.data.crop import project
from handlatent.data.labelled import CROPS, LabelFolder, LabelItem
from handlatent.explorer.events import Events
from handlatent.explorer.history import Action
from handlatent.explorer.images import ImageError, LoadedImage, centre_square, read_image
from handlatent.photo_crop import (HAND_SCALE, CropBox, box_intrinsics, crop_photo,
                                   mirror_points, place_pose)
from handlatent.skeleton import compose

if TYPE_CHECKING:
    from handlatent.explorer.session import Session

LABEL_SIZE = 256   # pixels of a saved crop (readers resize it to the model's size)


def photo_size(loaded: LoadedImage) -> tuple[int, int]:
    """(width, height) of the upright image the box refers to."""
    return loaded.upright_size or tuple(loaded.thumbnail.shape[1::-1])


def photo_box(loaded: LoadedImage) -> CropBox:
    """The box an estimated image was cropped with: its own, or the centre square."""
    if loaded.box is not None:
        return loaded.box
    width, height = photo_size(loaded)
    left, top, right, _ = centre_square(width, height)
    return CropBox(float(left), float(top), float(right - left))


def placed_pose(xyz: np.ndarray, side: str, box: CropBox, photo_size: tuple[int, int],
                size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A decoded pose (21, 3; root-relative, bone units, the model's frame) as a label of the
    S x S crop of `box`: (camera-frame points in metres, their pixels in the crop as the photo
    has it, the crop's intrinsics). Mirrored back for a right hand, `HAND_SCALE` metres per
    bone unit, placed centred and filling 80 % of the crop (handlatent.photo_crop)."""
    pose = np.asarray(xyz, np.float64)
    if side == "right":
        pose = mirror_points(pose)
    k = box_intrinsics(box, *photo_size, size)
    points = place_pose((pose - pose[:1]) * HAND_SCALE, k, size)
    return points, project(k, points), k


def canonical_hand(cpose: np.ndarray, viewpoint: np.ndarray) -> np.ndarray:
    """The pose (21, 3) as the model's canonical left hand: a right hand's crop was mirrored into
    one, whatever side a skeleton-guided model would read from its latent."""
    return compose(np.asarray(cpose), np.asarray(viewpoint))


def crop_keypoints(loaded: LoadedImage, cpose: np.ndarray, viewpoint: np.ndarray) -> np.ndarray:
    """The 2D keypoints (21, 2) that saving this pose would label, in pixels of the estimated
    image's model-size crop as the photo has it (what the window's input pane shows)."""
    return placed_pose(canonical_hand(cpose, viewpoint), loaded.side, photo_box(loaded),
                       photo_size(loaded), loaded.model_input.shape[0])[1]


def label_item(loaded: LoadedImage, xyz: np.ndarray, size: int = LABEL_SIZE,
               source: dict | None = None) -> LabelItem:
    """The label of `loaded` (an estimated image) with the pose `xyz` (21, 3; root-relative,
    bone units, the model's frame: mirrored for a right hand). The crop is read again from the
    photo at `size` px (an image without a file keeps the encoder's crop, unmirrored)."""
    box = photo_box(loaded)
    width, height = photo_size(loaded)
    if loaded.path is not None:
        photo, _ = read_image(loaded.path, needed=1 << 20)
        width, height = photo.size   # full resolution: the box's pixels
        crop = crop_photo(photo, box, "left", size)
    else:
        crop = loaded.model_input[:, ::-1] if loaded.side == "right" else loaded.model_input
        size = crop.shape[0]
    points, uv, k = placed_pose(xyz, loaded.side, box, (width, height), size)
    visible = np.all((uv >= -0.5) & (uv < size - 0.5), axis=-1)
    info = {"photo": str(loaded.path) if loaded.path is not None else None,
            "photo_size": [int(width), int(height)], "box": [box.x, box.y, box.size],
            "side": loaded.side, "hand_scale_m": HAND_SCALE, **(source or {})}
    return LabelItem(image=np.ascontiguousarray(crop), xyz=points, uv=uv, k=k,
                     visible=visible, is_right=loaded.side == "right", source=info)


class Labels:
    """The open label folder and saving to it (a part of `Session`).

    Events: "labels_changed"() after a folder was opened or an item saved or removed (undo).
    """

    EVENTS = ("labels_changed",)

    def __init__(self, session: Session) -> None:
        self.events = Events(self.EVENTS)
        self._session = session
        self.folder: LabelFolder | None = None

    @property
    def names(self) -> list[str]:
        """The open folder's items in the order saved (empty without a folder)."""
        return [] if self.folder is None else self.folder.names

    def open(self, path: str | os.PathLike) -> LabelFolder:
        """Open (or, on the first save, create) the label folder `path`; LabelFolderError
        (one line naming the file) for a folder that is not one or cannot be written."""
        folder = LabelFolder(path)
        folder.check_writable()
        self.folder = folder
        self.events.emit("labels_changed")
        return folder

    def current_item(self) -> LabelItem:
        """The label of the estimated image with the current pose (ValueError without one)."""
        loaded = self._session.images.get("estimate")
        if loaded is None:
            raise ValueError("no photo to label: open a photo first (File ▸ Open photo)")
        pose = self._session.runner.decode_pose(self._session.latent[None])
        xyz = canonical_hand(pose["cpose"][0], pose["viewpoint"][0])
        source = {"model": self._session.name,
                  "latent": np.round(self._session.latent.astype(np.float64), 6).tolist()}
        try:
            return label_item(loaded, xyz, source=source)
        except ImageError as error:   # the photo changed or vanished since it was opened
            raise ValueError(str(error)) from None

    def save(self) -> str:
        """Append the current label to the folder (one undo step); returns the item's name.
        ValueError (LabelFolderError) naming the file if it cannot be written: nothing changes."""
        if self.folder is None:
            raise ValueError("no label folder: choose one with Labels ▸ Open folder")
        folder, item = self.folder, self.current_item()
        name = folder.append(item)

        def redo() -> None:
            folder.append(item, name)
            self.events.emit("labels_changed")

        def undo() -> None:
            folder.remove(name)
            self.events.emit("labels_changed")

        self.events.emit("labels_changed")
        self._session.record_action(Action(f"save label {name}", undo, redo))
        return name

    def path_of(self, name: str) -> Path:
        """The crop file of item `name` in the open folder."""
        if self.folder is None:
            raise ValueError("no label folder is open")
        return self.folder.root / CROPS / f"{name}.png"
