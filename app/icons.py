"""Icons drawn with QPainter (no image files to ship): the die of "Random sample"."""

from __future__ import annotations

from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QColor, QIcon, QPainter, QPen, QPixmap

DIE_PIPS = ((0.25, 0.25), (0.75, 0.25), (0.5, 0.5), (0.25, 0.75), (0.75, 0.75))   # a five
DIE_SIZES = (16, 24, 32, 48)


def die_pixmap(size: int, face: QColor | str = "#f4f4f4", ink: QColor | str = "#26282c"
               ) -> QPixmap:
    """A die showing five, `size` px square: a `face`-coloured body outlined and dotted in
    `ink` (readable on light and dark toolbars alike)."""
    pixmap = QPixmap(size, size)
    pixmap.fill(Qt.GlobalColor.transparent)
    painter = QPainter(pixmap)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing, True)
    line = max(1.0, size / 14)
    painter.setPen(QPen(QColor(ink), line))
    painter.setBrush(QColor(face))
    body = QRectF(line, line, size - 2 * line, size - 2 * line)
    painter.drawRoundedRect(body, size / 5, size / 5)
    painter.setPen(Qt.PenStyle.NoPen)
    painter.setBrush(QColor(ink))
    radius = size / 11
    for x, y in DIE_PIPS:
        painter.drawEllipse(QPointF(body.left() + x * body.width(),
                                    body.top() + y * body.height()), radius, radius)
    painter.end()
    return pixmap


def die_icon() -> QIcon:
    """The "Random sample" icon: a die (a circular arrow reads as "refresh")."""
    icon = QIcon()
    for size in DIE_SIZES:
        icon.addPixmap(die_pixmap(size))
    return icon
