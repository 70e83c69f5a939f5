"""The session's image slots and pose transfer (`session.images`).

A slot ("estimate", "pose" or "content") holds a user image read, cropped, encoded and decoded
(`LoadedImage`). The transfer decodes z_y1, z_y2 of the "pose" image with z_u of the "content"
image: the pose of one hand in the look of another. Loading never changes the session's latent.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Iterator

from PIL import Image

from handlatent.explorer.decoder import Decoded
from handlatent.explorer.events import Events
from handlatent.explorer.figures import panel_grid
from handlatent.explorer.files import write_atomically
from handlatent.explorer.images import SLOTS, ImageSource, LoadedImage, prepare_image
from handlatent.explorer.runner import ModelRunner
from handlatent.photo_crop import CropBox


class ImageSlots(Mapping[str, LoadedImage]):
    """Slot -> loaded image (a read-only mapping), with `load`, `clear` and the transfer.

    Events: "images_changed"() after a slot was filled or emptied, "transfer_changed"() after
    the transfer result changed (a new result, or a stale one dropped by a new pose or content
    image). All come from the calling thread, after the state changed.
    """

    EVENTS = ("images_changed", "transfer_changed")

    def __init__(self, runner: ModelRunner) -> None:
        self.events = Events(self.EVENTS)
        self._runner = runner
        self._slots: dict[str, LoadedImage] = {}
        self._result: Decoded | None = None

    def __getitem__(self, slot: str) -> LoadedImage:
        return self._slots[slot]

    def __iter__(self) -> Iterator[str]:
        return iter(dict(self._slots))

    def __len__(self) -> int:
        return len(self._slots)

    def load(self, source: ImageSource, slot: str, *, box: CropBox | None = None,
             side: str = "left") -> LoadedImage:
        """Read, crop and encode an image into `slot` ("estimate", "pose" or "content"); `box`
        and `side` choose the crop (handlatent.photo_crop; default the centre square, a left
        hand) and are kept with the image.

        Raises ImageError (a ValueError; one line naming the file and the problem) and then
        leaves everything unchanged.
        """
        if slot not in SLOTS:
            raise ValueError(f"unknown image slot {slot!r}; slots are {', '.join(SLOTS)}")
        prepared = prepare_image(source, self._runner.image_size, box=box, side=side)
        z = self._runner.encode(prepared.model_input)
        loaded = LoadedImage.from_prepared(prepared, z, self._runner.decode(z[None])[0])
        self._slots[slot] = loaded
        stale = slot in ("pose", "content") and self._result is not None
        if stale:
            self._result = None
        self.events.emit("images_changed")
        if stale:
            self.events.emit("transfer_changed")
        return loaded

    def adopt(self, loaded: Mapping[str, LoadedImage]) -> None:
        """Hold `loaded` instead (the same images re-encoded by a new model); the transfer
        result is dropped."""
        self._slots = {slot: loaded[slot] for slot in SLOTS if slot in loaded}
        self._result = None
        self.events.emit("images_changed")
        self.events.emit("transfer_changed")

    def clear(self, slot: str) -> None:
        """Empty `slot` (no error if it is empty)."""
        if self._slots.pop(slot, None) is not None:
            self.events.emit("images_changed")

    # ------------------------------------------------------------------------------ transfer

    @property
    def needs_content(self) -> bool:
        """Whether the transfer needs a content image (the model has a z_u)."""
        return self._runner.model.layout.z_u > 0

    @property
    def can_transfer(self) -> bool:
        """Whether the slots the transfer reads are filled."""
        return "pose" in self._slots and ("content" in self._slots or not self.needs_content)

    @property
    def transfer_result(self) -> Decoded | None:
        """The newest `transfer()` result, or None (none yet, or a slot changed since)."""
        return self._result

    def transfer(self) -> Decoded:
        """Decode z_y1, z_y2 of the "pose" image with z_u of the "content" image and keep it as
        `transfer_result`. Raises ValueError if a needed slot is empty."""
        missing = [slot for slot in ("pose", "content") if slot not in self._slots
                   and (slot == "pose" or self.needs_content)]
        if missing:
            raise ValueError(f"transfer needs an image in the {' and '.join(missing)} slot"
                             f"{'s' if len(missing) > 1 else ''}")
        z = self._slots["pose"].z.copy()
        if self.needs_content:
            s = self._runner.model.layout.slices["z_u"]
            z[s] = self._slots["content"].z[s]
        self._result = self._runner.decode(z[None])[0]
        self.events.emit("transfer_changed")
        return self._result

    def save_transfer(self, path: str | os.PathLike) -> Path:
        """Write a PNG triptych: pose | content | result, each image above its skeleton."""
        path = Path(path)
        if path.suffix.lower() != ".png":
            raise ValueError(f"{path}: the transfer figure is saved as .png")
        result = self._result or self.transfer()
        columns = [(slot, self._slots[slot].model_input, self._slots[slot].decoded.xyz)
                   for slot in ("pose", "content") if slot in self._slots]
        columns.append(("result", result.image, result.xyz))
        figure = Image.fromarray(panel_grid(columns))
        return write_atomically(path, lambda tmp: figure.save(tmp, format="PNG"))
