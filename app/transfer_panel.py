"""The pose-transfer panel: pose image | content image | result, each above its skeleton.

A view of the session's image slots (`session.images`, handlatent.explorer.slots.ImageSlots):
loading goes through `images.load(path, "pose" | "content")`; the result is `images.transfer()`
(z_y1, z_y2 of the pose image with z_u of the content image), saved with
`images.save_transfer`. Image files can be dropped onto the pose or content column. Beside
each of the two slots: "Open…" (a file dialog, on the bundled examples the first time), "Current"
(the image on screen: the loaded input image, else the decoded one) and "Example" (a menu of
the bundled example hands).
"""

from __future__ import annotations

import os
from typing import Any, Callable

import numpy as np
from PySide6.QtCore import Signal
from PySide6.QtGui import QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import (QHBoxLayout, QMenu, QPushButton, QSizePolicy, QToolButton,
                               QVBoxLayout, QWidget)

from handlatent.app import dialogs
from handlatent.app.image_pane import ImagePane
from handlatent.explorer.figures import draw_skeleton
from handlatent.explorer.images import ImageSource
from handlatent.resources import example_images

SKELETON_PX = 192


def dropped_image_paths(event: QDragEnterEvent | QDropEvent,
                        accepts: Callable[[str], bool] = dialogs.is_image_path) -> list[str]:
    """Local files carried by a drag that `accepts` takes (image files by default)."""
    mime = event.mimeData()
    if not mime.hasUrls():
        return []
    return [u.toLocalFile() for u in mime.urls()
            if u.isLocalFile() and accepts(u.toLocalFile())]


class ImageDropMixin:
    """Qt drag-and-drop handlers that accept local image files and pass the first one on.

    Mixed into a QWidget that calls `setAcceptDrops(True)` and implements `image_dropped`;
    `accepts_drop` says which files it takes (image files unless overridden).
    """

    accepts_drop = staticmethod(dialogs.is_image_path)

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:  # noqa: N802 - Qt override
        if dropped_image_paths(event, self.accepts_drop):
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:  # noqa: N802 - Qt override
        paths = dropped_image_paths(event, self.accepts_drop)
        if paths:
            event.acceptProposedAction()
            self.image_dropped(paths[0])


