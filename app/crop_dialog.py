"""The crop step of File ▸ Open photo: the whole photo, a square box around the hand, the side.

`CropView` draws the photo fitted to the widget with the box over it (outside dimmed, corner
handles). Mouse: drag inside the box to move it, drag a corner to resize it (the opposite corner
stays), click outside to centre it there, wheel to grow or shrink it. Keys: arrows move it (Shift:
ten times as far), + and − resize it. The box's geometry is handlatent.photo_crop's (Qt-free);
this module maps widget pixels to photo pixels and back. `CropDialog` adds the left/right switch
and a preview of what the encoder will see (a right hand mirrored).
"""

from __future__ import annotations

import numpy as np
from PIL import Image
from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QColor, QImage, QKeyEvent, QPainter, QPen, QPixmap
from PySide6.QtWidgets import (QButtonGroup, QDialog, QDialogButtonBox, QHBoxLayout, QLabel,
                               QRadioButton, QSizePolicy, QVBoxLayout, QWidget)

from handlatent.photo_crop import (CropBox, clamp_box, crop_photo, moved_box, resized_box,
                                   scaled_box)

DISPLAY_MAX = 1600     # longest side of the photo kept for display (pixels)
HANDLE_PX = 10         # a press this close to a corner grabs it
PREVIEW_PX = 192
STEP, BIG_STEP = 0.01, 0.1   # arrow keys move by this fraction of the photo's short side
ZOOM_STEP = 1.05             # + / − / one wheel notch
CORNERS = ("tl", "tr", "bl", "br")


def to_qimage(pixels: np.ndarray) -> QImage:
    """An RGB uint8 (h, w, 3) array as a QImage that owns its pixels."""
    a = np.ascontiguousarray(pixels, dtype=np.uint8)
    h, w = a.shape[:2]
    return QImage(a.data, w, h, 3 * w, QImage.Format.Format_RGB888).copy()


