"""The "Latent atlas" dock: for each active dimension a strip of thumbnails from -2σ to +2σ.

Rows are the session's `stats.atlas_dims()`, grouped by sub-latent (titles as in the latent
panel), each labelled with its dimension number, what it moves (handlatent.dim_labels) and its
KL; columns are the values from -2σ to +2σ.
The session's atlas part decodes them off the GUI thread (`session.atlas.request`, rows on
screen first) and they arrive in parts through the bridge's `atlasChanged`. The panel asks for a
new atlas only while it is visible and once the latent has been still for SETTLE_MS (a
single-shot timer that every change restarts, so a slider drag never asks per move); until their
refresh arrives, strips made for an older latent are drawn dimmed. Each row marks the current
value of its dimension (a line at its place on the strip, a frame round the nearest thumbnail);
clicking a thumbnail sets that value (`Session.set_value`, one undo step). Thumbnails are at
least MIN_CELL px (readable; the dock's minimum width follows), and the one under the mouse is
shown enlarged beside it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from PySide6.QtCore import QEvent, QPoint, QRect, QSize, Qt, QTimer, Signal
from PySide6.QtGui import QColor, QImage, QMouseEvent, QPainter, QPaintEvent, QPen, QPixmap
from PySide6.QtWidgets import (QComboBox, QHBoxLayout, QLabel, QScrollArea, QSizePolicy,
                               QVBoxLayout, QWidget)

from handlatent.app.coalesce import Coalescer
from handlatent.app.image_pane import numpy_to_qimage
from handlatent.app.latent_panel import group_title
from handlatent.explorer.atlas import ATLAS_SPAN, atlas_values

SETTLE_MS = 150                # refresh once the latent has been still this long
COLUMN_CHOICES = (5, 7)
DEFAULT_COLUMNS = 5            # fits a readable strip beside the sliders at 1,400 px
LABEL_WIDTH = 88               # dimension number, what it moves and KL, left of each strip
HEADER_HEIGHT = 22             # a sub-latent's title row
MARGIN, GAP = 4, 2             # around the grid, between thumbnails
MIN_CELL, MAX_CELL = 64, 128   # thumbnail size range (px), following the panel's width
ENLARGED = 224                 # side of the enlarged thumbnail under the mouse (px)
STALE_OPACITY = 0.4
MARK_COLOR = QColor("#f0b429")
EMPTY_COLOR = QColor("#2b2e33")


class AtlasGrid(QWidget):
    """Paints the strips and maps clicks to (dimension, value); holds no session state."""

    clicked = Signal(int, float)       # dimension, value of the thumbnail clicked

    def __init__(self, groups: list[tuple[str, list[int]]], labels: dict[int, tuple[str, str]],
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.groups = groups
        self.labels = labels           # dim -> (two lines) shown left of its strip
        self.values = atlas_values(DEFAULT_COLUMNS)
        self.z: np.ndarray | None = None
        self.images: dict[int, list[QImage]] = {}
        self.made_for: dict[int, np.ndarray] = {}   # dim -> latent its strip was decoded around
        self.cell = MIN_CELL
        self._row_y: dict[int, int] = {}
        self._header_y: list[tuple[str, int]] = []
        self.setMouseTracking(True)      # hover: the thumbnail under the mouse, enlarged
        self.zoom = QLabel(None, Qt.WindowType.ToolTip)
        self.zoom.setObjectName("atlas-zoom")
        self.zoom.setStyleSheet(f"background: {EMPTY_COLOR.name()}; color: #e8e8e8; "
                                "border: 1px solid #f0b429; padding: 3px;")
        self.zoom.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.zoom_cell: tuple[int, int] | None = None
        self._relayout()

    # -- content ------------------------------------------------------------------------------

    def set_columns(self, values: np.ndarray) -> None:
        """New column values: the old strips no longer fit, so they are dropped."""
        self.values = np.asarray(values, dtype=np.float32)
        self.images.clear()
        self.made_for.clear()
        self._relayout()
        self.update()

    def set_latent(self, z: np.ndarray) -> None:
        """The current latent: moves the marks and dims strips made for another latent
        (repainting only the rows whose mark moved or whose strip turned fresh or stale)."""
        old, self.z = self.z, np.asarray(z, dtype=np.float32)
        if old is None or old.shape != self.z.shape:
            self.update()
            return
        for dim in self._row_y:
            fresh = self.is_fresh(dim)
            made = self.made_for.get(dim)
            was_fresh = made is not None and np.array_equal(made, old)
            if fresh != was_fresh or old[dim] != self.z[dim]:
                self.update(self.row_rect(dim))

    def add_rows(self, z: np.ndarray, dims: tuple[int, ...], images: np.ndarray) -> None:
        """Strips (len(dims), columns, S, S, 3) decoded around latent `z`."""
        for dim, strip in zip(dims, images):
            self.images[dim] = [numpy_to_qimage(image) for image in strip]
            self.made_for[dim] = z
            self.update(self.row_rect(dim))

    def is_fresh(self, dim: int) -> bool:
        """Whether `dim`'s strip was decoded around the current latent."""
        made = self.made_for.get(dim)
        return made is not None and self.z is not None and np.array_equal(made, self.z)

    # -- geometry -------------------------------------------------------------------------------

    def _relayout(self) -> None:
        n = len(self.values)
        free = self.width() - LABEL_WIDTH - 2 * MARGIN - GAP * (n - 1)
        self.cell = int(min(max(free // n, MIN_CELL), MAX_CELL))
        y = MARGIN
        self._row_y.clear()
        self._header_y.clear()
        for title, dims in self.groups:
            self._header_y.append((title, y))
            y += HEADER_HEIGHT
            for dim in dims:
                self._row_y[dim] = y
                y += self.cell + GAP
        self.setFixedHeight(y + MARGIN)
        self.setMinimumWidth(LABEL_WIDTH + 2 * MARGIN + n * (MIN_CELL + GAP))

    def resizeEvent(self, event: Any) -> None:  # noqa: N802 - Qt override
        self._relayout()
        super().resizeEvent(event)

    def row_rect(self, dim: int) -> QRect:
        """The widget area of `dim`'s row (label and strip)."""
        return QRect(0, self._row_y[dim], self.width(), self.cell)

    def cell_rect(self, dim: int, column: int) -> QRect:
        """Where the thumbnail of `dim` at column `column` is drawn."""
        x = MARGIN + LABEL_WIDTH + column * (self.cell + GAP)
        return QRect(x, self._row_y[dim], self.cell, self.cell)

    def cell_at(self, pos: QPoint) -> tuple[int, int] | None:
        """(dim, column) of the thumbnail under `pos`, or None."""
        column, rest = divmod(pos.x() - MARGIN - LABEL_WIDTH, self.cell + GAP)
        if pos.x() < MARGIN + LABEL_WIDTH or rest >= self.cell or column >= len(self.values):
            return None
        for dim, y in self._row_y.items():
            if y <= pos.y() < y + self.cell:
                return dim, int(column)
        return None

    def dims_in(self, rect: QRect) -> list[int]:
        """The rows that intersect `rect`, top to bottom (those on screen are decoded first)."""
        return [dim for dim, y in self._row_y.items()
                if y < rect.bottom() and y + self.cell > rect.top()]

    # -- painting and mouse ---------------------------------------------------------------------

    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802 - Qt override
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, True)
        area = event.rect()
        mid = self.palette().color(self.palette().ColorRole.Mid)
        for title, y in self._header_y:
            if y < area.bottom() and y + HEADER_HEIGHT > area.top():
                font = painter.font()
                font.setBold(True)
                painter.setFont(font)
                painter.setPen(self.palette().color(self.palette().ColorRole.WindowText))
                painter.drawText(QRect(MARGIN, y, self.width(), HEADER_HEIGHT),
                                 Qt.AlignmentFlag.AlignVCenter, title)
                font.setBold(False)
                painter.setFont(font)
        for dim in self.dims_in(area):
            self._paint_row(painter, dim, mid)
        painter.end()

    def _paint_row(self, painter: QPainter, dim: int, mid: QColor) -> None:
        y = self._row_y[dim]
        top, bottom = self.labels[dim]
        painter.setPen(self.palette().color(self.palette().ColorRole.WindowText))
        painter.drawText(QRect(MARGIN, y, LABEL_WIDTH - 6, self.cell // 2),
                         Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignBottom,
                         painter.fontMetrics().elidedText(top, Qt.TextElideMode.ElideRight,
                                                          LABEL_WIDTH - 6))
        painter.setPen(mid)
        painter.drawText(QRect(MARGIN, y + self.cell // 2, LABEL_WIDTH - 6, self.cell // 2),
                         Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignTop, bottom)
        strip = self.images.get(dim)
        painter.setOpacity(1.0 if self.is_fresh(dim) else STALE_OPACITY)
        for column in range(len(self.values)):
            rect = self.cell_rect(dim, column)
            if strip is None:
                painter.fillRect(rect, EMPTY_COLOR)
            else:
                painter.drawImage(rect, strip[column])
        painter.setOpacity(1.0)
        if self.z is not None:
            self._paint_mark(painter, dim, float(self.z[dim]))

    def _paint_mark(self, painter: QPainter, dim: int, value: float) -> None:
        """A line where `value` lies on the strip, a frame round the nearest thumbnail."""
        values = self.values
        nearest = int(np.argmin(np.abs(values - value)))
        step = float(values[1] - values[0])
        painter.setPen(QPen(MARK_COLOR, 2))
        if abs(value - values[nearest]) <= step / 2:
            painter.drawRect(self.cell_rect(dim, nearest).adjusted(1, 1, -1, -1))
        x0 = self.cell_rect(dim, 0).center().x()
        x1 = self.cell_rect(dim, len(values) - 1).center().x()
        t = (np.clip(value, values[0], values[-1]) - values[0]) / (values[-1] - values[0])
        x = int(round(x0 + t * (x1 - x0)))
        y = self._row_y[dim]
        painter.drawLine(x, y + self.cell - 6, x, y + self.cell - 1)

    def mousePressEvent(self, event: QMouseEvent) -> None:  # noqa: N802 - Qt override
        hit = self.cell_at(event.position().toPoint())
        if event.button() == Qt.MouseButton.LeftButton and hit is not None:
            dim, column = hit
            self.clicked.emit(dim, float(self.values[column]))
            event.accept()
            return
        super().mousePressEvent(event)

    def mouseMoveEvent(self, event: QMouseEvent) -> None:  # noqa: N802 - Qt override
        self.show_zoom(self.cell_at(event.position().toPoint()))
        super().mouseMoveEvent(event)

    def leaveEvent(self, event: QEvent) -> None:  # noqa: N802 - Qt override
        self.show_zoom(None)
        super().leaveEvent(event)

    def hideEvent(self, event: Any) -> None:  # noqa: N802 - Qt override
        self.show_zoom(None)
        super().hideEvent(event)

    def show_zoom(self, hit: tuple[int, int] | None) -> None:
        """Show the thumbnail at `hit` (dim, column) enlarged beside it, or hide it (None)."""
        strip = self.images.get(hit[0]) if hit is not None else None
        if strip is None:
            self.zoom_cell = None
            self.zoom.hide()
            return
        dim, column = hit
        if hit != self.zoom_cell:
            self.zoom_cell = hit
            self.zoom.setPixmap(QPixmap.fromImage(strip[column]).scaled(
                ENLARGED, ENLARGED, Qt.AspectRatioMode.KeepAspectRatio,
                Qt.TransformationMode.SmoothTransformation))
            self.zoom.setToolTip("")
            self.zoom.adjustSize()
            self.setToolTip(f"z[{dim}] = {self.values[column]:+.2f} σ (click to set)")
            rect = self.cell_rect(dim, column)
            # left of the strip (the atlas sits at the window's right), else right of it
            corner = self.mapToGlobal(QPoint(rect.left() - self.zoom.width() - 8, rect.top()))
            if corner.x() < 0:
                corner = self.mapToGlobal(QPoint(rect.right() + 8, rect.top()))
            self.zoom.move(corner)
        self.zoom.show()


class AtlasPanel(QWidget):
    """The dock's contents: column choice and status above a scrollable `AtlasGrid`."""

    refreshed = Signal(int)    # request id whose last strip has just been added

    def __init__(self, session: Any, bridge: Any, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self.request_id = 0            # the newest request asked for
        self.on_screen: list[int] = []  # the rows it asked for first (those on screen)
        self.refresh_count = 0         # requests completed (for tests)
        kl = np.asarray(session.stats.kl_per_dim, dtype=float)
        self.dim_names = session.dim_labels.names   # what each dimension moves
        dims = session.stats.atlas_dims()
        groups, labels = [], {}
        for part in session.layout.names:
            s = session.layout.slices[part]
            rows = [d for d in dims if s.start <= d < s.stop]
            if rows:
                groups.append((group_title(session, part), rows))
            for d in rows:
                what, number = self.dim_names[d], str(d - s.start)   # two lines: name
                labels[d] = ((what, f"{number} · {kl[d]:.2f}") if what  # above number · KL
                             else (number, f"{kl[d]:.2f}"))
        self.grid = AtlasGrid(groups, labels)

        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.setSpacing(2)
        header = QHBoxLayout()
        header.setContentsMargins(6, 4, 6, 0)
        hint = QLabel(f"−{ATLAS_SPAN:g}σ … +{ATLAS_SPAN:g}σ · click to set")
        hint.setToolTip("Each row varies one active dimension from −2σ to +2σ around the "
                        "current latent; the mark shows its current value")
        hint.setStyleSheet("color: palette(mid);")
        hint.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.columns = QComboBox()
        for n in COLUMN_CHOICES:
            self.columns.addItem(f"{n} columns", n)
        self.columns.setCurrentIndex(COLUMN_CHOICES.index(DEFAULT_COLUMNS))
        self.columns.setToolTip("Values per strip (decoding time grows with it)")
        self.status = QLabel("")
        self.status.setStyleSheet("color: palette(mid);")
        header.addWidget(hint, 1)
        header.addWidget(self.status)
        header.addWidget(self.columns)
        outer.addLayout(header)
        self.scroll = QScrollArea()
        self.scroll.setWidgetResizable(True)
        self.scroll.setFrameShape(QScrollArea.Shape.NoFrame)
        self.scroll.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOn)
        self.scroll.setWidget(self.grid)
        outer.addWidget(self.scroll, 1)
        self._fit_width()

        self.timer = QTimer(self)
        self.timer.setSingleShot(True)
        self.timer.setInterval(SETTLE_MS)
        self.timer.timeout.connect(self.refresh)
        self.grid.clicked.connect(self.session.set_value)
        self.columns.currentIndexChanged.connect(self._columns_changed)
        self.marks = Coalescer(self.grid.set_latent, parent=self)   # marks at display rate
        bridge.latentChanged.connect(self._latent_changed)
        bridge.atlasChanged.connect(self._add_part)
        self.grid.set_latent(session.latent)

    def sizeHint(self) -> QSize:  # noqa: N802 - Qt override: the dock's width when opened
        return QSize(self.minimumWidth(), 600)

    def _fit_width(self) -> None:
        """No narrower than a strip of MIN_CELL thumbnails beside the scroll bar."""
        bar = self.scroll.verticalScrollBar().sizeHint().width()
        self.setMinimumWidth(self.grid.minimumWidth() + bar + 2)

    def _latent_changed(self, z: Any) -> None:
        self.marks.push(z)
        if self.isVisible():
            self.timer.start()          # restarts: waits until the latent is still

    def _columns_changed(self) -> None:
        self.grid.set_columns(atlas_values(int(self.columns.currentData())))
        self._fit_width()
        self.refresh()

    def showEvent(self, event: Any) -> None:  # noqa: N802 - Qt override
        super().showEvent(event)
        if not all(self.grid.is_fresh(d) for d in self.grid.labels):
            self.timer.start()

    def refresh(self) -> None:
        """Ask for the atlas around the current latent now (rows on screen first)."""
        self.timer.stop()
        if not self.isVisible():
            return
        viewport = self.scroll.viewport()
        top = self.grid.mapFrom(viewport, QPoint(0, 0))
        self.on_screen = self.grid.dims_in(QRect(top, viewport.size()))
        self.request_id = self.session.atlas.request(int(self.columns.currentData()),
                                                     ATLAS_SPAN, first=self.on_screen)
        self.status.setText("decoding…")

    def _add_part(self, part: Any) -> None:
        if part.request_id != self.request_id:
            return                      # a superseded request's late part
        self.marks.flush()              # the latent the part was decoded around, if it waits
        self.grid.add_rows(part.z, part.dims, part.images)
        if part.last:
            self.refresh_count += 1
            self.status.setText("")
            self.refreshed.emit(part.request_id)
