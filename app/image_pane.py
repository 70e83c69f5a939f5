"""A pyqtgraph image pane: an RGB uint8 image at full resolution, aspect locked, updated live.

`ImagePane.set_image(image, tag)` pushes a new array; `frameShown(tag)` is emitted when the image
item has actually been painted with it (the benchmark measures latency to that moment).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPoint, QRect, Signal
from PySide6.QtGui import QImage
from PySide6.QtWidgets import QLabel, QSizePolicy, QVBoxLayout, QWidget

from handlatent.skeleton import BONES, FINGER_COLORS, FINGER_OF_KEYPOINT

BACKGROUND = "#202226"
KEYPOINT_COLORS = [(0.92, 0.92, 0.92)] + [FINGER_COLORS[f] for f in FINGER_OF_KEYPOINT[1:]]


class _ShownImageItem(pg.ImageItem):
    """An ImageItem that reports when a given array was painted."""

    def __init__(self, pane: "ImagePane") -> None:
        super().__init__(axisOrder="row-major")
        self._pane = pane
        self.tag: Any = None
        self._reported: Any = object()

    def paint(self, p, *args) -> None:  # noqa: ANN001 - Qt signature
        super().paint(p, *args)
        if self.tag is not self._reported:
            self._reported = self.tag
            self._pane.frameShown.emit(self.tag)


class ImagePane(QWidget):
    """Title line over a pyqtgraph view of one image (pan/zoom with the mouse, aspect locked)."""

    frameShown = Signal(object)

    def __init__(self, title: str = "", parent: QWidget | None = None, *,
                 empty_text: str = "no image", min_size: int = 160) -> None:
        super().__init__(parent)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(2)
        self.title = QLabel(title)
        self.title.setStyleSheet("font-weight: 600; padding: 2px 4px;")
        self.title.setVisible(bool(title))
        self.title.setMinimumWidth(0)      # a long title is cut rather than widen the pane
        self.title.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        layout.addWidget(self.title)
        self.view = pg.GraphicsView(background=BACKGROUND)
        self.view.setMinimumSize(min_size, min_size)
        self.box = pg.ViewBox(lockAspect=True, invertY=True, enableMenu=False,
                              defaultPadding=0.01)
        self.view.setCentralItem(self.box)
        self.item = _ShownImageItem(self)
        self.box.addItem(self.item)
        self.empty_label = pg.TextItem(empty_text, color="#8a8f98", anchor=(0.5, 0.5))
        self.box.addItem(self.empty_label)
        self.empty_label.setPos(0.5, 0.5)
        self.box.setRange(xRange=(0, 1), yRange=(0, 1), padding=0)
        layout.addWidget(self.view, 1)
        self.bones = pg.PlotDataItem(connect="pairs", pen=pg.mkPen((255, 255, 255, 200), width=2))
        self.joints = pg.ScatterPlotItem(size=7, pen=pg.mkPen((20, 20, 20)))
        self._brushes = [pg.mkBrush(*(255 * np.array(c)).astype(int)) for c in KEYPOINT_COLORS]
        for overlay in (self.bones, self.joints):
            overlay.setVisible(False)
            self.box.addItem(overlay)
        self._image: np.ndarray | None = None
        self._shape: tuple[int, ...] | None = None

    def set_image(self, image: np.ndarray | None, tag: Any = None) -> None:
        """Show `image` ((H, W, 3) or (H, W) uint8); None clears the pane."""
        if image is None:
            self._image, self._shape = None, None
            self.item.clear()
            self.empty_label.setVisible(True)
            self.box.setRange(xRange=(0, 1), yRange=(0, 1), padding=0)
            return
        image = np.ascontiguousarray(image)
        self._image = image
        self.item.tag = tag
        self.item.setImage(image, autoLevels=False, levels=(0, 255))
        self.empty_label.setVisible(False)
        if image.shape[:2] != (self._shape or (None, None))[:2]:
            self._shape = image.shape
            self.box.setRange(xRange=(0, image.shape[1]), yRange=(0, image.shape[0]),
                              padding=0.01)

    def set_keypoints(self, uv: np.ndarray | None) -> None:
        """Draw a 2D skeleton over the image: keypoints (21, 2) in its pixels (pixel (i, j)
        centred at (j, i)), RHD order; None hides it."""
        visible = uv is not None
        if visible:
            points = np.asarray(uv, dtype=np.float64) + 0.5   # pixel centres in item coordinates
            ends = points[BONES.reshape(-1)]
            self.bones.setData(ends[:, 0], ends[:, 1])
            self.joints.setData(points[:, 0], points[:, 1], brush=self._brushes)
        self.bones.setVisible(visible)
        self.joints.setVisible(visible)

    def keypoints(self) -> np.ndarray | None:
        """The drawn 2D keypoints (21, 2) in image pixels, or None."""
        if not self.joints.isVisible():
            return None
        x, y = self.joints.getData()
        return np.stack([x, y], -1) - 0.5

    def image(self) -> np.ndarray | None:
        """The array shown now (what was last passed to `set_image`)."""
        return self._image

    def shown_rect(self) -> QRect:
        """Where the image is drawn now, in this pane's pixels (clipped to its view; empty
        without an image)."""
        if self._image is None:
            return QRect()
        rect = self.view.mapFromScene(self.item.sceneBoundingRect()).boundingRect()
        return rect.translated(self.view.mapTo(self, QPoint(0, 0))).intersected(
            self.view.geometry())

    def qimage(self) -> QImage | None:
        """The shown image as a QImage (a copy), e.g. for the clipboard."""
        if self._image is None:
            return None
        return numpy_to_qimage(self._image)

    def reset_view(self) -> None:
        if self._shape is not None:
            self.box.setRange(xRange=(0, self._shape[1]), yRange=(0, self._shape[0]),
                              padding=0.01)


def numpy_to_qimage(image: np.ndarray) -> QImage:
    """A deep-copied QImage of an (H, W, 3) or (H, W) uint8 array."""
    image = np.ascontiguousarray(image, dtype=np.uint8)
    h, w = image.shape[:2]
    if image.ndim == 2:
        return QImage(image.data, w, h, w, QImage.Format.Format_Grayscale8).copy()
    if image.shape[2] == 4:
        return QImage(image.data, w, h, 4 * w, QImage.Format.Format_RGBA8888).copy()
    return QImage(image.data, w, h, 3 * w, QImage.Format.Format_RGB888).copy()