class CropView(QWidget):
    """The photo with a draggable, resizable square box (module docstring)."""

    boxChanged = Signal(object)   # the new CropBox, in pixels of the full-resolution photo

    def __init__(self, photo: Image.Image, box: CropBox, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.full_size = photo.size
        shown = photo.copy()
        shown.thumbnail((DISPLAY_MAX, DISPLAY_MAX), Image.Resampling.LANCZOS)
        self.shown = shown                        # the display copy (the preview crops it)
        self.pixmap = QPixmap.fromImage(to_qimage(np.asarray(shown.convert("RGB"))))
        self.box = clamp_box(box, *self.full_size)
        self._drag: tuple[str, CropBox, QPointF] | None = None   # (what, box at press, press)
        self.setMinimumSize(320, 240)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setMouseTracking(True)

    # -- geometry --------------------------------------------------------------------------

    def _fit(self) -> tuple[float, QPointF]:
        """(widget pixels per photo pixel, the photo's top-left corner in the widget)."""
        w, h = self.full_size
        scale = min(self.width() / w, self.height() / h)
        return scale, QPointF((self.width() - w * scale) / 2, (self.height() - h * scale) / 2)

    def to_widget(self, x: float, y: float) -> QPointF:
        """A photo point (edge coordinates) in widget pixels."""
        scale, origin = self._fit()
        return QPointF(origin.x() + x * scale, origin.y() + y * scale)

    def to_photo(self, point: QPointF) -> tuple[float, float]:
        """A widget point in photo pixels (edge coordinates)."""
        scale, origin = self._fit()
        return (point.x() - origin.x()) / scale, (point.y() - origin.y()) / scale

    def box_rect(self) -> QRectF:
        """The box in widget pixels."""
        left, top, right, bottom = self.box.edges
        return QRectF(self.to_widget(left, top), self.to_widget(right, bottom))

    def corner_points(self) -> dict[str, QPointF]:
        """The box's corner handles in widget pixels."""
        r = self.box_rect()
        return {"tl": r.topLeft(), "tr": r.topRight(), "bl": r.bottomLeft(),
                "br": r.bottomRight()}

    def set_box(self, box: CropBox) -> None:
        """Show `box` (kept inside the photo) and emit boxChanged if it moved."""
        box = clamp_box(box, *self.full_size)
        if box != self.box:
            self.box = box
            self.update()
            self.boxChanged.emit(box)

    # -- painting ----------------------------------------------------------------------------

    def paintEvent(self, event: object) -> None:  # noqa: N802 - Qt override
        painter = QPainter(self)
        painter.fillRect(self.rect(), QColor(40, 40, 40))
        scale, origin = self._fit()
        w, h = self.full_size
        photo = QRectF(origin.x(), origin.y(), w * scale, h * scale)
        painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, True)
        painter.drawPixmap(photo, self.pixmap, QRectF(self.pixmap.rect()))
        box = self.box_rect()
        shade = QColor(0, 0, 0, 140)
        painter.fillRect(QRectF(photo.left(), photo.top(), photo.width(),
                                box.top() - photo.top()), shade)
        painter.fillRect(QRectF(photo.left(), box.bottom(), photo.width(),
                                photo.bottom() - box.bottom()), shade)
        painter.fillRect(QRectF(photo.left(), box.top(), box.left() - photo.left(),
                                box.height()), shade)
        painter.fillRect(QRectF(box.right(), box.top(), photo.right() - box.right(),
                                box.height()), shade)
        painter.setPen(QPen(QColor(255, 210, 0), 2))
        painter.drawRect(box)
        painter.setBrush(QColor(255, 210, 0))
        for point in self.corner_points().values():
            painter.drawRect(QRectF(point.x() - 5, point.y() - 5, 10, 10))
        painter.end()

    # -- mouse and keys ----------------------------------------------------------------------

    def _corner_at(self, point: QPointF) -> str | None:
        for name, corner in self.corner_points().items():
            if abs(point.x() - corner.x()) <= HANDLE_PX and abs(point.y() - corner.y()) <= HANDLE_PX:
                return name
        return None

    def mousePressEvent(self, event) -> None:  # noqa: N802 - Qt override
        if event.button() != Qt.MouseButton.LeftButton:
            return
        point = event.position()
        corner = self._corner_at(point)
        if corner is None and not self.box_rect().contains(point):   # centre the box here
            x, y = self.to_photo(point)
            cx, cy = self.box.centre
            self.set_box(moved_box(self.box, x - cx, y - cy, *self.full_size))
        self._drag = (corner or "move", self.box, point)

    def mouseMoveEvent(self, event) -> None:  # noqa: N802 - Qt override
        point = event.position()
        if self._drag is None:
            corner = self._corner_at(point)
            shape = (Qt.CursorShape.SizeFDiagCursor if corner in ("tl", "br") else
                     Qt.CursorShape.SizeBDiagCursor if corner else
                     Qt.CursorShape.SizeAllCursor if self.box_rect().contains(point) else
                     Qt.CursorShape.CrossCursor)
            self.setCursor(shape)
            return
        what, start, press = self._drag
        if what == "move":
            scale, _ = self._fit()
            self.set_box(moved_box(start, (point.x() - press.x()) / scale,
                                   (point.y() - press.y()) / scale, *self.full_size))
        else:
            self.set_box(resized_box(start, what, self.to_photo(point), *self.full_size))

    def mouseReleaseEvent(self, event) -> None:  # noqa: N802 - Qt override
        self._drag = None

    def wheelEvent(self, event) -> None:  # noqa: N802 - Qt override
        notches = event.angleDelta().y() / 120
        if notches:
            self.set_box(scaled_box(self.box, ZOOM_STEP ** notches, *self.full_size))

    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802 - Qt override
        step = min(self.full_size) * (BIG_STEP if event.modifiers()
                                      & Qt.KeyboardModifier.ShiftModifier else STEP)
        moves = {Qt.Key.Key_Left: (-step, 0), Qt.Key.Key_Right: (step, 0),
                 Qt.Key.Key_Up: (0, -step), Qt.Key.Key_Down: (0, step)}
        key = Qt.Key(event.key())
        if key in moves:
            self.set_box(moved_box(self.box, *moves[key], *self.full_size))
        elif key in (Qt.Key.Key_Plus, Qt.Key.Key_Equal):
            self.set_box(scaled_box(self.box, ZOOM_STEP, *self.full_size))
        elif key in (Qt.Key.Key_Minus, Qt.Key.Key_Underscore):
            self.set_box(scaled_box(self.box, 1 / ZOOM_STEP, *self.full_size))
        else:
            super().keyPressEvent(event)