class TransferColumn(ImageDropMixin, QWidget):
    """Title, image pane and skeleton pane side by side; accepts dropped image files."""

    fileDropped = Signal(str)

    def __init__(self, title: str, accepts_drops: bool, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setAcceptDrops(accepts_drops)
        column = QVBoxLayout(self)
        column.setContentsMargins(0, 0, 0, 0)
        column.setSpacing(2)
        panes = QHBoxLayout()
        panes.setSpacing(2)
        hint = "drop an image here" if accepts_drops else "no result yet"
        self.image = ImagePane(title, empty_text=hint, min_size=110)
        self.skeleton = ImagePane(" ", empty_text="", min_size=110)
        panes.addWidget(self.image, 1)
        panes.addWidget(self.skeleton, 1)
        column.addLayout(panes, 1)
        self.buttons = QHBoxLayout()
        self.buttons.setSpacing(4)
        self.button = QPushButton()
        self.buttons.addWidget(self.button, 1)
        column.addLayout(self.buttons)

    def display(self, image: np.ndarray | None, xyz: np.ndarray | None) -> None:
        self.image.set_image(image)
        self.skeleton.set_image(None if xyz is None else draw_skeleton(xyz, SKELETON_PX))

    def image_dropped(self, path: str) -> None:
        self.fileDropped.emit(path)


class TransferPanel(QWidget):
    """Three columns and the buttons that drive `images.load` / `images.transfer`."""

    message = Signal(str)

    def __init__(self, images: Any, bridge: Any,
                 current_image: Callable[[], tuple[ImageSource, str] | None] = lambda: None,
                 parent: QWidget | None = None) -> None:
        """`current_image()`: the image on screen and its name, or None (nothing to use)."""
        super().__init__(parent)
        self.images = images
        row = QHBoxLayout(self)
        row.setContentsMargins(6, 6, 6, 6)
        row.setSpacing(12)
        self.current_image = current_image
        self.pose = TransferColumn("Pose image (z_y1, z_y2)", True)
        self.content = TransferColumn("Content image (z_u)", True)
        self.use_current: dict[str, QPushButton] = {}
        self.use_example: dict[str, QToolButton] = {}
        for slot, col in (("pose", self.pose), ("content", self.content)):
            self._add_sources(slot, col)
        self.result = TransferColumn("Result", False)
        self.result.button.setText("Save result…")
        self.result.button.setEnabled(False)
        self.compared = TransferColumn("Result · compared model", False)
        self.compared.button.setVisible(False)
        self.compared.setVisible(False)
        for col in (self.pose, self.content, self.result, self.compared):
            col.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
            row.addWidget(col, 1)
        self.pose.button.clicked.connect(lambda: self.load_dialog("pose"))
        self.content.button.clicked.connect(lambda: self.load_dialog("content"))
        self.result.button.clicked.connect(self.save_dialog)
        self.pose.fileDropped.connect(lambda p: self.load("pose", p))
        self.content.fileDropped.connect(lambda p: self.load("content", p))
        bridge.imagesChanged.connect(self.sync)
        bridge.transferChanged.connect(self.sync)
        self.sync()

    def _add_sources(self, slot: str, col: TransferColumn) -> None:
        """The slot's buttons: Open… (file dialog), Current (the image on screen), Example ▾."""
        col.button.setText("Open…")
        col.button.setToolTip(f"Load the {slot} image from a file")
        current = QPushButton("Current")
        current.setToolTip(f"Use the image on screen as the {slot} image: the loaded input "
                           "image, else the decoded image")
        current.clicked.connect(lambda: self.load_current(slot))
        example = QToolButton(text="Example")
        example.setToolTip(f"Use a bundled example hand as the {slot} image")
        example.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        menu = QMenu(example)
        for path in example_images():
            menu.addAction(path.stem, lambda p=str(path): self.load(slot, p))
        if menu.isEmpty():
            example.setEnabled(False)
        example.setMenu(menu)
        col.buttons.addWidget(current, 1)
        col.buttons.addWidget(example, 1)
        self.use_current[slot], self.use_example[slot] = current, example

    def load_dialog(self, slot: str) -> None:
        path = dialogs.open_image_path(self, f"Load {slot} image")
        if path:
            self.load(slot, path)

    def load_current(self, slot: str) -> bool:
        """Load the image on screen into `slot` (False, with a message, if there is none)."""
        current = self.current_image()
        if current is None:
            self.message.emit("No image on screen yet")
            return False
        source, name = current
        return self.load(slot, source, name)

    def load(self, slot: str, source: ImageSource, name: str | None = None) -> bool:
        """Load `source` (a path or an image array called `name`) into `slot` and transfer when
        both images are there; False if refused."""
        try:
            self.images.load(source, slot)
        except ValueError as error:   # ImageError: one line, the session is unchanged
            self.message.emit(str(error))
            return False
        self.message.emit(f"{slot.capitalize()} image: {name or os.path.basename(source)}")
        self.run_transfer()
        return True

    def run_transfer(self) -> None:
        if self.images.can_transfer:
            try:
                self.images.transfer()
            except ValueError as error:
                self.message.emit(str(error))

    def sync(self) -> None:
        for slot, col in (("pose", self.pose), ("content", self.content)):
            loaded = self.images.get(slot)
            col.display(None if loaded is None else loaded.model_input,
                     None if loaded is None else loaded.decoded.xyz)
        result = self.images.transfer_result
        self.result.display(None if result is None else result.image,
                         None if result is None else result.xyz)
        self.result.button.setEnabled(result is not None)

    def show_compared(self, frame: Any, name: str | None = None) -> None:
        """The compared model's decoding of the result latent (None: none); `name` None hides
        the column (nothing compared)."""
        self.compared.setVisible(name is not None)
        if name is not None:
            self.compared.image.title.setText(f"Result · {name}")
        self.compared.display(None if frame is None else frame.image,
                              None if frame is None else frame.xyz)

    def save_dialog(self) -> None:
        path = dialogs.save_path(self, "Save pose transfer", "transfer.png",
                                 "PNG image (*.png)", ".png")
        if path:
            self.save(path)

    def save(self, path: str) -> bool:
        try:
            written = self.images.save_transfer(path)
        except (ValueError, OSError) as error:
            self.message.emit(f"Cannot save: {' '.join(str(error).split())}")
            return False
        self.message.emit(f"Transfer saved to {written}")
        return True

