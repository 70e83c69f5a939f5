"""The latent-walk panel: endpoints A and B, which parts move, play/scrub, export.

A view of the session's walk part (`session.walk`, handlatent.explorer.walk.Walk). Endpoints
come from the current latent, a random sample (`session.stats`) or an encoded image; the walk
itself (interpolation, which parts move, export) is the part's. Playback is a QTimer on the GUI
thread that moves the walk's position; the export runs on a worker thread (`workers.Job`) with a
cancellable progress dialog.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QPixmap
from PySide6.QtWidgets import (QComboBox, QDoubleSpinBox, QFormLayout, QGridLayout, QGroupBox,
                               QHBoxLayout, QLabel, QPushButton, QSizePolicy, QSlider, QSpinBox,
                               QToolButton, QVBoxLayout, QWidget)

from handlatent.app import dialogs
from handlatent.app.image_pane import numpy_to_qimage
from handlatent.app.workers import Job

SCRUB_STEPS = 1000
TICK_MS = 33            # playback timer period (~30 Hz)
PART_PRESETS = (        # (label, parts moved)
    ("Pose only (z_y1)", ("z_y1",)),
    ("Viewpoint only (z_y2)", ("z_y2",)),
    ("Content only (z_u)", ("z_u",)),
    ("Pose + viewpoint", ("z_y1", "z_y2")),
    ("All of z", ("z_y1", "z_y2", "z_u")),
)
THUMB = 84


class Endpoint(QGroupBox):
    """Thumbnail of one endpoint and the three ways to set it."""

    def __init__(self, which: str, parent: QWidget | None = None) -> None:
        super().__init__(f"Endpoint {which}", parent)
        self.which = which
        grid = QGridLayout(self)
        grid.setContentsMargins(6, 4, 6, 6)
        grid.setHorizontalSpacing(6)
        grid.setVerticalSpacing(3)
        self.thumb = QLabel("unset")
        self.thumb.setFixedSize(THUMB, THUMB)
        self.thumb.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.thumb.setStyleSheet("background: #202226; color: #8a8f98; border-radius: 3px;")
        self.current = QPushButton("Current")
        self.current.setToolTip(f"Set {which} to the current latent")
        self.random = QPushButton("Random")
        self.random.setToolTip(f"Set {which} to a random sample (Latent ▸ Sample from)")
        self.image = QPushButton("Image…")
        self.image.setToolTip(f"Set {which} to the encoding of an image file")
        grid.addWidget(self.thumb, 0, 0, 3, 1)
        grid.addWidget(self.current, 0, 1)
        grid.addWidget(self.random, 1, 1)
        grid.addWidget(self.image, 2, 1)

    def show_image(self, image: np.ndarray | None) -> None:
        if image is None:
            self.thumb.setPixmap(QPixmap())
            self.thumb.setText("unset")
            return
        pix = QPixmap.fromImage(numpy_to_qimage(image)).scaled(
            THUMB, THUMB, Qt.AspectRatioMode.KeepAspectRatio,
            Qt.TransformationMode.SmoothTransformation)
        self.thumb.setPixmap(pix)


class WalkPanel(QWidget):
    """Endpoints, parts, playback and export of a latent walk (`walk`); random endpoints are
    drawn from `stats` (the session's LatentStats)."""

    message = Signal(str)          # status-bar text
    exportFinished = Signal(str)   # path written
    exportFailed = Signal(str)

    def __init__(self, walk: Any, stats: Any, bridge: Any, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.walk = walk
        self.stats = stats
        self.t = 0.0
        self.direction = 1.0
        self.job: Job | None = None
        self.progress_dialog = None
        self.last_export: str | None = None

        outer = QVBoxLayout(self)
        outer.setContentsMargins(6, 2, 6, 4)
        row = QHBoxLayout()
        row.setSpacing(10)
        outer.addLayout(row)
        outer.addStretch(1)
        self.ends = {w: Endpoint(w) for w in ("A", "B")}
        for which, box in self.ends.items():
            box.current.clicked.connect(lambda _=False, w=which: self.set_endpoint_current(w))
            box.random.clicked.connect(lambda _=False, w=which: self.set_endpoint_random(w))
            box.image.clicked.connect(lambda _=False, w=which: self.set_endpoint_image_dialog(w))
            row.addWidget(box)

        play_box = QGroupBox("Playback")
        play = QVBoxLayout(play_box)
        play.setContentsMargins(6, 4, 6, 6)
        play.setSpacing(4)
        top = QHBoxLayout()
        top.addWidget(QLabel("Moves:"))
        self.parts = QComboBox()
        available = set(walk.layout.names[i] for i, n in enumerate(walk.layout.sizes) if n)
        for label, parts in PART_PRESETS:
            if set(parts) <= available:
                self.parts.addItem(label, parts)
        self.parts.setToolTip("Which sub-latents go from A to B; the others stay at the "
                              "current latent")
        top.addWidget(self.parts, 1)
        play.addLayout(top)
        mid = QHBoxLayout()
        self.play_button = QToolButton()
        self.play_button.setText("▶ Play")
        self.play_button.setCheckable(True)
        self.play_button.setMinimumWidth(72)
        self.play_button.setToolTip("Play / pause (Space)")
        self.scrub = QSlider(Qt.Orientation.Horizontal)
        self.scrub.setRange(0, SCRUB_STEPS)
        self.scrub.setToolTip("Walk position: A (left) to B (right)")
        self.position = QLabel("t = 0.00")
        self.position.setMinimumWidth(56)
        mid.addWidget(self.play_button)
        mid.addWidget(QLabel("A"))
        mid.addWidget(self.scrub, 1)
        mid.addWidget(QLabel("B"))
        mid.addWidget(self.position)
        play.addLayout(mid)
        bottom = QHBoxLayout()
        bottom.addWidget(QLabel("Speed:"))
        self.speed = QDoubleSpinBox()
        self.speed.setRange(0.05, 5.0)
        self.speed.setSingleStep(0.05)
        self.speed.setValue(0.5)
        self.speed.setSuffix(" passes/s")
        self.speed.setToolTip("How many times per second the walk goes from one end to the other")
        bottom.addWidget(self.speed)
        bottom.addStretch(1)
        play.addLayout(bottom)
        row.addWidget(play_box, 2)

        export_box = QGroupBox("Export")
        form = QFormLayout(export_box)
        form.setContentsMargins(6, 4, 6, 6)
        self.frames = QSpinBox()
        self.frames.setRange(2, 1000)
        self.frames.setValue(32)
        self.fps = QSpinBox()
        self.fps.setRange(1, 60)
        self.fps.setValue(12)
        self.export_button = QPushButton("Export GIF / MP4 / PNG…")
        self.bvh_button = QPushButton("Export BVH…")
        self.bvh_button.setToolTip("The walk's 3D poses as a BVH skeleton animation (Blender: "
                                   "File ▸ Import ▸ Motion Capture)")
        form.addRow("Frames:", self.frames)
        form.addRow("FPS:", self.fps)
        buttons = QHBoxLayout()
        buttons.addWidget(self.export_button)
        buttons.addWidget(self.bvh_button)
        form.addRow(buttons)
        row.addWidget(export_box)
        for box in (play_box, export_box, *self.ends.values()):
            box.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Maximum)

        self.timer = QTimer(self)
        self.timer.setInterval(TICK_MS)
        self.timer.timeout.connect(self._tick)
        self.play_button.toggled.connect(self._on_play_toggled)
        self.scrub.valueChanged.connect(self._on_scrub)
        self.parts.currentIndexChanged.connect(self._on_parts)
        self.export_button.clicked.connect(self.export_dialog)
        self.bvh_button.clicked.connect(self.export_bvh_dialog)
        bridge.walkChanged.connect(self.sync)
        self._select_parts(walk.parts)
        self._on_parts()
        self.sync()

    # -- endpoints ---------------------------------------------------------------------------

    def set_endpoint(self, which: str, z: Any) -> None:
        self.walk.set_endpoint(which, z)

    def set_endpoint_current(self, which: str) -> None:
        self.walk.set_endpoint(which, None)

    def set_endpoint_random(self, which: str) -> None:
        self.walk.set_endpoint(which, self.stats.sample())

    def set_endpoint_image_dialog(self, which: str) -> None:
        path = dialogs.open_image_path(self, f"Endpoint {which} from an image")
        if path:
            self.set_endpoint_image(which, path)

    def set_endpoint_image(self, which: str, path: str) -> bool:
        try:
            self.walk.set_endpoint_image(which, path)
        except ValueError as error:   # ImageError is a ValueError: the walk is unchanged
            self.message.emit(str(error))
            return False
        self.message.emit(f"Endpoint {which}: {os.path.basename(path)}")
        return True

    def has_endpoints(self) -> bool:
        return self.walk.ready

    # -- follow the session ------------------------------------------------------------------

    def sync(self) -> None:
        for which, box in self.ends.items():
            box.show_image(self.walk.endpoint_image(which))
        ready = self.has_endpoints()
        for w in (self.play_button, self.scrub, self.export_button, self.bvh_button):
            w.setEnabled(ready)
        if not ready and self.play_button.isChecked():
            self.play_button.setChecked(False)
        self._select_parts(self.walk.parts)

    def _select_parts(self, parts: Any) -> None:
        parts = set(parts)
        for i in range(self.parts.count()):
            if set(self.parts.itemData(i)) == parts:
                self.parts.blockSignals(True)
                self.parts.setCurrentIndex(i)
                self.parts.blockSignals(False)
                return

    def _on_parts(self) -> None:
        parts = self.parts.currentData()
        if parts is not None:
            self.walk.parts = set(parts)

    # -- playback ------------------------------------------------------------------------------

    def toggle_play(self) -> None:
        if not self.has_endpoints():
            self.message.emit("Set walk endpoints A and B first")
            return
        self.play_button.toggle()

    def _on_play_toggled(self, on: bool) -> None:
        self.play_button.setText("❚❚ Pause" if on else "▶ Play")
        if on:
            self.timer.start()
        else:
            self.timer.stop()

    def _tick(self) -> None:
        step = self.speed.value() * TICK_MS / 1000.0 * self.direction
        t = self.t + step
        if t >= 1.0:
            t, self.direction = 1.0, -1.0
        elif t <= 0.0:
            t, self.direction = 0.0, 1.0
        self.set_position(t)

    def _on_scrub(self, value: int) -> None:
        self.set_position(value / SCRUB_STEPS, from_scrub=True)

    def set_position(self, t: float, from_scrub: bool = False) -> None:
        self.t = float(min(max(t, 0.0), 1.0))
        if not from_scrub:
            self.scrub.blockSignals(True)
            self.scrub.setValue(round(self.t * SCRUB_STEPS))
            self.scrub.blockSignals(False)
        self.position.setText(f"t = {self.t:.2f}")
        try:
            self.walk.set_position(self.t)
        except ValueError as error:
            self.play_button.setChecked(False)
            self.message.emit(str(error))

    # -- export --------------------------------------------------------------------------------

    def _export_path(self, title: str, name: str, file_filter: str) -> str | None:
        """The file to export to, asked for only once both endpoints are set."""
        if not self.has_endpoints():
            self.message.emit("Set walk endpoints A and B first")
            return None
        return dialogs.save_path(self, title, name, file_filter, os.path.splitext(name)[1])

    def export_dialog(self) -> None:
        path = self._export_path("Export latent walk", "walk.gif", dialogs.WALK_FILTER)
        if path:
            self.export(path)

    def export_bvh_dialog(self) -> None:
        path = self._export_path("Export walk as BVH", "walk.bvh", dialogs.BVH_FILTER)
        if path:
            self.export_bvh(path)

    def export_bvh(self, path: str) -> bool:
        """Write the walk's poses (Frames, FPS as set) as BVH; fast: the pose decoders only."""
        try:
            written = self.walk.export_bvh(path, self.frames.value(), self.fps.value())
        except (ValueError, OSError) as error:
            self.message.emit(f"Cannot export BVH: {error}")
            return False
        self.message.emit(f"Walk exported as BVH to {written}")
        return True

    def export(self, path: str, n_frames: int | None = None, fps: float | None = None,
               show_progress: bool = True) -> Job:
        """Start exporting the walk to `path` on a worker thread; returns the running job."""
        if self.job is not None and self.job.is_running():
            raise RuntimeError("an export is already running")
        n = int(n_frames or self.frames.value())
        rate = float(fps or self.fps.value())
        walk = self.walk

        def work(progress, cancel):
            return walk.export(path, n, rate, progress, cancel)

        job = Job(work, self)
        self.job = job
        if show_progress:
            dialog = dialogs.export_progress(self.window(), f"Writing {os.path.basename(path)}…",
                                             n)
            self.progress_dialog = dialog
            dialog.canceled.connect(job.cancel)
            job.progress.connect(lambda i, total: dialog.setValue(i))
        job.finished.connect(lambda result: self._export_done(str(result)))
        job.failed.connect(self._export_failed)
        job.cancelled.connect(lambda: self._export_ended("Export cancelled"))
        self.export_button.setEnabled(False)
        job.start()
        return job

    def _close_progress(self) -> None:
        if self.progress_dialog is not None:
            self.progress_dialog.reset()
            self.progress_dialog.close()
            self.progress_dialog.deleteLater()
            self.progress_dialog = None

    def _export_ended(self, text: str) -> None:
        self._close_progress()
        self.export_button.setEnabled(self.has_endpoints())
        self.message.emit(text)

    def _export_done(self, path: str) -> None:
        self.last_export = path
        self._export_ended(f"Walk exported to {path}")
        self.exportFinished.emit(path)

    def _export_failed(self, message: str) -> None:
        self._export_ended(f"Export failed: {message}")
        self.exportFailed.emit(message)
        dialogs.show_error(self.window(), "Export failed", message)