class CropDialog(QDialog):
    """Choose the box around the hand and its side; Estimate accepts (`box()`, `side()`)."""

    def __init__(self, photo: Image.Image, name: str, box: CropBox, side: str = "left",
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle(f"Crop the hand — {name}")
        self.view = CropView(photo, box)
        self.preview = QLabel()
        self.preview.setFixedSize(PREVIEW_PX, PREVIEW_PX)
        self.preview.setToolTip("What the model will see (a right hand is mirrored into a left "
                                "one, the model's own side)")
        self.numbers = QLabel()
        self.left = QRadioButton("&Left hand")
        self.right = QRadioButton("&Right hand")
        self.sides = QButtonGroup(self)
        for button in (self.left, self.right):
            self.sides.addButton(button)
        (self.right if side == "right" else self.left).setChecked(True)
        hint = QLabel("Frame the hand with a small margin (a saved label puts it centred, "
                      "filling 80 % of the box). Drag the box to move it, a corner to resize "
                      "it; click to centre it; wheel or +/− to zoom; arrow keys to nudge.")
        hint.setWordWrap(True)
        hint.setMaximumWidth(PREVIEW_PX)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok
                                   | QDialogButtonBox.StandardButton.Cancel)
        buttons.button(QDialogButtonBox.StandardButton.Ok).setText("&Estimate")
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        column = QVBoxLayout()
        column.addWidget(QLabel("Model input"))
        column.addWidget(self.preview)
        column.addWidget(self.numbers)
        column.addWidget(self.left)
        column.addWidget(self.right)
        column.addWidget(hint)
        column.addStretch(1)
        column.addWidget(buttons)
        layout = QHBoxLayout(self)
        layout.addWidget(self.view, 1)
        layout.addLayout(column)
        self.view.boxChanged.connect(self._sync)
        self.sides.buttonToggled.connect(lambda *_: self._sync())
        self._sync()
        self.view.setFocus()
        self.resize(1000, 680)

    def box(self) -> CropBox:
        """The chosen box, pixels of the upright full-resolution photo."""
        return self.view.box

    def side(self) -> str:
        """"left" or "right"."""
        return "right" if self.right.isChecked() else "left"

    def set_side(self, side: str) -> None:
        """Tick the switch for `side`."""
        (self.right if side == "right" else self.left).setChecked(True)

    def preview_pixels(self) -> np.ndarray:
        """The preview's pixels: the box cropped (mirrored for a right hand), as the encoder
        will see it, at the preview's size."""
        f = self.view.shown.size[0] / self.view.full_size[0]
        b = self.view.box
        shown = CropBox(b.x * f, b.y * f, b.size * f)
        return crop_photo(self.view.shown.convert("RGB"), shown, self.side(), PREVIEW_PX)

    def _sync(self) -> None:
        self.preview.setPixmap(QPixmap.fromImage(to_qimage(self.preview_pixels())))
        b = self.view.box
        self.numbers.setText(f"box x, y, size: {b.x:.0f}, {b.y:.0f}, {b.size:.0f} px"
                             f"\n(of {self.view.full_size[0]}×{self.view.full_size[1]})")
